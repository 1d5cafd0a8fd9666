/*
 * gemm_avx2.c: AVX2+FMA GEMM micro-kernels (contract in gemm_kernels.h), written once in
 * gemm_avx2_impl.h: 6 x 16 for float32, 6 x 8 for float64.
 *
 * The project is compiled without -mavx2, so each function carries its own target attribute
 * and is only called after fc_simd_avx2() says the CPU has AVX2 and FMA.
 */
#include "gemm_kernels.h"
#include "template.h"

#if FC_GEMM_HAVE_AVX2

#include <immintrin.h>

#define FC_AVX2 __attribute__((target("avx2,fma")))

#define REAL float
#define TYPE_SUFFIX f32
#define FC_TEMPLATE_KERNEL fc_gemm_kernel_avx2_6x16_f32
#define FC_TEMPLATE_LANES 8
#define FC_TEMPLATE_VEC __m256
#define FC_TEMPLATE_LOADU _mm256_loadu_ps
#define FC_TEMPLATE_STOREU _mm256_storeu_ps
#define FC_TEMPLATE_SETZERO _mm256_setzero_ps
#define FC_TEMPLATE_BROADCAST _mm256_broadcast_ss
#define FC_TEMPLATE_SET1 _mm256_set1_ps
#define FC_TEMPLATE_FMADD _mm256_fmadd_ps
#include "gemm_avx2_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define FC_TEMPLATE_KERNEL fc_gemm_kernel_avx2_6x8_f64
#define FC_TEMPLATE_LANES 4
#define FC_TEMPLATE_VEC __m256d
#define FC_TEMPLATE_LOADU _mm256_loadu_pd
#define FC_TEMPLATE_STOREU _mm256_storeu_pd
#define FC_TEMPLATE_SETZERO _mm256_setzero_pd
#define FC_TEMPLATE_BROADCAST _mm256_broadcast_sd
#define FC_TEMPLATE_SET1 _mm256_set1_pd
#define FC_TEMPLATE_FMADD _mm256_fmadd_pd
#include "gemm_avx2_impl.h"
#include "template_end.h"

#else

/* No x86 AVX2 here: gemm.c uses the portable kernels only. ISO C wants a non-empty unit. */
typedef int fc_gemm_avx2_unavailable;

#endif
