/*
 * batchnorm_impl.h: batch normalisation's entry points for one element type (template.h:
 * REAL, FN), included by batchnorm.c after the plane loops of every instruction set
 * (batchnorm_planes_impl.h).
 *
 * Shapes: x, y, dy, dx (N, C, HW), C-contiguous: channel c is the N planes of HW values at
 * (n * C + c) * HW; weight, bias, running_mean, running_var, dweight, dbias (C) of REAL;
 * mean, invstd (C) of float64, from the training forward to the backward.
 *
 * Threads split the channels (schedule static): a channel's statistics, its normalisation
 * and its gradients are one thread's, so its N planes stay in that core's cache between the
 * passes and every result is independent of the thread count.
 */

/* The plane loops of the SIMD level in use (config.c), chosen once per call. */
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

/* The lanes' totals, added in a fixed order. */
static void FN(bn_lanes_total)(const bn_lanes *acc, double *a, double *b)
{
    double sa = 0, sb = 0;
    for (int l = 0; l < BN_LANES; l++) {
        sa += acc->a[l];
        sb += acc->b[l];
    }
    *a = sa;
    *b = sb;
}

fc_status FN(fc_batch_norm_forward_train)(REAL *y, double *mean, double *invstd,
                                          REAL *running_mean, REAL *running_var,
                                          const REAL *x, const REAL *weight, const REAL *bias,
                                          const fc_batch_norm_problem *pb)
{
    const int64_t N = pb->N, C = pb->C, HW = pb->HW, count = N * HW;
    if (!bn_problem_valid(pb) || (running_mean != NULL && count == 1)) {
        return FC_ERR_INVALID;   /* one value has no unbiased variance */
    }
    const FN(bn_kernels) *k = FN(bn_kernels_in_use)();
    const double eps = pb->eps, momentum = pb->momentum;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (N * C * HW >= BN_PARALLEL_MIN)
#endif
    for (int64_t c = 0; c < C; c++) {
        if (count == 0) {
            /* As PyTorch: an empty batch leaves the running statistics alone. */
            mean[c] = 0;
            invstd[c] = 1 / sqrt(eps);
            continue;
        }
        /* Sums of x - shift with shift one of the channel's values: the variance then
         * cancels only as much as that value lies from the mean (in spreads), not as much
         * as the mean lies from zero. For float32 every x - shift and its square is exact
         * in float64. */
        const double shift = (double)x[c * HW];
        bn_lanes acc = {{0}, {0}};
        for (int64_t n = 0; n < N; n++) {
            k->sums(&acc, x + (n * C + c) * HW, HW, shift);
        }
        double s1, s2;
        FN(bn_lanes_total)(&acc, &s1, &s2);
        const double d = s1 / (double)count;
        double var = s2 / (double)count - d * d;
        var = var < 0 ? 0 : var;     /* rounding; NaN stays NaN */
        const double m = shift + d;
        const double is = 1 / sqrt(var + eps);
        mean[c] = m;
        invstd[c] = is;
        if (running_mean != NULL) {
            const double unbiased = var * (double)count / (double)(count - 1);
            running_mean[c] = (REAL)(momentum * m + (1 - momentum) * (double)running_mean[c]);
            running_var[c] = (REAL)(momentum * unbiased
                                    + (1 - momentum) * (double)running_var[c]);
        }
        const REAL scale = (REAL)((weight != NULL ? (double)weight[c] : 1.0) * is);
        const REAL shift_out = bias != NULL ? bias[c] : (REAL)0;
        for (int64_t n = 0; n < N; n++) {
            const int64_t at = (n * C + c) * HW;
            k->normalize(y + at, x + at, HW, (REAL)m, scale, shift_out);
        }
    }
    return FC_OK;
}

fc_status FN(fc_batch_norm_forward_eval)(REAL *y, const REAL *x, const REAL *mean,
                                         const REAL *var, const REAL *weight, const REAL *bias,
                                         const fc_batch_norm_problem *pb)
{
    const int64_t N = pb->N, C = pb->C, HW = pb->HW;
    if (!bn_problem_valid(pb)) {
        return FC_ERR_INVALID;
    }
    const FN(bn_kernels) *k = FN(bn_kernels_in_use)();
    const double eps = pb->eps;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (N * C * HW >= BN_PARALLEL_MIN)
#endif
    for (int64_t c = 0; c < C; c++) {
        const double is = 1 / sqrt((double)var[c] + eps);
        const REAL scale = (REAL)((weight != NULL ? (double)weight[c] : 1.0) * is);
        const REAL shift_out = bias != NULL ? bias[c] : (REAL)0;
        for (int64_t n = 0; n < N; n++) {
            const int64_t at = (n * C + c) * HW;
            k->normalize(y + at, x + at, HW, mean[c], scale, shift_out);
        }
    }
    return FC_OK;
}

/* Two passes per channel: the sums of dy and dy * (x - mean), then dx from them,
 * dx = weight * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) with
 * xhat = (x - mean) * invstd recomputed from x (no saved xhat: one array less to write
 * and read). dx NULL: the input gradient is not needed. */
fc_status FN(fc_batch_norm_backward)(REAL *dx, REAL *dweight, REAL *dbias, const REAL *dy,
                                     const REAL *x, const double *mean, const double *invstd,
                                     const REAL *weight, const fc_batch_norm_problem *pb)
{
    const int64_t N = pb->N, C = pb->C, HW = pb->HW, count = N * HW;
    if (!bn_problem_valid(pb)) {
        return FC_ERR_INVALID;
    }
    const FN(bn_kernels) *k = FN(bn_kernels_in_use)();
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (N * C * HW >= BN_PARALLEL_MIN)
#endif
    for (int64_t c = 0; c < C; c++) {
        bn_lanes acc = {{0}, {0}};
        for (int64_t n = 0; n < N; n++) {
            const int64_t at = (n * C + c) * HW;
            k->grad_sums(&acc, dy + at, x + at, HW, mean[c]);
        }
        double sum_dy, sum_dy_xmu;
        FN(bn_lanes_total)(&acc, &sum_dy, &sum_dy_xmu);
        const double is = invstd[c];
        if (dweight != NULL) {
            dweight[c] = (REAL)(sum_dy_xmu * is);
        }
        if (dbias != NULL) {
            dbias[c] = (REAL)sum_dy;
        }
        if (dx == NULL || count == 0) {
            continue;
        }
        const double w = weight != NULL ? (double)weight[c] : 1.0;
        const REAL mean_dy = (REAL)(sum_dy / (double)count);
        const REAL kx = (REAL)(sum_dy_xmu * is * is / (double)count);
        const REAL scale = (REAL)(w * is);
        for (int64_t n = 0; n < N; n++) {
            const int64_t at = (n * C + c) * HW;
            k->grad_input(dx + at, dy + at, x + at, HW, (REAL)mean[c], kx, mean_dy, scale);
        }
    }
    return FC_OK;
}
