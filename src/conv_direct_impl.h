/* conv_direct_impl.h: the direct convolution kernels for one element type.
 * Included by conv_direct.c with REAL (float or double) and FN(name) (adds _f32/_f64).
 *
 * Layouts: x (N, C, H, W); w (K, C/groups, R, S); y and dy (N, K, P, Q); all C-contiguous.
 * The band buffer, its tap offsets and the pixel numbering v are described at the top of
 * conv_direct.c. Work items (image, group, band of output rows) are split statically over
 * the threads; each thread owns its band buffer and the outputs of its items. */

static FN(fc_tile_kernel) FN(tile_kernel)(int kb)
{
    return fc_simd_avx2() ? FN(fc_tile_avx2)[kb] : FN(fc_tile_generic)[kb];
}

static FN(fc_wgrad_kernel) FN(wgrad_kernel)(int kb)
{
    return fc_simd_avx2() ? FN(fc_wgrad_avx2)[kb] : FN(fc_wgrad_generic)[kb];
}

/* buf (Cg, sh, sw, rows + reach_rows, pitch) <- the zero-padded input rows that output rows
 * [p0, p0 + rows) read from x_group (Cg, H, W), split into stride phases. */
static void FN(fill_band)(REAL *buf, const REAL *x_group, int64_t p0, int64_t rows,
                          const fc_band_geom *gm, const fc_conv_problem *pb)
{
    const int64_t sh = pb->stride_h, sw = pb->stride_w, H = pb->H, W = pb->W;
    const int64_t pitch = gm->pitch;
    for (int64_t c = 0; c < gm->ch; c++) {
        for (int64_t a = 0; a < sh; a++) {
            for (int64_t i = 0; i < rows + gm->reach_rows; i++) {
                const int64_t h = (p0 + i) * sh + a - pb->pad_top;
                for (int64_t b = 0; b < sw; b++) {
                    REAL *dst = buf + ((c * sh + a) * sw + b) * gm->plane + i * pitch;
                    if (h < 0 || h >= H) {
                        memset(dst, 0, (size_t)pitch * sizeof(REAL));
                        continue;
                    }
                    /* dst[j] = x[c][h][j*sw + b - pad_left] where that is inside the row */
                    const int64_t first = b - pb->pad_left;
                    const REAL *src = x_group + (c * H + h) * W;
                    int64_t lo, hi;
                    fc_valid_range(pitch, W, sw, first, &lo, &hi);
                    for (int64_t j = 0; j < lo; j++) {
                        dst[j] = 0;
                    }
                    if (sw == 1) {
                        memcpy(dst + lo, src + lo + first, (size_t)(hi - lo) * sizeof(REAL));
                    } else {
                        for (int64_t j = lo; j < hi; j++) {
                            dst[j] = src[j * sw + first];
                        }
                    }
                    for (int64_t j = hi; j < pitch; j++) {
                        dst[j] = 0;
                    }
                }
            }
        }
    }
}

/* wp (K, T) <- w (K, T) with each filter block's taps interleaved, [t][kb], in the order
 * the tile kernel reads them; block (g, k0) starts at wp + (g*Kg + k0)*T. */
static void FN(pack_filters)(REAL *wp, const REAL *w, int64_t Kg, int64_t groups, int64_t T)
{
    const int64_t nblocks = filter_blocks(Kg, FC_TILE_KB_MAX);
    for (int64_t g = 0; g < groups; g++) {
        for (int64_t b = 0; b < nblocks; b++) {
            int64_t k0;
            int kb;
            filter_block(Kg, nblocks, b, &k0, &kb);
            const REAL *src = w + (g * Kg + k0) * T;
            REAL *dst = wp + (g * Kg + k0) * T;
            for (int64_t t = 0; t < T; t++) {
                for (int k = 0; k < kb; k++) {
                    dst[t * kb + k] = src[k * T + t];
                }
            }
        }
    }
}

/* y <- the pixels of tile (kb, vw) whose strip starts at band row pl, column q, one by
 * one: for what a strip map cannot describe (outputs narrower than a strip, or every
 * stride-th column of dx). */
static void FN(scatter_tile)(REAL *y, const REAL *tile, int kb, int vw, int64_t pl, int64_t q,
                             int64_t rows, int64_t pitch, int64_t Q, const fc_out_layout *yl)
{
    for (int j = 0; j < vw && pl < rows; j++) {
        if (q < Q) {
            for (int k = 0; k < kb; k++) {
                y[k * yl->channel + pl * yl->row + q * yl->col] = tile[k * vw + j];
            }
        }
        if (++q == pitch) {
            q = 0;
            pl++;
        }
    }
}

static fc_status FN(correlate)(REAL *y, const fc_out_layout *yl, const REAL *x, const REAL *w,
                               const REAL *bias, const fc_conv_problem *pb)
{
    /* y (N, K, P, Q), placed by yl, = sum over c, r, s of x (N, C, H, W) * w (K, C/g, R, S)
     * + bias (K) or 0: the forward convolution, and each phase of the data gradient. */
    const int64_t G = pb->groups, Kg = pb->K / G, P = pb->P, Q = pb->Q;
    const int nthreads = fc_get_num_threads();
    fc_band_geom gm;
    band_geom(&gm, pb, nthreads, (int64_t)sizeof(REAL));
    const int64_t T = gm.taps, nblocks = filter_blocks(Kg, FC_TILE_KB_MAX);
    const int64_t items = pb->N * G * gm.nbands;

    int64_t *off = malloc((size_t)T * sizeof(int64_t));
    REAL *wpack = malloc((size_t)(pb->K * T) * sizeof(REAL));
    REAL *bpack = malloc((size_t)pb->K * sizeof(REAL));
    if (off == NULL || wpack == NULL || bpack == NULL) {
        free(off);
        free(wpack);
        free(bpack);
        return FC_ERR_NOMEM;
    }
    tap_offsets(off, &gm, pb);
    FN(pack_filters)(wpack, w, Kg, G, T);
    for (int64_t k = 0; k < pb->K; k++) {
        bpack[k] = bias != NULL ? bias[k] : (REAL)0;
    }
    int failed = 0;

#pragma omp parallel num_threads(nthreads) reduction(|| : failed)
    {
        REAL *buf = calloc((size_t)gm.size, sizeof(REAL));
        _Alignas(32) REAL tile[FC_TILE_KB_MAX * FC_TILE_VW_MAX];
        fc_strip_map map;
        fc_strip_map tile_map = {.nseg = 1};  /* all lanes into `tile`, for scatter_tile */
        if (buf == NULL) {
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            if (failed) {
                continue;
            }
            const int64_t n = it / (G * gm.nbands), g = it / gm.nbands % G;
            const int64_t p0 = it % gm.nbands * gm.band, rows = min64(gm.band, P - p0);
            FN(fill_band)(buf, x + (n * pb->C + g * gm.ch) * pb->H * pb->W, p0, rows, &gm, pb);
            const int64_t v_end = (rows - 1) * gm.pitch + Q;  /* past the band's last pixel */
            for (int64_t b = 0; b < nblocks; b++) {
                int64_t k0;
                int kb;
                filter_block(Kg, nblocks, b, &k0, &kb);
                const FN(fc_tile_kernel) kernel = FN(tile_kernel)(kb);
                const int vw = FC_TILE_VW(kb, sizeof(REAL));
                const REAL *wb = wpack + (g * Kg + k0) * T, *bb = bpack + g * Kg + k0;
                REAL *yb = y + n * yl->image + (g * Kg + k0) * yl->channel + p0 * yl->row;
                int64_t pl = 0, q = 0;  /* band row and column of pixel number v */
                for (int64_t v = 0; v < v_end; v += vw) {
                    if (strip_map(&map, pl, q, vw, rows, gm.pitch, Q, yl)) {
                        kernel(yb, &map, buf + v, off, T, wb, bb);
                    } else {
                        tile_map.hi[0] = vw;
                        tile_map.ldk = vw;
                        kernel(tile, &tile_map, buf + v, off, T, wb, bb);
                        FN(scatter_tile)(yb, tile, kb, vw, pl, q, rows, gm.pitch, Q, yl);
                    }
                    q += vw;
                    pl += q / gm.pitch;
                    q %= gm.pitch;
                }
            }
        }
        free(buf);
    }
    free(off);
    free(wpack);
    free(bpack);
    return failed ? FC_ERR_NOMEM : FC_OK;
}

fc_status FN(fc_conv_direct_forward)(REAL *y, const REAL *x, const REAL *w, const REAL *bias,
                                     const fc_conv_problem *pb)
{
    /* y (N, K, P, Q) = sum over c, r, s of x (N, C, H, W) * w (K, C/g, R, S), + bias (K) */
    const fc_out_layout yl = {pb->K * pb->P * pb->Q, pb->P * pb->Q, pb->Q, 1};
    return FN(correlate)(y, &yl, x, w, bias, pb);
}

/* y (N, K, P, Q) placed by yl <- 0. */
static void FN(zero_outputs)(REAL *y, const fc_out_layout *yl, int64_t N, int64_t K,
                             int64_t P, int64_t Q)
{
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) {
            for (int64_t p = 0; p < P; p++) {
                REAL *row = y + n * yl->image + k * yl->channel + p * yl->row;
                for (int64_t q = 0; q < Q; q++) {
                    row[q * yl->col] = 0;
                }
            }
        }
    }
}

fc_status FN(fc_conv_direct_backward_data)(REAL *dx, const REAL *dy, const REAL *w,
                                           const fc_conv_problem *pb)
{
    /* dx (N, C, H, W) = the transposed convolution of dy (N, K, P, Q) with w (K, C/g, R, S),
     * run as stride_h x stride_w stride-1 correlations of dy with flipped, transposed
     * sub-filters (see phase_axis), each writing every stride-th pixel of dx. A stride-1
     * layer is a single phase: one correlation writing all of dx. */
    const int64_t G = pb->groups, Cg = pb->C / G, Kg = pb->K / G, H = pb->H, W = pb->W;
    const fc_out_layout yl = {pb->C * H * W, H * W, pb->stride_h * W, pb->stride_w};
    REAL *wsub = malloc((size_t)(pb->C * Kg * pb->R * pb->S) * sizeof(REAL));
    if (wsub == NULL) {
        return FC_ERR_NOMEM;
    }
    fc_status status = FC_OK;
    for (int64_t a = 0; a < pb->stride_h && status == FC_OK; a++) {
        fc_phase_axis ah;
        phase_axis(&ah, H, pb->R, pb->stride_h, pb->dil_h, pb->pad_top, a);
        for (int64_t b = 0; b < pb->stride_w && status == FC_OK; b++) {
            fc_phase_axis aw;
            phase_axis(&aw, W, pb->S, pb->stride_w, pb->dil_w, pb->pad_left, b);
            if (ah.nout == 0 || aw.nout == 0) {
                continue;
            }
            REAL *dx_phase = dx + ah.out0 * W + aw.out0;
            if (ah.ntaps == 0 || aw.ntaps == 0) {
                /* no filter tap reaches these pixels of dx */
                FN(zero_outputs)(dx_phase, &yl, pb->N, pb->C, ah.nout, aw.nout);
                continue;
            }
            /* wsub (C, Kg, R', S'): wsub[g*Cg + c][k][i][j] = w[g*Kg + k][c][r][s] with
             * r = first_h + (R'-1-i)*step_h, s = first_w + (S'-1-j)*step_w (flipped). */
            const int64_t Rs = ah.ntaps, Ss = aw.ntaps;
            for (int64_t g = 0; g < G; g++) {
                for (int64_t c = 0; c < Cg; c++) {
                    for (int64_t k = 0; k < Kg; k++) {
                        const REAL *wk = w + ((g * Kg + k) * Cg + c) * pb->R * pb->S;
                        REAL *dst = wsub + ((g * Cg + c) * Kg + k) * Rs * Ss;
                        for (int64_t i = 0; i < Rs; i++) {
                            const int64_t r = ah.first + (Rs - 1 - i) * ah.tap_step;
                            for (int64_t j = 0; j < Ss; j++) {
                                const int64_t s = aw.first + (Ss - 1 - j) * aw.tap_step;
                                dst[i * Ss + j] = wk[r * pb->S + s];
                            }
                        }
                    }
                }
            }
            /* dy is the input (K channels, P x Q); pad_bottom/right are not read by correlate */
            const fc_conv_problem sub = {
                .N = pb->N, .C = pb->K, .H = pb->P, .W = pb->Q,
                .K = pb->C, .R = Rs, .S = Ss,
                .stride_h = 1, .stride_w = 1,
                .pad_top = ah.pad, .pad_bottom = 0, .pad_left = aw.pad, .pad_right = 0,
                .dil_h = ah.dil, .dil_w = aw.dil,
                .groups = G, .P = ah.nout, .Q = aw.nout,
            };
            status = FN(correlate)(dx_phase, &yl, dy, wsub, NULL, &sub);
        }
    }
    free(wsub);
    return status;
}

fc_status FN(fc_conv_direct_backward_weight)(REAL *dw, const REAL *dy, const REAL *x,
                                             const fc_conv_problem *pb)
{
    /* dw (K, C/g, R, S) = sum over n, p, q of dy (N, K, P, Q) * the x (N, C, H, W) pixel
     * each tap read. Per work item, the forward's band buffer, then KB filters x TB taps
     * of dw summed in registers over the band. Each thread sums its items into its own
     * copy of dw and the copies are added in thread order, so the result is bitwise
     * reproducible at a given thread count. */
    const int64_t G = pb->groups, Kg = pb->K / G, P = pb->P, Q = pb->Q;
    const int nthreads = fc_get_num_threads();
    fc_band_geom gm;
    band_geom(&gm, pb, nthreads, (int64_t)sizeof(REAL));
    const int64_t T = gm.taps, dw_size = pb->K * T;
    const int64_t nblocks = filter_blocks(Kg, FC_WGRAD_KB_MAX);
    const int64_t items = pb->N * G * gm.nbands;
    const int team = items < nthreads ? (int)items : nthreads;

    /* The last tap block is padded with copies of the last tap: valid reads, sums dropped. */
    int64_t *off = malloc((size_t)(T + FC_WGRAD_TB_MAX) * sizeof(int64_t));
    REAL *partials = team > 1 ? calloc((size_t)((team - 1) * dw_size), sizeof(REAL)) : NULL;
    if (off == NULL || (team > 1 && partials == NULL)) {
        free(off);
        free(partials);
        return FC_ERR_NOMEM;
    }
    tap_offsets(off, &gm, pb);
    for (int64_t t = T; t < T + FC_WGRAD_TB_MAX; t++) {
        off[t] = off[T - 1];
    }
    memset(dw, 0, (size_t)dw_size * sizeof(REAL));
    int failed = 0;

#pragma omp parallel num_threads(team) reduction(|| : failed)
    {
        const int th = current_thread();
        REAL *my_dw = th == 0 ? dw : partials + (th - 1) * dw_size;
        REAL *buf = calloc((size_t)gm.size, sizeof(REAL));
        if (buf == NULL) {
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            if (failed) {
                continue;
            }
            const int64_t n = it / (G * gm.nbands), g = it / gm.nbands % G;
            const int64_t p0 = it % gm.nbands * gm.band, rows = min64(gm.band, P - p0);
            FN(fill_band)(buf, x + (n * pb->C + g * gm.ch) * pb->H * pb->W, p0, rows, &gm, pb);
            for (int64_t b = 0; b < nblocks; b++) {
                int64_t k0;
                int kb;
                filter_block(Kg, nblocks, b, &k0, &kb);
                const FN(fc_wgrad_kernel) kernel = FN(wgrad_kernel)(kb);
                const int tb = FC_WGRAD_TB(kb);
                const REAL *dy_block = dy + ((n * pb->K + g * Kg + k0) * P + p0) * Q;
                REAL *dw_block = my_dw + (g * Kg + k0) * T;
                for (int64_t t0 = 0; t0 < T; t0 += tb) {
                    kernel(dw_block + t0, T, (int)min64(tb, T - t0), dy_block, P * Q, Q,
                           buf, off + t0, gm.pitch, rows, Q);
                }
            }
        }
        free(buf);
    }
    for (int t = 1; t < team; t++) {
        const REAL *part = partials + (t - 1) * dw_size;
        for (int64_t i = 0; i < dw_size; i++) {
            dw[i] += part[i];
        }
    }
    free(partials);
    free(off);
    return failed ? FC_ERR_NOMEM : FC_OK;
}

/* sum of a[0..n) with 8 partial sums in a fixed order, so the compiler can vectorise it
 * while the result stays deterministic. */
static inline REAL FN(sum8)(const REAL *a, int64_t n)
{
    REAL part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) {
            part[j] += a[i + j];
        }
    }
    for (; i < n; i++) {
        part[0] += a[i];
    }
    return ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
}

fc_status FN(fc_conv_backward_bias)(REAL *db, const REAL *dy, const fc_conv_problem *pb)
{
    /* db (K) = sum over n, p, q of dy (N, K, P, Q) */
    const int64_t PQ = pb->P * pb->Q;

#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < pb->K; k++) {
        REAL acc = 0;
        for (int64_t n = 0; n < pb->N; n++) {
            const REAL *dy_plane = dy + (n * pb->K + k) * PQ;
            acc += FN(sum8)(dy_plane, PQ);
        }
        db[k] = acc;
    }
    return FC_OK;
}
