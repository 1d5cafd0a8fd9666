/*
 * batchnorm_impl.h: batch normalisation's entry points for one element type (template.h:
 * REAL, FN), included by batchnorm.c after the loops of every instruction set
 * (batchnorm_loops_impl.h).
 *
 * Shapes: x, y, dy, dx (N, C, HW), C-contiguous: channel c is the N planes of HW values at
 * (n * C + c) * HW; weight, bias, running_mean, running_var, dweight, dbias (C) of REAL;
 * mean, invstd (C) of float64, from the training forward to the backward.
 *
 * Every pass runs through memory in order, threads taking contiguous shares: a stream the
 * hardware prefetchers follow, where a channel's planes, C * HW apart, are not (and 4 KiB
 * planes 64 KiB apart compete for a few cache sets). Two layouts:
 *   planes (HW >= BN_ROWS_BELOW_HW): the plane loops over each of the N * C planes; the
 *          sums go per plane into float64 partials, which each channel totals over n;
 *   rows   (smaller planes): the row loops over the N rows of C * HW columns; each column
 *          sums over the rows into its own float64 pair, which each channel totals over
 *          its HW columns.
 * Either way every sum is added in an order fixed by the shape alone, so the results do not
 * depend on the thread count.
 */

/* The loops of the SIMD level in use (config.c), chosen once per call. */
static const FN(bn_kernels) *FN(bn_kernels_in_use)(void)
{
#if BN_HAVE_X86
    if (fc_simd_avx512()) {
        return &FN(bn_kernels_avx512);
    }
    if (fc_simd_avx2()) {
        return &FN(bn_kernels_avx2);
    }
#endif
    return &FN(bn_kernels_generic);
}

/* Channel c's statistics from its sums s1 of x - shift and s2 of (x - shift)^2 over count
 * values: mean[c], invstd[c], and the running estimates when there are any. */
static void FN(bn_channel_stats)(double *mean, double *invstd, REAL *running_mean,
                                 REAL *running_var, int64_t c, double s1, double s2,
                                 double shift, int64_t count, const fc_batch_norm_problem *pb)
{
    const double d = s1 / (double)count;
    double var = s2 / (double)count - d * d;
    var = var < 0 ? 0 : var;     /* rounding; NaN stays NaN */
    const double m = shift + d;
    mean[c] = m;
    invstd[c] = 1 / sqrt(var + pb->eps);
    if (running_mean != NULL) {
        const double momentum = pb->momentum;
        const double unbiased = var * (double)count / (double)(count - 1);
        running_mean[c] = (REAL)(momentum * m + (1 - momentum) * (double)running_mean[c]);
        running_var[c] = (REAL)(momentum * unbiased + (1 - momentum) * (double)running_var[c]);
    }
}

/* y = (x - mean) * scale + shift with channel c's scale = weight * invstd, shift = bias. */
static REAL FN(bn_scale)(const REAL *weight, int64_t c, double invstd)
{
    return (REAL)((weight != NULL ? (double)weight[c] : 1.0) * invstd);
}

/* Channel c's parameter gradients from its sums of dy and dy * (x - mean), and the
 * coefficients of dx = (dy - mean_dy - (x - mean) * k) * scale. */
static void FN(bn_channel_grads)(REAL *dweight, REAL *dbias, REAL coef[3], int64_t c,
                                 double sum_dy, double sum_dy_xmu, double invstd,
                                 const REAL *weight, int64_t count)
{
    if (dweight != NULL) {
        dweight[c] = (REAL)(sum_dy_xmu * invstd);
    }
    if (dbias != NULL) {
        dbias[c] = (REAL)sum_dy;
    }
    coef[0] = (REAL)(sum_dy / (double)count);                        /* mean_dy */
    coef[1] = (REAL)(sum_dy_xmu * invstd * invstd / (double)count);  /* k */
    coef[2] = FN(bn_scale)(weight, c, invstd);                       /* scale */
}

/* Channel c's totals of per-plane sums part[2 * (n * C + c) + {0, 1}] over n (planes), or
 * of per-column sums a[c * HW + i], b[c * HW + i] over i (rows: C = 1, N = HW, pairs
 * apart by `stride` doubles). */
static void FN(bn_total)(const double *a, const double *b, int64_t count, int64_t stride,
                         double *sa, double *sb)
{
    double ta = 0, tb = 0;
    for (int64_t i = 0; i < count; i++) {
        ta += a[i * stride];
        tb += b[i * stride];
    }
    *sa = ta;
    *sb = tb;
}

static fc_status FN(bn_forward_train_planes)(REAL *y, double *mean, double *invstd,
                                             REAL *running_mean, REAL *running_var,
                                             const REAL *x, const REAL *weight,
                                             const REAL *bias, const fc_batch_norm_problem *pb)
{
    const int64_t N = pb->N, C = pb->C, HW = pb->HW, planes = N * C;
    double *part;
    if (bn_workspace(&part, 2 * planes, NULL, 0) != FC_OK) {
        return FC_ERR_NOMEM;
    }
    const FN(bn_kernels) *k = FN(bn_kernels_in_use)();
#ifdef _OPENMP
#pragma omp parallel if (planes * HW >= BN_PARALLEL_MIN)
#endif
    {
        /* Sums of x - shift with shift one of the channel's values (its first): the
         * variance then cancels only as much as that value lies from the mean (in
         * spreads), not as much as the mean lies from zero. For float32 every x - shift
         * and its square is exact in float64. */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t p = 0; p < planes; p++) {
            k->sums(x + p * HW, HW, (double)x[(p % C) * HW], &part[2 * p], &part[2 * p + 1]);
        }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t c = 0; c < C; c++) {
            double s1, s2;
            FN(bn_total)(&part[2 * c], &part[2 * c + 1], N, 2 * C, &s1, &s2);
            FN(bn_channel_stats)(mean, invstd, running_mean, running_var, c, s1, s2,
                                 (double)x[c * HW], N * HW, pb);
        }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t p = 0; p < planes; p++) {
            const int64_t c = p % C;
            k->normalize(y + p * HW, x + p * HW, HW, (REAL)mean[c],
                         FN(bn_scale)(weight, c, invstd[c]), bias != NULL ? bias[c] : (REAL)0,
                         pb->relu);
        }
    }
    free(part);
    return FC_OK;
}

/* Columns c * HW .. (c + 1) * HW - 1 of y's per-column coefficients (J columns): channel
 * c's mean, scale and shift. */
static void FN(bn_fill_columns)(REAL *coef, int64_t J, int64_t HW, int64_t c, REAL mean,
                                REAL scale, REAL shift)
{
    for (int64_t j = c * HW; j < (c + 1) * HW; j++) {
        coef[j] = mean;
        coef[J + j] = scale;
        coef[2 * J + j] = shift;
    }
}

/* Rows layout, inside a parallel region: this thread's share of the J = C * HW columns
 * sums over the N rows into a and b, about ref[j] = channel_ref[channel] (channel_ref NULL:
 * the channel's first value, as the planes' shift): x's sums (dy NULL), else the gradient
 * sums (dy taken where the ReLU's output y > 0; y NULL: everywhere). Ends with a barrier,
 * so every column's sums are ready. */
static void FN(bn_column_sums)(double *a, double *b, double *ref, const double *channel_ref,
                               const REAL *dy, const REAL *y, const REAL *x, int64_t N,
                               int64_t J, int64_t HW, const FN(bn_kernels) *k)
{
    int64_t lo, hi;
    bn_share(J, &lo, &hi);
    for (int64_t j = lo; j < hi; j++) {
        a[j] = b[j] = 0;
        ref[j] = channel_ref != NULL ? channel_ref[j / HW] : (double)x[j - j % HW];
    }
    for (int64_t n = 0; n < N; n++) {
        if (dy == NULL) {
            k->row_sums(a + lo, b + lo, x + n * J + lo, hi - lo, ref + lo);
        } else {
            k->row_grad_sums(a + lo, b + lo, dy + n * J + lo, BN_AT(y, n * J + lo),
                             x + n * J + lo, hi - lo, ref + lo);
        }
    }
#ifdef _OPENMP
#pragma omp barrier
#endif
}

static fc_status FN(bn_forward_train_rows)(REAL *y, double *mean, double *invstd,
                                           REAL *running_mean, REAL *running_var,
                                           const REAL *x, const REAL *weight, const REAL *bias,
                                           const fc_batch_norm_problem *pb)
{
    const int64_t N = pb->N, C = pb->C, HW = pb->HW, J = C * HW;
    /* Per column: the two sums and the shift; then y's mean, scale and shift. */
    double *sums;
    REAL *coef;
    if (bn_workspace(&sums, 3 * J, (void **)&coef, sizeof(REAL) * 3 * J) != FC_OK) {
        return FC_ERR_NOMEM;
    }
    double *a = sums, *b = sums + J, *shift = sums + 2 * J;
    const FN(bn_kernels) *k = FN(bn_kernels_in_use)();
#ifdef _OPENMP
#pragma omp parallel if (N * J >= BN_PARALLEL_MIN)
#endif
    {
        FN(bn_column_sums)(a, b, shift, NULL, NULL, NULL, x, N, J, HW, k);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t c = 0; c < C; c++) {
            double s1, s2;
            FN(bn_total)(a + c * HW, b + c * HW, HW, 1, &s1, &s2);
            FN(bn_channel_stats)(mean, invstd, running_mean, running_var, c, s1, s2,
                                 shift[c * HW], N * HW, pb);
            FN(bn_fill_columns)(coef, J, HW, c, (REAL)mean[c],
                                FN(bn_scale)(weight, c, invstd[c]),
                                bias != NULL ? bias[c] : (REAL)0);
        }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t n = 0; n < N; n++) {
            k->row_normalize(y + n * J, x + n * J, J, coef, pb->relu);
        }
    }
    free(sums);
    free(coef);
    return FC_OK;
}

fc_status FN(fc_batch_norm_forward_train)(REAL *y, double *mean, double *invstd,
                                          REAL *running_mean, REAL *running_var,
                                          const REAL *x, const REAL *weight, const REAL *bias,
                                          const fc_batch_norm_problem *pb)
{
    const int64_t count = pb->N * pb->HW;
    if (!bn_problem_valid(pb) || (running_mean != NULL && count == 1)) {
        return FC_ERR_INVALID;   /* one value has no unbiased variance */
    }
    if (count == 0) {
        /* As PyTorch: an empty batch leaves the running statistics alone. */
        for (int64_t c = 0; c < pb->C; c++) {
            mean[c] = 0;
            invstd[c] = 1 / sqrt(pb->eps);
        }
        return FC_OK;
    }
    if (pb->HW >= BN_ROWS_BELOW_HW) {
        return FN(bn_forward_train_planes)(y, mean, invstd, running_mean, running_var, x,
                                           weight, bias, pb);
    }
    return FN(bn_forward_train_rows)(y, mean, invstd, running_mean, running_var, x, weight,
                                     bias, pb);
}

fc_status FN(fc_batch_norm_forward_eval)(REAL *y, const REAL *x, const REAL *mean,
                                         const REAL *var, const REAL *weight, const REAL *bias,
                                         const fc_batch_norm_problem *pb)
{
    const int64_t N = pb->N, C = pb->C, HW = pb->HW, J = C * HW;
    if (!bn_problem_valid(pb)) {
        return FC_ERR_INVALID;
    }
    const int rows = HW < BN_ROWS_BELOW_HW;
    double *unused;
    REAL *coef;
    if (bn_workspace(&unused, 0, (void **)&coef, rows ? sizeof(REAL) * 3 * J : 0) != FC_OK) {
        return FC_ERR_NOMEM;
    }
    for (int64_t c = 0; rows && c < C; c++) {
        FN(bn_fill_columns)(coef, J, HW, c, mean[c],
                            FN(bn_scale)(weight, c, 1 / sqrt((double)var[c] + pb->eps)),
                            bias != NULL ? bias[c] : (REAL)0);
    }
    const FN(bn_kernels) *k = FN(bn_kernels_in_use)();
    const int64_t items = rows ? N : N * C;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (N * J >= BN_PARALLEL_MIN)
#endif
    for (int64_t i = 0; i < items; i++) {
        if (rows) {
            k->row_normalize(y + i * J, x + i * J, J, coef, pb->relu);
        } else {
            const int64_t c = i % C;
            k->normalize(y + i * HW, x + i * HW, HW, mean[c],
                         FN(bn_scale)(weight, c, 1 / sqrt((double)var[c] + pb->eps)),
                         bias != NULL ? bias[c] : (REAL)0, pb->relu);
        }
    }
    free(unused);
    free(coef);
    return FC_OK;
}

static fc_status FN(bn_backward_planes)(REAL *dx, REAL *dweight, REAL *dbias, const REAL *dy,
                                        const REAL *y, const REAL *x, const double *mean,
                                        const double *invstd, const REAL *weight,
                                        const fc_batch_norm_problem *pb)
{
    const int64_t N = pb->N, C = pb->C, HW = pb->HW, planes = N * C;
    /* Per plane: the two sums; per channel: dx's coefficients. */
    double *part;
    REAL *coef;
    if (bn_workspace(&part, 2 * planes, (void **)&coef, sizeof(REAL) * 3 * C) != FC_OK) {
        return FC_ERR_NOMEM;
    }
    const FN(bn_kernels) *k = FN(bn_kernels_in_use)();
#ifdef _OPENMP
#pragma omp parallel if (planes * HW >= BN_PARALLEL_MIN)
#endif
    {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t p = 0; p < planes; p++) {
            k->grad_sums(dy + p * HW, BN_AT(y, p * HW), x + p * HW, HW, mean[p % C],
                         &part[2 * p], &part[2 * p + 1]);
        }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t c = 0; c < C; c++) {
            double sum_dy, sum_dy_xmu;
            FN(bn_total)(&part[2 * c], &part[2 * c + 1], N, 2 * C, &sum_dy, &sum_dy_xmu);
            FN(bn_channel_grads)(dweight, dbias, &coef[3 * c], c, sum_dy, sum_dy_xmu,
                                 invstd[c], weight, N * HW);
        }
        if (dx != NULL) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t p = 0; p < planes; p++) {
                const REAL *cf = &coef[3 * (p % C)];
                k->grad_input(dx + p * HW, dy + p * HW, BN_AT(y, p * HW), x + p * HW, HW,
                              (REAL)mean[p % C], cf[1], cf[0], cf[2]);
            }
        }
    }
    free(part);
    free(coef);
    return FC_OK;
}

static fc_status FN(bn_backward_rows)(REAL *dx, REAL *dweight, REAL *dbias, const REAL *dy,
                                      const REAL *y, const REAL *x, const double *mean,
                                      const double *invstd,
                                      const REAL *weight, const fc_batch_norm_problem *pb)
{
    const int64_t N = pb->N, C = pb->C, HW = pb->HW, J = C * HW;
    /* Per column: the two sums and the mean; then dx's mean, k, mean_dy and scale. */
    double *sums;
    REAL *coef;
    if (bn_workspace(&sums, 3 * J, (void **)&coef, sizeof(REAL) * 4 * J) != FC_OK) {
        return FC_ERR_NOMEM;
    }
    double *a = sums, *b = sums + J, *mean_col = sums + 2 * J;
    const FN(bn_kernels) *k = FN(bn_kernels_in_use)();
#ifdef _OPENMP
#pragma omp parallel if (N * J >= BN_PARALLEL_MIN)
#endif
    {
        FN(bn_column_sums)(a, b, mean_col, mean, dy, y, x, N, J, HW, k);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t c = 0; c < C; c++) {
            double sum_dy, sum_dy_xmu;
            REAL cf[3];
            FN(bn_total)(a + c * HW, b + c * HW, HW, 1, &sum_dy, &sum_dy_xmu);
            FN(bn_channel_grads)(dweight, dbias, cf, c, sum_dy, sum_dy_xmu, invstd[c], weight,
                                 N * HW);
            for (int64_t j = c * HW; j < (c + 1) * HW; j++) {
                coef[j] = (REAL)mean[c];
                coef[J + j] = cf[1];
                coef[2 * J + j] = cf[0];
                coef[3 * J + j] = cf[2];
            }
        }
        if (dx != NULL) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t n = 0; n < N; n++) {
                k->row_grad_input(dx + n * J, dy + n * J, BN_AT(y, n * J), x + n * J, J,
                                  coef);
            }
        }
    }
    free(sums);
    free(coef);
    return FC_OK;
}

/* Two passes: the sums of dy and dy * (x - mean), then dx from their channel totals,
 * dx = weight * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) with
 * xhat = (x - mean) * invstd recomputed from x (no saved xhat: one array less to write
 * and read). With a ReLU after (pb->relu) both passes take dy where the forward's output
 * y > 0 and 0 elsewhere: the ReLU's backward, without its own pass. dx NULL: the input
 * gradient is not needed. */
fc_status FN(fc_batch_norm_backward)(REAL *dx, REAL *dweight, REAL *dbias, const REAL *dy,
                                     const REAL *x, const REAL *y, const double *mean,
                                     const double *invstd, const REAL *weight,
                                     const fc_batch_norm_problem *pb)
{
    if (!bn_problem_valid(pb) || (pb->relu && y == NULL)) {
        return FC_ERR_INVALID;
    }
    if (!pb->relu) {
        y = NULL;
    }
    if (pb->N * pb->HW == 0) {
        for (int64_t c = 0; c < pb->C; c++) {
            if (dweight != NULL) {
                dweight[c] = 0;
            }
            if (dbias != NULL) {
                dbias[c] = 0;
            }
        }
        return FC_OK;
    }
    if (pb->HW >= BN_ROWS_BELOW_HW) {
        return FN(bn_backward_planes)(dx, dweight, dbias, dy, y, x, mean, invstd, weight, pb);
    }
    return FN(bn_backward_rows)(dx, dweight, dbias, dy, y, x, mean, invstd, weight, pb);
}
