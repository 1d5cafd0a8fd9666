/* conv_direct_avx512.c: the AVX-512 micro-kernels of the direct convolution: the same
 * template as conv_direct_avx2.c (conv_direct_simd_impl.h) with 64-byte vectors (16
 * floats or 8 doubles) and mask registers, as the tables fc_direct_kernels_f32_avx512 and
 * fc_direct_kernels_f64_avx512. The block shapes are the AVX2 ones, so a tile covers twice
 * the pixels. conv_direct.c calls these only when fc_simd_avx512() is 1. */
#include <stddef.h>

#include "template.h"
#include "conv_direct_kernels.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include "transpose_avx512.h"

#define FC_TARGET __attribute__((target("avx512f")))
#define FC_TARGET_INLINE static inline __attribute__((always_inline, target("avx512f")))
/* Makes the compiler load a vector once into a register: without it, GCC folds the load
 * into each FMA that uses it (one load per FMA, and unaligned loads split cache lines). */
#define FC_IN_REGISTER(v) __asm__("" : "+v"(v))
#define FC_UNROLL _Pragma("GCC unroll 16")

/* Mask of lanes [lo, hi) of a vector of n lanes (lo and hi may lie outside the vector). */
FC_TARGET_INLINE unsigned lanes_mask(int lo, int hi, int n)
{
    lo = lo < 0 ? 0 : lo;
    hi = hi > n ? n : hi;
    return hi > lo ? ((1u << hi) - 1u) & ~((1u << lo) - 1u) : 0u;
}

FC_TARGET_INLINE __mmask16 v_lanes_f32(int lo, int hi)
{
    return (__mmask16)lanes_mask(lo, hi, 16);
}

FC_TARGET_INLINE __mmask8 v_lanes_f64(int lo, int hi)
{
    return (__mmask8)lanes_mask(lo, hi, 8);
}

/* The masked loads and stores with the AVX2 intrinsics' argument order. */
FC_TARGET_INLINE __m512 v_maskload_f32(const float *p, __mmask16 m)
{
    return _mm512_maskz_loadu_ps(m, p);
}

FC_TARGET_INLINE void v_maskstore_f32(float *p, __mmask16 m, __m512 v)
{
    _mm512_mask_storeu_ps(p, m, v);
}

FC_TARGET_INLINE __m512d v_maskload_f64(const double *p, __mmask8 m)
{
    return _mm512_maskz_loadu_pd(m, p);
}

FC_TARGET_INLINE void v_maskstore_f64(double *p, __mmask8 m, __m512d v)
{
    _mm512_mask_storeu_pd(p, m, v);
}

FC_TARGET_INLINE __m512 v_bcast_f32(const float *p)
{
    return _mm512_set1_ps(*p);
}

FC_TARGET_INLINE __m512d v_bcast_f64(const double *p)
{
    return _mm512_set1_pd(*p);
}

/* The rest of the vector vocabulary of conv_direct_simd_impl.h, per element type. */
typedef __m512 vec_f32;
typedef __mmask16 mask_f32;
enum { lanes_f32 = 16 };
#define v_load_f32 _mm512_load_ps
#define v_loadu_f32 _mm512_loadu_ps
#define v_store_f32 _mm512_store_ps
#define v_storeu_f32 _mm512_storeu_ps
#define v_fma_f32 _mm512_fmadd_ps
#define v_add_f32 _mm512_add_ps
#define v_zero_f32 _mm512_setzero_ps
#define v_hsum_f32 _mm512_reduce_add_ps
#define v_transpose_f32 fc_transpose16_f32_avx512

typedef __m512d vec_f64;
typedef __mmask8 mask_f64;
enum { lanes_f64 = 8 };
#define v_load_f64 _mm512_load_pd
#define v_loadu_f64 _mm512_loadu_pd
#define v_store_f64 _mm512_store_pd
#define v_storeu_f64 _mm512_storeu_pd
#define v_fma_f64 _mm512_fmadd_pd
#define v_add_f64 _mm512_add_pd
#define v_zero_f64 _mm512_setzero_pd
#define v_hsum_f64 _mm512_reduce_add_pd
#define v_transpose_f64 fc_transpose8_f64_avx512

#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX avx512
#define FC_TEMPLATE_TILEK_ACC FC_TILEK_ACC_32_REGISTERS
#include "conv_direct_simd_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX avx512
#define FC_TEMPLATE_TILEK_ACC FC_TILEK_ACC_32_REGISTERS
#include "conv_direct_simd_impl.h"
#include "template_end.h"

#else /* not x86 with GCC or Clang: fc_simd_avx512() is always 0, the table is never read */

#define REAL float
#define TYPE_SUFFIX f32
#include "conv_direct_kernels_impl.h"
const fc_direct_kernels_f32 fc_direct_kernels_f32_avx512 = {0};
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#include "conv_direct_kernels_impl.h"
const fc_direct_kernels_f64 fc_direct_kernels_f64_avx512 = {0};
#include "template_end.h"

#endif
