"""fastconv's own GEMM (through fastconv.matmul) against NumPy in float64.

The `simd` fixture runs the portable, AVX2 (6-row tiles) and AVX-512 (12 x 32 float32,
12 x 16 float64 tiles, KC 384, MC 240/120) paths; the sizes below cut tiles and blocks of
both geometries: partial tiles, several K and M blocks, N beyond NC, single rows/columns.
Products of at most 4 rows of A skip the tiles: dot products with B's columns when those
are contiguous, else B's rows added up, in the order of the depth."""
import numpy as np
import pytest

import fastconv

from conftest import rel_err

SIZES = [(1, 1, 1), (5, 7, 6), (6, 16, 1), (7, 17, 15), (13, 97, 33), (97, 257, 65),
         (200, 31, 300), (6, 784, 25), (16, 100, 150), (300, 300, 300), (3, 5, 0),
         (12, 32, 1), (25, 65, 385), (253, 47, 777), (1, 300, 400), (300, 1, 400),
         (11, 4100, 3), (37, 2053, 5)]
DTYPES = [(np.float32, 1e-5), (np.float64, 1e-13)]


@pytest.mark.parametrize("m, n, k", SIZES)
@pytest.mark.parametrize("dtype, tol", DTYPES)
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


@pytest.mark.parametrize("m, n, k", [s for s in SIZES if min(s) > 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_layout_gives_the_same_bits(m, n, k, dtype, simd):
    """Packing only moves values: a row-major A (its rows transposed into panels or read in
    place) and a column-major one (copied), a column-major B (transposed) and a row-major
    one (copied or read in place) give the same products, summed in the same order; so do
    views with rows further apart or in reverse order."""
    rng = np.random.default_rng(m + n + k)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    want = fastconv.matmul(a, b)
    wide = np.zeros((m, k + 5), dtype)
    wide[:, 2:k + 2] = a
    for a_view in (a, np.asfortranarray(a), wide[:, 2:k + 2], a[::-1].copy()[::-1]):
        for b_view in (b, np.asfortranarray(b)):
            assert np.array_equal(fastconv.matmul(a_view, b_view), want)
    repeated = np.broadcast_to(a[:1], (m, k))                  # a row stride of 0
    assert np.array_equal(fastconv.matmul(repeated, b), fastconv.matmul(repeated.copy(), b))


@pytest.mark.parametrize("m, n, k", [(40, 50, 30), (25, 70, 400), (250, 33, 390), (4, 3, 0)])
@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_accumulate_adds_and_overwrite_ignores_nan(m, n, k, dtype, tol, simd):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    want = a.astype(np.float64) @ b
    out = np.full((m, n), np.nan, dtype)
    fastconv.matmul(a, b, out=out)
    assert rel_err(out, want) < tol * max(1, k) ** 0.5
    fastconv.matmul(a, b, out=out, accumulate=True)
    assert rel_err(out, 2 * want) < tol * max(1, k) ** 0.5


@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_strided_and_negative_stride_views(dtype, tol, simd):
    rng = np.random.default_rng(2)
    big = rng.standard_normal((520, 800)).astype(dtype)
    views = [
        (big[:60:2, ::-3], big[5:272, 7:50:2]),      # strided A, strided B: both packed
        (big[:13, 100:500], big[100:500, 1:60]),     # few rows: B read in place, row stride 800
        (big[:100, :400], big[:400, :77]),           # more rows: B still in place
        (big[:50, ::-2][:, :300], big[::-1][:300, 3:700:3]),  # negative strides
        (big[:7, :9].T, big[:7, :300]),              # transposed A
    ]
    for a, b in views:
        want = a.astype(np.float64) @ b
        assert rel_err(fastconv.matmul(a, b), want) < tol * a.shape[1] ** 0.5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_identical_for_any_thread_count(dtype, threads, simd):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((300, 500)).astype(dtype)
    b = rng.standard_normal((500, 400)).astype(dtype)
    results = []
    for n in (1, 2, 3, 4, 2):
        threads(n)
        results.append(fastconv.matmul(a, b))
    for r in results[1:]:
        assert np.array_equal(r, results[0])


@pytest.mark.parametrize("m", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_few_rows_every_layout_and_accumulate(m, dtype, tol, simd):
    """A batch of 1 to 4 through a Linear layer: x @ W.T (B's columns contiguous) and the
    other layouts, depths with and without whole vectors, accumulate, NaN in out ignored."""
    rng = np.random.default_rng(m)
    for n, k in ((120, 400), (10, 84), (37, 1), (5, 131)):
        a = rng.standard_normal((m, k)).astype(dtype)
        w = rng.standard_normal((n, k)).astype(dtype)
        a_strided = rng.standard_normal((m, 2 * k)).astype(dtype)[:, ::2]
        for a_view in (a, np.asfortranarray(a), a_strided):
            for b_view in (w.T, np.ascontiguousarray(w.T), w.T[:, ::-1]):
                want = a_view.astype(np.float64) @ b_view.astype(np.float64)
                out = np.full((m, n), np.nan, dtype)
                fastconv.matmul(a_view, b_view, out=out)
                assert rel_err(out, want) < tol * max(1, k) ** 0.5
                fastconv.matmul(a_view, b_view, out=out, accumulate=True)
                assert rel_err(out, 2 * want) < tol * max(1, k) ** 0.5


@pytest.mark.parametrize("b_layout", ["columns", "rows"])
def test_few_rows_bitwise_identical_for_any_thread_count(b_layout, threads, simd):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((2, 700)).astype(np.float32)
    w = rng.standard_normal((3000, 700)).astype(np.float32)
    b = w.T if b_layout == "columns" else np.ascontiguousarray(w.T)
    results = []
    for n in (1, 2, 3, 2):
        threads(n)
        results.append(fastconv.matmul(a, b))
    for r in results[1:]:
        assert np.array_equal(r, results[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_last_columns_equal_bitwise_whatever_the_width(dtype, simd):
    """A last tile of few columns runs a narrower kernel (AVX-512: one vector instead of
    two) that sums each element in the same order: the same bits as in a wider product."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((30, 300)).astype(dtype)
    b = rng.standard_normal((300, 64)).astype(dtype)
    wide = fastconv.matmul(a, b)
    for width in (33, 40, 48, 49, 56):
        assert np.array_equal(fastconv.matmul(a, b[:, :width]), wide[:, :width])


def test_bad_shapes_and_out():
    with pytest.raises(ValueError, match=r"a's columns \(3\) to equal b's rows \(4\)"):
        fastconv.matmul(np.zeros((2, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="2-D"):
        fastconv.matmul(np.zeros(3), np.zeros((3, 5)))
    with pytest.raises(TypeError, match="out must have dtype float64"):
        fastconv.matmul(np.zeros((2, 3)), np.zeros((3, 5)), out=np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="complex"):
        fastconv.matmul(np.zeros((2, 3), complex), np.zeros((3, 5)))
