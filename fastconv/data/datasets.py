"""Image datasets: IDX files, MNIST and Fashion-MNIST, CIFAR-10 and CIFAR-100 (downloaded
once, verified, cached) and scikit-learn's bundled 8x8 digits (offline, brought to
LeNet-5's 32x32 input).

Images come back *raw*, as the files hold them: (N, H, W) uint8 0..255 for the grey ones,
(N, 3, 32, 32) uint8 for CIFAR, with labels (N,) uint8; the model's preprocessing
(:mod:`fastconv.data.preprocessing`) turns them into network input.
"""
import gzip
import hashlib
import http.client
import math
import os
import tarfile
import urllib.request
import zlib

import numpy as np

from .._files import write_atomic

__all__ = ["read_idx", "load_mnist", "load_fashion_mnist", "load_cifar10", "load_cifar100",
           "load_digits", "download_file", "data_root", "mnist_root", "DownloadError",
           "MNIST_MIRRORS", "MNIST_FILES"]

# IDX type codes (third byte of the magic number) and their big-endian dtypes.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

#: Public MNIST mirrors tried in turn (the original site does not serve the files).
#: The environment variable FASTCONV_MNIST_MIRRORS (space or comma separated URLs)
#: replaces this list.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

#: file name -> (md5 of the official .gz, md5 of the decompressed payload or None).
#: A download is accepted if either matches: mirrors that recompress the files change
#: the .gz but not its content.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", None),
    "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", None),
    "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3",
                                  "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c",
                                  "27ae3e4e09519cfbb04c329615203637"),
}

#: Fashion-MNIST (Zalando Research): MNIST's file names and format, other images.
FASHION_MNIST_MIRRORS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", None),
    "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe", None),
    "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79", None),
    "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310", None),
}

#: The CIFAR archives in their binary version (records of label bytes and 3,072 pixel
#: bytes: no pickle), from the authors' site, with the md5 it publishes.
CIFAR_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
CIFAR_ARCHIVES = {
    # name: (archive, md5, folder inside it, training files, test files, label bytes,
    # classes of each label byte)
    "cifar10": ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
                "cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)],
                ["test_batch.bin"], 1, (10,)),
    "cifar100": ("cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8",
                 "cifar-100-binary", ["train.bin"], ["test.bin"], 2, (20, 100)),
}
CIFAR_PIXELS = 3 * 32 * 32

GZIP_MAGIC = b"\x1f\x8b"


class DownloadError(OSError):
    """No mirror delivered a file that passed verification."""


# -- IDX ----------------------------------------------------------------------------------
def _read_payload(path):
    """The file's bytes, decompressed when it is gzip (detected by content, not name)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from None


def read_idx(path):
    """Read an IDX file (raw or gzip-compressed) into a NumPy array.

    IDX layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, one big-endian int32 per
    dimension, then the data in row-major order.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    ndarray
        Shape from the header, native byte order.

    Raises
    ------
    ValueError
        Naming the file, when the magic number, dimensions or data length are wrong
        (a truncated, padded or foreign file) or the gzip stream is corrupt.
    """
    path = os.fspath(path)
    data = _read_payload(path)
    if len(data) < 4:
        raise ValueError(f"{path}: too short for an IDX file ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES or data[3] == 0:
        raise ValueError(f"{path}: not an IDX file (magic number {data[:4].hex()}, expected "
                         f"0000 then a type code and a dimension count)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes, the {ndim} "
                         f"dimensions need {header})")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    if any(d < 0 for d in shape):
        raise ValueError(f"{path}: invalid IDX dimensions {shape}")
    dtype = np.dtype(IDX_DTYPES[data[2]])
    # Python ints: up to 255 dimensions of 2**31 - 1 would wrap around in int64.
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        problem = "truncated" if found < expected else "has trailing bytes"
        raise ValueError(f"{path}: {problem}: dimensions {shape} need {expected} bytes of "
                         f"{dtype.newbyteorder('=')} data, found {found}")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


# -- downloading --------------------------------------------------------------------------
def _md5(data):
    return hashlib.md5(data).hexdigest()


def verify_checksum(data, md5_gz, md5_payload=None):
    """True if `data` is the expected file: md5 of the bytes as downloaded, or (for a
    recompressed .gz) md5 of the decompressed payload."""
    if _md5(data) == md5_gz:
        return True
    if md5_payload is None:
        return False
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return False
    return _md5(data) == md5_payload


def _fetch(url, timeout):
    """The body of `url`; raises on HTTP errors and on a body shorter than announced."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        announced = response.headers.get("Content-Length")
        chunks = []
        while True:
            chunk = response.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    if announced is not None and len(data) != int(announced):
        raise DownloadError(f"connection closed after {len(data)} of {announced} bytes")
    return data


def mirror_list(mirrors=None):
    """`mirrors`, else $FASTCONV_MNIST_MIRRORS, else :data:`MNIST_MIRRORS`."""
    if mirrors is None:
        env = os.environ.get("FASTCONV_MNIST_MIRRORS", "").replace(",", " ").split()
        mirrors = env or MNIST_MIRRORS
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    return [m if m.endswith("/") else m + "/" for m in mirrors]


def download_file(filename, root, mirrors=None, checksums=None, timeout=30):
    """Download `filename` from the first mirror that delivers a verified copy.

    Parameters
    ----------
    filename : str
        Name on the mirror and in `root`, e.g. "train-images-idx3-ubyte.gz".
    root : str
        Destination folder (created if needed).
    mirrors : list of str, optional
        Base URLs tried in turn (default: :func:`mirror_list`).
    checksums : (md5 of the file, md5 of its decompressed payload or None), optional
        Default: the entry of :data:`MNIST_FILES`.
    timeout : float
        Seconds per connection attempt.

    Returns
    -------
    str
        The path written. It appears only complete and verified (written atomically).

    Raises
    ------
    DownloadError
        Listing what every mirror did.
    """
    md5_gz, md5_payload = checksums or MNIST_FILES[filename]
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, filename)
    failures = []
    for base in mirror_list(mirrors):
        url = base + filename
        try:
            data = _fetch(url, timeout)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # URLError, timeouts and resets are OSErrors; a dropped connection may also
            # surface as http.client.IncompleteRead.
            failures.append(f"{url}: {exc}")
            continue
        if not verify_checksum(data, md5_gz, md5_payload):
            failures.append(f"{url}: checksum mismatch (md5 {_md5(data)})")
            continue
        write_atomic(path, data)
        return path
    raise DownloadError(f"could not download {filename}:\n  " + "\n  ".join(failures))


# -- MNIST --------------------------------------------------------------------------------
def data_root(dataset, root=None):
    """Where `dataset` ("mnist", "cifar10", ...) is cached: `root`, else
    $FASTCONV_DATA/<dataset>, else ~/.cache/fastconv/<dataset>."""
    if root is not None:
        return os.fspath(root)
    base = os.environ.get("FASTCONV_DATA")
    if base:
        return os.path.join(base, dataset)
    return os.path.join(os.path.expanduser("~"), ".cache", "fastconv", dataset)


def mnist_root(root=None):
    """Where MNIST is cached (:func:`data_root` of "mnist")."""
    return data_root("mnist", root)


def _find_local(root, filename):
    """The cached file: the .gz as downloaded, or a decompressed copy without .gz."""
    for name in (filename, filename[:-3]):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    return None


def load_mnist(root=None, train=True, download=True, mirrors=None, timeout=30):
    """The MNIST training (60,000) or test (10,000) digits.

    Files are looked up in the cache folder (see :func:`mnist_root`), as ``.gz`` or
    decompressed; missing ones are downloaded from the mirrors in turn, verified (md5 of the
    official .gz or of its decompressed payload) and written atomically.

    Parameters
    ----------
    root : str, optional
        Folder holding the IDX files.
    train : bool
        The training set (True) or the test set (False).
    download : bool
        Download missing files; with False they must be present.
    mirrors : list of str, optional
        Base URLs (default: $FASTCONV_MNIST_MIRRORS or :data:`MNIST_MIRRORS`).
    timeout : float
        Seconds per connection attempt.

    Returns
    -------
    images : ndarray, (N, 28, 28) uint8, 0..255
    labels : ndarray, (N,) uint8, 0..9

    Raises
    ------
    FileNotFoundError
        When files are missing and cannot be downloaded (offline): the message says which
        files to place where.
    ValueError
        When a file is corrupt or truncated, or images and labels disagree.
    """
    return _load_idx_pair("MNIST", mnist_root(root), MNIST_FILES, mirror_list(mirrors), train,
                          download, timeout)


def load_fashion_mnist(root=None, train=True, download=True, mirrors=None, timeout=30):
    """Fashion-MNIST: 28x28 grey images of 10 kinds of clothing, 60,000 for training and
    10,000 for testing, in MNIST's file format: arguments, results and errors as
    :func:`load_mnist`, the cache folder ``data_root("fashion-mnist")`` and the mirrors
    :data:`FASHION_MNIST_MIRRORS`. Labels: 0 T-shirt/top, 1 trouser, 2 pullover, 3 dress,
    4 coat, 5 sandal, 6 shirt, 7 sneaker, 8 bag, 9 ankle boot."""
    mirrors = mirror_list(FASHION_MNIST_MIRRORS if mirrors is None else mirrors)
    return _load_idx_pair("Fashion-MNIST", data_root("fashion-mnist", root),
                          FASHION_MNIST_FILES, mirrors, train, download, timeout)


def _load_idx_pair(dataset, root, files, mirrors, train, download, timeout):
    """Images (N, 28, 28) uint8 and labels (N,) 0..9 from MNIST-format IDX files."""
    prefix = "train" if train else "t10k"
    names = [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"]
    paths, problems = [], []
    for name in names:
        path = _find_local(root, name)
        if path is None and download:
            try:
                path = download_file(name, root, mirrors, files[name], timeout=timeout)
            except DownloadError as exc:
                problems.append(str(exc))
        paths.append(path)
    if None in paths:
        missing = [n for n, p in zip(names, paths) if p is None]
        why = ("\n" + "\n".join(problems)) if problems else " (download=False)"
        raise FileNotFoundError(
            f"{dataset} {'training' if train else 'test'} files are missing from {root} and "
            f"could not be downloaded{why}\nTo work offline, place "
            f"{' and '.join(missing)} (from any {dataset} mirror, .gz or decompressed) in "
            f"{root}, or point root= (CLI: --data-dir) at a folder holding them.")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(f"{paths[0]}: expected (N, 28, 28) uint8 images, got "
                         f"{images.dtype}{images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{paths[1]}: expected (N,) uint8 labels, got {labels.dtype}"
                         f"{labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{paths[0]} holds {len(images)} images but {paths[1]} "
                         f"{len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{paths[1]}: labels must be 0..9, found {labels.max()}")
    return images, labels


# -- CIFAR ----------------------------------------------------------------------------------
def load_cifar10(root=None, train=True, download=True, mirrors=None, timeout=30):
    """CIFAR-10: 32x32 colour images of 10 classes, 50,000 for training and 10,000 for
    testing.

    The binary archive (``cifar-10-binary.tar.gz``, 162 MB) is looked up in the cache
    folder (``data_root("cifar10")``), or downloaded from the authors' site and verified by
    the md5 they publish; its record files are read straight from the archive, nothing is
    extracted. Offline, place the archive, or its extracted folder
    ``cifar-10-batches-bin``, in `root`.

    Returns
    -------
    images : ndarray, (N, 3, 32, 32) uint8, 0..255 (channels first, as the network takes)
    labels : ndarray, (N,) uint8: 0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, 5 dog,
        6 frog, 7 horse, 8 ship, 9 truck

    Raises
    ------
    FileNotFoundError
        When the data is missing and cannot be downloaded: the message says what to place
        where.
    ValueError
        When a record file is truncated or holds a label out of range.
    """
    return _load_cifar("cifar10", root, train, download, mirrors, timeout)


def load_cifar100(root=None, train=True, download=True, mirrors=None, timeout=30,
                  labels="fine"):
    """CIFAR-100: as :func:`load_cifar10` with 100 classes (``labels="fine"``) or their 20
    superclasses (``labels="coarse"``); the archive is ``cifar-100-binary.tar.gz`` and its
    folder ``cifar-100-binary``."""
    if labels not in ("fine", "coarse"):
        raise ValueError(f"load_cifar100: labels must be 'fine' or 'coarse', got {labels!r}")
    images, coarse_and_fine = _load_cifar("cifar100", root, train, download, mirrors, timeout)
    return images, coarse_and_fine[:, 1 if labels == "fine" else 0]


def _load_cifar(name, root, train, download, mirrors, timeout):
    """Images (N, 3, 32, 32) and labels (N, label bytes) of one CIFAR split."""
    archive, md5, folder, train_files, test_files, label_bytes, classes = CIFAR_ARCHIVES[name]
    root = data_root(name, root)
    members = train_files if train else test_files
    extracted = os.path.join(root, folder)
    if all(os.path.isfile(os.path.join(extracted, m)) for m in members):
        chunks = []
        for member in members:
            with open(os.path.join(extracted, member), "rb") as f:
                chunks.append((os.path.join(extracted, member), f.read()))
    else:
        path = os.path.join(root, archive)
        problem = " (download=False)"
        if not os.path.isfile(path) and download:
            try:
                download_file(archive, root, mirror_list(CIFAR_MIRRORS if mirrors is None
                                                         else mirrors), (md5, None), timeout)
            except DownloadError as exc:
                problem = "\n" + str(exc)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{archive} is missing from {root} and could not be downloaded{problem}\n"
                f"To work offline, place {archive} (or its extracted folder {folder}) in "
                f"{root}, or point root= (CLI: --data-dir) at a folder holding it.")
        chunks = _read_archive_members(path, [f"{folder}/{m}" for m in members])
    images, labels = [], []
    record = label_bytes + CIFAR_PIXELS
    for where, data in chunks:
        if len(data) % record:
            raise ValueError(f"{where}: {len(data)} bytes is not a whole number of "
                             f"{record}-byte records (truncated?)")
        rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
        for column, count in enumerate(classes):
            if rows.size and rows[:, column].max() >= count:
                raise ValueError(f"{where}: labels must be below {count}, found "
                                 f"{rows[:, column].max()}")
        labels.append(rows[:, :label_bytes])
        images.append(rows[:, label_bytes:].reshape(-1, 3, 32, 32))
    labels = np.concatenate(labels)
    return np.concatenate(images), (labels[:, 0] if label_bytes == 1 else labels)


def _read_archive_members(path, names):
    """[(where, bytes)] of the named regular files of a .tar.gz, read in memory (the
    archive's other entries, and any path it holds, are never written anywhere)."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            found = {member.name: member for member in tar.getmembers() if member.isfile()}
            missing = [name for name in names if name not in found]
            if missing:
                raise ValueError(f"{path}: the archive lacks {', '.join(missing)}")
            return [(f"{path}:{name}", tar.extractfile(found[name]).read()) for name in names]
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ValueError(f"{path}: not a readable .tar.gz archive ({exc})") from None


# -- scikit-learn's digits ----------------------------------------------------------------
def resize_bilinear(images, size):
    """(N, h, w) float images -> (N, size, size), bilinear (pixel centres aligned)."""
    def axis_weights(n_in):
        pos = np.clip((np.arange(size) + 0.5) * n_in / size - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo)
    rlo, rhi, rw = axis_weights(images.shape[1])
    clo, chi, cw = axis_weights(images.shape[2])
    rows = images[:, rlo] * (1 - rw)[:, None] + images[:, rhi] * rw[:, None]
    return rows[:, :, clo] * (1 - cw) + rows[:, :, chi] * cw


def load_digits(train=True, test_fraction=0.2, seed=0):
    """scikit-learn's bundled 8x8 digits (1,797 images, no download), as 32x32 images.

    Each 8x8 image (values 0..16) is enlarged to 24x24 (bilinear), scaled to 0..255 and
    padded by 4 pixels, which puts a 24-pixel digit in a 32x32 frame as LeNet-5 sees MNIST.
    The train/test split is a random permutation fixed by `seed`.

    Requires scikit-learn (``pip install "fastconv[examples]"``).

    Returns
    -------
    images : ndarray, (N, 32, 32) uint8
    labels : ndarray, (N,) uint8
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ImportError("the digits dataset needs scikit-learn: pip install "
                          "'fastconv[examples]' (or scikit-learn)") from None
    bunch = sklearn_digits()
    small = bunch.images.astype(np.float64) / 16.0                      # (1797, 8, 8)
    big = np.clip(resize_bilinear(small, 24) * 255 + 0.5, 0, 255).astype(np.uint8)
    images = np.zeros((len(big), 32, 32), dtype=np.uint8)
    images[:, 4:28, 4:28] = big
    labels = bunch.target.astype(np.uint8)
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(round(len(images) * test_fraction))
    chosen = order[n_test:] if train else order[:n_test]
    return images[chosen], labels[chosen]
