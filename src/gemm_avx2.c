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
#define ISA_SUFFIX avx2
#include "gemm_tile.h"
#include "simd_avx2_f32.h"
#include "gemm_avx2_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX avx2
#include "gemm_tile.h"
#include "simd_avx2_f64.h"
#include "gemm_avx2_impl.h"
#include "template_end.h"

#else

/* No x86 AVX2 here: gemm.c uses the portable kernels only. ISO C wants a non-empty unit. */
typedef int fc_gemm_avx2_unavailable;

#endif
