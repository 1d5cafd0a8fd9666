/* conv_direct_band_impl.h: the band buffer's contents for one element type (template.h:
 * REAL, FN): filling it from x (fill_band, the stride phases split out of each padded row),
 * copying a whole-image buffer back to dx (unfill_image, the adjoint), dy in the band's
 * pixel numbering (fill_dy_band) or transposed to filters-contiguous (fill_dy_transposed),
 * and the outputs a strip map cannot describe (scatter_tile). The layout is described at
 * the top of conv_direct.c; the geometry is in conv_direct_band.h. */


/* 1 if a[0..n) holds no inf and no NaN. */
static int FN(all_finite)(const REAL *a, int64_t n)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        bad |= !(a[i] - a[i] == 0);
    }
    return !bad;
}

/* dst[0..n) <- src[0..n): rows shorter than FC_DIRECT_SHORT_ROW by a loop (GCC keeps it a
 * loop, as dst and src may alias), longer ones by memcpy. */
static inline void FN(copy_short)(REAL *dst, const REAL *src, int64_t n)
{
    if (n >= FC_DIRECT_SHORT_ROW) {
        memcpy(dst, src, (size_t)n * sizeof(REAL));
        return;
    }
    for (int64_t j = 0; j < n; j++) {
        dst[j] = src[j];
    }
}

/* The padded columns [0, n*sw) of one input row (padded column jj is input column
 * jj - pad_left, 0 outside [0, W)) into `row`. */
static void FN(pad_row)(REAL *row, const REAL *src, int64_t len, int64_t pad_left, int64_t W)
{
    int64_t lo = pad_left < 0 ? 0 : pad_left, hi = W + pad_left;
    lo = min64(lo, len);
    hi = hi < lo ? lo : min64(hi, len);
    if (lo > 0) {
        memset(row, 0, (size_t)lo * sizeof(REAL));
    }
    FN(copy_short)(row + lo, src + lo - pad_left, hi - lo);
    if (hi < len) {
        memset(row + hi, 0, (size_t)(len - hi) * sizeof(REAL));
    }
}

/* dst + b*phase_stride (b < sw) <- columns b, b + sw, ... of row (n of each). Stride 2, the
 * common case, is one interleaved loop the compiler turns into shuffles. */
static void FN(split_row)(REAL *dst, int64_t phase_stride, const REAL *row, int64_t n,
                          int64_t sw)
{
    if (sw == 2) {
        REAL *even = dst, *odd = dst + phase_stride;
        for (int64_t j = 0; j < n; j++) {
            even[j] = row[2 * j];
            odd[j] = row[2 * j + 1];
        }
        return;
    }
    for (int64_t b = 0; b < sw; b++) {
        for (int64_t j = 0; j < n; j++) {
            dst[b * phase_stride + j] = row[j * sw + b];
        }
    }
}

/* row <- the phases src + b*phase_stride interleaved back: the inverse of split_row. */
static void FN(merge_row)(REAL *row, const REAL *src, int64_t phase_stride, int64_t n,
                          int64_t sw)
{
    if (sw == 2) {
        const REAL *even = src, *odd = src + phase_stride;
        for (int64_t j = 0; j < n; j++) {
            row[2 * j] = even[j];
            row[2 * j + 1] = odd[j];
        }
        return;
    }
    for (int64_t b = 0; b < sw; b++) {
        for (int64_t j = 0; j < n; j++) {
            row[j * sw + b] = src[b * phase_stride + j];
        }
    }
}

/* even[j] = src[2j + first], odd[j] = src[2j + 1 + first] for j < n, 0 outside [0, W):
 * split_row of a padded row, for stride 2 straight from the input row. */
static void FN(split_row2)(REAL *even, REAL *odd, const REAL *src, int64_t n, int64_t first,
                           int64_t W)
{
    /* [lo, hi): the j whose two columns are both inside the row */
    int64_t lo = first >= 0 ? 0 : fc_ceil_div(-first, 2);
    int64_t hi = W - 2 - first < 0 ? 0 : (W - 2 - first) / 2 + 1;
    lo = min64(lo, n);
    hi = hi < lo ? lo : min64(hi, n);
    for (int64_t j = lo; j < hi; j++) {
        even[j] = src[2 * j + first];
        odd[j] = src[2 * j + 1 + first];
    }
    /* the few columns at the two ends, where the padding is */
    for (int64_t j = 0; j < n; j++) {
        if (j == lo) {
            j = hi;
            if (j == n) {
                break;
            }
        }
        const int64_t col = 2 * j + first;
        even[j] = col >= 0 && col < W ? src[col] : 0;
        odd[j] = col + 1 >= 0 && col + 1 < W ? src[col + 1] : 0;
    }
}

/* buf (Cg, sh, sw, rows + reach_rows, pitch) <- the zero-padded input rows that output rows
 * [p0, p0 + rows) read from x_group (Cg, H, W), split into stride phases. */
static void FN(fill_band)(REAL *buf, const REAL *x_group, int64_t p0, int64_t rows,
                          const fc_band_geom *gm, const fc_conv_problem *pb)
{
    const int64_t sh = pb->stride_h, sw = pb->stride_w, H = pb->H, W = pb->W;
    const int64_t pitch = gm->pitch;
    for (int64_t c = 0; c < gm->ch; c++) {
        for (int64_t a = 0; a < sh; a++) {
            REAL *dst = buf + (c * sh + a) * sw * gm->plane;
            for (int64_t i = 0; i < rows + gm->reach_rows; i++, dst += pitch) {
                const int64_t h = (p0 + i) * sh + a - pb->pad_top;
                if (h < 0 || h >= H) {
                    for (int64_t b = 0; b < sw; b++) {
                        memset(dst + b * gm->plane, 0, (size_t)pitch * sizeof(REAL));
                    }
                } else if (sw == 1) {
                    FN(pad_row)(dst, x_group + (c * H + h) * W, pitch, pb->pad_left, W);
                } else if (sw == 2) {
                    FN(split_row2)(dst, dst + gm->plane, x_group + (c * H + h) * W, pitch,
                                   -pb->pad_left, W);
                } else {
                    REAL *row = buf + gm->row;
                    FN(pad_row)(row, x_group + (c * H + h) * W, pitch * sw, pb->pad_left, W);
                    FN(split_row)(dst, gm->plane, row, pitch, sw);
                }
            }
        }
    }
}

/* The input rows item t reads: x's own (band_is_image: in_place), or buf filled from them. */
static const REAL *FN(item_band)(REAL *buf, int in_place, const REAL *x, fc_band_item t,
                                 const fc_band_geom *gm, const fc_conv_problem *pb)
{
    const REAL *x_group = x + (t.n * pb->C + t.g * gm->ch) * pb->H * pb->W;
    if (in_place) {
        return x_group;
    }
    FN(fill_band)(buf, x_group, t.p0, t.rows, gm, pb);
    return buf;
}

/* y <- the pixels of tile (kb, vw) whose strip starts at band row pl, column q, one by
 * one: for what a strip map cannot describe (outputs narrower than a strip, or every
 * stride-th column of dx). */
static void FN(scatter_tile)(REAL *y, const REAL *tile, int kb, int vw, int64_t pl, int64_t q,
                             int64_t rows, int64_t pitch, int64_t Q, const fc_out_layout *yl)
{
    for (int j = 0; j < vw && pl < rows; j++) {
        if (q < Q) {
            for (int k = 0; k < kb; k++) {
                y[k * yl->channel + pl * yl->row + q * yl->col] = tile[k * vw + j];
            }
        }
        if (++q == pitch) {
            q = 0;
            pl++;
        }
    }
}

/* y (N, K, P, Q) placed by yl <- 0. */
static void FN(zero_outputs)(REAL *y, const fc_out_layout *yl, int64_t N, int64_t K,
                             int64_t P, int64_t Q)
{
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) {
            for (int64_t p = 0; p < P; p++) {
                REAL *row = y + n * yl->image + k * yl->channel + p * yl->row;
                for (int64_t q = 0; q < Q; q++) {
                    row[q * yl->col] = 0;
                }
            }
        }
    }
}

/* dyb (nk, ldd) <- rows [p0, p0 + rows) of nk planes of dy (each P x Q) in the band's pixel
 * numbering v = (p - p0)*pitch + q, with 0 in the columns q >= Q and from v = rows*pitch
 * up to ldd: those pixels add nothing to a sum over v. */
static void FN(fill_dy_band)(REAL *dyb, int64_t ldd, const REAL *dy, int64_t nk, int64_t p0,
                             int64_t rows, int64_t pitch, const fc_conv_problem *pb)
{
    const int64_t P = pb->P, Q = pb->Q;
    for (int64_t k = 0; k < nk; k++) {
        REAL *dst = dyb + k * ldd;
        const REAL *src = dy + (k * P + p0) * Q;
        for (int64_t i = 0; i < rows; i++) {
            memcpy(dst + i * pitch, src + i * Q, (size_t)Q * sizeof(REAL));
            memset(dst + i * pitch + Q, 0, (size_t)(pitch - Q) * sizeof(REAL));
        }
        memset(dst + rows * pitch, 0, (size_t)(ldd - rows * pitch) * sizeof(REAL));
    }
}

/* dyt (rows*Q, ldv) <- rows [p0, p0 + rows) of nk planes of dy, filters contiguous:
 * dyt[(i*Q + q)*ldv + k] = dy[k][p0 + i][q], and 0 for the filters nk..ldv-1. */
static void FN(fill_dy_transposed)(REAL *dyt, int64_t ldv, const REAL *dy, int64_t nk,
                                   int64_t p0, int64_t rows, const fc_conv_problem *pb)
{
    const int64_t npix = rows * pb->Q, PQ = pb->P * pb->Q;
    const REAL *src = dy + p0 * pb->Q;
    /* in blocks of FC_DIRECT_TRANSPOSE_BLOCK pixels */
    for (int64_t v0 = 0; v0 < npix; v0 += FC_DIRECT_TRANSPOSE_BLOCK) {
        const int64_t nb = min64(FC_DIRECT_TRANSPOSE_BLOCK, npix - v0);
        for (int64_t k = 0; k < nk; k++) {
            const REAL *plane = src + k * PQ + v0;
            for (int64_t v = 0; v < nb; v++) {
                dyt[(v0 + v) * ldv + k] = plane[v];
            }
        }
        for (int64_t v = 0; v < nb; v++) {
            for (int64_t k = nk; k < ldv; k++) {
                dyt[(v0 + v) * ldv + k] = 0;
            }
        }
    }
}

/* dx_group (Cg, H, W) <- the pixels of a whole-image band buffer that are not padding;
 * pixels that no output reads get 0. The adjoint of fill_band. buf's scratch row is used. */
static void FN(unfill_image)(REAL *dx_group, REAL *buf, const fc_band_geom *gm,
                             const fc_conv_problem *pb)
{
    const int64_t sh = pb->stride_h, sw = pb->stride_w, H = pb->H, W = pb->W;
    const int64_t rows = gm->band + gm->reach_rows, len = gm->pitch * sw;
    /* dx column w is padded column w + pad_left, held for w in [0, hi) */
    const int64_t hi = min64(W, len - pb->pad_left);
    for (int64_t c = 0; c < gm->ch; c++) {
        /* padded row h + pad_top is row i of row phase a */
        int64_t a = pb->pad_top % sh, i = pb->pad_top / sh;
        for (int64_t h = 0; h < H; h++) {
            REAL *dst = dx_group + (c * H + h) * W;
            if (i >= rows || hi <= 0) {
                memset(dst, 0, (size_t)W * sizeof(REAL));
            } else {
                const REAL *src = buf + (c * sh + a) * sw * gm->plane + i * gm->pitch;
                if (sw > 1) {
                    FN(merge_row)(buf + gm->row, src, gm->plane, gm->pitch, sw);
                    src = buf + gm->row;
                }
                FN(copy_short)(dst, src + pb->pad_left, hi);
                if (hi < W) {
                    memset(dst + hi, 0, (size_t)(W - hi) * sizeof(REAL));
                }
            }
            if (++a == sh) {
                a = 0;
                i++;
            }
        }
    }
}

/* 1 if every value a band buffer of `rows` output rows holds is finite. */
static int FN(band_finite)(const REAL *buf, int64_t rows, const fc_band_geom *gm,
                           const fc_conv_problem *pb)
{
    const int64_t planes = gm->ch * pb->stride_h * pb->stride_w;
    for (int64_t i = 0; i < planes; i++) {
        if (!FN(all_finite)(buf + i * gm->plane, (rows + gm->reach_rows) * gm->pitch)) {
            return 0;
        }
    }
    return 1;
}
