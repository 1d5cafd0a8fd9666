"""fastconv.data.datasets: IDX parsing and validation, MNIST download through a local HTTP
server (good, corrupted, dropped mid-way, offline), atomic writes, real MNIST files."""
import gzip
import hashlib
import http.server
import os
import threading

import numpy as np
import pytest

from fastconv.data import datasets
from fastconv.data.datasets import (DownloadError, download_file, load_mnist, mnist_root, read_idx,
                               write_atomic)
from train_helpers import idx_bytes, require_shared_mnist, synthetic_digits, write_idx


# -- IDX ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_read_idx_reads_raw_and_gzip_files(tmp_path, name):
    images, _ = synthetic_digits(5)
    path = write_idx(tmp_path / name, images)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (5, 28, 28)
    np.testing.assert_array_equal(out, images)


def test_read_idx_handles_other_types_big_endian(tmp_path):
    values = np.arange(-3, 3, dtype=">i4").reshape(2, 3)
    data = bytes([0, 0, 0x0C, 2]) + np.array([2, 3], ">i4").tobytes() + values.tobytes()
    (tmp_path / "x.idx").write_bytes(data)
    out = read_idx(tmp_path / "x.idx")
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


def corrupt_variants():
    good = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
    return {
        "truncated": (good[:-1], "truncated: dimensions \\(3, 4\\) need 12 bytes"),
        "trailing": (good + b"\x00", "has trailing bytes"),
        "bad magic": (b"\x01\x02" + good[2:], "not an IDX file"),
        "unknown type": (good[:2] + b"\x07" + good[3:], "not an IDX file"),
        "header cut": (good[:6], "truncated IDX header"),
        "empty": (b"", "too short"),
        "gzip cut": (gzip.compress(good)[:-6], "corrupt or truncated gzip"),
    }


@pytest.mark.parametrize("case", sorted(corrupt_variants()))
def test_read_idx_rejects_corrupt_files_naming_them(tmp_path, case):
    data, message = corrupt_variants()[case]
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


# -- real MNIST (skipped where ../shared is absent) -----------------------------------------
@pytest.fixture(scope="module")
def real_mnist():
    return require_shared_mnist()


def test_real_mnist_test_set_loads_with_the_documented_counts(real_mnist):
    images, labels = load_mnist(real_mnist, train=False, download=False)
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert list(np.bincount(labels)) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert list(labels[:5]) == [7, 2, 1, 0, 4]


def test_real_mnist_files_pass_the_payload_checksum(real_mnist):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        data = (real_mnist / name).read_bytes()
        assert datasets.verify_checksum(data, *datasets.MNIST_FILES[name])
        assert not datasets.verify_checksum(data[:-10], *datasets.MNIST_FILES[name])


# -- a local HTTP server playing the MNIST mirrors ------------------------------------------
class MirrorHandler(http.server.BaseHTTPRequestHandler):
    """Serves /<mode>/<filename> from server.files: mode good, corrupt or drop."""

    def do_GET(self):
        _, mode, name = self.path.split("/", 2)
        self.server.requests.append(self.path)
        data = self.server.files.get(name)
        if data is None:
            self.send_error(404)
            return
        if mode == "corrupt":
            data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "drop":                       # announce everything, send half, hang up
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(autouse=True)
def no_proxy_for_loopback(monkeypatch):
    """Requests to the local test server must never go through a configured proxy."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def mirror():
    """A server on 127.0.0.1 (port chosen by the OS); yields its base URL and file table."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MirrorHandler)
    server.files, server.requests = {}, []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield base, server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens (offline)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def serve_synthetic(server, name="digits.gz"):
    payload = idx_bytes(synthetic_digits(50)[0])
    data = gzip.compress(payload, mtime=0)
    server.files[name] = data
    return name, data, (hashlib.md5(data).hexdigest(), hashlib.md5(payload).hexdigest())


def leftovers(folder):
    return [p for p in os.listdir(folder) if p.endswith(".part")]


def test_download_good_file(tmp_path, mirror):
    base, server = mirror
    name, data, checksums = serve_synthetic(server)
    path = download_file(name, tmp_path, [base + "/good/"], checksums)
    assert open(path, "rb").read() == data and not leftovers(tmp_path)
    assert read_idx(path).shape == (50, 28, 28)


def test_download_accepts_a_recompressed_file_by_its_payload_checksum(tmp_path, mirror):
    base, server = mirror
    name, data, (md5_gz, md5_payload) = serve_synthetic(server)
    server.files[name] = gzip.compress(gzip.decompress(data), compresslevel=1, mtime=1)
    assert hashlib.md5(server.files[name]).hexdigest() != md5_gz
    path = download_file(name, tmp_path, [base + "/good/"], (md5_gz, md5_payload))
    assert read_idx(path).shape == (50, 28, 28)


def test_download_corrupted_file_is_rejected_and_next_mirror_used(tmp_path, mirror):
    base, server = mirror
    name, data, checksums = serve_synthetic(server)
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_file(name, tmp_path, [base + "/corrupt/"], checksums)
    assert os.listdir(tmp_path) == []                     # nothing written, not even a temp
    path = download_file(name, tmp_path, [base + "/corrupt/", base + "/good/"], checksums)
    assert open(path, "rb").read() == data
    assert server.requests == [f"/corrupt/{name}", f"/corrupt/{name}", f"/good/{name}"]


def test_download_dropped_mid_way_leaves_no_partial_file(tmp_path, mirror):
    base, server = mirror
    name, data, checksums = serve_synthetic(server)
    with pytest.raises(DownloadError, match=r"closed after \d+ of \d+ bytes|IncompleteRead"):
        download_file(name, tmp_path, [base + "/drop/"], checksums)
    assert os.listdir(tmp_path) == []
    path = download_file(name, tmp_path, [base + "/drop/", base + "/good/"], checksums)
    assert open(path, "rb").read() == data and not leftovers(tmp_path)


def test_load_mnist_downloads_real_files_from_a_local_mirror(tmp_path, mirror, real_mnist):
    base, server = mirror
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        server.files[name] = (real_mnist / name).read_bytes()
    images, labels = load_mnist(tmp_path / "cache", train=False,
                                mirrors=[base + "/drop", base + "/corrupt", base + "/good"])
    assert images.shape == (10_000, 28, 28) and len(labels) == 10_000
    assert sorted(os.listdir(tmp_path / "cache")) == ["t10k-images-idx3-ubyte.gz",
                                                      "t10k-labels-idx1-ubyte.gz"]
    server.requests.clear()                                # second call: from the cache
    load_mnist(tmp_path / "cache", train=False, mirrors=[base + "/good"])
    assert server.requests == []


def test_load_mnist_offline_says_which_files_to_place_where(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path, train=True, mirrors=[closed_port_url()], timeout=2)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "train-labels-idx1-ubyte.gz" in message
    assert f"place train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz" in message
    assert str(tmp_path) in message and "--data-dir" in message
    assert os.listdir(tmp_path) == []


def test_load_mnist_without_download_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"download=False.*\n.*place t10k-images"):
        load_mnist(tmp_path, train=False, download=False)


def test_load_mnist_reads_decompressed_files_and_checks_consistency(tmp_path):
    images, labels = synthetic_digits(30)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:29])
    with pytest.raises(ValueError, match="holds 30 images but .* 29 labels"):
        load_mnist(tmp_path, train=False, download=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    out_images, out_labels = load_mnist(tmp_path, train=False, download=False)
    np.testing.assert_array_equal(out_images, images)
    np.testing.assert_array_equal(out_labels, labels)


def test_mirror_list_and_cache_folder_come_from_the_environment(monkeypatch, tmp_path, mirror):
    base, server = mirror
    name, data, checksums = serve_synthetic(server)
    monkeypatch.setenv("FASTCONV_MNIST_MIRRORS", f"{closed_port_url()} , {base}/good")
    path = download_file(name, tmp_path, checksums=checksums, timeout=2)
    assert open(path, "rb").read() == data and server.requests == [f"/good/{name}"]
    monkeypatch.setenv("FASTCONV_DATA", str(tmp_path / "data"))
    assert mnist_root() == str(tmp_path / "data" / "mnist")
    monkeypatch.delenv("FASTCONV_DATA")
    assert mnist_root().endswith(os.path.join(".cache", "fastconv", "mnist"))
    assert mnist_root(tmp_path) == str(tmp_path)
    assert datasets.mirror_list(None)[1] == base + "/good/"


def test_write_atomic_never_leaves_a_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "file.gz"
    write_atomic(path, b"old complete content")

    def failing_fsync(fd):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, b"new content that never completes")
    assert path.read_bytes() == b"old complete content"
    assert os.listdir(tmp_path) == ["file.gz"]


# -- scikit-learn's digits -------------------------------------------------------------------
def test_sklearn_digits_brought_to_32x32():
    pytest.importorskip("sklearn")
    train_images, train_labels = datasets.load_digits(train=True)
    test_images, test_labels = datasets.load_digits(train=False)
    assert train_images.shape[1:] == (32, 32) and train_images.dtype == np.uint8
    assert len(train_images) + len(test_images) == 1797 and len(test_images) == 359
    border = np.ones((32, 32), dtype=bool)
    border[4:28, 4:28] = False                          # the 24x24 digit in a 4-pixel frame
    assert train_images.max() == 255 and train_images[:, border].max() == 0
    assert set(train_labels) == set(range(10)) and len(test_labels) == len(test_images)
