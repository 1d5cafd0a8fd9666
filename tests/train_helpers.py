"""Shared helpers of the layer, LeNet-5, dataset and trainer tests."""
import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_mnist_dir():
    """The real MNIST test files (../shared/data/mnist next to the repository), or None.

    $FASTCONV_SHARED_MNIST overrides; a git worktree one level deeper also finds it.
    """
    candidates = [os.environ.get("FASTCONV_SHARED_MNIST"),
                  REPO.parent / "shared" / "data" / "mnist",
                  REPO.parent.parent / "shared" / "data" / "mnist"]
    for folder in candidates:
        if folder and (Path(folder) / "t10k-images-idx3-ubyte.gz").is_file() \
                and (Path(folder) / "t10k-labels-idx1-ubyte.gz").is_file():
            return Path(folder)
    return None


def require_shared_mnist():
    """shared_mnist_dir(), or skip the test when the real MNIST files are not there."""
    folder = shared_mnist_dir()
    if folder is None:
        pytest.skip("real MNIST test images not found in ../shared/data/mnist")
    return folder


def idx_bytes(array):
    """The IDX encoding of a uint8 array."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.tobytes()


def write_idx(path, array, compress=None):
    """Write `array` as IDX, gzip-compressed when the name ends in .gz."""
    data = idx_bytes(array)
    if compress or (compress is None and str(path).endswith(".gz")):
        data = gzip.compress(data, mtime=0)
    Path(path).write_bytes(data)
    return path


def synthetic_digits(n, seed=0, size=28):
    """An easy, learnable 10-class problem shaped like MNIST: each class is a fixed random
    blob pattern; images are the pattern, shifted by up to 2 pixels, plus noise.

    Returns (images (n, size, size) uint8, labels (n,) uint8).
    """
    rng = np.random.default_rng(seed)
    patterns = (np.random.default_rng(1234).random((10, size, size)) > 0.7) * 200.0
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = np.empty((n, size, size))
    for i, label in enumerate(labels):
        dy, dx = rng.integers(-2, 3, 2)
        images[i] = np.roll(patterns[label], (dy, dx), axis=(0, 1))
    images += rng.normal(0, 30, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_synthetic_mnist(folder, n_train=256, n_test=128):
    """A folder laid out like the MNIST cache, with synthetic digits."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_digits(n, seed)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder
