/* conv_im2col_impl.h: im2col/col2im and the three GEMM-based kernels for one element type.
 * Included by conv_im2col.c with REAL, FN(name) and GEMM defined.
 *
 * For image n and group g the convolution is one matrix product:
 *   y[n, g] (Kg x P*Q) = w[g] (Kg x Cg*R*S) @ col (Cg*R*S x P*Q)
 * where col holds, for each filter tap (c, r, s), the input pixel every output reads.
 * col is built for a band of output rows at a time (bounded workspace). Work is split
 * over (n, g) pairs when there are enough of them, else inside the GEMM. */

/* col (Cg*R*S, (p1-p0)*Q) <- the taps of output rows [p0, p1) of x_group (Cg, H, W). */
static void FN(im2col)(REAL *col, const REAL *x_group, int64_t Cg, int64_t p0, int64_t p1,
                       const fc_conv_problem *pb)
{
    const int64_t Q = pb->Q, H = pb->H, W = pb->W, cols = (p1 - p0) * Q;
    for (int64_t c = 0; c < Cg; c++) {
        for (int64_t r = 0; r < pb->R; r++) {
            for (int64_t s = 0; s < pb->S; s++) {
                REAL *col_row = col + ((c * pb->R + r) * pb->S + s) * cols;
                const int64_t off_w = fc_offset_w(pb, s);
                int64_t q_lo, q_hi;
                fc_valid_range(Q, W, pb->stride_w, off_w, &q_lo, &q_hi);
                for (int64_t p = p0; p < p1; p++) {
                    REAL *out = col_row + (p - p0) * Q;
                    const int64_t h = p * pb->stride_h + fc_offset_h(pb, r);
                    if (h < 0 || h >= H) {
                        memset(out, 0, (size_t)Q * sizeof(REAL));
                        continue;
                    }
                    const REAL *in = x_group + (c * H + h) * W + off_w;
                    for (int64_t q = 0; q < q_lo; q++) {
                        out[q] = 0;
                    }
                    for (int64_t q = q_lo; q < q_hi; q++) {
                        out[q] = in[q * pb->stride_w];
                    }
                    for (int64_t q = q_hi; q < Q; q++) {
                        out[q] = 0;
                    }
                }
            }
        }
    }
}

/* dx_group (Cg, H, W) += col (Cg*R*S, (p1-p0)*Q) scattered back: the adjoint of im2col. */
static void FN(col2im)(REAL *dx_group, const REAL *col, int64_t Cg, int64_t p0, int64_t p1,
                       const fc_conv_problem *pb)
{
    const int64_t Q = pb->Q, H = pb->H, W = pb->W, cols = (p1 - p0) * Q;
    for (int64_t c = 0; c < Cg; c++) {
        for (int64_t r = 0; r < pb->R; r++) {
            for (int64_t s = 0; s < pb->S; s++) {
                const REAL *col_row = col + ((c * pb->R + r) * pb->S + s) * cols;
                const int64_t off_w = fc_offset_w(pb, s);
                int64_t q_lo, q_hi;
                fc_valid_range(Q, W, pb->stride_w, off_w, &q_lo, &q_hi);
                for (int64_t p = p0; p < p1; p++) {
                    const int64_t h = p * pb->stride_h + fc_offset_h(pb, r);
                    if (h < 0 || h >= H) {
                        continue;
                    }
                    const REAL *in = col_row + (p - p0) * Q;
                    REAL *out = dx_group + (c * H + h) * W + off_w;
                    for (int64_t q = q_lo; q < q_hi; q++) {
                        out[q * pb->stride_w] += in[q];
                    }
                }
            }
        }
    }
}

/* Output rows per band so that one band's columns fit the workspace (at least one row). */
static int64_t FN(band_rows)(const fc_conv_problem *pb)
{
    const int64_t crs = (pb->C / pb->groups) * pb->R * pb->S;
    int64_t rows = FC_IM2COL_WORKSPACE_BYTES / ((int64_t)sizeof(REAL) * crs * pb->Q);
    if (rows < 1) {
        rows = 1;
    }
    return rows < pb->P ? rows : pb->P;
}

/* The column matrix of output rows [p0, p1) of x_group: built into col, or, for a
 * pointwise filter, x_group itself (each column of x is already a tap). Its leading
 * dimension goes to *ld. */
static const REAL *FN(band_columns)(REAL *col, int64_t *ld, const REAL *x_group, int64_t Cg,
                                    int64_t p0, int64_t p1, const fc_conv_problem *pb)
{
    if (col == NULL) {
        *ld = pb->P * pb->Q;
        return x_group + p0 * pb->Q;
    }
    FN(im2col)(col, x_group, Cg, p0, p1, pb);
    *ld = (p1 - p0) * pb->Q;
    return col;
}

fc_status FN(fc_conv_im2col_forward)(REAL *y, const REAL *x, const REAL *w, const REAL *bias,
                                     const fc_conv_problem *pb)
{
    /* y (N, K, P, Q) = w (K, C/g, R, S) @ im2col(x (N, C, H, W)) + bias (K) */
    const int64_t Cg = pb->C / pb->groups, Kg = pb->K / pb->groups;
    const int64_t PQ = pb->P * pb->Q, crs = Cg * pb->R * pb->S, pairs = pb->N * pb->groups;
    const int64_t band = FN(band_rows)(pb);
    const int pointwise = is_pointwise(pb);
    const int nthreads = fc_get_num_threads();
    const int outer = pairs_in_parallel(pb, nthreads);
    const int gemm_threads = outer ? 1 : nthreads;
    int failed = 0;
    if (row_too_large(pb, sizeof(REAL))) {
        return FC_ERR_TOO_LARGE;
    }

#pragma omp parallel num_threads(outer ? nthreads : 1) reduction(|| : failed)
    {
        REAL *col = pointwise ? NULL : malloc((size_t)(crs * band * pb->Q) * sizeof(REAL));
        if (!pointwise && col == NULL) {
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t ng = 0; ng < pairs; ng++) {
            if (failed) {
                continue;
            }
            const int64_t n = ng / pb->groups, g = ng % pb->groups;
            const REAL *x_group = x + (n * pb->C + g * Cg) * pb->H * pb->W;
            REAL *y_group = y + (n * pb->K + g * Kg) * PQ;
            const REAL *w_group = w + g * Kg * crs;
            for (int64_t p0 = 0; p0 < pb->P; p0 += band) {
                const int64_t p1 = p0 + band < pb->P ? p0 + band : pb->P;
                const int64_t cols = (p1 - p0) * pb->Q;
                int64_t ldb;
                const REAL *b_mat = FN(band_columns)(col, &ldb, x_group, Cg, p0, p1, pb);
                if (GEMM(Kg, cols, crs, w_group, crs, 1, b_mat, ldb, 1,
                         0, y_group + p0 * pb->Q, PQ, gemm_threads) != FC_OK) {
                    failed = 1;
                    break;
                }
            }
            if (bias != NULL) {
                for (int64_t k = 0; k < Kg; k++) {
                    const REAL b = bias[g * Kg + k];
                    for (int64_t i = 0; i < PQ; i++) {
                        y_group[k * PQ + i] += b;
                    }
                }
            }
        }
        free(col);
    }
    return failed ? FC_ERR_NOMEM : FC_OK;
}

fc_status FN(fc_conv_im2col_backward_data)(REAL *dx, const REAL *dy, const REAL *w,
                                           const fc_conv_problem *pb)
{
    /* dx (N, C, H, W) = col2im(w (K, C/g, R, S)^T @ dy (N, K, P, Q)) */
    const int64_t Cg = pb->C / pb->groups, Kg = pb->K / pb->groups;
    const int64_t PQ = pb->P * pb->Q, crs = Cg * pb->R * pb->S, pairs = pb->N * pb->groups;
    const int64_t band = FN(band_rows)(pb);
    const int pointwise = is_pointwise(pb);
    const int nthreads = fc_get_num_threads();
    const int outer = pairs_in_parallel(pb, nthreads);
    const int gemm_threads = outer ? 1 : nthreads;
    int failed = 0;
    if (row_too_large(pb, sizeof(REAL))) {
        return FC_ERR_TOO_LARGE;
    }

#pragma omp parallel num_threads(outer ? nthreads : 1) reduction(|| : failed)
    {
        REAL *col = pointwise ? NULL : malloc((size_t)(crs * band * pb->Q) * sizeof(REAL));
        if (!pointwise && col == NULL) {
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t ng = 0; ng < pairs; ng++) {
            if (failed) {
                continue;
            }
            const int64_t n = ng / pb->groups, g = ng % pb->groups;
            REAL *dx_group = dx + (n * pb->C + g * Cg) * pb->H * pb->W;
            const REAL *dy_group = dy + (n * pb->K + g * Kg) * PQ;
            const REAL *w_group = w + g * Kg * crs;
            if (pointwise) {
                /* dx_group (Cg x HW) = w_group^T (Cg x Kg) @ dy_group (Kg x PQ), PQ == HW */
                if (GEMM(crs, PQ, Kg, w_group, 1, crs, dy_group, PQ, 1,
                         0, dx_group, PQ, gemm_threads) != FC_OK) {
                    failed = 1;
                }
                continue;
            }
            memset(dx_group, 0, (size_t)(Cg * pb->H * pb->W) * sizeof(REAL));
            for (int64_t p0 = 0; p0 < pb->P; p0 += band) {
                const int64_t p1 = p0 + band < pb->P ? p0 + band : pb->P;
                const int64_t cols = (p1 - p0) * pb->Q;
                if (GEMM(crs, cols, Kg, w_group, 1, crs, dy_group + p0 * pb->Q, PQ, 1,
                         0, col, cols, gemm_threads) != FC_OK) {
                    failed = 1;
                    break;
                }
                FN(col2im)(dx_group, col, Cg, p0, p1, pb);
            }
        }
        free(col);
    }
    return failed ? FC_ERR_NOMEM : FC_OK;
}

fc_status FN(fc_conv_im2col_backward_weight)(REAL *dw, const REAL *dy, const REAL *x,
                                             const fc_conv_problem *pb)
{
    /* dw (K, C/g, R, S) = sum over n of dy (N, K, P, Q) @ im2col(x (N, C, H, W))^T.
     * Each thread sums its own (n, g) pairs into a private copy of dw; the copies are then
     * added in thread order, so the result is bitwise reproducible at a given thread count. */
    const int64_t Cg = pb->C / pb->groups, Kg = pb->K / pb->groups;
    const int64_t PQ = pb->P * pb->Q, crs = Cg * pb->R * pb->S, pairs = pb->N * pb->groups;
    const int64_t band = FN(band_rows)(pb), dw_size = pb->K * crs;
    const int pointwise = is_pointwise(pb);
    const int nthreads = fc_get_num_threads();
    const int outer = pairs_in_parallel(pb, nthreads);
    const int team = outer ? nthreads : 1;
    const int gemm_threads = outer ? 1 : nthreads;
    int failed = 0;

    if (row_too_large(pb, sizeof(REAL))) {
        return FC_ERR_TOO_LARGE;
    }
    /* partial[t] is thread t's dw; thread 0 writes straight into dw. */
    REAL *partials = NULL;
    if (team > 1) {
        partials = calloc((size_t)((team - 1) * dw_size), sizeof(REAL));
        if (partials == NULL) {
            return FC_ERR_NOMEM;
        }
    }
    memset(dw, 0, (size_t)dw_size * sizeof(REAL));

#pragma omp parallel num_threads(team) reduction(|| : failed)
    {
        const int t = fc_thread_num();
        REAL *my_dw = t == 0 ? dw : partials + (t - 1) * dw_size;
        REAL *col = pointwise ? NULL : malloc((size_t)(crs * band * pb->Q) * sizeof(REAL));
        if (!pointwise && col == NULL) {
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t ng = 0; ng < pairs; ng++) {
            if (failed) {
                continue;
            }
            const int64_t n = ng / pb->groups, g = ng % pb->groups;
            const REAL *x_group = x + (n * pb->C + g * Cg) * pb->H * pb->W;
            const REAL *dy_group = dy + (n * pb->K + g * Kg) * PQ;
            for (int64_t p0 = 0; p0 < pb->P; p0 += band) {
                const int64_t p1 = p0 + band < pb->P ? p0 + band : pb->P;
                const int64_t cols = (p1 - p0) * pb->Q;
                int64_t ldb;
                const REAL *b_mat = FN(band_columns)(col, &ldb, x_group, Cg, p0, p1, pb);
                /* my_dw[g] (Kg x crs) += dy band (Kg x cols) @ col^T (cols x crs) */
                if (GEMM(Kg, crs, cols, dy_group + p0 * pb->Q, PQ, 1,
                         b_mat, 1, ldb,
                         1, my_dw + g * Kg * crs, crs, gemm_threads) != FC_OK) {
                    failed = 1;
                    break;
                }
            }
        }
        free(col);
    }
    FN(fc_add_partials)(dw, partials, team, dw_size);
    free(partials);
    return failed ? FC_ERR_NOMEM : FC_OK;
}
