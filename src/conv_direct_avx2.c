/* conv_direct_avx2.c: the AVX2+FMA micro-kernels of the direct convolution (contract in
 * conv_direct_kernels.h, portable twins in conv_direct_generic.c), written once in
 * conv_direct_simd_impl.h and instantiated for float (8 lanes) and double (4 lanes).
 * Each function carries its own target attribute, so the rest of the build stays
 * portable; conv_direct.c calls these only when fc_simd_avx2() is 1. */
#include <stddef.h>

#include "conv_direct_kernels.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define FC_TARGET __attribute__((target("avx2,fma")))
#define FC_TARGET_INLINE static inline __attribute__((always_inline, target("avx2,fma")))
#define ISA(name) name##_avx2
#define FC_CAT_(a, b) a##b
#define FC_CAT(a, b) FC_CAT_(a, b)
/* Makes the compiler load a vector once into a register: without it, GCC folds the load
 * into each FMA that uses it (one load per FMA, and unaligned loads split cache lines). */
#define FC_IN_REGISTER(v) __asm__("" : "+x"(v))

/* Unrolls a copy of the accumulators to memory at once: left as a loop, GCC 12 turns it
 * into a memcpy of the accumulator array, which then lives in memory (a store per FMA). */
#define FC_UNROLL _Pragma("GCC unroll 16")

/* Mask of lanes [lo, hi) of a vector (lo and hi may lie outside the vector). */
FC_TARGET_INLINE __m256i lanes_f32(int lo, int hi)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_and_si256(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(lo - 1)),
                            _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), idx));
}

FC_TARGET_INLINE __m256i lanes_f64(int lo, int hi)
{
    const __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_and_si256(_mm256_cmpgt_epi64(idx, _mm256_set1_epi64x(lo - 1)),
                            _mm256_cmpgt_epi64(_mm256_set1_epi64x(hi), idx));
}

/* Sum of the lanes, in a fixed order. */
FC_TARGET_INLINE float hsum_f32(__m256 v)
{
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

FC_TARGET_INLINE double hsum_f64(__m256d v)
{
    const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}

#define REAL float
#define FN(name) FC_CAT(name, _f32)
#define VL 8
#define VEC __m256
#define MASK __m256i
#define V_LOAD _mm256_load_ps
#define V_LOADU _mm256_loadu_ps
#define V_STORE _mm256_store_ps
#define V_STOREU _mm256_storeu_ps
#define V_MASKLOAD _mm256_maskload_ps
#define V_MASKSTORE _mm256_maskstore_ps
#define V_BCAST _mm256_broadcast_ss
#define V_FMA _mm256_fmadd_ps
#define V_ADD _mm256_add_ps
#define V_ZERO _mm256_setzero_ps
#define V_LANES lanes_f32
#define V_HSUM hsum_f32
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
#define VL 4
#define VEC __m256d
#define MASK __m256i
#define V_LOAD _mm256_load_pd
#define V_LOADU _mm256_loadu_pd
#define V_STORE _mm256_store_pd
#define V_STOREU _mm256_storeu_pd
#define V_MASKLOAD _mm256_maskload_pd
#define V_MASKSTORE _mm256_maskstore_pd
#define V_BCAST _mm256_broadcast_sd
#define V_FMA _mm256_fmadd_pd
#define V_ADD _mm256_add_pd
#define V_ZERO _mm256_setzero_pd
#define V_LANES lanes_f64
#define V_HSUM hsum_f64
#include "conv_direct_simd_impl.h"

#else /* not x86 with GCC or Clang: fc_simd_avx2() is always 0, the tables are never read */

const fc_tile_kernel_f32 fc_tile_avx2_f32[FC_TILE_KB_MAX + 1] = {NULL};
const fc_tile_kernel_f64 fc_tile_avx2_f64[FC_TILE_KB_MAX + 1] = {NULL};
const fc_tile_add_kernel_f32 fc_tile_add_avx2_f32[FC_TILE_KB_MAX + 1] = {NULL};
const fc_tile_add_kernel_f64 fc_tile_add_avx2_f64[FC_TILE_KB_MAX + 1] = {NULL};
const fc_wgrad_kernel_f32 fc_wgrad_avx2_f32[FC_WGRAD_KB_MAX + 1] = {NULL};
const fc_wgrad_kernel_f64 fc_wgrad_avx2_f64[FC_WGRAD_KB_MAX + 1] = {NULL};
const fc_wgradk_kernel_f32 fc_wgradk_avx2_f32[FC_WGRADK_NV_MAX + 1] = {NULL};
const fc_wgradk_kernel_f64 fc_wgradk_avx2_f64[FC_WGRADK_NV_MAX + 1] = {NULL};
const fc_tilek_kernel_f32 fc_tilek_avx2_f32[FC_TILEK_NV_MAX + 1][FC_TILEK_PB_MAX + 1] = {{NULL}};
const fc_tilek_kernel_f64 fc_tilek_avx2_f64[FC_TILEK_NV_MAX + 1][FC_TILEK_PB_MAX + 1] = {{NULL}};

#endif
