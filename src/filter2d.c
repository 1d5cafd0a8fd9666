/* filter2d.c: small 2-D filters (Sobel, Scharr, Gaussian, ...) on single-channel planes.
 *
 * An edge filter is one channel and one 3x3 kernel over a large image: nothing like a deep
 * layer, whose kernels vectorise over output channels. Here each output row is computed
 * from R input rows with the accumulators for 16 neighbouring pixels held in registers,
 * so every output pixel is written exactly once. A thread computes a band of output rows at a
 * time from pointers to the input rows the band reads: rows of the image, or of an image
 * given as tiles side by side (a Dask chunk and its neighbours' edges), read where they
 * lie; the zero row of constant mode outside it; or the rows of a uint8 image, converted
 * in the thread's buffer (so no float copy of the image is made). The columns whose taps
 * cross the image border (S - 1 for the two sides) or a join of tiles (S - 1 per join) go
 * through a scalar loop that maps each column index. A call may compute a window of the
 * result only (a chunk without its halo). Written once in filter2d_impl.h and instantiated
 * for float and double; the AVX2 micro-kernel of filter2d_avx2_impl.h, instantiated for
 * both types below, is the only SIMD. */
#include <stdlib.h>
#include <string.h>

#include "fastconv.h"
#include "real_math.h"
#include "template.h"

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

/* Output rows per band: a uint8 image's rows are converted once per band they are read in,
 * (FC_FILTER_BAND + R - 1) / FC_FILTER_BAND times each. */
#define FC_FILTER_BAND 8

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

void fc_border_indices(int64_t *out, int64_t start, int64_t count, int64_t n, fc_border mode)
{
    for (int64_t k = 0; k < count; k++) {
        out[k] = fc_border_index(start + k, n, mode);
    }
}

/* The AVX2+FMA micro-kernel (filter2d_avx2_impl.h), float32 (8 lanes) and float64 (4). */
#if FC_FILTER_AVX2
#define REAL float
#define TYPE_SUFFIX f32
#include "simd_avx2_f32.h"
#include "filter2d_avx2_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#include "simd_avx2_f64.h"
#include "filter2d_avx2_impl.h"
#include "template_end.h"
#endif

/* The filters themselves, float32 and float64. */
#define REAL float
#define TYPE_SUFFIX f32
#include "filter2d_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#include "filter2d_impl.h"
#include "template_end.h"
