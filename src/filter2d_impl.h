/* filter2d_impl.h: the single-plane 2-D filter for one element type (template.h: REAL, FN;
 * FN(fc_sqrt) and FN(fc_fma) of real_math.h). Included by filter2d.c after the AVX2 micro-kernel
 * filter_row_avx2_<type> (filter2d_avx2_impl.h), where FC_FILTER_AVX2 is 1. */

/* y[j] = sum over r, s of k[r*S + s] * rows[r][c0 + j + s] for j in [0, n): the portable
 * twin of the AVX2 micro-kernel. One pass per tap over the output row (it stays in L1): plain
 * loops any compiler vectorises, with the taps summed in the same order r, s. */
static void FN(filter_row_generic)(REAL *y, const REAL *const *rows, const REAL *k,
                                   int64_t R, int64_t S, int64_t c0, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        y[j] = 0;
    }
    for (int64_t r = 0; r < R; r++) {
        for (int64_t s = 0; s < S; s++) {
            const REAL wv = k[r * S + s];
            const REAL *x = rows[r] + c0 + s;
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
                                  int64_t, int64_t);
typedef void (*FN(magnitude_kernel_fn))(REAL *, const REAL *const *, const REAL *,
                                        const REAL *, int64_t, int64_t, int64_t, int64_t);

/* What every band of a call needs: the window's columns split into those read only inside
 * the row and the others, the micro-kernels and each thread's band of input rows. */
typedef struct {
    REAL *zero_row;             /* W zeros, the rows outside the plane in constant mode */
    int64_t lo, hi;             /* input columns [lo, hi) read only inside the row, within
                                   the window: the micro-kernel's */
    FN(row_kernel_fn) row_kernel;
    FN(magnitude_kernel_fn) magnitude_kernel;   /* both kernels at once, or NULL */
    int64_t band_rows;          /* FC_FILTER_BAND + R - 1: the input rows a band reads */
    const REAL **row_ptrs;      /* band_rows pointers per thread */
    REAL *assembled;            /* band_rows x W per thread, for rows of several segments
                                   or of uint8, or NULL */
} FN(filter_plan);

/* The gradient magnitude of border pixel q, its taps summed as the fused micro-kernel sums
 * them. */
static REAL FN(border_magnitude)(const REAL *const *row_ptrs, const REAL *kx, const REAL *ky,
                                 int64_t q, const fc_filter_problem *pb)
{
    return FN(fc_magnitude)(FN(filter_border_pixel)(row_ptrs, kx, q, 1, pb),
                            FN(filter_border_pixel)(row_ptrs, ky, q, 1, pb));
}

/* One output row y_row (out_W) of kernel k, or of the gradient magnitude of kx and ky when
 * ky is not NULL, from the R input rows row_ptrs: the columns [lo, hi) by the micro-kernel,
 * the others through the border map. Output column q is input column left + q. */
static void FN(filter_row)(REAL *y_row, const REAL *const *row_ptrs, const REAL *kx,
                           const REAL *ky, const FN(filter_plan) *fp,
                           const fc_filter_problem *pb)
{
    const int64_t left = pb->left, end = pb->left + pb->out_W;
    if (fp->hi > fp->lo) {
        /* input column c reads columns c - S/2 .. c - S/2 + S - 1 */
        const int64_t c0 = fp->lo - pb->S / 2;
        if (ky == NULL) {
            fp->row_kernel(y_row + fp->lo - left, row_ptrs, kx, pb->R, pb->S, c0,
                           fp->hi - fp->lo);
        } else {
            fp->magnitude_kernel(y_row + fp->lo - left, row_ptrs, kx, ky, pb->R, pb->S, c0,
                                 fp->hi - fp->lo);
        }
    }
    /* the border columns: [left, lo) and [hi, end), as left <= lo <= hi <= end */
    const int fused = fp->row_kernel != FN(filter_row_generic);
    const int64_t from[2] = {left, fp->hi}, to[2] = {fp->lo, end};
    for (int part = 0; part < 2; part++) {
        for (int64_t c = from[part]; c < to[part]; c++) {
            y_row[c - left] = ky == NULL ? FN(filter_border_pixel)(row_ptrs, kx, c, fused, pb)
                                         : FN(border_magnitude)(row_ptrs, kx, ky, c, pb);
        }
    }
}

/* Checks, then fills the plan of one call. On FC_OK the caller releases it with
 * filter_plan_free. */
static fc_status FN(filter_plan_of)(FN(filter_plan) *fp, const fc_filter_input *x,
                                    const fc_filter_problem *pb)
{
    const int64_t N = pb->N, H = pb->H, W = pb->W, R = pb->R, S = pb->S;
    if (N < 1 || H < 1 || W < 1 || R < 1 || S < 1
        || pb->border < FC_BORDER_CONSTANT || pb->border > FC_BORDER_WRAP
        || pb->top < 0 || pb->left < 0 || pb->out_H < 1 || pb->out_W < 1
        || pb->top + pb->out_H > H || pb->left + pb->out_W > W || x->pieces < 1) {
        return FC_ERR_INVALID;
    }
    const int64_t threads = fc_filter_threads();
    const int assemble = x->u8 || x->pieces > 1;
    fp->band_rows = FC_FILTER_BAND + R - 1;
    fp->zero_row = pb->border == FC_BORDER_CONSTANT ? calloc((size_t)W, sizeof(REAL)) : NULL;
    fp->row_ptrs = malloc((size_t)(threads * fp->band_rows) * sizeof(*fp->row_ptrs));
    fp->assembled = assemble
        ? malloc((size_t)(threads * fp->band_rows * W) * sizeof(REAL)) : NULL;
    if (fp->row_ptrs == NULL || (pb->border == FC_BORDER_CONSTANT && fp->zero_row == NULL)
        || (assemble && fp->assembled == NULL)) {
        free(fp->zero_row);
        free(fp->row_ptrs);
        free(fp->assembled);
        return FC_ERR_NOMEM;
    }
    /* Input columns [lo, hi) read only inside the row, cut to the window's; the rest go
     * through the border map. */
    const int64_t aw = S / 2, end = pb->left + pb->out_W;
    const int64_t inner_lo = aw < W ? aw : W;
    const int64_t inner_hi = W - (S - 1 - aw);
    fp->lo = inner_lo < pb->left ? pb->left : (inner_lo > end ? end : inner_lo);
    fp->hi = inner_hi < end ? inner_hi : end;
    fp->hi = fp->hi > fp->lo ? fp->hi : fp->lo;
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
    free(fp->assembled);
}

/* Row src of plane n as one run of W REALs: the segment itself when it is one of REALs,
 * else its segments copied (and converted from uint8) side by side into row `slot` of
 * `rows` (W REALs each; NULL where no row is ever assembled). */
static const REAL *FN(input_row)(REAL *rows, int64_t slot, const fc_filter_input *x,
                                 int64_t n, int64_t src, int64_t W)
{
    const int64_t first = src * x->pieces;
    if (!x->u8 && x->pieces == 1) {
        return (const REAL *)(x->rows[first] + n * x->plane_steps[first]);
    }
    REAL *const buffer = rows + slot * W;
    REAL *out = buffer;
    for (int64_t j = 0; j < x->pieces; j++) {
        const char *segment = x->rows[first + j] + n * x->plane_steps[first + j];
        const int64_t width = x->widths[j];
        if (x->u8) {
            for (int64_t q = 0; q < width; q++) {
                out[q] = (REAL)((const uint8_t *)segment)[q];
            }
        } else {
            memcpy(out, segment, (size_t)width * sizeof(REAL));
        }
        out += width;
    }
    return buffer;
}

/* Points ptrs[i] at the input row that row i of the band read by (whole-image) output rows
 * h0 .. h0 + count - 1 of plane n: ptrs[i + r] is kernel row r's input for output row
 * h0 + i. A row of x (assembled into the thread's `assembled` rows, W REALs each, when it
 * must be), or the zero row of constant mode outside the plane. */
static void FN(band_input_rows)(const REAL **ptrs, REAL *assembled, const fc_filter_input *x,
                                int64_t n, int64_t h0, int64_t count,
                                const FN(filter_plan) *fp, const fc_filter_problem *pb)
{
    for (int64_t i = 0; i < count + pb->R - 1; i++) {
        const int64_t src = fc_border_index(h0 + i - pb->R / 2, pb->H, pb->border);
        ptrs[i] = src < 0 ? fp->zero_row : FN(input_row)(assembled, i, x, n, src, pb->W);
    }
}

/* y (N, out_H, out_W) = the window of x correlated with kx (R, S) or, when ky is not NULL,
 * of the magnitude sqrt(gx^2 + gy^2) of x correlated with kx and with ky: one pass, by the
 * fused micro-kernel when there is one, else with gy's row in a per-thread buffer. */
static fc_status FN(filter_planes)(REAL *y, const fc_filter_input *x, const REAL *kx,
                                   const REAL *ky, const fc_filter_problem *pb)
{
    FN(filter_plan) fp;
    if (pb->N == 0) {
        return FC_OK;
    }
    fc_status st = FN(filter_plan_of)(&fp, x, pb);
    if (st != FC_OK) {
        return st;
    }
    const int64_t OH = pb->out_H, OW = pb->out_W, W = pb->W;
    const int64_t plane_bands = (OH + FC_FILTER_BAND - 1) / FC_FILTER_BAND;
    const int64_t bands = pb->N * plane_bands;
    const int fused_magnitude = ky != NULL && fp.magnitude_kernel != NULL;
    REAL *gy_rows = NULL;
    if (ky != NULL && !fused_magnitude) {
        gy_rows = malloc((size_t)(fc_filter_threads() * OW) * sizeof(REAL));
        if (gy_rows == NULL) {
            FN(filter_plan_free)(&fp);
            return FC_ERR_NOMEM;
        }
    }

    /* Each thread owns whole output rows, so results do not depend on the thread count.
     * Bands are small and handed out one at a time: a call lasts well under a millisecond,
     * so a thread that wakes up late must not hold up a fixed share of the image. */
#pragma omp parallel for schedule(dynamic, 1) if (pb->N * OH * OW * pb->R * pb->S >= FC_FILTER_MIN_WORK)
    for (int64_t band = 0; band < bands; band++) {
        const int thread = fc_filter_thread();
        const int64_t n = band / plane_bands, h0 = band % plane_bands * FC_FILTER_BAND;
        const int64_t count = OH - h0 < FC_FILTER_BAND ? OH - h0 : FC_FILTER_BAND;
        const REAL **ptrs = fp.row_ptrs + thread * fp.band_rows;
        REAL *assembled = fp.assembled != NULL ? fp.assembled + thread * fp.band_rows * W
                                               : NULL;
        FN(band_input_rows)(ptrs, assembled, x, n, pb->top + h0, count, &fp, pb);
        for (int64_t i = 0; i < count; i++) {
            const REAL *const *row_ptrs = ptrs + i;
            REAL *gx = y + (n * OH + h0 + i) * OW;
            if (fused_magnitude || ky == NULL) {
                FN(filter_row)(gx, row_ptrs, kx, ky, &fp, pb);
                continue;
            }
            REAL *gy = gy_rows + thread * OW;
            FN(filter_row)(gx, row_ptrs, kx, NULL, &fp, pb);
            FN(filter_row)(gy, row_ptrs, ky, NULL, &fp, pb);
            for (int64_t q = 0; q < OW; q++) {
                gx[q] = FN(fc_magnitude)(gx[q], gy[q]);
            }
        }
    }
    free(gy_rows);
    FN(filter_plan_free)(&fp);
    return FC_OK;
}

fc_status FN(fc_filter2d)(REAL *y, const fc_filter_input *x, const REAL *k,
                          const fc_filter_problem *pb)
{
    return FN(filter_planes)(y, x, k, NULL, pb);
}

fc_status FN(fc_filter2d_magnitude)(REAL *y, const fc_filter_input *x, const REAL *kx,
                                    const REAL *ky, const fc_filter_problem *pb)
{
    return FN(filter_planes)(y, x, kx, ky, pb);
}
