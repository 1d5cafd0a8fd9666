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

/* The R input rows of an output row as segments side by side: segment j of kernel row r
 * starts at seg[j * seg_stride + r] and holds columns [starts[j], starts[j + 1]). */
typedef struct {
    const REAL *const *seg;
    int64_t seg_stride;
    const int64_t *starts;
    int64_t pieces;
} FN(band_rows);

/* Column c (inside the row) of kernel row r: the segments are few (a chunk and its
 * neighbours' edges), so a scan finds c's. */
static inline REAL FN(row_value)(const FN(band_rows) *rows, int64_t r, int64_t c)
{
    int64_t j = 0;
    while (c >= rows->starts[j + 1]) {
        j++;
    }
    return rows->seg[j * rows->seg_stride + r][c - rows->starts[j]];
}

/* One pixel the micro-kernel does not compute: column q of the output row, every column
 * index mapped through the border mode. The taps are summed as the row's micro-kernel sums
 * them (fused multiply-adds or not), so a pixel's value does not depend on its column or
 * on where the row's segments meet: a tile of the image (fastconv.dask) gets the same
 * values as the whole. */
static REAL FN(filter_border_pixel)(const FN(band_rows) *rows, const REAL *k, int64_t q,
                                    int fused, const fc_filter_problem *pb)
{
    const int64_t aw = pb->S / 2;
    REAL acc = 0;
    for (int64_t r = 0; r < pb->R; r++) {
        for (int64_t s = 0; s < pb->S; s++) {
            const int64_t c = fc_border_index(q + s - aw, pb->W, pb->border);
            if (c >= 0) {
                const REAL v = FN(row_value)(rows, r, c);
                acc = fused ? FN(fc_fma)(k[r * pb->S + s], v, acc)
                            : acc + k[r * pb->S + s] * v;
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
    int64_t pieces;             /* segments per row: the input's, 1 for uint8 */
    int64_t *starts;            /* pieces + 1: the column each segment starts at, then W */
    const REAL **row_ptrs;      /* pieces x band_rows segment pointers per thread */
    REAL *assembled;            /* band_rows x W per thread, for uint8 rows, or NULL */
} FN(filter_plan);

/* The gradient magnitude of border pixel q, its taps summed as the fused micro-kernel sums
 * them. */
static REAL FN(border_magnitude)(const FN(band_rows) *rows, const REAL *kx, const REAL *ky,
                                 int64_t q, const fc_filter_problem *pb)
{
    return FN(fc_magnitude)(FN(filter_border_pixel)(rows, kx, q, 1, pb),
                            FN(filter_border_pixel)(rows, ky, q, 1, pb));
}

/* Output columns [c, to) through the border map. Output column q is input column
 * left + q. */
static void FN(border_pixels)(REAL *y_row, const FN(band_rows) *rows, const REAL *kx,
                              const REAL *ky, int fused, int64_t c, int64_t to,
                              const fc_filter_problem *pb)
{
    for (; c < to; c++) {
        y_row[c - pb->left] = ky == NULL ? FN(filter_border_pixel)(rows, kx, c, fused, pb)
                                         : FN(border_magnitude)(rows, kx, ky, c, pb);
    }
}

/* One output row y_row (out_W) of kernel k, or of the gradient magnitude of kx and ky when
 * ky is not NULL, from its R input rows: in each segment, the columns of [lo, hi) whose
 * taps all lie in it by the micro-kernel, reading the segment in place; the others (the
 * image border, S - 1 where two segments meet) through the border map. */
static void FN(filter_row)(REAL *y_row, const FN(band_rows) *rows, const REAL *kx,
                           const REAL *ky, const FN(filter_plan) *fp,
                           const fc_filter_problem *pb)
{
    /* input column c reads columns c - aw .. c - aw + S - 1 */
    const int64_t aw = pb->S / 2;
    const int fused = fp->row_kernel != FN(filter_row_generic);
    int64_t done = pb->left;           /* output columns [left, done) are written */
    for (int64_t j = 0; j < rows->pieces; j++) {
        const int64_t first = rows->starts[j] + aw;
        const int64_t last = rows->starts[j + 1] - (pb->S - 1 - aw);
        const int64_t lo = first > fp->lo ? first : fp->lo;
        const int64_t hi = last < fp->hi ? last : fp->hi;
        if (hi <= lo) {
            continue;
        }
        FN(border_pixels)(y_row, rows, kx, ky, fused, done, lo, pb);
        const REAL *const *seg = rows->seg + j * rows->seg_stride;
        const int64_t c0 = lo - aw - rows->starts[j];
        if (ky == NULL) {
            fp->row_kernel(y_row + lo - pb->left, seg, kx, pb->R, pb->S, c0, hi - lo);
        } else {
            fp->magnitude_kernel(y_row + lo - pb->left, seg, kx, ky, pb->R, pb->S, c0,
                                 hi - lo);
        }
        done = hi;
    }
    FN(border_pixels)(y_row, rows, kx, ky, fused, done, pb->left + pb->out_W, pb);
}

static void FN(filter_plan_free)(FN(filter_plan) *fp)
{
    free(fp->zero_row);
    free(fp->starts);
    free(fp->row_ptrs);
    free(fp->assembled);
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
    int64_t width = 0;              /* the segments must make rows of W */
    for (int64_t j = 0; j < x->pieces; j++) {
        if (x->widths[j] < 0) {
            return FC_ERR_INVALID;
        }
        width += x->widths[j];
    }
    if (width != W) {
        return FC_ERR_INVALID;
    }
    const int64_t threads = fc_filter_threads();
    fp->band_rows = FC_FILTER_BAND + R - 1;
    fp->pieces = x->u8 ? 1 : x->pieces;
    fp->zero_row = pb->border == FC_BORDER_CONSTANT ? calloc((size_t)W, sizeof(REAL)) : NULL;
    fp->starts = malloc((size_t)(fp->pieces + 1) * sizeof(*fp->starts));
    fp->row_ptrs = malloc((size_t)(threads * fp->pieces * fp->band_rows)
                          * sizeof(*fp->row_ptrs));
    fp->assembled = x->u8
        ? malloc((size_t)(threads * fp->band_rows * W) * sizeof(REAL)) : NULL;
    if (fp->starts == NULL || fp->row_ptrs == NULL
        || (pb->border == FC_BORDER_CONSTANT && fp->zero_row == NULL)
        || (x->u8 && fp->assembled == NULL)) {
        FN(filter_plan_free)(fp);
        return FC_ERR_NOMEM;
    }
    fp->starts[0] = 0;
    for (int64_t j = 0; j < fp->pieces; j++) {
        fp->starts[j + 1] = fp->starts[j] + (x->u8 ? W : x->widths[j]);
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

/* Segment j of row src of plane n: where its first element lies. */
static const char *FN(segment)(const fc_filter_input *x, int64_t n, int64_t src, int64_t j)
{
    const int64_t at = src * x->pieces + j;
    return x->rows[at] + n * x->plane_steps[at];
}

/* Row src of plane n of a uint8 input, its segments converted side by side into `out`. */
static void FN(convert_row)(REAL *out, const fc_filter_input *x, int64_t n, int64_t src)
{
    for (int64_t j = 0; j < x->pieces; j++) {
        const uint8_t *segment = (const uint8_t *)FN(segment)(x, n, src, j);
        for (int64_t q = 0; q < x->widths[j]; q++) {
            out[q] = (REAL)segment[q];
        }
        out += x->widths[j];
    }
}

/* Points ptrs[j * band_rows + i] (j < fp->pieces) at segment j of the input row that row
 * i of the band read by (whole-image) output rows h0 .. h0 + count - 1 of plane n: row
 * i + r is kernel row r's input for output row h0 + i. The segments of x, read in place;
 * a uint8 row, converted into row i of the thread's `assembled` rows (W REALs each); or
 * the zero row of constant mode outside the plane. */
static void FN(band_input_rows)(const REAL **ptrs, REAL *assembled, const fc_filter_input *x,
                                int64_t n, int64_t h0, int64_t count,
                                const FN(filter_plan) *fp, const fc_filter_problem *pb)
{
    for (int64_t i = 0; i < count + pb->R - 1; i++) {
        const int64_t src = fc_border_index(h0 + i - pb->R / 2, pb->H, pb->border);
        if (src < 0) {
            for (int64_t j = 0; j < fp->pieces; j++) {
                ptrs[j * fp->band_rows + i] = fp->zero_row + fp->starts[j];
            }
        } else if (x->u8) {
            FN(convert_row)(assembled + i * pb->W, x, n, src);
            ptrs[i] = assembled + i * pb->W;
        } else {
            for (int64_t j = 0; j < fp->pieces; j++) {
                ptrs[j * fp->band_rows + i] = (const REAL *)FN(segment)(x, n, src, j);
            }
        }
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
        const REAL **ptrs = fp.row_ptrs + thread * fp.pieces * fp.band_rows;
        REAL *assembled = fp.assembled != NULL ? fp.assembled + thread * fp.band_rows * W
                                               : NULL;
        FN(band_input_rows)(ptrs, assembled, x, n, pb->top + h0, count, &fp, pb);
        for (int64_t i = 0; i < count; i++) {
            const FN(band_rows) rows = {ptrs + i, fp.band_rows, fp.starts, fp.pieces};
            REAL *gx = y + (n * OH + h0 + i) * OW;
            if (fused_magnitude || ky == NULL) {
                FN(filter_row)(gx, &rows, kx, ky, &fp, pb);
                continue;
            }
            REAL *gy = gy_rows + thread * OW;
            FN(filter_row)(gx, &rows, kx, NULL, &fp, pb);
            FN(filter_row)(gy, &rows, ky, NULL, &fp, pb);
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
