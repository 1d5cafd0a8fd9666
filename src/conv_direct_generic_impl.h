/* conv_direct_generic_impl.h: the portable micro-kernels for one element type (template.h:
 * REAL, FN), and their table fc_direct_kernels_<type>_generic. Contracts in
 * conv_direct_kernels.h; VL mirrors the AVX2 lane count. The block sizes are constants
 * in every caller, so the loops unroll and vectorise for whatever the build targets. */
#include "conv_direct_kernels_impl.h"

enum { FN(VL) = 32 / sizeof(REAL) };

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

/* acc (KB, VW) += sum over taps of w[t*KB + k] * x[off[t] + j] */
static inline void FN(tile_taps)(const int KB, const int VW, REAL *acc, const REAL *x,
                                 const int64_t *off, int64_t ntaps, const REAL *w)
{
    for (int64_t t = 0; t < ntaps; t++) {
        const REAL *xt = x + off[t];
        const REAL *wt = w + t * KB;
        for (int k = 0; k < KB; k++) {
            for (int j = 0; j < VW; j++) {
                acc[k * VW + j] += wt[k] * xt[j];
            }
        }
    }
}

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
    FN(tile_taps)(KB, VW, acc, x, off, ntaps, w);
    FN(store_map)(y, map, acc, KB, VW);
}

static inline void FN(tile_add)(const int KB, const int VW, REAL *y, const int64_t *yoff,
                                const REAL *x, const int64_t *off, int64_t ntaps,
                                const REAL *w)
{
    REAL acc[FC_TILE_KB_MAX * FC_TILE_VW_MAX];
    for (int k = 0; k < KB; k++) {
        for (int j = 0; j < VW; j++) {
            acc[k * VW + j] = y[yoff[k] + j];
        }
    }
    FN(tile_taps)(KB, VW, acc, x, off, ntaps, w);
    for (int k = 0; k < KB; k++) {
        for (int j = 0; j < VW; j++) {
            y[yoff[k] + j] = acc[k * VW + j];
        }
    }
}

/* dw (KB filters, TB taps) += dy . x over a band, VL partial sums per accumulator, the
 * last Q % VL columns of a row one by one. */
static inline void FN(wgrad)(const int KB, const int TB, REAL *dw, int64_t ldw, int nt,
                             const REAL *dy, int64_t ldk, int64_t ldy, const REAL *x,
                             const int64_t *off, int64_t pitch, int64_t rows, int64_t Q)
{
    REAL acc[FC_WGRAD_KB_MAX][FC_WGRAD_TB_MAX][FN(VL)] = {{{0}}};
    const int64_t q_full = Q - Q % FN(VL);
    for (int64_t i = 0; i < rows; i++) {
        const REAL *dy_row = dy + i * ldy;
        const REAL *x_row = x + i * pitch;
        for (int64_t q = 0; q < q_full; q += FN(VL)) {
            for (int k = 0; k < KB; k++) {
                for (int t = 0; t < TB; t++) {
                    for (int l = 0; l < FN(VL); l++) {
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
        for (int t = 0; t < TB && t < nt; t++) {
            REAL sum = 0;
            for (int l = 0; l < FN(VL); l++) {
                sum += acc[k][t][l];
            }
            dw[k * ldw + t] += sum;
        }
    }
}

/* dwt (TB taps, NV*VL filters) += x (one value per tap) * dyt (NV*VL filters), pixel by
 * pixel. */
static inline void FN(wgradk)(const int NV, const int TB, REAL *dwt, int64_t ldt, int nt,
                              const REAL *dyt, int64_t ldv, const REAL *x, const int64_t *off,
                              int64_t pitch, int64_t rows, int64_t Q)
{
    enum { KW = FC_WGRADK_NV_MAX * FN(VL) };
    const int nk = NV * FN(VL);
    REAL acc[FC_WGRAD_TB_MAX][KW] = {{0}};
    for (int64_t i = 0; i < rows; i++) {
        const REAL *dy_row = dyt + i * Q * ldv;
        const REAL *x_row = x + i * pitch;
        for (int64_t q = 0; q < Q; q++) {
            for (int t = 0; t < TB; t++) {
                const REAL xv = x_row[off[t] + q];
                for (int k = 0; k < nk; k++) {
                    acc[t][k] += xv * dy_row[q * ldv + k];
                }
            }
        }
    }
    for (int t = 0; t < TB && t < nt; t++) {
        for (int k = 0; k < nk; k++) {
            dwt[t * ldt + k] += acc[t][k];
        }
    }
}

/* tilek: PB pixels x NV*VL filters, from the bias; the output is filters-major. */
static inline void FN(tilek)(const int NV, const int PB, REAL *y, int64_t ldk, int nk,
                             const REAL *x, const int64_t *off, int64_t ntaps, const REAL *w,
                             int64_t ldw, const REAL *bias)
{
    enum { KW = FC_TILEK_NV_MAX * FN(VL) };
    const int nl = NV * FN(VL);
    REAL acc[FC_TILEK_PB_MAX][KW];
    for (int j = 0; j < PB; j++) {
        for (int k = 0; k < nl; k++) {
            acc[j][k] = bias[k];
        }
    }
    for (int64_t t = 0; t < ntaps; t++) {
        const REAL *xt = x + off[t];
        const REAL *wt = w + t * ldw;
        for (int j = 0; j < PB; j++) {
            for (int k = 0; k < nl; k++) {
                acc[j][k] += xt[j] * wt[k];
            }
        }
    }
    for (int k = 0; k < nk; k++) {
        for (int j = 0; j < PB; j++) {
            y[k * ldk + j] = acc[j][k];
        }
    }
}

/* One function per block size (KB, or NV for wgradk), so the sizes are constants. */
#define FC_GENERIC_TILE(KB, NV)                                                             \
    static void FN(tile##KB)(REAL *y, const fc_strip_map *map, const REAL *x,               \
                             const int64_t *off, int64_t ntaps, const REAL *w,              \
                             const REAL *bias)                                              \
    {                                                                                       \
        FN(tile)(KB, NV * FN(VL), y, map, x, off, ntaps, w, bias);                          \
    }                                                                                       \
    static void FN(tile_add##KB)(REAL *y, const int64_t *yoff, const REAL *x,               \
                                 const int64_t *off, int64_t ntaps, const REAL *w)          \
    {                                                                                       \
        FN(tile_add)(KB, NV * FN(VL), y, yoff, x, off, ntaps, w);                           \
    }
FC_TILE_SHAPES(FC_GENERIC_TILE)
#undef FC_GENERIC_TILE

#define FC_GENERIC_WGRAD(N, TB)                                                             \
    static void FN(wgrad##N)(REAL *dw, int64_t ldw, int nt, const REAL *dy, int64_t ldk,    \
                             int64_t ldy, const REAL *x, const int64_t *off, int64_t pitch, \
                             int64_t rows, int64_t Q)                                       \
    {                                                                                       \
        FN(wgrad)(N, TB, dw, ldw, nt, dy, ldk, ldy, x, off, pitch, rows, Q);                \
    }                                                                                       \
    static void FN(wgradk##N)(REAL *dwt, int64_t ldt, int nt, const REAL *dyt, int64_t ldv, \
                              const REAL *x, const int64_t *off, int64_t pitch,             \
                              int64_t rows, int64_t Q)                                      \
    {                                                                                       \
        FN(wgradk)(N, TB, dwt, ldt, nt, dyt, ldv, x, off, pitch, rows, Q);                  \
    }
FC_WGRAD_SHAPES(FC_GENERIC_WGRAD)
#undef FC_GENERIC_WGRAD

#define FC_TILEK(NV, PB)                                                                    \
    static void FN(tilek_##NV##_##PB)(REAL *y, int64_t ldk, int nk, const REAL *x,          \
                                      const int64_t *off, int64_t ntaps, const REAL *w,     \
                                      int64_t ldw, const REAL *bias)                        \
    {                                                                                       \
        FN(tilek)(NV, PB, y, ldk, nk, x, off, ntaps, w, ldw, bias);                         \
    }
FC_TILEK_ALL
#undef FC_TILEK

/* transpose in squares of 8 x 8: each square's rows and columns stay in L1. */
static void FN(transpose)(REAL *dst, int64_t ldd, const REAL *src, int64_t lds,
                          int64_t rows, int64_t cols)
{
    enum { B = 8 };
    for (int64_t i0 = 0; i0 < rows; i0 += B) {
        const int64_t i1 = i0 + B < rows ? i0 + B : rows;
        for (int64_t j0 = 0; j0 < cols; j0 += B) {
            const int64_t j1 = j0 + B < cols ? j0 + B : cols;
            for (int64_t i = i0; i < i1; i++) {
                for (int64_t j = j0; j < j1; j++) {
                    dst[j * ldd + i] = src[i * lds + j];
                }
            }
        }
    }
}

/* The portable kernels mirror AVX2: 32-byte vectors and 16 vector registers. */
const FN(fc_direct_kernels) FC_PASTE(FN(fc_direct_kernels), generic) = {
    .lanes = FN(VL),
    .tilek_acc = FC_TILEK_ACC_16_REGISTERS,
    FC_DIRECT_KERNEL_TABLES,
};
