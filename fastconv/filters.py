"""Edge detection: Sobel, Scharr and Prewitt derivatives, gradient magnitude and direction,
and the Canny edge detector, on fastconv's single-plane filter kernel (src/filter2d.c).

Conventions
-----------
Input
    A 2-D grayscale image (H, W); an RGB image (H, W, 3) or RGBA image (H, W, 4) (what
    Pillow's ``np.asarray(img)`` gives), converted to luminance ``0.299 R + 0.587 G +
    0.114 B`` (ITU-R BT.601, as OpenCV and Pillow) with any alpha channel dropped; a batch
    (N, H, W) of grayscale images or (N, H, W, 3) / (N, H, W, 4) of colour images. A 3-D
    array whose last axis has length 3 or 4 is one colour image (a batch of grayscale
    images 3 or 4 pixels wide would read as one; filter such images one at a time). Values
    are used as given: a uint8 image is *not* rescaled to [0, 1]. float16 and float32
    compute in float32; float64, integer and bool in float64, unless ``dtype`` asks for
    float32 or float64. A uint8 (or bool) grayscale image is read as it is, each row
    converted as the filter reaches it: no float copy of the image is made. The input is
    never modified.
Axes
    ``axis=0`` is the derivative down the rows (y, it finds *horizontal* edges);
    ``axis=1`` along the columns (x, it finds *vertical* edges). In a batch the axes are
    those of each image. scikit-image's ``sobel_h`` is ``axis=0``, ``sobel_v`` is ``axis=1``;
    OpenCV's ``Sobel(img, ddepth, 1, 0)`` (dx=1) is ``axis=1``.
Sign
    A derivative is positive where the image gets brighter with increasing index:
    ``sobel(img, axis=1)`` is right minus left, as OpenCV, scikit-image and ``np.gradient``.
    The lecture's filters (:data:`VERTICAL_EDGE`, :data:`SOBEL_VERTICAL`, ...) are written
    the other way round, left minus right (a bright-to-dark edge gives +30 in the lecture's
    example), so ``sobel(img, axis=1)`` equals ``filter2d(img, -SOBEL_VERTICAL)``.
Normalisation
    ``normalize=False`` (default) applies the integer kernels, as OpenCV does:
    Sobel [1, 2, 1] x [-1, 0, 1], Scharr [3, 10, 3] x [-1, 0, 1], Prewitt [1, 1, 1] x
    [-1, 0, 1]. ``normalize=True`` divides by the sum of the smoothing weights (4, 16, 3), as
    scikit-image does, so a ramp rising by 1 per pixel gives 2 (the central difference).
    The magnitude is ``sqrt(gx**2 + gy**2)``; scikit-image's ``sobel(image)`` divides that
    by ``sqrt(2)``. So for a float image ``skimage.filters.sobel(img)`` equals
    ``fastconv.filters.sobel(img, normalize=True) / sqrt(2)``, and for a uint8 image
    scikit-image first divides by 255.
Borders (``mode``)
    =========  =======================  ====================  ==================
    fastconv   pads ``a b c d`` as      scipy / scikit-image  OpenCV
    =========  =======================  ====================  ==================
    constant   ``0 0 | a b c d | 0 0``  constant (cval=0)     BORDER_CONSTANT
    reflect    ``b a | a b c d | d c``  reflect               BORDER_REFLECT
    replicate  ``a a | a b c d | d d``  nearest               BORDER_REPLICATE
    mirror     ``c b | a b c d | c b``  mirror                BORDER_REFLECT_101
    wrap       ``c d | a b c d | a b``  wrap                  BORDER_WRAP
    =========  =======================  ====================  ==================

    "nearest" is accepted for "replicate". The default "reflect" is scikit-image's; OpenCV's
    default (BORDER_DEFAULT) is "mirror". (``numpy.pad`` calls reflect "symmetric" and
    mirror "reflect".)

Correlation, not convolution: every filter here slides its kernel unflipped, like
:func:`fastconv.conv2d`; ``filter2d(..., flip=True)`` convolves.
"""
import math
import numbers

import numpy as np

from . import _ext
from ._checks import as_array, as_bool, as_kernel_input, result_dtype

__all__ = [
    "LECTURE_IMAGE", "VERTICAL_EDGE", "HORIZONTAL_EDGE",
    "SOBEL_VERTICAL", "SOBEL_HORIZONTAL", "SCHARR_VERTICAL", "SCHARR_HORIZONTAL",
    "PREWITT_VERTICAL", "PREWITT_HORIZONTAL",
    "BORDER_MODES", "OPERATORS",
    "edge_kernel", "filter2d", "gaussian", "rgb_to_gray",
    "sobel", "scharr", "prewitt", "gradient", "canny", "synthetic_image",
]


def _constant(rows):
    a = np.array(rows, dtype=np.int64)
    a.setflags(write=False)
    return a


# The lecture's 6x6 example image: VERTICAL_EDGE finds its edges (the lecture's worked
# edge-detection example, which fastconv.cli.explain walks through).
LECTURE_IMAGE = _constant([[3, 0, 1, 2, 7, 4],
                           [1, 5, 8, 9, 3, 1],
                           [2, 7, 2, 5, 1, 3],
                           [0, 1, 3, 1, 7, 8],
                           [4, 2, 1, 6, 2, 8],
                           [2, 4, 5, 2, 3, 9]])

# The lecture's filters, in the lecture's sign: the vertical filters give left minus right,
# the horizontal ones top minus bottom.
VERTICAL_EDGE = _constant([[1, 0, -1], [1, 0, -1], [1, 0, -1]])
HORIZONTAL_EDGE = _constant([[1, 1, 1], [0, 0, 0], [-1, -1, -1]])
SOBEL_VERTICAL = _constant([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
SOBEL_HORIZONTAL = _constant(SOBEL_VERTICAL.T)
SCHARR_VERTICAL = _constant([[3, 0, -3], [10, 0, -10], [3, 0, -3]])
SCHARR_HORIZONTAL = _constant(SCHARR_VERTICAL.T)
PREWITT_VERTICAL = VERTICAL_EDGE
PREWITT_HORIZONTAL = HORIZONTAL_EDGE

#: Border modes, in the order of the C enum fc_border.
BORDER_MODES = _ext.BORDER_MODES
_MODE_ALIASES = {"nearest": "replicate"}

#: The smoothing weights of each 3x3 derivative operator (the derivative is [-1, 0, 1]).
OPERATORS = {"sobel": (1, 2, 1), "scharr": (3, 10, 3), "prewitt": (1, 1, 1)}

# ITU-R BT.601 luma weights, as OpenCV's cvtColor and Pillow's convert("L").
_LUMA = (0.299, 0.587, 0.114)
# Lengths of a colour image's last axis: RGB, and RGBA whose alpha the filters drop (as
# Pillow's convert("L") does).
_COLOUR_CHANNELS = (3, 4)
# Largest Gaussian kernel radius, truncate x sigma, in pixels: the kernel has 2 radius + 1
# taps, and a wider one is far beyond any image it could blur.
MAX_GAUSSIAN_RADIUS = 2**20


# ---- argument checks --------------------------------------------------------------------

def _border(mode, func):
    """The index into BORDER_MODES of a mode name."""
    if not isinstance(mode, str):
        raise TypeError(f"{func}: mode must be a string, one of {BORDER_MODES}, got {mode!r}")
    name = _MODE_ALIASES.get(mode.lower(), mode.lower())
    if name not in BORDER_MODES:
        raise ValueError(f"{func}: mode must be one of {BORDER_MODES} (or 'nearest'), "
                         f"got {mode!r}")
    return BORDER_MODES.index(name)


def _axis(axis, func):
    """0 (rows, y), 1 (columns, x) or None; -2 and -1 mean 0 and 1."""
    if axis is None:
        return None
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{func}: axis must be 0, 1 or None, got {axis!r}")
    if axis not in (0, 1, -1, -2):
        raise ValueError(f"{func}: axis must be 0 (rows), 1 (columns) or None (magnitude), "
                         f"got {axis!r}")
    return int(axis) % 2


def _operator(operator, func):
    if not isinstance(operator, str) or operator.lower() not in OPERATORS:
        raise ValueError(f"{func}: operator must be one of {tuple(OPERATORS)}, "
                         f"got {operator!r}")
    return operator.lower()


def _real(value, name, func, minimum=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{func}: {name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{func}: {name} must be finite, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{func}: {name} must be >= {minimum}, got {value!r}")
    return value


def _compute_dtype(dtype, func, **arrays):
    """The dtype a filter computes in and returns: `dtype` when given (float32 or float64),
    else that of the arrays together (result_dtype, which also checks their dtypes)."""
    default = result_dtype(func, **arrays)
    if dtype is None:
        return default
    try:
        chosen = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{func}: dtype must be float32, float64 or None, got {dtype!r}") \
            from None
    if chosen not in (np.float32, np.float64):
        raise ValueError(f"{func}: dtype must be float32, float64 or None, got {dtype!r}")
    return chosen


def _planes(image, func, kernel=None, dtype=None):
    """(planes, compute dtype, output shape, input dtype): the image as C-contiguous planes
    (N, H, W), uint8 and bool grayscale images as uint8 (the filters read them as they
    are) and any other in the compute dtype (`dtype`, or that of image and kernel
    together); the output shape is (H, W) or (N, H, W)."""
    a = as_array(image, "image", func)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{func}: image must be a real (float, integer or bool) array, "
                        f"got dtype {a.dtype}")
    dtype = _compute_dtype(dtype, func, image=a, kernel=kernel)
    rgb, out_shape = _image_layout(a.shape, func)
    if rgb:
        gray, read_as = _luminance(a, dtype), dtype
    elif a.dtype in (np.uint8, np.bool_):
        gray, read_as = a.view(np.uint8), np.uint8
    else:
        gray, read_as = a, dtype
    n_planes = out_shape[0] if len(out_shape) == 3 else 1
    planes = as_kernel_input(gray, read_as).reshape((n_planes,) + out_shape[-2:])
    return planes, dtype, out_shape, a.dtype


def _image_layout(shape, func):
    """(whether an image of this shape is colour, the shape of its result): (H, W) and
    (N, H, W) planes, or colour images with a last axis of 3 (RGB) or 4 (RGBA)."""
    rgb = len(shape) in (3, 4) and shape[-1] in _COLOUR_CHANNELS
    if len(shape) == 2 or (len(shape) == 3 and rgb):
        return rgb, tuple(shape[:2])
    if len(shape) == 3 or (len(shape) == 4 and rgb):
        return rgb, tuple(shape[:3])
    raise ValueError(f"{func}: expected image of shape (H, W), (H, W, 3) RGB, (H, W, 4) "
                     f"RGBA, (N, H, W), (N, H, W, 3) or (N, H, W, 4), got shape "
                     f"{tuple(shape)}")


def _luminance(rgb, dtype):
    """Luminance of (..., 3) RGB or (..., 4) RGBA values (alpha dropped), summed channel
    by channel: each pixel's value depends on that pixel alone (a product with the weight
    vector may round differently with the array's shape, and a Dask chunk must get the
    whole image's bits)."""
    weights = np.asarray(_LUMA, dtype=dtype)
    gray = rgb[..., 0].astype(dtype) * weights[0]
    gray += rgb[..., 1].astype(dtype, copy=False) * weights[1]
    gray += rgb[..., 2].astype(dtype, copy=False) * weights[2]
    return gray


def _value_range(dtype):
    """1 for float and bool images, the largest value for integer ones (255 for uint8)."""
    return float(np.iinfo(dtype).max) if dtype.kind in "iu" else 1.0


def _filter_input(pieces, kernel_rows, dtype):
    """pieces as the C filters read them: planes (N, H, W), or the grid of (N, h, w) arrays
    that make them (a list of rows of pieces side by side, as np.block takes them), read
    where they lie. When every piece is uint8 or bool (seen as uint8) they are kept as they
    are: the filter converts each row into a buffer of about kernel_rows rows per thread as
    each band of output rows reads it (no float copy of the image is made); when the kernel
    is taller than the planes that buffer would be larger than they are, so the pieces are
    joined into planes of dtype instead. Otherwise every piece is made dtype."""
    if isinstance(pieces, np.ndarray):
        pieces = [[pieces]]
    pieces = [[p.view(np.uint8) if p.dtype == np.bool_ else p for p in row] for row in pieces]
    if all(p.dtype == np.uint8 for row in pieces for p in row):
        if kernel_rows <= sum(row[0].shape[1] for row in pieces):
            return [[np.ascontiguousarray(p) for p in row] for row in pieces]
        pieces = [[_joined(pieces)]]
    return [[as_kernel_input(p, dtype) for p in row] for row in pieces]


def _joined(pieces):
    """The array a grid of pieces makes (np.block of it; the piece itself for one)."""
    return pieces[0][0] if len(pieces) == len(pieces[0]) == 1 else np.block(pieces)


def _filter_output(pieces, window, dtype):
    """(an output array, its corner (top, left)) for the window ((top, bottom), (left,
    right)) of a filter's same-size result on the planes that the grid `pieces` makes, or
    for all of it when window is None."""
    N = pieces[0][0].shape[0]
    if window is None:
        window = ((0, sum(row[0].shape[1] for row in pieces)),
                  (0, sum(p.shape[2] for p in pieces[0])))
    (top, bottom), (left, right) = window
    return np.empty((N, bottom - top, right - left), dtype), (top, left)


def _correlate(pieces, kernel, border, dtype, window=None):
    """The planes that pieces make (see _filter_input) correlated with a 2-D kernel, in
    dtype: the window ((top, bottom), (left, right)) of the result, or all of it."""
    pieces = _filter_input(pieces, len(kernel), dtype)
    out, corner = _filter_output(pieces, window, dtype)
    _ext.filter2d(out, pieces, as_kernel_input(kernel, dtype), border, corner)
    return out


# ---- kernels ----------------------------------------------------------------------------

def edge_kernel(operator="sobel", axis=1, *, normalize=False):
    """The 3x3 kernel that ``sobel``/``scharr``/``prewitt`` correlate with along an axis.

    Parameters
    ----------
    operator : {"sobel", "scharr", "prewitt"}
    axis : {0, 1}
        0 for the derivative down the rows, 1 along the columns.
    normalize : bool
        Divide by the sum of the smoothing weights (scikit-image's kernels).

    Returns
    -------
    ndarray, shape (3, 3), float64
        The outer product of the smoothing weights and the derivative [-1, 0, 1]: the
        *negated* lecture filter (derivatives point towards brighter pixels).

    Examples
    --------
    >>> edge_kernel("sobel", axis=1)
    array([[-1.,  0.,  1.],
           [-2.,  0.,  2.],
           [-1.,  0.,  1.]])
    """
    func = "edge_kernel"
    smooth = np.array(OPERATORS[_operator(operator, func)], dtype=np.float64)
    axis = _axis(axis, func)
    if axis is None:
        raise ValueError(f"{func}: axis must be 0 or 1, got None")
    if as_bool(normalize, "normalize", func):
        smooth /= smooth.sum()
    derivative = np.array([-1.0, 0.0, 1.0])
    return np.outer(derivative, smooth) if axis == 0 else np.outer(smooth, derivative)


# ---- filters ----------------------------------------------------------------------------

def filter2d(image, kernel, *, mode="reflect", flip=False, dtype=None):
    """Correlate an image (or each image of a batch) with a small 2-D kernel.

    Parameters
    ----------
    image : array_like, shape (H, W), (H, W, 3), (N, H, W) or (N, H, W, 3)
        See the module's conventions (RGB becomes luminance).
    kernel : array_like, shape (R, S)
        Anchored at (R // 2, S // 2), as scipy.ndimage and OpenCV.
    mode : str
        Border mode, one of :data:`BORDER_MODES`.
    flip : bool
        True convolution (the kernel flipped in both axes).
    dtype : {None, float32, float64}
        The type it computes in and returns. None: float32 when image and kernel are
        float32 (or float16), float64 otherwise.

    Returns
    -------
    ndarray, shape (H, W) or (N, H, W)
        Same size as the input: ``out[i, j] = sum k[r, s] * image[i + r - R//2,
        j + s - S//2]``.
    """
    func = "filter2d"
    k = as_array(kernel, "kernel", func)
    if k.ndim != 2 or k.size == 0:
        raise ValueError(f"{func}: expected kernel to be a non-empty 2-D array, got shape "
                         f"{k.shape}")
    border = _border(mode, func)
    planes, dtype, out_shape, _ = _planes(image, func, kernel=k, dtype=dtype)
    if as_bool(flip, "flip", func):
        k = k[::-1, ::-1]
    return _correlate(planes, k, border, dtype).reshape(out_shape)


def _gaussian_kernel1d(sigma, truncate):
    radius = gaussian_radius(sigma, truncate)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (x / sigma) ** 2)
    return weights / weights.sum()


def _smooth(planes, sigma, truncate, border, dtype):
    if sigma == 0:
        return planes.astype(dtype)
    g = _gaussian_kernel1d(sigma, truncate)
    return _correlate(_correlate(planes, g[:, None], border, dtype), g[None, :], border,
                      dtype)


def gaussian(image, sigma=1.0, *, mode="reflect", truncate=4.0, dtype=None):
    """Gaussian blur: two 1-D passes (rows, then columns) of the sampled Gaussian.

    The kernel has radius ``int(truncate * sigma + 0.5)`` and sums to 1, as in
    ``scipy.ndimage.gaussian_filter``. sigma = 0 returns a copy (as floats). truncate x
    sigma must be at most MAX_GAUSSIAN_RADIUS (2**20) pixels. dtype (None, float32 or
    float64) is the type it computes in and returns, as in :func:`filter2d`.
    """
    func = "gaussian"
    sigma = _real(sigma, "sigma", func, minimum=0)
    truncate = _real(truncate, "truncate", func, minimum=0)
    if truncate * sigma > MAX_GAUSSIAN_RADIUS:
        raise ValueError(f"{func}: sigma={sigma!r} with truncate={truncate!r} gives a kernel "
                         f"radius of {truncate * sigma:.3g} pixels; expected truncate x sigma "
                         f"<= {MAX_GAUSSIAN_RADIUS}")
    border = _border(mode, func)
    planes, dtype, out_shape, _ = _planes(image, func, dtype=dtype)
    return _smooth(planes, sigma, truncate, border, dtype).reshape(out_shape)


def rgb_to_gray(image):
    """Luminance ``0.299 R + 0.587 G + 0.114 B`` of an (..., 3) RGB or (..., 4) RGBA array
    (alpha dropped), as floats (float32 for float16 and float32 input, float64 otherwise);
    the values are not rescaled."""
    func = "rgb_to_gray"
    a = as_array(image, "image", func)
    if a.ndim < 2 or a.shape[-1] not in _COLOUR_CHANNELS:
        raise ValueError(f"{func}: expected image with a last axis of 3 (RGB) or 4 (RGBA), "
                         f"got shape {a.shape}")
    return _luminance(a, result_dtype(func, image=a))


def _magnitude(gx, gy):
    """sqrt(gx**2 + gy**2), computed in place in gx (and gy): four fast passes, where
    np.hypot's careful per-element scaling costs several times more."""
    np.multiply(gx, gx, out=gx)
    np.multiply(gy, gy, out=gy)
    np.add(gx, gy, out=gx)
    return np.sqrt(gx, out=gx)


def _derivatives(planes, operator, axes, border, normalize, dtype):
    return [_edge_planes(planes, operator, ax, border, normalize, dtype) for ax in axes]


def _edge_filter(image, operator, axis, mode, normalize, dtype, func):
    axis = _axis(axis, func)
    border = _border(mode, func)
    planes, dtype, out_shape, _ = _planes(image, func, dtype=dtype)
    return _edge_planes(planes, operator, axis, border, normalize, dtype).reshape(out_shape)


def _edge_planes(pieces, operator, axis, border, normalize, dtype, window=None):
    """The derivative along axis (0 or 1), or the gradient magnitude (axis None), of the
    planes that pieces make (see _filter_input), in dtype: the window ((top, bottom),
    (left, right)) of the result, or all of it. border: an index into BORDER_MODES."""
    if axis is not None:
        return _correlate(pieces, edge_kernel(operator, axis, normalize=normalize), border,
                          dtype, window)
    kx, ky = (edge_kernel(operator, ax, normalize=normalize).astype(dtype) for ax in (1, 0))
    pieces = _filter_input(pieces, len(kx), dtype)
    out, corner = _filter_output(pieces, window, dtype)
    _ext.filter2d_magnitude(out, pieces, kx, ky, border, corner)
    return out


def sobel(image, axis=None, *, mode="reflect", normalize=False, dtype=None):
    """Sobel derivative along one axis, or the gradient magnitude.

    Parameters
    ----------
    image : array_like, shape (H, W), (H, W, 3), (N, H, W) or (N, H, W, 3)
        Grayscale, RGB (converted to luminance) or a batch; uint8 or float.
    axis : {None, 0, 1}
        0: derivative down the rows (finds horizontal edges); 1: along the columns (finds
        vertical edges); None: the magnitude ``sqrt(d0**2 + d1**2)``.
    mode : str
        Border mode, one of :data:`BORDER_MODES` (default scikit-image's "reflect";
        OpenCV's default is "mirror").
    normalize : bool
        False: the integer kernel [1, 2, 1] x [-1, 0, 1] (OpenCV); True: divided by 4
        (scikit-image).
    dtype : {None, float32, float64}
        The type it computes in and returns (OpenCV's ``ddepth``). None: float32 for
        float16 and float32 images, float64 otherwise. ``sobel(img_uint8,
        dtype=np.float32)`` reads the uint8 image as it is.

    Returns
    -------
    ndarray, shape (H, W) or (N, H, W)
        Positive where the image gets brighter towards higher indices (see the module's
        conventions).

    Examples
    --------
    >>> img = np.array([[0, 0, 0, 10, 10, 10]] * 4)
    >>> sobel(img, axis=1, mode="replicate")[0]
    array([ 0.,  0., 40., 40.,  0.,  0.])
    """
    return _edge_filter(image, "sobel", axis, mode, normalize, dtype, "sobel")


def scharr(image, axis=None, *, mode="reflect", normalize=False, dtype=None):
    """Scharr derivative ([3, 10, 3] x [-1, 0, 1], or divided by 16 when normalize) along
    one axis, or the gradient magnitude. Arguments and conventions as :func:`sobel`."""
    return _edge_filter(image, "scharr", axis, mode, normalize, dtype, "scharr")


def prewitt(image, axis=None, *, mode="reflect", normalize=False, dtype=None):
    """Prewitt derivative ([1, 1, 1] x [-1, 0, 1], or divided by 3 when normalize) along
    one axis, or the gradient magnitude. Arguments and conventions as :func:`sobel`."""
    return _edge_filter(image, "prewitt", axis, mode, normalize, dtype, "prewitt")


def gradient(image, operator="sobel", *, mode="reflect", normalize=False, dtype=None):
    """Gradient magnitude and direction.

    Parameters
    ----------
    image : array_like
        As :func:`sobel`.
    operator : {"sobel", "scharr", "prewitt"}
    mode, normalize, dtype
        As :func:`sobel`.

    Returns
    -------
    magnitude : ndarray, shape (H, W) or (N, H, W)
        ``sqrt(gx**2 + gy**2)``.
    direction : ndarray, same shape
        ``arctan2(gy, gx)`` in radians, in [-pi, pi], where gx is the derivative along the
        columns (right positive) and gy down the rows (down positive): 0 points right,
        pi/2 points down (image coordinates). It points towards brighter pixels and is 0
        where the image is flat.
    """
    func = "gradient"
    operator = _operator(operator, func)
    border = _border(mode, func)
    planes, dtype, out_shape, _ = _planes(image, func, dtype=dtype)
    gy, gx = _derivatives(planes, operator, (0, 1), border, normalize, dtype)
    direction = np.arctan2(gy, gx)
    magnitude = _magnitude(gx, gy)
    return magnitude.reshape(out_shape), direction.reshape(out_shape)


def canny(image, sigma=1.0, low_threshold=None, high_threshold=None, *, mode="reflect"):
    """Canny edge detector: Gaussian smoothing, Sobel gradients, non-maximum suppression,
    hysteresis thresholds.

    Parameters
    ----------
    image : array_like, shape (H, W), (H, W, 3), (N, H, W) or (N, H, W, 3)
        As :func:`sobel`.
    sigma : float
        Standard deviation of the Gaussian smoothing (0: none).
    low_threshold, high_threshold : float, optional
        Thresholds on the (unnormalised) Sobel gradient magnitude of the smoothed image, in
        the image's own units. Pixels at or above ``high_threshold`` are edges; pixels at or
        above ``low_threshold`` are edges when 8-connected to one through such pixels.
        Defaults: 0.1 and 0.2 times the value range of the input dtype (1 for float
        images, 255 for uint8), which gives scikit-image's defaults for
        ``skimage.feature.canny``.
    mode : str
        Border mode of the smoothing and the gradients, one of :data:`BORDER_MODES`.

    Returns
    -------
    ndarray of bool, shape (H, W) or (N, H, W)
        True on edges, one pixel wide. The outermost pixel ring is never an edge (as in
        scikit-image). Non-maximum suppression compares each pixel with its two
        neighbours along the gradient, linearly interpolated between the two pixels the
        direction falls between.
    """
    classes = canny_classes(image, sigma, low_threshold, high_threshold, mode=mode)
    planes = classes.reshape((math.prod(classes.shape[:-2]),) + classes.shape[-2:])
    edges = np.empty(planes.shape, dtype=np.bool_)
    _ext.canny_hysteresis(edges.view(np.uint8), planes)
    return edges.reshape(classes.shape)


def canny_thresholds(dtype, low_threshold, high_threshold, func="canny"):
    """Canny's (low, high) thresholds for an image of dtype: the given ones, checked, or
    0.1 and 0.2 times the dtype's value range."""
    scale = _value_range(np.dtype(dtype))
    low = 0.1 * scale if low_threshold is None else _real(low_threshold, "low_threshold",
                                                          func, minimum=0)
    high = 0.2 * scale if high_threshold is None else _real(high_threshold, "high_threshold",
                                                            func, minimum=0)
    if low > high:
        raise ValueError(f"{func}: low_threshold ({low}) must not exceed high_threshold "
                         f"({high})")
    return low, high


def canny_classes(image, sigma=1.0, low_threshold=None, high_threshold=None, *,
                  mode="reflect"):
    """Canny's stages before hysteresis: uint8 of the image's shape (H, W) or (N, H, W),
    2 for strong edge pixels, 1 for weak ones, 0 elsewhere (the outermost ring included).
    Arguments as :func:`canny`; its edges are the regions of nonzero pixels that hold a 2."""
    func = "canny"
    sigma = _real(sigma, "sigma", func, minimum=0)
    border = _border(mode, func)
    planes, dtype, out_shape, in_dtype = _planes(image, func)
    low, high = canny_thresholds(in_dtype, low_threshold, high_threshold, func)
    smoothed = _smooth(planes, sigma, 4.0, border, dtype)
    gy, gx = _derivatives(smoothed, "sobel", (0, 1), border, False, dtype)
    magnitude = _magnitude(gx.copy(), gy.copy())
    classes = np.empty(planes.shape, dtype=np.uint8)
    _ext.canny_nms(classes, gx, gy, magnitude, low, high)
    return classes.reshape(out_shape)


def gaussian_radius(sigma, truncate=4.0):
    """The radius in pixels of :func:`gaussian`'s kernel (0 for sigma 0)."""
    return int(truncate * sigma + 0.5) if sigma > 0 else 0


def synthetic_image(size=256):
    """A grayscale test image in [0, 1] (float64, size x size): a bright square, a disk of
    middle grey and a dark triangle on a soft horizontal ramp. Edges of every orientation,
    of both signs and of different contrasts; deterministic."""
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, numbers.Integral):
        raise TypeError(f"synthetic_image: size must be an int, got {size!r}")
    if size < 8:
        raise ValueError(f"synthetic_image: size must be >= 8, got {size}")
    y, x = np.mgrid[0:size, 0:size] / size
    img = 0.25 + 0.1 * x
    img[(0.12 <= y) & (y < 0.45) & (0.12 <= x) & (x < 0.45)] = 0.95
    img[(y - 0.35) ** 2 + (x - 0.72) ** 2 < 0.18 ** 2] = 0.6
    img[(y > 0.6) & (y < 0.9) & (x > 0.15) & (x - 0.15 < (y - 0.6) * 1.6)] = 0.02
    return img
