/*
 * conv_winograd_block_impl.h: the filter transform (wg_filters_<isa>_<type>) and one block
 * of Winograd tiles (wg_block_<isa>_<type>), declared in conv_winograd.h, written once and
 * included by conv_winograd.c (portable) and the per-ISA files for each precision. The
 * transforms are plain C loops along NR tiles (or MR filters) at once, which the compiler
 * vectorises at the includer's target; the GEMMs run the micro-kernels of gemm_kernels.h.
 * Moving tiles between the image and those loops' one-tile-per-lane layout is a transpose,
 * which the compiler cannot vectorise: float32 on AVX2 and AVX-512 does it with the
 * shuffles of conv_winograd_shuffle.h, the other instances value by value (gather, store).
 *
 * Template parameters (template.h: REAL, FN, ISA, and):
 *     FC_TEMPLATE_MR, FC_TEMPLATE_NR   the micro-kernel's tile, compile-time so the loops
 *                                      vectorise
 *     FC_TEMPLATE_KERNEL               the GEMM micro-kernel (gemm_kernels.h)
 *     FC_TEMPLATE_TARGET               a target attribute, or nothing
 *     FC_TEMPLATE_SHUFFLES             1 for float32 with AVX2 or more: the transposes of
 *                                      conv_winograd_shuffle.h; 0 elsewhere
 * MR and NR below are short names for the tile, undefined at the end of the file.
 *
 * Layout of one block of T = pl->block tiles, in panels of NR tiles:
 *   V[xi][panel][c][j]  transformed input (kc channels of this pass): each (xi, panel) is a
 *                       kc x NR B panel for the micro-kernel;
 *   M[xi][k][t]         GEMM outputs (kb filters of this pass), row stride T.
 */
#define MR FC_TEMPLATE_MR
#define NR FC_TEMPLATE_NR

/* Where the NR tiles of a panel read and write: the image, the top-left input pixel, the
 * offset of the top-left output pixel in channel 0 of y, and how many of the tile's m x m
 * outputs lie inside the image (0 rows for tiles past the last, in the last block). */
typedef struct {
    int64_t n[NR], ih[NR], iw[NR], y_off[NR];
    int rows[NR], cols[NR], interior[NR];
} FN(ISA(panel_geometry));

static inline FC_TEMPLATE_TARGET
void FN(ISA(locate))(FN(ISA(panel_geometry)) *g, const wg_plan *pl, int64_t t)
{
    const int64_t per_image = pl->tiles_h * pl->tiles_w;
    for (int j = 0; j < NR; j++, t++) {
        const int64_t n = t / per_image, r = t % per_image;
        const int64_t op = r / pl->tiles_w * WG_M, oq = r % pl->tiles_w * WG_M;
        const int present = t < pl->tiles;
        g->n[j] = n;
        g->ih[j] = op - pl->pad_top;
        g->iw[j] = oq - pl->pad_left;
        g->y_off[j] = n * pl->K * pl->P * pl->Q + op * pl->Q + oq;
        g->rows[j] = !present ? 0 : pl->P - op < WG_M ? (int)(pl->P - op) : WG_M;
        g->cols[j] = pl->Q - oq < WG_M ? (int)(pl->Q - oq) : WG_M;
        g->interior[j] = present && g->ih[j] >= 0 && g->ih[j] + WG_ALPHA <= pl->H
                         && g->iw[j] >= 0 && g->iw[j] + WG_ALPHA <= pl->W;
    }
}

#if FC_TEMPLATE_SHUFFLES
#include "conv_winograd_shuffle.h"
#endif

/* d[a][b][j] <- the ALPHA x ALPHA input patch of tile j in channel c (zero outside).
 * (The AVX blocks use gather8 instead.) */
static inline FC_TEMPLATE_TARGET
void FN(ISA(gather))(REAL *restrict d, const REAL *x, const FN(ISA(panel_geometry)) *g,
                     const wg_plan *pl, int64_t c)
{
    const int64_t W = pl->W;
    for (int j = 0; j < NR; j++) {
        const REAL *plane = x + (g->n[j] * pl->C + c) * pl->H * W;
        if (g->interior[j]) {
            const REAL *src = plane + g->ih[j] * W + g->iw[j];
            for (int a = 0; a < WG_ALPHA; a++) {
                for (int b = 0; b < WG_ALPHA; b++) {
                    d[(a * WG_ALPHA + b) * NR + j] = src[a * W + b];
                }
            }
            continue;
        }
        /* A border tile (or one past the last): the columns [lo, hi) of the patch that lie
         * inside the image, in the rows that do. */
        const int64_t iw = g->iw[j];
        const int lo = iw < 0 ? (int)(iw < -WG_ALPHA ? WG_ALPHA : -iw) : 0;
        const int hi = W - iw < WG_ALPHA ? (int)(W - iw < 0 ? 0 : W - iw) : WG_ALPHA;
        for (int a = 0; a < WG_ALPHA; a++) {
            const int64_t ih = g->ih[j] + a;
            const int row_in = g->rows[j] > 0 && ih >= 0 && ih < pl->H;
            for (int b = 0; b < WG_ALPHA; b++) {
                d[(a * WG_ALPHA + b) * NR + j] =
                    row_in && b >= lo && b < hi ? plane[ih * W + iw + b] : 0;
            }
        }
    }
}

/* The 1-D transform of one column or row of a tile: A^T (ALPHA -> m values) when output,
 * else B^T (ALPHA -> ALPHA). Callers pass output as a constant, so each inlined copy holds
 * its one transform. */
static inline FC_TEMPLATE_TARGET __attribute__((always_inline))
void FN(ISA(transform_1d))(const int output, REAL *restrict o, const REAL *restrict v)
{
    if (output) {
        WG_OUTPUT_1D(o, v);
    } else {
        WG_INPUT_1D(o, v);
    }
}

/* The first pass of a 2-D transform (output: A^T m; else B^T d) for each tile j:
 * tmp[(i*ALPHA + b) * NR + j] <- the 1-D transform of column b of the tile, whose element
 * (a, b) is src[(a*ALPHA + b) * ss + j]. */
static inline FC_TEMPLATE_TARGET __attribute__((always_inline))
void FN(ISA(columns))(const int output, REAL *restrict tmp, const REAL *restrict src,
                      int64_t ss)
{
    const int n = output ? WG_M : WG_ALPHA;
    for (int b = 0; b < WG_ALPHA; b++) {
        for (int j = 0; j < NR; j++) {
            REAL col[WG_ALPHA], o[WG_ALPHA];
            for (int a = 0; a < WG_ALPHA; a++) {
                col[a] = src[(a * WG_ALPHA + b) * ss + j];
            }
            FN(ISA(transform_1d))(output, o, col);
            for (int i = 0; i < n; i++) {
                tmp[(i * WG_ALPHA + b) * NR + j] = o[i];
            }
        }
    }
}

/* The second pass (output: (A^T m) A; else (B^T d) B) for each tile j of the first pass's
 * tmp: out[(i*n + i2) * os + j] <- the 1-D transform of row i, n x n values per tile. The
 * output's stride is NR, a constant, and it stores in place; the input's stride os is known
 * at run time only, so its results go through rows[][] and every store is a loop along j
 * alone: GCC vectorises those, not a store at a run-time stride inside the transform. */
static inline FC_TEMPLATE_TARGET __attribute__((always_inline))
void FN(ISA(rows))(const int output, REAL *restrict out, int64_t os, const REAL *restrict tmp)
{
    const int n = output ? WG_M : WG_ALPHA;
    for (int i = 0; i < n; i++) {
        REAL rows[WG_ALPHA][NR];
        for (int j = 0; j < NR; j++) {
            REAL row[WG_ALPHA], o[WG_ALPHA];
            for (int b = 0; b < WG_ALPHA; b++) {
                row[b] = tmp[(i * WG_ALPHA + b) * NR + j];
            }
            FN(ISA(transform_1d))(output, o, row);
            for (int i2 = 0; i2 < n; i2++) {
                if (output) {
                    out[(i * n + i2) * NR + j] = o[i2];
                } else {
                    rows[i2][j] = o[i2];
                }
            }
        }
        if (output) {
            continue;
        }
        for (int i2 = 0; i2 < n; i2++) {
            REAL *restrict dst = out + (i * n + i2) * os;
            for (int j = 0; j < NR; j++) {
                dst[j] = rows[i2][j];
            }
        }
    }
}

/* out[(a*ALPHA + b) * os + j] <- (B^T d B)[a][b] for each tile j of d; tmp: scratch of
 * d's size. */
static inline FC_TEMPLATE_TARGET
void FN(ISA(input_2d))(REAL *restrict out, int64_t os, const REAL *restrict d,
                       REAL *restrict tmp)
{
    FN(ISA(columns))(0, tmp, d, NR);
    FN(ISA(rows))(0, out, os, tmp);
}

/* y[i][i2][j] (m x m x NR) <- (A^T m A) for each tile j of m[xi][j] (read at stride ms). */
static inline FC_TEMPLATE_TARGET
void FN(ISA(output_2d))(REAL *restrict y, const REAL *restrict m, int64_t ms,
                        REAL *restrict tmp)
{
    FN(ISA(columns))(1, tmp, m, ms);
    FN(ISA(rows))(1, y, NR, tmp);
}

/* The m x m outputs of the panel's tiles, out[(i*m + i2)*NR + j], plus bk, into the filter
 * plane y (rows of Q), cut to the image on its bottom and right edges. */
static inline FC_TEMPLATE_TARGET
void FN(ISA(store))(REAL *y, const REAL *out, const FN(ISA(panel_geometry)) *g, REAL bk,
                    int relu, int64_t Q)
{
#if FC_TEMPLATE_SHUFFLES
    for (int j0 = 0; j0 < NR; j0 += 8) {
        FN(ISA(store8))(y, out, g, j0, bk, relu, Q);
    }
#else
    for (int j = 0; j < NR; j++) {
        REAL *dst = y + g->y_off[j];
        if (g->rows[j] == WG_M && g->cols[j] == WG_M) {
            for (int i = 0; i < WG_M; i++) {
                for (int i2 = 0; i2 < WG_M; i2++) {
                    dst[i * Q + i2] = out[(i * WG_M + i2) * NR + j] + bk;
                }
            }
        } else {                        /* a tile on the bottom or right edge */
            for (int i = 0; i < g->rows[j]; i++) {
                for (int i2 = 0; i2 < g->cols[j]; i2++) {
                    dst[i * Q + i2] = out[(i * WG_M + i2) * NR + j] + bk;
                }
            }
        }
        for (int i = 0; relu && i < g->rows[j]; i++) {
            FN(fc_relu_span)(dst + i * Q, g->cols[j]);
        }
    }
#endif
}

FC_TEMPLATE_TARGET void FN(ISA(wg_filters))(REAL *u, const REAL *w, int64_t s_out, int64_t s_in,
                                 int flip, const wg_plan *pl, int64_t kp)
{
    const int64_t k0 = kp * MR;
    const int real_filters = pl->K - k0 < MR ? (int)(pl->K - k0) : MR;
    double g[9][MR] = {{0}};            /* taps of the panel's filters; zero past K */
    for (int64_t c = 0; c < pl->C; c++) {
        /* Each filter's 9 taps are contiguous in w, in order or reversed (flip): constant
         * offsets, where run-time tap strides ran out of registers in this gather. */
        for (int i = 0; i < real_filters; i++) {
            const REAL *taps = w + (k0 + i) * s_out + c * s_in;
            if (flip) {
                for (int t = 0; t < 9; t++) {
                    g[t][i] = (double)taps[8 - t];
                }
            } else {
                for (int t = 0; t < 9; t++) {
                    g[t][i] = (double)taps[t];
                }
            }
        }
        /* Along the MR filters of the panel at once, so the compiler vectorises. */
        double gt[WG_ALPHA * 3][MR];
        for (int s = 0; s < 3; s++) {               /* columns: G g */
            for (int i = 0; i < MR; i++) {
                double col[3] = {g[s][i], g[3 + s][i], g[6 + s][i]}, o[WG_ALPHA];
                WG_FILTER_1D(o, col);
                for (int a = 0; a < WG_ALPHA; a++) {
                    gt[a * 3 + s][i] = o[a];
                }
            }
        }
        REAL *dst = u + wg_filter_index(pl, 0, k0, c);
        for (int a = 0; a < WG_ALPHA; a++) {        /* rows: (G g) G^T */
            double ut[WG_ALPHA][MR];
            for (int i = 0; i < MR; i++) {
                double row[3] = {gt[a * 3][i], gt[a * 3 + 1][i], gt[a * 3 + 2][i]}, o[WG_ALPHA];
                WG_FILTER_1D(o, row);
                for (int b = 0; b < WG_ALPHA; b++) {
                    ut[b][i] = o[b];
                }
            }
            for (int b = 0; b < WG_ALPHA; b++) {    /* MR contiguous values per position */
                REAL *restrict out = dst + (a * WG_ALPHA + b) * pl->u_position;
                for (int i = 0; i < MR; i++) {
                    out[i] = (REAL)ut[b][i];
                }
            }
        }
    }
}

FC_TEMPLATE_TARGET void FN(ISA(wg_block))(REAL *y, const REAL *x, const REAL *u, const REAL *bias,
                               const wg_plan *pl, int64_t t0, REAL *work)
{
    const int64_t T = pl->block, C = pl->C, K = pl->K;
    const int64_t ntiles = pl->tiles - t0 < T ? pl->tiles - t0 : T;
    const int64_t panels = (ntiles + NR - 1) / NR;
    const int64_t m_position = pl->kb * T + WG_STRIDE_PAD;   /* M[xi] to M[xi + 1] */
    REAL *v = work;
    REAL *m = v + WG_POSITIONS * (pl->kc * T + WG_STRIDE_PAD);
    REAL *patch = m + WG_POSITIONS * m_position;     /* WG_POSITIONS x NR */
    REAL *tmp = patch + WG_POSITIONS * NR;           /* WG_POSITIONS x NR */

    for (int64_t k0 = 0; k0 < pl->kpanels * MR; k0 += pl->kb) {
        const int64_t kb = pl->kpanels * MR - k0 < pl->kb ? pl->kpanels * MR - k0 : pl->kb;
        for (int64_t c0 = 0; c0 < C; c0 += pl->kc) {
            const int64_t kc = C - c0 < pl->kc ? C - c0 : pl->kc;
            const int64_t v_position = panels * kc * NR + WG_STRIDE_PAD;
            /* V: each (xi, panel) a kc x NR B panel. */
            for (int64_t p = 0; p < panels; p++) {
                FN(ISA(panel_geometry)) g;
                FN(ISA(locate))(&g, pl, t0 + p * NR);
#if FC_TEMPLATE_SHUFFLES
                const int64_t in_plane = pl->H * pl->W;
                FN(ISA(patches8)) in8[NR / 8];
                for (int q = 0; q < NR / 8; q++) {
                    FN(ISA(patches8_plan))(&in8[q], x, &g, pl, 8 * q);
                }
#endif
                for (int64_t c = 0; c < kc; c++) {
#if FC_TEMPLATE_SHUFFLES
                    for (int q = 0; q < NR / 8; q++) {
                        FN(ISA(gather8))(patch, &in8[q], (c0 + c) * in_plane,
                                       c0 + c + 1 < C ? in_plane : 0, pl->W, 8 * q);
                    }
#else
                    FN(ISA(gather))(patch, x, &g, pl, c0 + c);
#endif
                    FN(ISA(input_2d))(v + (p * kc + c) * NR, v_position, patch, tmp);
                }
            }
            /* M[xi] (+)= U[xi] V[xi], one MR x NR tile at a time; the A panel stays in L1
             * across the block's B panels. */
            for (int64_t xi = 0; xi < WG_POSITIONS; xi++) {
                const REAL *vx = v + xi * v_position;
                for (int64_t k = 0; k < kb; k += MR) {
                    const REAL *a = u + wg_filter_index(pl, xi, k0 + k, c0);
                    REAL *mk = m + xi * m_position + k * T;
                    for (int64_t p = 0; p < panels; p++) {
                        FC_TEMPLATE_KERNEL(kc, a, vx + p * kc * NR, NR, mk + p * NR, T,
                                           c0 == 0 ? 0 : 1);
                    }
                }
            }
        }
        /* y <- A^T M A + bias for the real filters of this pass. */
        const int64_t k_end = k0 + kb < K ? k0 + kb : K, plane = pl->P * pl->Q, Q = pl->Q;
        for (int64_t p = 0; p < panels; p++) {
            FN(ISA(panel_geometry)) g;
            FN(ISA(locate))(&g, pl, t0 + p * NR);
            for (int64_t k = k0; k < k_end; k++) {
                const REAL bk = bias ? bias[k] : 0;
                FN(ISA(output_2d))(patch, m + (k - k0) * T + p * NR, m_position, tmp);
                FN(ISA(store))(y + k * plane, patch, &g, bk, pl->relu, Q);
            }
        }
    }
}

#undef MR
#undef NR
