/*
 * batchnorm_loops_impl.h: batch normalisation's inner loops, written once and stamped out
 * per element type and instruction set by batchnorm.c (template.h: REAL, FN, ISA, and
 * FC_TEMPLATE_TARGET, a target attribute or nothing):
 *   plane loops  over one contiguous plane of n values of one channel, with the channel's
 *                statistics as scalars (large planes);
 *   row loops    over one row of n columns of the input seen as (N, C * HW), with a value
 *                per column (small planes, BatchNorm1D's (N, C) above all, where a call per
 *                plane would cost more than its few values).
 *
 * The plane sums keep BN_LANES float64 accumulators: element i of a plane goes to lane
 * i % BN_LANES, so each lane adds in a fixed order, and the lanes are totalled in order.
 * The portable instance is scalar; an instance with FC_TEMPLATE_VEC (a vector of
 * FC_TEMPLATE_LANES doubles, with FC_TEMPLATE_SET1 and FC_TEMPLATE_LOADU, the latter
 * loading that many REALs as doubles) holds the lanes in vectors. Both do the same
 * operations per lane, so the sums are the same bits on every instruction set. The other
 * loops are plain loops the compiler vectorises at the target, each element on its own.
 */

#ifndef FC_TEMPLATE_VEC

/* Adds the n (< BN_LANES) values left after the vectors to lanes 0 .. n-1 of a and b, then
 * totals the lanes in order: a's and b's totals to *ta and *tb. `g` NULL: x's sums
 * (x - shift, its square); else the gradient sums (g, g * (x - shift)), g taken where the
 * ReLU's output y > 0 (y NULL: everywhere). */
static inline void FN(bn_lanes_finish)(double *a, double *b, const REAL *g, const REAL *y,
                                       const REAL *x, int64_t n, double shift, double *ta,
                                       double *tb)
{
    for (int64_t l = 0; l < n; l++) {
        const double d = (double)x[l] - shift;
        const double e = g != NULL ? FN(bn_grad_sum_at)(g, y, l) : d;
        a[l] += e;
        b[l] += e * d;
    }
    double sa = 0, sb = 0;
    for (int l = 0; l < BN_LANES; l++) {
        sa += a[l];
        sb += b[l];
    }
    *ta = sa;
    *tb = sb;
}

/* The plane sums, one body for both: dy NULL gives x's sums (*ta of x - ref, *tb of
 * (x - ref)^2), else the gradient sums (*ta of dy, *tb of dy * (x - ref)), dy taken where
 * the ReLU's output y > 0 (y NULL: everywhere); always inlined into the two below, so each
 * gets its own loop. */
static inline __attribute__((always_inline)) void FN(ISA(bn_plane_sums_body))(
    const REAL *dy, const REAL *y, const REAL *x, int64_t n, double ref, double *ta,
    double *tb)
{
    double a[BN_LANES] = {0}, b[BN_LANES] = {0};
    int64_t i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES) {
        for (int l = 0; l < BN_LANES; l++) {
            const double d = (double)x[i + l] - ref;
            const double e = dy != NULL ? FN(bn_grad_sum_at)(dy, y, i + l) : d;
            a[l] += e;
            b[l] += e * d;
        }
    }
    FN(bn_lanes_finish)(a, b, BN_AT(dy, i), BN_AT(y, i), x + i, n - i, ref, ta, tb);
}

#else

/* The same body on vectors of FC_TEMPLATE_LANES doubles (BN_LANES / FC_TEMPLATE_LANES of
 * them per sum), with the same operations per lane and the same finish, so the same bits
 * as the portable loop. FC_TEMPLATE_LOADU loads that many REALs as doubles; vector
 * arithmetic is GCC's and Clang's operators on the intrinsics' types. */
#define BN_VECS (BN_LANES / FC_TEMPLATE_LANES)

static inline __attribute__((always_inline)) FC_TEMPLATE_TARGET
void FN(ISA(bn_plane_sums_body))(const REAL *dy, const REAL *y, const REAL *x, int64_t n,
                                 double ref, double *ta, double *tb)
{
    const FC_TEMPLATE_VEC r = FC_TEMPLATE_SET1(ref), zero = FC_TEMPLATE_SET1(0.0);
    FC_TEMPLATE_VEC a[BN_VECS], b[BN_VECS];
    for (int v = 0; v < BN_VECS; v++) {
        a[v] = b[v] = FC_TEMPLATE_SET1(0.0);
    }
    int64_t i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES) {
        for (int v = 0; v < BN_VECS; v++) {
            const int64_t at = i + v * FC_TEMPLATE_LANES;
            const FC_TEMPLATE_VEC d = FC_TEMPLATE_LOADU(x + at) - r;
            FC_TEMPLATE_VEC e = d;
            if (dy != NULL) {
                e = FC_TEMPLATE_LOADU(dy + at);
                if (y != NULL) {
                    e = BN_KEEP_WHERE_POSITIVE(e, FC_TEMPLATE_LOADU(y + at), zero);
                }
            }
            a[v] += e;
            b[v] += e * d;
        }
    }
    double la[BN_LANES], lb[BN_LANES];
    memcpy(la, a, sizeof la);
    memcpy(lb, b, sizeof lb);
    FN(bn_lanes_finish)(la, lb, BN_AT(dy, i), BN_AT(y, i), x + i, n - i, ref, ta, tb);
}

#undef BN_VECS

#endif /* FC_TEMPLATE_VEC */

/* *ta = the sum of x - shift, *tb = that of (x - shift)^2, in float64. */
static FC_TEMPLATE_TARGET void FN(ISA(bn_plane_sums))(const REAL *x, int64_t n, double shift,
                                                      double *ta, double *tb)
{
    FN(ISA(bn_plane_sums_body))(NULL, NULL, x, n, shift, ta, tb);
}

/* *ta = the sum of dy, *tb = that of dy * (x - mean), in float64, dy taken where the
 * ReLU's output y > 0 (y NULL: everywhere). */
static FC_TEMPLATE_TARGET void FN(ISA(bn_plane_grad_sums))(const REAL *dy, const REAL *y,
                                                           const REAL *x, int64_t n,
                                                           double mean, double *ta,
                                                           double *tb)
{
    FN(ISA(bn_plane_sums_body))(dy, y, x, n, mean, ta, tb);
}

/* y = (x - mean) * scale + shift, then the ReLU where relu: subtracting the mean first
 * keeps y accurate when the mean is large beside the spread (x * scale + (shift - mean *
 * scale) would cancel). */
static FC_TEMPLATE_TARGET void FN(ISA(bn_plane_normalize))(REAL *y, const REAL *x, int64_t n,
                                                           REAL mean, REAL scale, REAL shift,
                                                           int relu)
{
    for (int64_t i = 0; i < n; i++) {
        const REAL v = (x[i] - mean) * scale + shift;
        y[i] = relu ? FN(fc_relu)(v) : v;
    }
}

/* dx = (dy - mean_dy - (x - mean) * k) * scale, dy taken where the ReLU's output y > 0
 * (y NULL: everywhere). */
static FC_TEMPLATE_TARGET void FN(ISA(bn_plane_grad_input))(REAL *dx, const REAL *dy,
                                                            const REAL *y, const REAL *x,
                                                            int64_t n, REAL mean, REAL k,
                                                            REAL mean_dy, REAL scale)
{
    for (int64_t i = 0; i < n; i++) {
        dx[i] = (FN(bn_grad_at)(dy, y, i) - mean_dy - (x[i] - mean) * k) * scale;
    }
}

/* Row loops: column j adds to its own a[j] and b[j], in float64, one row after the other,
 * so each column's sums are in row order whatever the vector width. */

/* a[j] += x[j] - shift[j], b[j] += (x[j] - shift[j])^2. */
static FC_TEMPLATE_TARGET void FN(ISA(bn_row_sums))(double *a, double *b, const REAL *x,
                                                    int64_t n, const double *shift)
{
    for (int64_t j = 0; j < n; j++) {
        const double d = (double)x[j] - shift[j];
        a[j] += d;
        b[j] += d * d;
    }
}

/* a[j] += dy[j], b[j] += dy[j] * (x[j] - mean[j]), dy taken where the ReLU's output
 * y > 0 (y NULL: everywhere). */
static FC_TEMPLATE_TARGET void FN(ISA(bn_row_grad_sums))(double *a, double *b, const REAL *dy,
                                                         const REAL *y, const REAL *x,
                                                         int64_t n, const double *mean)
{
    for (int64_t j = 0; j < n; j++) {
        const double g = FN(bn_grad_sum_at)(dy, y, j);
        a[j] += g;
        b[j] += g * ((double)x[j] - mean[j]);
    }
}

/* y = (x - mean) * scale + shift, then the ReLU where relu, column by column; coef holds
 * n means, then n scales, then n shifts. */
static FC_TEMPLATE_TARGET void FN(ISA(bn_row_normalize))(REAL *y, const REAL *x, int64_t n,
                                                         const REAL *coef, int relu)
{
    const REAL *mean = coef, *scale = coef + n, *shift = coef + 2 * n;
    for (int64_t j = 0; j < n; j++) {
        const REAL v = (x[j] - mean[j]) * scale[j] + shift[j];
        y[j] = relu ? FN(fc_relu)(v) : v;
    }
}

/* dx = (dy - mean_dy - (x - mean) * k) * scale, column by column, dy taken where the
 * ReLU's output y > 0 (y NULL: everywhere); coef holds n each of mean, k, mean_dy and
 * scale. */
static FC_TEMPLATE_TARGET void FN(ISA(bn_row_grad_input))(REAL *dx, const REAL *dy,
                                                          const REAL *y, const REAL *x,
                                                          int64_t n, const REAL *coef)
{
    const REAL *mean = coef, *k = coef + n, *mean_dy = coef + 2 * n, *scale = coef + 3 * n;
    for (int64_t j = 0; j < n; j++) {
        dx[j] = (FN(bn_grad_at)(dy, y, j) - mean_dy[j] - (x[j] - mean[j]) * k[j]) * scale[j];
    }
}

/* The loops of this type and instruction set, as batchnorm_impl.h calls them. */
static const FN(bn_kernels) FN(ISA(bn_kernels)) = {
    FN(ISA(bn_plane_sums)), FN(ISA(bn_plane_normalize)), FN(ISA(bn_plane_grad_sums)),
    FN(ISA(bn_plane_grad_input)), FN(ISA(bn_row_sums)), FN(ISA(bn_row_grad_sums)),
    FN(ISA(bn_row_normalize)), FN(ISA(bn_row_grad_input)),
};
