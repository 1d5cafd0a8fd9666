/* simd_reduce.h: the sum of an AVX2 vector's lanes, for FC_TEMPLATE_REDUCE_ADD of
 * simd_avx2_f32.h / simd_avx2_f64.h (AVX-512 has _mm512_reduce_add_ps/_pd). Like those, it
 * adds halves: lanes i and i + L/2 first, then the halves of the sums, down to one. */
#ifndef FASTCONV_SIMD_REDUCE_H
#define FASTCONV_SIMD_REDUCE_H

#include <immintrin.h>

__attribute__((target("avx2,fma"))) static inline float fc_reduce_add_avx2_f32(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static inline double fc_reduce_add_avx2_f64(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

#endif /* FASTCONV_SIMD_REDUCE_H */
