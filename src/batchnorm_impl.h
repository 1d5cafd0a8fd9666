/*
 * batchnorm_impl.h: batch normalisation's entry points for one element type (template.h:
 * REAL, FN), included by batchnorm.c after the plane loops of every instruction set
 * (batchnorm_planes_impl.h).
 *
 * Shapes: x, y, dy, dx (N, C, HW), C-contiguous: channel c is the N planes of HW values at
 * (n * C + c) * HW; weight, bias, running_mean, running_var, dweight, dbias (C) of REAL;
 * mean, invstd (C) of float64, from the training forward to the backward.
 *
 * Each pass runs over the N * C planes in memory order (threads take contiguous shares):
 * a stream the hardware prefetchers follow, where a channel's planes, C * HW apart, are
 * not (4 KiB planes 64 KiB apart also compete for a few cache sets). The sums go per plane
 * into float64 partials, which each channel then totals over n in order: the results do
 * not depend on the thread count.
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

/* Channel c's totals of the per-plane sums part[2 * (n * C + c) + {0, 1}], over n in order. */
static void FN(bn_channel_total)(const double *part, int64_t N, int64_t C, int64_t c,
                                 double *a, double *b)
{
    double sa = 0, sb = 0;
    for (int64_t n = 0; n < N; n++) {
        sa += part[2 * (n * C + c)];
        sb += part[2 * (n * C + c) + 1];
    }
    *a = sa;
    *b = sb;
}

fc_status FN(fc_batch_norm_forward_train)(REAL *y, double *mean, double *invstd,
                                          REAL *running_mean, REAL *running_var,
                                          const REAL *x, const REAL *weight, const REAL *bias,
                                          const fc_batch_norm_problem *pb)
{
    const int64_t N = pb->N, C = pb->C, HW = pb->HW, count = N * HW, planes = N * C;
    if (!bn_problem_valid(pb) || (running_mean != NULL && count == 1)) {
        return FC_ERR_INVALID;   /* one value has no unbiased variance */
    }
    const double eps = pb->eps, momentum = pb->momentum;
    if (count == 0) {
        /* As PyTorch: an empty batch leaves the running statistics alone. */
        for (int64_t c = 0; c < C; c++) {
            mean[c] = 0;
            invstd[c] = 1 / sqrt(eps);
        }
        return FC_OK;
    }
    double *part = malloc(sizeof(double) * (2 * (size_t)planes + 1));   /* + 1: never 0 */
    if (part == NULL) {
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
            bn_lanes acc = {{0}, {0}};
            k->sums(&acc, x + p * HW, HW, (double)x[(p % C) * HW]);
            FN(bn_lanes_total)(&acc, &part[2 * p], &part[2 * p + 1]);
        }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t c = 0; c < C; c++) {
            double s1, s2;
            FN(bn_channel_total)(part, N, C, c, &s1, &s2);
            const double d = s1 / (double)count;
            double var = s2 / (double)count - d * d;
            var = var < 0 ? 0 : var;     /* rounding; NaN stays NaN */
            const double m = (double)x[c * HW] + d;
            mean[c] = m;
            invstd[c] = 1 / sqrt(var + eps);
            if (running_mean != NULL) {
                const double unbiased = var * (double)count / (double)(count - 1);
                running_mean[c] = (REAL)(momentum * m
                                         + (1 - momentum) * (double)running_mean[c]);
                running_var[c] = (REAL)(momentum * unbiased
                                        + (1 - momentum) * (double)running_var[c]);
            }
        }
        /* y plane by plane in memory order, a stream the prefetchers follow. */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t p = 0; p < planes; p++) {
            const int64_t c = p % C;
            const REAL scale = (REAL)((weight != NULL ? (double)weight[c] : 1.0) * invstd[c]);
            k->normalize(y + p * HW, x + p * HW, HW, (REAL)mean[c], scale,
                         bias != NULL ? bias[c] : (REAL)0);
        }
    }
    free(part);
    return FC_OK;
}

fc_status FN(fc_batch_norm_forward_eval)(REAL *y, const REAL *x, const REAL *mean,
                                         const REAL *var, const REAL *weight, const REAL *bias,
                                         const fc_batch_norm_problem *pb)
{
    const int64_t C = pb->C, HW = pb->HW, planes = pb->N * C;
    if (!bn_problem_valid(pb)) {
        return FC_ERR_INVALID;
    }
    const FN(bn_kernels) *k = FN(bn_kernels_in_use)();
    const double eps = pb->eps;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (planes * HW >= BN_PARALLEL_MIN)
#endif
    for (int64_t p = 0; p < planes; p++) {
        const int64_t c = p % C;
        const double is = 1 / sqrt((double)var[c] + eps);
        const REAL scale = (REAL)((weight != NULL ? (double)weight[c] : 1.0) * is);
        k->normalize(y + p * HW, x + p * HW, HW, mean[c], scale,
                     bias != NULL ? bias[c] : (REAL)0);
    }
    return FC_OK;
}

/* Two passes: the sums of dy and dy * (x - mean) per plane, then dx from their channel
 * totals, dx = weight * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) with
 * xhat = (x - mean) * invstd recomputed from x (no saved xhat: one array less to write
 * and read). dx NULL: the input gradient is not needed. */
fc_status FN(fc_batch_norm_backward)(REAL *dx, REAL *dweight, REAL *dbias, const REAL *dy,
                                     const REAL *x, const double *mean, const double *invstd,
                                     const REAL *weight, const fc_batch_norm_problem *pb)
{
    const int64_t N = pb->N, C = pb->C, HW = pb->HW, count = N * HW, planes = N * C;
    if (!bn_problem_valid(pb)) {
        return FC_ERR_INVALID;
    }
    /* Per plane: the two sums, then (after the channel totals) dx's coefficients. */
    double *part = malloc(sizeof(double) * (2 * (size_t)planes + 1));   /* + 1: never 0 */
    REAL *coef = malloc(sizeof(REAL) * (3 * (size_t)C + 1));
    if (part == NULL || coef == NULL) {
        free(part);
        free(coef);
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
            bn_lanes acc = {{0}, {0}};
            k->grad_sums(&acc, dy + p * HW, x + p * HW, HW, mean[p % C]);
            FN(bn_lanes_total)(&acc, &part[2 * p], &part[2 * p + 1]);
        }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t c = 0; c < C; c++) {
            double sum_dy, sum_dy_xmu;
            FN(bn_channel_total)(part, N, C, c, &sum_dy, &sum_dy_xmu);
            const double is = invstd[c];
            if (dweight != NULL) {
                dweight[c] = (REAL)(sum_dy_xmu * is);
            }
            if (dbias != NULL) {
                dbias[c] = (REAL)sum_dy;
            }
            if (count > 0) {
                const double w = weight != NULL ? (double)weight[c] : 1.0;
                coef[3 * c] = (REAL)(sum_dy / (double)count);                     /* mean dy */
                coef[3 * c + 1] = (REAL)(sum_dy_xmu * is * is / (double)count);   /* k */
                coef[3 * c + 2] = (REAL)(w * is);                                 /* scale */
            }
        }
        if (dx != NULL) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t p = 0; p < planes; p++) {
                const int64_t c = p % C;
                k->grad_input(dx + p * HW, dy + p * HW, x + p * HW, HW, (REAL)mean[c],
                              coef[3 * c + 1], coef[3 * c], coef[3 * c + 2]);
            }
        }
    }
    free(part);
    free(coef);
    return FC_OK;
}
