/* conv_winograd_avx512.c: the Winograd tile blocks (conv_winograd_block_impl.h) compiled
 * for AVX-512 with the 12 x 32 (float) and 12 x 16 (double) GEMM micro-kernels. Each
 * function carries its own target attribute; conv_winograd.c calls these only when
 * fc_simd_avx512() is 1. */
#include "gemm_kernels.h"
#include "conv_winograd.h"
#include "template.h"
#include "real_math.h"

#if FC_GEMM_HAVE_AVX512

/* The tile blocks use 512-bit vectors throughout, also where the compiler's cost model
 * would pick 256 bits: GCC takes that preference as a target option, Clang as an attribute
 * of its own. */
#if defined(__clang__)
#define WINOGRAD_AVX512_TARGET __attribute__((target("avx512f"), min_vector_width(512)))
#else
#define WINOGRAD_AVX512_TARGET __attribute__((target("avx512f,prefer-vector-width=512")))
#endif

#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX avx512
#include "gemm_tile.h"
#define FC_TEMPLATE_TARGET WINOGRAD_AVX512_TARGET
#define FC_TEMPLATE_SHUFFLES 1
#include "conv_winograd_block_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX avx512
#include "gemm_tile.h"
#define FC_TEMPLATE_TARGET WINOGRAD_AVX512_TARGET
#define FC_TEMPLATE_SHUFFLES 0
#include "conv_winograd_block_impl.h"
#include "template_end.h"

#else

/* No x86 AVX-512 here: conv_winograd.c uses the 6-row blocks. ISO C wants a non-empty unit. */
typedef int fc_winograd_avx512_unavailable;

#endif
