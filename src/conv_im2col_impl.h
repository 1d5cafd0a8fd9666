/* conv_im2col_impl.h: im2col/col2im and the three GEMM-based kernels for one element type
 * (template.h: REAL, FN; the GEMM is FN(fc_gemm)). Included by conv_im2col.c.
 *
 * For image n and group g the convolution is one matrix product:
 *   y[n, g] (Kg x P*Q) = w[g] (Kg x Cg*R*S) @ col (Cg*R*S x P*Q)
 * where col holds, for each filter tap (c, r, s), the input pixel every output reads.
 * col is built for a band of output rows at a time (bounded workspace). Work is split
 * over (n, g) pairs when there are enough of them, else inside the GEMM (im2col_plan). */

/* col (Cg*R*S, (p1-p0)*Q) <- the taps of output rows [p0, p1) of x_group (Cg, H, W), on
 * nthreads threads (a share of channels each; 1: no parallel region, as inside one). */
static void FN(im2col)(REAL *col, const REAL *x_group, int64_t Cg, int64_t p0, int64_t p1,
                       const fc_conv_problem *pb, int nthreads)
{
    const int64_t Q = pb->Q, H = pb->H, W = pb->W, cols = (p1 - p0) * Q;
    (void)nthreads;            /* used by the pragma only */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
#endif
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

/* This thread's column buffer (crs x band*Q elements; for blocks of images, their
 * columns and products side by side), or NULL for a pointwise filter one image at a time,
 * which needs none; *failed is set when the buffer cannot be allocated. */
static REAL *FN(column_buffer)(const im2col_plan *pl, const fc_conv_problem *pb, int *failed)
{
    if (pl->pointwise && pl->images == 1) {
        return NULL;
    }
    const int64_t size = pl->images > 1 ? (pl->crs + pl->Kg) * pl->images * pl->PQ
                                        : pl->crs * pl->band * pb->Q;
    REAL *col = malloc((size_t)size * sizeof(REAL));
    if (col == NULL) {
        *failed = 1;
    }
    return col;
}

/* The column matrix of output rows [p0, p1) of x_group: built into col (by the threads
 * of the GEMMs, pl->gemm_threads: more than one only outside a parallel region), or, for
 * a pointwise filter, x_group itself (each column of x is already a tap). Its leading
 * dimension goes to *ld. */
static const REAL *FN(band_columns)(REAL *col, int64_t *ld, const REAL *x_group, int64_t p0,
                                    int64_t p1, const im2col_plan *pl,
                                    const fc_conv_problem *pb)
{
    if (col == NULL) {
        *ld = pb->P * pb->Q;
        return x_group + p0 * pb->Q;
    }
    FN(im2col)(col, x_group, pl->Cg, p0, p1, pb, pl->gemm_threads);
    *ld = (p1 - p0) * pb->Q;
    return col;
}

/* y_group (Kg, P, Q) = w_group (Kg x crs) @ the columns of x_group (Cg, H, W), band by
 * band, + bias_group (Kg) or NULL, then the ReLU where pb->relu is set. */
static fc_status FN(forward_pair)(REAL *y_group, const REAL *x_group, const REAL *w_group,
                                  const REAL *bias_group, REAL *col, const im2col_plan *pl,
                                  const fc_conv_problem *pb)
{
    for (int64_t p0 = 0; p0 < pb->P; p0 += pl->band) {
        const int64_t p1 = p0 + pl->band < pb->P ? p0 + pl->band : pb->P;
        const int64_t cols = (p1 - p0) * pb->Q;
        int64_t ldb;
        const REAL *b_mat = FN(band_columns)(col, &ldb, x_group, p0, p1, pl, pb);
        if (FN(fc_gemm)(pl->Kg, cols, pl->crs, w_group, pl->crs, 1, b_mat, ldb, 1, 0,
                        y_group + p0 * pb->Q, pl->PQ, pl->gemm_threads) != FC_OK) {
            return FC_ERR_NOMEM;
        }
    }
    for (int64_t k = 0; k < pl->Kg; k++) {
        REAL *yk = y_group + k * pl->PQ;
        if (bias_group != NULL) {
            const REAL b = bias_group[k];
            for (int64_t i = 0; i < pl->PQ; i++) {
                yk[i] += b;
            }
        }
        if (pb->relu) {
            FN(fc_relu_span)(yk, pl->PQ);
        }
    }
    return FC_OK;
}

/* Blocks of images (a pointwise filter, groups 1, on small planes: pl->images). A block's
 * planes of one tensor stand side by side as the columns of one matrix. */

/* to (channels x (n1-n0)*PQ) <- the planes of images [n0, n1) of t (N, channels, PQ). */
static void FN(gather_planes)(REAL *to, const REAL *t, int64_t channels, int64_t n0,
                              int64_t n1, int64_t PQ)
{
    const int64_t cols = (n1 - n0) * PQ;
    for (int64_t n = n0; n < n1; n++)
        for (int64_t c = 0; c < channels; c++)
            memcpy(to + c * cols + (n - n0) * PQ, t + (n * channels + c) * PQ,
                   (size_t)PQ * sizeof(REAL));
}

/* The planes of images [n0, n1) of t (N, channels, PQ) <- from (channels x (n1-n0)*PQ),
 * + bias (channels) or NULL, then the ReLU where relu is set. */
static void FN(scatter_planes)(REAL *t, const REAL *from, const REAL *bias, int relu,
                               int64_t channels, int64_t n0, int64_t n1, int64_t PQ)
{
    const int64_t cols = (n1 - n0) * PQ;
    for (int64_t n = n0; n < n1; n++)
        for (int64_t c = 0; c < channels; c++) {
            const REAL *in = from + c * cols + (n - n0) * PQ;
            REAL *out = t + (n * channels + c) * PQ;
            if (bias == NULL) {
                memcpy(out, in, (size_t)PQ * sizeof(REAL));
            } else {
                const REAL b = bias[c];
                for (int64_t i = 0; i < PQ; i++) {
                    out[i] = in[i] + b;
                }
            }
            if (relu) {
                FN(fc_relu_span)(out, PQ);
            }
        }
}

/* The pass on images [n0, n1): out is y, dx or this thread's dw, a and b as FN(pair) has
 * them; relu: the forward's fused ReLU. col holds the gathered operand (crs or Kg rows)
 * and then the product or the second operand, (crs + Kg) x (n1-n0)*PQ in all. */
static fc_status FN(block)(im2col_pass pass, REAL *out, const REAL *a, const REAL *b,
                           const REAL *bias, int relu, REAL *col, int64_t n0, int64_t n1,
                           const im2col_plan *pl)
{
    const int64_t C = pl->crs, K = pl->Kg, PQ = pl->PQ, cols = (n1 - n0) * PQ;
    fc_status st;
    switch (pass) {
    case IM2COL_FORWARD:       /* y (K x cols) = w (K x C) @ x (C x cols) + bias */
        FN(gather_planes)(col, a, C, n0, n1, PQ);
        st = FN(fc_gemm)(K, cols, C, b, C, 1, col, cols, 1, 0, col + C * cols, cols,
                         pl->gemm_threads);
        if (st == FC_OK)
            FN(scatter_planes)(out, col + C * cols, bias, relu, K, n0, n1, PQ);
        return st;
    case IM2COL_BACKWARD_DATA: /* dx (C x cols) = w^T (C x K) @ dy (K x cols) */
        FN(gather_planes)(col, a, K, n0, n1, PQ);
        st = FN(fc_gemm)(C, cols, K, b, 1, C, col, cols, 1, 0, col + K * cols, cols,
                         pl->gemm_threads);
        if (st == FC_OK)
            FN(scatter_planes)(out, col + K * cols, NULL, 0, C, n0, n1, PQ);
        return st;
    default:                   /* dw (K x C) += dy (K x cols) @ x (C x cols)^T */
        FN(gather_planes)(col, a, K, n0, n1, PQ);
        FN(gather_planes)(col + K * cols, b, C, n0, n1, PQ);
        return FN(fc_gemm)(K, C, cols, col, cols, 1, col + K * cols, 1, cols, 1, out, C,
                           pl->gemm_threads);
    }
}

/* dx_group (Cg, H, W) = col2im(w_group^T (crs x Kg) @ dy_group (Kg, P, Q)), band by band;
 * for a pointwise filter one GEMM straight into dx_group. */
static fc_status FN(backward_data_pair)(REAL *dx_group, const REAL *dy_group,
                                        const REAL *w_group, REAL *col, const im2col_plan *pl,
                                        const fc_conv_problem *pb)
{
    if (pl->pointwise) {
        /* dx_group (Cg x HW) = w_group^T (Cg x Kg) @ dy_group (Kg x PQ), PQ == HW */
        return FN(fc_gemm)(pl->crs, pl->PQ, pl->Kg, w_group, 1, pl->crs, dy_group, pl->PQ,
                           1, 0, dx_group, pl->PQ, pl->gemm_threads);
    }
    memset(dx_group, 0, (size_t)(pl->Cg * pb->H * pb->W) * sizeof(REAL));
    for (int64_t p0 = 0; p0 < pb->P; p0 += pl->band) {
        const int64_t p1 = p0 + pl->band < pb->P ? p0 + pl->band : pb->P;
        const int64_t cols = (p1 - p0) * pb->Q;
        if (FN(fc_gemm)(pl->crs, cols, pl->Kg, w_group, 1, pl->crs, dy_group + p0 * pb->Q,
                        pl->PQ, 1, 0, col, cols, pl->gemm_threads) != FC_OK) {
            return FC_ERR_NOMEM;
        }
        FN(col2im)(dx_group, col, pl->Cg, p0, p1, pb);
    }
    return FC_OK;
}

/* dw_group (Kg x crs) += dy_group (Kg, P, Q) @ the columns of x_group (Cg, H, W)^T, band by
 * band. */
static fc_status FN(backward_weight_pair)(REAL *dw_group, const REAL *dy_group,
                                          const REAL *x_group, REAL *col,
                                          const im2col_plan *pl, const fc_conv_problem *pb)
{
    for (int64_t p0 = 0; p0 < pb->P; p0 += pl->band) {
        const int64_t p1 = p0 + pl->band < pb->P ? p0 + pl->band : pb->P;
        const int64_t cols = (p1 - p0) * pb->Q;
        int64_t ldb;
        const REAL *b_mat = FN(band_columns)(col, &ldb, x_group, p0, p1, pl, pb);
        /* dw_group (Kg x crs) += dy band (Kg x cols) @ col^T (cols x crs) */
        if (FN(fc_gemm)(pl->Kg, pl->crs, cols, dy_group + p0 * pb->Q, pl->PQ, 1, b_mat, 1,
                        ldb, 1, dw_group, pl->crs, pl->gemm_threads) != FC_OK) {
            return FC_ERR_NOMEM;
        }
    }
    return FC_OK;
}

/* The work of pair (n, g) = (ng / groups, ng % groups), or of block ng, in one pass: out is
 * y, dx or this thread's dw; a and b are (x, w), (dy, w) or (dy, x), as the entry points
 * below pass them. */
static fc_status FN(pair)(im2col_pass pass, REAL *out, const REAL *a, const REAL *b,
                          const REAL *bias, REAL *col, int64_t ng, const im2col_plan *pl,
                          const fc_conv_problem *pb)
{
    if (pl->images > 1) {      /* unit ng is a block of images */
        const int64_t n0 = ng * pl->images;
        return FN(block)(pass, out, a, b, bias, pb->relu, col, n0,
                         n0 + pl->images < pb->N ? n0 + pl->images : pb->N, pl);
    }
    const int64_t n = ng / pb->groups, g = ng % pb->groups;
    const int64_t x_off = (n * pb->C + g * pl->Cg) * pb->H * pb->W;   /* x, dx of the pair */
    const int64_t y_off = (n * pb->K + g * pl->Kg) * pl->PQ;          /* y, dy of the pair */
    const int64_t w_off = g * pl->Kg * pl->crs;                       /* w, dw of the group */
    switch (pass) {
    case IM2COL_FORWARD:
        return FN(forward_pair)(out + y_off, a + x_off, b + w_off,
                                bias != NULL ? bias + g * pl->Kg : NULL, col, pl, pb);
    case IM2COL_BACKWARD_DATA:
        return FN(backward_data_pair)(out + x_off, a + y_off, b + w_off, col, pl, pb);
    default:
        return FN(backward_weight_pair)(out + w_off, a + y_off, b + x_off, col, pl, pb);
    }
}

/* The calling thread's share of the (n, g) pairs (all of them outside a parallel region),
 * with its own column buffer; nonzero when its buffer could not be allocated. out: y, dx
 * or dw; in the weight gradient thread t > 0 sums into its own copy of dw in partials,
 * (t - 1) * K * crs elements in. */
static int FN(run_share)(im2col_pass pass, REAL *out, REAL *partials, const REAL *a,
                         const REAL *b, const REAL *bias, const im2col_plan *pl,
                         const fc_conv_problem *pb)
{
    int failed = 0;
    const int t = fc_thread_num();
    REAL *my_out = pass == IM2COL_BACKWARD_WEIGHT && t > 0
                       ? partials + (t - 1) * pb->K * pl->crs
                       : out;
    REAL *col = FN(column_buffer)(pl, pb, &failed);
#pragma omp for schedule(static)
    for (int64_t ng = 0; ng < pl->pairs; ng++) {
        if (failed) {
            continue;
        }
        failed = FN(pair)(pass, my_out, a, b, bias, col, ng, pl, pb) != FC_OK;
    }
    free(col);
    return failed;
}

/* One pass over every (n, g) pair, shared out among pl->team threads. A team of one runs
 * outside any parallel region: the GEMMs then use the threads themselves, and a parallel
 * region inside another (even one of one thread) is a nested team, whose threads OpenMP
 * runtimes start afresh on every call. */
static fc_status FN(run_pairs)(im2col_pass pass, REAL *out, REAL *partials, const REAL *a,
                               const REAL *b, const REAL *bias, const im2col_plan *pl,
                               const fc_conv_problem *pb)
{
    int failed = 0;
    if (pl->team == 1) {
        failed = FN(run_share)(pass, out, partials, a, b, bias, pl, pb);
    } else {
#pragma omp parallel num_threads(pl->team) reduction(|| : failed)
        failed = FN(run_share)(pass, out, partials, a, b, bias, pl, pb);
    }
    return failed ? FC_ERR_NOMEM : FC_OK;
}

/* One call of the forward pass or the data gradient: its plan, then the pass. */
static fc_status FN(im2col_call)(im2col_pass pass, REAL *out, const REAL *a, const REAL *b,
                                 const REAL *bias, const fc_conv_problem *pb)
{
    im2col_plan pl;
    const fc_status st = im2col_plan_of(&pl, pb, sizeof(REAL));
    return st != FC_OK ? st : FN(run_pairs)(pass, out, NULL, a, b, bias, &pl, pb);
}

fc_status FN(fc_conv_im2col_forward)(REAL *y, const REAL *x, const REAL *w, const REAL *bias,
                                     const fc_conv_problem *pb)
{
    /* y (N, K, P, Q) = w (K, C/g, R, S) @ im2col(x (N, C, H, W)) + bias (K) */
    return FN(im2col_call)(IM2COL_FORWARD, y, x, w, bias, pb);
}

/* The weight gradient overwrites dw: each thread sums its own (n, g) pairs into a private
 * copy (thread 0 into dw itself), and the copies are added in thread order, so the result
 * is bitwise reproducible at a given thread count. */
fc_status FN(fc_conv_im2col_backward_weight)(REAL *dw, const REAL *dy, const REAL *x,
                                             const fc_conv_problem *pb)
{
    /* dw (K, C/g, R, S) = sum over n of dy (N, K, P, Q) @ im2col(x (N, C, H, W))^T */
    im2col_plan pl;
    fc_status st = im2col_plan_of(&pl, pb, sizeof(REAL));
    if (st != FC_OK) {
        return st;
    }
    const int64_t dw_size = pb->K * pl.crs;
    REAL *partials = NULL;
    if (pl.team > 1) {
        partials = calloc((size_t)((pl.team - 1) * dw_size), sizeof(REAL));
        if (partials == NULL) {
            return FC_ERR_NOMEM;
        }
    }
    memset(dw, 0, (size_t)dw_size * sizeof(REAL));
    st = FN(run_pairs)(IM2COL_BACKWARD_WEIGHT, dw, partials, dy, x, NULL, &pl, pb);
    FN(fc_add_partials)(dw, partials, pl.team, dw_size);
    free(partials);
    return st;
}

fc_status FN(fc_conv_im2col_backward_data)(REAL *dx, const REAL *dy, const REAL *w,
                                           const fc_conv_problem *pb)
{
    /* dx (N, C, H, W) = col2im(w (K, C/g, R, S)^T @ dy (N, K, P, Q)) */
    return FN(im2col_call)(IM2COL_BACKWARD_DATA, dx, dy, w, NULL, pb);
}
