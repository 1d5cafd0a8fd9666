/* conv_direct_backward_impl.h: the gradients of the direct convolution for one element
 * type (template.h: REAL, FN): the data gradient (scatter, gather or loops), the weight
 * gradient (by pixels or by filters) and the bias gradient, with their entry points. The
 * passes run as the forward's do (conv_direct_impl.h); the plan picks each variant. */

/* ---- data gradient: dx = the transposed convolution of dy with w ---- */

/* What the items of the scatter form share. */
typedef struct {
    REAL *dx;
    const REAL *dy;
    const fc_conv_problem *pb;
    const fc_band_geom *gm;         /* one band: the whole image */
    const FN(fc_direct_kernels) *ks;
    const int64_t *off;             /* the forward's tap offsets */
    const int64_t *dy_off;          /* dy_off[k] = k * ldd: filter k's row of dyb */
    const REAL *wt;                 /* the weights as pack_scatter_weights lays them out */
    int64_t ldd;                    /* elements per filter of dyb */
} FN(scatter_pass);

/* wt: for group g, tap (r, s) and channel block (c0, kb), [k][i] = w[g*Kg + k][c0 + i][r][s]
 * at wt + ((g*RS + rs)*Cg + c0)*Kg: the dy channels are the tile kernel's taps. */
static void FN(pack_scatter_weights)(REAL *wt, const REAL *w, const fc_conv_problem *pb)
{
    const int64_t G = pb->groups, Cg = pb->C / G, Kg = pb->K / G, RS = pb->R * pb->S;
    const int64_t nblocks = tile_blocks(Cg);
    for (int64_t g = 0; g < G; g++) {
        for (int64_t rs = 0; rs < RS; rs++) {
            for (int64_t b = 0; b < nblocks; b++) {
                int64_t c0;
                int kb;
                tile_block(Cg, b, &c0, &kb);
                REAL *dst = wt + ((g * RS + rs) * Cg + c0) * Kg;
                for (int64_t k = 0; k < Kg; k++) {
                    for (int i = 0; i < kb; i++) {
                        dst[k * kb + i] = w[((g * Kg + k) * Cg + c0 + i) * RS + rs];
                    }
                }
            }
        }
    }
}

/* One (image, group): dy copied into the band's pixel numbering (dyb, whose zeros past
 * each row and past the image the workspace holds from its allocation), dxb (Cg, sh, sw,
 * rows, pitch) += w^T dy at the forward's tap offsets, then dx <- dxb without its padding.
 * The taps of one tile are the same (r, s) of kb channels: their buffer rows lie a whole
 * channel of the buffer apart, so a tile's rows never overlap. */
static void FN(backward_data_scatter_item)(const void *pass, fc_band_item t, void *const *ws,
                                           int thread)
{
    const FN(scatter_pass) *sp = pass;
    const fc_conv_problem *pb = sp->pb;
    const fc_band_geom *gm = sp->gm;
    const int64_t G = pb->groups, Cg = pb->C / G, Kg = pb->K / G, P = pb->P, Q = pb->Q;
    const int64_t RS = pb->R * pb->S, nblocks = tile_blocks(Cg);
    const int64_t v_end = (P - 1) * gm->pitch + Q;
    REAL *dxb = ws[0], *dyb = ws[1];
    int64_t yoff[FC_TILE_KB_MAX];
    (void)thread;
    const REAL *dy_group = sp->dy + (t.n * pb->K + t.g * Kg) * P * Q;
    for (int64_t k = 0; k < Kg; k++) {
        for (int64_t p = 0; p < P; p++) {
            FN(copy_short)(dyb + k * sp->ldd + p * gm->pitch, dy_group + (k * P + p) * Q, Q);
        }
    }
    memset(dxb, 0, (size_t)gm->size * sizeof(REAL));
    for (int64_t rs = 0; rs < RS; rs++) {
        for (int64_t b = 0; b < nblocks; b++) {
            int64_t c0;
            int kb;
            tile_block(Cg, b, &c0, &kb);
            for (int i = 0; i < kb; i++) {
                yoff[i] = sp->off[(c0 + i) * RS + rs];
            }
            const FN(fc_tile_add_kernel) kernel = sp->ks->tile_add[kb];
            const int vw = fc_tile_nv[kb] * sp->ks->lanes;
            const REAL *wb = sp->wt + ((t.g * RS + rs) * Cg + c0) * Kg;
            for (int64_t v = 0; v < v_end; v += vw) {
                kernel(dxb + v, yoff, dyb + v, sp->dy_off, Kg, wb);
            }
        }
    }
    FN(unfill_image)(sp->dx + (t.n * pb->C + t.g * Cg) * pb->H * pb->W, dxb, gm, pb);
}

/* The data gradient as the forward's exact adjoint: where the forward reads
 * x_band[v + off[t]], this adds w[k][t] * dy[k][v] into the same place of a dx band
 * buffer. One band is the whole image (bands would overlap on their halo rows). */
static fc_status FN(backward_data_scatter)(REAL *dx, const REAL *dy, const REAL *w,
                                           const fc_conv_problem *pb, int nthreads)
{
    const int64_t G = pb->groups, Kg = pb->K / G, P = pb->P;
    fc_band_geom gm;
    band_geom(&gm, pb, P);
    FN(scatter_pass) sp = {.dx = dx, .dy = dy, .pb = pb, .gm = &gm, .ks = FN(kernels)()};
    /* dy rows: zeros for strips past the end; 64-byte multiples, so that the kernel's loads
     * of dy are aligned (an unaligned 64-byte load always splits two cache lines) */
    sp.ldd = round_up(P * gm.pitch + FC_TILE_VW_MAX, 64 / (int64_t)sizeof(REAL));
    int64_t *off = tap_offsets(&gm, pb, 0);
    int64_t *dy_off = malloc((size_t)Kg * sizeof(int64_t));
    REAL *wt = malloc((size_t)(pb->K * gm.taps) * sizeof(REAL));
    fc_status status = FC_ERR_NOMEM;
    if (off != NULL && dy_off != NULL && wt != NULL) {
        for (int64_t k = 0; k < Kg; k++) {
            dy_off[k] = k * sp.ldd;
        }
        FN(pack_scatter_weights)(wt, w, pb);
        sp.off = off;
        sp.dy_off = dy_off;
        sp.wt = wt;
        const fc_item_loop loop = {
            .gm = &gm, .items = pb->N * G, .N = pb->N, .groups = G, .P = P,
            .team = nthreads, .fixed_split = 0,
            .ws = {.bytes = {(size_t)gm.size * sizeof(REAL),
                             (size_t)(Kg * sp.ldd) * sizeof(REAL)},
                   .zeroed = {0, 1}},
            .run = FN(backward_data_scatter_item), .pass = &sp,
        };
        status = run_items(&loop);
    }
    free(off);
    free(dy_off);
    free(wt);
    return status;
}

/* wsub (C, Kg, R', S') <- the sub-filters of one stride phase, flipped:
 * wsub[g*Cg + c][k][i][j] = w[g*Kg + k][c][r][s] with r = first_h + (R'-1-i)*step_h,
 * s = first_w + (S'-1-j)*step_w. */
static void FN(pack_phase_weights)(REAL *wsub, const REAL *w, const fc_conv_problem *pb,
                                   const fc_phase_axis *ah, const fc_phase_axis *aw)
{
    const int64_t G = pb->groups, Cg = pb->C / G, Kg = pb->K / G;
    const int64_t Rs = ah->ntaps, Ss = aw->ntaps;
    for (int64_t g = 0; g < G; g++) {
        for (int64_t c = 0; c < Cg; c++) {
            for (int64_t k = 0; k < Kg; k++) {
                const REAL *wk = w + ((g * Kg + k) * Cg + c) * pb->R * pb->S;
                REAL *dst = wsub + ((g * Cg + c) * Kg + k) * Rs * Ss;
                for (int64_t i = 0; i < Rs; i++) {
                    const int64_t r = ah->first + (Rs - 1 - i) * ah->tap_step;
                    for (int64_t j = 0; j < Ss; j++) {
                        const int64_t s = aw->first + (Ss - 1 - j) * aw->tap_step;
                        dst[i * Ss + j] = wk[r * pb->S + s];
                    }
                }
            }
        }
    }
}

/* One stride phase (a, b) of the gather form: its pixels of dx, as a stride-1 correlation
 * of dy (the input: K channels, P x Q) with the phase's flipped sub-filters, planned by the
 * plan's rules for that sub-problem and its output columns stride_w apart. */
static fc_status FN(gather_phase)(REAL *dx, const REAL *dy, const REAL *w, REAL *wsub,
                                  const fc_conv_problem *pb, const fc_out_layout *yl,
                                  int64_t a, int64_t b, int nthreads)
{
    fc_phase_axis ah, aw;
    phase_axis(&ah, pb->H, pb->R, pb->stride_h, pb->dil_h, pb->pad_top, a);
    phase_axis(&aw, pb->W, pb->S, pb->stride_w, pb->dil_w, pb->pad_left, b);
    if (ah.nout == 0 || aw.nout == 0) {
        return FC_OK;
    }
    REAL *dx_phase = dx + ah.out0 * pb->W + aw.out0;
    if (ah.ntaps == 0 || aw.ntaps == 0) {
        /* no filter tap reaches these pixels of dx */
        FN(zero_outputs)(dx_phase, yl, pb->N, pb->C, ah.nout, aw.nout);
        return FC_OK;
    }
    FN(pack_phase_weights)(wsub, w, pb, &ah, &aw);
    /* pad_bottom/right are not read by correlate */
    const fc_conv_problem sub = {
        .N = pb->N, .C = pb->K, .H = pb->P, .W = pb->Q,
        .K = pb->C, .R = ah.ntaps, .S = aw.ntaps,
        .stride_h = 1, .stride_w = 1,
        .pad_top = ah.pad, .pad_bottom = 0, .pad_left = aw.pad, .pad_right = 0,
        .dil_h = ah.dil, .dil_w = aw.dil,
        .groups = pb->groups, .P = ah.nout, .Q = aw.nout,
    };
    const fc_vector_shape vs = FN(vector_shape)();
    fc_direct_plan sub_plan;
    plan_correlation(&sub_plan, &sub, nthreads, &vs, yl->col);
    return FN(correlate)(dx_phase, yl, dy, wsub, NULL, &sub, &sub_plan, nthreads);
}

/* The data gradient as stride_h x stride_w stride-1 correlations of dy with flipped,
 * transposed sub-filters (see phase_axis), each writing every stride-th pixel of dx; a
 * stride-1 layer is a single correlation writing all of dx. Works for any problem (dy is
 * cut in bands like x in the forward); computes the zero padding's products too. */
static fc_status FN(backward_data_gather)(REAL *dx, const REAL *dy, const REAL *w,
                                          const fc_conv_problem *pb, int nthreads)
{
    const int64_t H = pb->H, W = pb->W;
    const fc_out_layout yl = {pb->C * H * W, H * W, pb->stride_h * W, pb->stride_w};
    REAL *wsub = malloc((size_t)(pb->C * (pb->K / pb->groups) * pb->R * pb->S) * sizeof(REAL));
    if (wsub == NULL) {
        return FC_ERR_NOMEM;
    }
    fc_status status = FC_OK;
    for (int64_t a = 0; a < pb->stride_h && status == FC_OK; a++) {
        for (int64_t b = 0; b < pb->stride_w && status == FC_OK; b++) {
            status = FN(gather_phase)(dx, dy, w, wsub, pb, &yl, a, b, nthreads);
        }
    }
    free(wsub);
    return status;
}

/* The data gradient as plain loops over the products its definition has: for weights
 * holding an inf or NaN, which the fast forms would multiply by zeros (dy's padding, or the
 * numbers past a row's end), giving NaN where the gradient is finite or inf. */
static fc_status FN(backward_data_loops)(REAL *dx, const REAL *dy, const REAL *w,
                                         const fc_conv_problem *pb)
{
    const int64_t Cg = pb->C / pb->groups, Kg = pb->K / pb->groups;
    const int64_t P = pb->P, Q = pb->Q, H = pb->H, W = pb->W;

#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < pb->N * pb->C; nc++) {
        const int64_t n = nc / pb->C, c = nc % pb->C, g = c / Cg;
        REAL *dx_plane = dx + nc * H * W;
        memset(dx_plane, 0, (size_t)(H * W) * sizeof(REAL));
        for (int64_t k = g * Kg; k < (g + 1) * Kg; k++) {
            const REAL *dy_plane = dy + (n * pb->K + k) * P * Q;
            const REAL *w_cs = w + (k * Cg + c % Cg) * pb->R * pb->S;
            for (int64_t r = 0; r < pb->R; r++) {
                int64_t p_lo, p_hi;
                fc_valid_range(P, H, pb->stride_h, fc_offset_h(pb, r), &p_lo, &p_hi);
                for (int64_t s = 0; s < pb->S; s++) {
                    int64_t q_lo, q_hi;
                    fc_valid_range(Q, W, pb->stride_w, fc_offset_w(pb, s), &q_lo, &q_hi);
                    for (int64_t p = p_lo; p < p_hi; p++) {
                        REAL *dx_row = dx_plane + (p * pb->stride_h + fc_offset_h(pb, r)) * W;
                        for (int64_t q = q_lo; q < q_hi; q++) {
                            dx_row[q * pb->stride_w + fc_offset_w(pb, s)]
                                += w_cs[r * pb->S + s] * dy_plane[p * Q + q];
                        }
                    }
                }
            }
        }
    }
    return FC_OK;
}

fc_status FN(fc_conv_direct_backward_data)(REAL *dx, const REAL *dy, const REAL *w,
                                           const fc_conv_problem *pb)
{
    fc_direct_plan plan;
    const int nthreads = FN(plan_call)(&plan, pb);
    const int64_t wsize = pb->K * (pb->C / pb->groups) * pb->R * pb->S;
    const fc_direct_data_variant variant = data_variant(&plan, FN(all_finite)(w, wsize));
    count_run(&data_runs[variant]);
    switch (variant) {
    case FC_DIRECT_DATA_SCATTER:
        return FN(backward_data_scatter)(dx, dy, w, pb, nthreads);
    case FC_DIRECT_DATA_GATHER:
        return FN(backward_data_gather)(dx, dy, w, pb, nthreads);
    default:
        return FN(backward_data_loops)(dx, dy, w, pb);
    }
}

/* ---- weight gradient: dw = sum over n, p, q of dy times the x pixel each tap reads ---- */

/* What the items of a weight-gradient pass share. Thread th sums its items into
 * thread_sums(th): `first` for thread 0, partials + (th - 1) * size for the others;
 * fc_add_partials then adds them into `first` in thread order. */
typedef struct {
    REAL *first, *partials;
    int64_t size;                   /* elements of one thread's sums */
    const REAL *dy, *x;
    const fc_conv_problem *pb;
    const fc_band_geom *gm;
    const FN(fc_direct_kernels) *ks;
    const int64_t *off;             /* tap offsets, padded by FC_WGRAD_TB_MAX copies */
    int64_t ld;                     /* by pixels: elements per filter of the flat dy copy;
                                     * by filters: filters per pixel of dyt (ldv) */
    int flat_rows;                  /* by pixels: the plan's weight_rows_flat */
    int in_place;                   /* by filters: the plan's weight_reads_x_in_place */
} FN(weight_pass);

static REAL *FN(thread_sums)(const FN(weight_pass) *wp, int thread)
{
    return thread == 0 ? wp->first : wp->partials + (int64_t)(thread - 1) * wp->size;
}

/* One band by pixels: the forward's band buffer, then KB filters x TB taps of dw summed in
 * registers over the band's pixels: as one run of pixels numbered as in the forward, with
 * dy copied into that numbering and 0 past each row's end (flat rows, unless the band
 * holds an inf or NaN, which must not meet those zeros), else row by row with masked row
 * ends. */
static void FN(backward_weight_by_pixels_item)(const void *pass, fc_band_item t,
                                               void *const *ws, int thread)
{
    const FN(weight_pass) *wp = pass;
    const fc_conv_problem *pb = wp->pb;
    const fc_band_geom *gm = wp->gm;
    const int64_t Kg = pb->K / pb->groups, P = pb->P, Q = pb->Q, T = gm->taps;
    const int64_t nblocks = filter_blocks(Kg, FC_WGRAD_KB_MAX), ldd = wp->ld;
    REAL *my_dw = FN(thread_sums)(wp, thread);
    REAL *buf = ws[0], *dyb = ws[1];
    const REAL *dy_group = wp->dy + (t.n * pb->K + t.g * Kg) * P * Q;
    FN(item_band)(buf, 0, wp->x, t, gm, pb);      /* fills buf */
    const int flat = wp->flat_rows && FN(band_finite)(buf, t.rows, gm, pb);
    if (flat) {
        FN(fill_dy_band)(dyb, ldd, dy_group, Kg, t.p0, t.rows, gm->pitch, pb);
    }
    const int64_t v_end = (t.rows - 1) * gm->pitch + Q;
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t k0;
        int kb;
        filter_block(Kg, nblocks, b, &k0, &kb);
        const FN(fc_wgrad_kernel) kernel = wp->ks->wgrad[kb];
        const int tb = fc_wgrad_tb[kb];
        REAL *dw_block = my_dw + (t.g * Kg + k0) * T;
        for (int64_t t0 = 0; t0 < T; t0 += tb) {
            const int nt = (int)min64(tb, T - t0);
            if (flat) {
                /* one "row" of v_end pixels */
                kernel(dw_block + t0, T, nt, dyb + k0 * ldd, ldd, 0, buf, wp->off + t0,
                       0, 1, v_end);
            } else {
                kernel(dw_block + t0, T, nt, dy_group + (k0 * P + t.p0) * Q, P * Q, Q,
                       buf, wp->off + t0, gm->pitch, t.rows, Q);
            }
        }
    }
}

/* One band by filters: dy transposed to (pixels, filters), then TB taps x NV vectors of
 * filters of dw^T (G, T, ldv) in registers over the band's pixels. */
static void FN(backward_weight_by_filters_item)(const void *pass, fc_band_item t,
                                                void *const *ws, int thread)
{
    const FN(weight_pass) *wp = pass;
    REAL *my_dwt = FN(thread_sums)(wp, thread);
    REAL *dyt = ws[1];
    const fc_conv_problem *pb = wp->pb;
    const int64_t Kg = pb->K / pb->groups, P = pb->P, Q = pb->Q, T = wp->gm->taps;
    const int64_t VL = wp->ks->lanes, ldv = wp->ld, pitch = wp->gm->pitch;
    const int64_t nblocks = filter_blocks(ldv / VL, FC_WGRADK_NV_MAX);
    const REAL *band = FN(item_band)(ws[0], wp->in_place, wp->x, t, wp->gm, pb);
    FN(fill_dy_transposed)(dyt, ldv, wp->dy + (t.n * pb->K + t.g * Kg) * P * Q, Kg, t.p0,
                           t.rows, pb);
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t v0;
        int nv;
        filter_block(ldv / VL, nblocks, b, &v0, &nv);
        const FN(fc_wgradk_kernel) kernel = wp->ks->wgradk[nv];
        const int tb = fc_wgrad_tb[nv];
        for (int64_t t0 = 0; t0 < T; t0 += tb) {
            kernel(my_dwt + (t.g * T + t0) * ldv + v0 * VL, ldv, (int)min64(tb, T - t0),
                   dyt + v0 * VL, ldv, band, wp->off + t0, pitch, t.rows, Q);
        }
    }
}

/* Runs a weight-gradient pass whose items sum into wp->first (zeroed by the caller) and
 * per-thread partials, then adds the partials in thread order. */
static fc_status FN(sum_weight_items)(FN(weight_pass) *wp, fc_item_fn run,
                                      const fc_thread_ws *ws, int nthreads)
{
    const fc_conv_problem *pb = wp->pb;
    const int64_t items = pb->N * pb->groups * wp->gm->nbands;
    const int team = items < nthreads ? (int)items : nthreads;
    int64_t *off = tap_offsets(wp->gm, pb, FC_WGRAD_TB_MAX);
    REAL *partials = team > 1 ? calloc((size_t)((team - 1) * wp->size), sizeof(REAL)) : NULL;
    if (off == NULL || (team > 1 && partials == NULL)) {
        free(off);
        free(partials);
        return FC_ERR_NOMEM;
    }
    wp->off = off;
    wp->partials = partials;
    const fc_item_loop loop = {
        .gm = wp->gm, .items = items, .N = pb->N, .groups = pb->groups, .P = pb->P,
        .team = team, .fixed_split = 1, .ws = *ws, .run = run, .pass = wp,
    };
    const fc_status status = run_items(&loop);
    FN(fc_add_partials)(wp->first, partials, team, wp->size);
    free(partials);
    free(off);
    return status;
}

/* Weight gradient vectorised over pixels (wgrad): each thread sums into its own copy of dw
 * (thread 0 into dw itself). */
static fc_status FN(backward_weight_by_pixels)(REAL *dw, FN(weight_pass) *wp, int nthreads)
{
    const fc_band_geom *gm = wp->gm;
    const int64_t Kg = wp->pb->K / wp->pb->groups;
    wp->first = dw;
    wp->size = wp->pb->K * gm->taps;
    /* dy rows of the flat form, 64-byte multiples so the kernel's loads of dy are aligned */
    wp->ld = round_up(gm->band * gm->pitch, 64 / (int64_t)sizeof(REAL));
    memset(dw, 0, (size_t)wp->size * sizeof(REAL));
    const fc_thread_ws ws = {
        .bytes = {(size_t)gm->size * sizeof(REAL),
                  wp->flat_rows ? (size_t)(Kg * wp->ld) * sizeof(REAL) : 0},
        .zeroed = {1, 0},
    };
    return FN(sum_weight_items)(wp, FN(backward_weight_by_pixels_item), &ws, nthreads);
}

/* Weight gradient vectorised over filters (wgradk): each thread sums into its own
 * dw^T (G, T, ldv), filters contiguous; the sum is transposed into dw. */
static fc_status FN(backward_weight_by_filters)(REAL *dw, FN(weight_pass) *wp, int nthreads)
{
    const fc_band_geom *gm = wp->gm;
    const int64_t G = wp->pb->groups, Kg = wp->pb->K / G, T = gm->taps, VL = wp->ks->lanes;
    const int64_t ldv = fc_ceil_div(Kg, VL) * VL;
    wp->ld = ldv;
    wp->size = G * T * ldv;
    wp->first = calloc((size_t)wp->size, sizeof(REAL));
    if (wp->first == NULL) {
        return FC_ERR_NOMEM;
    }
    const fc_thread_ws ws = {
        .bytes = {wp->in_place ? 0 : (size_t)gm->size * sizeof(REAL),
                  (size_t)(gm->band * wp->pb->Q * ldv) * sizeof(REAL)},
        .zeroed = {1, 0},
    };
    const fc_status status = FN(sum_weight_items)(wp, FN(backward_weight_by_filters_item),
                                                  &ws, nthreads);
    for (int64_t g = 0; g < G; g++) {
        wp->ks->transpose(dw + g * Kg * T, T, wp->first + g * T * ldv, ldv, T, Kg);
    }
    free(wp->first);
    return status;
}

fc_status FN(fc_conv_direct_backward_weight)(REAL *dw, const REAL *dy, const REAL *x,
                                             const fc_conv_problem *pb)
{
    fc_direct_plan plan;
    const int nthreads = FN(plan_call)(&plan, pb);
    count_run(&weight_runs[plan.backward_weight]);
    fc_band_geom gm;
    band_geom(&gm, pb, plan.band_rows);
    FN(weight_pass) wp = {
        .dy = dy, .x = x, .pb = pb, .gm = &gm, .ks = FN(kernels)(),
        .flat_rows = plan.weight_rows_flat, .in_place = plan.weight_reads_x_in_place,
    };
    if (plan.backward_weight == FC_DIRECT_WEIGHT_BY_FILTERS) {
        return FN(backward_weight_by_filters)(dw, &wp, nthreads);
    }
    return FN(backward_weight_by_pixels)(dw, &wp, nthreads);
}

/* ---- bias gradient: db = sum over n, p, q of dy ---- */

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
    return ((part[0] + part[4]) + (part[1] + part[5]))
         + ((part[2] + part[6]) + (part[3] + part[7]));
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
