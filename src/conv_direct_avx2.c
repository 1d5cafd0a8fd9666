/* conv_direct_avx2.c: the AVX2+FMA micro-kernels of the direct convolution (contract in
 * conv_direct_kernels.h, portable twins in conv_direct_generic.c). Each function carries
 * its own target attribute, so the rest of the build stays portable; conv_direct.c calls
 * these only when fc_simd_avx2() says the CPU has AVX2 and FMA. */
#include <stddef.h>

#include "conv_direct_kernels.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define FC_AVX2 __attribute__((target("avx2,fma")))
#define FC_AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

/* ---------------------------------------------------------------- float: 8 lanes */

/* Mask of lanes [lo, hi) of 8 floats (lo and hi may lie outside 0..8). */
FC_AVX2_INLINE __m256i lanes_f32(int lo, int hi)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_and_si256(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(lo - 1)),
                            _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), idx));
}

/* y <- tile (kb, vw) through the strip map: whole vectors stored plainly, the ends of a
 * segment with a masked store (masked lanes are never touched, so they cannot fault). */
static FC_AVX2 void store_map_f32(float *y, const fc_strip_map *map, const float *tile,
                                  int kb, int vw)
{
    for (int s = 0; s < map->nseg; s++) {
        const int lo = map->lo[s], hi = map->hi[s];
        for (int j = lo & ~7; j < hi; j += 8) {
            const __m256i mask = lanes_f32(lo - j, hi - j);
            const int whole = j >= lo && j + 8 <= hi;
            for (int k = 0; k < kb; k++) {
                float *dst = y + map->base[s] + k * map->ldk + j;
                const __m256 v = _mm256_load_ps(tile + k * vw + j);
                if (whole) {
                    _mm256_storeu_ps(dst, v);
                } else {
                    _mm256_maskstore_ps(dst, mask, v);
                }
            }
        }
    }
}

/* tile (KB filters, 8*NV pixels): per tap, NV loads of x, KB broadcast weights, KB*NV FMAs
 * into accumulators that stay in registers for all the taps. */
FC_AVX2_INLINE void tile_f32(const int KB, const int NV, float *y, const fc_strip_map *map,
                             const float *x, const int64_t *off, int64_t ntaps,
                             const float *w, const float *bias)
{
    __m256 acc[FC_TILE_KB_MAX][8];
    for (int k = 0; k < KB; k++) {
        for (int v = 0; v < NV; v++) {
            acc[k][v] = _mm256_broadcast_ss(bias + k);
        }
    }
    for (int64_t t = 0; t < ntaps; t++) {
        const float *xt = x + off[t];
        const float *wt = w + t * KB;
        __m256 xv[8];
        for (int v = 0; v < NV; v++) {
            xv[v] = _mm256_loadu_ps(xt + 8 * v);
        }
        for (int k = 0; k < KB; k++) {
            const __m256 wk = _mm256_broadcast_ss(wt + k);
            for (int v = 0; v < NV; v++) {
                acc[k][v] = _mm256_fmadd_ps(wk, xv[v], acc[k][v]);
            }
        }
    }
    _Alignas(32) float tile[FC_TILE_KB_MAX * FC_TILE_VW_MAX];
    for (int k = 0; k < KB; k++) {
        for (int v = 0; v < NV; v++) {
            _mm256_store_ps(tile + k * 8 * NV + 8 * v, acc[k][v]);
        }
    }
    store_map_f32(y, map, tile, KB, 8 * NV);
}

/* dw (KB filters, TB taps) += dy . x windows over a band: per 8 pixels, KB loads of dy,
 * TB loads of x, KB*TB FMAs; the last Q % 8 pixels of a row through masked loads (masked
 * lanes read as 0 and are never read from memory). */
FC_AVX2_INLINE void wgrad_f32(const int KB, const int TB, float *dw, int64_t ldw, int nt,
                              const float *dy, int64_t ldk, int64_t ldy, const float *x,
                              const int64_t *off, int64_t pitch, int64_t rows, int64_t Q)
{
    __m256 acc[FC_WGRAD_KB_MAX][FC_WGRAD_TB_MAX];
    for (int k = 0; k < KB; k++) {
        for (int t = 0; t < TB; t++) {
            acc[k][t] = _mm256_setzero_ps();
        }
    }
    const int64_t q_full = Q - Q % 8;
    const __m256i tail = lanes_f32(0, (int)(Q % 8));
    for (int64_t i = 0; i < rows; i++) {
        const float *dy_row = dy + i * ldy;
        const float *x_tap[FC_WGRAD_TB_MAX];
        for (int t = 0; t < TB; t++) {
            x_tap[t] = x + off[t] + i * pitch;
        }
        for (int64_t q = 0; q < q_full; q += 8) {
            __m256 d[FC_WGRAD_KB_MAX];
            for (int k = 0; k < KB; k++) {
                d[k] = _mm256_loadu_ps(dy_row + k * ldk + q);
            }
            for (int t = 0; t < TB; t++) {
                const __m256 xv = _mm256_loadu_ps(x_tap[t] + q);
                for (int k = 0; k < KB; k++) {
                    acc[k][t] = _mm256_fmadd_ps(d[k], xv, acc[k][t]);
                }
            }
        }
        if (q_full < Q) {
            __m256 d[FC_WGRAD_KB_MAX];
            for (int k = 0; k < KB; k++) {
                d[k] = _mm256_maskload_ps(dy_row + k * ldk + q_full, tail);
            }
            for (int t = 0; t < TB; t++) {
                const __m256 xv = _mm256_maskload_ps(x_tap[t] + q_full, tail);
                for (int k = 0; k < KB; k++) {
                    acc[k][t] = _mm256_fmadd_ps(d[k], xv, acc[k][t]);
                }
            }
        }
    }
    for (int k = 0; k < KB; k++) {
        for (int t = 0; t < TB && t < nt; t++) {
            const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc[k][t]),
                                         _mm256_extractf128_ps(acc[k][t], 1));
            const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
            const __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
            dw[k * ldw + t] += _mm_cvtss_f32(s1);
        }
    }
}

/* ---------------------------------------------------------------- double: 4 lanes */

FC_AVX2_INLINE __m256i lanes_f64(int lo, int hi)
{
    const __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_and_si256(_mm256_cmpgt_epi64(idx, _mm256_set1_epi64x(lo - 1)),
                            _mm256_cmpgt_epi64(_mm256_set1_epi64x(hi), idx));
}

static FC_AVX2 void store_map_f64(double *y, const fc_strip_map *map, const double *tile,
                                  int kb, int vw)
{
    for (int s = 0; s < map->nseg; s++) {
        const int lo = map->lo[s], hi = map->hi[s];
        for (int j = lo & ~3; j < hi; j += 4) {
            const __m256i mask = lanes_f64(lo - j, hi - j);
            const int whole = j >= lo && j + 4 <= hi;
            for (int k = 0; k < kb; k++) {
                double *dst = y + map->base[s] + k * map->ldk + j;
                const __m256d v = _mm256_load_pd(tile + k * vw + j);
                if (whole) {
                    _mm256_storeu_pd(dst, v);
                } else {
                    _mm256_maskstore_pd(dst, mask, v);
                }
            }
        }
    }
}

FC_AVX2_INLINE void tile_f64(const int KB, const int NV, double *y, const fc_strip_map *map,
                             const double *x, const int64_t *off, int64_t ntaps,
                             const double *w, const double *bias)
{
    __m256d acc[FC_TILE_KB_MAX][8];
    for (int k = 0; k < KB; k++) {
        for (int v = 0; v < NV; v++) {
            acc[k][v] = _mm256_broadcast_sd(bias + k);
        }
    }
    for (int64_t t = 0; t < ntaps; t++) {
        const double *xt = x + off[t];
        const double *wt = w + t * KB;
        __m256d xv[8];
        for (int v = 0; v < NV; v++) {
            xv[v] = _mm256_loadu_pd(xt + 4 * v);
        }
        for (int k = 0; k < KB; k++) {
            const __m256d wk = _mm256_broadcast_sd(wt + k);
            for (int v = 0; v < NV; v++) {
                acc[k][v] = _mm256_fmadd_pd(wk, xv[v], acc[k][v]);
            }
        }
    }
    _Alignas(32) double tile[FC_TILE_KB_MAX * FC_TILE_VW_MAX];
    for (int k = 0; k < KB; k++) {
        for (int v = 0; v < NV; v++) {
            _mm256_store_pd(tile + k * 4 * NV + 4 * v, acc[k][v]);
        }
    }
    store_map_f64(y, map, tile, KB, 4 * NV);
}

FC_AVX2_INLINE void wgrad_f64(const int KB, const int TB, double *dw, int64_t ldw, int nt,
                              const double *dy, int64_t ldk, int64_t ldy, const double *x,
                              const int64_t *off, int64_t pitch, int64_t rows, int64_t Q)
{
    __m256d acc[FC_WGRAD_KB_MAX][FC_WGRAD_TB_MAX];
    for (int k = 0; k < KB; k++) {
        for (int t = 0; t < TB; t++) {
            acc[k][t] = _mm256_setzero_pd();
        }
    }
    const int64_t q_full = Q - Q % 4;
    const __m256i tail = lanes_f64(0, (int)(Q % 4));
    for (int64_t i = 0; i < rows; i++) {
        const double *dy_row = dy + i * ldy;
        const double *x_tap[FC_WGRAD_TB_MAX];
        for (int t = 0; t < TB; t++) {
            x_tap[t] = x + off[t] + i * pitch;
        }
        for (int64_t q = 0; q < q_full; q += 4) {
            __m256d d[FC_WGRAD_KB_MAX];
            for (int k = 0; k < KB; k++) {
                d[k] = _mm256_loadu_pd(dy_row + k * ldk + q);
            }
            for (int t = 0; t < TB; t++) {
                const __m256d xv = _mm256_loadu_pd(x_tap[t] + q);
                for (int k = 0; k < KB; k++) {
                    acc[k][t] = _mm256_fmadd_pd(d[k], xv, acc[k][t]);
                }
            }
        }
        if (q_full < Q) {
            __m256d d[FC_WGRAD_KB_MAX];
            for (int k = 0; k < KB; k++) {
                d[k] = _mm256_maskload_pd(dy_row + k * ldk + q_full, tail);
            }
            for (int t = 0; t < TB; t++) {
                const __m256d xv = _mm256_maskload_pd(x_tap[t] + q_full, tail);
                for (int k = 0; k < KB; k++) {
                    acc[k][t] = _mm256_fmadd_pd(d[k], xv, acc[k][t]);
                }
            }
        }
    }
    for (int k = 0; k < KB; k++) {
        for (int t = 0; t < TB && t < nt; t++) {
            const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(acc[k][t]),
                                          _mm256_extractf128_pd(acc[k][t], 1));
            dw[k * ldw + t] += _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
        }
    }
}

/* ---------------------------------------------------------------- the kernel tables */

/* One function per block size: KB and NV become constants, so the loops above unroll and
 * the accumulators live in registers. */
#define FC_TILE(KB, SUFFIX, T)                                                              \
    static FC_AVX2 void tile##KB##_##SUFFIX(T *y, const fc_strip_map *map, const T *x,      \
                                            const int64_t *off, int64_t ntaps, const T *w,  \
                                            const T *bias)                                  \
    {                                                                                       \
        tile_##SUFFIX(KB, FC_TILE_NV(KB), y, map, x, off, ntaps, w, bias);                  \
    }
#define FC_WGRAD(KB, SUFFIX, T)                                                             \
    static FC_AVX2 void wgrad##KB##_##SUFFIX(T *dw, int64_t ldw, int nt, const T *dy,       \
                                             int64_t ldk, int64_t ldy, const T *x,          \
                                             const int64_t *off, int64_t pitch,             \
                                             int64_t rows, int64_t Q)                       \
    {                                                                                       \
        wgrad_##SUFFIX(KB, FC_WGRAD_TB(KB), dw, ldw, nt, dy, ldk, ldy, x, off, pitch, rows, Q); \
    }

FC_TILE(1, f32, float)
FC_TILE(2, f32, float)
FC_TILE(3, f32, float)
FC_TILE(4, f32, float)
FC_TILE(5, f32, float)
FC_TILE(6, f32, float)
FC_TILE(1, f64, double)
FC_TILE(2, f64, double)
FC_TILE(3, f64, double)
FC_TILE(4, f64, double)
FC_TILE(5, f64, double)
FC_TILE(6, f64, double)
FC_WGRAD(1, f32, float)
FC_WGRAD(2, f32, float)
FC_WGRAD(3, f32, float)
FC_WGRAD(1, f64, double)
FC_WGRAD(2, f64, double)
FC_WGRAD(3, f64, double)
#undef FC_TILE
#undef FC_WGRAD

const fc_tile_kernel_f32 fc_tile_avx2_f32[FC_TILE_KB_MAX + 1] = {
    NULL, tile1_f32, tile2_f32, tile3_f32, tile4_f32, tile5_f32, tile6_f32
};
const fc_tile_kernel_f64 fc_tile_avx2_f64[FC_TILE_KB_MAX + 1] = {
    NULL, tile1_f64, tile2_f64, tile3_f64, tile4_f64, tile5_f64, tile6_f64
};
const fc_wgrad_kernel_f32 fc_wgrad_avx2_f32[FC_WGRAD_KB_MAX + 1] = {
    NULL, wgrad1_f32, wgrad2_f32, wgrad3_f32
};
const fc_wgrad_kernel_f64 fc_wgrad_avx2_f64[FC_WGRAD_KB_MAX + 1] = {
    NULL, wgrad1_f64, wgrad2_f64, wgrad3_f64
};

#else /* not x86 with GCC or Clang: fc_simd_avx2() is always 0, the tables are never read */

const fc_tile_kernel_f32 fc_tile_avx2_f32[FC_TILE_KB_MAX + 1] = {NULL};
const fc_tile_kernel_f64 fc_tile_avx2_f64[FC_TILE_KB_MAX + 1] = {NULL};
const fc_wgrad_kernel_f32 fc_wgrad_avx2_f32[FC_WGRAD_KB_MAX + 1] = {NULL};
const fc_wgrad_kernel_f64 fc_wgrad_avx2_f64[FC_WGRAD_KB_MAX + 1] = {NULL};

#endif
