"""fastconv.dask: lazy operations on dask arrays equal the in-memory calls for every
chunking, on the synchronous and threaded schedulers and on a local cluster of two worker
processes (127.0.0.1 only), including one whose worker is killed mid-computation."""
import os
import pickle
import signal
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import fastconv                                          # noqa: E402
from fastconv import filters, nn                         # noqa: E402
import fastconv.dask as fd                               # noqa: E402

RNG = np.random.default_rng(20261204)

# (chunks along H and W) of a 23 x 19 image: one chunk, even, ragged, chunks of 2 or 3
# pixels (smaller than most halos here) and rows of 1 pixel
SPATIAL_CHUNKS = [(23, 19), (8, 10), ((5, 11, 7), (2, 9, 8)), (3, 2), (1, 19)]


def chunked(x, spatial, lead=1):
    """x as a dask array with its last two axes chunked as spatial, leading axes by lead."""
    return da.from_array(x, chunks=(lead,) * (x.ndim - 2) + tuple(spatial))


# ---- convolution and pooling ------------------------------------------------------------

CONV_CASES = [
    dict(),
    dict(padding=1),
    dict(stride=2, padding=1),
    dict(stride=(3, 2), padding=(2, 0, 1, 3), dilation=2),
    dict(padding="same", dilation=(1, 2)),
    dict(padding=6),                      # windows wholly in the padding
    dict(groups=2, padding=1),
    dict(groups=4, stride=2),             # depthwise
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_equals_the_in_memory_direct_convolution_bitwise_for_every_chunking(case,
                                                                                      dtype):
    x = RNG.standard_normal((3, 4, 23, 19)).astype(dtype)
    groups = case.get("groups", 1)
    w = RNG.standard_normal((4, 4 // groups, 3, 3)).astype(dtype)
    b = RNG.standard_normal(4).astype(dtype)
    expected = fastconv.conv2d(x, w, b, algorithm="direct", **case)
    for spatial in SPATIAL_CHUNKS:
        got = fd.conv2d(chunked(x, spatial, lead=2), w, b, algorithm="direct", **case)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        assert np.array_equal(got.compute(scheduler="sync"), expected), spatial


def test_conv2d_with_auto_algorithms_equals_within_rounding():
    x = RNG.standard_normal((2, 16, 40, 36)).astype(np.float32)
    w = RNG.standard_normal((16, 16, 3, 3)).astype(np.float32)
    expected = fastconv.conv2d(x, w, padding=1)
    got = fd.conv2d(chunked(x, (17, 13)), w, padding=1).compute()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_conv2d_gathers_channels_and_chunks_outputs_on_the_stride_grid():
    x = da.from_array(RNG.standard_normal((4, 6, 30, 30)), chunks=(2, 2, 10, 10))
    w = RNG.standard_normal((5, 6, 3, 3))
    y = fd.conv2d(x, w, stride=2, padding=1)
    assert y.chunks[:2] == ((2, 2), (5,))
    assert sum(y.chunks[2]) == 15 and len(y.chunks[2]) == 3
    np.testing.assert_allclose(y.compute(), fastconv.conv2d(x.compute(), w, stride=2,
                                                            padding=1), rtol=1e-12)


POOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(1, 3), padding=(1, 1), ceil_mode=True),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool2d_equals_in_memory_for_every_chunking(case):
    x = RNG.standard_normal((2, 3, 23, 19)).astype(np.float32)
    x[0, 0, 5, 5] = np.nan
    for dilation in (1, 2):
        expected = fastconv.max_pool2d(x, dilation=dilation, **case)
        for spatial in SPATIAL_CHUNKS:
            got = fd.max_pool2d(chunked(x, spatial), dilation=dilation, **case)
            assert got.shape == expected.shape
            np.testing.assert_array_equal(got.compute(scheduler="sync"), expected)


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("extra", [dict(), dict(count_include_pad=False),
                                   dict(divisor_override=5)], ids=str)
def test_avg_pool2d_equals_in_memory_for_every_chunking(case, extra):
    x = RNG.standard_normal((2, 3, 23, 19))
    expected = fastconv.avg_pool2d(x, **case, **extra)
    for spatial in SPATIAL_CHUNKS:
        got = fd.avg_pool2d(chunked(x, spatial), **case, **extra).compute(scheduler="sync")
        assert np.array_equal(got, expected), spatial


# ---- filters ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", filters.BORDER_MODES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8])
def test_edge_filters_equal_in_memory_bitwise_in_every_border_mode(mode, dtype):
    image = (RNG.random((3, 23, 19)) * 255).astype(dtype)
    for name, axis in (("sobel", None), ("sobel", 0), ("sobel", 1), ("scharr", None),
                       ("prewitt", None)):
        expected = getattr(filters, name)(image, axis, mode=mode)
        for spatial in SPATIAL_CHUNKS:
            got = getattr(fd, name)(chunked(image, spatial, lead=2), axis, mode=mode)
            assert got.dtype == expected.dtype
            assert np.array_equal(got.compute(scheduler="sync"), expected), \
                (name, axis, spatial)


@pytest.mark.parametrize("mode", filters.BORDER_MODES)
def test_gaussian_filter2d_and_gradient_equal_in_memory_on_one_image(mode):
    image = RNG.standard_normal((23, 19))
    kernel = RNG.standard_normal((4, 5))
    for spatial in SPATIAL_CHUNKS:
        x = chunked(image, spatial)
        assert np.array_equal(fd.gaussian(x, 1.5, mode=mode).compute(),
                              filters.gaussian(image, 1.5, mode=mode))
        for flip in (False, True):
            assert np.array_equal(fd.filter2d(x, kernel, mode=mode, flip=flip).compute(),
                                  filters.filter2d(image, kernel, mode=mode, flip=flip))
        magnitude, direction = fd.gradient(x, "scharr", mode=mode)
        expected = filters.gradient(image, "scharr", mode=mode)
        assert np.array_equal(magnitude.compute(), expected[0])
        assert np.array_equal(direction.compute(), expected[1])


def test_gaussian_wider_than_the_image_and_its_chunks():
    image = RNG.standard_normal((5, 7))
    for mode in filters.BORDER_MODES:
        got = fd.gaussian(chunked(image, (2, 3)), 3.0, mode=mode).compute()
        assert np.array_equal(got, filters.gaussian(image, 3.0, mode=mode))


def test_dtype_is_passed_to_every_chunk():
    image = (RNG.random((2, 23, 19)) * 255).astype(np.uint8)
    kernel = RNG.standard_normal((3, 4))
    for spatial in SPATIAL_CHUNKS:
        x = chunked(image, spatial, lead=1)
        for got, want in [(fd.sobel(x, dtype=np.float32), filters.sobel(image, dtype=np.float32)),
                          (fd.gaussian(x, 2.0, dtype="float32"),
                           filters.gaussian(image, 2.0, dtype="float32")),
                          (fd.filter2d(x, kernel, dtype=np.float32),
                           filters.filter2d(image, kernel, dtype=np.float32)),
                          (fd.gradient(x, dtype=np.float32)[0],
                           filters.gradient(image, dtype=np.float32)[0])]:
            assert got.dtype == want.dtype == np.float32
            assert np.array_equal(got.compute(scheduler="sync"), want), spatial
    with pytest.raises(ValueError, match="dtype"):
        fd.sobel(chunked(image, (7, 7), lead=1), dtype=np.int16)


def test_colour_images_filter_their_luminance():
    rgb = (RNG.random((30, 20, 3)) * 255).astype(np.uint8)
    x = da.from_array(rgb, chunks=(7, 6, 1))
    assert np.array_equal(fd.sobel(x).compute(), filters.sobel(rgb))
    assert np.array_equal(fd.canny(x).compute(), filters.canny(rgb))
    # float64 colour in ragged chunks: each pixel's luminance does not depend on its chunk
    for _ in range(5):
        rgb = RNG.random((6, 8, 3))
        x = da.from_array(rgb, chunks=(3, (4, 1, 2, 1), 3))
        assert np.array_equal(fd.sobel(x).compute(), filters.sobel(rgb))


@pytest.mark.parametrize("dtype", [np.uint8, np.bool_, np.float32])
def test_chunks_that_are_views_with_strided_rows(dtype):
    """Chunks of a transposed array are views whose rows are not contiguous: the filters
    copy what they cannot read in place."""
    image = (RNG.random((40, 50)) * 255).astype(dtype)
    x = da.from_array(image, chunks=16).T
    for name, kwargs in [("sobel", {}), ("prewitt", dict(axis=0)),
                         ("filter2d", dict(kernel=np.ones((3, 5))))]:
        got = getattr(fd, name)(x, **kwargs).compute(scheduler="sync")
        assert np.array_equal(got, getattr(filters, name)(image.T, **kwargs)), name


# ---- Canny ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", filters.BORDER_MODES)
def test_canny_equals_in_memory_for_every_chunking(mode):
    image = filters.synthetic_image(64) + 0.05 * RNG.standard_normal((64, 64))
    expected = filters.canny(image, 1.5, mode=mode)
    assert expected.sum() > 200
    # the halo is 8 pixels: the last two chunkings are smaller than it
    for spatial in [(64, 64), (13, 17), (1, 64), (6, 7)]:
        got = fd.canny(chunked(image, spatial), 1.5, mode=mode).compute(scheduler="sync")
        assert np.array_equal(got, expected), spatial


def test_canny_hysteresis_follows_a_weak_edge_across_many_chunks():
    # A ramp step whose contrast fades from strong (left) to weak (right): only the left
    # end is a strong edge, so the rest is an edge only through hysteresis across every
    # chunk of the row.
    width = 200
    image = np.zeros((40, width))
    image[20:, :] = np.linspace(1.0, 0.3, width)
    expected = filters.canny(image, 1.0, 0.5, 2.0)
    assert expected[:, -20:].any() and not expected[:, -20:].all()
    got = fd.canny(da.from_array(image, chunks=(40, 9)), 1.0, 0.5, 2.0).compute()
    assert np.array_equal(got, expected)
    # the same row cut into chunks and thresholded chunk by chunk would lose it
    assert not filters.canny(image[:, -20:], 1.0, 0.5, 2.0).any()


def test_canny_of_a_batch_keeps_the_planes_apart():
    images = (RNG.random((5, 30, 26)) * 255).astype(np.uint8)
    got = fd.canny(da.from_array(images, chunks=(2, 11, 9)), 1.0).compute()
    assert np.array_equal(got, filters.canny(images, 1.0))


# ---- inference --------------------------------------------------------------------------

def test_predict_and_logits_equal_the_in_memory_model():
    model = nn.LeNet5(seed=0)
    digits = (RNG.random((700, 28, 28)) * 255).astype(np.uint8)
    images = da.from_array(digits, chunks=(150, 28, 28))
    assert np.array_equal(fd.predict(model, images, batch_size=64).compute(),
                          model.predict(digits))
    assert np.array_equal(fd.logits(model, images).compute(), model.logits(digits))


def test_the_model_is_one_node_of_the_graph():
    model = nn.LeNet5(seed=0)
    images = da.from_array(np.zeros((400, 28, 28), np.uint8), chunks=(50, 28, 28))
    for method in (fd.logits, fd.predict):
        graph = dict(method(model, images).__dask_graph__())
        holders = [key for key, value in graph.items() if _holds(value, model)]
        assert len(holders) == 1


def test_predict_runs_one_task_per_block_that_returns_labels():
    model = nn.LeNet5(seed=0)
    digits = (RNG.random((400, 28, 28)) * 255).astype(np.uint8)
    labels = fd.predict(model, da.from_array(digits, chunks=(50, 28, 28)))
    layers = labels.__dask_graph__().layers
    own = layers[labels.name]
    assert len(own) == 8 and labels.dtype == np.int64 and labels.chunks == ((50,) * 8,)
    assert np.array_equal(labels.compute(scheduler="sync"), model.predict(digits))


def _holds(value, model):
    """True when a graph value is the model itself or a task that names it literally."""
    if value is model:
        return True
    if isinstance(value, (tuple, list)):
        return any(_holds(v, model) for v in value)
    inner = getattr(value, "value", None)            # dask's DataNode
    if inner is model:
        return True
    args = getattr(value, "args", None)              # dask's Task
    return args is not None and any(_holds(getattr(a, "value", a), model) for a in args)


# ---- schedulers and threads -------------------------------------------------------------

@pytest.mark.skipif(not fastconv._ext.have_openmp(), reason="a serial build has 1 thread")
def test_threaded_scheduler_gives_each_task_its_share_of_the_threads():
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(4)
    try:
        def threads_seen(block):
            return np.full(block.shape, fd.task_threads())
        ones = da.ones(8, chunks=1)
        with dask.config.set(num_workers=2):
            assert set(ones.map_blocks(threads_seen).compute(scheduler="threads")) == {2}
        assert set(ones.map_blocks(threads_seen).compute(scheduler="sync")) == {4}
        assert fd.task_threads(3) == 3
        with pytest.raises(ValueError, match="threads"):
            fd.task_threads(0)
    finally:
        fastconv.set_num_threads(before)


def test_a_task_restores_the_thread_count_after_it():
    image = chunked(RNG.standard_normal((40, 40)), (20, 20))
    before = fastconv.get_num_threads()
    fd.sobel(image, threads=1).compute(scheduler="sync")
    assert fastconv.get_num_threads() == before


def test_threaded_scheduler_results_are_exact():
    x = RNG.standard_normal((4, 3, 40, 36))
    w = RNG.standard_normal((6, 3, 5, 5))
    got = fd.conv2d(chunked(x, (15, 10), lead=2), w, padding=2,
                    algorithm="direct").compute(scheduler="threads")
    assert np.array_equal(got, fastconv.conv2d(x, w, padding=2, algorithm="direct"))


# ---- a local cluster of two worker processes --------------------------------------------

@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as cluster, \
            distributed.Client(cluster) as c:
        yield c


def test_cluster_workers_run_one_thread_per_task(client):
    def threads_seen(block):
        return np.full(block.shape, fd.task_threads())
    assert set(client.run(fastconv.get_num_threads).values()) == {1}
    assert set(da.ones(4, chunks=1).map_blocks(threads_seen).compute()) == {1}


def test_cluster_results_equal_in_memory(client):
    x = RNG.standard_normal((2, 3, 50, 44))
    w = RNG.standard_normal((4, 3, 3, 3))
    image = RNG.standard_normal((3, 50, 44))
    got = fd.conv2d(chunked(x, (16, 20)), w, stride=2, padding=1, algorithm="direct")
    assert np.array_equal(got.compute(),
                          fastconv.conv2d(x, w, stride=2, padding=1, algorithm="direct"))
    assert np.array_equal(fd.canny(chunked(image, (16, 20))).compute(),
                          filters.canny(image))
    model = nn.LeNet5(seed=1)
    digits = (RNG.random((300, 28, 28)) * 255).astype(np.uint8)
    assert np.array_equal(fd.predict(model, da.from_array(digits, chunks=100)).compute(),
                          model.predict(digits))


def _slow_copy(block):
    time.sleep(0.05)
    return block.copy()


def test_a_worker_killed_mid_computation_leaves_the_result_exact(client):
    image = RNG.standard_normal((40, 400))
    slow = da.from_array(image, chunks=(40, 10)).map_blocks(_slow_copy)  # 40 tasks, 2 s
    future = client.compute(fd.sobel(slow, mode="wrap"))
    deadline = time.monotonic() + 10
    while not any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    victim = next(address for address, keys in client.processing().items() if keys)
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    assert np.array_equal(future.result(timeout=60), filters.sobel(image, mode="wrap"))


# ---- pickling ---------------------------------------------------------------------------

def _layers():
    return [
        nn.Conv2D(3, 4, 3, padding=1, seed=0), nn.Linear(12, 5, seed=0),
        nn.MaxPool2D(2), nn.AvgPool2D(2), nn.ReLU(), nn.Tanh(), nn.Flatten(),
        nn.BatchNorm2D(3), nn.BatchNorm1D(12), nn.Identity(), nn.Dropout(0.3, seed=0),
        nn.GlobalAvgPool2D(), nn.ZeroPadShortcut(3, 5),
        nn.Sequential(nn.Conv2D(3, 3, 3, padding=1, seed=1), nn.ReLU()),
        nn.Residual(nn.Sequential(nn.Conv2D(3, 3, 3, padding=1, seed=2), nn.BatchNorm2D(3))),
    ]


@pytest.mark.parametrize("layer", _layers(), ids=lambda layer: type(layer).__name__)
def test_every_layer_pickles_and_behaves_the_same_after(layer):
    x = RNG.standard_normal((2, 12) if isinstance(layer, (nn.Linear, nn.BatchNorm1D))
                            else (2, 3, 8, 8)).astype(np.float32)
    layer.train()
    layer.forward(x)                                  # state a trained layer carries
    copy = pickle.loads(pickle.dumps(layer))
    for name, value in {**layer.params(), **layer.buffers()}.items():
        assert np.array_equal({**copy.params(), **copy.buffers()}[name], value), name
    # the next training step draws the same (Dropout) and updates the same (BatchNorm)
    assert np.array_equal(copy.forward(x), layer.forward(x))
    layer.eval()
    copy.eval()
    assert np.array_equal(copy.forward(x), layer.forward(x))


@pytest.mark.parametrize("model", [nn.LeNet5(seed=0), nn.ResNet(20, seed=0),
                                   nn.MobileNetV2(seed=0)], ids=lambda m: type(m).__name__)
def test_every_model_pickles_and_predicts_the_same_after(model):
    x = RNG.standard_normal((2,) + tuple(model.input_shape)).astype(np.float32)
    copy = pickle.loads(pickle.dumps(model))
    assert np.array_equal(copy.logits(x), model.logits(x))
    assert copy.state_dict().keys() == model.state_dict().keys()


# ---- errors -----------------------------------------------------------------------------

def test_bad_arguments_are_refused_when_the_graph_is_built():
    x = da.zeros((1, 3, 8, 8), chunks=4)
    with pytest.raises(ValueError, match="x"):
        fd.conv2d(da.zeros((3, 8, 8)), np.zeros((1, 3, 3, 3)))
    with pytest.raises(ValueError, match="weight"):
        fd.conv2d(x, np.zeros((1, 2, 3, 3)))
    with pytest.raises(ValueError, match="algorithm|winograd"):
        fd.conv2d(x, np.zeros((1, 3, 5, 5)), algorithm="winograd")
    with pytest.raises(TypeError, match="image"):
        fd.sobel(da.zeros((8, 8), dtype=complex))
    with pytest.raises(ValueError, match="mode"):
        fd.sobel(da.zeros((8, 8)), mode="bogus")
    with pytest.raises(ValueError, match="padding"):
        fd.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="low_threshold"):
        fd.canny(da.zeros((8, 8)), 1.0, 0.5, 0.1)
    with pytest.raises(TypeError, match="model"):
        fd.predict(object(), da.zeros((4, 28, 28)))


# ---- fastconv edges, chunked ------------------------------------------------------------

def test_edges_command_runs_chunked_between_npy_files_and_zarr_stores(tmp_path, capsys):
    zarr = pytest.importorskip("zarr")
    from fastconv.cli import main
    image = filters.synthetic_image(150).astype(np.float32)
    np.save(tmp_path / "in.npy", image)
    assert main(["edges", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.zarr"),
                 "--chunks", "40"]) == 0
    assert np.array_equal(zarr.open_array(str(tmp_path / "out.zarr"))[:], filters.sobel(image))
    assert main(["edges", str(tmp_path / "out.zarr"), "-o", str(tmp_path / "back.npy"),
                 "--method", "canny", "--scheduler", "synchronous"]) == 0
    assert np.array_equal(np.load(tmp_path / "back.npy"), filters.canny(filters.sobel(image)))
    out = capsys.readouterr().out
    assert "100% Completed" in out and "edge pixels:" in out


def test_edges_command_chunks_a_npy_image_larger_than_one_chunk(tmp_path, capsys, monkeypatch):
    from fastconv.cli import edges, main
    monkeypatch.setattr(edges, "DEFAULT_CHUNK", 64)
    image = RNG.random((100, 90))
    np.save(tmp_path / "big.npy", image)
    assert main(["edges", str(tmp_path / "big.npy"), "-o", str(tmp_path / "e.npy"),
                 "--mode", "wrap"]) == 0
    assert "Completed" in capsys.readouterr().out
    assert np.array_equal(np.load(tmp_path / "e.npy"), filters.sobel(image, mode="wrap"))


def test_edges_command_runs_on_a_cluster_scheduler(client, tmp_path, capsys):
    from fastconv.cli import main
    image = filters.synthetic_image(120)
    np.save(tmp_path / "in.npy", image)
    address = client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    assert main(["edges", str(tmp_path / "in.npy"), "-o", str(tmp_path / "e.npy"),
                 "--method", "prewitt", "--chunks", "50", "--scheduler", address]) == 0
    assert np.array_equal(np.load(tmp_path / "e.npy"), filters.prewitt(image))


def test_edges_command_refuses_an_unknown_scheduler(tmp_path, capsys):
    from fastconv.cli import main
    np.save(tmp_path / "in.npy", np.zeros((8, 8)))
    with pytest.raises(SystemExit) as exit_info:
        main(["edges", str(tmp_path / "in.npy"), "-o", str(tmp_path / "e.npy"),
              "--scheduler", "gpu"])
    assert exit_info.value.code == 2
    assert "--scheduler" in capsys.readouterr().err
