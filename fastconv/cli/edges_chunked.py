"""The chunked path of ``fastconv edges``: the image is read chunk by chunk (a memory-mapped
.npy file, a .zarr store, or a picture already in memory), fastconv.dask's edge filter runs
on Dask's scheduler of choice, and the result goes chunk by chunk to a .npy file or a .zarr
store (a picture format gets the whole result, as in memory), with a progress bar."""
import numpy as np

from .edges import DEFAULT_CHUNK, summary_line, write_image
from .options import CommandError

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


class NpyBlocks:
    """A .npy file as an array-like that reads only the slices asked for (a memory map
    opened per read): it pickles as its path, so processes and cluster workers read the
    file themselves rather than receive its contents."""

    def __init__(self, path):
        image = np.load(path, mmap_mode="r")
        self.path, self.shape, self.dtype, self.ndim = path, image.shape, image.dtype, image.ndim

    def __getitem__(self, key):
        return np.array(np.load(self.path, mmap_mode="r")[key])


class NpyWriter:
    """Writes slices into an existing .npy file through a memory map (picklable as its
    path, like NpyBlocks); distinct slices may be written from several processes."""

    def __init__(self, path):
        self.path = path

    def __setitem__(self, key, value):
        target = np.load(self.path, mmap_mode="r+")
        target[key] = value
        target.flush()


def _dask():
    try:
        import dask
        import dask.array as da
        from .. import dask as fd
    except ImportError:
        raise CommandError('.zarr stores, --chunks and --scheduler need Dask: pip install '
                           '"fastconv[dask]"') from None
    return dask, da, fd


def _source(da, args, image, side):
    """The image as a dask array in side x side chunks (a colour axis in one chunk)."""
    if image is None:                     # a .zarr store
        try:
            x = da.from_zarr(args.image)
        except Exception as exc:          # zarr raises many kinds for a folder that is not one
            raise CommandError(f"IMAGE: cannot read {args.image} as a zarr array "
                               f"({exc})") from None
        if not (x.ndim == 2 or (x.ndim == 3 and x.shape[-1] == 3)):
            raise CommandError(f"IMAGE: expected one grayscale (H, W) or RGB (H, W, 3) "
                               f"picture in {args.image}, got an array of shape {x.shape}")
    elif isinstance(image, np.memmap):
        x = da.from_array(NpyBlocks(args.image), chunks=-1, lock=False,
                          meta=np.empty((0,) * image.ndim, image.dtype))
    else:
        x = da.from_array(np.asarray(image), chunks=-1)
    return x.rechunk((side, side) + ((-1,) if x.ndim == 3 else ()))


def _target(da, edges, output):
    """(the delayed write of edges into output, or None for a picture format)."""
    if output.lower().rstrip("/").endswith(".zarr"):
        return edges.to_zarr(output, overwrite=True, compute=False)
    if output.lower().endswith(".npy"):
        np.lib.format.open_memmap(output, mode="w+", dtype=edges.dtype, shape=edges.shape)
        return da.store(edges, NpyWriter(output), lock=False, compute=False)
    return None


def _compute(dask, scheduler, *collections):
    """dask.compute(*collections) on the scheduler the user chose, with a progress bar."""
    scheduler = scheduler or "threads"
    if scheduler in LOCAL_SCHEDULERS:
        from dask.diagnostics import ProgressBar
        with ProgressBar():
            return dask.compute(*collections, scheduler=scheduler)
    if "://" not in scheduler:
        raise CommandError(f"--scheduler must be one of {', '.join(LOCAL_SCHEDULERS)} or a "
                           f"dask.distributed scheduler address such as tcp://HOST:8786, "
                           f"got {scheduler!r}")
    import distributed
    try:
        client = distributed.Client(scheduler, timeout=10)
    except OSError as exc:
        raise CommandError(f"--scheduler: cannot reach {scheduler} ({exc})") from None
    with client:
        futures = client.compute(list(collections))
        distributed.progress(futures)
        return client.gather(futures)


def run(args, image, source, output):
    dask, da, fd = _dask()
    side = args.chunks or DEFAULT_CHUNK
    x = _source(da, args, image, side)
    try:
        if args.method == "canny":
            edges = fd.canny(x, args.sigma, args.low, args.high, mode=args.mode)
        else:
            edges = getattr(fd, args.method)(x, mode=args.mode)
    except ValueError as exc:    # the options' values disagree (canny's --low > --high)
        raise CommandError(str(exc)) from None
    statistic = edges.sum() if edges.dtype == np.bool_ else edges.max()
    write = _target(da, edges, output)
    if write is None:
        result, statistic = _compute(dask, args.scheduler, edges, statistic)
        write_image(output, result)
    else:
        _, statistic = _compute(dask, args.scheduler, write, statistic)
    print(summary_line(source, output, args.method, edges.shape, edges.dtype, statistic))
    return 0
