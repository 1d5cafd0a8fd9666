"""Fashion-MNIST and CIFAR-10/100 loaders on small synthetic files written in the official
formats (IDX; CIFAR's binary records in a .tar.gz), offline and from a local mirror on
127.0.0.1: never the network."""
import gzip
import io
import os
import tarfile

import numpy as np
import pytest

from fastconv.data import load_cifar10, load_cifar100, load_fashion_mnist
from fastconv.data.datasets import CIFAR_ARCHIVES, data_root

from test_datasets import closed_port_url, mirror, no_proxy_for_loopback  # noqa: F401
from train_helpers import idx_bytes, synthetic_digits

CIFAR10_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def cifar_records(n, label_bytes, classes, seed):
    """n records: labels (n, label_bytes), images (n, 3, 32, 32) and the file's bytes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, (n, label_bytes), dtype=np.uint8)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    data = np.concatenate([labels, images.reshape(n, -1)], axis=1).tobytes()
    return labels, images, data


def tar_gz(members):
    """A .tar.gz holding {name: bytes} as regular files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def cifar10_files():
    """{file name: (labels, images, bytes)}: 3 records per training batch, 4 for test."""
    return {name: cifar_records(4 if name.startswith("test") else 3, 1, 10, seed)
            for seed, name in enumerate(CIFAR10_FILES)}


def write_cifar10_archive(root, files):
    folder = CIFAR_ARCHIVES["cifar10"][2]
    data = tar_gz({f"{folder}/{name}": f[2] for name, f in files.items()})
    (root / "cifar-10-binary.tar.gz").write_bytes(data)
    return data


@pytest.mark.parametrize("train", [True, False])
def test_cifar10_reads_the_records_of_the_archive_in_order(tmp_path, cifar10_files, train):
    write_cifar10_archive(tmp_path, cifar10_files)
    images, labels = load_cifar10(tmp_path, train=train, download=False)
    names = CIFAR10_FILES[:5] if train else CIFAR10_FILES[5:]
    np.testing.assert_array_equal(images, np.concatenate([cifar10_files[n][1] for n in names]))
    np.testing.assert_array_equal(labels, np.concatenate([cifar10_files[n][0][:, 0]
                                                          for n in names]))
    assert images.shape == ((15 if train else 4), 3, 32, 32) and images.dtype == np.uint8
    assert labels.shape == (len(images),) and labels.dtype == np.uint8
    assert os.listdir(tmp_path) == ["cifar-10-binary.tar.gz"]       # nothing extracted


def test_cifar10_reads_an_extracted_folder_too(tmp_path, cifar10_files):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name, (_, _, data) in cifar10_files.items():
        (folder / name).write_bytes(data)
    images, labels = load_cifar10(tmp_path, train=False, download=False)
    np.testing.assert_array_equal(images, cifar10_files["test_batch.bin"][1])


@pytest.mark.parametrize("kind, column", [("fine", 1), ("coarse", 0)])
def test_cifar100_gives_fine_or_coarse_labels(tmp_path, kind, column):
    labels, images, data = cifar_records(5, 2, 20, seed=3)
    (tmp_path / "cifar-100-binary.tar.gz").write_bytes(
        tar_gz({"cifar-100-binary/test.bin": data, "cifar-100-binary/train.bin": b""}))
    got_images, got_labels = load_cifar100(tmp_path, train=False, download=False, labels=kind)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels[:, column])
    with pytest.raises(ValueError, match="labels must be 'fine' or 'coarse'"):
        load_cifar100(tmp_path, labels="both")
    bad_coarse = bytes([20, 5]) + bytes(3072)
    (tmp_path / "cifar-100-binary.tar.gz").write_bytes(
        tar_gz({"cifar-100-binary/test.bin": bad_coarse}))
    with pytest.raises(ValueError, match="labels must be below 20, found 20"):
        load_cifar100(tmp_path, train=False, download=False)


def test_cifar_refuses_truncated_records_labels_out_of_range_and_missing_members(
        tmp_path, cifar10_files):
    folder = CIFAR_ARCHIVES["cifar10"][2]
    good = {f"{folder}/{n}": f[2] for n, f in cifar10_files.items()}
    cases = [
        ({**good, f"{folder}/test_batch.bin": good[f"{folder}/test_batch.bin"][:-1]},
         "test_batch.bin: 12291 bytes is not a whole number of 3073-byte records"),
        ({**good, f"{folder}/test_batch.bin": b"\x0a" + b"\x00" * 3072},
         "labels must be below 10, found 10"),
        ({k: v for k, v in good.items() if not k.endswith("test_batch.bin")},
         "the archive lacks cifar-10-batches-bin/test_batch.bin"),
    ]
    for members, message in cases:
        (tmp_path / "cifar-10-binary.tar.gz").write_bytes(tar_gz(members))
        with pytest.raises(ValueError, match=message):
            load_cifar10(tmp_path, train=False, download=False)
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="not a readable .tar.gz archive"):
        load_cifar10(tmp_path, train=False, download=False)


def test_cifar_offline_says_what_to_place_where(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_cifar10(tmp_path, mirrors=[closed_port_url()], timeout=2)
    message = str(info.value)
    assert "cifar-10-binary.tar.gz is missing from" in message and str(tmp_path) in message
    assert "extracted folder cifar-10-batches-bin" in message


def test_cifar_download_is_verified_by_the_published_md5(tmp_path, mirror, cifar10_files):
    """A mirror serving another archive under the official name is refused, and nothing
    is left in the cache."""
    base, server = mirror
    server.files["cifar-10-binary.tar.gz"] = tar_gz(
        {f"cifar-10-batches-bin/{n}": f[2] for n, f in cifar10_files.items()})
    with pytest.raises(FileNotFoundError, match="checksum mismatch"):
        load_cifar10(tmp_path, mirrors=[base + "/good/"])
    assert server.requests == ["/good/cifar-10-binary.tar.gz"]
    assert os.listdir(tmp_path) == []


def test_fashion_mnist_reads_mnist_format_files_from_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTCONV_DATA", str(tmp_path))
    root = tmp_path / "fashion-mnist"
    assert data_root("fashion-mnist") == str(root)
    root.mkdir()
    images, labels = synthetic_digits(12, seed=4)
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (root / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    got_images, got_labels = load_fashion_mnist(train=False, download=False)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST training files are missing"):
        load_fashion_mnist(train=True, download=False)
