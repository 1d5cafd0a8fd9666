"""fastconv on Dask: convolution, pooling, filters, Canny and inference on dask arrays.

Every function takes a dask array (or anything ``dask.array.asarray`` takes), the same
arguments as its in-memory twin, and returns a lazy dask array; nothing runs until
``.compute()``, ``.to_zarr()`` or ``dask.array.store``. Dask schedules the work: the
threaded scheduler, processes, or a ``dask.distributed`` cluster. Needs the ``dask`` extra:
``pip install "fastconv[dask]"``.

Exactness
    Each output chunk reads the input it needs: its receptive field (the halo) from the
    neighbouring chunks, with padding and border modes applied at the image border only,
    never at chunk borders. So the result equals the in-memory call for every chunking:
    bitwise for the filters, pooling, Canny and inference, and for convolution with
    ``algorithm="direct"``; other convolution algorithms may choose per chunk and differ
    by float rounding. Canny's hysteresis follows edges across chunks (the regions of
    candidate pixels are labelled per chunk and joined across chunk borders).
Chunks
    Convolution gathers the channels into one chunk; pooling and the filters keep the
    chunks of the batch and channel axes. Output chunks follow the input chunks (divided
    by the stride). Chunks of tens of MB, larger than the halo, keep Dask's overhead
    small; chunks smaller than the halo work too, reading several neighbours.
Threads
    A task runs its kernels on the cores it owns (:func:`task_threads`): one thread per
    task on a ``dask.distributed`` worker whose nanny sets ``OMP_NUM_THREADS=1`` (its
    default), fastconv's thread count divided by the threads of the local threaded
    scheduler, and ``threads=`` when given. The cores are not oversubscribed.
"""
import contextlib
import copy
import functools
import math
import threading
from typing import NamedTuple

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph
except ImportError as exc:  # pragma: no cover - only without the extra
    raise ImportError('fastconv.dask needs Dask: pip install "fastconv[dask]"') from exc

from . import _ext, config, filters
from . import conv as _conv
from . import pooling as _pooling
from ._checks import as_count, conv_geometry, result_dtype

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "filter2d", "gaussian", "sobel", "scharr",
           "prewitt", "gradient", "canny", "logits", "predict", "task_threads"]


# ---- threads ----------------------------------------------------------------------------

def task_threads(threads=None):
    """The threads fastconv's kernels use in the Dask task that calls this.

    ``threads`` when given (1 to ``fastconv.config.MAX_THREADS``); on a
    ``dask.distributed`` worker, fastconv's thread count (``OMP_NUM_THREADS``, which the
    worker's nanny sets to 1) divided by the worker's threads; in a thread of the local
    threaded scheduler, fastconv's thread count divided by the scheduler's threads
    (``dask.config`` ``num_workers``, else the CPU count); fastconv's thread count with
    the synchronous scheduler. At least 1.
    """
    if threads is not None:
        return config.check_thread_count(threads, "threads", "fastconv.dask")
    total = config.get_num_threads()
    worker = _distributed_worker()
    if worker is not None:
        return max(1, total // worker.state.nthreads)
    if threading.current_thread() is threading.main_thread():
        return total
    return max(1, total // (dask.config.get("num_workers", None) or dask.system.CPU_COUNT))


def _distributed_worker():
    try:
        from distributed import get_worker
        return get_worker()
    except (ImportError, ValueError):
        return None


@contextlib.contextmanager
def _task_threads(threads):
    """Run the kernels of the calling thread on task_threads(threads), then restore."""
    before = config.get_num_threads()
    _ext.set_thread_num_threads(task_threads(threads))
    try:
        yield
    finally:
        _ext.set_thread_num_threads(before)


# ---- stencils: output chunks from the input regions they read ---------------------------

class _Axis(NamedTuple):
    """How one spatial axis of a stencil's output chunks reads its input.

    For output chunk i: sources[i] are the input positions its region reads, in order
    (-1: a zero); keep[i] is the (start, stop) of the op's output on the region that is the
    chunk; pads[i] is the (before, after) zero padding the op adds to the region."""
    chunks: tuple
    sources: list
    keep: list
    pads: list


def _chunk_bounds(chunks):
    return np.cumsum((0,) + tuple(chunks))


def _border_axis(chunks, n, before, after, border):
    """A same-size filter reading `before` and `after` pixels beyond each output pixel,
    with the border mode (an index into filters.BORDER_MODES) at the image border.

    A chunk at the image border reads nothing beyond it: the filter applies the mode at
    the region's edge itself, as the in-memory call does at the image's, and no copy of
    the reflected edge is gathered. Not under wrap, which reads the far side of the image
    (unless the chunk spans the axis), nor where the halo is not shorter than the chunk
    (the mode would reflect past the region)."""
    bounds = _chunk_bounds(chunks)
    wrap = filters.BORDER_MODES[border] == "wrap"
    sources, keep = [], []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        own_edge = (a == 0 and b == n) or (not wrap and max(before, after) < b - a)
        start = a if a == 0 and own_edge else a - before
        stop = b if b == n and own_edge else b + after
        sources.append(_ext.border_indices(start, stop - start, n, border))
        keep.append((a - start, b - start))
    return _Axis(tuple(chunks), sources, keep, [(0, 0)] * len(chunks))


def _output_chunks(chunks, stride, pad_before, out_len):
    """Output chunks that follow the input chunks: output position o (its window starts at
    o * stride - pad_before) goes with the input chunk that window starts in."""
    bounds = [min(out_len, max(0, -(-(int(b) + pad_before) // stride)))
              for b in _chunk_bounds(chunks)[1:-1]]
    edges = sorted(set([0] + bounds + [out_len]))
    return tuple(int(b - a) for a, b in zip(edges[:-1], edges[1:])) or (0,)


def _conv_axis(chunks, n, extent, stride, pad_before, pad_after, out_len):
    """A convolution's axis: each output chunk reads exactly the input its windows cover
    and gets the zero padding they reach past the image border (all of it padding when the
    windows lie wholly in the padding)."""
    out_chunks = _output_chunks(chunks, stride, pad_before, out_len)
    bounds = _chunk_bounds(out_chunks)
    sources, keep, pads = [], [], []
    for o0, o1 in zip(bounds[:-1], bounds[1:]):
        first = int(o0) * stride - pad_before              # the windows span [first, end)
        end = (int(o1) - 1) * stride - pad_before + extent
        start, stop = min(max(first, 0), n), min(max(end, 0), n)
        if stop > start:
            pads.append((start - first, end - stop))
        else:
            start = stop = 0
            pads.append((0, end - first))
        sources.append(np.arange(start, stop))
        keep.append((0, int(o1 - o0)))
    return _Axis(out_chunks, sources, keep, pads)


def _pool_axis(chunks, n, extent, stride, pad, out_len):
    """A pooling axis: pooling pads both sides alike, so each output chunk reads from a
    stride-aligned row with the op's own padding and keeps the rows whose windows lie in
    the region or the real border: the first ceil(pad / stride) rows of an inner chunk
    read the padding and are dropped, as are rows past its end."""
    out_chunks = _output_chunks(chunks, stride, pad, out_len)
    bounds = _chunk_bounds(out_chunks)
    sources, keep = [], []
    for o0, o1 in zip(bounds[:-1], bounds[1:]):
        dropped = min(int(o0), -(-pad // stride))
        start = (int(o0) - dropped) * stride
        stop = max(min(n, (int(o1) - 1) * stride - pad + extent), start + 1)
        sources.append(np.arange(start, stop))
        keep.append((dropped, dropped + int(o1 - o0)))
    return _Axis(out_chunks, sources, keep, [(0, 0)] * len(out_chunks))


def _pieces(sources, chunks):
    """The input blocks a region reads along one axis, [(block, start, stop)] with each
    block's slice covering what is read in it, and sources renumbered as positions in the
    concatenation of those slices (None when that is 0, 1, 2, ...; -1 stays -1)."""
    bounds = _chunk_bounds(chunks)
    valid = sources >= 0
    read = sources[valid]
    blocks = np.searchsorted(bounds, read, side="right") - 1
    pieces, renumbered, position = [], sources.copy(), 0
    for b in np.unique(blocks):
        local = read[blocks == b] - bounds[b]
        start, stop = int(local.min()), int(local.max()) + 1
        pieces.append((int(b), start, stop))
        renumbered[np.flatnonzero(valid)[blocks == b]] = local - start + position
        position += stop - start
    if renumbered.size == position and np.array_equal(renumbered, np.arange(position)):
        renumbered = None
    return pieces, renumbered


def _cut(block, slices):
    """Copies of block[..., rows, cols] for each (rows, cols) of slices: the parts of the
    block that neighbouring chunks read, so the rest of the block can be freed."""
    return [np.array(block[..., r0:r1, c0:c1]) for (r0, r1), (c0, c1) in slices]


def _run_tile(func, pieces, rows, cols, keep_rows, keep_cols, pads, threads):
    """One output chunk: func(grid, window, pads) on the grid of its input pieces ([block,
    None] for a whole block, [cuts, k] for the k-th cut of one), or on the region they make
    gathered at rows and cols (None: all, in order) when it must be; window: the chunk's
    ((top, bottom), (left, right)) in the op's output on the region."""
    grid = [[value if k is None else value[k] for value, k in row] for row in pieces]
    if rows is not None or cols is not None:
        grid = [[_conv.gather(filters._joined(grid), rows, cols)]]
    with _task_threads(threads):
        return func(grid, (keep_rows, keep_cols), pads)


def _on_region(tile, grid, window, pads):
    """tile(region, pads) on the region the grid makes, cut to the window: a view when it is
    most of the output (a copy would cost a fresh allocation of the chunk's size), a copy
    when holding on to the output would waste more than the chunk."""
    out = tile(filters._joined(grid), pads)
    (top, bottom), (left, right) = window
    kept = out[..., top:bottom, left:right]
    return kept if 2 * kept.size >= out.size else np.array(kept)


def _stencil(name, x, rows, cols, func, dtype, lead_chunks, threads):
    """A dask array whose chunk (lead..., i, j) is func applied to the region of x that
    rows.sources[i] and cols.sources[j] select from the same leading block, cut to
    rows.keep[i] and cols.keep[j]: func(grid, window, (top, bottom, left, right)) computes
    it from the grid of pieces that make the region (see _run_tile), with the padding the
    region needs. lead_chunks: the output's leading chunks, one block for
    each of x's leading blocks. Each input block has at most one task cutting the parts
    its neighbours read."""
    token = dask.base.tokenize(name, x, rows.sources, cols.sources, rows.keep, cols.keep,
                               rows.pads, cols.pads, func, dtype, lead_chunks, threads)
    out_name, cut_name, func_key = (f"{name}-{token}", f"{name}-cut-{token}",
                                    f"{name}-func-{token}")
    row_pieces = [_pieces(s, x.chunks[-2]) for s in rows.sources]
    col_pieces = [_pieces(s, x.chunks[-1]) for s in cols.sources]
    cuts = {}          # input block index -> the (rows, cols) slices read from it
    tiles = {}         # output block index -> (pieces, rows index, columns index)
    for lead in np.ndindex(*x.numblocks[:-2]):
        for i, (r_pieces, r_index) in enumerate(row_pieces):
            for j, (c_pieces, c_index) in enumerate(col_pieces):
                if r_pieces and c_pieces:
                    pieces = [[_piece(cuts, x, lead, rp, cp) for cp in c_pieces]
                              for rp in r_pieces]
                else:   # a region that reads nothing: zeros (or nothing) of its size
                    shape = tuple(x.chunks[k][b] for k, b in enumerate(lead))
                    pieces = [[(np.zeros(shape + (len(rows.sources[i]),
                                                  len(cols.sources[j])), x.dtype), None)]]
                    r_index = c_index = None
                tiles[lead + (i, j)] = (pieces, r_index, c_index)
    dsk = {func_key: func}
    dsk.update({(cut_name,) + block: (_cut, (x.name,) + block, slices)
                for block, slices in cuts.items()})

    def reference(block, k):
        """What _run_tile gets for a piece: [a zero region, None], [a block's key, None] or
        [the key of its cuts, k]."""
        if not isinstance(block, tuple):
            return [block, None]
        return [((x.name,) if k is None else (cut_name,)) + block, k]

    for index, (pieces, r_index, c_index) in tiles.items():
        pieces = [[reference(block, k) for block, k in row] for row in pieces]
        i, j = index[-2:]
        dsk[(out_name,) + index] = (_run_tile, func_key, pieces, r_index, c_index,
                                    rows.keep[i], cols.keep[j], rows.pads[i] + cols.pads[j],
                                    threads)
    graph = HighLevelGraph.from_collections(out_name, dsk, dependencies=[x])
    return da.Array(graph, out_name, tuple(lead_chunks) + (rows.chunks, cols.chunks),
                    meta=np.empty((0,) * x.ndim, dtype))


def _piece(cuts, x, lead, row_piece, col_piece):
    """(x's block index, None) when the piece is all of the block, else (the block index,
    k) for the k-th slice cut from it (recorded in cuts)."""
    (rb, r0, r1), (cb, c0, c1) = row_piece, col_piece
    block = lead + (rb, cb)
    if (r0, r1) == (0, x.chunks[-2][rb]) and (c0, c1) == (0, x.chunks[-1][cb]):
        return block, None
    slices = cuts.setdefault(block, [])
    if ((r0, r1), (c0, c1)) not in slices:
        slices.append(((r0, r1), (c0, c1)))
    return block, slices.index(((r0, r1), (c0, c1)))


# ---- inputs -----------------------------------------------------------------------------

def _dask_input(x, name, func, ndims):
    """x as a dask array of one of the ranks ndims, with a real dtype."""
    if not isinstance(x, da.Array):
        try:
            x = da.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{func}: {name} must be a dask array or array-like, got "
                            f"{type(x).__name__}") from exc
    if x.ndim not in ndims:
        raise ValueError(f"{func}: expected {name} with {' or '.join(map(str, ndims))} "
                         f"dimensions, got shape {x.shape}")
    if any(math.isnan(s) for s in x.shape):
        raise ValueError(f"{func}: {name} has unknown chunk sizes; call "
                         f"{name}.compute_chunk_sizes() first")
    result_dtype(func, **{name: x})        # a TypeError for complex, object, ... arrays
    return x


def _one_chunk(x, axes):
    """x with each of axes in one chunk."""
    if all(len(x.chunks[a]) == 1 for a in axes):
        return x
    return x.rechunk({a: -1 for a in axes})


# ---- convolution and pooling ------------------------------------------------------------

def _conv_tile(region, pads, weight, bias, stride, dilation, groups, algorithm, flip):
    return _conv.conv2d(region, weight, bias, stride, pads, dilation, groups,
                        algorithm=algorithm, flip=flip)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           algorithm="auto", flip=False, threads=None):
    """:func:`fastconv.conv2d` of a dask array x (N, C, H, W), chunked along N, H and W.

    weight and bias are in-memory arrays (a dask array is computed first); they travel
    once to each worker. The channels are gathered into one chunk. Returns a dask array
    (N, K, P, Q) whose chunks follow x's. threads: see :func:`task_threads`.
    """
    func = "fastconv.dask.conv2d"
    x = _dask_input(x, "x", func, (4,))
    weight = np.asarray(weight.compute() if isinstance(weight, da.Array) else weight)
    if bias is not None:
        bias = np.asarray(bias.compute() if isinstance(bias, da.Array) else bias)
    geom = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups, func)
    extents = _window_extents(geom)
    # the in-memory call on one window checks the other arguments
    _conv.conv2d(np.zeros((1, geom.C) + extents, x.dtype), weight, bias, geom.stride, 0,
                 geom.dilation, groups, algorithm=algorithm, flip=flip)
    dtype = result_dtype(func, x=x, weight=weight, bias=bias)
    top, bottom, left, right = geom.padding
    rows = _conv_axis(x.chunks[2], geom.H, extents[0], geom.stride[0], top, bottom, geom.P)
    cols = _conv_axis(x.chunks[3], geom.W, extents[1], geom.stride[1], left, right, geom.Q)
    tile = functools.partial(_conv_tile, weight=weight, bias=bias, stride=geom.stride,
                             dilation=geom.dilation, groups=groups, algorithm=algorithm,
                             flip=flip)
    tile = functools.partial(_on_region, tile)
    return _stencil("fastconv-conv2d", _one_chunk(x, (1,)), rows, cols, tile, dtype,
                    (x.chunks[0], (geom.K,)), threads)


def _window_extents(geom):
    """The rows and columns one window spans: dilation x (size - 1) + 1."""
    return (geom.dilation[0] * (geom.R - 1) + 1, geom.dilation[1] * (geom.S - 1) + 1)


def _pool_tile(region, pads, pool, **kwargs):
    return pool(region, **kwargs)


def _pool(func, pool, x, kernel_size, stride, padding, dilation, ceil_mode, threads,
          **others):
    """A pooling op over x's spatial chunks, channel chunks kept."""
    x = _dask_input(x, "x", func, (4,))
    geom = _pooling.pool_geometry(func, x.shape, kernel_size, stride, padding, dilation,
                                  ceil_mode, **others)
    kwargs = dict(kernel_size=geom.kernel, stride=geom.stride, padding=geom.padding,
                  ceil_mode=ceil_mode, **others)
    if pool is _pooling.max_pool2d:
        kwargs["dilation"] = geom.dilation
    extents = [d * (k - 1) + 1 for d, k in zip(geom.dilation, geom.kernel)]
    rows = _pool_axis(x.chunks[2], geom.H, extents[0], geom.stride[0], geom.padding[0], geom.P)
    cols = _pool_axis(x.chunks[3], geom.W, extents[1], geom.stride[1], geom.padding[1], geom.Q)
    tile = functools.partial(_on_region, functools.partial(_pool_tile, pool=pool, **kwargs))
    return _stencil(f"fastconv-{pool.__name__}", x, rows, cols, tile,
                    result_dtype(func, x=x), x.chunks[:2], threads)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
               threads=None):
    """:func:`fastconv.max_pool2d` of a dask array x (N, C, H, W), chunked along every
    axis (no indices: they would need the whole image). threads: see
    :func:`task_threads`."""
    return _pool("fastconv.dask.max_pool2d", _pooling.max_pool2d, x, kernel_size, stride,
                 padding, dilation, ceil_mode, threads)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, threads=None):
    """:func:`fastconv.avg_pool2d` of a dask array x (N, C, H, W), chunked along every
    axis. threads: see :func:`task_threads`."""
    return _pool("fastconv.dask.avg_pool2d", _pooling.avg_pool2d, x, kernel_size, stride,
                 padding, 1, ceil_mode, threads, count_include_pad=count_include_pad,
                 divisor_override=divisor_override)


# ---- filters ----------------------------------------------------------------------------

def _image_input(image, func, dtype_of):
    """image as a dask array of planes (H, W) or (N, H, W): colour images (a last axis of
    3 or 4) become their luminance in dtype_of(image)'s dtype, as the in-memory filters
    compute it."""
    image = _dask_input(image, "image", func, (2, 3, 4))
    rgb, _ = filters._image_layout(image.shape, func)
    if rgb:
        dtype = dtype_of(image)
        image = _one_chunk(image, (-1,)).map_blocks(filters._luminance, dtype, dtype=dtype,
                                                    drop_axis=image.ndim - 1)
    return image


def _filter_tile(region, pads, filter_func, **kwargs):
    if region.ndim == 3 and region.shape[-1] in filters._COLOUR_CHANNELS:
        # planes 3 or 4 pixels wide would read as one colour image: one plane at a time
        return np.stack([filter_func(plane, **kwargs) for plane in region])
    return filter_func(region, **kwargs)


def _planes_tile(grid, window, pads, planes):
    """planes(pieces, window=window) on a grid of (h, w) or (N, h, w) pieces, in their
    rank."""
    if grid[0][0].ndim == 3:
        return planes(grid, window=window)
    return planes([[piece[None] for piece in row] for row in grid], window=window)[0]


def _same_size(name, image, filter_func, halo, mode, threads, kernel=None, dtype=None,
               planes=None, **kwargs):
    """A same-size filter over the image's chunks, each reading `halo` = ((top, bottom),
    (left, right)) pixels beyond it, the border mode applied at the image border. With
    planes, the filter's form on a grid of pieces (see filters._filter_input), each chunk
    is planes(pieces, window=, border=, dtype=) on its own block and its neighbours' edges
    where they lie, computing only the chunk; else filter_func(region, mode=mode,
    dtype=dtype, **kwargs) on the region they make, cut to the chunk."""
    func = f"fastconv.dask.{name}"
    arrays = {} if kernel is None else {"kernel": kernel}
    image = _image_input(image, func,
                         lambda a: filters._compute_dtype(dtype, func, image=a, **arrays))
    extra = arrays if dtype is None else {**arrays, "dtype": dtype}
    # the in-memory call on one pixel checks the arguments and gives the result's dtype
    probe = filter_func(np.zeros((1, 1), image.dtype), **extra, mode=mode, **kwargs)
    border = filters._border(mode, func)
    (top, bottom), (left, right) = halo
    rows = _border_axis(image.chunks[-2], image.shape[-2], top, bottom, border)
    cols = _border_axis(image.chunks[-1], image.shape[-1], left, right, border)
    if planes is None:
        tile = functools.partial(_on_region, functools.partial(
            _filter_tile, filter_func=filter_func, mode=mode, **extra, **kwargs))
    else:
        tile = functools.partial(_planes_tile, planes=functools.partial(
            planes, border=border, dtype=probe.dtype))
    return _stencil(f"fastconv-{name}", image, rows, cols, tile, probe.dtype,
                    image.chunks[:-2], threads)


def _edge_filter(name, image, axis, mode, normalize, dtype, threads):
    planes = functools.partial(filters._edge_planes, operator=name,
                               axis=filters._axis(axis, f"fastconv.dask.{name}"),
                               normalize=normalize)
    return _same_size(name, image, getattr(filters, name), ((1, 1), (1, 1)), mode, threads,
                      dtype=dtype, planes=planes, axis=axis, normalize=normalize)


def sobel(image, axis=None, *, mode="reflect", normalize=False, dtype=None, threads=None):
    """:func:`fastconv.filters.sobel` of a dask array (H, W), (N, H, W) or colour."""
    return _edge_filter("sobel", image, axis, mode, normalize, dtype, threads)


def scharr(image, axis=None, *, mode="reflect", normalize=False, dtype=None, threads=None):
    """:func:`fastconv.filters.scharr` of a dask array (H, W), (N, H, W) or colour."""
    return _edge_filter("scharr", image, axis, mode, normalize, dtype, threads)


def prewitt(image, axis=None, *, mode="reflect", normalize=False, dtype=None, threads=None):
    """:func:`fastconv.filters.prewitt` of a dask array (H, W), (N, H, W) or colour."""
    return _edge_filter("prewitt", image, axis, mode, normalize, dtype, threads)


def gradient(image, operator="sobel", *, mode="reflect", normalize=False, dtype=None,
             threads=None):
    """:func:`fastconv.filters.gradient` of a dask array: (magnitude, direction), two dask
    arrays computed from the same two derivatives."""
    operator = filters._operator(operator, "fastconv.dask.gradient")
    gy, gx = (_edge_filter(operator, image, axis, mode, normalize, dtype, threads)
              for axis in (0, 1))
    return da.sqrt(gx * gx + gy * gy), da.arctan2(gy, gx)


def filter2d(image, kernel, *, mode="reflect", flip=False, dtype=None, threads=None):
    """:func:`fastconv.filters.filter2d` of a dask array; kernel is an in-memory array."""
    kernel = np.asarray(kernel)
    filters.filter2d(np.zeros((1, 1)), kernel, mode=mode, flip=flip)     # checks
    R, S = kernel.shape
    halo = ((R // 2, R - 1 - R // 2), (S // 2, S - 1 - S // 2))   # anchored at the centre
    planes = functools.partial(filters._correlate, kernel=kernel[::-1, ::-1] if flip else kernel)
    return _same_size("filter2d", image, filters.filter2d, halo, mode, threads, kernel=kernel,
                      dtype=dtype, planes=planes, flip=flip)


def gaussian(image, sigma=1.0, *, mode="reflect", truncate=4.0, dtype=None, threads=None):
    """:func:`fastconv.filters.gaussian` of a dask array (H, W), (N, H, W) or colour."""
    filters.gaussian(np.zeros((1, 1)), sigma, mode=mode, truncate=truncate)   # checks
    radius = filters.gaussian_radius(sigma, truncate)
    return _same_size("gaussian", image, filters.gaussian, ((radius,) * 2,) * 2, mode,
                      threads, dtype=dtype, sigma=sigma, truncate=truncate)


# ---- Canny ------------------------------------------------------------------------------

def canny(image, sigma=1.0, low_threshold=None, high_threshold=None, *, mode="reflect",
          threads=None):
    """:func:`fastconv.filters.canny` of a dask array (H, W), (N, H, W) or colour: equal to
    the in-memory edges for every chunking.

    The stages before hysteresis run chunk by chunk with a halo. Hysteresis keeps the
    regions of candidate pixels that hold a strong one, and a region may cross many chunks:
    each chunk's regions are labelled, one small task joins the labels that touch across
    chunk borders, and each chunk then keeps its regions that reach a strong pixel. The
    candidate map (one byte per pixel) is held until that join, so a result much larger
    than memory needs a distributed cluster that can spill it to disk.
    """
    func = "fastconv.dask.canny"
    source = _dask_input(image, "image", func, (2, 3, 4))
    low, high = filters.canny_thresholds(source.dtype, low_threshold, high_threshold, func)
    filters.canny(np.zeros((1, 1)), sigma, low, high, mode=mode)       # checks the rest
    halo = filters.gaussian_radius(sigma) + 2     # smoothing, the derivative, the suppression
    classes = _same_size("canny", source, filters.canny_classes, ((halo,) * 2,) * 2, mode,
                         threads, sigma=sigma, low_threshold=low, high_threshold=high)
    classes = classes.map_blocks(_clear_outer_ring, classes.shape, dtype=np.uint8)
    summaries = [dask.delayed(_region_summary)(block)
                 for block in classes.to_delayed().ravel()]
    tables = dask.delayed(_join_regions)(summaries, classes.numblocks)
    return classes.map_blocks(_keep_regions, tables, dtype=np.bool_)


def _clear_outer_ring(classes, shape, block_info=None):
    """Zero the classes on the image's outermost pixel ring, never an edge (in memory the
    suppression leaves it out)."""
    (r0, r1), (c0, c1) = block_info[0]["array-location"][-2:]
    classes = classes.copy()
    for position, size, axis in ((r0, shape[-2], -2), (c0, shape[-1], -1)):
        first, last = -position, size - 1 - position
        for index in (first, last):
            if 0 <= index < classes.shape[axis]:
                np.moveaxis(classes, axis, 0)[index] = 0
    return classes


def _labels(classes):
    """The 8-connected regions of nonzero classes in each plane of a block, numbered 1..n
    through the block; (labels with planes as the first axis, n)."""
    planes = classes.reshape((math.prod(classes.shape[:-2]),) + classes.shape[-2:])
    labels = np.empty(planes.shape, dtype=np.int32)
    return labels, _ext.label_regions(labels, planes)


def _region_summary(classes):
    """What joining a block's regions with its neighbours' needs: the number of regions,
    which hold a strong pixel, and the labels on the block's four edges."""
    labels, count = _labels(classes)
    strong = np.zeros(count + 1, dtype=bool)
    strong[labels[classes.reshape(labels.shape) == 2]] = True
    return {"count": count, "strong": strong,
            "edges": {"top": labels[:, 0].copy(), "bottom": labels[:, -1].copy(),
                      "left": labels[:, :, 0].copy(), "right": labels[:, :, -1].copy()}}


def _touching(a, b, shifts):
    """Pairs (a[p, i], b[p, i + d]) for d in shifts where both are regions: the labels on
    two facing block edges (planes p) that are 8-neighbours."""
    n = a.shape[1]
    pairs = []
    for d in shifts:
        lo, hi = max(0, -d), min(n, b.shape[1] - d)
        if hi > lo:
            pairs.append(np.stack([a[:, lo:hi].ravel(), b[:, lo + d:hi + d].ravel()], 1))
    pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    return pairs[(pairs[:, 0] > 0) & (pairs[:, 1] > 0)]


def _join_regions(summaries, numblocks):
    """For each block, a table from its labels to whether the region holds a strong pixel
    anywhere in the image: regions that touch across block borders are joined
    (union-find over the touching pairs)."""
    grid = np.empty(numblocks, dtype=object)
    for index, summary in zip(np.ndindex(*numblocks), summaries):
        grid[index] = summary
    offsets = np.empty(numblocks, dtype=np.int64)
    total = 0
    for index in np.ndindex(*numblocks):
        offsets[index] = total
        total += grid[index]["count"]
    pairs = []
    # each block with its neighbours below, to the right, and on both lower diagonals
    for index in np.ndindex(*numblocks):
        *lead, i, j = index
        a = grid[index]["edges"]
        for (di, dj), (edge_a, edge_b, shifts) in {
                (1, 0): ("bottom", "top", (-1, 0, 1)), (0, 1): ("right", "left", (-1, 0, 1)),
                (1, 1): ("bottom", "top", "corner"), (1, -1): ("bottom", "top", "corner")
        }.items():
            other = tuple(lead) + (i + di, j + dj)
            if not all(0 <= k < n for k, n in zip(other, numblocks)):
                continue
            b = grid[other]["edges"]
            if shifts == "corner":   # one pixel each: the touching corners
                ca, cb = (-1, 0) if dj == 1 else (0, -1)
                found = _touching(a[edge_a][:, ca:ca + 1 or None],
                                  b[edge_b][:, cb:cb + 1 or None], (0,))
            else:
                found = _touching(a[edge_a], b[edge_b], shifts)
            pairs.append(found + [[offsets[index], offsets[other]]])
    parent = {}

    def root(label):
        while parent.get(label, label) != label:
            parent[label] = parent.get(parent[label], parent[label])   # path halving
            label = parent[label]
        return label

    if pairs:
        for u, v in np.unique(np.concatenate(pairs), axis=0).tolist():
            ru, rv = root(u), root(v)
            if ru != rv:
                parent[max(ru, rv)] = min(ru, rv)
    strong = np.concatenate([[False]] + [grid[index]["strong"][1:]
                                         for index in np.ndindex(*numblocks)])
    roots = np.arange(total + 1)
    if parent:
        members = np.fromiter(parent.keys(), dtype=np.int64)
        roots[members] = [root(m) for m in members.tolist()]
    reaches = np.zeros(total + 1, dtype=bool)
    np.logical_or.at(reaches, roots, strong)
    tables = {}
    for index in np.ndindex(*numblocks):
        start = offsets[index]
        table = reaches[roots[start:start + grid[index]["count"] + 1]]
        table[0] = False     # label 0: not a candidate
        tables[index] = table
    return tables


def _keep_regions(classes, tables, block_info=None):
    """A block's edges: its regions that reach a strong pixel."""
    labels, _ = _labels(classes)
    return tables[tuple(block_info[0]["chunk-location"])][labels].reshape(classes.shape)


# ---- inference --------------------------------------------------------------------------

def _block_outputs(images, model, method, batch_size, threads):
    # a copy per task: tasks on threads of one worker share the model object, and
    # inference switches its mode
    with _task_threads(threads):
        return getattr(copy.deepcopy(model), method)(images, batch_size)


def _inference(method, model, images, batch_size, threads):
    """``model.<method>(images, batch_size)`` ("logits" or "predict") over a dask array of
    images chunked along N, one task per block; the model is one node of the graph."""
    func = f"fastconv.dask.{method}"
    if not hasattr(model, "logits") or not hasattr(model, "input_shape"):
        raise TypeError(f"{func}: model must be a fastconv image classifier (LeNet5, ResNet, "
                        f"MobileNetV2, ...), got {type(model).__name__}")
    batch_size = as_count(batch_size, "batch_size", func)
    images = _dask_input(images, "images", func, (3, 4))
    images = _one_chunk(images, range(1, images.ndim))
    probe = getattr(model, method)(np.zeros((0,) + images.shape[1:], images.dtype),
                                   batch_size)
    return da.map_blocks(_block_outputs, images, dask.delayed(model), method, batch_size,
                         threads, dtype=probe.dtype,
                         chunks=(images.chunks[0],) + tuple((n,) for n in probe.shape[1:]),
                         drop_axis=list(range(probe.ndim, images.ndim)),
                         meta=np.empty((0,) * probe.ndim, probe.dtype))


def logits(model, images, batch_size=500, *, threads=None):
    """``model.logits(images)`` over a dask array of images chunked along N: raw integer
    pixels (N, H, W) or (N, C, H, W), or prepared float images, as the model takes them.
    The model is one node of the graph, sent once to each worker that needs it. Returns a
    dask array (N, classes) equal to the in-memory call."""
    return _inference("logits", model, images, batch_size, threads)


def predict(model, images, batch_size=500, *, threads=None):
    """``model.predict(images)`` over a dask array of images chunked along N (as
    :func:`logits`): a dask array (N,) of int64 labels, each block's computed in the task
    that runs the model (only labels travel back)."""
    return _inference("predict", model, images, batch_size, threads)
