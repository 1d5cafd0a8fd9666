/*
 * batchnorm.c: batch normalisation over (N, C, HW) inputs, forward (training and
 * inference) and backward, as PyTorch's batch_norm: the batch's mean and biased variance
 * normalise, the unbiased variance enters the running estimate.
 *
 * Entry points in batchnorm_impl.h, written once for float and double; they call the
 * loops of batchnorm_loops_impl.h, stamped out here for each instruction set and chosen at
 * run time (config.c): plain C the compiler vectorises at each target, but for the plane
 * sums, whose AVX2 and AVX-512 twins hold their float64 lanes in the vector types. The
 * statistics take one pass over x, the training forward a second to write y, the backward
 * two (the sums, then dx).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastconv.h"
#include "real_math.h"
#include "template.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* The sums' lanes are the same bits on every instruction set only without fused
 * multiply-adds (GCC's ISO C mode does not fuse; Clang fuses by default). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* Per-function x86 targets exist where GCC or Clang can compile for them. */
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define BN_HAVE_X86 1
#else
#define BN_HAVE_X86 0
#endif

/* Below this many elements one thread is faster than waking the others. */
#define BN_PARALLEL_MIN ((int64_t)1 << 15)

/* The AVX-512 loops run on 512-bit vectors, also where the compiler's cost model would
 * pick 256 bits: GCC takes that preference as a target option, Clang as an attribute of
 * its own. */
#if defined(__clang__)
#define BN_TARGET_AVX512 __attribute__((target("avx512f"), min_vector_width(512)))
#else
#define BN_TARGET_AVX512 __attribute__((target("avx512f,prefer-vector-width=512")))
#endif

/* A ReLU after the normalisation (fc_batch_norm_problem.relu), by real_math.h's fc_relu
 * and fc_relu_grad: the forward passes write fc_relu of each value; the backward takes
 * dy[i] where the ReLU's output y[i] > 0, else 0 (y NULL: no ReLU, dy[i]).
 * bn_grad_at_<type> gives that in the element type, bn_grad_sum_at_<type> in float64 for
 * the sums, by masking the bits (GCC does not vectorise a select of a converted float32,
 * whose conversion may trap), and BN_KEEP_WHERE_POSITIVE on vectors of doubles (GCC's and
 * Clang's vector comparisons give lanes of all ones or zeros). All three give dy's bits or
 * +0, as fc_relu_grad does. */
#define BN_GRAD_AT(T, SUFFIX)                                                     \
    static inline T bn_grad_at_##SUFFIX(const T *dy, const T *y, int64_t i)      \
    {                                                                             \
        return y != NULL ? fc_relu_grad_##SUFFIX(dy[i], y[i]) : dy[i];            \
    }                                                                             \
    static inline double bn_grad_sum_at_##SUFFIX(const T *dy, const T *y,        \
                                                 int64_t i)                       \
    {                                                                             \
        const double g = (double)dy[i];                                           \
        uint64_t bits;                                                            \
        memcpy(&bits, &g, sizeof bits);                                           \
        bits &= y != NULL ? -(uint64_t)(y[i] > 0) : ~(uint64_t)0;                 \
        double kept;                                                              \
        memcpy(&kept, &bits, sizeof kept);                                        \
        return kept;                                                              \
    }
BN_GRAD_AT(float, f32)
BN_GRAD_AT(double, f64)
#define BN_KEEP_WHERE_POSITIVE(g, y, zero) \
    ((__typeof__(g))((__typeof__((y) > (zero)))(g) & ((y) > (zero))))
/* p + offset, or NULL for a NULL p. */
#define BN_AT(p, offset) ((p) != NULL ? (p) + (offset) : NULL)

/* Planes smaller than this run as rows (batchnorm_impl.h). */
#define BN_ROWS_BELOW_HW 32

/* Float64 accumulators per sum: two AVX-512 vectors, and enough independent chains to
 * hide the latency of the additions. */
#define BN_LANES 16

/* The loops of one type T and instruction set (batchnorm_loops_impl.h). */
#define BN_KERNELS(T)                                                                       \
    struct {                                                                                \
        void (*sums)(const T *x, int64_t n, double shift, double *ta, double *tb);          \
        void (*normalize)(T *y, const T *x, int64_t n, T mean, T scale, T shift, int relu); \
        void (*grad_sums)(const T *dy, const T *y, const T *x, int64_t n, double mean,      \
                          double *ta, double *tb);                                          \
        void (*grad_input)(T *dx, const T *dy, const T *y, const T *x, int64_t n, T mean,   \
                           T k, T mean_dy, T scale);                                        \
        void (*row_sums)(double *a, double *b, const T *x, int64_t n, const double *shift); \
        void (*row_grad_sums)(double *a, double *b, const T *dy, const T *y, const T *x,    \
                              int64_t n, const double *mean);                               \
        void (*row_normalize)(T *y, const T *x, int64_t n, const T *coef, int relu);        \
        void (*row_grad_input)(T *dx, const T *dy, const T *y, const T *x, int64_t n,       \
                               const T *coef);                                              \
    }
typedef BN_KERNELS(float) bn_kernels_f32;
typedef BN_KERNELS(double) bn_kernels_f64;

/* Sizes no caller can mean: negative, or eps not positive and finite. */
static int bn_problem_valid(const fc_batch_norm_problem *pb)
{
    return pb->N >= 0 && pb->C >= 0 && pb->HW >= 0 && pb->eps > 0 && isfinite(pb->eps);
}

/* A call's workspaces: *sums of n_sums doubles and (coef not NULL) *coef of coef_bytes, or
 * none (FC_ERR_NOMEM). Either may be of size 0; the caller frees what it asked for. */
static fc_status bn_workspace(double **sums, int64_t n_sums, void **coef, int64_t coef_bytes)
{
    *sums = malloc(sizeof(double) * ((size_t)n_sums + 1));   /* + 1: malloc(0) may be NULL */
    void *c = NULL;
    if (coef != NULL) {
        c = malloc((size_t)coef_bytes + 1);
        *coef = c;
    }
    if (*sums == NULL || (coef != NULL && c == NULL)) {
        free(*sums);
        free(c);
        return FC_ERR_NOMEM;
    }
    return FC_OK;
}

/* This thread's contiguous share [lo, hi) of n items, in a parallel region (all of them
 * outside one). */
static void bn_share(int64_t n, int64_t *lo, int64_t *hi)
{
    *lo = 0;
    *hi = n;
#ifdef _OPENMP
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    *lo = n / threads * t + (t < n % threads ? t : n % threads);
    *hi = *lo + n / threads + (t < n % threads);
#endif
}

#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX generic
#define FC_TEMPLATE_TARGET
#include "batchnorm_loops_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX generic
#define FC_TEMPLATE_TARGET
#include "batchnorm_loops_impl.h"
#include "template_end.h"

#if BN_HAVE_X86

#include <immintrin.h>

#define BN_TARGET_AVX2 __attribute__((target("avx2")))

/* Loads of 4 (AVX2) or 8 (AVX-512) values as doubles: FC_TEMPLATE_LOADU of the sums. */
static inline BN_TARGET_AVX2 __m256d bn_load4_f32(const float *p)
{
    return _mm256_cvtps_pd(_mm_loadu_ps(p));
}

static inline BN_TARGET_AVX2 __m256d bn_load4_f64(const double *p)
{
    return _mm256_loadu_pd(p);
}

static inline BN_TARGET_AVX512 __m512d bn_load8_f32(const float *p)
{
    return _mm512_cvtps_pd(_mm256_loadu_ps(p));
}

static inline BN_TARGET_AVX512 __m512d bn_load8_f64(const double *p)
{
    return _mm512_loadu_pd(p);
}

#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX avx2
#define FC_TEMPLATE_TARGET BN_TARGET_AVX2
#define FC_TEMPLATE_VEC __m256d
#define FC_TEMPLATE_LANES 4
#define FC_TEMPLATE_SET1 _mm256_set1_pd
#define FC_TEMPLATE_LOADU bn_load4_f32
#include "batchnorm_loops_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX avx2
#define FC_TEMPLATE_TARGET BN_TARGET_AVX2
#define FC_TEMPLATE_VEC __m256d
#define FC_TEMPLATE_LANES 4
#define FC_TEMPLATE_SET1 _mm256_set1_pd
#define FC_TEMPLATE_LOADU bn_load4_f64
#include "batchnorm_loops_impl.h"
#include "template_end.h"

#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX avx512
#define FC_TEMPLATE_TARGET BN_TARGET_AVX512
#define FC_TEMPLATE_VEC __m512d
#define FC_TEMPLATE_LANES 8
#define FC_TEMPLATE_SET1 _mm512_set1_pd
#define FC_TEMPLATE_LOADU bn_load8_f32
#include "batchnorm_loops_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX avx512
#define FC_TEMPLATE_TARGET BN_TARGET_AVX512
#define FC_TEMPLATE_VEC __m512d
#define FC_TEMPLATE_LANES 8
#define FC_TEMPLATE_SET1 _mm512_set1_pd
#define FC_TEMPLATE_LOADU bn_load8_f64
#include "batchnorm_loops_impl.h"
#include "template_end.h"

#endif /* BN_HAVE_X86 */

#define REAL float
#define TYPE_SUFFIX f32
#include "batchnorm_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#include "batchnorm_impl.h"
#include "template_end.h"
