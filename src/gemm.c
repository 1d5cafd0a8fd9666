/*
 * gemm.c: C = A B + beta C with general strides, BLIS-style (Goto & van de Geijn, TOMS 2008).
 *
 * Loops, from outside in: NC columns of B, KC deep slices, pack B into NR-column panels,
 * MC rows of A, pack A into MR-row panels, then the micro-kernel over MR x NR tiles of C.
 * Packing reads A and B through their strides, so transposes cost nothing extra.
 * The algorithm lives once in gemm_impl.h, included below for float and double, each with
 * the 6-row tiles of the portable and AVX2 kernels and with the larger AVX-512 tiles;
 * fc_gemm_f32/f64 at the end pick the instance and kernel for the SIMD level of the call.
 */
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fastconv.h"
#include "gemm_kernels.h"

#define FC_GLUE_(name, suffix) name##_##suffix
#define FC_GLUE(name, suffix) FC_GLUE_(name, suffix)
#define FN(name) FC_GLUE(name, SUFFIX)

/* Below this many flops per thread, waking another thread costs more than it saves. */
#define MIN_FLOPS_PER_THREAD 200000.0

/* How the macro-kernel gets B's panels: already packed, packed on first use, or read in place. */
enum { B_PACKED, B_PACK_NOW, B_IN_PLACE };

/* size (bytes) -> size rounded up to the 64-byte cache line / alignment */
static size_t fc_round64(size_t size)
{
    return (size + 63) / 64 * 64;
}

/* size (bytes, multiple of 64) -> 64-byte aligned block or NULL */
static void *fc_aligned_malloc(size_t size)
{
    return aligned_alloc(64, size > 0 ? size : 64);
}

/* block from fc_aligned_malloc -> released */
static void fc_aligned_free(void *p)
{
    free(p);
}

/* (rows of A, tile rows, B's strides, element size) -> 1 when the kernel should read a row-major B in place.
 * Packing B pays for itself through reuse by many A panels; with few of them the copy costs
 * more than it saves. A row stride that is a multiple of 2 KiB maps every B row onto a few L1
 * sets, so such a B is packed unless at most two A panels use it (measured). */
static int b_in_place(int64_t M, int mr, int64_t rsb, int64_t csb, size_t size)
{
    if (csb != 1) {
        return 0;
    }
    return M <= 2 * mr || (M <= 16 * mr && (rsb * (int64_t)size) % 2048 != 0);
}

/* (M x N x K problem, MR x NR tiles, nthreads) -> tm x tn grid of C rectangles, one per thread */
static void gemm_grid(int64_t M, int64_t N, int64_t K, int mr, int nr, int nthreads,
                      int *tm, int *tn)
{
    int64_t mtiles = (M + mr - 1) / mr, ntiles = (N + nr - 1) / nr;
    double flops = 2.0 * (double)M * (double)N * (double)K;
    int nt = nthreads < 1 ? 1 : nthreads;
#ifndef _OPENMP
    nt = 1;
#endif
    while (nt > 1 && (flops < MIN_FLOPS_PER_THREAD * nt || mtiles * ntiles < nt)) {
        nt--;
    }
    /* Smallest largest rectangle wins; ties split N, so that each thread packs only its own
     * part of B (the panels reused most) and the threads share nothing but A. */
    int64_t best = -1;
    for (int d = 1; d <= nt; d++) {
        if (nt % d == 0) {
            int64_t area = (mtiles + nt / d - 1) / (nt / d) * ((ntiles + d - 1) / d);
            if (best < 0 || area <= best) {
                best = area;
                *tn = d;
                *tm = nt / d;
            }
        }
    }
}

/* float32: 6 x 16 tiles. KC x NR floats of B (24 KiB) fit L1d (48 KiB) beside an A panel,
 * MC x KC of A (258 KiB) sits in L2 (2 MiB), KC x NC of B in L3. */
#define REAL float
#define SUFFIX f32
#define MR FC_GEMM_MR
#define NR FC_GEMM_NR_F32
#define MC 168
#define KC 384
#define NC 4096
#define KERNEL_T fc_gemm_kernel_f32
#define GENERIC_KERNEL
#include "gemm_impl.h"

/* float64: 6 x 8 tiles; the same bytes per panel as float32, so the same KC, half the MC. */
#define REAL double
#define SUFFIX f64
#define MR FC_GEMM_MR
#define NR FC_GEMM_NR_F64
#define MC 84
#define KC 384
#define NC 2048
#define KERNEL_T fc_gemm_kernel_f64
#define GENERIC_KERNEL
#include "gemm_impl.h"

#if FC_GEMM_HAVE_AVX512
/* float32 for AVX-512: 12 x 32 tiles. KC x NR of B (48 KiB) is all of L1d, yet KC 384 measured
 * a little faster than 256 or 192 (fewer passes over C); MC x KC of A (360 KiB) in L2. */
#define REAL float
#define SUFFIX f32_avx512
#define MR FC_GEMM_MR_AVX512
#define NR FC_GEMM_NR_AVX512_F32
#define MC 240
#define KC 384
#define NC 4096
#define KERNEL_T fc_gemm_kernel_f32
#include "gemm_impl.h"

/* float64 for AVX-512: 12 x 16 tiles, the same bytes per panel as float32. */
#define REAL double
#define SUFFIX f64_avx512
#define MR FC_GEMM_MR_AVX512
#define NR FC_GEMM_NR_AVX512_F64
#define MC 120
#define KC 384
#define NC 2048
#define KERNEL_T fc_gemm_kernel_f64
#include "gemm_impl.h"
#endif

/* The portable kernels under their public names (gemm_kernels.h). */
void fc_gemm_kernel_generic_6x16_f32(int64_t kc, const float *a, const float *b, int64_t ldb,
                                     float *c, int64_t ldc, float beta)
{
    kernel_generic_f32(kc, a, b, ldb, c, ldc, beta);
}

void fc_gemm_kernel_generic_6x8_f64(int64_t kc, const double *a, const double *b, int64_t ldb,
                                    double *c, int64_t ldc, double beta)
{
    kernel_generic_f64(kc, a, b, ldb, c, ldc, beta);
}

/* The public entry points: the AVX-512 instance at that level, else the 6-row one with the
 * AVX2 or the portable kernel. */
fc_status fc_gemm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t rsa, int64_t csa,
                      const float *B, int64_t rsb, int64_t csb, float beta, float *C, int64_t ldc,
                      int nthreads)
{
#if FC_GEMM_HAVE_AVX512
    if (fc_simd_avx512()) {
        return gemm_f32_avx512(M, N, K, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads,
                               fc_gemm_kernel_avx512_f32);
    }
#endif
    fc_gemm_kernel_f32 kernel = kernel_generic_f32;
#if FC_GEMM_HAVE_AVX2
    if (fc_simd_avx2()) {
        kernel = fc_gemm_kernel_avx2_6x16_f32;
    }
#endif
    return gemm_f32(M, N, K, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads, kernel);
}

fc_status fc_gemm_f64(int64_t M, int64_t N, int64_t K, const double *A, int64_t rsa,
                      int64_t csa, const double *B, int64_t rsb, int64_t csb, double beta,
                      double *C, int64_t ldc, int nthreads)
{
#if FC_GEMM_HAVE_AVX512
    if (fc_simd_avx512()) {
        return gemm_f64_avx512(M, N, K, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads,
                               fc_gemm_kernel_avx512_f64);
    }
#endif
    fc_gemm_kernel_f64 kernel = kernel_generic_f64;
#if FC_GEMM_HAVE_AVX2
    if (fc_simd_avx2()) {
        kernel = fc_gemm_kernel_avx2_6x8_f64;
    }
#endif
    return gemm_f64(M, N, K, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads, kernel);
}
