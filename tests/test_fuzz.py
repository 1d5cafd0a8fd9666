"""Property-based fuzzing of every public array function (hypothesis).

Each entry of FUZZ_TABLE draws arguments for one public function: shapes, strides,
paddings, dilations, groups, dtypes, memory layouts (transposed, sliced, negative strides,
Fortran order, unaligned, byte-swapped, broadcast, read-only) and values (NaN, inf,
denormals, huge), and each call runs on 1 or 2 threads. The property, for every call:

* it either matches the float64 reference (``fastconv.reference``, NumPy) within a
  rounding bound, or raises ValueError/TypeError; valid arguments never raise;
* it never crashes, and never modifies its inputs (bitwise).

The rounding bound of a linear result is ``c * eps * (terms + 2) * B`` where B is the same
operation applied to the absolute values (the sum of |products|); where B could overflow
the dtype, any value is accepted (only "no crash" is checked there). Non-finite values are
put into the image-like argument only (x, grad_out's x, a, image): padding multiplies
weights by zeros, and 0 * inf is NaN in a reference that materialises the padding but not
in kernels that skip it, so non-finite weights have no single right answer.

Run modes (tests/conftest.py): the "ci" profile (default) runs a few dozen examples per
function; ``FASTCONV_HYPOTHESIS_PROFILE=thorough`` runs 2,000 per function. Add
``--hypothesis-show-statistics`` to see the counts.

Three more entries: set_num_threads with any count (huge, negative, NumPy, bool, float);
every function with ``out=`` given an out that overlaps an input (refused); and auto on
layers it runs by Winograd or im2col, with NaN, inf and huge values in x, weight or
grad_out (direct's NaN / inf / finite outputs exactly). conv2d's cases also leave one of
C, K, H and W empty now and then (N is often 0).

Damaged files get the same treatment at the end: random bytes and mutations (flipped,
cut, inserted bytes) of IDX dataset files and checkpoints raise only the documented
errors (ValueError naming the file; CheckpointError), or load unchanged.
"""
import gzip
import math
import os
import struct
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import event, given, note, strategies as st  # noqa: E402
import hypothesis.extra.numpy as hnp  # noqa: E402

import fastconv  # noqa: E402
from fastconv import filters, reference  # noqa: E402
from fastconv.nn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from fastconv.data.datasets import read_idx  # noqa: E402
from fastconv.nn.models import LeNet5  # noqa: E402

from conftest import SIMD_PATHS, set_threads, simd_path, thread_count, threads_in_effect  # noqa: E402
from train_helpers import idx_bytes  # noqa: E402

HUGE_INTS = (2**31, 2**40, 2**63, 2**70)


# -- values and layouts ---------------------------------------------------------------------
def value_strategy(dtype, nonfinite):
    """Mostly small numbers, plus the special values of the dtype's kind."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        low = 0 if dtype.kind == "u" else -50
        return st.integers(low, 50)
    info = np.finfo(dtype)
    width = 8 * dtype.itemsize
    specials = [0.0, -0.0, info.smallest_subnormal, -info.smallest_subnormal, info.tiny,
                info.tiny / 4, math.sqrt(info.max) / 4, -math.sqrt(info.max) / 4,
                info.max / 8, -info.max]
    if nonfinite:
        specials += [math.nan, math.inf, -math.inf]
    # Rounded to the dtype: hypothesis only accepts exactly representable elements.
    specials = [float(np.array(v).astype(dtype.newbyteorder("="))) for v in specials]
    return st.one_of(st.floats(-4, 4, width=width), st.sampled_from(specials))


LAYOUTS = ("C", "F", "transposed", "sliced", "negative", "unaligned", "byteswapped",
           "broadcast", "readonly")


def with_layout(a, layout, draw):
    """An array equal to `a` (or, for "broadcast", to `a` with one axis repeated) laid out
    in memory as `layout` says."""
    if a.ndim == 0 or a.size == 0 or layout == "C":
        return a.copy()
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "transposed":
        order = draw(st.permutations(range(a.ndim)))
        return np.ascontiguousarray(a.transpose(order)).transpose(np.argsort(order))
    if layout == "sliced":
        big = np.zeros(tuple(2 * n + 1 for n in a.shape), dtype=a.dtype)
        view = big[tuple(slice(1, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if layout == "negative":
        flip = tuple(slice(None, None, -1) for _ in a.shape)
        return np.ascontiguousarray(a[flip])[flip]
    if layout == "unaligned":
        buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
        view = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1)
        view = view.reshape(a.shape)
        view[...] = a
        return view
    if layout == "byteswapped":
        return a.astype(a.dtype.newbyteorder())
    if layout == "broadcast":
        axis = draw(st.integers(0, a.ndim - 1))
        one = a.take([0], axis=axis) if a.shape[axis] else a
        return np.broadcast_to(one, a.shape)
    if layout == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    raise AssertionError(layout)


@st.composite
def arrays(draw, shape, dtype, nonfinite=False):
    a = draw(hnp.arrays(np.dtype(dtype), shape, elements=value_strategy(dtype, nonfinite)))
    return with_layout(a, draw(st.sampled_from(LAYOUTS)), draw)


# float32 and float64 most of the time; the others exercise the dtype rules.
REAL_DTYPES = ["float32", "float64"] * 4 + ["float16", "int32", "uint8", "bool"]
BAD_DTYPES = ["complex128", "object"]


@st.composite
def dtypes(draw, bad_allowed=True):
    if bad_allowed and draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from(BAD_DTYPES))
    return draw(st.sampled_from(REAL_DTYPES))


@st.composite
def input_arrays(draw, shape, dtype, nonfinite=False):
    """An array for a public function; an object or complex dtype gets simple values."""
    if dtype in BAD_DTYPES:
        return np.zeros(shape, dtype=dtype)
    return draw(arrays(shape, dtype, nonfinite))


def compute_dtype(*dtypes_):
    """The dtype fastconv computes in (fastconv._checks.result_dtype's documented rule)."""
    kinds = [np.dtype(d) for d in dtypes_ if d is not None]
    if any(d.kind not in "biuf" for d in kinds):
        return None
    if any(d.kind in "biu" or (d.kind == "f" and d.itemsize > 4) for d in kinds):
        return np.dtype(np.float64)
    return np.dtype(np.float32)


# -- the checks -----------------------------------------------------------------------------
def finite_part(a):
    """|a| in float64 with non-finite values replaced by 0: input to the rounding bound."""
    a = np.abs(np.asarray(a, dtype=np.float64))
    return np.where(np.isfinite(a), a, 0.0)


def assert_matches(actual, expected, bound, dtype, terms, what, atol=0.0):
    """actual (computed in dtype) against expected (float64 reference of the same
    operation), bound = the operation on the absolute values of the finite inputs."""
    assert actual.dtype == dtype, (what, actual.dtype, dtype)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    info = np.finfo(dtype)
    got = actual.astype(np.float64)
    # Where the sum of |products| may overflow the dtype, any partial sum may be inf.
    safe = bound <= float(info.max) / 4
    nan = np.isnan(expected) & safe
    assert np.all(np.isnan(got[nan])), f"{what}: NaN expected"
    inf = np.isinf(expected) & safe
    assert np.array_equal(got[inf], expected[inf]), f"{what}: infinities differ"
    fin = np.isfinite(expected) & safe
    tol = (4 * float(info.eps) * (terms + 2) * bound
           + (terms + 2) * float(info.smallest_subnormal) + atol)
    err = np.abs(got - expected)
    bad = fin & ~(err <= tol)
    assert not bad.any(), (f"{what}: {bad.sum()} values off, worst error "
                           f"{err[bad].max()} vs tolerance {tol[bad].min()}")


def snapshot(*arrays_):
    """Bitwise copies of the array inputs, to prove they are never modified."""
    return [(a, a.tobytes()) for a in arrays_ if isinstance(a, np.ndarray)]


def assert_unmodified(snap):
    for a, data in snap:
        assert a.tobytes() == data, "an input array was modified"


def checked_backward(call, dy, *inputs):
    """call(), a backward call given grad_out dy and the other inputs: it must succeed unless
    dy's dtype is one of BAD_DTYPES, and leave every input unmodified. Its result, or None
    when it was rightly rejected."""
    snap = snapshot(dy, *inputs)
    try:
        result = call()
    except (ValueError, TypeError):
        assert dy.dtype in BAD_DTYPES, "a valid backward call was rejected"
        result = None
    assert_unmodified(snap)
    return result


def call_checked(valid, func, *args, **kwargs):
    """func(*args, **kwargs): must succeed when `valid`, else raise ValueError/TypeError."""
    event("valid call" if valid else "rejected call")
    if valid:
        return func(*args, **kwargs)
    with pytest.raises((ValueError, TypeError)):
        func(*args, **kwargs)
    return None


# -- convolution ----------------------------------------------------------------------------
def out_size(n, k, s, before, after, d):
    return (n + before + after - d * (k - 1) - 1) // s + 1


@st.composite
def conv_cases(draw):
    """Arguments of conv2d / conv2d_backward, mostly valid, with the independent verdict
    and the normalised geometry the reference takes."""
    groups = draw(st.integers(1, 3))
    N = draw(st.integers(0, 2))
    C = groups * draw(st.integers(1, 3))
    K = groups * draw(st.integers(1, 3))
    R, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H, W = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    # one dimension empty now and then (N = 0 is drawn above): the sums over it are empty
    empty = draw(st.sampled_from([None] * 8 + ["C", "K", "H", "W"]))
    C, K = (0 if empty == "C" else C), (0 if empty == "K" else K)
    H, W = (0 if empty == "H" else H), (0 if empty == "W" else W)
    # strides up to 3, and now and then one that leaves gaps between windows or is huge
    # (work and memory must follow the output, not the stride)
    stride = tuple(draw(st.sampled_from([1, 2, 3] * 3 + [7, 10**5, 2**31 - 1]))
                   for _ in range(2))
    dilation = tuple(draw(st.sampled_from([1, 1, 2, 3])) for _ in range(2))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    form = draw(st.sampled_from(["int", "pair", "quad", "same", "valid"]))
    cg = C // groups                  # the weight's channels
    valid = True
    bad = draw(st.sampled_from([None] * 12 + ["groups", "channels", "huge", "same_strided"]))
    if bad == "groups":               # a group count that may not divide C and K
        groups = draw(st.integers(2, 5))
        valid = C % groups == 0 and K % groups == 0 and cg * groups == C
    elif bad == "channels":
        cg += 1
        valid = False
    if form == "int":
        padding, pads = pads[0], (pads[0],) * 4
    elif form == "pair":
        padding, pads = (pads[0], pads[2]), (pads[0], pads[0], pads[2], pads[2])
    elif form == "quad":
        padding = pads
    elif form == "valid":
        padding, pads = "valid", (0, 0, 0, 0)
    else:
        padding = "same"
        if bad == "same_strided":
            stride = (2, draw(st.integers(1, 3)))
            valid = False
        else:
            stride = (1, 1)
        th, tw = dilation[0] * (R - 1), dilation[1] * (S - 1)
        pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    if bad == "huge":
        stride = (draw(st.sampled_from(HUGE_INTS)), stride[1])
        valid = False
    P = out_size(H, R, stride[0], pads[0], pads[1], dilation[0])
    Q = out_size(W, S, stride[1], pads[2], pads[3], dilation[1])
    valid = valid and P >= 1 and Q >= 1
    x_dtype, w_dtype = draw(dtypes()), draw(dtypes())
    b_dtype = draw(st.sampled_from([None, "float32", "float64"]))
    dtype = compute_dtype(x_dtype, w_dtype, b_dtype)
    valid = valid and dtype is not None
    x = draw(input_arrays((N, C, H, W), x_dtype, nonfinite=True))
    w = draw(input_arrays((K, cg, R, S), w_dtype))
    b = None if b_dtype is None else draw(input_arrays((K,), b_dtype))
    dy = draw(input_arrays((N, K, max(P, 1), max(Q, 1)), draw(dtypes(bad_allowed=False))))
    return dict(x=x, w=w, b=b, dy=dy, valid=valid, dtype=dtype,
                kwargs=dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                            algorithm=draw(st.sampled_from(["auto", "direct", "im2col"])),
                            flip=draw(st.booleans())),
                norm=dict(stride=stride, padding=pads, dilation=dilation, groups=groups))


def reference_weight(w, flip):
    w = np.asarray(w, dtype=np.float64)
    return w[:, :, ::-1, ::-1] if flip else w


def check_conv2d(data):
    case = data.draw(conv_cases())
    x, w, b, kw = case["x"], case["w"], case["b"], case["kwargs"]
    snap = snapshot(x, w, b)
    y = call_checked(case["valid"], fastconv.conv2d, x, w, b, **kw)
    assert_unmodified(snap)
    if y is None:
        return
    wr = reference_weight(w, kw["flip"])
    bias = None if b is None else np.asarray(b, dtype=np.float64)
    expected = reference.conv2d(np.asarray(x, dtype=np.float64), wr, bias, **case["norm"])
    bound = reference.conv2d(finite_part(x), np.abs(wr),
                                     None if b is None else finite_part(b), **case["norm"])
    terms = (x.shape[1] // case["norm"]["groups"]) * w.shape[2] * w.shape[3] + 1
    assert_matches(y, expected, bound, case["dtype"], terms, "conv2d")


def check_conv2d_backward(data):
    case = data.draw(conv_cases())
    x, w, dy, kw = case["x"], case["w"], case["dy"], case["kwargs"]
    dtype = compute_dtype(x.dtype, w.dtype, dy.dtype)
    valid = case["valid"] and dtype is not None
    snap = snapshot(x, w, dy)
    grads = call_checked(valid, fastconv.conv2d_backward, dy, x, w, **kw)
    assert_unmodified(snap)
    if grads is None:
        return
    wr = reference_weight(w, kw["flip"])
    dy64 = np.asarray(dy, dtype=np.float64)
    expected = reference.conv2d_backward(dy64, np.asarray(x, dtype=np.float64), wr, **case["norm"])
    bound = reference.conv2d_backward(finite_part(dy), finite_part(x), np.abs(wr), **case["norm"])
    if kw["flip"]:                  # the gradient of the flipped weight, flipped back
        expected = (expected[0], expected[1][:, :, ::-1, ::-1], expected[2])
        bound = (bound[0], bound[1][:, :, ::-1, ::-1], bound[2])
    N, K, P, Q = dy.shape
    R, S = w.shape[2:]
    terms = {"grad_x": K * R * S, "grad_weight": N * P * Q, "grad_bias": N * P * Q}
    for got, want, limit, name in zip(grads, expected, bound, terms):
        assert_matches(got, want, limit, dtype, terms[name], f"conv2d_backward {name}")


# -- matmul ---------------------------------------------------------------------------------
def check_matmul(data):
    M, K, N = (data.draw(st.integers(0, 40)) for _ in range(3))
    K2 = K if data.draw(st.integers(0, 9)) else K + 1           # 10%: mismatched inner size
    a_dtype, b_dtype = data.draw(dtypes()), data.draw(dtypes())
    a = data.draw(input_arrays((M, K), a_dtype, nonfinite=True))
    b = data.draw(input_arrays((K2, N), b_dtype))
    dtype = compute_dtype(a_dtype, b_dtype)
    valid = dtype is not None and K2 == K
    out_kind = data.draw(st.sampled_from(["none", "none", "nan", "accumulate", "wrong"]))
    kwargs = {}
    if out_kind != "none" and valid:
        out_dtype = dtype if out_kind != "wrong" else np.dtype(np.float16)
        if out_kind == "nan":           # beta = 0 must never read out, even NaN
            kwargs["out"] = np.full((M, N), np.nan, dtype=out_dtype)
        else:
            start = data.draw(hnp.arrays(out_dtype, (M, N), elements=st.floats(-4, 4, width=16)))
            kwargs["out"], kwargs["accumulate"] = start, True
        valid = out_kind != "wrong"
    c0 = kwargs["out"].astype(np.float64) if kwargs.get("accumulate") else 0.0
    snap = snapshot(a, b)
    c = call_checked(valid, fastconv.matmul, a, b, **kwargs)
    assert_unmodified(snap)
    if c is None:
        return
    with np.errstate(all="ignore"):
        expected = np.asarray(a, dtype=np.float64) @ np.asarray(b, dtype=np.float64) + c0
        bound = finite_part(a) @ finite_part(b) + np.abs(c0)
    assert_matches(c, expected, bound, dtype, K + 1, "matmul")


# -- filters --------------------------------------------------------------------------------
BORDERS = ("constant", "reflect", "replicate", "mirror", "wrap", "nearest")
_REFERENCE_MODE = {"nearest": "replicate"}


@st.composite
def images(draw):
    """(image, valid, dtype, planes float64 (N, H, W), |planes| bound input, out shape)."""
    H, W = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    form = draw(st.sampled_from(["gray", "gray", "batch", "rgb", "rgb_batch", "rgba",
                                 "rgba_batch", "bad_rank"]))
    if form == "batch" and W in (3, 4):
        W = 5                # (N, H, 3) and (N, H, 4) are one colour image by the documented rule
    N = draw(st.integers(0, 2))
    shape = {"gray": (H, W), "batch": (N, H, W), "rgb": (H, W, 3), "rgb_batch": (N, H, W, 3),
             "rgba": (H, W, 4), "rgba_batch": (N, H, W, 4), "bad_rank": (W,)}[form]
    dtype = draw(dtypes())
    image = draw(input_arrays(shape, dtype, nonfinite=True))
    compute = compute_dtype(dtype)
    valid = compute is not None and form != "bad_rank"
    if not valid:
        return image, False, compute, None, None, None
    a = np.asarray(image, dtype=np.float64)
    with np.errstate(all="ignore"):
        if form.startswith("rgb"):            # RGBA: the alpha channel is dropped
            weights = np.array([0.299, 0.587, 0.114])
            planes, absolute = a[..., :3] @ weights, finite_part(a[..., :3]) @ weights
            out_shape = shape[:-1]
        else:
            planes, absolute, out_shape = a, finite_part(a), shape
    planes = planes.reshape((-1, H, W))
    return image, True, compute, planes, absolute.reshape((-1, H, W)), out_shape


def rgb_atol(image, dtype, kernel_abs_sum):
    """An RGB image's luminance is rounded to the compute dtype: an absolute error of up to
    half a denormal step per pixel, which a large kernel amplifies."""
    if image.ndim >= 3 and image.shape[-1] in (3, 4):
        return float(np.finfo(dtype).smallest_subnormal) * kernel_abs_sum
    return 0.0


def filter_planes(planes, kernel, mode):
    """reference.filter2d on each (H, W) plane of (N, H, W)."""
    mode = _REFERENCE_MODE.get(mode, mode)
    with np.errstate(all="ignore"):
        out = [reference.filter2d(p, kernel, mode) for p in planes]
    return np.array(out).reshape(planes.shape)


def check_filter2d(data):
    image, valid, dtype, planes, absolute, out_shape = data.draw(images())
    k_dtype = data.draw(dtypes())
    kshape = data.draw(st.sampled_from([(1, 1), (3, 3), (1, 5), (4, 2), (5, 5), (2,), (0, 3)]))
    kernel = data.draw(input_arrays(kshape, k_dtype))
    mode = data.draw(st.sampled_from(BORDERS + ("bogus",)))
    flip = data.draw(st.booleans())
    valid = (valid and len(kshape) == 2 and 0 not in kshape and mode != "bogus"
             and compute_dtype(k_dtype) is not None)
    if valid:
        dtype = compute_dtype(image.dtype, k_dtype)
    snap = snapshot(image, kernel)
    with simd_path(data.draw(st.sampled_from(SIMD_PATHS))):
        out = call_checked(valid, filters.filter2d, image, kernel, mode=mode, flip=flip)
    assert_unmodified(snap)
    if out is None:
        return
    k = np.asarray(kernel, dtype=np.float64)
    k = k[::-1, ::-1] if flip else k
    expected = filter_planes(planes, k, mode).reshape(out_shape)
    bound = filter_planes(absolute, np.abs(k), mode).reshape(out_shape)
    assert_matches(out, expected, bound, dtype, k.size + 3, "filter2d",
                   atol=rgb_atol(image, dtype, np.abs(k).sum()))


def gaussian_kernel(sigma, truncate):
    """The sampled, normalised Gaussian of scipy.ndimage (and fastconv's docstring)."""
    radius = int(truncate * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def check_gaussian(data):
    image, valid, dtype, planes, absolute, out_shape = data.draw(images())
    sigma = data.draw(st.sampled_from([0.0, 0.5, 1.0, 1.7, -1.0, math.nan]))
    truncate = data.draw(st.sampled_from([4.0, 1.0, 2.5]))
    mode = data.draw(st.sampled_from(BORDERS))
    valid = valid and sigma >= 0
    snap = snapshot(image)
    out = call_checked(valid, filters.gaussian, image, sigma, mode=mode, truncate=truncate)
    assert_unmodified(snap)
    if out is None:
        return
    if sigma == 0:
        expected, bound, terms = planes, absolute, 1
    else:
        g = gaussian_kernel(sigma, truncate)
        expected = filter_planes(filter_planes(planes, g[:, None], mode), g[None, :], mode)
        inner = filter_planes(absolute, g[:, None], mode)      # the first of the two passes
        bound = filter_planes(inner, g[None, :], mode)
        if inner.max(initial=0) > np.finfo(dtype).max / 4:
            # A first-pass value may round past the dtype's maximum (the weights sum to 1
            # only up to rounding) and turn an output inf whose exact value is finite.
            bound = np.full_like(bound, np.inf)
        terms = 2 * g.size
    assert_matches(out, expected.reshape(out_shape), bound.reshape(out_shape), dtype, terms,
                   "gaussian", atol=rgb_atol(image, dtype, 1.0))


def edge_check(operator):
    def check(data):
        image, valid, dtype, planes, absolute, out_shape = data.draw(images())
        axis = data.draw(st.sampled_from([None, 0, 1, -1, 2]))
        mode = data.draw(st.sampled_from(BORDERS))
        normalize = data.draw(st.booleans())
        valid = valid and axis != 2
        snap = snapshot(image)
        func = getattr(filters, operator)
        with simd_path(data.draw(st.sampled_from(SIMD_PATHS))):
            out = call_checked(valid, func, image, axis, mode=mode, normalize=normalize)
        assert_unmodified(snap)
        if out is None:
            return
        derivs, bounds = [], []
        for ax in ((axis % 2,) if axis is not None else (1, 0)):
            k = filters.edge_kernel(operator, ax, normalize=normalize)
            derivs.append(filter_planes(planes, k, mode))
            bounds.append(filter_planes(absolute, np.abs(k), mode))
        if axis is not None:
            assert_matches(out, derivs[0].reshape(out_shape), bounds[0].reshape(out_shape),
                           dtype, 11, operator, atol=rgb_atol(image, dtype, 32))
            return
        assert_magnitude(out, derivs, bounds, dtype, out_shape, operator, image)
    check.__name__ = f"check_{operator}"
    return check


def assert_magnitude(out, derivs, bounds, dtype, out_shape, what, image):
    """sqrt(gx^2 + gy^2) against the reference: the error of each derivative plus the
    rounding of the squares and the root; squares may overflow where the bound is large,
    and underflow (to 0) below sqrt(tiny): the documented cost of not using np.hypot."""
    with np.errstate(all="ignore"):
        gx, gy = derivs
        expected = np.sqrt(gx * gx + gy * gy).reshape(out_shape)
        bx, by = bounds
        limit = (bx + by).reshape(out_shape)
        # Treat the magnitude as a sum of `limit`-sized terms, and flag where squaring may
        # overflow the dtype.
        overflow = (bx * bx + by * by).reshape(out_shape) > float(np.finfo(dtype).max) / 4
    limit = np.where(overflow, np.inf, limit)
    underflow = 2 * math.sqrt(float(np.finfo(dtype).tiny))
    assert_matches(out, expected, limit, dtype, 16, f"{what} magnitude",
                   atol=underflow + rgb_atol(image, dtype, 32))


def check_gradient(data):
    image, valid, dtype, planes, absolute, out_shape = data.draw(images())
    operator = data.draw(st.sampled_from(["sobel", "scharr", "prewitt", "roberts"]))
    mode = data.draw(st.sampled_from(BORDERS))
    valid = valid and operator != "roberts"
    snap = snapshot(image)
    result = call_checked(valid, filters.gradient, image, operator, mode=mode)
    assert_unmodified(snap)
    if result is None:
        return
    magnitude, direction = result
    derivs = [filter_planes(planes, filters.edge_kernel(operator, ax), mode) for ax in (1, 0)]
    bounds = [filter_planes(absolute, np.abs(filters.edge_kernel(operator, ax)), mode)
              for ax in (1, 0)]
    assert_magnitude(magnitude, derivs, bounds, dtype, out_shape, "gradient", image)
    assert direction.shape == magnitude.shape and direction.dtype == dtype
    finite = np.isfinite(direction)
    assert np.all(np.abs(direction[finite]) <= np.pi + 1e-6)


def check_canny(data):
    """No reference: Canny's thresholds and ties make exact agreement fragile, so its
    properties are checked instead (shape, bool, outer ring empty, deterministic, and a
    lower low threshold gives a superset of edges)."""
    image, valid, dtype, planes, absolute, out_shape = data.draw(images())
    sigma = data.draw(st.sampled_from([0.0, 0.8, 1.5]))
    low = data.draw(st.sampled_from([None, 0.0, 0.1, 1.0, 50.0]))
    high = data.draw(st.sampled_from([None, 0.2, 2.0, 100.0]))
    mode = data.draw(st.sampled_from(BORDERS))
    scale = float(np.iinfo(image.dtype).max) if image.dtype.kind in "iu" else 1.0
    lo = 0.1 * scale if low is None else low
    hi = 0.2 * scale if high is None else high
    valid = valid and lo <= hi
    snap = snapshot(image)
    edges = call_checked(valid, filters.canny, image, sigma, low, high, mode=mode)
    assert_unmodified(snap)
    if edges is None:
        return
    assert edges.dtype == np.bool_ and edges.shape == tuple(out_shape)
    planes_out = edges.reshape((-1,) + edges.shape[-2:])
    if planes_out.size:
        for ring in (planes_out[:, 0], planes_out[:, -1], planes_out[:, :, 0], planes_out[:, :, -1]):
            assert not ring.any(), "an edge on the outermost pixel ring"
    again = filters.canny(image, sigma, low, high, mode=mode)
    assert np.array_equal(edges, again), "canny is not deterministic"
    more = filters.canny(image, sigma, lo / 2, hi, mode=mode)
    assert not (edges & ~more).any(), "a lower low threshold lost edges"


# -- pooling -------------------------------------------------------------------------------------
@st.composite
def pool_cases(draw, dilation_allowed):
    N, C = draw(st.integers(0, 2)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.sampled_from([None, 1, 2, (1, 3)]))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation_allowed else (1, 1)
    ceil_mode = draw(st.booleans())
    dtype = draw(dtypes())
    x = draw(input_arrays((N, C, H, W), dtype, nonfinite=True))
    s = kernel if stride is None else ((stride, stride) if isinstance(stride, int) else stride)
    return x, dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode), \
        dict(kernel_size=kernel, stride=s, padding=padding, ceil_mode=ceil_mode), dilation


def check_pool(data, func_name, dilation_allowed):
    """Pooling: valid calls match the reference's function of the same name (float64 sums,
    exact maxima)."""
    ref = getattr(reference, func_name)
    x, kwargs, norm, dilation = data.draw(pool_cases(dilation_allowed))
    if dilation_allowed:
        kwargs["dilation"] = norm["dilation"] = dilation
    snap = snapshot(x)
    try:
        y = getattr(fastconv, func_name)(x, **kwargs)
    except (ValueError, TypeError):
        assert_unmodified(snap)
        return
    assert_unmodified(snap)
    expected = ref(np.asarray(x, dtype=np.float64), **norm)
    window = norm["kernel_size"][0] * norm["kernel_size"][1]
    with np.errstate(all="ignore"):
        bound = ref(finite_part(x), **norm)
    if func_name.startswith("avg"):
        bound = bound * window      # the kernel sums the window before dividing
    assert_matches(y, expected, np.abs(bound), y.dtype, window + 1, func_name)


def check_max_pool2d(data):
    check_pool(data, "max_pool2d", dilation_allowed=True)


def check_avg_pool2d(data):
    check_pool(data, "avg_pool2d", dilation_allowed=False)


def scatter_by_indices(dy, indices, x_shape):
    """dx: dy[n, c, p, q] added at flat position indices[n, c, p, q] of plane (n, c);
    positions outside the plane are skipped."""
    N, C, H, W = x_shape
    dx = np.zeros((N * C, H * W))
    flat = indices.reshape(N * C, indices.shape[2] * indices.shape[3])
    where = np.asarray(dy, dtype=np.float64).reshape(flat.shape)
    for plane in range(N * C):
        inside = (flat[plane] >= 0) & (flat[plane] < H * W)
        np.add.at(dx[plane], flat[plane][inside], where[plane][inside])
    return dx.reshape(x_shape)


def check_pool_backward(data, kind):
    """max_pool2d_backward (maxima found again from x, or read from the forward's indices)
    and avg_pool2d_backward: the reference's routing of grad_out, within rounding."""
    x, kwargs, norm, dilation = data.draw(pool_cases(dilation_allowed=kind == "max"))
    if kind == "max":
        kwargs["dilation"] = norm["dilation"] = dilation
    forward = getattr(fastconv, f"{kind}_pool2d")
    try:
        y = forward(x, **kwargs)
    except (ValueError, TypeError):
        return                             # the forward fuzz checks the rejected calls
    dy = data.draw(input_arrays(y.shape, data.draw(dtypes()), nonfinite=True))
    if kind == "max" and data.draw(st.booleans()):
        kwargs["indices"] = forward(x, **kwargs, return_indices=True)[1]
    backward = getattr(fastconv, f"{kind}_pool2d_backward")
    dx = checked_backward(lambda: backward(dy, x, **kwargs), dy, x, kwargs.get("indices"))
    if dx is None:
        return
    if "indices" in kwargs:
        # Each gradient goes where the forward's index says (PyTorch's rule, which for a
        # dilated window wholly in the padding can name a real pixel), else nowhere.
        ref = lambda g, _x, **_: scatter_by_indices(g, kwargs["indices"], x.shape)  # noqa: E731
    else:
        ref = getattr(reference, f"{kind}_pool2d_backward")
    with np.errstate(all="ignore"):
        expected = ref(np.asarray(dy, dtype=np.float64), np.asarray(x, dtype=np.float64), **norm)
        bound = ref(finite_part(dy), np.asarray(x, dtype=np.float64), **norm)
    window = norm["kernel_size"][0] * norm["kernel_size"][1]
    assert_matches(dx, expected, bound, dx.dtype, window + 1, f"{kind}_pool2d_backward")


def check_global_avg_pool2d(data):
    x = data.draw(input_arrays((data.draw(st.integers(0, 2)), 2, data.draw(st.integers(1, 6)),
                                data.draw(st.integers(1, 6))), data.draw(dtypes()), True))
    snap = snapshot(x)
    try:
        y = fastconv.global_avg_pool2d(x)
    except (ValueError, TypeError):
        assert_unmodified(snap)
        return
    assert_unmodified(snap)
    with np.errstate(all="ignore"):
        expected = np.asarray(x, dtype=np.float64).mean(axis=(2, 3), keepdims=True)
        bound = finite_part(x).sum(axis=(2, 3), keepdims=True)    # sum, then divide
    assert_matches(y.reshape(expected.shape), expected, bound, y.dtype,
                   x.shape[2] * x.shape[3] + 1, "global_avg_pool2d")


def check_adaptive_avg_pool2d(data):
    x = data.draw(input_arrays((data.draw(st.integers(0, 2)), 2, data.draw(st.integers(1, 8)),
                                data.draw(st.integers(1, 8))), data.draw(dtypes()), True))
    size = (data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5)))
    snap = snapshot(x)
    try:
        y = fastconv.adaptive_avg_pool2d(x, size)
    except (ValueError, TypeError):
        assert_unmodified(snap)
        return
    assert_unmodified(snap)
    with np.errstate(all="ignore"):
        expected = reference.adaptive_avg_pool2d(np.asarray(x, dtype=np.float64), size)
        bound = reference.adaptive_avg_pool2d(finite_part(x), size) * x.shape[2] * x.shape[3]   # sum, then divide
    assert_matches(y, expected, bound, y.dtype, x.shape[2] * x.shape[3] + 1,
                   "adaptive_avg_pool2d")


def check_adaptive_avg_pool2d_backward(data):
    """adaptive_avg_pool2d_backward, and global_avg_pool2d_backward for output size 1."""
    x = data.draw(input_arrays((data.draw(st.integers(0, 2)), 2, data.draw(st.integers(1, 8)),
                                data.draw(st.integers(1, 8))), data.draw(dtypes(False)), True))
    size = data.draw(st.sampled_from([(1, 1), (2, 3), (3, 1), (5, 5)]))
    dy = data.draw(input_arrays(x.shape[:2] + size, data.draw(dtypes()), nonfinite=True))
    use_global = size == (1, 1) and data.draw(st.booleans())
    if use_global:
        dx = checked_backward(lambda: fastconv.global_avg_pool2d_backward(dy, x), dy, x)
    else:
        dx = checked_backward(lambda: fastconv.adaptive_avg_pool2d_backward(dy, x, size), dy, x)
    if dx is None:
        return
    with np.errstate(all="ignore"):
        expected = reference.adaptive_avg_pool2d_backward(np.asarray(dy, dtype=np.float64), x, size)
        bound = reference.adaptive_avg_pool2d_backward(finite_part(dy), x, size)
    assert_matches(dx, expected, bound, dx.dtype, 4, "adaptive_avg_pool2d_backward")


# -- the table: adding a function is adding a line ------------------------------------------
# -- thread counts -----------------------------------------------------------------------
THREAD_COUNTS = st.one_of(st.integers(-3, 3 * fastconv.config.MAX_THREADS),
                          st.sampled_from(HUGE_INTS + (10**6, 50_000)),
                          st.integers(1, 4).map(np.int64), st.booleans(),
                          st.floats(-2, 8), st.sampled_from(["2", None]))


def check_set_num_threads(data):
    """Any integer from 1 to MAX_THREADS (a NumPy one too) is accepted and the kernels run
    on it; anything else raises ValueError/TypeError and leaves the count as it was."""
    n = data.draw(THREAD_COUNTS)
    integral = isinstance(n, (int, np.integer)) and not isinstance(n, bool)
    valid = integral and 1 <= n <= fastconv.config.MAX_THREADS
    before = fastconv.get_num_threads()
    call_checked(valid, set_threads if valid else fastconv.set_num_threads, n)
    assert fastconv.get_num_threads() == (threads_in_effect(n) if valid else before)
    x = np.ones((1, 2, 6, 6), np.float32)
    assert fastconv.conv2d(x, np.ones((2, 2, 3, 3), np.float32)).sum() == 2 * 16 * 18


# -- out= overlapping an input ---------------------------------------------------------
def _alias(a, draw):
    """a itself, or a view of all of it."""
    return a if draw(st.booleans()) else a.reshape(a.shape)


def check_out_aliasing(data):
    """Every function with out= refuses an out that overlaps one of its inputs (the shapes
    are chosen so that out could otherwise take the result), and modifies no input."""
    draw = data.draw
    dtype = draw(st.sampled_from(["float32", "float64"]))

    def native(shape):           # a fresh C-contiguous array: a valid out but for overlap
        return np.array(draw(arrays(shape, dtype)), dtype=dtype, order="C", copy=True)

    N, C, H, W = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 5)),
                  draw(st.integers(1, 5)))
    x, dy = native((N, C, H, W)), native((N, C, H, W))
    w = native((C, C, 1, 1))                # 1x1, C -> C: y has x's shape
    n = draw(st.integers(1, 6))
    a, b = native((n, n)), native((n, n))
    pool = dict(kernel_size=1, stride=1)
    cases = {
        "matmul": lambda: fastconv.matmul(a, b, out=_alias(draw(st.sampled_from([a, b])),
                                                           draw),
                                          accumulate=draw(st.booleans())),
        "conv2d": lambda: fastconv.conv2d(x, w, out=_alias(x, draw)),
        "conv2d_backward grad_x": lambda: fastconv.conv2d_backward(
            dy, x, w, out=(_alias(draw(st.sampled_from([x, dy])), draw), None, None)),
        "conv2d_backward grad_weight": lambda: fastconv.conv2d_backward(
            dy, x, w, out=(None, _alias(w, draw), None)),
        "max_pool2d": lambda: fastconv.max_pool2d(x, out=_alias(x, draw), **pool),
        "avg_pool2d": lambda: fastconv.avg_pool2d(x, out=_alias(x, draw), **pool),
        "max_pool2d_backward": lambda: fastconv.max_pool2d_backward(
            dy, x, out=_alias(draw(st.sampled_from([x, dy])), draw), **pool),
        "avg_pool2d_backward": lambda: fastconv.avg_pool2d_backward(
            dy, x, out=_alias(draw(st.sampled_from([x, dy])), draw), **pool),
    }
    name = draw(st.sampled_from(sorted(cases)))
    note(f"aliased call: {name}")
    snap = snapshot(x, w, dy, a, b)
    with pytest.raises(ValueError, match="overlaps"):
        cases[name]()
    assert_unmodified(snap)


# -- non-finite and huge values under auto -------------------------------------------------
def _pattern(a):
    return np.isnan(a), np.isposinf(a), np.isneginf(a)


def check_auto_values(data):
    """auto on layers it runs by Winograd or im2col gives exactly direct's NaN / inf /
    finite outputs, forward and backward, whatever non-finite or huge values x, weight or
    grad_out hold; explicit winograd runs (its own IEEE behaviour) without crashing."""
    draw = data.draw
    dtype = np.dtype(draw(st.sampled_from(["float32", "float64"])))
    if draw(st.booleans()):      # Winograd's forward pass and input gradient
        x_shape, w_shape, padding = (2, 48, 32, 32), (48, 48, 3, 3), 1
    else:                        # im2col (1x1 filters)
        x_shape, w_shape, padding = (1, 64, 8, 8), (32, 64, 1, 1), 0
    plan = fastconv.conv_plan(x_shape, w_shape, padding=padding, dtype=dtype.name)
    assert "direct" not in (plan.forward, plan.backward_data)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    y_shape = fastconv.conv2d(x, w, padding=padding, algorithm="direct").shape
    dy = rng.standard_normal(y_shape).astype(dtype)
    info = np.finfo(dtype)
    specials = [math.nan, math.inf, -math.inf, float(info.max), -float(info.max) / 2,
                float(info.max) / 1e3, 1e38, 3e38]
    target = draw(st.sampled_from(["x", "w", "dy"]))
    a = {"x": x, "w": w, "dy": dy}[target]
    if draw(st.integers(0, 4)) == 0:                  # the whole array huge
        a *= dtype.type(float(info.max) / 8)
    for _ in range(draw(st.integers(1, 3))):
        index = tuple(draw(st.integers(0, n - 1)) for n in a.shape)
        with np.errstate(over="ignore"):
            a[index] = dtype.type(draw(st.sampled_from(specials)))
    note(f"values put into {target}")
    direct = fastconv.conv2d(x, w, padding=padding, algorithm="direct")
    auto = fastconv.conv2d(x, w, padding=padding)
    for got, want in zip(_pattern(auto), _pattern(direct)):
        assert np.array_equal(got, want), "conv2d: auto's NaN/inf pattern differs from direct"
    direct = fastconv.conv2d_backward(dy, x, w, padding=padding, algorithm="direct")
    auto = fastconv.conv2d_backward(dy, x, w, padding=padding)
    for name, g_auto, g_direct in zip(("grad_x", "grad_weight", "grad_bias"), auto, direct):
        for got, want in zip(_pattern(g_auto), _pattern(g_direct)):
            assert np.array_equal(got, want), f"conv2d_backward {name}: pattern differs"
    if w_shape[2:] == (3, 3):
        assert fastconv.conv2d(x, w, padding=padding, algorithm="winograd").shape == y_shape


FUZZ_TABLE = {
    "conv2d": check_conv2d,
    "conv2d_backward": check_conv2d_backward,
    "matmul": check_matmul,
    "filters.filter2d": check_filter2d,
    "filters.gaussian": check_gaussian,
    "filters.sobel": edge_check("sobel"),
    "filters.scharr": edge_check("scharr"),
    "filters.prewitt": edge_check("prewitt"),
    "filters.gradient": check_gradient,
    "filters.canny": check_canny,
    "max_pool2d": check_max_pool2d,
    "max_pool2d_backward": lambda data: check_pool_backward(data, "max"),
    "avg_pool2d": check_avg_pool2d,
    "avg_pool2d_backward": lambda data: check_pool_backward(data, "avg"),
    "global_avg_pool2d": check_global_avg_pool2d,
    "adaptive_avg_pool2d": check_adaptive_avg_pool2d,
    "adaptive_avg_pool2d_backward": check_adaptive_avg_pool2d_backward,
    "set_num_threads": check_set_num_threads,
    "out= overlapping an input": check_out_aliasing,
    "auto on non-finite and huge values": check_auto_values,
}


@pytest.mark.parametrize("name", list(FUZZ_TABLE))
@given(data=st.data())
def test_every_call_matches_the_reference_or_raises_and_never_modifies_inputs(name, data):
    note(f"function: {name}")
    # 1 or 2 threads: the kernels cut the work into different bands of rows for each, and
    # a band's edges (padding only below the image, bands of few rows) need checking too
    threads = data.draw(st.sampled_from([1, 2]))
    with np.errstate(all="ignore"), thread_count(threads):  # NaN and inf inputs warn in NumPy
        FUZZ_TABLE[name](data)


# -- damaged files: IDX datasets and checkpoints -------------------------------------------------------


def mutate(data, draw_ops):
    """Apply (kind, position, value) edits: flip a byte, cut the tail, insert a byte."""
    data = bytearray(data)
    for kind, where, value in draw_ops:
        if not data:
            break
        i = where % len(data)
        if kind == "flip":
            data[i] ^= value or 1
        elif kind == "cut":
            del data[i:]
        else:
            data[i:i] = bytes([value])
    return bytes(data)


EDITS = st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert"]),
                           st.integers(0, 2**31), st.integers(0, 255)), min_size=1, max_size=4)


def write_temp(data, suffix):
    fd, name = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return name


# The IDX type codes, written out here so that the test decodes headers on its own.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def idx_declared(data):
    """(shape, big-endian dtype, data bytes) that the header of an IDX file's bytes declares
    (after gunzip when the bytes start with the gzip magic)."""
    payload = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    ndim = payload[3]
    shape = struct.unpack(f">{ndim}i", payload[4:4 + 4 * ndim])
    return shape, np.dtype(IDX_TYPES[payload[2]]), payload[4 + 4 * ndim:]


@given(edits=EDITS, compress=st.booleans(), raw=st.binary(max_size=64), use_raw=st.booleans())
def test_read_idx_on_corrupted_files_returns_the_header_shape_or_raises_value_error(
        edits, compress, raw, use_raw):
    good = idx_bytes(np.arange(60, dtype=np.uint8).reshape(3, 4, 5))
    data = raw if use_raw else mutate(gzip.compress(good) if compress else good, edits)
    name = write_temp(data, ".idx")
    try:
        array = read_idx(name)
    except ValueError as exc:
        assert name in str(exc)
    else:       # the shape and type the header declares, in native order, holding the data
        event("read")
        shape, dtype, body = idx_declared(data)
        assert isinstance(array, np.ndarray)
        assert array.shape == shape
        assert array.dtype == dtype.newbyteorder("=")
        assert array.astype(dtype).tobytes() == body
    finally:
        os.unlink(name)


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "c.npz"
    save_checkpoint(path, LeNet5(seed=0), epoch=1)
    return path.read_bytes(), load_checkpoint(path)


@given(edits=EDITS)
def test_a_mutated_checkpoint_raises_checkpoint_error_or_loads_unchanged(edits, checkpoint_bytes):
    data, original = checkpoint_bytes
    name = write_temp(mutate(data, edits), ".npz")
    try:
        state = load_checkpoint(name)
    except CheckpointError:
        pass
    else:       # an edit in zip metadata the format does not rely on: content intact
        assert state["epoch"] == original["epoch"]
        assert state["model"].keys() == original["model"].keys()
        assert all(np.array_equal(state["model"][k], v) for k, v in original["model"].items())
    finally:
        os.unlink(name)
