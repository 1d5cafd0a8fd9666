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
                } else if (into_phases && sw == 2) {
                    /* the common stride, a constant: the loop vectorises as shuffles */
                    for (int64_t v = 0; v < n; v++) {
                        row[v] = run[2 * v];
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

/* ---- the channels-last path (fastconv.h: FC_DEPTHWISE_CHANNELS_LAST_MAX_PIXELS) ---- */

/* The channels-last micro-kernels of the current SIMD level. */
static const FN(fc_dw_cl_kernels) *FN(dw_cl_kernels_now)(void)
{
#if FC_DW_HAVE_X86
    if (fc_simd_avx512()) {
        return &FN(dw_cl_kernels_avx512);
    }
    if (fc_simd_avx2()) {
        return &FN(dw_cl_kernels_avx2);
    }
#endif
    return &FN(dw_cl_kernels_generic);
}

/* Bytes of one thread's buffers in the channels-last passes: the padded x block, the dy or
 * y block, the data gradient's padded dy block (dw_cl_flip_geom) and the dx block. */
static int64_t FN(dw_cl_thread_bytes)(const fc_dw_cl_geom *g)
{
    const int64_t flip = (g->H + (g->R - 1) * g->dh) * (g->W + (g->S - 1) * g->dw);
    return (g->Hp * g->Wp + g->P * g->Q + flip + g->H * g->W + g->R * g->S) * DW_CB(REAL)
           * (int64_t)sizeof(REAL) + 5 * 64;
}

/* 1 when the passes run pb (which fc_depthwise_supports accepts) channels-last: multiplier
 * 1, input planes of at most FC_DEPTHWISE_CHANNELS_LAST_MAX_PIXELS pixels, and the buffers
 * within the workspace limit. Fills g. */
static int FN(dw_cl_applies)(fc_dw_cl_geom *g, const fc_conv_problem *pb)
{
    if (pb->K != pb->C || pb->H * pb->W > FC_DEPTHWISE_CHANNELS_LAST_MAX_PIXELS) {
        return 0;
    }
    g->H = pb->H;
    g->W = pb->W;
    g->P = pb->P;
    g->Q = pb->Q;
    g->R = pb->R;
    g->S = pb->S;
    g->sh = pb->stride_h;
    g->sw = pb->stride_w;
    g->dh = pb->dil_h;
    g->dw = pb->dil_w;
    g->pt = pb->pad_top;
    g->pl = pb->pad_left;
    g->Hp = pb->H + pb->pad_top + pb->pad_bottom;
    g->Wp = pb->W + pb->pad_left + pb->pad_right;
    return FN(dw_cl_thread_bytes)(g) <= FC_DEPTHWISE_MAX_WORKSPACE_BYTES;
}

/* Each pixel's place in the zero-padded channels-last x (fc_dw_cl_geom), for dw_cl_fill;
 * NULL when out of memory. */
static int64_t *FN(dw_cl_positions)(const fc_dw_cl_geom *g)
{
    int64_t *pos = malloc((size_t)(g->H * g->W + 1) * sizeof(int64_t));
    if (pos != NULL) {
        for (int64_t h = 0; h < g->H; h++) {
            for (int64_t w = 0; w < g->W; w++) {
                pos[h * g->W + w] = (h + g->pt) * g->Wp + w + g->pl;
            }
        }
    }
    return pos;
}

/* The filters of every channel block channels-last, (blocks, taps, CB), the lanes past the
 * last channel zero; NULL when out of memory. */
static REAL *FN(dw_cl_filters)(const REAL *w, const fc_conv_problem *pb, int64_t blocks)
{
    const int64_t cb = DW_CB(REAL), taps = pb->R * pb->S;
    REAL *wcl = dw_calloc(blocks * taps * cb * (int64_t)sizeof(REAL));
    if (wcl == NULL) {
        return NULL;
    }
    for (int64_t c = 0; c < pb->C; c++) {
        REAL *dst = wcl + c / cb * taps * cb + c % cb;
        for (int64_t t = 0; t < taps; t++) {
            dst[t * cb] = w[c * taps + t];
        }
    }
    return wcl;
}

static fc_status FN(dw_cl_forward_pass)(REAL *y, const REAL *x, const REAL *w,
                                        const REAL *bias, const fc_conv_problem *pb,
                                        const fc_dw_cl_geom *g)
{
    const int64_t cb = DW_CB(REAL), taps = pb->R * pb->S;
    const int64_t blocks = fc_ceil_div(pb->C, cb), items = pb->N * blocks;
    if (items == 0) {
        return FC_OK;
    }
    REAL *wcl = FN(dw_cl_filters)(w, pb, blocks);
    int64_t *pos = FN(dw_cl_positions)(g);
    if (wcl == NULL || pos == NULL) {
        free(wcl);
        free(pos);
        return FC_ERR_NOMEM;
    }
    const FN(fc_dw_cl_kernels) *kern = FN(dw_cl_kernels_now)();
#ifdef _OPENMP
    const int team = dw_team(items, pb->N * pb->K * pb->P * pb->Q * taps);
#endif
    int failed = 0;

#pragma omp parallel num_threads(team) reduction(|| : failed)
    {
        REAL *xb = dw_calloc(g->Hp * g->Wp * cb * (int64_t)sizeof(REAL));
        REAL *yb = dw_calloc(g->P * g->Q * cb * (int64_t)sizeof(REAL));
        failed = xb == NULL || yb == NULL;
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            if (failed) {
                continue;
            }
            const int64_t n = it / blocks, c0 = it % blocks * cb;
            const int64_t lanes = pb->C - c0 < cb ? pb->C - c0 : cb;
            kern->fill(xb, x + (n * pb->C + c0) * pb->H * pb->W, lanes, pb->H * pb->W, pos,
                       pb->H * pb->W);
            kern->forward(yb, xb, wcl + c0 * taps, g);
            REAL *yc = y + (n * pb->K + c0) * pb->P * pb->Q;
            kern->unfill(yc, yb, lanes, pb->P * pb->Q, bias == NULL ? NULL : bias + c0);
            if (pb->relu) {
                FN(fc_relu_span)(yc, lanes * pb->P * pb->Q);
            }
        }
        free(xb);
        free(yb);
    }
    free(wcl);
    free(pos);
    return failed ? FC_ERR_NOMEM : FC_OK;
}

/* The data gradient's tables (fc_dw_cl_lists) along one axis: n_in input positions, n_out
 * output positions of stride stride, filter taps taps of dilation dil, padding pad; tap
 * numbers scaled by tap_scale and output offsets by at_scale. */
static int FN(dw_cl_lists_of)(fc_dw_cl_lists *l, int64_t n_in, int64_t n_out, int64_t taps,
                              int64_t stride, int64_t dil, int64_t pad, int64_t tap_scale,
                              int64_t at_scale)
{
    l->count = malloc((size_t)(n_in * (1 + 2 * taps) + 1) * sizeof(int64_t));
    if (l->count == NULL) {
        return 0;
    }
    l->tap = l->count + n_in;
    l->at = l->tap + n_in * taps;
    for (int64_t i = 0; i < n_in; i++) {
        int64_t count = 0;
        for (int64_t r = 0; r < taps; r++) {
            const int64_t num = i + pad - r * dil;
            if (num >= 0 && num % stride == 0 && num / stride < n_out) {
                l->tap[i * taps + count] = r * tap_scale;
                l->at[i * taps + count] = num / stride * at_scale;
                count++;
            }
        }
        l->count[i] = count;
    }
    return 1;
}

/* At stride 1 the data gradient is a correlation of dy, zero-padded by the filter's reach
 * less the padding, with the flipped filters: the forward kernel. Its products with the
 * zeros around dy are not the definition's, so it runs only on channel blocks whose
 * filters are all finite (0 x inf would be NaN), and only where the padding is at most the
 * reach on every side (the padded dy then holds all of dy); otherwise, and at other
 * strides, the kernel that sums the definition's products alone. The flipped correlation's
 * geometry in *gf (x's place taken by the padded dy, y's by dx: dw_cl_positions gives dy's
 * place in it); 0 where it does not apply. */
static int FN(dw_cl_flip_geom)(fc_dw_cl_geom *gf, const fc_conv_problem *pb)
{
    const int64_t reach_h = (pb->R - 1) * pb->dil_h, reach_w = (pb->S - 1) * pb->dil_w;
    if (pb->stride_h != 1 || pb->stride_w != 1 || pb->pad_top > reach_h
        || pb->pad_bottom > reach_h || pb->pad_left > reach_w || pb->pad_right > reach_w) {
        return 0;
    }
    *gf = (fc_dw_cl_geom){.H = pb->P, .W = pb->Q, .P = pb->H, .Q = pb->W, .R = pb->R,
                          .S = pb->S, .sh = 1, .sw = 1, .dh = pb->dil_h, .dw = pb->dil_w,
                          .pt = reach_h - pb->pad_top, .pl = reach_w - pb->pad_left,
                          .Hp = pb->H + reach_h, .Wp = pb->W + reach_w};
    return 1;
}

static fc_status FN(dw_cl_data_pass)(REAL *dx, const REAL *dy, const REAL *w,
                                     const fc_conv_problem *pb, const fc_dw_cl_geom *g)
{
    const int64_t cb = DW_CB(REAL), taps = pb->R * pb->S;
    const int64_t blocks = fc_ceil_div(pb->C, cb), items = pb->N * blocks;
    if (items == 0) {
        return FC_OK;
    }
    fc_dw_cl_geom gf;
    const int flip = FN(dw_cl_flip_geom)(&gf, pb);
    fc_dw_cl_lists rows, cols;
    rows.count = cols.count = NULL;
    REAL *wcl = FN(dw_cl_filters)(w, pb, blocks);
    /* per block: 1 when the flipped correlation runs it; then its filters flipped */
    char *flipped = calloc((size_t)blocks, 1);
    REAL *wflip = flip ? dw_calloc(blocks * taps * cb * (int64_t)sizeof(REAL)) : NULL;
    int64_t *pos = flip ? FN(dw_cl_positions)(&gf) : NULL;
    int ok = wcl != NULL && flipped != NULL && (!flip || (wflip != NULL && pos != NULL))
             && FN(dw_cl_lists_of)(&rows, pb->H, pb->P, pb->R, pb->stride_h, pb->dil_h,
                                   pb->pad_top, pb->S, pb->Q * cb)
             && FN(dw_cl_lists_of)(&cols, pb->W, pb->Q, pb->S, pb->stride_w, pb->dil_w,
                                   pb->pad_left, 1, cb);
    if (ok && flip) {
        const FN(fc_dw_kernels) *check = FN(dw_kernels_now)();
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t c0 = b * cb, lanes = pb->C - c0 < cb ? pb->C - c0 : cb;
            flipped[b] = (char)check->all_finite(w + c0 * taps, lanes * taps);
            for (int64_t t = 0; t < taps; t++) {
                memcpy(wflip + (b * taps + t) * cb, wcl + (b * taps + taps - 1 - t) * cb,
                       (size_t)cb * sizeof(REAL));
            }
        }
    }
    if (!ok) {
        free(wcl);
        free(flipped);
        free(wflip);
        free(pos);
        free(rows.count);
        free(cols.count);
        return FC_ERR_NOMEM;
    }
    const FN(fc_dw_cl_kernels) *kern = FN(dw_cl_kernels_now)();
#ifdef _OPENMP
    const int team = dw_team(items, pb->N * pb->K * pb->P * pb->Q * taps);
#endif
    int failed = 0;

#pragma omp parallel num_threads(team) reduction(|| : failed)
    {
        REAL *dyb = dw_calloc(g->P * g->Q * cb * (int64_t)sizeof(REAL));
        REAL *dybp = flip ? dw_calloc(gf.Hp * gf.Wp * cb * (int64_t)sizeof(REAL)) : NULL;
        REAL *dxb = dw_calloc(g->H * g->W * cb * (int64_t)sizeof(REAL));
        failed = dyb == NULL || dxb == NULL || (flip && dybp == NULL);
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            if (failed) {
                continue;
            }
            const int64_t n = it / blocks, b = it % blocks, c0 = b * cb;
            const int64_t lanes = pb->C - c0 < cb ? pb->C - c0 : cb;
            const REAL *dyn = dy + (n * pb->K + c0) * pb->P * pb->Q;
            if (flipped[b]) {
                kern->fill(dybp, dyn, lanes, pb->P * pb->Q, pos, pb->P * pb->Q);
                kern->forward(dxb, dybp, wflip + c0 * taps, &gf);
            } else {
                kern->fill(dyb, dyn, lanes, pb->P * pb->Q, NULL, pb->P * pb->Q);
                kern->data(dxb, dyb, wcl + c0 * taps, g, &rows, &cols);
            }
            kern->unfill(dx + (n * pb->C + c0) * pb->H * pb->W, dxb, lanes, pb->H * pb->W,
                         NULL);
        }
        free(dyb);
        free(dybp);
        free(dxb);
    }
    free(wcl);
    free(flipped);
    free(wflip);
    free(pos);
    free(rows.count);
    free(cols.count);
    return failed ? FC_ERR_NOMEM : FC_OK;
}

/* dw has been zeroed. Each thread owns whole channel blocks and sums their images in order,
 * so the bits do not depend on the thread count. */
static fc_status FN(dw_cl_weight_pass)(REAL *dw, const REAL *dy, const REAL *x,
                                       const fc_conv_problem *pb, const fc_dw_cl_geom *g)
{
    const int64_t cb = DW_CB(REAL), taps = pb->R * pb->S;
    const int64_t blocks = fc_ceil_div(pb->C, cb);
    if (pb->N == 0) {
        return FC_OK;
    }
    int64_t *pos = FN(dw_cl_positions)(g);
    if (pos == NULL) {
        return FC_ERR_NOMEM;
    }
    const FN(fc_dw_cl_kernels) *kern = FN(dw_cl_kernels_now)();
#ifdef _OPENMP
    const int team = dw_team(blocks, pb->N * pb->K * pb->P * pb->Q * taps);
#endif
    int failed = 0;

#pragma omp parallel num_threads(team) reduction(|| : failed)
    {
        REAL *xb = dw_calloc(g->Hp * g->Wp * cb * (int64_t)sizeof(REAL));
        REAL *dyb = dw_calloc(g->P * g->Q * cb * (int64_t)sizeof(REAL));
        REAL *sums = dw_calloc(taps * cb * (int64_t)sizeof(REAL));
        failed = xb == NULL || dyb == NULL || sums == NULL;
#pragma omp for schedule(dynamic)
        for (int64_t b = 0; b < blocks; b++) {
            if (failed) {
                continue;
            }
            const int64_t c0 = b * cb, lanes = pb->C - c0 < cb ? pb->C - c0 : cb;
            memset(sums, 0, (size_t)(taps * cb) * sizeof(REAL));
            for (int64_t n = 0; n < pb->N; n++) {
                kern->fill(xb, x + (n * pb->C + c0) * pb->H * pb->W, lanes, pb->H * pb->W,
                           pos, pb->H * pb->W);
                kern->fill(dyb, dy + (n * pb->K + c0) * pb->P * pb->Q, lanes, pb->P * pb->Q,
                           NULL, pb->P * pb->Q);
                kern->weight(sums, xb, dyb, g);
            }
            for (int64_t j = 0; j < lanes; j++) {
                for (int64_t t = 0; t < taps; t++) {
                    dw[(c0 + j) * taps + t] = sums[t * cb + j];
                }
            }
        }
        free(xb);
        free(dyb);
        free(sums);
    }
    free(pos);
    return failed ? FC_ERR_NOMEM : FC_OK;
}

/* ---- forward ---- */

fc_status FN(fc_conv_depthwise_forward)(REAL *y, const REAL *x, const REAL *w,
                                        const REAL *bias, const fc_conv_problem *pb)
{
    /* y (N, K, P, Q) = x (N, C, H, W) correlated plane by plane with w (K, 1, R, S) + bias,
     * then the ReLU where pb->relu is set */
    fc_dw_cl_geom clg;
    if (fc_depthwise_supports(pb) && FN(dw_cl_applies)(&clg, pb)) {
        return FN(dw_cl_forward_pass)(y, x, w, bias, pb, &clg);
    }
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
                if (pb->relu) {
                    FN(fc_relu_span)(yk, pb->P * pb->Q);
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
    fc_dw_cl_geom clg;
    if (fc_depthwise_supports(pb) && FN(dw_cl_applies)(&clg, pb)) {
        return FN(dw_cl_data_pass)(dx, dy, w, pb, &clg);
    }
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
    fc_dw_cl_geom clg;
    if (FN(dw_cl_applies)(&clg, pb)) {
        free(tp.off);
        return FN(dw_cl_weight_pass)(dw, dy, x, pb, &clg);
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
