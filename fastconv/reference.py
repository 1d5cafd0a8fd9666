"""The lecture's algorithms as plain loops: the readable specification of fastconv.

These functions are the oracle the tests compare the C kernels against, and the "naive
loops" baseline in the benchmarks. They favour clarity over speed: slide the window,
take the elementwise product-sum. They compute in float64 and take the same normalised
arguments as the C kernels: stride (sh, sw), padding (top, bottom, left, right),
dilation (dh, dw).
"""
import numpy as np

from .sizing import conv_output_size

__all__ = ["conv2d_forward", "conv2d_backward", "pad_image", "filter2d"]


def pad_image(x, padding, value=0.0):
    """Pad the two last axes of x by (top, bottom, left, right) with `value`."""
    top, bottom, left, right = padding
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    return np.pad(x, widths, mode="constant", constant_values=value)


def _output_hw(x_shape, w_shape, stride, padding, dilation):
    H, W = x_shape[2:]
    R, S = w_shape[2:]
    P = conv_output_size(H, R, stride[0], padding[0:2], dilation[0])
    Q = conv_output_size(W, S, stride[1], padding[2:4], dilation[1])
    return P, Q


def _window(x_padded, n, channels, p, q, R, S, stride, dilation):
    """The (channels, R, S) block of the padded input that output pixel (p, q) reads."""
    rows = p * stride[0] + dilation[0] * np.arange(R)
    cols = q * stride[1] + dilation[1] * np.arange(S)
    return x_padded[n, channels][:, rows][:, :, cols]


def conv2d_forward(x, w, b=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
                   groups=1):
    """y[n, k, p, q] = sum over c, r, s of x_padded[n, c, p*sh + r*dh, q*sw + s*dw]
    * w[k, c, r, s] + b[k]: cross-correlation, as in deep learning."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    N, C = x.shape[:2]
    K, Cg, R, S = w.shape
    Kg = K // groups
    P, Q = _output_hw(x.shape, w.shape, stride, padding, dilation)
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


def conv2d_backward(dy, x, w, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
                    groups=1):
    """(dx, dw, db): every output pixel sends dy[n, k, p, q] * w[k] back to the window it
    read (dx) and dy[n, k, p, q] * window to the filter (dw)."""
    dy = np.asarray(dy, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    Kg = K // groups
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
