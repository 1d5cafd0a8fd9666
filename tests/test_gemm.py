"""fastconv's own GEMM (through fastconv.matmul) against NumPy in float64."""
import numpy as np
import pytest

import fastconv

from conftest import rel_err

SIZES = [(1, 1, 1), (5, 7, 6), (6, 16, 1), (7, 17, 15), (13, 97, 33), (97, 257, 65),
         (200, 31, 300), (6, 784, 25), (16, 100, 150), (300, 300, 300), (3, 5, 0)]


@pytest.mark.parametrize("m, n, k", SIZES)
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-13)])
def test_matches_numpy_all_transposes(m, n, k, dtype, tol, simd):
    rng = np.random.default_rng(m * 1000 + n + k)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    want = a.astype(np.float64) @ b.astype(np.float64)
    for a_view in (a, np.asfortranarray(a)):
        for b_view in (b, np.asfortranarray(b)):
            got = fastconv.matmul(a_view, b_view)
            assert got.dtype == dtype
            assert rel_err(got, want) < tol * max(1, k) ** 0.5


def test_accumulate_adds_and_overwrite_ignores_nan():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((40, 30))
    b = rng.standard_normal((30, 50))
    out = np.full((40, 50), np.nan)
    fastconv.matmul(a, b, out=out)
    assert rel_err(out, a @ b) < 1e-13
    fastconv.matmul(a, b, out=out, accumulate=True)
    assert rel_err(out, 2 * (a @ b)) < 1e-13


def test_strided_and_negative_stride_views():
    rng = np.random.default_rng(2)
    big = rng.standard_normal((60, 80)).astype(np.float32)
    a = big[::2, ::-3]
    b = big[5:32, 7:50:2]
    assert rel_err(fastconv.matmul(a, b), a.astype(np.float64) @ b) < 1e-5


def test_bitwise_identical_for_any_thread_count(threads):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((300, 500)).astype(np.float32)
    b = rng.standard_normal((500, 400)).astype(np.float32)
    results = []
    for n in (1, 2, 3, 4):
        threads(n)
        results.append(fastconv.matmul(a, b))
    for r in results[1:]:
        assert np.array_equal(r, results[0])


def test_bad_shapes_and_out():
    with pytest.raises(ValueError, match=r"a's columns \(3\) to equal b's rows \(4\)"):
        fastconv.matmul(np.zeros((2, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="2-D"):
        fastconv.matmul(np.zeros(3), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="out"):
        fastconv.matmul(np.zeros((2, 3)), np.zeros((3, 5)), out=np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="complex"):
        fastconv.matmul(np.zeros((2, 3), complex), np.zeros((3, 5)))
