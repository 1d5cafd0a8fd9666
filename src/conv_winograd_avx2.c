/* conv_winograd_avx2.c: the Winograd tile blocks (conv_winograd_block_impl.h) compiled for
 * AVX2+FMA with the 6 x 16 (float) and 6 x 8 (double) GEMM micro-kernels. Each function
 * carries its own target attribute, so the rest of the build stays portable;
 * conv_winograd.c calls these only when fc_simd_avx2() is 1. */
#include "gemm_kernels.h"
#include "conv_winograd.h"
#include "template.h"
#include "real_math.h"

#if FC_GEMM_HAVE_AVX2

#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX avx2
#include "gemm_tile.h"
#define FC_TEMPLATE_TARGET __attribute__((target("avx2,fma")))
#define FC_TEMPLATE_SHUFFLES 1
#include "conv_winograd_block_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX avx2
#include "gemm_tile.h"
#define FC_TEMPLATE_TARGET __attribute__((target("avx2,fma")))
#define FC_TEMPLATE_SHUFFLES 0
#include "conv_winograd_block_impl.h"
#include "template_end.h"

#else

/* No x86 AVX2 here: conv_winograd.c uses the portable blocks. ISO C wants a non-empty unit. */
typedef int fc_winograd_avx2_unavailable;

#endif
