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

/* u (36 positions u_position apart, tiles, C) at tiles [tile0, tile0 + tiles_w) <- B^T d B
 * of one tile row, from band (6, 4*tiles_w + 2, C): the tile row's input patches,
 * channel-minor; tmp: scratch of 36*C. Each pass is a loop along the channels whose body
 * is one 1-D transform written out, which the compiler vectorises (a loop inside the body
 * would stop it). */
static FC_TEMPLATE_TARGET void FN(ISA(winograd_input_row))(REAL *restrict u,
                                                           int64_t u_position, int64_t tile0,
                                                           const REAL *restrict band,
                                                           int64_t tiles_w, int64_t C,
                                                           REAL *restrict tmp)
{
    const int64_t rs = (WG_M * tiles_w + 2) * C;      /* from one patch row to the next */
    for (int64_t tw = 0; tw < tiles_w; tw++) {
        const REAL *restrict patch = band + WG_M * tw * C;
        REAL *restrict o = u + (tile0 + tw) * C;
        /* tmp[a][b] = (B^T d)[a][b]: column b of the patch */
        for (int b = 0; b < WG_ALPHA; b++) {
            const REAL *restrict col = patch + b * C;
            REAL *restrict t = tmp + b * C;
#pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                const REAL d[WG_ALPHA] = {col[c], col[rs + c], col[2 * rs + c],
                                          col[3 * rs + c], col[4 * rs + c], col[5 * rs + c]};
                REAL e[WG_ALPHA];
                WG_INPUT_1D(e, d);
                t[c] = e[0];
                t[WG_ALPHA * C + c] = e[1];
                t[2 * WG_ALPHA * C + c] = e[2];
                t[3 * WG_ALPHA * C + c] = e[3];
                t[4 * WG_ALPHA * C + c] = e[4];
                t[5 * WG_ALPHA * C + c] = e[5];
            }
        }
        /* position (a, b) = ((B^T d) B)[a][b]: row a of tmp */
        for (int a = 0; a < WG_ALPHA; a++) {
            const REAL *restrict row = tmp + WG_ALPHA * a * C;
            REAL *restrict out = o + WG_ALPHA * a * u_position;
#pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                const REAL d[WG_ALPHA] = {row[c], row[C + c], row[2 * C + c], row[3 * C + c],
                                          row[4 * C + c], row[5 * C + c]};
                REAL e[WG_ALPHA];
                WG_INPUT_1D(e, d);
                out[c] = e[0];
                out[u_position + c] = e[1];
                out[2 * u_position + c] = e[2];
                out[3 * u_position + c] = e[3];
                out[4 * u_position + c] = e[4];
                out[5 * u_position + c] = e[5];
            }
        }
    }
}

/* v (36 positions v_position apart, tiles, K) at tiles [tile0, tile0 + tiles_w) <-
 * A dy A^T of one tile row, from band (4, 4*tiles_w, K): the tile row's output gradients,
 * channel-minor; tmp: scratch of 24*K. Loops as winograd_input_row's. */
static FC_TEMPLATE_TARGET void FN(ISA(winograd_grad_row))(REAL *restrict v,
                                                          int64_t v_position, int64_t tile0,
                                                          const REAL *restrict band,
                                                          int64_t tiles_w, int64_t K,
                                                          REAL *restrict tmp)
{
    const int64_t rs = WG_M * tiles_w * K;            /* from one tile row to the next */
    for (int64_t tw = 0; tw < tiles_w; tw++) {
        const REAL *restrict tile = band + WG_M * tw * K;
        REAL *restrict o = v + (tile0 + tw) * K;
        /* tmp[a][b] = (A dy)[a][b]: column b of the tile */
        for (int b = 0; b < WG_M; b++) {
            const REAL *restrict col = tile + b * K;
            REAL *restrict t = tmp + b * K;
#pragma omp simd
            for (int64_t k = 0; k < K; k++) {
                const REAL f[WG_M] = {col[k], col[rs + k], col[2 * rs + k], col[3 * rs + k]};
                REAL e[WG_ALPHA];
                WG_GRAD_1D(e, f);
                t[k] = e[0];
                t[WG_M * K + k] = e[1];
                t[2 * WG_M * K + k] = e[2];
                t[3 * WG_M * K + k] = e[3];
                t[4 * WG_M * K + k] = e[4];
                t[5 * WG_M * K + k] = e[5];
            }
        }
        /* position (a, b) = ((A dy) A^T)[a][b]: row a of tmp */
        for (int a = 0; a < WG_ALPHA; a++) {
            const REAL *restrict row = tmp + WG_M * a * K;
            REAL *restrict out = o + WG_ALPHA * a * v_position;
#pragma omp simd
            for (int64_t k = 0; k < K; k++) {
                const REAL f[WG_M] = {row[k], row[K + k], row[2 * K + k], row[3 * K + k]};
                REAL e[WG_ALPHA];
                WG_GRAD_1D(e, f);
                out[k] = e[0];
                out[v_position + k] = e[1];
                out[2 * v_position + k] = e[2];
                out[3 * v_position + k] = e[3];
                out[4 * v_position + k] = e[4];
                out[5 * v_position + k] = e[5];
            }
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
            FN(ISA(winograd_input_row))(u, wp->u_position, tile0,
                                        xband + WG_M * i * xwidth * C, tiles_w, C, tmp);
            FN(ISA(winograd_grad_row))(v, wp->v_position, tile0,
                                       dband + WG_M * i * dwidth * kk, tiles_w, kk, tmp);
        }
        row += run;
    }
}
