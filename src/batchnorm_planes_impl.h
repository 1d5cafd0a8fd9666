/*
 * batchnorm_planes_impl.h: batch normalisation's four loops over one contiguous plane of
 * n values of one channel, written once and stamped out per element type and instruction
 * set by batchnorm.c (template.h: REAL, FN, ISA, and FC_TEMPLATE_TARGET, a target
 * attribute or nothing).
 *
 * The sums keep BN_LANES float64 accumulators (bn_lanes): element i of a plane goes to
 * lane i % BN_LANES, so each lane adds in a fixed order. The portable instance is scalar;
 * an instance with FC_TEMPLATE_VEC (a vector of FC_TEMPLATE_LANES doubles, with
 * FC_TEMPLATE_SET1 and FC_TEMPLATE_LOADU, the latter loading that many REALs as doubles)
 * holds the lanes in vectors. Both do the same operations per lane, so the sums are the same
 * bits on every instruction set, and independent of the thread count (one thread owns a
 * channel). The two elementwise loops are plain loops the compiler vectorises at the
 * target.
 */

#ifndef FC_TEMPLATE_VEC

/* acc->a[l] += x - shift, acc->b[l] += (x - shift)^2, in float64. */
static void FN(ISA(bn_plane_sums))(bn_lanes *acc, const REAL *x, int64_t n, double shift)
{
    double a[BN_LANES], b[BN_LANES];
    for (int l = 0; l < BN_LANES; l++) {
        a[l] = acc->a[l];
        b[l] = acc->b[l];
    }
    for (int64_t i = 0; i < n; i += BN_LANES) {
        for (int l = 0; l < BN_LANES && i + l < n; l++) {
            const double d = (double)x[i + l] - shift;
            a[l] += d;
            b[l] += d * d;
        }
    }
    for (int l = 0; l < BN_LANES; l++) {
        acc->a[l] = a[l];
        acc->b[l] = b[l];
    }
}

/* acc->a[l] += dy, acc->b[l] += dy * (x - mean), in float64. */
static void FN(ISA(bn_plane_grad_sums))(bn_lanes *acc, const REAL *dy, const REAL *x,
                                        int64_t n, double mean)
{
    double a[BN_LANES], b[BN_LANES];
    for (int l = 0; l < BN_LANES; l++) {
        a[l] = acc->a[l];
        b[l] = acc->b[l];
    }
    for (int64_t i = 0; i < n; i += BN_LANES) {
        for (int l = 0; l < BN_LANES && i + l < n; l++) {
            const double g = (double)dy[i + l];
            a[l] += g;
            b[l] += g * ((double)x[i + l] - mean);
        }
    }
    for (int l = 0; l < BN_LANES; l++) {
        acc->a[l] = a[l];
        acc->b[l] = b[l];
    }
}

#else

/* The same sums on vectors of FC_TEMPLATE_LANES doubles (BN_LANES / FC_TEMPLATE_LANES of
 * them per sum), with the same operations per lane, so the same bits as the portable loop,
 * which adds the last n % BN_LANES values. FC_TEMPLATE_LOADU loads that many REALs as
 * doubles; vector arithmetic is GCC's and Clang's operators on the intrinsics' types. */
#define BN_VECS (BN_LANES / FC_TEMPLATE_LANES)

static FC_TEMPLATE_TARGET void FN(ISA(bn_plane_sums))(bn_lanes *acc, const REAL *x,
                                                      int64_t n, double shift)
{
    const FC_TEMPLATE_VEC s = FC_TEMPLATE_SET1(shift);
    FC_TEMPLATE_VEC a[BN_VECS], b[BN_VECS];
    memcpy(a, acc->a, sizeof a);
    memcpy(b, acc->b, sizeof b);
    int64_t i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES) {
        for (int v = 0; v < BN_VECS; v++) {
            const FC_TEMPLATE_VEC d = FC_TEMPLATE_LOADU(x + i + v * FC_TEMPLATE_LANES) - s;
            a[v] += d;
            b[v] += d * d;
        }
    }
    memcpy(acc->a, a, sizeof a);
    memcpy(acc->b, b, sizeof b);
    FN(bn_plane_sums_generic)(acc, x + i, n - i, shift);
}

static FC_TEMPLATE_TARGET void FN(ISA(bn_plane_grad_sums))(bn_lanes *acc, const REAL *dy,
                                                           const REAL *x, int64_t n,
                                                           double mean)
{
    const FC_TEMPLATE_VEC m = FC_TEMPLATE_SET1(mean);
    FC_TEMPLATE_VEC a[BN_VECS], b[BN_VECS];
    memcpy(a, acc->a, sizeof a);
    memcpy(b, acc->b, sizeof b);
    int64_t i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES) {
        for (int v = 0; v < BN_VECS; v++) {
            const FC_TEMPLATE_VEC g = FC_TEMPLATE_LOADU(dy + i + v * FC_TEMPLATE_LANES);
            a[v] += g;
            b[v] += g * (FC_TEMPLATE_LOADU(x + i + v * FC_TEMPLATE_LANES) - m);
        }
    }
    memcpy(acc->a, a, sizeof a);
    memcpy(acc->b, b, sizeof b);
    FN(bn_plane_grad_sums_generic)(acc, dy + i, x + i, n - i, mean);
}

#undef BN_VECS

#endif /* FC_TEMPLATE_VEC */

/* y = (x - mean) * scale + shift: subtracting the mean first keeps y accurate when the
 * mean is large beside the spread (x * scale + (shift - mean * scale) would cancel). */
static FC_TEMPLATE_TARGET void FN(ISA(bn_plane_normalize))(REAL *y, const REAL *x, int64_t n,
                                                           REAL mean, REAL scale, REAL shift)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] = (x[i] - mean) * scale + shift;
    }
}

/* dx = (dy - mean_dy - (x - mean) * k) * scale. */
static FC_TEMPLATE_TARGET void FN(ISA(bn_plane_grad_input))(REAL *dx, const REAL *dy,
                                                            const REAL *x, int64_t n,
                                                            REAL mean, REAL k, REAL mean_dy,
                                                            REAL scale)
{
    for (int64_t i = 0; i < n; i++) {
        dx[i] = (dy[i] - mean_dy - (x[i] - mean) * k) * scale;
    }
}

/* The four loops of this type and instruction set, as batchnorm_impl.h calls them. */
static const FN(bn_kernels) FN(ISA(bn_kernels)) = {
    FN(ISA(bn_plane_sums)), FN(ISA(bn_plane_normalize)), FN(ISA(bn_plane_grad_sums)),
    FN(ISA(bn_plane_grad_input)),
};
