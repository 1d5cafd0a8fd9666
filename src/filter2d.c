/* filter2d.c: small 2-D filters (Sobel, Scharr, Gaussian, ...) on single-channel planes.
 *
 * An edge filter is one channel and one 3x3 kernel over a large image: nothing like a deep
 * layer, whose kernels vectorise over output channels. Here each output row is computed
 * from R input rows with the accumulators for 16 neighbouring pixels held in registers,
 * so every output pixel is written exactly once. Border rows are handled by a table of row
 * pointers (the zero row for constant mode); border columns, only S - 1 per row, by a
 * scalar loop that maps each column index. Written once in filter2d_impl.h and
 * instantiated for float and double; the AVX2 micro-kernels below are the only SIMD. */
#include <math.h>
#include <stdlib.h>

#include "fastconv.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define FC_FILTER_AVX2 1
#include <immintrin.h>
#else
#define FC_FILTER_AVX2 0
#endif

/* Below this many multiply-adds a call runs on one thread: fork/join would cost more. */
#define FC_FILTER_MIN_WORK ((int64_t)1 << 16)

/* Threads a parallel loop may use, and the calling thread's number among them: they index
 * the per-thread row buffers. */
static int fc_filter_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int fc_filter_thread(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The index inside [0, n) that position i (any integer) reads under a border mode, or -1
 * for a zero of the constant mode. Periodic formulas, so kernels wider than the image
 * reflect again and again as scipy.ndimage does. */
static inline int64_t fc_border_index(int64_t i, int64_t n, fc_border mode)
{
    if (i >= 0 && i < n) {
        return i;
    }
    switch (mode) {
    case FC_BORDER_REFLECT: {
        int64_t m = i % (2 * n);
        if (m < 0) {
            m += 2 * n;
        }
        return m < n ? m : 2 * n - 1 - m;
    }
    case FC_BORDER_REPLICATE:
        return i < 0 ? 0 : n - 1;
    case FC_BORDER_MIRROR: {
        if (n == 1) {
            return 0;
        }
        int64_t m = i % (2 * n - 2);
        if (m < 0) {
            m += 2 * n - 2;
        }
        return m < n ? m : 2 * n - 2 - m;
    }
    case FC_BORDER_WRAP: {
        int64_t m = i % n;
        return m < 0 ? m + n : m;
    }
    default:
        return -1;
    }
}

#if FC_FILTER_AVX2
/* y[j] = sum over r, s of k[r*S + s] * rows[r][j + s] for j in [0, n): the micro-kernel,
 * 16 pixels per step in two YMM accumulators. Taps accumulate in the order r, s, as in the
 * portable twin (which does not fuse the multiply-add, so the two differ in rounding). */
__attribute__((target("avx2,fma")))
static void filter_row_avx2_f32(float *y, const float *const *rows, const float *k,
                                int64_t R, int64_t S, int64_t n)
{
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256 acc0 = _mm256_setzero_ps();
        __m256 acc1 = _mm256_setzero_ps();
        for (int64_t r = 0; r < R; r++) {
            const float *x = rows[r] + j;
            const float *kr = k + r * S;
            for (int64_t s = 0; s < S; s++) {
                const __m256 wv = _mm256_broadcast_ss(kr + s);
                acc0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + s), acc0);
                acc1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + s + 8), acc1);
            }
        }
        _mm256_storeu_ps(y + j, acc0);
        _mm256_storeu_ps(y + j + 8, acc1);
    }
    for (; j + 8 <= n; j += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int64_t r = 0; r < R; r++) {
            const float *x = rows[r] + j;
            for (int64_t s = 0; s < S; s++) {
                acc = _mm256_fmadd_ps(_mm256_broadcast_ss(k + r * S + s),
                                      _mm256_loadu_ps(x + s), acc);
            }
        }
        _mm256_storeu_ps(y + j, acc);
    }
    for (; j < n; j++) {
        float acc = 0;
        for (int64_t r = 0; r < R; r++) {
            for (int64_t s = 0; s < S; s++) {
                acc = fmaf(k[r * S + s], rows[r][j + s], acc);
            }
        }
        y[j] = acc;
    }
}

__attribute__((target("avx2,fma")))
static void filter_row_avx2_f64(double *y, const double *const *rows, const double *k,
                                int64_t R, int64_t S, int64_t n)
{
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256d acc0 = _mm256_setzero_pd();
        __m256d acc1 = _mm256_setzero_pd();
        for (int64_t r = 0; r < R; r++) {
            const double *x = rows[r] + j;
            const double *kr = k + r * S;
            for (int64_t s = 0; s < S; s++) {
                const __m256d wv = _mm256_broadcast_sd(kr + s);
                acc0 = _mm256_fmadd_pd(wv, _mm256_loadu_pd(x + s), acc0);
                acc1 = _mm256_fmadd_pd(wv, _mm256_loadu_pd(x + s + 4), acc1);
            }
        }
        _mm256_storeu_pd(y + j, acc0);
        _mm256_storeu_pd(y + j + 4, acc1);
    }
    for (; j + 4 <= n; j += 4) {
        __m256d acc = _mm256_setzero_pd();
        for (int64_t r = 0; r < R; r++) {
            const double *x = rows[r] + j;
            for (int64_t s = 0; s < S; s++) {
                acc = _mm256_fmadd_pd(_mm256_broadcast_sd(k + r * S + s),
                                      _mm256_loadu_pd(x + s), acc);
            }
        }
        _mm256_storeu_pd(y + j, acc);
    }
    for (; j < n; j++) {
        double acc = 0;
        for (int64_t r = 0; r < R; r++) {
            for (int64_t s = 0; s < S; s++) {
                acc = fma(k[r * S + s], rows[r][j + s], acc);
            }
        }
        y[j] = acc;
    }
}
#endif

#define REAL float
#define FN(name) name##_f32
#define SQRT sqrtf
#if FC_FILTER_AVX2
#define FILTER_ROW_AVX2 filter_row_avx2_f32
#endif
#include "filter2d_impl.h"
#undef REAL
#undef FN
#undef SQRT
#undef FILTER_ROW_AVX2

#define REAL double
#define FN(name) name##_f64
#define SQRT sqrt
#if FC_FILTER_AVX2
#define FILTER_ROW_AVX2 filter_row_avx2_f64
#endif
#include "filter2d_impl.h"
#undef REAL
#undef FN
#undef SQRT
#undef FILTER_ROW_AVX2
