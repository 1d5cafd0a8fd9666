/* conv_direct_generic_impl.h: the portable micro-kernels for one element type.
 * Included by conv_direct_generic.c with REAL and FN(name) defined. The lane counts
 * mirror the AVX2 kernels (a "vector" is 32 bytes), so both paths cut work the same way. */

/* y <- tile (kb, vw) through the strip map. */
static void FN(store_map)(REAL *y, const fc_strip_map *map, const REAL *tile, int kb, int vw)
{
    for (int s = 0; s < map->nseg; s++) {
        for (int k = 0; k < kb; k++) {
            REAL *dst = y + map->base[s] + k * map->ldk;
            for (int j = map->lo[s]; j < map->hi[s]; j++) {
                dst[j] = tile[k * vw + j];
            }
        }
    }
}

/* tile (KB filters, VW pixels) = bias + sum over taps of w[t][k] * x[off[t] + j]. KB and
 * VW are constants in every caller, so the loops unroll and vectorise. */
static inline void FN(tile)(const int KB, const int VW, REAL *y, const fc_strip_map *map,
                            const REAL *x, const int64_t *off, int64_t ntaps, const REAL *w,
                            const REAL *bias)
{
    REAL acc[FC_TILE_KB_MAX * FC_TILE_VW_MAX];
    for (int k = 0; k < KB; k++) {
        for (int j = 0; j < VW; j++) {
            acc[k * VW + j] = bias[k];
        }
    }
    for (int64_t t = 0; t < ntaps; t++) {
        const REAL *xt = x + off[t];
        const REAL *wt = w + t * KB;
        for (int k = 0; k < KB; k++) {
            for (int j = 0; j < VW; j++) {
                acc[k * VW + j] += wt[k] * xt[j];
            }
        }
    }
    FN(store_map)(y, map, acc, KB, VW);
}

#define FC_GENERIC_TILE(KB)                                                                 \
    static void FN(tile##KB)(REAL *y, const fc_strip_map *map, const REAL *x,               \
                             const int64_t *off, int64_t ntaps, const REAL *w,              \
                             const REAL *bias)                                              \
    {                                                                                       \
        FN(tile)(KB, FC_TILE_VW(KB, sizeof(REAL)), y, map, x, off, ntaps, w, bias);         \
    }
FC_GENERIC_TILE(1)
FC_GENERIC_TILE(2)
FC_GENERIC_TILE(3)
FC_GENERIC_TILE(4)
FC_GENERIC_TILE(5)
FC_GENERIC_TILE(6)
#undef FC_GENERIC_TILE

const FN(fc_tile_kernel) FN(fc_tile_generic)[FC_TILE_KB_MAX + 1] = {
    NULL, FN(tile1), FN(tile2), FN(tile3), FN(tile4), FN(tile5), FN(tile6)
};

/* dw (KB filters, TB taps) += the band's dy (KB, rows, Q) . x windows, one VL-lane partial
 * sum per accumulator, the last Q % VL columns one by one. */
static inline void FN(wgrad)(const int KB, const int TB, REAL *dw, int64_t ldw, int nt,
                             const REAL *dy, int64_t ldk, int64_t ldy, const REAL *x,
                             const int64_t *off, int64_t pitch, int64_t rows, int64_t Q)
{
    enum { VL = 32 / sizeof(REAL) };
    REAL acc[FC_WGRAD_KB_MAX][FC_WGRAD_TB_MAX][VL] = {{{0}}};
    const int64_t q_full = Q - Q % VL;
    for (int64_t i = 0; i < rows; i++) {
        const REAL *dy_row = dy + i * ldy;
        const REAL *x_row = x + i * pitch;
        for (int64_t q = 0; q < q_full; q += VL) {
            for (int k = 0; k < KB; k++) {
                for (int t = 0; t < TB; t++) {
                    for (int l = 0; l < VL; l++) {
                        acc[k][t][l] += dy_row[k * ldk + q + l] * x_row[off[t] + q + l];
                    }
                }
            }
        }
        for (int64_t q = q_full; q < Q; q++) {
            for (int k = 0; k < KB; k++) {
                for (int t = 0; t < TB; t++) {
                    acc[k][t][q - q_full] += dy_row[k * ldk + q] * x_row[off[t] + q];
                }
            }
        }
    }
    for (int k = 0; k < KB; k++) {
        for (int t = 0; t < nt; t++) {
            REAL sum = 0;
            for (int l = 0; l < VL; l++) {
                sum += acc[k][t][l];
            }
            dw[k * ldw + t] += sum;
        }
    }
}

#define FC_GENERIC_WGRAD(KB)                                                                \
    static void FN(wgrad##KB)(REAL *dw, int64_t ldw, int nt, const REAL *dy, int64_t ldk,   \
                              int64_t ldy, const REAL *x, const int64_t *off, int64_t pitch, \
                              int64_t rows, int64_t Q)                                      \
    {                                                                                       \
        FN(wgrad)(KB, FC_WGRAD_TB(KB), dw, ldw, nt, dy, ldk, ldy, x, off, pitch, rows, Q);  \
    }
FC_GENERIC_WGRAD(1)
FC_GENERIC_WGRAD(2)
FC_GENERIC_WGRAD(3)
#undef FC_GENERIC_WGRAD

const FN(fc_wgrad_kernel) FN(fc_wgrad_generic)[FC_WGRAD_KB_MAX + 1] = {
    NULL, FN(wgrad1), FN(wgrad2), FN(wgrad3)
};
