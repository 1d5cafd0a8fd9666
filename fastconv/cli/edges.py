"""Edge image of a picture: the Sobel, Scharr or Prewitt gradient magnitude (scaled so the
strongest edge is white) or Canny's edge map. Without IMAGE a built-in synthetic test
image is used. Reading and writing PNG/JPEG needs Pillow (pip install "fastconv[examples]");
.npy input and .pgm/.npy output work without it.

Images larger than memory: IMAGE and --output may be .npy files (memory-mapped) or .zarr
stores, and the work then runs chunk by chunk on Dask (pip install "fastconv[dask]"):
whenever a .zarr store is read or written, --chunks or --scheduler is given, or a .npy
image is larger than one chunk. The result equals the in-memory one; .npy and .zarr
outputs hold the raw values (float magnitudes, or booleans for canny)."""
import argparse
import os

import numpy as np

from .. import filters
from .options import (CommandError, existing_file, output_file, positive_float,
                      positive_int)

METHODS = ("sobel", "scharr", "prewitt", "canny")
# Side of the square chunks of the chunked (Dask) path, unless --chunks says otherwise.
DEFAULT_CHUNK = 4096


def add_arguments(parser):
    parser.add_argument("image", nargs="?", metavar="IMAGE", type=existing_input,
                        help="picture to read (any format Pillow reads, .npy or a .zarr "
                             "store); default: the synthetic test image")
    parser.add_argument("--method", choices=METHODS, default="sobel",
                        help="edge detector (default: sobel)")
    parser.add_argument("-o", "--output", metavar="OUT", type=output_path,
                        help="file to write: .png and other Pillow formats, .pgm, or .npy "
                             "or .zarr for the raw result (default: edges.png, or edges.pgm "
                             "without Pillow)")
    parser.add_argument("--mode", default="reflect", choices=filters.BORDER_MODES,
                        help="border mode (default: reflect)")
    parser.add_argument("--sigma", type=positive_float, default=1.0,
                        help="canny: Gaussian smoothing sigma (default: 1.0)")
    parser.add_argument("--low", type=float, default=None,
                        help="canny: low threshold (default: 0.1 x the value range)")
    parser.add_argument("--high", type=float, default=None,
                        help="canny: high threshold (default: 0.2 x the value range)")
    parser.add_argument("--size", type=positive_int, default=256,
                        help="side of the synthetic image (default: 256)")
    parser.add_argument("--chunks", type=positive_int, default=None, metavar="N",
                        help=f"run on Dask in chunks of N x N pixels (default when chunked: "
                             f"{DEFAULT_CHUNK})")
    parser.add_argument("--scheduler", default=None, metavar="S",
                        help="run on Dask with scheduler S: threads (the default when "
                             "chunked), processes, synchronous, or a dask.distributed "
                             "scheduler's address tcp://HOST:PORT")


def existing_input(text):
    """An option value naming a file, or a .zarr store (a folder), that exists."""
    if text.lower().rstrip("/").endswith(".zarr") and os.path.isdir(text):
        return text
    return existing_file(text)


def output_path(text):
    """A file to write, or a .zarr store to create (replacing one that is there)."""
    if text.lower().rstrip("/").endswith(".zarr"):
        folder = os.path.dirname(text.rstrip("/")) or "."
        if not os.path.isdir(folder):
            raise argparse.ArgumentTypeError(f"expected a store to write, but there is no "
                                             f"folder {folder}")
        return text
    return output_file(text)


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


def read_image(path):
    """A picture as an array: (H, W) for grayscale, (H, W, 3) for colour. A file that
    cannot be read as one is a CommandError naming IMAGE."""
    try:
        if path.lower().endswith(".npy"):
            image = np.load(path, mmap_mode="r")
        else:
            Image = _pillow()
            if Image is None:
                raise CommandError(f"IMAGE: reading {path} needs Pillow: pip install "
                                   f"'fastconv[examples]' (or give a .npy file)")
            with Image.open(path) as img:
                if img.mode not in ("L", "I", "I;16", "F", "RGB"):
                    img = img.convert("RGB")
                image = np.asarray(img)
    except (OSError, ValueError) as exc:    # unreadable, not a picture, a pickled .npy
        raise CommandError(f"IMAGE: cannot read {path} as a picture ({exc})") from None
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        raise CommandError(f"IMAGE: expected one grayscale (H, W) or RGB (H, W, 3) picture "
                           f"in {path}, got an array of shape {image.shape}")
    return image


def to_uint8(edges):
    """0..255: booleans as 0/255, magnitudes scaled so the largest is 255."""
    if edges.dtype == np.bool_:
        return edges.astype(np.uint8) * 255
    top = float(edges.max()) if edges.size else 0.0
    scaled = edges / top * 255 if top > 0 else np.zeros_like(edges)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def write_pgm(path, gray):
    """Binary PGM (P5), 8-bit: readable by most image tools, no library needed."""
    h, w = gray.shape
    with open(path, "wb") as f:
        f.write(f"P5\n{w} {h}\n255\n".encode("ascii"))
        f.write(np.ascontiguousarray(gray, dtype=np.uint8).tobytes())


def write_image(path, edges):
    """Write the edge image as the extension of `path` says; a file that cannot be
    written so is a CommandError naming --output."""
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            np.save(path, edges)
        elif ext == ".pgm":
            write_pgm(path, to_uint8(edges))
        else:
            Image = _pillow()
            if Image is None:
                raise CommandError(f"--output: writing {path} needs Pillow: pip install "
                                   f"'fastconv[examples]' (or write a .pgm or .npy file)")
            Image.fromarray(to_uint8(edges)).save(path)
    except (OSError, ValueError) as exc:    # no such folder, no permission, unknown format
        raise CommandError(f"--output: cannot write {path} ({exc})") from None


def edge_image(image, method="sobel", mode="reflect", sigma=1.0, low=None, high=None):
    """The edge image of one picture: a float magnitude, or a bool map for canny."""
    if method == "canny":
        return filters.canny(image, sigma, low, high, mode=mode)
    return getattr(filters, method)(image, mode=mode)


def _extension(path):
    return os.path.splitext(path.rstrip("/"))[1].lower() if path else ""


def _chunked(args, image):
    """Whether the run goes chunk by chunk on Dask (the module's docstring says when)."""
    if args.chunks is not None or args.scheduler is not None:
        return True
    if ".zarr" in (_extension(args.image), _extension(args.output)):
        return True
    return (isinstance(image, np.memmap) and max(image.shape[:2]) > DEFAULT_CHUNK
            and _have_dask())


def _have_dask():
    try:
        import dask.array    # noqa: F401
    except ImportError:
        return False
    return True


def run(args):
    if args.image is None:
        image = filters.synthetic_image(args.size)
        source = f"synthetic {args.size}x{args.size} image"
    elif _extension(args.image) == ".zarr":
        image, source = None, args.image
    else:
        image, source = read_image(args.image), args.image
    output = args.output or ("edges.png" if _pillow() is not None else "edges.pgm")
    if _chunked(args, image):
        from . import edges_chunked
        return edges_chunked.run(args, image, source, output)
    try:
        edges = edge_image(image, args.method, args.mode, args.sigma, args.low, args.high)
    except ValueError as exc:    # the options' values disagree (canny's --low > --high)
        raise CommandError(str(exc)) from None
    write_image(output, edges)
    print(summary_line(source, output, args.method, edges.shape, edges.dtype,
                       edges.sum() if edges.dtype == np.bool_ else edges.max()))
    return 0


def summary_line(source, output, method, shape, dtype, statistic):
    """The line a run ends with: what was read and written, and the edge pixels (canny) or
    the largest magnitude."""
    what = (f"edge pixels: {int(statistic):,}" if dtype == np.bool_
            else f"max magnitude {float(statistic):.4g}")
    return f"{source} -> {output} ({method}, {shape[-1]}x{shape[-2]}, {what})"
