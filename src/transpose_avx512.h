/* transpose_avx512.h: square blocks transposed in AVX-512 registers (unpack pairs, then
 * 4x4 blocks, then 128-bit lanes): r[i] holds row i on entry and column i on return. For
 * x86 GCC and clang builds: the callers include it inside their x86 guard. */
#ifndef FC_TRANSPOSE_AVX512_H
#define FC_TRANSPOSE_AVX512_H

#include <immintrin.h>

/* 16 x 16 floats */
static inline __attribute__((always_inline, target("avx512f"))) void
fc_transpose16_f32_avx512(__m512 *r)
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 16; i += 8) {
        for (int k = 0; k < 4; k++) {
            t[i + k] = _mm512_shuffle_f32x4(r[i + k], r[i + 4 + k], 0x88);
            t[i + 4 + k] = _mm512_shuffle_f32x4(r[i + k], r[i + 4 + k], 0xDD);
        }
    }
    for (int k = 0; k < 8; k++) {
        r[k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0x88);
        r[8 + k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0xDD);
    }
}

/* 8 x 8 doubles */
static inline __attribute__((always_inline, target("avx512f"))) void
fc_transpose8_f64_avx512(__m512d *r)
{
    __m512d t[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        for (int k = 0; k < 2; k++) {
            r[i + k] = _mm512_shuffle_f64x2(t[i + k], t[i + 2 + k], 0x88);
            r[i + 2 + k] = _mm512_shuffle_f64x2(t[i + k], t[i + 2 + k], 0xDD);
        }
    }
    for (int k = 0; k < 4; k++) {
        t[k] = _mm512_shuffle_f64x2(r[k], r[4 + k], 0x88);
        t[4 + k] = _mm512_shuffle_f64x2(r[k], r[4 + k], 0xDD);
    }
    for (int k = 0; k < 8; k++) {
        r[k] = t[k];
    }
}

#endif /* FC_TRANSPOSE_AVX512_H */
