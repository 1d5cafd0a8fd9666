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

/* What every band of a call needs: the interior column range, the micro-kernels and each
 * thread's band of input rows. */
typedef struct {
    REAL *zero_row;             /* W zeros, the rows outside the plane in constant mode */
    int64_t lo, hi;             /* columns [lo, hi) read only inside the row */
    FN(row_kernel_fn) row_kernel;
    FN(magnitude_kernel_fn) magnitude_kernel;   /* both kernels at once, or NULL */
    int64_t band_rows;          /* FC_FILTER_BAND + R - 1: the input rows a band reads */
    const REAL **row_ptrs;      /* band_rows pointers per thread */
    REAL *converted;            /* band_rows x W per thread, for a uint8 image, or NULL */
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

/* Checks, then fills the plan of one call; x8 is not NULL for a uint8 image. On FC_OK the
 * caller releases it with filter_plan_free. */
static fc_status FN(filter_plan_of)(FN(filter_plan) *fp, const uint8_t *x8,
                                    const fc_filter_problem *pb)
{
    const int64_t N = pb->N, H = pb->H, W = pb->W, R = pb->R, S = pb->S;
    if (N < 1 || H < 1 || W < 1 || R < 1 || S < 1
        || pb->border < FC_BORDER_CONSTANT || pb->border > FC_BORDER_WRAP) {
        return FC_ERR_INVALID;
    }
    const int64_t threads = fc_filter_threads();
    fp->band_rows = FC_FILTER_BAND + R - 1;
    fp->zero_row = pb->border == FC_BORDER_CONSTANT ? calloc((size_t)W, sizeof(REAL)) : NULL;
    fp->row_ptrs = malloc((size_t)(threads * fp->band_rows) * sizeof(*fp->row_ptrs));
    fp->converted = x8 != NULL
        ? malloc((size_t)(threads * fp->band_rows * W) * sizeof(REAL)) : NULL;
    if (fp->row_ptrs == NULL || (pb->border == FC_BORDER_CONSTANT && fp->zero_row == NULL)
        || (x8 != NULL && fp->converted == NULL)) {
        free(fp->zero_row);
        free(fp->row_ptrs);
        free(fp->converted);
        return FC_ERR_NOMEM;
    }
    /* Columns [lo, hi) read only inside the row; the rest go through the border map. */
    const int64_t aw = S / 2;
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
    free(fp->zero_row);
    free(fp->row_ptrs);
    free(fp->converted);
}

/* Points ptrs[i] at the input row that row i of the band read by output rows h0 .. h0 +
 * count - 1 of plane n: ptrs[i + r] is kernel row r's input for output row h0 + i. A row
 * of x, or of the uint8 image x8 converted into `converted` (W REALs a row), or the zero
 * row of constant mode outside the plane. */
static void FN(band_input_rows)(const REAL **ptrs, REAL *converted, const REAL *x,
                                const uint8_t *x8, int64_t n, int64_t h0, int64_t count,
                                const FN(filter_plan) *fp, const fc_filter_problem *pb)
{
    const int64_t H = pb->H, W = pb->W;
    for (int64_t i = 0; i < count + pb->R - 1; i++) {
        const int64_t src = fc_border_index(h0 + i - pb->R / 2, H, pb->border);
        if (src < 0) {
            ptrs[i] = fp->zero_row;
        } else if (x8 == NULL) {
            ptrs[i] = x + (n * H + src) * W;
        } else {
            REAL *row = converted + i * W;
            const uint8_t *in = x8 + (n * H + src) * W;
            for (int64_t q = 0; q < W; q++) {
                row[q] = (REAL)in[q];
            }
            ptrs[i] = row;
        }
    }
}

/* y (N, H, W) = the image correlated with kx (R, S) or, when ky is not NULL, the magnitude
 * sqrt(gx^2 + gy^2) of the image correlated with kx and with ky: one pass, by the fused
 * micro-kernel when there is one, else with gy's row in a per-thread buffer. The image is
 * x, or the uint8 x8 when x is NULL, whose rows each band converts as it reads them (no
 * float copy of the image is made). */
static fc_status FN(filter_planes)(REAL *y, const REAL *x, const uint8_t *x8, const REAL *kx,
                                   const REAL *ky, const fc_filter_problem *pb)
{
    FN(filter_plan) fp;
    if (pb->N == 0) {
        return FC_OK;
    }
    fc_status st = FN(filter_plan_of)(&fp, x8, pb);
    if (st != FC_OK) {
        return st;
    }
    const int64_t H = pb->H, W = pb->W;
    const int64_t plane_bands = (H + FC_FILTER_BAND - 1) / FC_FILTER_BAND;
    const int64_t bands = pb->N * plane_bands;
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
     * Bands are small and handed out one at a time: a call lasts well under a millisecond,
     * so a thread that wakes up late must not hold up a fixed share of the image. */
#pragma omp parallel for schedule(dynamic, 1) if (pb->N * H * W * pb->R * pb->S >= FC_FILTER_MIN_WORK)
    for (int64_t band = 0; band < bands; band++) {
        const int thread = fc_filter_thread();
        const int64_t n = band / plane_bands, h0 = band % plane_bands * FC_FILTER_BAND;
        const int64_t count = H - h0 < FC_FILTER_BAND ? H - h0 : FC_FILTER_BAND;
        const REAL **ptrs = fp.row_ptrs + thread * fp.band_rows;
        FN(band_input_rows)(ptrs, fp.converted + (x8 != NULL ? thread * fp.band_rows * W : 0),
                            x, x8, n, h0, count, &fp, pb);
        for (int64_t i = 0; i < count; i++) {
            const REAL *const *row_ptrs = ptrs + i;
            REAL *gx = y + (n * H + h0 + i) * W;
            if (fused_magnitude) {
                FN(magnitude_row)(gx, row_ptrs, kx, ky, &fp, pb);
                continue;
            }
            FN(filter_row)(gx, row_ptrs, kx, fp.lo, fp.hi, fp.row_kernel, pb);
            if (ky != NULL) {
                REAL *gy = gy_rows + thread * W;
                FN(filter_row)(gy, row_ptrs, ky, fp.lo, fp.hi, fp.row_kernel, pb);
                for (int64_t q = 0; q < W; q++) {
                    gx[q] = FN(fc_magnitude)(gx[q], gy[q]);
                }
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
    return FN(filter_planes)(y, x, NULL, k, NULL, pb);
}

fc_status FN(fc_filter2d_u8)(REAL *y, const uint8_t *x, const REAL *k,
                             const fc_filter_problem *pb)
{
    return FN(filter_planes)(y, NULL, x, k, NULL, pb);
}

fc_status FN(fc_filter2d_magnitude)(REAL *y, const REAL *x, const REAL *kx, const REAL *ky,
                                    const fc_filter_problem *pb)
{
    /* y (N, H, W) = sqrt(gx^2 + gy^2), gx and gy = x (N, H, W) correlated with kx and ky
     * (R, S) */
    return FN(filter_planes)(y, x, NULL, kx, ky, pb);
}

fc_status FN(fc_filter2d_magnitude_u8)(REAL *y, const uint8_t *x, const REAL *kx,
                                       const REAL *ky, const fc_filter_problem *pb)
{
    return FN(filter_planes)(y, NULL, x, kx, ky, pb);
}
