/* conv_winograd_avx2.c: the Winograd tile blocks (conv_winograd_block_impl.h) compiled for
 * AVX2+FMA with the 6 x 16 (float) and 6 x 8 (double) GEMM micro-kernels. Each function
 * carries its own target attribute, so the rest of the build stays portable;
 * conv_winograd.c calls these only when fc_simd_avx2() is 1. */
#include "gemm_kernels.h"
#include "conv_winograd.h"

#if FC_GEMM_HAVE_AVX2

#define REAL float
#define SUFFIX f32_avx2
#define MR FC_GEMM_MR
#define NR FC_GEMM_NR_F32
#define KERNEL fc_gemm_kernel_avx2_6x16_f32
#define WG_TARGET __attribute__((target("avx2,fma")))
#define WG_SHUFFLE_F32 1
#include "conv_winograd_block_impl.h"

#define REAL double
#define SUFFIX f64_avx2
#define MR FC_GEMM_MR
#define NR FC_GEMM_NR_F64
#define KERNEL fc_gemm_kernel_avx2_6x8_f64
#define WG_TARGET __attribute__((target("avx2,fma")))
#include "conv_winograd_block_impl.h"

#else

/* No x86 AVX2 here: conv_winograd.c uses the portable blocks. ISO C wants a non-empty unit. */
typedef int fc_winograd_avx2_unavailable;

#endif
