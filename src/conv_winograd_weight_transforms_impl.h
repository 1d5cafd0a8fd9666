/* conv_winograd_weight_transforms_impl.h: the data movement and transforms of the
 * F(2x2, 3x3) weight gradient (conv_winograd_weight_impl.h), included by
 * conv_winograd_weight.c once per element type and instruction set (template.h: REAL, FN,
 * ISA; FC_TEMPLATE_TARGET, a target attribute or nothing, and optionally
 * FC_TEMPLATE_TRANSPOSE16(out, ldo, in, ldi), a 16 x 16 block transpose). Only adds,
 * subtracts and copies: every instruction set gives the same bits; the wider ones only
 * vectorise the channel loops better. */

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

/* u (16, ld, C) at tiles [tile0, tile0 + tiles_w) <- B^T d B of one tile row, from band
 * (4, 2*tiles_w + 2, C): the tile row's input patches, channel-minor. */
static FC_TEMPLATE_TARGET void FN(ISA(winograd_input_row))(REAL *restrict u, int64_t ld,
                                                           int64_t tile0,
                                                           const REAL *restrict band,
                                                           int64_t tiles_w, int64_t C)
{
    /* B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], applied to the
     * patch's columns (s = B^T d) and then to its rows (s B). Plain pointers per patch row
     * and per output position keep the channel loop simple enough to vectorise. */
    const int64_t width = 2 * tiles_w + 2, ts = ld * C;
    for (int64_t tw = 0; tw < tiles_w; tw++) {
        const REAL *restrict r0 = band + 2 * tw * C, *restrict r1 = r0 + width * C;
        const REAL *restrict r2 = r1 + width * C, *restrict r3 = r2 + width * C;
        REAL *restrict o = u + (tile0 + tw) * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            REAL s[4][4];
            for (int b = 0; b < 4; b++) {
                const REAL d0 = r0[b * C + c], d1 = r1[b * C + c];
                const REAL d2 = r2[b * C + c], d3 = r3[b * C + c];
                s[0][b] = d0 - d2;
                s[1][b] = d1 + d2;
                s[2][b] = d2 - d1;
                s[3][b] = d1 - d3;
            }
            for (int a = 0; a < 4; a++) {
                o[(4 * a + 0) * ts + c] = s[a][0] - s[a][2];
                o[(4 * a + 1) * ts + c] = s[a][1] + s[a][2];
                o[(4 * a + 2) * ts + c] = s[a][2] - s[a][1];
                o[(4 * a + 3) * ts + c] = s[a][1] - s[a][3];
            }
        }
    }
}

/* v (16, ld, K) at tiles [tile0, tile0 + tiles_w) <- A dy A^T of one tile row, from band
 * (2, 2*tiles_w, K): the tile row's output gradients, channel-minor. */
static FC_TEMPLATE_TARGET void FN(ISA(winograd_grad_row))(REAL *restrict v, int64_t ld,
                                                          int64_t tile0,
                                                          const REAL *restrict band,
                                                          int64_t tiles_w, int64_t K)
{
    /* A = [[1, 0], [1, 1], [1, -1], [0, -1]]: rows (f0, f0 + f1, f0 - f1, -f1) of the 2x2
     * tile, then the same along each of the four rows. */
    const int64_t width = 2 * tiles_w, ts = ld * K;
    for (int64_t tw = 0; tw < tiles_w; tw++) {
        const REAL *restrict g0 = band + 2 * tw * K, *restrict g1 = g0 + width * K;
        REAL *restrict o = v + (tile0 + tw) * K;
#pragma omp simd
        for (int64_t k = 0; k < K; k++) {
            const REAL a0 = g0[k], a1 = g0[K + k], b0 = g1[k], b1 = g1[K + k];
            const REAL f[4][2] = {{a0, a1}, {a0 + b0, a1 + b1}, {a0 - b0, a1 - b1},
                                  {-b0, -b1}};
            for (int a = 0; a < 4; a++) {
                o[(4 * a + 0) * ts + k] = f[a][0];
                o[(4 * a + 1) * ts + k] = f[a][0] + f[a][1];
                o[(4 * a + 2) * ts + k] = f[a][0] - f[a][1];
                o[(4 * a + 3) * ts + k] = -f[a][1];
            }
        }
    }
}

/* u (16, tiles, C) <- B^T d B and v (16, tiles, K) <- A dy A^T of the tiles in tile rows
 * [row0, row1), one image's run of rows at a time; xband and dband are scratch of
 * (2*runs + 2) x (2*tiles_w + 2) x C and 2*runs x 2*tiles_w x K, runs = min(row1 - row0,
 * tiles_h). */
static FC_TEMPLATE_TARGET void FN(ISA(winograd_chunk_tiles))(REAL *u, REAL *v, REAL *xband,
                                                             REAL *dband, const REAL *x,
                                                             const REAL *dy, int64_t row0,
                                                             int64_t row1,
                                                             const fc_conv_problem *pb)
{
    const int64_t C = pb->C, K = pb->K, H = pb->H, W = pb->W, P = pb->P, Q = pb->Q;
    const int64_t tiles_h = (P + 1) / 2, tiles_w = (Q + 1) / 2;
    const int64_t xwidth = 2 * tiles_w + 2, dwidth = 2 * tiles_w;
    const int64_t tiles = (row1 - row0) * tiles_w;
    for (int64_t row = row0; row < row1;) {
        const int64_t n = row / tiles_h, th0 = row % tiles_h;
        const int64_t run = tiles_h - th0 < row1 - row ? tiles_h - th0 : row1 - row;
        FN(ISA(winograd_band))(xband, x + n * C * H * W, C, H, W, 2 * th0 - pb->pad_top,
                              2 * run + 2, -pb->pad_left, xwidth);
        FN(ISA(winograd_band))(dband, dy + n * K * P * Q, K, P, Q, 2 * th0, 2 * run, 0, dwidth);
        for (int64_t i = 0; i < run; i++) {
            const int64_t tile0 = (row - row0 + i) * tiles_w;
            FN(ISA(winograd_input_row))(u, tiles, tile0, xband + 2 * i * xwidth * C, tiles_w, C);
            FN(ISA(winograd_grad_row))(v, tiles, tile0, dband + 2 * i * dwidth * K, tiles_w, K);
        }
        row += run;
    }
}
