"""2-D convolution: :func:`conv2d` and its gradients :func:`conv2d_backward`.

Names, argument order and semantics follow ``torch.nn.functional.conv2d``. Like PyTorch
(and every deep-learning library) the default is *cross-correlation*: the filter slides
over the image unflipped. ``flip=True`` gives true convolution (CONCEPTS.md section 2).
"""
import numpy as np

from . import _ext
from ._checks import (ALGORITHMS, as_array, as_bool, as_kernel_input, check_out, conv_geometry,
                      out_arrays, result_dtype)

__all__ = ["conv2d", "conv2d_backward", "choose_algorithm", "choose_weight_algorithm"]


def choose_algorithm(geom, backward=False):
    """The algorithm ``algorithm="auto"`` runs for a problem, forward or backward.

    Direct convolution keeps a band of input rows in L2 and the filters' sums in registers,
    with no copy of the input per tap; im2col + GEMM copies every input pixel R x S times
    into columns and then runs near the GEMM's peak. Measured (2026-11-29, 2 threads,
    float32, AVX-512 and AVX2, each algorithm on the same shape), direct wins the forward
    pass everywhere except where the GEMM needs no copy or the images are tiny: few
    channels or filters (LeNet-5, the lecture net: 1.4-3x), 3x3 layers of 32-256 channels
    (8x64x56x56: 7.7 vs 10.3 ms; 8x256x14x14: 7.2 vs 9.0 ms). im2col wins 1x1 filters
    (its columns are x itself: 1.8 vs 2.4 ms) and 7x7 images of 512 channels (3.2 vs
    5.7 ms). Backward, im2col also wins from ~2,000 taps per output pixel (8x256x14x14:
    17.8 vs 21.0 ms) and for 7x7 filters (8x3x224x224 -> 64: 109 vs 139 ms).

    Winograd F(4x4, 3x3) (3x3, stride 1, undilated, ungrouped layers only) does a quarter
    of the multiplications in GEMMs, but transforms every input tile (cost ~ C per tile),
    output tile (~ K) and filter (~ C x K per call). Measured (same day, float32, AVX-512;
    one thread, CPU time, as the shared machine gave no stable 2-thread wall times;
    Winograd vs direct, forward / input gradient, ms): 8x64x56x56 -> 64: 8.1 vs 15.8 /
    9.9 vs 17.5; 8x128x28x28 -> 128: 6.1-8.1 vs 15.3 / 6.1 vs 15.8; 8x256x14x14 -> 256:
    7.4-7.7 vs 13.8 / 10.6 vs 12.7 (im2col 18.1); 8x32x28x28 -> 64: 1.46 vs 1.73 / 1.68
    vs 1.85; 8x256x28x28 -> 256: 22.9 vs 57.6 / 27.4 vs 47.5. It loses with fewer
    channels or filters (8x16x56x56 -> 16: 1.62 vs 0.99; 8x64x56x56 -> 16: 5.4 vs 4.4;
    C = K = 32 about even) and where few tiles share the transformed filters (8x512x7x7
    -> 512, 32 tiles: 31 vs 18 ms). So auto runs it (forward and input
    gradient; the weight gradient keeps direct or im2col) where both C and K are at least
    32, C x K at least 2048 and the output has at least 64 tiles of 4x4, and keeps its
    transformed filter bank (36 x C x K values) under 64 MiB in float32 (C = K = 1024
    would need 144 MiB; direct and im2col need no copy of the weights).

    auto's weight gradient of deep 3x3 layers may come from Winograd F(2x2, 3x3)
    (:func:`choose_weight_algorithm`).
    """
    if winograd_supports(geom) and winograd_pays(geom, backward):
        return "winograd"
    return _choose_direct_or_im2col(geom, backward)


def winograd_pays(geom, backward=False):
    """Where auto runs Winograd on a supported layer (choose_algorithm says why). The input
    gradient is a Winograd convolution of grad_out (K channels) to C channels on H x W."""
    height, width = (geom.H, geom.W) if backward else (geom.P, geom.Q)
    tiles = geom.N * -(-height // 4) * -(-width // 4)
    filter_bank_bytes = 36 * geom.C * geom.K * 4
    return (min(geom.C, geom.K) >= 32 and geom.C * geom.K >= 2048 and tiles >= 64
            and filter_bank_bytes <= 64 << 20)


def _choose_direct_or_im2col(geom, backward):
    """auto's choice between the two general algorithms (choose_algorithm says why)."""
    taps = (geom.C // geom.groups) * geom.R * geom.S
    filters = geom.K // geom.groups
    if taps < 64 or filters < 32:
        return "direct"
    if geom.R * geom.S == 1 or geom.P * geom.Q <= 64:
        return "im2col"
    if backward and (taps >= 2048 or geom.R * geom.S >= 49):
        return "im2col"
    return "direct"


def choose_weight_algorithm(geom, algorithm):
    """The kernel ``algorithm="auto"`` runs for the weight gradient, given the algorithm
    :func:`choose_algorithm` picked for the backward pass.

    3x3 filters at stride 1, undilated, ungrouped, with at least 64 channels and 64
    filters, 128 of one of them, and at least 128 output tiles of 2x2 in the batch run
    Winograd's F(2x2, 3x3) (src/conv_winograd_weight.c): 2.25x fewer multiplications, in GEMMs
    over tiles, whose transforms and per-thread sums pay off only when the GEMMs are large.
    Measured (2026-11-29, float32, AVX-512, 2 threads, the weight gradient alone, medians
    on a shared machine): 8x128x28x28 -> 128: winograd 5.7-6.6 ms vs direct 7.9-8.8;
    8x256x14x14 -> 256: 5.9-7.0 vs im2col 9.7-13.1; 8x64x28x28 -> 128: 4.1 vs direct 5.0;
    8x128x56x56 -> 64: 16.5 vs 20.7; a tie at 64 and 64 (8x64x56x56 -> 64: 9.5 vs direct
    9.0, 11.0 vs 10.3, 9.5 vs 10.3), where direct stays. On one thread 8x32x56x56 -> 64:
    7.9 vs direct 7.0 and 1x512x7x7 -> 512 (16 tiles): 5.2 vs im2col 3.8. Everything else
    keeps the backward pass's algorithm, as do layers whose per-thread sums (16 x C x K
    float64) would exceed ``_ext.WINOGRAD_MAX_SUMS_BYTES``.
    """
    tiles = geom.N * ((geom.P + 1) // 2) * ((geom.Q + 1) // 2)
    if (winograd_supports(geom) and min(geom.C, geom.K) >= 64 and max(geom.C, geom.K) >= 128
            and tiles >= 128
            and 16 * geom.C * geom.K * 8 <= _ext.WINOGRAD_MAX_SUMS_BYTES):
        return "winograd"
    return algorithm


def winograd_supports(geom):
    """True where algorithm="winograd" applies: 3x3 filters, stride 1, dilation 1, groups 1."""
    return ((geom.R, geom.S) == (3, 3) and tuple(geom.stride) == (1, 1)
            and tuple(geom.dilation) == (1, 1) and geom.groups == 1)


def _runnable(algorithm, geom, dtype):
    """algorithm, or "direct" where im2col would refuse the problem (its workspace is
    bounded)."""
    if algorithm == "im2col" and _im2col_row_bytes(geom, dtype) > _ext.IM2COL_MAX_ROW_BYTES:
        return "direct"
    return algorithm


def _im2col_row_bytes(geom, dtype):
    """Bytes of one output row's im2col columns: the least workspace im2col needs per
    thread (it refuses above _ext.IM2COL_MAX_ROW_BYTES, src/fastconv.h)."""
    return (geom.C // geom.groups) * geom.R * geom.S * geom.Q * np.dtype(dtype).itemsize


def _prepare(func, x, weight, stride, padding, dilation, groups, algorithm, flip, **others):
    """Shared checks of conv2d and conv2d_backward: (geometry, dtype, algorithm, weight)."""
    backward = func == "conv2d_backward"      # auto's choice differs by pass
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{func}: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    dtype = result_dtype(func, x=x, weight=weight, **others)
    geom = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups, func)
    if algorithm == "winograd" and not winograd_supports(geom):
        raise ValueError(f"{func}: algorithm='winograd' needs 3x3 filters, stride 1, "
                         f"dilation 1 and groups 1, got filters {geom.R}x{geom.S}, stride "
                         f"{geom.stride}, dilation {geom.dilation}, groups {geom.groups}")
    if algorithm == "auto":
        algorithm = _runnable(choose_algorithm(geom, backward), geom, dtype)
    if flip:
        weight = weight[:, :, ::-1, ::-1]
    return geom, dtype, algorithm, weight


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           algorithm="auto", flip=False, out=None):
    """2-D convolution (cross-correlation) of a batch of images with a bank of filters.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        Batch of N images with C channels.
    weight : array_like, shape (K, C / groups, R, S)
        K filters of size R x S; each spans C / groups channels (the filter depth equals
        the input depth).
    bias : array_like, shape (K,), optional
        One bias per filter.
    stride : int or (int, int)
        Step between windows.
    padding : int, (h, w), (top, bottom, left, right), "valid" or "same"
        Zero padding. "same" keeps the size (stride 1 only); an even kernel puts the odd
        pixel at the bottom/right, as PyTorch does.
    dilation : int or (int, int)
        Spacing between filter taps.
    groups : int
        Split channels and filters into groups convolved separately (groups = C is a
        depthwise convolution).
    algorithm : {"auto", "direct", "im2col", "winograd"}
        Kernel to run; "auto" picks per shape (see :func:`choose_algorithm`). "winograd"
        (F(4x4, 3x3)) needs 3x3 filters, stride 1, dilation 1 and groups 1; it rounds a
        little more in float32 (measured max error / max |y| up to ~1e-5 against float64,
        vs ~1e-6 for direct).
    flip : bool
        True convolution: flip each filter in both spatial axes first.
    out : ndarray, optional
        Where to write the result, as NumPy's ``out=``: shape (N, K, P, Q), the dtype
        conv2d computes in, C-contiguous, writeable and not overlapping x, weight or bias
        (ValueError/TypeError otherwise). It is returned. Reusing one array saves an
        allocation per call (a training loop's page faults).

    Returns
    -------
    ndarray, shape (N, K, P, Q)
        P and Q from :func:`fastconv.conv_output_size`. float32 inputs give float32;
        float64, mixed, integer or bool inputs give float64.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> img = np.array([[3, 0, 1, 2, 7, 4], [1, 5, 8, 9, 3, 1], [2, 7, 2, 5, 1, 3],
    ...                 [0, 1, 3, 1, 7, 8], [4, 2, 1, 6, 2, 8], [2, 4, 5, 2, 3, 9]])
    >>> edge = np.array([[1, 0, -1]] * 3)
    >>> fastconv.conv2d(img[None, None], edge[None, None])[0, 0, 0]
    array([-5., -4.,  0.,  8.])
    """
    func = "conv2d"
    x = as_array(x, "x", func, ndim=4)
    weight = as_array(weight, "weight", func, ndim=4)
    if bias is not None:
        bias = as_array(bias, "bias", func, ndim=1)
    geom, dtype, algorithm, weight = _prepare(func, x, weight, stride, padding, dilation,
                                              groups, algorithm, flip, bias=bias)
    if bias is not None and bias.shape != (geom.K,):
        raise ValueError(f"{func}: expected bias of shape ({geom.K},) (one per filter), "
                         f"got shape {bias.shape}")
    y = check_out(*out_arrays(out, 1, func), "out", geom.output_shape, dtype, func,
                  (("x", x), ("weight", weight), ("bias", bias)))
    if y is None:
        y = np.empty(geom.output_shape, dtype=dtype)
    if y.size == 0 or x.size == 0:
        y[...] = 0 if bias is None else bias.astype(dtype)[:, None, None]
        return y
    _ext.conv_forward(y, as_kernel_input(x, dtype), as_kernel_input(weight, dtype),
                      None if bias is None else as_kernel_input(bias, dtype), geom, algorithm)
    return y


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1, *,
                    algorithm="auto", flip=False, input_grad=True, out=None):
    """Gradients of :func:`conv2d` with respect to its input, weight and bias.

    Parameters
    ----------
    grad_out : array_like, shape (N, K, P, Q)
        Gradient of the loss with respect to conv2d's output.
    x, weight, stride, padding, dilation, groups, algorithm, flip
        As given to :func:`conv2d`. algorithm="winograd" computes grad_x by Winograd and
        the weight gradient by direct or im2col, as "auto" would without Winograd.
        With algorithm="auto", grad_weight may come from Winograd F(2x2, 3x3)
        (:func:`choose_weight_algorithm`).
    input_grad : bool
        False skips grad_x (returned as None): a network's first layer needs only the
        weight and bias gradients, and grad_x is often the larger part of the work.
    out : (grad_x, grad_weight, grad_bias), optional
        Arrays to write the gradients into, as NumPy's ``out=`` (None entries are
        allocated; grad_x's must be None when input_grad is False). Each must have its
        gradient's shape and dtype, be C-contiguous, writeable and overlap neither the
        inputs nor the other outputs (ValueError/TypeError otherwise). A training loop
        passes the same arrays every step, e.g. a layer's own gradient arrays.

    Returns
    -------
    (grad_x, grad_weight, grad_bias) : ndarrays of shapes (N, C, H, W), (K, C/groups, R, S)
        and (K,), in the dtype conv2d would compute in.
    """
    func = "conv2d_backward"
    requested = algorithm
    grad_out = as_array(grad_out, "grad_out", func, ndim=4)
    x = as_array(x, "x", func, ndim=4)
    weight = as_array(weight, "weight", func, ndim=4)
    geom, dtype, algorithm, w_used = _prepare(func, x, weight, stride, padding, dilation,
                                              groups, algorithm, flip, grad_out=grad_out)
    if grad_out.shape != geom.output_shape:
        raise ValueError(f"{func}: expected grad_out of shape {geom.output_shape} (the "
                         f"output of conv2d for x {geom.input_shape} and weight "
                         f"{geom.weight_shape}), got shape {grad_out.shape}")
    input_grad = as_bool(input_grad, "input_grad", func)
    grad_x, grad_w, grad_b = out_arrays(out, 3, func)
    if grad_x is not None and not input_grad:
        raise ValueError(f"{func}: out[0] (grad_x) must be None when input_grad is False")
    inputs = (("grad_out", grad_out), ("x", x), ("weight", weight))
    grad_x = check_out(grad_x, "out[0] (grad_x)", geom.input_shape, dtype, func, inputs)
    inputs += (("out[0] (grad_x)", grad_x),)
    grad_w = check_out(grad_w, "out[1] (grad_weight)", geom.weight_shape, dtype, func, inputs)
    inputs += (("out[1] (grad_weight)", grad_w),)
    grad_b = check_out(grad_b, "out[2] (grad_bias)", (geom.K,), dtype, func, inputs)
    if grad_x is None and input_grad:
        grad_x = np.empty(geom.input_shape, dtype=dtype)
    if grad_w is None:
        grad_w = np.empty(geom.weight_shape, dtype=dtype)
    if grad_b is None:
        grad_b = np.empty((geom.K,), dtype=dtype)
    if grad_out.size == 0 or x.size == 0 or weight.size == 0:
        if input_grad:
            grad_x[...] = 0
        grad_w[...] = 0
        grad_b[...] = 0
        return grad_x, grad_w, grad_b
    # Winograd computes the input gradient only; the weight gradient runs direct or
    # im2col, as "auto" would choose without Winograd.
    weight_algorithm = algorithm
    if algorithm == "winograd":
        weight_algorithm = _runnable(_choose_direct_or_im2col(geom, True), geom, dtype)
    if requested == "auto":      # the weight gradient may have its own Winograd kernel
        weight_algorithm = choose_weight_algorithm(geom, weight_algorithm)
    # flip: the kernels' weight gradient is of the flipped filters; flip it back after.
    grad_w_used = np.empty_like(grad_w) if flip else grad_w
    _ext.conv_backward(as_kernel_input(grad_out, dtype), as_kernel_input(x, dtype),
                       as_kernel_input(w_used, dtype), grad_x, grad_w_used, grad_b, geom,
                       algorithm, weight_algorithm)
    if flip:
        np.copyto(grad_w, grad_w_used[:, :, ::-1, ::-1])
    return grad_x, grad_w, grad_b
