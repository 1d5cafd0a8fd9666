/* conv_depthwise_impl.h: the depthwise convolution's passes for one element type
 * (template.h: REAL, FN), included by conv_depthwise.c after the geometry and the
 * micro-kernels; the layout and the rules are described there.
 * x, dx (N, C, H, W); w, dw (K, 1, R, S) with K = C x mult, filter k reading channel
 * k / mult; bias (K) or NULL; y, dy (N, K, P, Q). */

/* The micro-kernels of the current SIMD level. */
static const FN(fc_dw_kernels) *FN(dw_kernels_now)(void)
{
#if FC_DW_HAVE_X86
    if (fc_simd_avx512()) {
        return &FN(dw_kernels_avx512);
    }
    if (fc_simd_avx2()) {
        return &FN(dw_kernels_avx2);
    }
#endif
    return &FN(dw_kernels_generic);
}

/* dst[0 .. n) = src[0 .. n): rows of a plane, too short for memcpy's call to pay. */
static inline void FN(dw_copy)(REAL *restrict dst, const REAL *restrict src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        dst[i] = src[i];
    }
}

/* Each tap's place in the phase planes: phase[t] (a * stride_w + b), in_off[t] (row and
 * column inside the phase plane, as a wide offset) and off[t] = phase[t] * plane +
 * in_off[t]; taps numbered t = r * S + s. */
typedef struct {
    int64_t *off, *in_off, *phase;
} FN(fc_dw_taps);

static int FN(dw_taps_of)(FN(fc_dw_taps) *tp, const fc_conv_problem *pb, const fc_dw_geom *g)
{
    tp->off = malloc((size_t)(3 * g->taps) * sizeof(int64_t));
    if (tp->off == NULL) {
        return 0;
    }
    tp->in_off = tp->off + g->taps;
    tp->phase = tp->off + 2 * g->taps;
    for (int64_t r = 0; r < pb->R; r++) {
        for (int64_t s = 0; s < pb->S; s++) {
            const int64_t t = r * pb->S + s;
            const int64_t dr = r * pb->dil_h, ds = s * pb->dil_w;
            tp->phase[t] = (dr % pb->stride_h) * pb->stride_w + ds % pb->stride_w;
            tp->in_off[t] = dr / pb->stride_h * g->Wph + ds / pb->stride_w;
            tp->off[t] = tp->phase[t] * g->plane + tp->in_off[t];
        }
    }
    return 1;
}

/* Copies between a channel plane (H, W) and the phase planes (fc_dw_geom) of the padded
 * plane, only the values that come from the plane (the padding is the buffer's zeros):
 * into the phases when into_phases, else out of them. The plane is only read when
 * into_phases (dw_fill_phases passes its const input through here). */
static void FN(dw_move_phases)(REAL *restrict plane, REAL *restrict phases,
                               const fc_conv_problem *pb, const fc_dw_geom *g, int into_phases)
{
    const int64_t sw = pb->stride_w;
    for (int64_t a = 0; a < pb->stride_h; a++) {
        int64_t u0, u1;
        fc_valid_range(g->Hph, pb->H, pb->stride_h, a - pb->pad_top, &u0, &u1);
        for (int64_t b = 0; b < sw; b++) {
            int64_t v0, v1;
            fc_valid_range(g->Wph, pb->W, sw, b - pb->pad_left, &v0, &v1);
            if (v0 >= v1) {
                continue;
            }
            for (int64_t u = u0; u < u1; u++) {
                /* the run of the plane row (stride sw) and of the phase row (contiguous) */
                REAL *run = plane + (u * pb->stride_h + a - pb->pad_top) * pb->W
                            + v0 * sw + b - pb->pad_left;
                REAL *row = phases + (a * sw + b) * g->plane + u * g->Wph + v0;
                const int64_t n = v1 - v0;
                if (sw == 1) {
                    if (into_phases) {
                        FN(dw_copy)(row, run, n);
                    } else {
                        FN(dw_copy)(run, row, n);
                    }
                } else if (into_phases) {
                    for (int64_t v = 0; v < n; v++) {
                        row[v] = run[v * sw];
                    }
                } else {
                    for (int64_t v = 0; v < n; v++) {
                        run[v * sw] = row[v];
                    }
                }
            }
        }
    }
}

/* The phase planes of one channel plane x (H, W). */
static void FN(dw_fill_phases)(REAL *xph, const REAL *x, const fc_conv_problem *pb,
                               const fc_dw_geom *g)
{
    FN(dw_move_phases)((REAL *)x, xph, pb, g, 1);
}

/* The inverse of dw_fill_phases: dx (H, W) from the phase planes of the padded dx, the
 * padding left out. */
static void FN(dw_unfill_phases)(REAL *dx, const REAL *dxph, const fc_conv_problem *pb,
                                 const fc_dw_geom *g)
{
    FN(dw_move_phases)(dx, (REAL *)dxph, pb, g, 0);
}

/* dy (P, Q) laid out wide (row pitch Wph) at dyw; the non-pixels keep their zeros. */
static void FN(dw_fill_wide)(REAL *restrict dyw, const REAL *restrict dy,
                             const fc_conv_problem *pb, const fc_dw_geom *g)
{
    for (int64_t p = 0; p < pb->P; p++) {
        FN(dw_copy)(dyw + p * g->Wph, dy + p * pb->Q, pb->Q);
    }
}

/* What every pass does first: checks pb (FC_ERR_INVALID outside fc_depthwise_supports),
 * fills g, and, unless the batch is empty (*empty), checks the workspace limit
 * (FC_ERR_TOO_LARGE) and makes the tap table tp (FC_ERR_NOMEM; free tp->off after). */
static fc_status FN(dw_begin)(const fc_conv_problem *pb, fc_dw_geom *g, FN(fc_dw_taps) *tp,
                              int *empty)
{
    tp->off = NULL;
    *empty = 0;
    if (!fc_depthwise_supports(pb)) {
        return FC_ERR_INVALID;
    }
    dw_geom_of(g, pb, DW_BLOCK(REAL));
    if (pb->N == 0) {
        *empty = 1;
        return FC_OK;
    }
    if (dw_thread_bytes(g, sizeof(REAL)) > FC_DEPTHWISE_MAX_WORKSPACE_BYTES) {
        return FC_ERR_TOO_LARGE;
    }
    return FN(dw_taps_of)(tp, pb, g) ? FC_OK : FC_ERR_NOMEM;
}

/* ---- forward ---- */

fc_status FN(fc_conv_depthwise_forward)(REAL *y, const REAL *x, const REAL *w,
                                        const REAL *bias, const fc_conv_problem *pb)
{
    /* y (N, K, P, Q) = x (N, C, H, W) correlated plane by plane with w (K, 1, R, S) + bias */
    fc_dw_geom g;
    FN(fc_dw_taps) tp;
    int empty;
    const fc_status status = FN(dw_begin)(pb, &g, &tp, &empty);
    if (status != FC_OK || empty) {
        return status;
    }
    const FN(fc_dw_kernels) *kern = FN(dw_kernels_now)();
    const int64_t items = pb->N * pb->C;
#ifdef _OPENMP
    const int team = dw_team(items, pb->N * pb->K * pb->P * pb->Q * g.taps);
#endif
    int failed = 0;

#pragma omp parallel num_threads(team) reduction(|| : failed)
    {
        REAL *xph = dw_calloc(g.phases * g.plane * (int64_t)sizeof(REAL));
        REAL *yw = dw_calloc(g.out_len * (int64_t)sizeof(REAL));
        const REAL **src = malloc((size_t)g.taps * sizeof(REAL *));
        failed = xph == NULL || yw == NULL || src == NULL;
        for (int64_t t = 0; !failed && t < g.taps; t++) {
            src[t] = xph + tp.off[t];
        }
#pragma omp for schedule(dynamic, 4)
        for (int64_t it = 0; it < items; it++) {
            if (failed) {
                continue;
            }
            const int64_t n = it / pb->C, c = it % pb->C;
            FN(dw_fill_phases)(xph, x + it * pb->H * pb->W, pb, &g);
            for (int64_t m = 0; m < g.mult; m++) {
                const int64_t k = c * g.mult + m;
                kern->taps_sum(yw, g.out_len, src, w + k * g.taps, g.taps, 0);
                REAL *yk = y + (n * pb->K + k) * pb->P * pb->Q;
                for (int64_t p = 0; p < pb->P; p++) {
                    const REAL *row = yw + p * g.Wph;
                    REAL *out = yk + p * pb->Q;
                    if (bias == NULL) {
                        FN(dw_copy)(out, row, pb->Q);
                    } else {
                        const REAL bk = bias[k];
                        for (int64_t q = 0; q < pb->Q; q++) {
                            out[q] = row[q] + bk;
                        }
                    }
                }
            }
        }
        free(xph);
        free(yw);
        free((void *)src);
    }
    free(tp.off);
    return failed ? FC_ERR_NOMEM : FC_OK;
}

/* ---- data gradient ---- */

fc_status FN(fc_conv_depthwise_backward_data)(REAL *dx, const REAL *dy, const REAL *w,
                                              const fc_conv_problem *pb)
{
    /* dx (N, C, H, W) = sum over each channel's filters k of dy (N, K, P, Q) correlated
     * transposed with w (K, 1, R, S) */
    fc_dw_geom g;
    FN(fc_dw_taps) tp;
    int empty;
    const fc_status status = FN(dw_begin)(pb, &g, &tp, &empty);
    if (status != FC_OK || empty) {
        return status;
    }
    const FN(fc_dw_kernels) *kern = FN(dw_kernels_now)();
    /* finite[c]: channel c's filters are all finite (the wide sums apply). */
    char *finite = malloc((size_t)pb->C);
    if (finite == NULL) {
        free(tp.off);
        return FC_ERR_NOMEM;
    }
    for (int64_t c = 0; c < pb->C; c++) {
        finite[c] = (char)kern->all_finite(w + c * g.mult * g.taps, g.mult * g.taps);
    }
    const int64_t items = pb->N * pb->C;
#ifdef _OPENMP
    const int team = dw_team(items, pb->N * pb->K * pb->P * pb->Q * g.taps);
#endif
    int failed = 0;

#pragma omp parallel num_threads(team) reduction(|| : failed)
    {
        REAL *dxph = dw_calloc(g.phases * g.plane * (int64_t)sizeof(REAL));
        REAL *dyw = dw_calloc(g.dy_len * (int64_t)sizeof(REAL));
        const REAL **src = malloc((size_t)g.taps * sizeof(REAL *));
        REAL *wt = malloc((size_t)g.taps * sizeof(REAL));
        failed = dxph == NULL || dyw == NULL || src == NULL || wt == NULL;
#pragma omp for schedule(dynamic, 4)
        for (int64_t it = 0; it < items; it++) {
            if (failed) {
                continue;
            }
            const int64_t n = it / pb->C, c = it % pb->C;
            for (int64_t m = 0; m < g.mult; m++) {
                const int64_t k = c * g.mult + m;
                const REAL *dyk = dy + (n * pb->K + k) * pb->P * pb->Q;
                const REAL *wk = w + k * g.taps;
                if (!finite[c]) {
                    /* The definition's products only: dy's pixels times each tap. */
                    if (m == 0) {
                        memset(dxph, 0, (size_t)(g.phases * g.plane) * sizeof(REAL));
                    }
                    for (int64_t t = 0; t < g.taps; t++) {
                        for (int64_t p = 0; p < pb->P; p++) {
                            REAL *out = dxph + tp.off[t] + p * g.Wph;
                            const REAL *in = dyk + p * pb->Q;
                            for (int64_t q = 0; q < pb->Q; q++) {
                                out[q] += wk[t] * in[q];
                            }
                        }
                    }
                    continue;
                }
                FN(dw_fill_wide)(dyw + g.front, dyk, pb, &g);
                /* Each phase plane gathers the taps that land on it. */
                for (int64_t ph = 0; ph < g.phases; ph++) {
                    int64_t used = 0;
                    for (int64_t t = 0; t < g.taps; t++) {
                        if (tp.phase[t] == ph) {
                            src[used] = dyw + g.front - tp.in_off[t];
                            wt[used++] = wk[t];
                        }
                    }
                    kern->taps_sum(dxph + ph * g.plane, g.img_len, src, wt, used, m > 0);
                }
            }
            FN(dw_unfill_phases)(dx + it * pb->H * pb->W, dxph, pb, &g);
        }
        free(dxph);
        free(dyw);
        free((void *)src);
        free(wt);
    }
    free(finite);
    free(tp.off);
    return failed ? FC_ERR_NOMEM : FC_OK;
}

/* ---- weight gradient ---- */

/* sums[t] += the weight gradient's sum for filter k's taps over one image: dy_k (P, Q) laid
 * out wide in dyw (front included), x's phase planes in xph. With x_finite, the wide dot
 * products; otherwise the sums over the pixels alone (the wide sums would multiply the
 * non-pixels' zeros by x's infs and NaNs). */
static void FN(dw_weight_image)(REAL *sums, REAL *dyw, const REAL *dyk, const REAL *xph,
                                const REAL *const *src, int x_finite,
                                const FN(fc_dw_kernels) *kern, const fc_conv_problem *pb,
                                const fc_dw_geom *g, const FN(fc_dw_taps) *tp)
{
    if (x_finite) {
        FN(dw_fill_wide)(dyw + g->front, dyk, pb, g);
        kern->dots(sums, dyw + g->front, src, g->taps, g->out_len);
        return;
    }
    for (int64_t t = 0; t < g->taps; t++) {
        REAL acc = 0;
        for (int64_t p = 0; p < pb->P; p++) {
            const REAL *in = xph + tp->off[t] + p * g->Wph;
            const REAL *d = dyk + p * pb->Q;
            for (int64_t q = 0; q < pb->Q; q++) {
                acc += d[q] * in[q];
            }
        }
        sums[t] += acc;
    }
}

fc_status FN(fc_conv_depthwise_backward_weight)(REAL *dw, const REAL *dy, const REAL *x,
                                                const fc_conv_problem *pb)
{
    /* dw (K, 1, R, S) = sum over n, p, q of dy (N, K, P, Q) times the x (N, C, H, W)
     * pixel each tap reads */
    fc_dw_geom g;
    FN(fc_dw_taps) tp;
    int empty;
    const fc_status status = FN(dw_begin)(pb, &g, &tp, &empty);
    if (status != FC_OK) {
        return status;
    }
    const int64_t size = pb->K * g.taps;
    memset(dw, 0, (size_t)size * sizeof(REAL));
    if (empty) {
        return FC_OK;
    }
    const FN(fc_dw_kernels) *kern = FN(dw_kernels_now)();
    const int64_t items = pb->N * pb->C;
    const int team = dw_team(items, pb->N * pb->K * pb->P * pb->Q * g.taps);
    /* By channels: each thread owns its channels' filters. By images: each thread sums
     * into its own copy of dw (thread 0 into dw itself), added in thread order after. */
    const int by_channels = pb->C >= (int64_t)team * DW_WEIGHT_CHANNELS_PER_THREAD;
    REAL *partials = NULL;
    if (!by_channels && team > 1) {
        partials = dw_calloc((team - 1) * size * (int64_t)sizeof(REAL));
        if (partials == NULL) {
            free(tp.off);
            return FC_ERR_NOMEM;
        }
    }
    int failed = 0;

#pragma omp parallel num_threads(team) reduction(|| : failed)
    {
        REAL *xph = dw_calloc(g.phases * g.plane * (int64_t)sizeof(REAL));
        REAL *dyw = dw_calloc(g.dy_len * (int64_t)sizeof(REAL));
        const REAL **src = malloc((size_t)g.taps * sizeof(REAL *));
        failed = xph == NULL || dyw == NULL || src == NULL;
        for (int64_t t = 0; !failed && t < g.taps; t++) {
            src[t] = xph + tp.off[t];
        }
        if (by_channels) {
#pragma omp for schedule(dynamic)
            for (int64_t c = 0; c < pb->C; c++) {
                for (int64_t n = 0; n < pb->N && !failed; n++) {
                    const REAL *xc = x + (n * pb->C + c) * pb->H * pb->W;
                    FN(dw_fill_phases)(xph, xc, pb, &g);
                    const int x_finite = kern->all_finite(xc, pb->H * pb->W);
                    for (int64_t m = 0; m < g.mult; m++) {
                        const int64_t k = c * g.mult + m;
                        FN(dw_weight_image)(dw + k * g.taps, dyw,
                                            dy + (n * pb->K + k) * pb->P * pb->Q, xph, src,
                                            x_finite, kern, pb, &g, &tp);
                    }
                }
            }
        } else {
            const int thread = fc_thread_num();
            REAL *sums = thread == 0 ? dw : partials + (thread - 1) * size;
#pragma omp for schedule(static)
            for (int64_t it = 0; it < items; it++) {
                if (failed) {
                    continue;
                }
                const int64_t n = it / pb->C, c = it % pb->C;
                const REAL *xc = x + it * pb->H * pb->W;
                FN(dw_fill_phases)(xph, xc, pb, &g);
                const int x_finite = kern->all_finite(xc, pb->H * pb->W);
                for (int64_t m = 0; m < g.mult; m++) {
                    const int64_t k = c * g.mult + m;
                    FN(dw_weight_image)(sums + k * g.taps, dyw,
                                        dy + (n * pb->K + k) * pb->P * pb->Q, xph, src,
                                        x_finite, kern, pb, &g, &tp);
                }
            }
        }
        free(xph);
        free(dyw);
        free((void *)src);
    }
    if (partials != NULL) {
        FN(fc_add_partials)(dw, partials, team, size);
        free(partials);
    }
    free(tp.off);
    return failed ? FC_ERR_NOMEM : FC_OK;
}
