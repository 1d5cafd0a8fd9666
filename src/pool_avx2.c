/*
 * pool_avx2.c: AVX2 micro-kernels of 2x2 and 3x3 stride-2 pooling, float32 (contract in
 * pool_simd.h). Compiled without -mavx2: every function carries its own target attribute
 * and runs only when config.c's fc_simd_avx2() says the CPU has it.
 *
 * Eight windows per step, vectorised along the output row. A stride-2 window row is split
 * into its even and odd columns with one shuffle per 16 inputs; shuffle_ps works inside each
 * 128-bit half, so the eight windows come out in the lane order 0 1 4 5 2 3 6 7. Everything
 * is computed in that order, and only what is stored goes back to 0..7: outputs with one
 * 64-bit permute, gradients for free because unpacklo/unpackhi re-interleave exactly that
 * order into natural column order. A row's last (< 8) windows use masked loads and stores,
 * so short rows (LeNet's 5 and 14 outputs) stay vectorised too.
 */
#include "pool_simd.h"

#if FC_POOL_HAVE_AVX2

#include <immintrin.h>
#include <string.h>

#define FC_AVX2 __attribute__((target("avx2")))

/* Lanes [0, count) of a mask, count clamped to [0, 8]. */
FC_AVX2 static inline __m256i lanes_below(int64_t count)
{
    const int c = count < 0 ? 0 : count > 8 ? 8 : (int)count;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The 8 floats at p, or only the first `count` of them (the rest read as 0, never touched). */
FC_AVX2 static inline __m256 load_first(const float *p, int64_t count)
{
    if (count >= 8) {
        return _mm256_loadu_ps(p);
    }
    return _mm256_maskload_ps(p, lanes_below(count));
}

FC_AVX2 static inline void store_first(float *p, __m256 v, int64_t count)
{
    if (count >= 8) {
        _mm256_storeu_ps(p, v);
    } else {
        _mm256_maskstore_ps(p, lanes_below(count), v);
    }
}

/* Lane order 0 1 4 5 2 3 6 7 <-> 0..7 (the permutation is its own inverse). */
FC_AVX2 static inline __m256 swap_middle(__m256 v)
{
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), _MM_SHUFFLE(3, 1, 2, 0)));
}

FC_AVX2 static inline __m256 even_columns(__m256 a, __m256 b)
{
    return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
}

FC_AVX2 static inline __m256 odd_columns(__m256 a, __m256 b)
{
    return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
}

/* The K columns of one window row for 8 windows (8 - `left` masked off at the row's end):
 * col[s] holds column 2q + s of window q. Column 2q + 2 is the odd column of the row shifted by
 * one, so no load reaches past the last window's last column. */
FC_AVX2 static inline void window_row(__m256 *col, const float *x, int64_t left, const int K)
{
    const int64_t need = 2 * left + (K - 2);   /* floats of this row the windows read */
    const __m256 a = load_first(x, need), b = load_first(x + 8, need - 8);
    col[0] = even_columns(a, b);
    col[1] = odd_columns(a, b);
    if (K == 3) {
        const __m256 c = load_first(x + 1, need - 1), d = load_first(x + 9, need - 9);
        col[2] = odd_columns(c, d);
    }
}

/* PyTorch's running-maximum rule, lane by lane: v takes over when greater or NaN (note
 * _mm256_max_ps would drop a NaN in its first operand, hence compare and blend). */
FC_AVX2 static inline __m256 take_over(__m256 *m, __m256 v)
{
    const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, *m, _CMP_GT_OQ),
                                     _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    *m = _mm256_blendv_ps(*m, v, take);
    return take;
}

/* Maximum of 8 K x K windows in row-major window order, and (when want_pos) the position
 * r*K + s of each maximum as 32-bit lanes; lane order 0 1 4 5 2 3 6 7. */
FC_AVX2 static inline __m256 max_windows8(__m256i *pos, const float *x, int64_t ldx,
                                          int64_t left, const int K, const int want_pos)
{
    __m256 m = _mm256_setzero_ps();
    __m256i best = _mm256_setzero_si256();
    for (int r = 0; r < K; r++) {
        __m256 col[3];
        window_row(col, x + r * ldx, left, K);
        for (int s = 0; s < K; s++) {
            if (r == 0 && s == 0) {
                m = col[0];
                continue;
            }
            const __m256 take = take_over(&m, col[s]);
            if (want_pos) {
                best = _mm256_blendv_epi8(best, _mm256_set1_epi32(r * K + s),
                                          _mm256_castps_si256(take));
            }
        }
    }
    *pos = best;
    return m;
}

/* Store 8 positions (lane order 0 1 4 5 2 3 6 7) as the first `count` bytes of pos. */
FC_AVX2 static inline void store_positions(uint8_t *pos, __m256i best, int64_t count)
{
    best = _mm256_castpd_si256(
        _mm256_permute4x64_pd(_mm256_castsi256_pd(best), _MM_SHUFFLE(3, 1, 2, 0)));
    const __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(best),
                                         _mm256_extracti128_si256(best, 1));
    const __m128i w8 = _mm_packus_epi16(w16, w16);
    if (count >= 8) {
        _mm_storel_epi64((__m128i *)pos, w8);
    } else {
        uint8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, w8);
        memcpy(pos, tmp, (size_t)count);
    }
}

FC_AVX2 static inline void max_row_s2(float *y, uint8_t *pos, const float *x, int64_t ldx,
                                      int64_t n, const int K)
{
    for (int64_t q = 0; q < n; q += 8) {
        __m256i best;
        const __m256 m = max_windows8(&best, x + 2 * q, ldx, n - q, K, pos != NULL);
        store_first(y + q, swap_middle(m), n - q);
        if (pos) {
            store_positions(pos + q, best, n - q);
        }
    }
}

FC_AVX2 void fc_max_row_k2s2_avx2_f32(float *y, uint8_t *pos, const float *x, int64_t ldx,
                                      int64_t n)
{
    /* Two copies of the loop, so the one without positions computes none. */
    if (pos) {
        max_row_s2(y, pos, x, ldx, n, 2);
    } else {
        max_row_s2(y, NULL, x, ldx, n, 2);
    }
}

FC_AVX2 void fc_max_row_k3s2_avx2_f32(float *y, uint8_t *pos, const float *x, int64_t ldx,
                                      int64_t n)
{
    if (pos) {
        max_row_s2(y, pos, x, ldx, n, 3);
    } else {
        max_row_s2(y, NULL, x, ldx, n, 3);
    }
}

/* Sums from zero in row-major window order, as PyTorch and the portable twin add. */
FC_AVX2 static inline void avg_row_s2(float *y, const float *x, int64_t ldx, int64_t n,
                                      float divisor, const int K)
{
    const __m256 div = _mm256_set1_ps(divisor);
    for (int64_t q = 0; q < n; q += 8) {
        __m256 sum = _mm256_setzero_ps();
        for (int r = 0; r < K; r++) {
            __m256 col[3];
            window_row(col, x + 2 * q + r * ldx, n - q, K);
            for (int s = 0; s < K; s++) {
                sum = _mm256_add_ps(sum, col[s]);
            }
        }
        store_first(y + q, swap_middle(_mm256_div_ps(sum, div)), n - q);
    }
}

FC_AVX2 void fc_avg_row_k2s2_avx2_f32(float *y, const float *x, int64_t ldx, int64_t n,
                                      float divisor)
{
    avg_row_s2(y, x, ldx, n, divisor, 2);
}

FC_AVX2 void fc_avg_row_k3s2_avx2_f32(float *y, const float *x, int64_t ldx, int64_t n,
                                      float divisor)
{
    avg_row_s2(y, x, ldx, n, divisor, 3);
}

/* Write the 16 gradient columns 2q, 2q+1 of one input row from even-column and odd-column
 * values in lane order 0 1 4 5 2 3 6 7: unpacklo/unpackhi give columns 0..7 and 8..15. */
FC_AVX2 static inline void store_grad_row(float *dx, __m256 even, __m256 odd, int64_t left)
{
    store_first(dx, _mm256_unpacklo_ps(even, odd), 2 * left);
    store_first(dx + 8, _mm256_unpackhi_ps(even, odd), 2 * left - 8);
}

FC_AVX2 void fc_max_grad_row_k2s2_avx2_f32(float *dx, int64_t ldx, const float *dy,
                                           const float *x, int64_t n)
{
    for (int64_t q = 0; q < n; q += 8) {
        __m256i best;
        max_windows8(&best, x + 2 * q, ldx, n - q, 2, 1);
        const __m256 g = swap_middle(load_first(dy + q, n - q));
        __m256 part[4];
        for (int k = 0; k < 4; k++) {
            const __m256i hit = _mm256_cmpeq_epi32(best, _mm256_set1_epi32(k));
            part[k] = _mm256_and_ps(g, _mm256_castsi256_ps(hit));
        }
        store_grad_row(dx + 2 * q, part[0], part[1], n - q);
        store_grad_row(dx + 2 * q + ldx, part[2], part[3], n - q);
    }
}

FC_AVX2 void fc_avg_grad_row_k2s2_avx2_f32(float *dx, int64_t ldx, const float *dy, int64_t n,
                                           float divisor)
{
    const __m256 div = _mm256_set1_ps(divisor);
    for (int64_t q = 0; q < n; q += 8) {
        const __m256 g = swap_middle(_mm256_div_ps(load_first(dy + q, n - q), div));
        store_grad_row(dx + 2 * q, g, g, n - q);
        store_grad_row(dx + 2 * q + ldx, g, g, n - q);
    }
}

#endif /* FC_POOL_HAVE_AVX2 */
