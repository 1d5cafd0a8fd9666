"""Argument checking and normalisation, done once, in Python, before anything enters C.

Every error names the function, the argument, what was given and what was expected.
"""
import numbers
import operator
from dataclasses import dataclass

import numpy as np

from .sizing import output_length

ALGORITHMS = ("auto", "autotune", "direct", "im2col", "winograd", "depthwise")

# Largest stride, padding, dilation or group count accepted. No image is that large, and
# the bound keeps every product of the kernels' int64 index math far from overflow (a
# stride of 2**70 would not even fit the C struct).
MAX_HYPERPARAMETER = 2**31 - 1


def as_integer(value):
    """value as a Python int when it is an integer (anything operator.index takes), else
    None. A bool is not an integer here: True is no size, stride or divisor."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def as_int_tuple(value, name, length, func, minimum, maximum=MAX_HYPERPARAMETER):
    """An int or a sequence of `length` ints, each in [minimum, maximum], as a tuple."""
    if type(value) is int and minimum <= value <= maximum:
        return (value,) * length   # the common case, kept cheap for small per-layer calls
    if isinstance(value, (tuple, list)):
        items = tuple(value)
        if len(items) != length:
            raise ValueError(f"{func}: {name} must be an int or a tuple of {length} ints, "
                             f"got {value!r}")
    else:
        items = (value,) * length
    out = []
    for item in items:
        item = as_integer(item)
        if item is None:
            raise TypeError(f"{func}: {name} must be an int or a tuple of {length} ints, "
                            f"got {value!r}")
        if item < minimum:
            raise ValueError(f"{func}: {name} must be >= {minimum}, got {value!r}")
        if item > maximum:
            raise ValueError(f"{func}: {name} must be <= {maximum}, got {value!r}")
        out.append(item)
    return tuple(out)


def result_dtype(func, **arrays):
    """The dtype a call computes in: float64 when any input is float64 (or wider), integer
    or bool, else float32.

    Integer and bool inputs compute in float64 (as NumPy's true division does); float16
    computes in float32, alone or mixed with float32 (a float16 input converts to float32
    exactly). Complex, object, string and other dtypes raise TypeError.
    """
    dtypes = []
    for name, a in arrays.items():
        if a is None:
            continue
        kind = a.dtype.kind
        if kind == "f":
            dtypes.append(np.float32 if a.dtype.itemsize <= 4 else np.float64)
        elif kind in "biu":
            dtypes.append(np.float64)
        else:
            raise TypeError(f"{func}: {name} must be a real (float, integer or bool) array, "
                            f"got dtype {a.dtype}")
    return np.dtype(np.float64 if np.float64 in dtypes else np.float32)


def as_array(value, name, func, ndim=None):
    """np.asarray without copying, with a clear error for ragged or wrong-rank input."""
    try:
        a = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{func}: {name} must be an array-like of numbers ({exc})") from None
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{func}: expected {name} to be a {ndim}-D array, got {a.ndim}-D "
                         f"array of shape {a.shape}")
    return a


def as_kernel_input(a, dtype):
    """A C-contiguous, aligned array of `dtype` for the C kernels; a copy only when needed.
    The kernels never write to it, so the caller's array is never modified. Alignment
    matters: a float* that is not a multiple of 4 bytes is undefined behaviour in C (and
    np.ascontiguousarray passes an unaligned buffer through)."""
    if type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous and a.flags.aligned:
        return a          # the common case, without np.require's microseconds per call
    return np.require(a, dtype=dtype, requirements=("C_CONTIGUOUS", "ALIGNED"))


def out_arrays(out, count, func):
    """`out` as a tuple of `count` entries (arrays or None), as NumPy ufuncs take it: one
    array (or None) when the function has a single result, else a tuple of `count`."""
    if out is None:
        return (None,) * count
    if isinstance(out, tuple):
        if len(out) != count:
            raise ValueError(f"{func}: out must be a tuple of {count} arrays (or None "
                             f"entries), one per result, got a tuple of {len(out)}")
        return out
    if count != 1:
        raise TypeError(f"{func}: out must be a tuple of {count} arrays (or None entries), "
                        f"one per result, got {type(out).__name__}")
    return (out,)


def check_out(out, name, shape, dtype, func, inputs=()):
    """`out` if it can take a result of `shape` and `dtype` (None passes through).

    Like NumPy's ``out=``, the result is written into the caller's array; fastconv's
    kernels also need it C-contiguous, aligned and writeable, and separate from every
    input in `inputs` ((name, array or None) pairs): the kernels read inputs while they
    write the result, so an overlap would corrupt it.
    """
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{func}: {name} must be a NumPy array, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{func}: {name} must have dtype {np.dtype(dtype)} (the dtype "
                        f"{func} computes in here), got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{func}: expected {name} of shape {tuple(shape)}, got shape "
                         f"{out.shape}")
    if not (out.flags.c_contiguous and out.flags.aligned):
        raise ValueError(f"{func}: {name} must be C-contiguous and aligned (e.g. from "
                         f"np.empty)")
    if not out.flags.writeable:
        raise ValueError(f"{func}: {name} is read-only")
    for other_name, other in inputs:
        if other is not None and np.may_share_memory(out, other):
            raise ValueError(f"{func}: {name} overlaps {other_name} in memory; give a "
                             f"separate array")
    return out


@dataclass(frozen=True)
class ConvGeometry:
    """Everything the C problem struct holds, derived once from the arguments."""
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: tuple        # (h, w)
    padding: tuple       # (top, bottom, left, right)
    dilation: tuple      # (h, w)
    groups: int
    P: int
    Q: int

    @property
    def output_shape(self):
        return (self.N, self.K, self.P, self.Q)

    @property
    def weight_shape(self):
        return (self.K, self.C // self.groups, self.R, self.S)

    @property
    def input_shape(self):
        return (self.N, self.C, self.H, self.W)

    def flops(self):
        """Multiply-adds x 2 of the forward pass."""
        return 2 * self.N * self.K * self.P * self.Q * (self.C // self.groups) * self.R * self.S


def normalize_padding(padding, kernel, dilation, stride, func):
    """(top, bottom, left, right) from an int, (h, w), (t, b, l, r), "valid" or "same"."""
    if isinstance(padding, str):
        word = padding.lower()
        if word == "valid":
            return (0, 0, 0, 0)
        if word == "same":
            if stride != (1, 1):
                raise ValueError(f"{func}: padding='same' is not supported for strided "
                                 f"convolutions (stride={stride}); give explicit padding")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                # As PyTorch: the odd pixel of an even kernel goes to the bottom/right.
                pads += [total // 2, total - total // 2]
            return tuple(pads)
        raise ValueError(f"{func}: padding must be an int, a tuple, 'valid' or 'same', "
                         f"got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        return as_int_tuple(padding, "padding", 4, func, 0)
    ph, pw = as_int_tuple(padding, "padding", 2, func, 0)
    return (ph, ph, pw, pw)


# conv_geometry's results by their arguments, for arguments of plain types (see
# _geometry_key): a layer calls it with the same ones at every step, and the checks cost
# as much as a small convolution. Emptied when it reaches GEOMETRY_CACHE_SIZE entries.
GEOMETRY_CACHE_SIZE = 4096
_geometries = {}


def _geometry_key(*arguments):
    """conv_geometry's arguments as a key, lists made tuples, or None where one is not an
    int, a str, or a tuple or list of ints (exactly those types: a bool or a float equal to
    a valid int must still meet the checks that refuse it)."""
    key = []
    for value in arguments:
        kind = type(value)
        if kind is tuple or kind is list:
            for item in value:
                if type(item) is not int:
                    return None
            key.append(tuple(value))
        elif kind is int or kind is str:
            key.append(value)
        else:
            return None
    return tuple(key)


def conv_geometry(x_shape, w_shape, stride, padding, dilation, groups, func):
    """Check a conv2d call's shapes and hyper-parameters; return its ConvGeometry (the one
    made before for the same arguments)."""
    key = _geometry_key(x_shape, w_shape, stride, padding, dilation, groups)
    geom = _geometries.get(key) if key is not None else None
    if geom is None:
        geom = _checked_geometry(x_shape, w_shape, stride, padding, dilation, groups, func)
        if key is not None:
            if len(_geometries) >= GEOMETRY_CACHE_SIZE:
                _geometries.clear()
            _geometries[key] = geom
    return geom


def _checked_geometry(x_shape, w_shape, stride, padding, dilation, groups, func):
    N, C, H, W = x_shape
    K, Cg, R, S = w_shape
    stride = as_int_tuple(stride, "stride", 2, func, 1)
    dilation = as_int_tuple(dilation, "dilation", 2, func, 1)
    (groups,) = as_int_tuple(groups, "groups", 1, func, 1)
    if C % groups != 0:
        raise ValueError(f"{func}: groups={groups} must divide the input channels, "
                         f"but x has {C} channels (x shape {tuple(x_shape)})")
    if K % groups != 0:
        raise ValueError(f"{func}: groups={groups} must divide the number of filters, "
                         f"but weight has {K} (weight shape {tuple(w_shape)})")
    if Cg * groups != C:
        raise ValueError(f"{func}: expected weight of shape ({K}, {C // groups}, {R}, {S}) "
                         f"for x with {C} channels and groups={groups}, got weight shape "
                         f"{tuple(w_shape)} ({Cg * groups} input channels)")
    if R < 1 or S < 1:
        raise ValueError(f"{func}: the kernel must be at least 1x1, got weight shape "
                         f"{tuple(w_shape)}")
    padding = normalize_padding(padding, (R, S), dilation, stride, func)
    P = output_length(H, R, stride[0], padding[0:2], dilation[0])
    Q = output_length(W, S, stride[1], padding[2:4], dilation[1])
    if P < 1 or Q < 1:
        raise ValueError(
            f"{func}: the kernel ({R}x{S}, dilation {dilation}) is larger than the padded "
            f"input ({H + padding[0] + padding[1]}x{W + padding[2] + padding[3]} from input "
            f"{H}x{W} and padding {padding}); expected a kernel that fits")
    return ConvGeometry(N, C, H, W, K, R, S, stride, padding, dilation, groups, P, Q)


def as_count(value, name, func, minimum=1, maximum=MAX_HYPERPARAMETER):
    """An integer argument (batch size, divisor, ...) in [minimum, maximum] as an int:
    TypeError for a bool or a non-integer, ValueError outside the range."""
    count = as_integer(value)
    if count is None:
        raise TypeError(f"{func}: {name} must be an int, got {type(value).__name__} "
                        f"{value!r}")
    if not minimum <= count <= maximum:
        raise ValueError(f"{func}: {name} must be from {minimum} to {maximum}, got {count}")
    return count


def as_real_input(value, name, func, dtype):
    """A layer's input as an array of `dtype`: TypeError for complex, object, string and
    other non-real dtypes (which a cast would silently drop or garble)."""
    a = as_array(value, name, func)
    result_dtype(func, **{name: a})
    return a.astype(dtype, copy=False)


def as_bool(value, name, func):
    """A flag given as a bool (NumPy's too) or the integers 0 and 1."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{func}: {name} must be a bool, got {type(value).__name__} {value!r}")


def as_real_number(value, name, func, low=None, high=None, low_open=False):
    """A finite real number (not a bool) in [low, high] (low excluded when low_open) as a
    float: TypeError for a non-number, ValueError outside the range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{func}: {name} must be a real number, got "
                        f"{type(value).__name__} {value!r}")
    number = float(value)
    too_low = low is not None and (number <= low if low_open else number < low)
    if not np.isfinite(number) or too_low or (high is not None and number > high):
        lower = "" if low is None else f"{'>' if low_open else '>='} {low}"
        upper = "" if high is None else f"<= {high}"
        expected = " and ".join(part for part in ("finite", lower, upper) if part)
        raise ValueError(f"{func}: {name} must be {expected}, got {value!r}")
    return number
