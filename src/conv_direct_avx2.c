/* conv_direct_avx2.c: the AVX2+FMA micro-kernels of the direct convolution (contract in
 * conv_direct_kernels.h, portable twins in conv_direct_generic.c), written once in
 * conv_direct_simd_impl.h and instantiated for float (8 lanes) and double (4 lanes) as the
 * tables fc_direct_kernels_f32_avx2 and fc_direct_kernels_f64_avx2. Each function carries
 * its own target attribute, so the rest of the build stays portable; conv_direct.c calls
 * these only when fc_simd_avx2() is 1. */
#include <stddef.h>

#include "template.h"
#include "conv_direct_kernels.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define FC_TARGET __attribute__((target("avx2,fma")))
#define FC_TARGET_INLINE static inline __attribute__((always_inline, target("avx2,fma")))
/* Makes the compiler load a vector once into a register: without it, GCC folds the load
 * into each FMA that uses it (one load per FMA, and unaligned loads split cache lines). */
#define FC_IN_REGISTER(v) __asm__("" : "+x"(v))

/* Unrolls a copy of the accumulators to memory at once: left as a loop, GCC 12 turns it
 * into a memcpy of the accumulator array, which then lives in memory (a store per FMA). */
#define FC_UNROLL _Pragma("GCC unroll 16")

/* Mask of lanes [lo, hi) of a vector (lo and hi may lie outside the vector). */
FC_TARGET_INLINE __m256i v_lanes_f32(int lo, int hi)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_and_si256(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(lo - 1)),
                            _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), idx));
}

FC_TARGET_INLINE __m256i v_lanes_f64(int lo, int hi)
{
    const __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_and_si256(_mm256_cmpgt_epi64(idx, _mm256_set1_epi64x(lo - 1)),
                            _mm256_cmpgt_epi64(_mm256_set1_epi64x(hi), idx));
}

/* Sum of the lanes, in a fixed order. */
FC_TARGET_INLINE float v_hsum_f32(__m256 v)
{
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

FC_TARGET_INLINE double v_hsum_f64(__m256d v)
{
    const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}

/* r[i] holds row i of an 8 x 8 square on entry and column i on return: pairs unpacked,
 * then 4 x 4 blocks within each 128-bit half, then the halves exchanged. */
FC_TARGET_INLINE void v_transpose_f32(__m256 *r)
{
    __m256 t[8], s[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        s[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int k = 0; k < 4; k++) {
        r[k] = _mm256_permute2f128_ps(s[k], s[4 + k], 0x20);
        r[4 + k] = _mm256_permute2f128_ps(s[k], s[4 + k], 0x31);
    }
}

/* The same for a 4 x 4 square of doubles. */
FC_TARGET_INLINE void v_transpose_f64(__m256d *r)
{
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

/* The vector vocabulary of conv_direct_simd_impl.h, per element type. */
typedef __m256 vec_f32;
typedef __m256i mask_f32;
enum { lanes_f32 = 8 };
#define v_load_f32 _mm256_load_ps
#define v_loadu_f32 _mm256_loadu_ps
#define v_store_f32 _mm256_store_ps
#define v_storeu_f32 _mm256_storeu_ps
#define v_maskload_f32 _mm256_maskload_ps
#define v_maskstore_f32 _mm256_maskstore_ps
#define v_bcast_f32 _mm256_broadcast_ss
#define v_fma_f32 _mm256_fmadd_ps
#define v_add_f32 _mm256_add_ps
#define v_zero_f32 _mm256_setzero_ps

typedef __m256d vec_f64;
typedef __m256i mask_f64;
enum { lanes_f64 = 4 };
#define v_load_f64 _mm256_load_pd
#define v_loadu_f64 _mm256_loadu_pd
#define v_store_f64 _mm256_store_pd
#define v_storeu_f64 _mm256_storeu_pd
#define v_maskload_f64 _mm256_maskload_pd
#define v_maskstore_f64 _mm256_maskstore_pd
#define v_bcast_f64 _mm256_broadcast_sd
#define v_fma_f64 _mm256_fmadd_pd
#define v_add_f64 _mm256_add_pd
#define v_zero_f64 _mm256_setzero_pd

#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX avx2
#define FC_TEMPLATE_TILEK_ACC FC_TILEK_ACC_16_REGISTERS
#include "conv_direct_simd_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX avx2
#define FC_TEMPLATE_TILEK_ACC FC_TILEK_ACC_16_REGISTERS
#include "conv_direct_simd_impl.h"
#include "template_end.h"

#else /* not x86 with GCC or Clang: fc_simd_avx2() is always 0, the tables are never read */

#define REAL float
#define TYPE_SUFFIX f32
#include "conv_direct_kernels_impl.h"
const fc_direct_kernels_f32 fc_direct_kernels_f32_avx2 = {0};
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#include "conv_direct_kernels_impl.h"
const fc_direct_kernels_f64 fc_direct_kernels_f64_avx2 = {0};
#include "template_end.h"

#endif
