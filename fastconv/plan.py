"""Which algorithm runs each pass of a 2-D convolution: the one place that decides.

A convolution has three passes: the forward pass (``conv2d``), the input gradient and the
weight gradient (``conv2d_backward``). Three algorithms compute them:

* **direct** keeps a band of input rows in L2 and the filters' sums in registers; it copies
  nothing per tap and needs no workspace beyond the band, so it always runs.
* **im2col** copies every input pixel R x S times into columns, then runs a GEMM near the
  machine's peak. The copy is the price: it pays when the GEMM is large (many taps and
  filters), when there is nothing to copy (1x1 filters: the columns are x itself) or when
  the images are so small that direct's bands hold little work. Its workspace is bounded
  (at least one output row's columns per thread, refused above
  ``_ext.IM2COL_MAX_ROW_BYTES``), so where one row's columns exceed the bound, ``auto``
  runs direct instead.
* **winograd** computes 3x3, stride-1, undilated, ungrouped convolutions with fewer
  multiplications: F(4x4, 3x3) for the forward pass, the input gradient and the weight
  gradient (a quarter of the multiplications). It
  transforms every input tile (work ~ C per tile), every output tile (~ K) and the filters
  (~ C x K per call), so it pays only where the channel and filter counts are large and
  many tiles share the transformed filters.
* **depthwise** computes depthwise convolutions (groups == C, each filter one channel, K a
  multiple of C) plane by plane: each (image, channel) plane is copied once, zero-padded,
  and every filter tap is one multiply-add over a contiguous run of it, vectorised along
  the rows. Direct and im2col spread such a layer over C tiny groups (one channel, a few
  filters each), where their tiles and GEMMs hold almost no work.

``algorithm="auto"`` picks per pass by the rules below (:func:`auto_algorithm`,
:func:`winograd_weight_pays`); ``"autotune"`` (and ``"auto"`` after
``fastconv.set_autotune(True)``) times the algorithms that can run each pass, and the
direct convolution's variants, and keeps the fastest (:mod:`fastconv.autotune`); an
explicit algorithm runs every pass, except that ``"winograd"`` computes the weight
gradient as ``auto`` would without Winograd (direct or im2col). :func:`conv_plan` states
the choice for a problem; ``conv2d`` and ``conv2d_backward`` run what it states.
docs/PERFORMANCE.md holds the measurements behind the thresholds.
"""
import functools
import sys
from dataclasses import dataclass, replace

import numpy as np

from . import _ext, autotune
from ._checks import ALGORITHMS, ConvGeometry, as_int_tuple, as_kernel_input, conv_geometry
from .config import get_num_threads

__all__ = ["ConvPlan", "conv_plan"]

# Names of a plan's passes, in the order a training step runs them.
PASSES = ("forward", "backward_data", "backward_weight")

# -- direct or im2col (per group: taps = C/groups x R x S, filters = K/groups) ------------
# Fewer taps than this per output pixel: direct (the GEMM would be too thin to pay the copy).
IM2COL_MIN_TAPS = 64
# Fewer filters than this per group: direct (the GEMM would be too thin to pay the copy).
IM2COL_MIN_FILTERS = 32
# Filters of this many taps per channel (1x1): im2col, whose columns are x itself.
IM2COL_POINTWISE_TAPS = 1
# Backward passes with outputs of at most this many pixels per image: im2col (direct's
# bands hold little work). The forward runs direct there: its threads share out the
# filters of small images (fc_direct_plan.filter_parts).
IM2COL_MAX_OUTPUT_PIXELS = 64
# The forward pass of a pointwise filter runs im2col, whose GEMM then reads x itself, from
# this many filters when there are IM2COL_MIN_TAPS channels or one image (direct's bands
# then share out too little work) even with fewer than IM2COL_MIN_FILTERS filters.
IM2COL_POINTWISE_MIN_FILTERS = 16
# Backward passes with at least this many taps per output pixel: im2col.
IM2COL_BACKWARD_MIN_TAPS = 2048
# Backward passes of filters with at least this many taps per channel (7x7): im2col.
IM2COL_BACKWARD_MIN_FILTER_TAPS = 49

# -- Winograd F(4x4, 3x3): forward pass and input gradient --------------------------------
# Fewer channels or filters than this: direct or im2col (the tile transforms dominate).
WINOGRAD_MIN_CHANNELS = 16
# Output tiles x min(channels, filters) per thread below this: direct or im2col (each
# thread's GEMMs over tiles are too small to pay for the transforms and the calls' fixed
# costs).
WINOGRAD_MIN_TILE_CHANNELS_PER_THREAD = 2048
# Side of F(4x4, 3x3)'s output tile.
WINOGRAD_TILE = 4
# Fewer output tiles than this in the batch: direct or im2col (too few tiles share the
# transformed filters).
WINOGRAD_MIN_TILES = 64
# Transformed values per filter and channel (a 6x6 tile).
WINOGRAD_FILTER_BANK_VALUES = 36
# Bytes per value the filter-bank rule counts: float32's, so one rule serves both dtypes.
WINOGRAD_FILTER_BANK_ITEM_BYTES = 4
# Largest transformed filter bank auto accepts (direct and im2col copy no weights).
WINOGRAD_MAX_FILTER_BANK_BYTES = 64 << 20

# -- values: where the algorithms agree on which outputs are NaN, inf or finite -----------
# How much F(4x4, 3x3)'s transforms can grow a value, in the infinity norm (the largest row
# sum of |entries|) of each 1-D transform of src/conv_winograd.h, squared for 2-D: the
# input transform B^T 10 (row 4, 0, -5, 0, 1, 0), the filter transform G 1 (its last row
# picks g[2]; the others sum to at most 1/2) and the output transform A^T 19 (row
# 0, 1, -1, 8, -8, 1). One output and every intermediate of its computation is at most
# WINOGRAD_GAIN x channels x max|input| x max|filter| in magnitude. The weight gradient
# transforms x by B^T (10), grad_out by A (15, row 1, 2, 4, 8) and its sums by G^T (5/3,
# row 0, -1/6, -1/6, 1/6, 1/6, 1), more than the forward pass: the gain is the larger of
# the two, and bounds the weight gradient with its sums over the tiles (at most N x P x Q
# terms).
WINOGRAD_GAIN = max(10**2 * 1**2 * 19**2, 10**2 * 15**2 * (5 / 3)**2)
# The part of the dtype's largest finite value the bound must stay under: the rest absorbs
# the rounding of the bound's own product.
VALUE_HEADROOM = 0.5

# -- Winograd F(4x4, 3x3): weight gradient -------------------------------------------------
# Fewer channels or filters than this: the backward pass's algorithm (GEMMs too small).
WINOGRAD_WEIGHT_MIN_CHANNELS = 32
# Side of F(4x4, 3x3)'s output tile.
WINOGRAD_WEIGHT_TILE = 4
# Fewer output tiles than this in the batch: the backward pass's algorithm.
WINOGRAD_WEIGHT_MIN_TILES = 32
# Sums per channel-filter pair (a 6x6 tile), per thread where the threads share the tiles.
WINOGRAD_WEIGHT_SUMS_PER_PAIR = 36
# Bytes per sum the workspace rule counts: float64's, so one rule serves both dtypes.
WINOGRAD_WEIGHT_SUM_ITEM_BYTES = 8

# -- depthwise: every pass -----------------------------------------------------------------
# Fewer groups than this: direct or im2col (one group is an ordinary convolution of one
# channel, LeNet-5's first layer, whose filters direct vectorises together).
DEPTHWISE_MIN_GROUPS = 2
# More filters per channel than this: direct (it vectorises a channel's filters together;
# depthwise runs them one by one).
DEPTHWISE_MAX_MULTIPLIER = 1
# Strided forward passes over input planes of more than this many pixels: direct (its band
# copy splits the stride phases faster than depthwise's plane copy).
DEPTHWISE_STRIDED_MAX_INPUT_PIXELS = 1024

# Algorithms that sum each output's own products one by one, in a fixed order, so NaN, inf
# and overflow reach exactly the outputs whose sums produce them (plan_for_values).
EXACT_ALGORITHMS = ("direct", "depthwise")


@dataclass(frozen=True)
class ConvPlan:
    """The algorithm ("direct", "im2col", "winograd" or "depthwise") each pass of a
    convolution runs.

    ``forward`` runs ``conv2d``; ``backward_data`` computes ``conv2d_backward``'s grad_x and
    ``backward_weight`` its grad_weight (grad_bias is a plain sum). ``geometry`` and
    ``dtype`` are the problem the plan is for.

    ``variants`` names, for each pass that runs direct, the direct convolution's variant
    (its C plan, ``fc_conv_direct_plan``): the forward pass "by_pixels" or "by_filters",
    the input gradient "scatter" or "gather" ("loops" at run time when the weights hold an
    inf or NaN), the weight gradient "by_pixels" or "by_filters"; None for a pass that runs
    another algorithm. The direct plan depends on the thread count and the SIMD level, so
    :func:`conv_plan` fills it for the current ones. ``forced`` holds the variants
    autotuning chose for its direct passes (None: the C plan's rules choose).
    """
    forward: str
    backward_data: str
    backward_weight: str
    geometry: ConvGeometry
    dtype: str
    variants: tuple = (None, None, None)
    forced: tuple = (None, None, None)

    def variant(self, name):
        """The direct variant of pass ``name`` (one of PASSES), or None."""
        return self.variants[PASSES.index(name)]

    def run_name(self, name):
        """What the kernels are asked to run for pass ``name``: its algorithm, as
        "direct:VARIANT" where the variant is forced."""
        forced = self.forced[PASSES.index(name)]
        return getattr(self, name) + (f":{forced}" if forced else "")

    def _pass(self, name):
        variant = self.variant(name)
        return getattr(self, name) + (f" ({variant})" if variant else "")

    def __repr__(self):
        passes = ", ".join(f"{name}={self._pass(name)!r}" for name in PASSES)
        return f"ConvPlan({passes})"

    def __str__(self):
        g = self.geometry
        lines = [f"conv plan for x {g.input_shape}, weight {g.weight_shape}, stride "
                 f"{g.stride}, padding {g.padding}, dilation {g.dilation}, groups "
                 f"{g.groups}, {self.dtype}:"]
        lines += [f"  {name:<16} {self._pass(name)}" for name in PASSES]
        return "\n".join(lines)


def conv_plan(x_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1, *,
              dtype="float32", algorithm="auto"):
    """The algorithm each pass of a convolution runs, and the direct convolution's variant
    where a pass runs direct, as :class:`ConvPlan`.

    x_shape (N, C, H, W) and weight_shape (K, C/groups, R, S) are the shapes given to
    ``conv2d``; stride, padding, dilation, groups and algorithm are as there; dtype is the
    dtype conv2d computes in (float32 or float64). The variants are those of the current
    thread count and SIMD level (None for a problem with an empty axis, which no kernel
    runs). Errors are conv2d's.

    >>> import fastconv
    >>> fastconv.conv_plan((8, 64, 56, 56), (64, 64, 3, 3), padding=1)  # doctest: +SKIP
    ConvPlan(forward='winograd', backward_data='winograd', backward_weight='direct (by_pixels)')
    """
    func = "conv_plan"
    check_algorithm(algorithm, func)
    x_shape = _as_shape(x_shape, "x_shape", func)
    weight_shape = _as_shape(weight_shape, "weight_shape", func)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{func}: dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"{func}: dtype must be float32 or float64 (the dtypes conv2d "
                         f"computes in), got {dtype}")
    geom = conv_geometry(x_shape, weight_shape, stride, padding, dilation, groups, func)
    run_geom = windows_geometry(geom, func)[0]       # what conv2d plans for and runs
    plan = replace(plan_for(run_geom, dtype, algorithm, func), geometry=geom)
    empty = 0 in geom.input_shape + geom.weight_shape + geom.output_shape  # no kernel runs
    if empty or "direct" not in (plan.forward, plan.backward_data, plan.backward_weight):
        return plan
    direct = _ext.conv_direct_plan(run_geom, plan.dtype, get_num_threads())
    variants = tuple((forced or direct[name]) if getattr(plan, name) == "direct" else None
                     for name, forced in zip(PASSES, plan.forced))
    return replace(plan, variants=variants)


def _as_shape(value, name, func):
    """A shape of 4 non-negative ints, as a tuple."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{func}: {name} must be a tuple of 4 ints, got {value!r}")
    return as_int_tuple(value, name, 4, func, 0, sys.maxsize)


def check_algorithm(algorithm, func):
    """Raise ValueError unless algorithm is one of ALGORITHMS."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{func}: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")


def plan_for(geom, dtype, algorithm, func):
    """The plan of a checked problem (geom, dtype: a NumPy float dtype) for a checked
    algorithm name; ValueError where algorithm="winograd" or "depthwise" does not apply."""
    if algorithm == "winograd" and not winograd_supports(geom):
        raise ValueError(f"{func}: algorithm='winograd' needs 3x3 filters, stride 1, "
                         f"dilation 1 and groups 1, got filters {geom.R}x{geom.S}, stride "
                         f"{geom.stride}, dilation {geom.dilation}, groups {geom.groups}")
    if algorithm == "depthwise" and not depthwise_supports(geom):
        raise ValueError(f"{func}: algorithm='depthwise' needs groups equal to the input "
                         f"channels and a filter count that is a multiple of them, got "
                         f"{geom.C} channels, groups {geom.groups}, {geom.K} filters")
    if algorithm == "autotune" or (algorithm == "auto" and autotune.get_autotune()):
        return _tuned_plan(geom, dtype)
    return _plan(geom, dtype, algorithm, get_num_threads())


def _tuned_plan(geom, dtype):
    """The plan of the algorithms measured fastest for each pass of this problem at the
    current thread count and SIMD level (:mod:`fastconv.autotune`), measured on its first
    call. An empty problem has nothing to time: auto's plan."""
    if 0 in geom.input_shape + geom.weight_shape + geom.output_shape:
        return _plan(geom, dtype, "auto", get_num_threads())
    key = (geom, dtype.name, get_num_threads(), _ext.simd_name())
    candidates = tuning_candidates(geom, dtype)
    passes = autotune.remembered(
        key, candidates, lambda: autotune.fastest_passes(geom, dtype, candidates))
    algorithms, _, forced = zip(*(name.partition(":") for name in passes))
    return ConvPlan(*algorithms, geom, dtype.name, forced=tuple(v or None for v in forced))


def tuning_candidates(geom, dtype):
    """{pass: the algorithms autotuning times for it}: each variant of direct (the forward
    and the weight gradient "direct:by_pixels" and "direct:by_filters", the input gradient
    "direct:gather" and, where it fits, "direct:scatter"); im2col where its workspace bound
    allows; Winograd F(4x4, 3x3) (forward, input gradient) where it applies and its
    transformed filter bank fits WINOGRAD_MAX_FILTER_BANK_BYTES, F(4x4, 3x3) (weight
    gradient) where its sums fit ``_ext.WINOGRAD_MAX_SUMS_BYTES``; depthwise where it
    applies and its workspace fits (:func:`depthwise_pays`' limits)."""
    others = ["im2col"] if _runnable("im2col", geom, dtype) == "im2col" else []
    if depthwise_supports(geom) and depthwise_workspace_fits(geom, dtype):
        others.append("depthwise")
    direct = _ext.conv_direct_plan(geom, np.dtype(dtype).name, get_num_threads())
    by = ["direct:by_pixels", "direct:by_filters"]
    data = ["direct:gather"] + (["direct:scatter"] if direct["scatter_fits"] else [])
    supported = winograd_supports(geom)
    winograd = ["winograd"] if supported and winograd_filter_bank_fits(geom) else []
    winograd_weight = ["winograd"] if supported and winograd_weight_sums_fit(geom) else []
    return {"forward": by + others + winograd, "backward_data": data + others + winograd,
            "backward_weight": by + others + winograd_weight}


@functools.lru_cache(maxsize=256)
def _plan(geom, dtype, algorithm, threads):
    """plan_for's decision on `threads` threads. The rules read only the problem, the
    thread count and fixed limits, so a plan is kept per problem and thread count: a layer
    plans once, not once per call."""
    if algorithm == "auto" and depthwise_pays(geom, dtype):
        forward = ("depthwise" if depthwise_forward_pays(geom)
                   else _runnable(direct_or_im2col(geom, backward=False), geom, dtype))
        return ConvPlan(forward, "depthwise", "depthwise", geom, dtype.name)
    if algorithm == "auto":
        forward = auto_algorithm(geom, dtype, threads, backward=False)
        backward_data = auto_algorithm(geom, dtype, threads, backward=True)
    else:
        forward = backward_data = algorithm
    backward_weight = backward_data
    if backward_data == "winograd":      # F(4x4, 3x3) computes no weight gradient
        backward_weight = _runnable(direct_or_im2col(geom, backward=True), geom, dtype)
    if algorithm == "auto" and winograd_weight_pays(geom):
        backward_weight = "winograd"
    return ConvPlan(forward, backward_data, backward_weight, geom, dtype.name)


def windows_geometry(geom, func):
    """The problem the kernels run for geom: geom itself, or, on each axis where the stride
    exceeds the dilated filter's extent (the windows leave rows or columns no tap reads,
    as a 1x1 filter at stride 2 does, or any filter at a huge stride), the same
    convolution over just the rows (columns) the windows read.

    On such an axis each window's taps stand next to each other, R rows per output row, so
    the new problem has stride R, dilation 1 and no padding (a tap in the padding reads a
    row of zeros), and the same output. The kernels' work and memory then follow the
    output and the filter, never the stride. Returns (geometry, rows, cols): rows and cols
    are the input indices of the new rows and columns (-1 for a padding tap), or None for
    an axis left as it is.
    """
    rows = cols = None
    stride, padding, dilation = list(geom.stride), list(geom.padding), list(geom.dilation)
    if geom.stride[0] > (geom.R - 1) * geom.dilation[0] + 1:
        rows = _tap_indices(geom.P, geom.R, geom.stride[0], geom.dilation[0], geom.padding[0],
                            geom.H)
        stride[0], dilation[0], padding[0:2] = geom.R, 1, (0, 0)
    if geom.stride[1] > (geom.S - 1) * geom.dilation[1] + 1:
        cols = _tap_indices(geom.Q, geom.S, geom.stride[1], geom.dilation[1], geom.padding[2],
                            geom.W)
        stride[1], dilation[1], padding[2:4] = geom.S, 1, (0, 0)
    if rows is None and cols is None:
        return geom, None, None
    shape = (geom.N, geom.C, geom.H if rows is None else rows.size,
             geom.W if cols is None else cols.size)
    return (conv_geometry(shape, geom.weight_shape, tuple(stride), tuple(padding),
                          tuple(dilation), geom.groups, func), rows, cols)


def _tap_indices(outputs, taps, stride, dilation, pad_before, size):
    """The input index each tap of each window reads along one axis, window by window
    (outputs x taps values), -1 where the tap falls in the padding."""
    index = (np.arange(outputs)[:, None] * stride + np.arange(taps) * dilation
             - pad_before).ravel()
    index[(index < 0) | (index >= size)] = -1
    return index


def plan_for_values(plan, algorithm, x, weight, bias=None, grad_out=None, input_grad=True):
    """The plan a call runs for its values: ``auto``'s plan, with direct for every pass
    whose inputs are not all finite or are so large that a sum could overflow.

    Direct convolution sums each output's products one by one, so a NaN or inf input
    reaches exactly the outputs whose sums read it, and an output overflows only when its
    own sum does. Winograd mixes every value of a tile into the others (one NaN pixel
    makes a whole tile NaN; 0 x inf from the padding adds NaN; a transform can overflow
    where the true result is finite), and im2col's GEMM and Winograd's sum in other orders,
    so near the overflow threshold they can disagree with direct about which outputs are
    inf. A pass runs as planned when its two inputs a and b (and the bias) are finite and

        max|a| x max|b| x terms x WINOGRAD_GAIN + max|bias| <= VALUE_HEADROOM x finfo.max

    with terms the products each output sums (forward: x and weight, C/groups x R x S;
    input gradient: grad_out and weight, K/groups x R x S; weight gradient: grad_out and x,
    N x P x Q). Then every intermediate of every algorithm is finite, so all give finite
    outputs; elsewhere auto (and autotune) runs direct. An explicit algorithm always runs
    as asked. The check is a scan of each input (``_ext.max_abs``), only for passes
    planned other than direct or depthwise (EXACT_ALGORITHMS: they sum each output's
    products one by one too). grad_out None means a forward call (x, weight, bias); else a backward call
    (input_grad False: no input gradient).
    """
    if algorithm not in ("auto", "autotune"):
        return plan
    g = plan.geometry
    if grad_out is None:
        checks = {"forward": (x, weight, bias, _forward_terms(g))}
    else:
        checks = {"backward_weight": (grad_out, x, None, g.N * g.P * g.Q)}
        if input_grad:
            checks["backward_data"] = (grad_out, weight, None, g.K // g.groups * g.R * g.S)
    scanned = {}

    def largest(a):
        if a is None:
            return 0.0
        if id(a) not in scanned:
            scanned[id(a)] = _max_abs(a, plan.dtype)
        return scanned[id(a)]

    changes = {}
    for name, (a, b, c, terms) in checks.items():
        if getattr(plan, name) in EXACT_ALGORITHMS:
            continue
        # also refused for NaN: an input holds NaN, or inf x 0
        if not _ext.values_fit(largest(a), largest(b), largest(c),
                               *_value_test(terms, plan.dtype)):
            changes[name] = "direct"
    return replace(plan, **changes) if changes else plan


def forward_value_test(plan):
    """plan_for_values' test of the forward pass, for an eval-mode program to run in C:
    (scale, limit) for ``_ext.values_fit``, or None where the forward's algorithm is exact
    and runs as planned for any values."""
    if plan.forward in EXACT_ALGORITHMS:
        return None
    return _value_test(_forward_terms(plan.geometry), plan.dtype)


def _forward_terms(geom):
    """The products each output of the forward pass sums."""
    return geom.C // geom.groups * geom.R * geom.S


def _value_test(terms, dtype):
    """(scale, limit) of plan_for_values' test for a pass whose outputs sum `terms`
    products, in dtype."""
    return terms * WINOGRAD_GAIN, VALUE_HEADROOM * float(np.finfo(dtype).max)


def _max_abs(a, dtype):
    """The largest |a| (inf or nan where a holds them), as a Python float."""
    if a.size == 0:
        return 0.0
    if a.dtype.kind != "f":
        return float(np.abs(a.astype(np.float64)).max())
    return _ext.max_abs(as_kernel_input(a, np.float64 if a.dtype.itemsize > 4 else
                                        np.float32).reshape(-1))


def auto_algorithm(geom, dtype, threads, backward):
    """What auto runs for the forward pass (backward=False) or the input gradient on
    `threads` threads: Winograd F(4x4, 3x3) where it applies and pays
    (:func:`winograd_pays`), else direct or im2col (:func:`direct_or_im2col`), direct where
    im2col's workspace would exceed its bound."""
    if winograd_supports(geom) and winograd_pays(geom, threads, backward):
        return "winograd"
    return _runnable(direct_or_im2col(geom, backward), geom, dtype)


def winograd_supports(geom):
    """True where Winograd applies: 3x3 filters, stride 1, dilation 1, groups 1."""
    return ((geom.R, geom.S) == (3, 3) and tuple(geom.stride) == (1, 1)
            and tuple(geom.dilation) == (1, 1) and geom.groups == 1)


def winograd_pays(geom, threads, backward=False):
    """Where auto runs Winograd F(4x4, 3x3) on a layer it applies to, on `threads` threads.

    Both the channel and filter counts reach WINOGRAD_MIN_CHANNELS (below, the tile
    transforms cost more than the saved multiplications), the batch has at least
    WINOGRAD_MIN_TILES output tiles (below, too few tiles share the transformed filters)
    and WINOGRAD_MIN_TILE_CHANNELS_PER_THREAD tiles x min(C, K) per thread (below, each
    thread's share is too small for the call's fixed costs), and the transformed filter
    bank fits WINOGRAD_MAX_FILTER_BANK_BYTES. The input gradient is a Winograd convolution
    of grad_out (K channels) into C channels of H x W, so its tiles cover H x W.
    """
    height, width = (geom.H, geom.W) if backward else (geom.P, geom.Q)
    tiles = geom.N * -(-height // WINOGRAD_TILE) * -(-width // WINOGRAD_TILE)
    channels = min(geom.C, geom.K)
    return (channels >= WINOGRAD_MIN_CHANNELS
            and tiles >= WINOGRAD_MIN_TILES
            and tiles * channels >= WINOGRAD_MIN_TILE_CHANNELS_PER_THREAD * threads
            and winograd_filter_bank_fits(geom))


def winograd_filter_bank_fits(geom):
    """True where F(4x4, 3x3)'s transformed filter bank fits WINOGRAD_MAX_FILTER_BANK_BYTES."""
    return (WINOGRAD_FILTER_BANK_VALUES * geom.C * geom.K * WINOGRAD_FILTER_BANK_ITEM_BYTES
            <= WINOGRAD_MAX_FILTER_BANK_BYTES)


def depthwise_supports(geom):
    """True where the depthwise kernels apply: groups == C and K a multiple of C."""
    return geom.C >= 1 and geom.groups == geom.C and geom.K % geom.C == 0


def depthwise_pays(geom, dtype):
    """Where auto runs the backward passes by the depthwise kernels (and the forward pass
    where :func:`depthwise_forward_pays` says too): depthwise layers
    (:func:`depthwise_supports`) of at least DEPTHWISE_MIN_GROUPS groups and at most
    DEPTHWISE_MAX_MULTIPLIER filters per channel whose per-thread workspace (one channel
    plane, padded, and one output plane) fits ``_ext.DEPTHWISE_MAX_WORKSPACE_BYTES``, above
    which the kernels refuse."""
    return (depthwise_supports(geom) and geom.groups >= DEPTHWISE_MIN_GROUPS
            and geom.K // geom.C <= DEPTHWISE_MAX_MULTIPLIER
            and depthwise_workspace_fits(geom, dtype))


def depthwise_workspace_fits(geom, dtype):
    """True where the depthwise kernels' per-thread workspace fits
    ``_ext.DEPTHWISE_MAX_WORKSPACE_BYTES``, above which they refuse."""
    return (_ext.depthwise_workspace_bytes(geom, np.dtype(dtype).itemsize)
            <= _ext.DEPTHWISE_MAX_WORKSPACE_BYTES)


def depthwise_forward_pays(geom):
    """On a layer :func:`depthwise_pays` accepts, whether the forward pass runs depthwise
    too: always at stride 1, and for strided layers up to
    DEPTHWISE_STRIDED_MAX_INPUT_PIXELS pixels per input plane."""
    return (tuple(geom.stride) == (1, 1)
            or geom.H * geom.W <= DEPTHWISE_STRIDED_MAX_INPUT_PIXELS)


def direct_or_im2col(geom, backward):
    """auto's choice between the two general algorithms.

    Direct, unless im2col's GEMM is large enough to pay for the copy (at least
    IM2COL_MIN_TAPS taps and IM2COL_MIN_FILTERS filters per group) and there is little to
    copy or little for direct to do: 1x1 filters, or backward passes with outputs of at
    most IM2COL_MAX_OUTPUT_PIXELS pixels. A pointwise forward pass, which copies nothing, runs
    im2col from IM2COL_POINTWISE_MIN_FILTERS filters with IM2COL_MIN_TAPS taps or on one
    image. The backward passes, whose direct kernels reduce over
    more data per output, also run im2col from IM2COL_BACKWARD_MIN_TAPS taps or for filters
    of IM2COL_BACKWARD_MIN_FILTER_TAPS taps (7x7).
    """
    taps = (geom.C // geom.groups) * geom.R * geom.S
    filters = geom.K // geom.groups
    if not backward and geom.R * geom.S == IM2COL_POINTWISE_TAPS \
            and filters >= IM2COL_POINTWISE_MIN_FILTERS \
            and (taps >= IM2COL_MIN_TAPS or geom.N == 1):
        return "im2col"
    if taps < IM2COL_MIN_TAPS or filters < IM2COL_MIN_FILTERS:
        return "direct"
    if geom.R * geom.S == IM2COL_POINTWISE_TAPS \
            or (backward and geom.P * geom.Q <= IM2COL_MAX_OUTPUT_PIXELS):
        return "im2col"
    if backward and (taps >= IM2COL_BACKWARD_MIN_TAPS
                     or geom.R * geom.S >= IM2COL_BACKWARD_MIN_FILTER_TAPS):
        return "im2col"
    return "direct"


def winograd_weight_pays(geom):
    """Where auto computes the weight gradient by Winograd F(4x4, 3x3).

    On layers Winograd applies to, with at least WINOGRAD_WEIGHT_MIN_CHANNELS channels and
    filters and WINOGRAD_WEIGHT_MIN_TILES output tiles in the batch: its GEMMs over tiles,
    transforms and per-thread sums pay off only when the GEMMs are large. The sums
    (WINOGRAD_WEIGHT_SUMS_PER_PAIR per channel and filter) must also fit
    ``_ext.WINOGRAD_MAX_SUMS_BYTES``, above which the kernel refuses. Everywhere else the
    weight gradient runs the backward pass's algorithm.
    """
    tiles = (geom.N * -(-geom.P // WINOGRAD_WEIGHT_TILE)
             * -(-geom.Q // WINOGRAD_WEIGHT_TILE))
    return (winograd_supports(geom)
            and min(geom.C, geom.K) >= WINOGRAD_WEIGHT_MIN_CHANNELS
            and tiles >= WINOGRAD_WEIGHT_MIN_TILES
            and winograd_weight_sums_fit(geom))


def winograd_weight_sums_fit(geom):
    """True where the F(4x4, 3x3) weight gradient's per-thread sums
    (WINOGRAD_WEIGHT_SUMS_PER_PAIR per channel and filter) fit
    ``_ext.WINOGRAD_MAX_SUMS_BYTES``, above which the kernel refuses."""
    return (WINOGRAD_WEIGHT_SUMS_PER_PAIR * geom.C * geom.K * WINOGRAD_WEIGHT_SUM_ITEM_BYTES
            <= _ext.WINOGRAD_MAX_SUMS_BYTES)


def _runnable(algorithm, geom, dtype):
    """algorithm, or "direct" where im2col would refuse the problem: one output row's
    columns (the least workspace im2col needs per thread) exceed
    ``_ext.IM2COL_MAX_ROW_BYTES``."""
    if algorithm == "im2col" and im2col_row_bytes(geom, dtype) > _ext.IM2COL_MAX_ROW_BYTES:
        return "direct"
    return algorithm


def im2col_row_bytes(geom, dtype):
    """Bytes of one output row's im2col columns (C/groups x R x S taps x Q pixels)."""
    return (geom.C // geom.groups) * geom.R * geom.S * geom.Q * np.dtype(dtype).itemsize
