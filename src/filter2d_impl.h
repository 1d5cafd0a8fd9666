/* filter2d_impl.h: the single-plane 2-D filter for one element type (template.h: REAL, FN;
 * FN(fc_sqrt) and FN(fc_fma) of real_math.h). Included by filter2d.c after the AVX2 micro-kernel
 * filter_row_avx2_<type> (filter2d_avx2_impl.h), where FC_FILTER_AVX2 is 1. */

/* y[j] = sum over r, s of k[r*S + s] * rows[r][j + s] for j in [0, n): the portable twin
 * of the AVX2 micro-kernel. One pass per tap over the output row (it stays in L1): plain
 * loops any compiler vectorises, with the taps summed in the same order r, s. */
static void FN(filter_row_generic)(REAL *y, const REAL *const *rows, const REAL *k,
                                   int64_t R, int64_t S, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        y[j] = 0;
    }
    for (int64_t r = 0; r < R; r++) {
        for (int64_t s = 0; s < S; s++) {
            const REAL wv = k[r * S + s];
            const REAL *x = rows[r] + s;
            for (int64_t j = 0; j < n; j++) {
                y[j] += wv * x[j];
            }
        }
    }
}

/* One border pixel: column q of the row whose R input rows are `rows`, every column index
 * mapped through the border mode. The taps are summed as the row's micro-kernel sums them
 * (fused multiply-adds or not), so a pixel's value does not depend on its column: a tile
 * of the image (fastconv.dask) gets the same values as the whole. */
static REAL FN(filter_border_pixel)(const REAL *const *rows, const REAL *k, int64_t q,
                                    int fused, const fc_filter_problem *pb)
{
    const int64_t aw = pb->S / 2;
    REAL acc = 0;
    for (int64_t r = 0; r < pb->R; r++) {
        for (int64_t s = 0; s < pb->S; s++) {
            const int64_t c = fc_border_index(q + s - aw, pb->W, pb->border);
            if (c >= 0) {
                acc = fused ? FN(fc_fma)(k[r * pb->S + s], rows[r][c], acc)
                            : acc + k[r * pb->S + s] * rows[r][c];
            }
        }
    }
    return acc;
}

typedef void (*FN(row_kernel_fn))(REAL *, const REAL *const *, const REAL *, int64_t, int64_t,
                                  int64_t);

/* One output row y_row (W) of kernel k (R, S) from the R input rows row_ptrs: the interior
 * columns [lo, hi) by the micro-kernel, the others through the border map. */
static void FN(filter_row)(REAL *y_row, const REAL *const *row_ptrs, const REAL *k,
                           int64_t lo, int64_t hi, FN(row_kernel_fn) row_kernel,
                           const fc_filter_problem *pb)
{
    if (hi > lo) {
        /* output column q reads input columns q - S/2 .. q - S/2 + S - 1, from 0 at q = lo */
        row_kernel(y_row + lo, row_ptrs, k, pb->R, pb->S, hi - lo);
    }
    const int fused = row_kernel != FN(filter_row_generic);
    for (int64_t q = 0; q < lo; q++) {
        y_row[q] = FN(filter_border_pixel)(row_ptrs, k, q, fused, pb);
    }
    for (int64_t q = hi; q < pb->W; q++) {
        y_row[q] = FN(filter_border_pixel)(row_ptrs, k, q, fused, pb);
    }
}

typedef void (*FN(magnitude_kernel_fn))(REAL *, const REAL *const *, const REAL *,
                                        const REAL *, int64_t, int64_t, int64_t);

/* What every row of a call needs: the row-pointer table, the interior column range and the
 * micro-kernels. */
typedef struct {
    const REAL **rows;          /* rows[n * (H + R - 1) + i + r]: input row r of output row i */
    REAL *zero_row;             /* W zeros, the rows outside the plane in constant mode */
    int64_t lo, hi;             /* columns [lo, hi) read only inside the row */
    FN(row_kernel_fn) row_kernel;
    FN(magnitude_kernel_fn) magnitude_kernel;   /* both kernels at once, or NULL */
} FN(filter_plan);

/* The gradient magnitude of border pixel q, its taps summed as the fused micro-kernel sums
 * them. */
static REAL FN(border_magnitude)(const REAL *const *row_ptrs, const REAL *kx, const REAL *ky,
                                 int64_t q, const fc_filter_problem *pb)
{
    return FN(fc_magnitude)(FN(filter_border_pixel)(row_ptrs, kx, q, 1, pb),
                            FN(filter_border_pixel)(row_ptrs, ky, q, 1, pb));
}

/* One output row y_row (W) of the gradient magnitude of kx and ky with the plan's fused
 * micro-kernel: the interior columns [lo, hi) from one pass over the input rows, the others
 * through the border map. */
static void FN(magnitude_row)(REAL *y_row, const REAL *const *row_ptrs, const REAL *kx,
                              const REAL *ky, const FN(filter_plan) *fp,
                              const fc_filter_problem *pb)
{
    if (fp->hi > fp->lo) {
        fp->magnitude_kernel(y_row + fp->lo, row_ptrs, kx, ky, pb->R, pb->S, fp->hi - fp->lo);
    }
    for (int64_t q = 0; q < fp->lo; q++) {
        y_row[q] = FN(border_magnitude)(row_ptrs, kx, ky, q, pb);
    }
    for (int64_t q = fp->hi; q < pb->W; q++) {
        y_row[q] = FN(border_magnitude)(row_ptrs, kx, ky, q, pb);
    }
}

/* Checks, then fills the plan of one call of x (N, H, W). On FC_OK the caller releases it
 * with filter_plan_free. */
static fc_status FN(filter_plan_of)(FN(filter_plan) *fp, const REAL *x,
                                    const fc_filter_problem *pb)
{
    const int64_t N = pb->N, H = pb->H, W = pb->W, R = pb->R, S = pb->S;
    if (N < 1 || H < 1 || W < 1 || R < 1 || S < 1
        || pb->border < FC_BORDER_CONSTANT || pb->border > FC_BORDER_WRAP) {
        return FC_ERR_INVALID;
    }
    const int64_t ah = R / 2, aw = S / 2;
    const int64_t padded_rows = H + R - 1;   /* input rows i - ah .. i - ah + R - 1, all i */

    /* rows[n * padded_rows + i + r] points at the input row that output row i of plane n
     * reads with kernel row r: the zero row in constant mode outside the plane. */
    fp->rows = malloc((size_t)(N * padded_rows) * sizeof(*fp->rows));
    fp->zero_row = pb->border == FC_BORDER_CONSTANT ? calloc((size_t)W, sizeof(REAL)) : NULL;
    if (fp->rows == NULL || (pb->border == FC_BORDER_CONSTANT && fp->zero_row == NULL)) {
        free(fp->rows);
        free(fp->zero_row);
        return FC_ERR_NOMEM;
    }
    for (int64_t n = 0; n < N; n++) {
        for (int64_t i = 0; i < padded_rows; i++) {
            const int64_t src = fc_border_index(i - ah, H, pb->border);
            fp->rows[n * padded_rows + i] = src >= 0 ? x + (n * H + src) * W : fp->zero_row;
        }
    }
    /* Columns [lo, hi) read only inside the row; the rest go through the border map. */
    fp->lo = aw < W ? aw : W;
    fp->hi = W - (S - 1 - aw) > fp->lo ? W - (S - 1 - aw) : fp->lo;
    fp->row_kernel = FN(filter_row_generic);
    fp->magnitude_kernel = NULL;
#if FC_FILTER_AVX2
    if (fc_simd_avx2()) {
        fp->row_kernel = FN(filter_row_avx2);
        fp->magnitude_kernel = FN(magnitude_row_avx2);
    }
#endif
    return FC_OK;
}

static void FN(filter_plan_free)(FN(filter_plan) *fp)
{
    free(fp->rows);
    free(fp->zero_row);
}

/* y (N, H, W) = x (N, H, W) correlated with kx (R, S) or, when ky is not NULL, the
 * magnitude sqrt(gx^2 + gy^2) of x correlated with kx and with ky: one pass, by the fused
 * micro-kernel when there is one, else with gy's row in a per-thread buffer. */
static fc_status FN(filter_planes)(REAL *y, const REAL *x, const REAL *kx, const REAL *ky,
                                   const fc_filter_problem *pb)
{
    FN(filter_plan) fp;
    if (pb->N == 0) {
        return FC_OK;
    }
    fc_status st = FN(filter_plan_of)(&fp, x, pb);
    if (st != FC_OK) {
        return st;
    }
    const int64_t H = pb->H, W = pb->W, n_rows = pb->N * H, padded_rows = H + pb->R - 1;
    const int fused_magnitude = ky != NULL && fp.magnitude_kernel != NULL;
    REAL *gy_rows = NULL;
    if (ky != NULL && !fused_magnitude) {
        gy_rows = malloc((size_t)(fc_filter_threads() * W) * sizeof(REAL));
        if (gy_rows == NULL) {
            FN(filter_plan_free)(&fp);
            return FC_ERR_NOMEM;
        }
    }

    /* Each thread owns whole output rows, so results do not depend on the thread count.
     * Rows are handed out in small chunks: a call lasts well under a millisecond, so a
     * thread that wakes up late must not hold up a fixed share of the image. */
#pragma omp parallel for schedule(dynamic, 8) if (n_rows * W * pb->R * pb->S >= FC_FILTER_MIN_WORK)
    for (int64_t nh = 0; nh < n_rows; nh++) {
        const REAL *const *row_ptrs = fp.rows + (nh / H) * padded_rows + nh % H;
        REAL *gx = y + nh * W;
        if (fused_magnitude) {
            FN(magnitude_row)(gx, row_ptrs, kx, ky, &fp, pb);
            continue;
        }
        FN(filter_row)(gx, row_ptrs, kx, fp.lo, fp.hi, fp.row_kernel, pb);
        if (ky != NULL) {
            REAL *gy = gy_rows + fc_filter_thread() * W;
            FN(filter_row)(gy, row_ptrs, ky, fp.lo, fp.hi, fp.row_kernel, pb);
            for (int64_t q = 0; q < W; q++) {
                gx[q] = FN(fc_magnitude)(gx[q], gy[q]);
            }
        }
    }
    free(gy_rows);
    FN(filter_plan_free)(&fp);
    return FC_OK;
}

fc_status FN(fc_filter2d)(REAL *y, const REAL *x, const REAL *k, const fc_filter_problem *pb)
{
    /* y (N, H, W) = x (N, H, W) correlated with k (R, S) anchored at (R/2, S/2) */
    return FN(filter_planes)(y, x, k, NULL, pb);
}

fc_status FN(fc_filter2d_magnitude)(REAL *y, const REAL *x, const REAL *kx, const REAL *ky,
                                    const fc_filter_problem *pb)
{
    /* y (N, H, W) = sqrt(gx^2 + gy^2), gx and gy = x (N, H, W) correlated with kx and ky
     * (R, S) */
    return FN(filter_planes)(y, x, kx, ky, pb);
}
