"""A private NumPy stand-in for fastconv.pooling (issue 3) until the C kernels land.

Same signatures as the real functions, but only the case LeNet-5 needs: square, non-
overlapping windows (kernel_size == stride), no padding, no dilation, floor mode. Tap
(i, j) of every window is the strided view ``x[:, :, i::k, j::k]``, so each pooling is a
loop over the k*k taps.
"""
import numpy as np


def _taps(x, kernel_size, stride, padding, dilation, ceil_mode, func):
    """[(i, j, view (N, C, P, Q) of tap (i, j) of every window)] and k."""
    k = kernel_size if isinstance(kernel_size, int) else kernel_size[0]
    stride = k if stride is None else stride
    square = (k, (k, k), [k, k])
    if (kernel_size not in square or stride not in square or padding not in (0, (0, 0))
            or dilation not in (1, (1, 1)) or ceil_mode):
        raise NotImplementedError(f"{func}: this stand-in only supports kernel_size == "
                                  f"stride, no padding, no dilation, floor mode")
    P, Q = x.shape[2] // k, x.shape[3] // k
    return [(i, j, x[:, :, i::k, j::k][:, :, :P, :Q]) for i in range(k) for j in range(k)], k


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    taps, k = _taps(x, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
    y = taps[0][2].copy()
    for _, _, tap in taps[1:]:
        np.maximum(y, tap, out=y)
    if not return_indices:
        return y
    # The first tap holding the maximum, as a flat index into the H x W plane (PyTorch's).
    offset = np.full(y.shape, -1, dtype=np.int64)
    for i, j, tap in taps:
        offset = np.where((tap == y) & (offset < 0), i * k + j, offset)
    P, Q = y.shape[2:]
    rows = np.arange(P)[:, None] * k + offset // k
    cols = np.arange(Q)[None, :] * k + offset % k
    return y, rows * x.shape[3] + cols


def max_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, indices=None):
    if indices is None:
        _, indices = max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, True)
    N, C, H, W = x.shape
    grad_x = np.zeros((N, C, H * W), dtype=grad_out.dtype)
    # Windows do not overlap: every index appears at most once per plane.
    np.put_along_axis(grad_x, indices.reshape(N, C, -1), grad_out.reshape(N, C, -1), axis=2)
    return grad_x.reshape(N, C, H, W)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    taps, k = _taps(x, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    y = sum(tap for _, _, tap in taps)
    return y / (divisor_override or k * k)


def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    grad_x = np.zeros(x.shape, dtype=grad_out.dtype)
    taps, k = _taps(grad_x, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d_backward")
    for _, _, tap in taps:
        tap[...] = grad_out / (divisor_override or k * k)
    return grad_x
