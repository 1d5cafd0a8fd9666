/*
 * gemm_avx512.c: AVX-512 GEMM micro-kernels (contract in gemm_kernels.h), written once in
 * gemm_avx512_impl.h for float32 (MR x 32) and float64 (MR x 16).
 *
 * A 6-row tile of 512-bit vectors would hold only 12 accumulators: with two FMA units of
 * 4-cycle latency at least 8 independent chains are needed, and each k step would spend
 * 6 broadcasts on 12 FMAs. So the tile is taller and two vectors wide: 2*MR accumulators
 * (MR = FC_GEMM_MR_AVX512; 2*MR + 2 B vectors + 1 broadcast fit the 32 ZMM registers). The
 * project is compiled without -mavx512f, so each function carries its own target attribute
 * and is only called when fc_simd_avx512() is 1.
 */
#include "gemm_kernels.h"
#include "template.h"

#if FC_GEMM_HAVE_AVX512

#include <immintrin.h>

#define FC_AVX512 __attribute__((target("avx512f")))
#define MR FC_GEMM_MR_AVX512

/* The C tile is written last: start pulling its rows (two 64-byte lines each) into cache. */
static inline void prefetch_c(const char *c, int64_t ldc_bytes)
{
    for (int i = 0; i < MR; i++) {
        _mm_prefetch(c + i * ldc_bytes, _MM_HINT_T0);
        _mm_prefetch(c + i * ldc_bytes + 64, _MM_HINT_T0);
    }
}

#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX avx512
#include "gemm_tile.h"
#include "simd_avx512_f32.h"
#define FC_TEMPLATE_KERNEL_NARROW fc_gemm_kernel_avx512_narrow_f32
#define FC_TEMPLATE_KERNEL_ROWS fc_gemm_kernel_avx512_rows_f32
#define FC_TEMPLATE_KERNEL_NARROW_ROWS fc_gemm_kernel_avx512_narrow_rows_f32
#include "gemm_avx512_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX avx512
#include "gemm_tile.h"
#include "simd_avx512_f64.h"
#define FC_TEMPLATE_KERNEL_NARROW fc_gemm_kernel_avx512_narrow_f64
#define FC_TEMPLATE_KERNEL_ROWS fc_gemm_kernel_avx512_rows_f64
#define FC_TEMPLATE_KERNEL_NARROW_ROWS fc_gemm_kernel_avx512_narrow_rows_f64
#include "gemm_avx512_impl.h"
#include "template_end.h"

#else

/* No x86 AVX-512 here: gemm.c uses the 6-row kernels only. ISO C wants a non-empty unit. */
typedef int fc_gemm_avx512_unavailable;

#endif
