/*
 * gemm.c: C = A B + beta C with general strides, BLIS-style (Goto & van de Geijn, TOMS 2008).
 *
 * Loops, from outside in: NC columns of B, KC deep slices, pack B into NR-column panels,
 * MC rows of A, pack A into MR-row panels, then the micro-kernel over MR x NR tiles of C.
 * Packing reads A and B through their strides, so transposes cost nothing extra. Where few
 * panels of the other operand reuse them, a row-major B and (on AVX-512) a row-major A are
 * read in place instead: the copy would cost more than it saves.
 * The algorithm lives once in gemm_impl.h, included below for float and double around each
 * micro-kernel: the portable one (gemm_generic_impl.h) and the AVX2 one, both with 6-row
 * tiles, and the AVX-512 one with larger tiles; fc_gemm_f32/f64 (gemm_entry_impl.h) pick
 * the instance for the SIMD level of the call.
 */
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fastconv.h"
#include "gemm_kernels.h"
#include "template.h"

#if FC_GEMM_HAVE_AVX2 || FC_GEMM_HAVE_AVX512
#include <immintrin.h>
#endif
#if FC_GEMM_HAVE_AVX512
#include "transpose_avx512.h"
#endif


/* Below this many flops per thread, waking another thread costs more than it saves. */
#define MIN_FLOPS_PER_THREAD 200000.0

/* GEMMs of at most this many rows of A skip the tiled algorithm (gemm_few_rows) ... */
#define FEW_ROWS_MAX 4

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

/* A row-major B is read in place, unpacked, when at most this many A panels use it ... */
#define B_IN_PLACE_MAX_PANELS 2
/* ... or at most this many, when its row stride is not a multiple of B_ALIASING_STRIDE. */
#define B_IN_PLACE_MAX_PANELS_UNALIASED 16
/* Row strides (bytes) that are multiples of this map every B row onto a few L1 sets. */
#define B_ALIASING_STRIDE 2048

#if FC_GEMM_HAVE_AVX512
/* A row-major A is read in place, unpacked, by kernels that have that form, when at most
 * this many B panels use it and its row stride is not a multiple of B_ALIASING_STRIDE. */
#define A_IN_PLACE_MAX_PANELS 8

/* (columns of B, tile columns, A's strides, element size) -> 1 when the kernel should read
 * a row-major A in place: the transposing copy into panels pays for itself only through
 * reuse by many B panels. */
static int a_in_place(int64_t N, int nr, int64_t rsa, int64_t csa, size_t size)
{
    return csa == 1 && N <= A_IN_PLACE_MAX_PANELS * nr
           && (rsa * (int64_t)size) % B_ALIASING_STRIDE != 0;   /* never a row stride of 0 */
}
#endif

/* (rows of A, tile rows, B's strides, element size) -> 1 when the kernel should read a
 * row-major B in place. Packing B pays for itself through reuse by many A panels; with few
 * of them the copy costs more than it saves. A B whose rows alias in L1 is packed unless
 * very few A panels use it. */
static int b_in_place(int64_t M, int mr, int64_t rsb, int64_t csb, size_t size)
{
    if (csb != 1) {
        return 0;
    }
    return M <= B_IN_PLACE_MAX_PANELS * mr
           || (M <= B_IN_PLACE_MAX_PANELS_UNALIASED * mr
               && (rsb * (int64_t)size) % B_ALIASING_STRIDE != 0);
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

/* Cache blocks of each tile geometry. float32, 6 x 16 tiles: KC x NR floats of B (24 KiB)
 * fit L1d (48 KiB) beside an A panel, MC x KC of A (258 KiB) sits in L2 (2 MiB), KC x NC
 * of B in L3. float64, 6 x 8 tiles: the same bytes per panel, so the same KC, half the MC. */
#define GEMM_MC_6X16_F32 168
#define GEMM_NC_6X16_F32 4096
#define GEMM_MC_6X8_F64 84
#define GEMM_NC_6X8_F64 2048
/* AVX-512, 12 x 32 float32 tiles: KC x NR of B (48 KiB) is all of L1d, yet KC 384 runs a
 * little faster than 256 or 192 (fewer passes over C; docs/PERFORMANCE.md); MC x KC of A
 * (360 KiB) in L2. 12 x 16 float64 tiles: the same bytes per panel. */
#define GEMM_MC_AVX512_F32 240
#define GEMM_NC_AVX512_F32 4096
#define GEMM_MC_AVX512_F64 120
#define GEMM_NC_AVX512_F64 2048
/* The depth of every block, all geometries. */
#define GEMM_KC 384

/* Each instance below takes the micro-kernel of its type and instruction set, and that
 * kernel's tile, from gemm_tile.h. First the portable micro-kernels themselves. */
#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX generic
#include "gemm_tile.h"
#include "gemm_generic_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX generic
#include "gemm_tile.h"
#include "gemm_generic_impl.h"
#include "template_end.h"

/* float32: the algorithm around each micro-kernel, then the entry point that picks one. */
#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX generic
#include "gemm_tile.h"
#define FC_TEMPLATE_TARGET
#define FC_TEMPLATE_MC GEMM_MC_6X16_F32
#define FC_TEMPLATE_KC GEMM_KC
#define FC_TEMPLATE_NC GEMM_NC_6X16_F32
#include "gemm_impl.h"
#include "template_end.h"

#if FC_GEMM_HAVE_AVX2
#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX avx2
#include "gemm_tile.h"
#define FC_TEMPLATE_TARGET __attribute__((target("avx2,fma")))
#include "simd_avx2_f32.h"
#define FC_TEMPLATE_MC GEMM_MC_6X16_F32
#define FC_TEMPLATE_KC GEMM_KC
#define FC_TEMPLATE_NC GEMM_NC_6X16_F32
#include "gemm_impl.h"
#include "template_end.h"
#endif

#if FC_GEMM_HAVE_AVX512
#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX avx512
#include "gemm_tile.h"
#define FC_TEMPLATE_TARGET __attribute__((target("avx512f,avx2,fma")))
#include "simd_avx512_f32.h"
#define FC_TEMPLATE_KERNEL_NARROW fc_gemm_kernel_avx512_narrow_f32
#define FC_TEMPLATE_KERNEL_ROWS fc_gemm_kernel_avx512_rows_f32
#define FC_TEMPLATE_KERNEL_NARROW_ROWS fc_gemm_kernel_avx512_narrow_rows_f32
#define FC_TEMPLATE_TRANSPOSE fc_transpose16_f32_avx512
#define FC_TEMPLATE_MASKZ_LOADU _mm512_maskz_loadu_ps
#define FC_TEMPLATE_MASK_STOREU _mm512_mask_storeu_ps
#define FC_TEMPLATE_MC GEMM_MC_AVX512_F32
#define FC_TEMPLATE_KC GEMM_KC
#define FC_TEMPLATE_NC GEMM_NC_AVX512_F32
#include "gemm_impl.h"
#include "template_end.h"
#endif

#define REAL float
#define TYPE_SUFFIX f32
#include "gemm_entry_impl.h"
#include "template_end.h"

/* float64 likewise. */
#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX generic
#include "gemm_tile.h"
#define FC_TEMPLATE_TARGET
#define FC_TEMPLATE_MC GEMM_MC_6X8_F64
#define FC_TEMPLATE_KC GEMM_KC
#define FC_TEMPLATE_NC GEMM_NC_6X8_F64
#include "gemm_impl.h"
#include "template_end.h"

#if FC_GEMM_HAVE_AVX2
#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX avx2
#include "gemm_tile.h"
#define FC_TEMPLATE_TARGET __attribute__((target("avx2,fma")))
#include "simd_avx2_f64.h"
#define FC_TEMPLATE_MC GEMM_MC_6X8_F64
#define FC_TEMPLATE_KC GEMM_KC
#define FC_TEMPLATE_NC GEMM_NC_6X8_F64
#include "gemm_impl.h"
#include "template_end.h"
#endif

#if FC_GEMM_HAVE_AVX512
#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX avx512
#include "gemm_tile.h"
#define FC_TEMPLATE_TARGET __attribute__((target("avx512f,avx2,fma")))
#include "simd_avx512_f64.h"
#define FC_TEMPLATE_KERNEL_NARROW fc_gemm_kernel_avx512_narrow_f64
#define FC_TEMPLATE_KERNEL_ROWS fc_gemm_kernel_avx512_rows_f64
#define FC_TEMPLATE_KERNEL_NARROW_ROWS fc_gemm_kernel_avx512_narrow_rows_f64
#define FC_TEMPLATE_TRANSPOSE fc_transpose8_f64_avx512
#define FC_TEMPLATE_MASKZ_LOADU _mm512_maskz_loadu_pd
#define FC_TEMPLATE_MASK_STOREU _mm512_mask_storeu_pd
#define FC_TEMPLATE_MC GEMM_MC_AVX512_F64
#define FC_TEMPLATE_KC GEMM_KC
#define FC_TEMPLATE_NC GEMM_NC_AVX512_F64
#include "gemm_impl.h"
#include "template_end.h"
#endif

#define REAL double
#define TYPE_SUFFIX f64
#include "gemm_entry_impl.h"
#include "template_end.h"
