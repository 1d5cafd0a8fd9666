/* conv_direct_avx512.c: the AVX-512 micro-kernels of the direct convolution: the same
 * template as conv_direct_avx2.c (conv_direct_simd_impl.h) with 64-byte vectors (16
 * floats or 8 doubles) and mask registers. The block shapes are the AVX2 ones, so a tile
 * covers twice the pixels. conv_direct.c calls these only when fc_simd_avx512() is 1. */
#include <stddef.h>

#include "conv_direct_kernels.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define FC_TARGET __attribute__((target("avx512f")))
#define FC_TARGET_INLINE static inline __attribute__((always_inline, target("avx512f")))
#define ISA(name) name##_avx512
#define FC_CAT_(a, b) a##b
#define FC_CAT(a, b) FC_CAT_(a, b)
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

FC_TARGET_INLINE __mmask16 lanes_f32(int lo, int hi)
{
    return (__mmask16)lanes_mask(lo, hi, 16);
}

FC_TARGET_INLINE __mmask8 lanes_f64(int lo, int hi)
{
    return (__mmask8)lanes_mask(lo, hi, 8);
}

/* The masked loads and stores with the AVX2 intrinsics' argument order. */
FC_TARGET_INLINE __m512 maskload_f32(const float *p, __mmask16 m)
{
    return _mm512_maskz_loadu_ps(m, p);
}

FC_TARGET_INLINE void maskstore_f32(float *p, __mmask16 m, __m512 v)
{
    _mm512_mask_storeu_ps(p, m, v);
}

FC_TARGET_INLINE __m512d maskload_f64(const double *p, __mmask8 m)
{
    return _mm512_maskz_loadu_pd(m, p);
}

FC_TARGET_INLINE void maskstore_f64(double *p, __mmask8 m, __m512d v)
{
    _mm512_mask_storeu_pd(p, m, v);
}

FC_TARGET_INLINE __m512 bcast_f32(const float *p)
{
    return _mm512_set1_ps(*p);
}

FC_TARGET_INLINE __m512d bcast_f64(const double *p)
{
    return _mm512_set1_pd(*p);
}

#define REAL float
#define FN(name) FC_CAT(name, _f32)
#define VL 16
#define VEC __m512
#define MASK __mmask16
#define V_LOAD _mm512_load_ps
#define V_LOADU _mm512_loadu_ps
#define V_STORE _mm512_store_ps
#define V_STOREU _mm512_storeu_ps
#define V_MASKLOAD maskload_f32
#define V_MASKSTORE maskstore_f32
#define V_BCAST bcast_f32
#define V_FMA _mm512_fmadd_ps
#define V_ADD _mm512_add_ps
#define V_ZERO _mm512_setzero_ps
#define V_LANES lanes_f32
#define V_HSUM _mm512_reduce_add_ps
#include "conv_direct_simd_impl.h"
#undef REAL
#undef FN
#undef VL
#undef VEC
#undef MASK
#undef V_LOAD
#undef V_LOADU
#undef V_STORE
#undef V_STOREU
#undef V_MASKLOAD
#undef V_MASKSTORE
#undef V_BCAST
#undef V_FMA
#undef V_ADD
#undef V_ZERO
#undef V_LANES
#undef V_HSUM

#define REAL double
#define FN(name) FC_CAT(name, _f64)
#define VL 8
#define VEC __m512d
#define MASK __mmask8
#define V_LOAD _mm512_load_pd
#define V_LOADU _mm512_loadu_pd
#define V_STORE _mm512_store_pd
#define V_STOREU _mm512_storeu_pd
#define V_MASKLOAD maskload_f64
#define V_MASKSTORE maskstore_f64
#define V_BCAST bcast_f64
#define V_FMA _mm512_fmadd_pd
#define V_ADD _mm512_add_pd
#define V_ZERO _mm512_setzero_pd
#define V_LANES lanes_f64
#define V_HSUM _mm512_reduce_add_pd
#include "conv_direct_simd_impl.h"

#else /* not x86 with GCC or Clang: fc_simd_avx512() is always 0, the tables are never read */

const fc_tile_kernel_f32 fc_tile_avx512_f32[FC_TILE_KB_MAX + 1] = {NULL};
const fc_tile_kernel_f64 fc_tile_avx512_f64[FC_TILE_KB_MAX + 1] = {NULL};
const fc_tile_add_kernel_f32 fc_tile_add_avx512_f32[FC_TILE_KB_MAX + 1] = {NULL};
const fc_tile_add_kernel_f64 fc_tile_add_avx512_f64[FC_TILE_KB_MAX + 1] = {NULL};
const fc_wgrad_kernel_f32 fc_wgrad_avx512_f32[FC_WGRAD_KB_MAX + 1] = {NULL};
const fc_wgrad_kernel_f64 fc_wgrad_avx512_f64[FC_WGRAD_KB_MAX + 1] = {NULL};
const fc_wgradk_kernel_f32 fc_wgradk_avx512_f32[FC_WGRADK_NV_MAX + 1] = {NULL};
const fc_wgradk_kernel_f64 fc_wgradk_avx512_f64[FC_WGRADK_NV_MAX + 1] = {NULL};
const fc_tilek_kernel_f32 fc_tilek_avx512_f32[FC_TILEK_NV_MAX + 1][FC_TILEK_PB_MAX + 1] = {{NULL}};
const fc_tilek_kernel_f64 fc_tilek_avx512_f64[FC_TILEK_NV_MAX + 1][FC_TILEK_PB_MAX + 1] = {{NULL}};

#endif
