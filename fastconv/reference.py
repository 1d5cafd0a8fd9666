"""The lecture's algorithms as plain loops: the readable specification of fastconv.

These functions are the oracle the tests compare the C kernels against, and the "naive
loops" baseline in the benchmarks. They favour clarity over speed: slide the window,
take the elementwise product-sum. They compute in float64.

Each has the name and the arguments of its fast counterpart (``reference.conv2d`` is
``fastconv.conv2d`` as loops): the arguments go through the same checks and
normalisation (:func:`fastconv._checks.conv_geometry`,
:func:`fastconv.pooling.pool_geometry`), so a call either works in both or fails in both
with the same message. Options that choose how the fast functions compute or where they
write (algorithm, out, argmax) have no loop to choose and are not taken.
"""
import numpy as np

from ._checks import as_array, conv_geometry
from .pooling import adaptive_geometry, pool_geometry

__all__ = ["conv2d", "conv2d_backward", "pad_image", "filter2d",
           "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward"]


def pad_image(x, padding, value=0.0):
    """Pad the two last axes of x by (top, bottom, left, right) with `value`."""
    top, bottom, left, right = padding
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    return np.pad(x, widths, mode="constant", constant_values=value)


def _conv_inputs(func, x, weight, stride, padding, dilation, groups):
    """(x, weight) as float64 arrays and the call's ConvGeometry, checked as conv2d does."""
    x = as_array(x, "x", func, ndim=4).astype(np.float64)
    weight = as_array(weight, "weight", func, ndim=4).astype(np.float64)
    return x, weight, conv_geometry(x.shape, weight.shape, stride, padding, dilation,
                                    groups, func)


def _window(x_padded, n, channels, p, q, R, S, stride, dilation):
    """The (channels, R, S) block of the padded input that output pixel (p, q) reads."""
    rows = p * stride[0] + dilation[0] * np.arange(R)
    cols = q * stride[1] + dilation[1] * np.arange(S)
    return x_padded[n, channels][:, rows][:, :, cols]


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n, k, p, q] = sum over c, r, s of x_padded[n, c, p*sh + r*dh, q*sw + s*dw]
    * w[k, c, r, s] + b[k]: cross-correlation, as in deep learning. Arguments as
    :func:`fastconv.conv2d`."""
    x, w, geom = _conv_inputs("reference.conv2d", x, weight, stride, padding, dilation,
                              groups)
    b = None if bias is None else np.asarray(bias, dtype=np.float64)
    stride, padding, dilation = geom.stride, geom.padding, geom.dilation
    N, K, P, Q = geom.output_shape
    Cg, R, S = w.shape[1:]
    Kg = K // geom.groups
    xp = pad_image(x, padding)
    y = np.zeros((N, K, P, Q))
    for n in range(N):
        for k in range(K):
            channels = slice((k // Kg) * Cg, (k // Kg + 1) * Cg)
            for p in range(P):
                for q in range(Q):
                    window = _window(xp, n, channels, p, q, R, S, stride, dilation)
                    y[n, k, p, q] = np.sum(window * w[k])
            if b is not None:
                y[n, k] += b[k]
    return y


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1):
    """(grad_x, grad_weight, grad_bias): every output pixel sends dy[n, k, p, q] * w[k]
    back to the window it read (dx) and dy[n, k, p, q] * window to the filter (dw).
    Arguments as :func:`fastconv.conv2d_backward`."""
    x, w, geom = _conv_inputs("reference.conv2d_backward", x, weight, stride, padding,
                              dilation, groups)
    dy = np.asarray(grad_out, dtype=np.float64)
    stride, padding, dilation = geom.stride, geom.padding, geom.dilation
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    Kg = K // geom.groups
    P, Q = dy.shape[2:]
    top, _, left, _ = padding
    xp = pad_image(x, padding)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for n in range(N):
        for k in range(K):
            c0 = (k // Kg) * Cg
            for p in range(P):
                for q in range(Q):
                    rows = p * stride[0] + dilation[0] * np.arange(R)
                    cols = q * stride[1] + dilation[1] * np.arange(S)
                    g = dy[n, k, p, q]
                    window = xp[n, c0:c0 + Cg][:, rows][:, :, cols]
                    dw[k] += g * window
                    dxp[n, c0:c0 + Cg][:, rows[:, None], cols[None, :]] += g * w[k]
    dx = dxp[:, :, top:top + H, left:left + W]
    db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db


# fastconv.filters border modes -> numpy.pad modes (numpy's names differ: see filters.py).
_NUMPY_PAD_MODES = {"constant": "constant", "reflect": "symmetric", "replicate": "edge",
                    "mirror": "reflect", "wrap": "wrap"}


def filter2d(image, kernel, mode="reflect"):
    """out[i, j] = sum over r, s of kernel[r, s] * padded[i + r, j + s]: the image (H, W)
    padded by R//2 rows above, (R-1)//2 below, S//2 columns left and (S-1)//2 right as
    the border mode says, then correlated with kernel (R, S) unflipped (same size out)."""
    x = np.asarray(image, dtype=np.float64)
    k = np.asarray(kernel, dtype=np.float64)
    H, W = x.shape
    R, S = k.shape
    widths = ((R // 2, (R - 1) // 2), (S // 2, (S - 1) // 2))
    xp = np.pad(x, widths, mode=_NUMPY_PAD_MODES[mode])
    out = np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            out[i, j] = np.sum(xp[i:i + R, j:j + S] * k)
    return out

def _pool_inputs(func, x, *args):
    """x as a float64 array and the call's PoolGeometry, checked as the pooling functions
    do (args: kernel_size, stride, padding, ... as pool_geometry takes them)."""
    x = as_array(x, "x", func, ndim=4).astype(np.float64)
    return x, pool_geometry(func, x.shape, *args)


def _max_window(plane, p, q, kernel_size, stride, padding, dilation):
    """(maximum, flat index h*W + w) of one window of a plane, PyTorch's way.

    Padding is -inf, so it never wins. A NaN is the maximum (the last NaN, when several);
    on ties the first maximum in row-major order keeps the index; a window of -inf reports
    its first pixel. A window lying wholly in the padding gives (-inf, None).
    """
    H, W = plane.shape
    best_value, best_index = -np.inf, None
    for r in range(kernel_size[0]):
        for s in range(kernel_size[1]):
            h = p * stride[0] - padding[0] + r * dilation[0]
            w = q * stride[1] - padding[1] + s * dilation[1]
            if not (0 <= h < H and 0 <= w < W):
                continue
            value = plane[h, w]
            if best_index is None:
                best_index = h * W + w
            if value > best_value or np.isnan(value):
                best_value, best_index = value, h * W + w
    return best_value, best_index


def _max_windows(x, output_hw, kernel_size, stride, padding, dilation):
    """((n, c, p, q), maximum, flat index) of every window of x, as _max_window gives them,
    for an output of output_hw = (P, Q) pixels per plane."""
    N, C = x.shape[:2]
    for n, c, p, q in np.ndindex(N, C, *output_hw):
        yield (n, c, p, q), *_max_window(x[n, c], p, q, kernel_size, stride, padding, dilation)


def _first_tap_at_or_after_zero(start, dilation):
    """The input position of a window's first tap that is not in the before-padding."""
    while start < 0:
        start += dilation
    return start


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """y, or (y, indices) with return_indices: y[n, c, p, q] is the maximum of window
    (p, q) of plane x[n, c] padded with -inf, and indices[n, c, p, q] its flat position
    h*W + w in the unpadded plane. Arguments as :func:`fastconv.max_pool2d`.

    A window lying wholly in the padding (possible only with dilation) gives -inf and the
    index PyTorch reports for it: its first tap past the top and left padding, which is
    outside the plane or not in the window.
    """
    x, geom = _pool_inputs("reference.max_pool2d", x, kernel_size, stride, padding, dilation,
                           ceil_mode)
    kernel_size, stride, padding, dilation = geom.kernel, geom.stride, geom.padding, \
        geom.dilation
    N, C, H, W = x.shape
    P, Q = geom.P, geom.Q
    y = np.empty((N, C, P, Q))
    indices = np.empty((N, C, P, Q), dtype=np.int64)
    for (n, c, p, q), value, index in _max_windows(x, (P, Q), kernel_size, stride, padding,
                                                   dilation):
        if index is None:
            h = _first_tap_at_or_after_zero(p * stride[0] - padding[0], dilation[0])
            w = _first_tap_at_or_after_zero(q * stride[1] - padding[1], dilation[1])
            index = h * W + w
        y[n, c, p, q] = value
        indices[n, c, p, q] = index
    return (y, indices) if return_indices else y


def max_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False):
    """grad_x: each window's gradient dy[n, c, p, q] goes, whole, to its maximum;
    overlapping windows add up. A window wholly in the padding (constant -inf) sends
    nothing. Arguments as :func:`fastconv.max_pool2d_backward`."""
    x, geom = _pool_inputs("reference.max_pool2d_backward", x, kernel_size, stride, padding,
                           dilation, ceil_mode)
    kernel_size, stride, padding, dilation = geom.kernel, geom.stride, geom.padding, \
        geom.dilation
    dy = np.asarray(grad_out, dtype=np.float64)
    N, C, H, W = x.shape
    dx = np.zeros((N, C, H * W))
    for (n, c, p, q), _, index in _max_windows(x, dy.shape[2:], kernel_size, stride, padding,
                                               dilation):
        if index is not None:
            dx[n, c, index] += dy[n, c, p, q]
    return dx.reshape(N, C, H, W)


def _avg_window(H, W, p, q, kernel_size, stride, padding, count_include_pad,
                divisor_override):
    """(rows, columns, divisor) of one average pooling window, PyTorch's way.

    The window starts at (p*sh - ph, q*sw - pw) and is cut at the end of the padding (a
    ceil_mode window may overhang it). Its divisor counts the padding it covers when
    count_include_pad, but never the overhang; divisor_override replaces it.
    """
    h_start, w_start = p * stride[0] - padding[0], q * stride[1] - padding[1]
    h_end = min(h_start + kernel_size[0], H + padding[0])
    w_end = min(w_start + kernel_size[1], W + padding[1])
    padded_size = (h_end - h_start) * (w_end - w_start)
    rows = range(max(h_start, 0), min(h_end, H))
    cols = range(max(w_start, 0), min(w_end, W))
    if divisor_override:
        divisor = divisor_override
    elif count_include_pad:
        divisor = padded_size
    else:
        divisor = len(rows) * len(cols)
    return rows, cols, divisor


def _avg_windows(input_hw, output_hw, kernel_size, stride, padding, count_include_pad,
                 divisor_override):
    """(p, q, rows, columns, divisor) of every output pixel, as _avg_window gives them."""
    H, W = input_hw
    for p, q in np.ndindex(*output_hw):
        yield (p, q, *_avg_window(H, W, p, q, kernel_size, stride, padding, count_include_pad,
                                  divisor_override))


def _avg_inputs(func, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                divisor_override):
    """_pool_inputs for average pooling, whose arguments have no dilation."""
    return _pool_inputs(func, x, kernel_size, stride, padding, 1, ceil_mode,
                        count_include_pad, divisor_override)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """y[n, c, p, q] = the sum of window (p, q) of x[n, c] (zero padding) / its divisor.
    Arguments as :func:`fastconv.avg_pool2d`."""
    x, geom = _avg_inputs("reference.avg_pool2d", x, kernel_size, stride, padding, ceil_mode,
                          count_include_pad, divisor_override)
    kernel_size, stride, padding = geom.kernel, geom.stride, geom.padding
    divisor_override = geom.divisor_override
    N, C, H, W = x.shape
    P, Q = geom.P, geom.Q
    y = np.zeros((N, C, P, Q))
    for p, q, rows, cols, divisor in _avg_windows((H, W), (P, Q), kernel_size, stride, padding,
                                                  count_include_pad, divisor_override):
        if len(rows) and len(cols):
            y[:, :, p, q] = x[:, :, rows.start:rows.stop, cols.start:cols.stop].sum(
                axis=(2, 3)) / divisor
    return y


def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """grad_x: dy[n, c, p, q] / divisor added to every input pixel of window (p, q).
    Arguments as :func:`fastconv.avg_pool2d_backward`."""
    x, geom = _avg_inputs("reference.avg_pool2d_backward", x, kernel_size, stride, padding,
                          ceil_mode, count_include_pad, divisor_override)
    kernel_size, stride, padding = geom.kernel, geom.stride, geom.padding
    divisor_override = geom.divisor_override
    dy = np.asarray(grad_out, dtype=np.float64)
    N, C, H, W = x.shape
    P, Q = dy.shape[2:]
    dx = np.zeros((N, C, H, W))
    for p, q, rows, cols, divisor in _avg_windows((H, W), (P, Q), kernel_size, stride, padding,
                                                  count_include_pad, divisor_override):
        dx[:, :, rows.start:rows.stop, cols.start:cols.stop] += \
            (dy[:, :, p, q] / divisor)[:, :, None, None]
    return dx


def _adaptive_range(i, n_out, n_in):
    """Output i of n_out averages inputs [floor(i*n_in/n_out), ceil((i+1)*n_in/n_out))."""
    return slice((i * n_in) // n_out, -(-((i + 1) * n_in) // n_out))


def _adaptive_windows(input_hw, output_hw):
    """(i, j, rows, columns) of every output pixel, rows and columns as slices."""
    (H, W), (P, Q) = input_hw, output_hw
    for i, j in np.ndindex(P, Q):
        yield i, j, _adaptive_range(i, P, H), _adaptive_range(j, Q, W)


def _adaptive_inputs(func, x, output_size):
    """x as a float64 array and the output size (P, Q), checked as adaptive_avg_pool2d
    does (None keeps an axis's size)."""
    x = as_array(x, "x", func, ndim=4).astype(np.float64)
    geom = adaptive_geometry(func, x.shape, output_size)
    return x, (geom.P, geom.Q)


def adaptive_avg_pool2d(x, output_size):
    """y[n, c, i, j] = the mean of x[n, c] over rows and columns _adaptive_range(i), (j).
    Arguments as :func:`fastconv.adaptive_avg_pool2d`."""
    x, output_size = _adaptive_inputs("reference.adaptive_avg_pool2d", x, output_size)
    N, C, H, W = x.shape
    y = np.zeros((N, C, *output_size))
    for i, j, rows, cols in _adaptive_windows((H, W), output_size):
        y[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
    return y


def adaptive_avg_pool2d_backward(grad_out, x, output_size):
    """grad_x: dy[n, c, i, j] spread evenly over the window it averaged. Arguments as
    :func:`fastconv.adaptive_avg_pool2d_backward`."""
    x, output_size = _adaptive_inputs("reference.adaptive_avg_pool2d_backward", x,
                                      output_size)
    dy = np.asarray(grad_out, dtype=np.float64)
    N, C, H, W = x.shape
    dx = np.zeros((N, C, H, W))
    for i, j, rows, cols in _adaptive_windows((H, W), output_size):
        size = (rows.stop - rows.start) * (cols.stop - cols.start)
        dx[:, :, rows, cols] += (dy[:, :, i, j] / size)[:, :, None, None]
    return dx
