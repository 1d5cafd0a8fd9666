"""Sizes and parameter counts: the one home of these formulas (the lecture's output size,
parameter sharing of conv layers and the cost of dense layers).

Every kernel's shape code (convolution and pooling) gets its output size from
:func:`conv_output_size`, or from :func:`output_length` when it reports a kernel that
does not fit in its own words.
"""
import operator

__all__ = ["conv_output_size", "conv_params", "dense_params"]


def _int(value, name, minimum):
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _one_or_pair(value, name, minimum, pair):
    """An int (used for both entries) or a sequence of two ints, each >= minimum, as a
    2-tuple; `pair` names the two entries in the error message."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or {pair}, got {value!r}")
        return tuple(_int(v, name, minimum) for v in value)
    value = _int(value, name, minimum)
    return value, value


def conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    """Output length along one axis of a convolution or pooling window.

    ``floor((n + 2p - d*(f-1) - 1) / s) + 1``, which for dilation 1 is the lecture's
    ``floor((n + 2p - f) / s) + 1``.

    Parameters
    ----------
    n : int
        Input length.
    kernel_size : int
        Filter (window) length f.
    stride : int
        Step s between windows.
    padding : int or (int, int)
        Zero padding p on each side, or (before, after) for asymmetric padding.
    dilation : int
        Spacing d between filter taps.
    ceil_mode : bool
        Round up instead of down (pooling), dropping a last window that would start in
        the right/bottom padding, as PyTorch does.

    Returns
    -------
    int
        The output length, at least 1.

    Raises
    ------
    ValueError
        When the (dilated) kernel does not fit the padded input: no output at all.

    Examples
    --------
    >>> conv_output_size(6, 3)
    4
    >>> conv_output_size(6, 3, padding=1)
    6
    >>> conv_output_size(37, 5, stride=2)
    17
    """
    out = output_length(n, kernel_size, stride, padding, dilation, ceil_mode)
    if out < 1:
        before, after = _one_or_pair(padding, "padding", 0, "(before, after)")
        raise ValueError(f"conv_output_size: the kernel (kernel_size={kernel_size}, dilation="
                         f"{dilation}: {dilation * (kernel_size - 1) + 1} pixels) does not fit "
                         f"the padded input (n={n}, padding={padding!r}: "
                         f"{n + before + after} pixels); expected a kernel that fits")
    return out


def output_length(n, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    """conv_output_size without the fit check: 0 or less when the kernel does not fit.
    For the callers that report that case in their own words (conv2d, pooling)."""
    n = _int(n, "n", 0)
    f = _int(kernel_size, "kernel_size", 1)
    s = _int(stride, "stride", 1)
    d = _int(dilation, "dilation", 1)
    before, after = _one_or_pair(padding, "padding", 0, "(before, after)")
    span = n + before + after - d * (f - 1) - 1   # last start position of a window
    if not ceil_mode:
        return span // s + 1
    # Rounding up also when span < 0, as PyTorch does: a window longer than the padded
    # input still gives one output (n=1, f=3, s=3 -> 1) if its stride could reach past it.
    out = -(-span // s) + 1
    # A window may overhang the right padding, but must start inside the input or the
    # left padding (PyTorch's rule).
    if (out - 1) * s >= n + before:
        out -= 1
    return out


def conv_params(kernel_size, in_channels, out_channels, bias=True):
    """Learnable parameters of a conv layer: ``(f*f*n_c + 1) * n_filters``.

    kernel_size may be an int (square) or (height, width). The count does not depend on
    the image size: this is parameter sharing.

    >>> conv_params(3, 3, 10)
    280
    """
    kh, kw = _one_or_pair(kernel_size, "kernel_size", 1, "(height, width)")
    c = _int(in_channels, "in_channels", 1)
    k = _int(out_channels, "out_channels", 1)
    return (kh * kw * c + (1 if bias else 0)) * k


def dense_params(n_in, n_out, bias=True):
    """Learnable parameters of a fully connected layer: ``n_in * n_out (+ n_out)``.

    >>> dense_params(64 * 64 * 3, 1000)
    12289000
    """
    n_in = _int(n_in, "n_in", 1)
    n_out = _int(n_out, "n_out", 1)
    return n_in * n_out + (n_out if bias else 0)
