/* activation_impl.h: ReLU forward and backward, and the sum of a residual block's two
 * branches, for one element type (template.h: REAL, FN). Included by activation.c. */

/* y <- max(x, 0) element-wise (y may be x); NaN stays NaN (as np.maximum). */
void FN(fc_relu_forward)(REAL *y, const REAL *x, int64_t n)
{
#pragma omp parallel for schedule(static) if (n >= FC_ELEMENTWISE_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        y[i] = FN(fc_relu)(x[i]);
    }
}

/* dx <- dy where y > 0, else 0 (y: the ReLU's output; NaN in y gives 0, as y > 0). */
void FN(fc_relu_backward)(REAL *dx, const REAL *dy, const REAL *y, int64_t n)
{
#pragma omp parallel for schedule(static) if (n >= FC_ELEMENTWISE_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        dx[i] = FN(fc_relu_grad)(dy[i], y[i]);
    }
}

/* y <- a + b element-wise, then max(., 0) when relu (y may be a or b): a residual block's
 * sum and activation in one pass. NaN stays NaN, as in the two passes it replaces. */
void FN(fc_add_forward)(REAL *y, const REAL *a, const REAL *b, int64_t n, int relu)
{
#pragma omp parallel for schedule(static) if (n >= FC_ELEMENTWISE_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        const REAL v = a[i] + b[i];
        y[i] = relu ? FN(fc_relu)(v) : v;
    }
}
