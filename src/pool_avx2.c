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
 * order into natural column order. A row's last (< 8) windows use masked loads (their masks
 * made once per call) and split plain stores, so short rows (LeNet's 5 and 14 windows) stay
 * vectorised too.
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

/* How the last `left` (1..7) windows of every row load: masks for the input loads at x, x + 8,
 * x + 1 and x + 9 (see window_row), so no load reaches past the last window, and for the
 * gradient load of their dy values. */
typedef struct {
    int64_t left;
    __m256i at0, at8, at1, at9, dy;
} row_tail;

FC_AVX2 static inline row_tail make_row_tail(int64_t n, const int K)
{
    row_tail t;
    t.left = n % 8;
    const int64_t need = 2 * t.left + (K - 2);   /* floats of an input row the tail reads */
    t.at0 = lanes_below(need);
    t.at8 = lanes_below(need - 8);
    t.at1 = lanes_below(need - 1);
    t.at9 = lanes_below(need - 9);
    t.dy = lanes_below(t.left);
    return t;
}

FC_AVX2 static inline __m256 load8(const float *p, const row_tail *tail, __m256i mask)
{
    return tail ? _mm256_maskload_ps(p, mask) : _mm256_loadu_ps(p);
}

/* The first `count` (< 8 when tail) floats of v to p: 4 + 2 + 1 plain stores, since vmaskmovps
 * stores are slow on AMD and a copy loop would become a call to memcpy. */
FC_AVX2 static inline void store8(float *p, __m256 v, int64_t count)
{
    if (count >= 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    __m128 part = _mm256_castps256_ps128(v);
    if (count >= 4) {
        _mm_storeu_ps(p, part);
        part = _mm256_extractf128_ps(v, 1);
        p += 4;
        count -= 4;
    }
    if (count >= 2) {
        _mm_storel_pi((__m64 *)p, part);
        part = _mm_movehl_ps(part, part);
        p += 2;
        count -= 2;
    }
    if (count >= 1) {
        _mm_store_ss(p, part);
    }
}

/* Lane order 0 1 4 5 2 3 6 7 <-> 0..7 (the permutation is its own inverse). */
FC_AVX2 static inline __m256 swap_middle(__m256 v)
{
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* The K columns of one window row for 8 windows: col[s] holds column 2q + s of window q.
 * Column 2q + 2 is the odd column of the row shifted by one, so even the 3x3 loads end at
 * the last window's last column. tail: NULL for 8 whole windows. */
FC_AVX2 static inline void window_row(__m256 *col, const float *x, const int K,
                                      const row_tail *tail)
{
    const __m256 a = load8(x, tail, tail ? tail->at0 : _mm256_setzero_si256());
    const __m256 b = load8(x + 8, tail, tail ? tail->at8 : _mm256_setzero_si256());
    col[0] = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    col[1] = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    if (K == 3) {
        const __m256 c = load8(x + 1, tail, tail ? tail->at1 : _mm256_setzero_si256());
        const __m256 d = load8(x + 9, tail, tail ? tail->at9 : _mm256_setzero_si256());
        col[2] = _mm256_shuffle_ps(c, d, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* PyTorch's running-maximum rule, lane by lane: v takes over when greater or NaN. Compare and
 * blend, because _mm256_max_ps returns its second operand whenever either is NaN, so it would
 * drop a NaN in one of the two positions whichever order the operands take. */
FC_AVX2 static inline __m256 take_over(__m256 *m, __m256 v)
{
    const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, *m, _CMP_GT_OQ),
                                     _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    *m = _mm256_blendv_ps(*m, v, take);
    return take;
}

/* Maximum of 8 K x K windows, taps in row-major window order, and (when want_pos) the
 * position r*K + s of each maximum in 32-bit lanes; lane order 0 1 4 5 2 3 6 7. */
FC_AVX2 static inline __m256 max_windows8(__m256i *pos, const float *x, int64_t ldx,
                                          const int K, const int want_pos, const row_tail *tail)
{
    __m256 m = _mm256_setzero_ps();
    __m256i best = _mm256_setzero_si256();
    for (int r = 0; r < K; r++) {
        __m256 col[3];
        window_row(col, x + r * ldx, K, tail);
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

/* 8 positions (lane order 0 1 4 5 2 3 6 7) as the first `count` bytes of pos. */
FC_AVX2 static inline void store_positions(uint8_t *pos, __m256i best, int64_t count)
{
    best = _mm256_castpd_si256(
        _mm256_permute4x64_pd(_mm256_castsi256_pd(best), _MM_SHUFFLE(3, 1, 2, 0)));
    const __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(best),
                                         _mm256_extracti128_si256(best, 1));
    const __m128i w8 = _mm_packus_epi16(w16, w16);
    if (count >= 8) {
        _mm_storel_epi64((__m128i *)pos, w8);
        return;
    }
    /* 4 + 2 + 1 byte stores, as store8 does for floats: each the low bytes of what is left
     * (x86 is little-endian); unrolled, every memcpy is one plain store. */
    uint64_t bytes = (uint64_t)_mm_cvtsi128_si64(w8);
#pragma GCC unroll 3
    for (int width = 4; width >= 1; width /= 2) {
        if (count >= width) {
            memcpy(pos, &bytes, (size_t)width);
            bytes >>= 8 * width;
            pos += width;
            count -= width;
        }
    }
}

FC_AVX2 static inline void max_block8(float *y, uint8_t *pos, const float *x, int64_t ldx,
                                      const int K, const row_tail *tail)
{
    const int64_t count = tail ? tail->left : 8;
    __m256i best;
    const __m256 m = max_windows8(&best, x, ldx, K, pos != NULL, tail);
    store8(y, swap_middle(m), count);
    if (pos) {
        store_positions(pos, best, count);
    }
}

FC_AVX2 static inline void max_rows(float *y, int64_t ldy, uint8_t *pos, int64_t ldpos,
                                    const float *x, int64_t ldx, int64_t n, int64_t rows,
                                    const int K)
{
    const row_tail tail = make_row_tail(n, K);
    const int64_t whole = n - tail.left;
    for (int64_t i = 0; i < rows; i++) {
        float *y_row = y + i * ldy;
        uint8_t *pos_row = pos ? pos + i * ldpos : NULL;
        const float *x_row = x + 2 * i * ldx;
        for (int64_t q = 0; q < whole; q += 8) {
            max_block8(y_row + q, pos_row ? pos_row + q : NULL, x_row + 2 * q, ldx, K, NULL);
        }
        if (tail.left) {
            max_block8(y_row + whole, pos_row ? pos_row + whole : NULL, x_row + 2 * whole, ldx,
                       K, &tail);
        }
    }
}

/* Two copies of each loop, so the one without positions computes none; inlined into each
 * public entry, which passes its window size as a constant. */
FC_AVX2 static inline __attribute__((always_inline)) void
max_rows_either(float *y, int64_t ldy, uint8_t *pos, int64_t ldpos, const float *x, int64_t ldx,
                int64_t n, int64_t rows, const int K)
{
    if (pos) {
        max_rows(y, ldy, pos, ldpos, x, ldx, n, rows, K);
    } else {
        max_rows(y, ldy, NULL, 0, x, ldx, n, rows, K);
    }
}

FC_AVX2 void fc_max_rows_k2s2_avx2_f32(float *y, int64_t ldy, uint8_t *pos, int64_t ldpos,
                                       const float *x, int64_t ldx, int64_t n, int64_t rows)
{
    max_rows_either(y, ldy, pos, ldpos, x, ldx, n, rows, 2);
}

FC_AVX2 void fc_max_rows_k3s2_avx2_f32(float *y, int64_t ldy, uint8_t *pos, int64_t ldpos,
                                       const float *x, int64_t ldx, int64_t n, int64_t rows)
{
    max_rows_either(y, ldy, pos, ldpos, x, ldx, n, rows, 3);
}

/* Sums from zero in row-major window order, as PyTorch and the portable twin add. */
FC_AVX2 static inline void avg_block8(float *y, const float *x, int64_t ldx, __m256 divisor,
                                      const int K, const row_tail *tail)
{
    __m256 sum = _mm256_setzero_ps();
    for (int r = 0; r < K; r++) {
        __m256 col[3];
        window_row(col, x + r * ldx, K, tail);
        for (int s = 0; s < K; s++) {
            sum = _mm256_add_ps(sum, col[s]);
        }
    }
    store8(y, swap_middle(_mm256_div_ps(sum, divisor)), tail ? tail->left : 8);
}

FC_AVX2 static inline void avg_rows(float *y, int64_t ldy, const float *x, int64_t ldx,
                                    int64_t n, int64_t rows, float divisor, const int K)
{
    const row_tail tail = make_row_tail(n, K);
    const int64_t whole = n - tail.left;
    const __m256 div = _mm256_set1_ps(divisor);
    for (int64_t i = 0; i < rows; i++) {
        float *y_row = y + i * ldy;
        const float *x_row = x + 2 * i * ldx;
        for (int64_t q = 0; q < whole; q += 8) {
            avg_block8(y_row + q, x_row + 2 * q, ldx, div, K, NULL);
        }
        if (tail.left) {
            avg_block8(y_row + whole, x_row + 2 * whole, ldx, div, K, &tail);
        }
    }
}

FC_AVX2 void fc_avg_rows_k2s2_avx2_f32(float *y, int64_t ldy, const float *x, int64_t ldx,
                                       int64_t n, int64_t rows, float divisor)
{
    avg_rows(y, ldy, x, ldx, n, rows, divisor, 2);
}

FC_AVX2 void fc_avg_rows_k3s2_avx2_f32(float *y, int64_t ldy, const float *x, int64_t ldx,
                                       int64_t n, int64_t rows, float divisor)
{
    avg_rows(y, ldy, x, ldx, n, rows, divisor, 3);
}

/* The 16 gradient columns of one input row under 8 windows, from the values of their even
 * and odd columns in lane order 0 1 4 5 2 3 6 7: unpacklo/unpackhi give columns 0..7, 8..15. */
FC_AVX2 static inline void store_grad_row(float *dx, __m256 even, __m256 odd, int64_t count)
{
    store8(dx, _mm256_unpacklo_ps(even, odd), 2 * count);
    if (count > 4) {
        store8(dx + 8, _mm256_unpackhi_ps(even, odd), 2 * count - 8);
    }
}

FC_AVX2 static inline void max_grad_block8(float *dx, int64_t ldx, const float *dy,
                                           const float *x, const row_tail *tail)
{
    const int64_t count = tail ? tail->left : 8;
    __m256 top[3], bottom[3];
    window_row(top, x, 2, tail);
    window_row(bottom, x + ldx, 2, tail);
    /* Which tap took over last is the maximum: one mask per tap, no positions needed. */
    __m256 m = top[0];
    const __m256 took1 = take_over(&m, top[1]);
    const __m256 took2 = take_over(&m, bottom[0]);
    const __m256 took3 = take_over(&m, bottom[1]);
    const __m256 g = swap_middle(load8(dy, tail, tail ? tail->dy : _mm256_setzero_si256()));
    const __m256 after1 = _mm256_or_ps(took2, took3), after0 = _mm256_or_ps(after1, took1);
    const __m256 g3 = _mm256_and_ps(took3, g);
    const __m256 g2 = _mm256_andnot_ps(took3, _mm256_and_ps(took2, g));
    const __m256 g1 = _mm256_andnot_ps(after1, _mm256_and_ps(took1, g));
    const __m256 g0 = _mm256_andnot_ps(after0, g);
    store_grad_row(dx, g0, g1, count);
    store_grad_row(dx + ldx, g2, g3, count);
}

FC_AVX2 void fc_max_grad_rows_k2s2_avx2_f32(float *dx, int64_t ldx, const float *dy, int64_t ldy,
                                            const float *x, int64_t n, int64_t rows)
{
    const row_tail tail = make_row_tail(n, 2);
    const int64_t whole = n - tail.left;
    for (int64_t i = 0; i < rows; i++) {
        float *dx_row = dx + 2 * i * ldx;
        const float *x_row = x + 2 * i * ldx, *dy_row = dy + i * ldy;
        for (int64_t q = 0; q < whole; q += 8) {
            max_grad_block8(dx_row + 2 * q, ldx, dy_row + q, x_row + 2 * q, NULL);
        }
        if (tail.left) {
            max_grad_block8(dx_row + 2 * whole, ldx, dy_row + whole, x_row + 2 * whole, &tail);
        }
    }
}

/* 8 taps (the first `count` bytes of pos) as 32-bit lanes in lane order 0 1 4 5 2 3 6 7. */
FC_AVX2 static inline __m256i load_positions(const uint8_t *pos, int64_t count)
{
    __m128i bytes;
    if (count >= 8) {
        bytes = _mm_loadl_epi64((const __m128i *)pos);
    } else {
        /* 4 + 2 + 1 byte loads, so nothing past the last tap is read */
        uint64_t packed = 0;
        int shift = 0;
        if (count >= 4) {
            uint32_t four;
            memcpy(&four, pos, 4);
            packed = four;
            shift = 32;
            pos += 4;
            count -= 4;
        }
        if (count >= 2) {
            uint16_t two;
            memcpy(&two, pos, 2);
            packed |= (uint64_t)two << shift;
            shift += 16;
            pos += 2;
            count -= 2;
        }
        if (count >= 1) {
            packed |= (uint64_t)*pos << shift;
        }
        bytes = _mm_cvtsi64_si128((long long)packed);
    }
    return _mm256_castps_si256(swap_middle(_mm256_castsi256_ps(_mm256_cvtepu8_epi32(bytes))));
}

FC_AVX2 static inline void max_grad_argmax_block8(float *dx, int64_t ldx, const float *dy,
                                                  const uint8_t *pos, const row_tail *tail)
{
    const int64_t count = tail ? tail->left : 8;
    const __m256i best = load_positions(pos, count);
    const __m256 g = swap_middle(load8(dy, tail, tail ? tail->dy : _mm256_setzero_si256()));
    __m256 part[4];
    for (int k = 0; k < 4; k++) {
        const __m256i hit = _mm256_cmpeq_epi32(best, _mm256_set1_epi32(k));
        part[k] = _mm256_and_ps(g, _mm256_castsi256_ps(hit));
    }
    store_grad_row(dx, part[0], part[1], count);
    store_grad_row(dx + ldx, part[2], part[3], count);
}

FC_AVX2 void fc_max_grad_argmax_rows_k2s2_avx2_f32(float *dx, int64_t ldx, const float *dy,
                                                   int64_t ldy, const uint8_t *pos, int64_t ldpos,
                                                   int64_t n, int64_t rows)
{
    const row_tail tail = make_row_tail(n, 2);
    const int64_t whole = n - tail.left;
    for (int64_t i = 0; i < rows; i++) {
        float *dx_row = dx + 2 * i * ldx;
        const float *dy_row = dy + i * ldy;
        const uint8_t *pos_row = pos + i * ldpos;
        for (int64_t q = 0; q < whole; q += 8) {
            max_grad_argmax_block8(dx_row + 2 * q, ldx, dy_row + q, pos_row + q, NULL);
        }
        if (tail.left) {
            max_grad_argmax_block8(dx_row + 2 * whole, ldx, dy_row + whole, pos_row + whole,
                                   &tail);
        }
    }
}

FC_AVX2 static inline void avg_grad_block8(float *dx, int64_t ldx, const float *dy,
                                           __m256 divisor, const row_tail *tail)
{
    const int64_t count = tail ? tail->left : 8;
    const __m256 d = load8(dy, tail, tail ? tail->dy : _mm256_setzero_si256());
    const __m256 g = swap_middle(_mm256_div_ps(d, divisor));
    store_grad_row(dx, g, g, count);
    store_grad_row(dx + ldx, g, g, count);
}

FC_AVX2 void fc_avg_grad_rows_k2s2_avx2_f32(float *dx, int64_t ldx, const float *dy, int64_t ldy,
                                            int64_t n, int64_t rows, float divisor)
{
    const row_tail tail = make_row_tail(n, 2);
    const int64_t whole = n - tail.left;
    const __m256 div = _mm256_set1_ps(divisor);
    for (int64_t i = 0; i < rows; i++) {
        float *dx_row = dx + 2 * i * ldx;
        const float *dy_row = dy + i * ldy;
        for (int64_t q = 0; q < whole; q += 8) {
            avg_grad_block8(dx_row + 2 * q, ldx, dy_row + q, div, NULL);
        }
        if (tail.left) {
            avg_grad_block8(dx_row + 2 * whole, ldx, dy_row + whole, div, &tail);
        }
    }
}

#endif /* FC_POOL_HAVE_AVX2 */
