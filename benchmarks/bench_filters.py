"""Edge filters on a 1024x1024 float32 image, side by side with OpenCV, scikit-image, SciPy
and PyTorch, all on 2 threads (each peer is skipped when not installed).

    pytest benchmarks/bench_filters.py                      # timings
    pytest benchmarks/bench_filters.py --benchmark-disable  # smoke run (CI)

The targets: fastconv's Sobel along one axis at least 10x faster than PyTorch's
conv2d and within 1.5x of cv2.Sobel. "fastconv conv2d direct" is the general convolution
kernel on the same problem, for comparison with the dedicated single-plane filter.
"""
import numpy as np
import pytest

import fastconv
from fastconv import filters

SIZE = 1024
THREADS = 2
MPIXEL = SIZE * SIZE / 1e6
AXES = [0, 1]


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(THREADS)
    yield
    fastconv.set_num_threads(before)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).random((SIZE, SIZE), dtype=np.float32)


def measure(benchmark, func, *args, **kwargs):
    """Run the benchmark; record the image size and, when timed, the throughput."""
    out = benchmark(func, *args, **kwargs)
    benchmark.extra_info["Mpixel"] = MPIXEL
    benchmark.extra_info["threads"] = THREADS
    if benchmark.stats is not None:
        benchmark.extra_info["Mpixel/s"] = round(MPIXEL / benchmark.stats.stats.median, 1)
    return out


def torch_module():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(THREADS)
    return torch


def cv2_module():
    cv2 = pytest.importorskip("cv2")
    cv2.setNumThreads(THREADS)
    return cv2


@pytest.mark.benchmark(group="edge filters")
@pytest.mark.parametrize("axis", AXES)
def test_fastconv_sobel(benchmark, image, axis):
    out = measure(benchmark, filters.sobel, image, axis)
    assert out.shape == image.shape and out.dtype == np.float32


@pytest.mark.benchmark(group="edge filters")
@pytest.mark.parametrize("axis", AXES)
def test_opencv_sobel(benchmark, image, axis):
    cv2 = cv2_module()
    dx, dy = (0, 1) if axis == 0 else (1, 0)
    out = measure(benchmark, cv2.Sobel, image, cv2.CV_32F, dx, dy, ksize=3)
    np.testing.assert_allclose(out, filters.sobel(image, axis, mode="mirror"), atol=1e-4)


@pytest.mark.benchmark(group="edge filters")
@pytest.mark.parametrize("axis", AXES)
def test_skimage_sobel(benchmark, image, axis):
    skf = pytest.importorskip("skimage.filters")
    func = skf.sobel_h if axis == 0 else skf.sobel_v
    out = measure(benchmark, func, image)
    assert out.shape == image.shape


@pytest.mark.benchmark(group="edge filters")
@pytest.mark.parametrize("axis", AXES)
def test_scipy_sobel(benchmark, image, axis):
    ndi = pytest.importorskip("scipy.ndimage")
    out = measure(benchmark, ndi.sobel, image, axis)
    assert out.shape == image.shape


@pytest.mark.benchmark(group="edge filters")
@pytest.mark.parametrize("axis", AXES)
def test_torch_conv2d_sobel(benchmark, image, axis):
    torch = torch_module()
    x = torch.from_numpy(image[None, None])
    w = torch.from_numpy(filters.edge_kernel("sobel", axis).astype(np.float32)[None, None])

    def sobel():
        with torch.no_grad():
            return torch.nn.functional.conv2d(x, w, padding=1)

    out = measure(benchmark, sobel)
    assert tuple(out.shape) == (1, 1, SIZE, SIZE)


@pytest.mark.benchmark(group="edge filters")
def test_fastconv_conv2d_direct_sobel(benchmark, image):
    x = image[None, None]
    w = filters.edge_kernel("sobel", 1).astype(np.float32)[None, None]
    out = measure(benchmark, fastconv.conv2d, x, w, padding=1, algorithm="direct")
    assert out.shape == (1, 1, SIZE, SIZE)


@pytest.mark.benchmark(group="edge magnitude")
def test_fastconv_sobel_magnitude(benchmark, image):
    measure(benchmark, filters.sobel, image)


@pytest.mark.benchmark(group="edge magnitude")
def test_skimage_sobel_magnitude(benchmark, image):
    skf = pytest.importorskip("skimage.filters")
    measure(benchmark, skf.sobel, image)


@pytest.mark.benchmark(group="edge magnitude")
def test_opencv_sobel_magnitude(benchmark, image):
    cv2 = cv2_module()

    def magnitude():
        return cv2.magnitude(cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3),
                             cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3))

    measure(benchmark, magnitude)


@pytest.mark.benchmark(group="canny")
def test_fastconv_canny(benchmark, image):
    measure(benchmark, filters.canny, image, 2.0)


@pytest.mark.benchmark(group="canny")
def test_skimage_canny(benchmark, image):
    feature = pytest.importorskip("skimage.feature")
    measure(benchmark, feature.canny, image, 2.0, mode="reflect")
