/* conv_winograd_weight_transforms_impl.h: the data movement and transforms of the
 * F(4x4, 3x3) weight gradient (conv_winograd_weight_impl.h), included by
 * conv_winograd_weight.c once per element type and instruction set (template.h: REAL, FN,
 * ISA; FC_TEMPLATE_TARGET, a target attribute or nothing, and optionally
 * FC_TEMPLATE_TRANSPOSE16(out, ldo, in, ldi), a 16 x 16 block transpose). Only adds,
 * subtracts, small integer multiples and copies, each channel on its own: the wider
 * instruction sets only vectorise the channel loops better (where the compiler fuses a
 * multiple and an add, they round it once). */

/* band (rows, width, planes) <- rows [row, row + rows) and columns [col, col + width) of
 * every one of `planes` (H x W) planes starting at src (plane stride H*W); zero outside the
 * planes. The channel-minor copy the transforms read. */
static FC_TEMPLATE_TARGET void FN(ISA(winograd_band))(REAL *restrict band, const REAL *src,
                                                      int64_t planes, int64_t H, int64_t W,
                                                      int64_t row, int64_t rows, int64_t col,
                                                      int64_t width)
{
    const int64_t j_lo = col < 0 ? -col : 0;
    const int64_t j_hi = W - col < width ? W - col : width;
    const int64_t a_lo = row < 0 ? -row : 0;
    const int64_t a_hi = H - row < rows ? H - row : rows;
    for (int64_t a = 0; a < rows; a++) {
        REAL *dst = band + a * width * planes;
        if (a < a_lo || a >= a_hi || j_lo >= j_hi) {
            memset(dst, 0, (size_t)(width * planes) * sizeof(REAL));
            continue;
        }
        if (j_lo > 0) {
            memset(dst, 0, (size_t)(j_lo * planes) * sizeof(REAL));
        }
        if (j_hi < width) {
            memset(dst + j_hi * planes, 0, (size_t)((width - j_hi) * planes) * sizeof(REAL));
        }
    }
    if (j_lo >= j_hi) {
        return;
    }
    /* Sixteen planes at a time: each (row, column) gets one 64-byte run of channels written
     * at once, and the sixteen source rows being read stay in L1. */
    for (int64_t p0 = 0; p0 < planes; p0 += 16) {
        const int64_t p1 = p0 + 16 < planes ? p0 + 16 : planes;
        for (int64_t a = a_lo; a < a_hi; a++) {
            const REAL *in = src + (p0 * H + row + a) * W + col;
            REAL *out = band + a * width * planes;
            int64_t j = j_lo;
#ifdef FC_TEMPLATE_TRANSPOSE16
            /* Whole 16 x 16 blocks in registers, where the includer has a transpose. */
            for (; p1 - p0 == 16 && j + 16 <= j_hi; j += 16) {
                FC_TEMPLATE_TRANSPOSE16(out + j * planes + p0, planes, in + j, H * W);
            }
#endif
            for (; j < j_hi; j++) {
                for (int64_t p = p0; p < p1; p++) {
                    out[j * planes + p] = in[(p - p0) * H * W + j];
                }
            }
        }
    }
}

/* e = the 1-D transform of d: A d (d holds m values) for an output gradient, else B^T d
 * (ALPHA values). A macro, not a function: the arrays must stay values the vectoriser
 * can keep in registers, which it does not once their address is passed. */
#ifndef WG_WEIGHT_1D
#define WG_WEIGHT_1D(grad, e, d)    \
    do {                            \
        if (grad) {                 \
            WG_GRAD_1D(e, d);       \
        } else {                    \
            WG_INPUT_1D(e, d);      \
        }                           \
    } while (0)
#endif

/* One pass of a 2-D transform, along the channels c < C: dst[i * ds + c] (i < ALPHA) <- the
 * 1-D transform of src[j * ss + c] (j < m for an output gradient, else j < ALPHA). The loop
 * body is one 1-D transform written out, which the compiler vectorises (a loop inside the
 * body would stop it). */
static inline FC_TEMPLATE_TARGET __attribute__((always_inline))
void FN(ISA(weight_pass))(const int grad, REAL *restrict dst, int64_t ds,
                          const REAL *restrict src, int64_t ss, int64_t C)
{
#pragma omp simd
    for (int64_t c = 0; c < C; c++) {
        const REAL d[WG_ALPHA] = {src[c], src[ss + c], src[2 * ss + c], src[3 * ss + c],
                                  grad ? 0 : src[4 * ss + c], grad ? 0 : src[5 * ss + c]};
        REAL e[WG_ALPHA];
        WG_WEIGHT_1D(grad, e, d);
        dst[c] = e[0];
        dst[ds + c] = e[1];
        dst[2 * ds + c] = e[2];
        dst[3 * ds + c] = e[3];
        dst[4 * ds + c] = e[4];
        dst[5 * ds + c] = e[5];
    }
}

/* out (36 positions `position` apart, tiles, channels) at tiles [tile0, tile0 + tiles_w)
 * <- the 2-D transform of each tile of one tile row, from band, channel-minor: B^T d B of
 * the 6x6 input patches (grad 0; band (6, 4*tiles_w + 2, channels)), or A dy A^T of the 4x4
 * output-gradient tiles (grad 1; band (4, 4*tiles_w, channels)). First along the tile's
 * columns into tmp (36*channels), then along its rows. */
static inline FC_TEMPLATE_TARGET __attribute__((always_inline))
void FN(ISA(weight_tile_row))(const int grad, REAL *restrict out, int64_t position,
                              int64_t tile0, const REAL *restrict band, int64_t tiles_w,
                              int64_t channels, REAL *restrict tmp)
{
    const int n = grad ? WG_M : WG_ALPHA;                       /* the tile's side */
    const int64_t C = channels, rs = (WG_M * tiles_w + (grad ? 0 : 2)) * C;
    for (int64_t tw = 0; tw < tiles_w; tw++) {
        const REAL *restrict tile = band + WG_M * tw * C;
        /* tmp[a][b] = the transform of column b of the tile */
        for (int b = 0; b < n; b++) {
            FN(ISA(weight_pass))(grad, tmp + b * C, n * C, tile + b * C, rs, C);
        }
        /* position (a, b) = the transform of row a of tmp */
        for (int a = 0; a < WG_ALPHA; a++) {
            FN(ISA(weight_pass))(grad, out + WG_ALPHA * a * position + (tile0 + tw) * C,
                                 position, tmp + n * a * C, C, C);
        }
    }
}

/* u <- B^T d B and v <- A dy A^T of filters [k0, k1) (the plan's layout, kk = k1 - k0
 * filters) of the tiles in tile rows [row0, row1), one image's run of rows at a time;
 * xband, dband and tmp are scratch of the plan's sizes. */
static FC_TEMPLATE_TARGET void FN(ISA(winograd_chunk_tiles))(REAL *u, REAL *v, REAL *xband,
                                                             REAL *dband, REAL *tmp,
                                                             const REAL *x,
                                                             const REAL *dy, int64_t row0,
                                                             int64_t row1, int64_t k0,
                                                             int64_t k1,
                                                             const wg_weight_plan *wp,
                                                             const fc_conv_problem *pb)
{
    const int64_t C = pb->C, K = pb->K, H = pb->H, W = pb->W, P = pb->P, Q = pb->Q;
    const int64_t kk = k1 - k0;
    const int64_t tiles_h = (P + WG_M - 1) / WG_M, tiles_w = wp->tiles_w;
    const int64_t xwidth = WG_M * tiles_w + 2, dwidth = WG_M * tiles_w;
    for (int64_t row = row0; row < row1;) {
        const int64_t n = row / tiles_h, th0 = row % tiles_h;
        const int64_t run = tiles_h - th0 < row1 - row ? tiles_h - th0 : row1 - row;
        FN(ISA(winograd_band))(xband, x + n * C * H * W, C, H, W, WG_M * th0 - pb->pad_top,
                              WG_M * run + 2, -pb->pad_left, xwidth);
        FN(ISA(winograd_band))(dband, dy + (n * K + k0) * P * Q, kk, P, Q, WG_M * th0,
                              WG_M * run, 0, dwidth);
        for (int64_t i = 0; i < run; i++) {
            const int64_t tile0 = (row - row0 + i) * tiles_w;
            FN(ISA(weight_tile_row))(0, u, wp->u_position, tile0,
                                     xband + WG_M * i * xwidth * C, tiles_w, C, tmp);
            FN(ISA(weight_tile_row))(1, v, wp->v_position, tile0,
                                     dband + WG_M * i * dwidth * kk, tiles_w, kk, tmp);
        }
        row += run;
    }
}
