/*
 * conv_winograd_shuffle.h: the two transposes of a float32 Winograd F(4x4, 3x3) tile block
 * by AVX shuffles, eight tiles at a time, for the AVX2 and AVX-512 blocks
 * (conv_winograd_block_impl.h includes this when FC_TEMPLATE_SHUFFLES is 1).
 *
 * The transforms and GEMMs hold one tile per vector lane; the image holds a tile's pixels
 * side by side. Moving between the two value by value costs 36 scalar loads and stores per
 * tile and channel in and 16 per tile and filter out, and a branch per value for border
 * tiles. Here each is a row load or store per tile and an 8 x 8 (in) or 4 x 8 (out)
 * transpose in registers; the image's zero padding is a load mask, not a branch per value.
 * Each tile's rows, mask and shift are worked out once per panel (patches8_plan) and serve
 * every channel. docs/PERFORMANCE.md ("Winograd") has the measured gains.
 *
 * Needs, from the block template: REAL = float, WG_ALPHA = 6, WG_M = 4, NR (a multiple of
 * 8), FN, ISA, FC_TEMPLATE_TARGET and the panel geometry.
 */
#include <immintrin.h>

/* Lanes [0, n) of 8 set (all bits), the others clear: a mask for maskload/maskstore. */
static inline FC_TEMPLATE_TARGET __m256i FN(ISA(first_lanes))(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Where 8 tiles of a panel read their input patches: worked out once per panel, used for
 * every channel (per channel, this set-up would be half of the gather's instructions). */
typedef struct {
    const float *first[8];      /* the tile's first pixel inside the image (row a_lo,
                                 * column lo) in channel 0 */
    __m256i mask[8];            /* the patch columns inside the image, from lane 0 */
    __m256i shift[8];           /* a permutation moving them to lanes lo.. */
    int lo[8], a_lo[8], a_hi[8];    /* [a_lo, a_hi): the patch rows inside the image */
} FN(ISA(patches8));

static inline FC_TEMPLATE_TARGET void FN(ISA(patches8_plan))(FN(ISA(patches8)) *r, const float *x,
                                    const FN(ISA(panel_geometry)) *g, const wg_plan *pl, int j0)
{
    const int64_t W = pl->W;
    for (int j = 0; j < 8; j++) {
        const int t = j0 + j;
        const int64_t iw = g->iw[t], ih = g->ih[t];
        r->lo[j] = iw < 0 ? (int)(iw < -WG_ALPHA ? WG_ALPHA : -iw) : 0;
        const int hi = W - iw < WG_ALPHA ? (int)(W - iw < r->lo[j] ? r->lo[j] : W - iw)
                                         : WG_ALPHA;
        r->a_lo[j] = ih < 0 ? (int)(ih < -WG_ALPHA ? WG_ALPHA : -ih) : 0;
        r->a_hi[j] = g->rows[t] == 0 ? 0
                     : pl->H - ih < WG_ALPHA ? (int)(pl->H - ih < 0 ? 0 : pl->H - ih)
                                             : WG_ALPHA;
        if (hi == r->lo[j] || r->a_hi[j] <= r->a_lo[j]) {  /* nothing in the image */
            r->a_lo[j] = r->a_hi[j] = 0;
        }
        r->mask[j] = FN(ISA(first_lanes))(hi - r->lo[j]);
        r->shift[j] = _mm256_sub_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                       _mm256_set1_epi32(r->lo[j]));
        /* A pointer only to a pixel of the image (rows outside it are never loaded). */
        r->first[j] = r->a_hi[j] == 0 ? x
                      : x + g->n[t] * pl->C * pl->H * W + (ih + r->a_lo[j]) * W + iw + r->lo[j];
    }
}

/* d[(a*ALPHA + b)*NR + j0 + j] <- the ALPHA x ALPHA input patches of the 8 tiles of r
 * (tiles j0 .. j0 + 7 of the panel), zero outside the image, in the channel `channel`
 * elements after channel 0; next: from there to the next channel (0 if none). */
static inline FC_TEMPLATE_TARGET
void FN(ISA(gather8))(float *restrict d, const FN(ISA(patches8)) *r, int64_t channel,
                      int64_t next, int64_t W, int j0)
{
    for (int a = 0; a < WG_ALPHA; a++) {
        __m256 v[8];            /* v[j]: row a of tile j's patch, columns in lanes 0..5 */
        for (int j = 0; j < 8; j++) {
            if (a < r->a_lo[j] || a >= r->a_hi[j]) {
                v[j] = _mm256_setzero_ps();
                continue;
            }
            const float *src = r->first[j] + channel + (a - r->a_lo[j]) * W;
            /* Each channel's rows are a new stream for the hardware prefetcher, too short
             * for it to pick up: ask for the next channel's rows while this one's are
             * transposed. */
            if (next) {
                _mm_prefetch((const char *)(src + next), _MM_HINT_T0);
            }
            v[j] = _mm256_maskload_ps(src, r->mask[j]);
            if (r->lo[j] > 0) {    /* lanes past hi - lo are zero: the permutation wraps them */
                v[j] = _mm256_permutevar8x32_ps(v[j], r->shift[j]);
            }
        }
        /* 8 x 8 transpose: column b of the rows into one vector, tile j in lane j */
        const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
        const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
        const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
        const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
        const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
        const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
        float *row = d + a * WG_ALPHA * NR + j0;
        _mm256_storeu_ps(row + 0 * NR, _mm256_permute2f128_ps(s0, s4, 0x20));
        _mm256_storeu_ps(row + 1 * NR, _mm256_permute2f128_ps(s1, s5, 0x20));
        _mm256_storeu_ps(row + 2 * NR, _mm256_permute2f128_ps(s2, s6, 0x20));
        _mm256_storeu_ps(row + 3 * NR, _mm256_permute2f128_ps(s3, s7, 0x20));
        _mm256_storeu_ps(row + 4 * NR, _mm256_permute2f128_ps(s0, s4, 0x31));
        _mm256_storeu_ps(row + 5 * NR, _mm256_permute2f128_ps(s1, s5, 0x31));
    }
}

/* The m x m outputs of tiles j0 .. j0 + 7, out[(i*m + i2)*NR + j], plus bk, into filter
 * plane y (rows of Q): a tile's row of m outputs is one store, cut to the image at its
 * edges; tiles with no rows (past the last) are skipped. */
static inline FC_TEMPLATE_TARGET
void FN(ISA(store8))(float *y, const float *out, const FN(ISA(panel_geometry)) *g, int j0,
                     float bk, int relu, int64_t Q)
{
    const __m256 b = _mm256_set1_ps(bk);
    for (int i = 0; i < WG_M; i++) {
        const float *o = out + i * WG_M * NR + j0;
        __m256 r0 = _mm256_add_ps(_mm256_loadu_ps(o + 0 * NR), b);
        __m256 r1 = _mm256_add_ps(_mm256_loadu_ps(o + 1 * NR), b);
        __m256 r2 = _mm256_add_ps(_mm256_loadu_ps(o + 2 * NR), b);
        __m256 r3 = _mm256_add_ps(_mm256_loadu_ps(o + 3 * NR), b);
        if (relu) {   /* fc_relu: max with 0 first keeps NaN and -0.0 (the second operand) */
            const __m256 zero = _mm256_setzero_ps();
            r0 = _mm256_max_ps(zero, r0);
            r1 = _mm256_max_ps(zero, r1);
            r2 = _mm256_max_ps(zero, r2);
            r3 = _mm256_max_ps(zero, r3);
        }
        /* 4 x 8 transpose: u[j % 4] holds tile j's row in its lane half j / 4 */
        const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
        const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
        const __m256 u[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xEE),
                             _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xEE)};
        for (int j = 0; j < 8; j++) {
            const int t = j0 + j;
            if (i >= g->rows[t]) {
                continue;
            }
            const __m128 v = j < 4 ? _mm256_castps256_ps128(u[j % 4])
                                   : _mm256_extractf128_ps(u[j % 4], 1);
            float *dst = y + g->y_off[t] + i * Q;
            if (g->cols[t] == WG_M) {
                _mm_storeu_ps(dst, v);
            } else {
                _mm_maskstore_ps(dst, _mm256_castsi256_si128(FN(ISA(first_lanes))(g->cols[t])), v);
            }
        }
    }
}
