/* conv_direct_impl.h: the direct convolution kernels for one element type.
 * Included by conv_direct.c with REAL (float or double) and FN(name) (adds _f32/_f64).
 *
 * Layouts: x (N, C, H, W); w (K, C/groups, R, S); y and dy (N, K, P, Q); all C-contiguous.
 * The band buffer, its tap offsets and the pixel numbering v are described at the top of
 * conv_direct.c. Work items (image, group, band of output rows) are shared out among the
 * threads; each thread owns its band buffer and the outputs of its items. Where items
 * add into one result (the weight gradient), the split is static and each thread keeps
 * its own partial sums, added in thread order. */

/* The micro-kernel set in use (see conv_direct_kernels.h) and its vector length. */
static int64_t FN(simd_lanes)(void)
{
    return (fc_simd_avx512() ? 64 : 32) / (int64_t)sizeof(REAL);
}

static FN(fc_tile_kernel) FN(tile_kernel)(int kb)
{
    return fc_simd_avx512() ? FN(fc_tile_avx512)[kb]
         : fc_simd_avx2() ? FN(fc_tile_avx2)[kb] : FN(fc_tile_generic)[kb];
}

static FN(fc_tile_add_kernel) FN(tile_add_kernel)(int kb)
{
    return fc_simd_avx512() ? FN(fc_tile_add_avx512)[kb]
         : fc_simd_avx2() ? FN(fc_tile_add_avx2)[kb] : FN(fc_tile_add_generic)[kb];
}

static FN(fc_wgrad_kernel) FN(wgrad_kernel)(int kb)
{
    return fc_simd_avx512() ? FN(fc_wgrad_avx512)[kb]
         : fc_simd_avx2() ? FN(fc_wgrad_avx2)[kb] : FN(fc_wgrad_generic)[kb];
}

static FN(fc_tilek_kernel) FN(tilek_kernel)(int nv, int pb)
{
    return fc_simd_avx512() ? FN(fc_tilek_avx512)[nv][pb]
         : fc_simd_avx2() ? FN(fc_tilek_avx2)[nv][pb] : FN(fc_tilek_generic)[nv][pb];
}

/* The most pixels a tilek call of nv vectors of filters takes (conv_direct_kernels.h). */
static int FN(tilek_pb_max)(int nv)
{
    return FC_TILEK_PB(nv, fc_simd_avx512() ? 32 : 16);
}

static FN(fc_wgradk_kernel) FN(wgradk_kernel)(int nv)
{
    return fc_simd_avx512() ? FN(fc_wgradk_avx512)[nv]
         : fc_simd_avx2() ? FN(fc_wgradk_avx2)[nv] : FN(fc_wgradk_generic)[nv];
}

/* 1 if a[0..n) holds no inf and no NaN. */
static int FN(all_finite)(const REAL *a, int64_t n)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        bad |= !(a[i] - a[i] == 0);
    }
    return !bad;
}

/* dst[0..n) <- src[0..n). Rows shorter than 32 values (LeNet-5 conv2's 10 and 14) by a
 * loop: the library call costs more than copying them (GCC keeps this a loop: dst and
 * src may alias); longer rows by memcpy as before (the lecture net's 37-41 measured the
 * same either way). */
static inline void FN(copy_short)(REAL *dst, const REAL *src, int64_t n)
{
    if (n >= 32) {
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

/* wp (K, T) <- w (K, T) with each filter block's taps interleaved, [t][kb], in the order
 * the tile kernel reads them; block (g, k0) starts at wp + (g*Kg + k0)*T. */
static void FN(pack_filters)(REAL *wp, const REAL *w, int64_t Kg, int64_t groups, int64_t T)
{
    const int64_t nblocks = tile_blocks(Kg);
    for (int64_t g = 0; g < groups; g++) {
        for (int64_t b = 0; b < nblocks; b++) {
            int64_t k0;
            int kb;
            tile_block(Kg, b, &k0, &kb);
            const REAL *src = w + (g * Kg + k0) * T;
            REAL *dst = wp + (g * Kg + k0) * T;
            for (int64_t t = 0; t < T; t++) {
                for (int k = 0; k < kb; k++) {
                    dst[t * kb + k] = src[k * T + t];
                }
            }
        }
    }
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

/* The forward vectorised over filters (tilek) instead of over pixel numbers (tile): each
 * accumulator is one output pixel's NV vectors of filters, a tile is a run of up to
 * tilek_pb_max pixels of one output row, so no lane computes a number past a row's end.
 * Chosen by a cost model, the share of the lanes computed that are outputs: by pixels,
 * the strips of tile_blocks over the band's pixel numbers (LeNet-5 conv2, 16 filters on
 * 10 x 10 outputs in rows of 14 numbers: 64%), by filters Kg / (vectors of filters),
 * less for runs with too few accumulators to hide the FMA latency (8). Only for at most
 * FC_TILEK_NV_MAX vectors of filters (the small layers) and contiguous output rows.
 * Measured (2 threads, PyTorch 0.23 ms in the same run): LeNet-5 conv2 forward 0.27 ->
 * 0.19 ms on AVX-512 (with band_is_image); splitting the lecture net's layer 2 into 16
 * filters by tilek + 4 by pixels measured slower (1.14 vs 0.99 ms on one thread). */
static int FN(correlate_by_filters_suits)(const fc_conv_problem *pb, const fc_band_geom *gm,
                                          const fc_out_layout *yl)
{
    const int64_t VL = FN(simd_lanes)(), Kg = pb->K / pb->groups, Q = pb->Q;
    const int64_t nv = fc_ceil_div(Kg, VL);
    if (yl->col != 1 || nv > FC_TILEK_NV_MAX) {
        return 0;
    }
    const int64_t runs = fc_ceil_div(Q, FN(tilek_pb_max)((int)nv));
    const double run = (double)Q / (double)runs;
    const double acc = (double)nv * run;
    const double by_filters = (double)Kg / (double)(nv * VL) * (acc < 8 ? acc / 8 : 1);
    const int64_t v_end = (gm->band - 1) * gm->pitch + Q;
    double lanes = 0;
    for (int64_t b = 0; b < tile_blocks(Kg); b++) {
        int64_t k0;
        int kb;
        tile_block(Kg, b, &k0, &kb);
        const int64_t vw = FC_TILE_VW(kb, VL);
        lanes += (double)(kb * fc_ceil_div(v_end, vw) * vw);
    }
    const double by_pixels = (double)(Kg * gm->band * Q) / lanes;
    return by_filters > 1.15 * by_pixels;
}

/* 1 if a band buffer would hold a copy of an image's channels: stride 1, one band per
 * image, no padding (none above or left; the band's rows and pitch are the image's, so
 * none below or right). Kernels that read only the pixels the outputs read (tilek, wgradk)
 * then read x itself. Without the one-band test, a band of fewer rows than the output
 * whose plane happened to be H x W passed with padding below the image, and each band after
 * the first read the image's top rows again. */
static int FN(band_is_image)(const fc_conv_problem *pb, const fc_band_geom *gm)
{
    return pb->stride_h == 1 && pb->stride_w == 1 && pb->pad_top == 0 && pb->pad_left == 0
           && gm->nbands == 1 && gm->pitch == pb->W && gm->plane == pb->H * pb->W;
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

/* correlate (below) vectorised over filters: the same work items and band buffers, the
 * weights packed as wk (G, T, ldv), filters contiguous and zero past Kg; in a "valid"
 * layer such as LeNet-5's the kernel reads x itself (band_is_image). */
static fc_status FN(correlate_by_filters)(REAL *y, const fc_out_layout *yl, const REAL *x,
                                          const REAL *w, const REAL *bias,
                                          const fc_conv_problem *pb, const fc_band_geom *gm,
                                          int nthreads)
{
    const int64_t G = pb->groups, Kg = pb->K / G, P = pb->P, Q = pb->Q, T = gm->taps;
    const int64_t VL = FN(simd_lanes)(), ldv = fc_ceil_div(Kg, VL) * VL;
    const int64_t nblocks = filter_blocks(ldv / VL, FC_TILEK_NV_MAX);
    const int64_t items = pb->N * G * gm->nbands;
    const int in_place = FN(band_is_image)(pb, gm);

    int64_t *off = malloc((size_t)T * sizeof(int64_t));
    REAL *wk = calloc_aligned((size_t)(G * T * ldv) * sizeof(REAL));
    REAL *bk = calloc_aligned((size_t)(G * ldv) * sizeof(REAL));
    if (off == NULL || wk == NULL || bk == NULL) {
        free(off);
        free_aligned(wk);
        free_aligned(bk);
        return FC_ERR_NOMEM;
    }
    tap_offsets(off, gm, pb);
    for (int64_t g = 0; g < G; g++) {
        for (int64_t k = 0; k < Kg; k++) {
            for (int64_t t = 0; t < T; t++) {
                wk[(g * T + t) * ldv + k] = w[(g * Kg + k) * T + t];
            }
            bk[g * ldv + k] = bias != NULL ? bias[g * Kg + k] : (REAL)0;
        }
    }
    int failed = 0;

#pragma omp parallel num_threads(nthreads) reduction(|| : failed)
    {
        REAL *buf = in_place ? NULL : calloc_aligned((size_t)gm->size * sizeof(REAL));
        if (!in_place && buf == NULL) {
            failed = 1;
        }
#pragma omp for schedule(dynamic)  /* each item writes its own outputs, as in correlate */
        for (int64_t it = 0; it < items; it++) {
            if (failed) {
                continue;
            }
            const fc_band_item t = band_item(it, G, P, gm);
            const int64_t n = t.n, g = t.g, p0 = t.p0, rows = t.rows;
            const REAL *band = FN(item_band)(buf, in_place, x, t, gm, pb);
            for (int64_t b = 0; b < nblocks; b++) {
                int64_t v0;
                int nv;
                filter_block(ldv / VL, nblocks, b, &v0, &nv);
                const int nk = (int)min64(Kg - v0 * VL, nv * VL);
                const int64_t runs = fc_ceil_div(Q, FN(tilek_pb_max)(nv));
                const REAL *wb = wk + g * T * ldv + v0 * VL, *bb = bk + g * ldv + v0 * VL;
                REAL *yb = y + n * yl->image + (g * Kg + v0 * VL) * yl->channel + p0 * yl->row;
                for (int64_t i = 0; i < rows; i++) {
                    /* the row in runs of sizes differing by at most one */
                    for (int64_t r = 0; r < runs; r++) {
                        const int64_t q0 = r * Q / runs, q1 = (r + 1) * Q / runs;
                        FN(tilek_kernel)(nv, (int)(q1 - q0))(yb + i * yl->row + q0, yl->channel,
                                                             nk, band + i * gm->pitch + q0, off,
                                                             T, wb, ldv, bb);
                    }
                }
            }
        }
        free_aligned(buf);
    }
    free(off);
    free_aligned(wk);
    free_aligned(bk);
    return failed ? FC_ERR_NOMEM : FC_OK;
}

static fc_status FN(correlate)(REAL *y, const fc_out_layout *yl, const REAL *x, const REAL *w,
                               const REAL *bias, const fc_conv_problem *pb)
{
    /* y (N, K, P, Q), placed by yl, = sum over c, r, s of x (N, C, H, W) * w (K, C/g, R, S)
     * + bias (K) or 0: the forward convolution, and each phase of the data gradient. */
    const int64_t G = pb->groups, Kg = pb->K / G, P = pb->P, Q = pb->Q;
    const int nthreads = fc_get_num_threads();
    fc_band_geom gm;
    band_geom(&gm, pb, band_rows(pb, nthreads, (int64_t)sizeof(REAL)));
    if (FN(correlate_by_filters_suits)(pb, &gm, yl)) {
        return FN(correlate_by_filters)(y, yl, x, w, bias, pb, &gm, nthreads);
    }
    const int64_t T = gm.taps, nblocks = tile_blocks(Kg);
    const int64_t items = pb->N * G * gm.nbands;

    int64_t *off = malloc((size_t)T * sizeof(int64_t));
    REAL *wpack = malloc((size_t)(pb->K * T) * sizeof(REAL));
    REAL *bpack = malloc((size_t)pb->K * sizeof(REAL));
    if (off == NULL || wpack == NULL || bpack == NULL) {
        free(off);
        free(wpack);
        free(bpack);
        return FC_ERR_NOMEM;
    }
    tap_offsets(off, &gm, pb);
    FN(pack_filters)(wpack, w, Kg, G, T);
    for (int64_t k = 0; k < pb->K; k++) {
        bpack[k] = bias != NULL ? bias[k] : (REAL)0;
    }
    int failed = 0;

#pragma omp parallel num_threads(nthreads) reduction(|| : failed)
    {
        REAL *buf = calloc_aligned((size_t)gm.size * sizeof(REAL));
        _Alignas(64) REAL tile[FC_TILE_KB_MAX * FC_TILE_VW_MAX];
        fc_strip_map map;
        fc_strip_map tile_map = {.nseg = 1};  /* all lanes into `tile`, for scatter_tile */
        if (buf == NULL) {
            failed = 1;
        }
        /* dynamic: every item writes its own outputs, so the results do not depend on
         * which thread runs it, and a thread the OS pauses does not hold up the call */
#pragma omp for schedule(dynamic)
        for (int64_t it = 0; it < items; it++) {
            if (failed) {
                continue;
            }
            const fc_band_item t = band_item(it, G, P, &gm);
            const int64_t n = t.n, g = t.g, p0 = t.p0, rows = t.rows;
            FN(item_band)(buf, 0, x, t, &gm, pb);      /* fills buf */
            const int64_t v_end = (rows - 1) * gm.pitch + Q;  /* past the band's last pixel */
            for (int64_t b = 0; b < nblocks; b++) {
                int64_t k0;
                int kb;
                tile_block(Kg, b, &k0, &kb);
                const FN(fc_tile_kernel) kernel = FN(tile_kernel)(kb);
                const int vw = FC_TILE_VW(kb, FN(simd_lanes)());
                const REAL *wb = wpack + (g * Kg + k0) * T, *bb = bpack + g * Kg + k0;
                REAL *yb = y + n * yl->image + (g * Kg + k0) * yl->channel + p0 * yl->row;
                int64_t pl = 0, q = 0;  /* band row and column of pixel number v */
                for (int64_t v = 0; v < v_end; v += vw) {
                    if (strip_map(&map, pl, q, vw, rows, gm.pitch, Q, yl)) {
                        kernel(yb, &map, buf + v, off, T, wb, bb);
                    } else {
                        tile_map.hi[0] = vw;
                        tile_map.ldk = vw;
                        kernel(tile, &tile_map, buf + v, off, T, wb, bb);
                        FN(scatter_tile)(yb, tile, kb, vw, pl, q, rows, gm.pitch, Q, yl);
                    }
                    for (q += vw; q >= gm.pitch; q -= gm.pitch) {
                        pl++;
                    }
                }
            }
        }
        free_aligned(buf);
    }
    free(off);
    free(wpack);
    free(bpack);
    return failed ? FC_ERR_NOMEM : FC_OK;
}

fc_status FN(fc_conv_direct_forward)(REAL *y, const REAL *x, const REAL *w, const REAL *bias,
                                     const fc_conv_problem *pb)
{
    /* y (N, K, P, Q) = sum over c, r, s of x (N, C, H, W) * w (K, C/g, R, S), + bias (K) */
    const fc_out_layout yl = {pb->K * pb->P * pb->Q, pb->P * pb->Q, pb->Q, 1};
    return FN(correlate)(y, &yl, x, w, bias, pb);
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
    /* blocks of 8 pixels: the 8 values of a filter are one contiguous load, and the
     * block's ldv-wide rows of dyt stay in the L1 cache while they fill */
    for (int64_t v0 = 0; v0 < npix; v0 += 8) {
        const int64_t nb = min64(8, npix - v0);
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

/* The data gradient as the forward's exact adjoint: where the forward reads
 * x_band[v + off[t]], this adds w[k][t] * dy[k][v] into the same place of a dx band
 * buffer. It computes only the P x Q pixels of dy (the gather form below computes all
 * H x W pixels of dx, over dy's zero padding) but adds each tile to memory after summing
 * just the group's filters. One band is the whole image (bands would overlap on their
 * halo rows), so it serves problems with enough (image, group) pairs for the threads.
 * The taps of one tile are the same (r, s) of kb channels: their buffer rows lie a whole
 * channel of the buffer apart, so a tile's rows never overlap.
 * Measured (one thread, AVX-512 / AVX2): scatter wins when it computes well under the
 * gather form's pixels (LeNet-5 conv1 0.28 vs 0.44 / 0.40 vs 0.55 ms, conv2 0.41 vs 0.61 /
 * 0.60 vs 1.05 ms) and on strided layers (lecture net 2: 1.18 vs 1.72 ms; stride phases
 * make the gather form store pixel by pixel); gather on "same" layers, on lecture net 1
 * (90% of the pixels: 0.38 vs 0.44 / 0.51 vs 0.55 ms) and for single filters. */
static int FN(scatter_suits)(const fc_conv_problem *pb, int nthreads)
{
    const int64_t Kg = pb->K / pb->groups;
    fc_band_geom gm;
    band_geom(&gm, pb, pb->P);
    const int64_t bytes = (gm.size + Kg * (pb->P * gm.pitch + FC_TILE_VW_MAX))
                          * (int64_t)sizeof(REAL);
    const int strided = pb->stride_h > 1 || pb->stride_w > 1;
    /* pixels x taps computed, relative to the gather form's (stride 1) */
    const double work = (double)(pb->P * gm.pitch)
                        / (double)(pb->H * (pb->W + (pb->S - 1) * pb->dil_w));
    return pb->N * pb->groups >= nthreads
        && (strided || (Kg >= 2 && work <= 0.85))
        && pb->stride_h * pb->stride_w * gm.plane >= FC_TILE_VW_MAX
        && bytes <= FC_DIRECT_IMAGE_BYTES;
}

static fc_status FN(backward_data_scatter)(REAL *dx, const REAL *dy, const REAL *w,
                                           const fc_conv_problem *pb)
{
    /* dx (N, C, H, W) from dy (N, K, P, Q) and w (K, C/g, R, S): per (image, group),
     * dxb (Cg, sh, sw, rows, pitch) += w^T dy at the forward's tap offsets, then
     * dx <- dxb without its padding. */
    const int64_t G = pb->groups, Cg = pb->C / G, Kg = pb->K / G, P = pb->P, Q = pb->Q;
    const int64_t RS = pb->R * pb->S;
    const int nthreads = fc_get_num_threads();
    fc_band_geom gm;
    band_geom(&gm, pb, P);
    const int64_t T = gm.taps, nblocks = tile_blocks(Cg);
    /* dy rows: zeros for strips past the end; 64-byte multiples, so that the kernel's loads
     * of dy are aligned (an unaligned 64-byte load always splits two cache lines) */
    const int64_t ldd = round_up(P * gm.pitch + FC_TILE_VW_MAX, 64 / (int64_t)sizeof(REAL));
    const int64_t v_end = (P - 1) * gm.pitch + Q;

    int64_t *off = malloc((size_t)T * sizeof(int64_t));
    int64_t *dy_off = malloc((size_t)Kg * sizeof(int64_t));
    REAL *wt = malloc((size_t)(pb->K * T) * sizeof(REAL));
    if (off == NULL || dy_off == NULL || wt == NULL) {
        free(off);
        free(dy_off);
        free(wt);
        return FC_ERR_NOMEM;
    }
    tap_offsets(off, &gm, pb);
    for (int64_t k = 0; k < Kg; k++) {
        dy_off[k] = k * ldd;
    }
    /* wt: for group g, tap (r, s) and channel block (c0, kb), [k][i] = w[g*Kg + k][c0 + i][r][s]
     * at wt + ((g*RS + rs)*Cg + c0)*Kg: the dy channels are the tile kernel's taps. */
    for (int64_t g = 0; g < G; g++) {
        for (int64_t rs = 0; rs < RS; rs++) {
            for (int64_t b = 0; b < nblocks; b++) {
                int64_t c0;
                int kb;
                tile_block(Cg, b, &c0, &kb);
                REAL *dst = wt + ((g * RS + rs) * Cg + c0) * Kg;
                for (int64_t k = 0; k < Kg; k++) {
                    for (int i = 0; i < kb; i++) {
                        dst[k * kb + i] = w[((g * Kg + k) * Cg + c0 + i) * RS + rs];
                    }
                }
            }
        }
    }
    int failed = 0;

#pragma omp parallel num_threads(nthreads) reduction(|| : failed)
    {
        REAL *dxb = malloc_aligned((size_t)gm.size * sizeof(REAL));
        /* dy in the band's pixel numbering (fill_dy_band): the zeros past each row and
         * past the image are written once here, each item copies just dy's values */
        REAL *dyb = calloc_aligned((size_t)(Kg * ldd) * sizeof(REAL));
        int64_t yoff[FC_TILE_KB_MAX];
        if (dxb == NULL || dyb == NULL) {
            failed = 1;
        }
#pragma omp for schedule(dynamic)  /* each item writes its own dx, as in correlate */
        for (int64_t ng = 0; ng < pb->N * G; ng++) {
            if (failed) {
                continue;
            }
            const int64_t n = ng / G, g = ng % G;
            const REAL *dy_group = dy + (n * pb->K + g * Kg) * P * Q;
            for (int64_t k = 0; k < Kg; k++) {
                for (int64_t p = 0; p < P; p++) {
                    FN(copy_short)(dyb + k * ldd + p * gm.pitch, dy_group + (k * P + p) * Q, Q);
                }
            }
            memset(dxb, 0, (size_t)gm.size * sizeof(REAL));
            for (int64_t rs = 0; rs < RS; rs++) {
                for (int64_t b = 0; b < nblocks; b++) {
                    int64_t c0;
                    int kb;
                    tile_block(Cg, b, &c0, &kb);
                    for (int i = 0; i < kb; i++) {
                        yoff[i] = off[(c0 + i) * RS + rs];
                    }
                    const FN(fc_tile_add_kernel) kernel = FN(tile_add_kernel)(kb);
                    const int vw = FC_TILE_VW(kb, FN(simd_lanes)());
                    const REAL *wb = wt + ((g * RS + rs) * Cg + c0) * Kg;
                    for (int64_t v = 0; v < v_end; v += vw) {
                        kernel(dxb + v, yoff, dyb + v, dy_off, Kg, wb);
                    }
                }
            }
            FN(unfill_image)(dx + (n * pb->C + g * Cg) * pb->H * pb->W, dxb, &gm, pb);
        }
        free_aligned(dxb);
        free_aligned(dyb);
    }
    free(off);
    free(dy_off);
    free(wt);
    return failed ? FC_ERR_NOMEM : FC_OK;
}

/* The data gradient as stride_h x stride_w stride-1 correlations of dy with flipped,
 * transposed sub-filters (see phase_axis), each writing every stride-th pixel of dx; a
 * stride-1 layer is a single correlation writing all of dx. Works for any problem (dy is
 * cut in bands like x in the forward); computes the zero padding's products too. */
static fc_status FN(backward_data_gather)(REAL *dx, const REAL *dy, const REAL *w,
                                          const fc_conv_problem *pb)
{
    const int64_t G = pb->groups, Cg = pb->C / G, Kg = pb->K / G, H = pb->H, W = pb->W;
    const fc_out_layout yl = {pb->C * H * W, H * W, pb->stride_h * W, pb->stride_w};
    REAL *wsub = malloc((size_t)(pb->C * Kg * pb->R * pb->S) * sizeof(REAL));
    if (wsub == NULL) {
        return FC_ERR_NOMEM;
    }
    fc_status status = FC_OK;
    for (int64_t a = 0; a < pb->stride_h && status == FC_OK; a++) {
        fc_phase_axis ah;
        phase_axis(&ah, H, pb->R, pb->stride_h, pb->dil_h, pb->pad_top, a);
        for (int64_t b = 0; b < pb->stride_w && status == FC_OK; b++) {
            fc_phase_axis aw;
            phase_axis(&aw, W, pb->S, pb->stride_w, pb->dil_w, pb->pad_left, b);
            if (ah.nout == 0 || aw.nout == 0) {
                continue;
            }
            REAL *dx_phase = dx + ah.out0 * W + aw.out0;
            if (ah.ntaps == 0 || aw.ntaps == 0) {
                /* no filter tap reaches these pixels of dx */
                FN(zero_outputs)(dx_phase, &yl, pb->N, pb->C, ah.nout, aw.nout);
                continue;
            }
            /* wsub (C, Kg, R', S'): wsub[g*Cg + c][k][i][j] = w[g*Kg + k][c][r][s] with
             * r = first_h + (R'-1-i)*step_h, s = first_w + (S'-1-j)*step_w (flipped). */
            const int64_t Rs = ah.ntaps, Ss = aw.ntaps;
            for (int64_t g = 0; g < G; g++) {
                for (int64_t c = 0; c < Cg; c++) {
                    for (int64_t k = 0; k < Kg; k++) {
                        const REAL *wk = w + ((g * Kg + k) * Cg + c) * pb->R * pb->S;
                        REAL *dst = wsub + ((g * Cg + c) * Kg + k) * Rs * Ss;
                        for (int64_t i = 0; i < Rs; i++) {
                            const int64_t r = ah.first + (Rs - 1 - i) * ah.tap_step;
                            for (int64_t j = 0; j < Ss; j++) {
                                const int64_t s = aw.first + (Ss - 1 - j) * aw.tap_step;
                                dst[i * Ss + j] = wk[r * pb->S + s];
                            }
                        }
                    }
                }
            }
            /* dy is the input (K channels, P x Q); pad_bottom/right are not read by correlate */
            const fc_conv_problem sub = {
                .N = pb->N, .C = pb->K, .H = pb->P, .W = pb->Q,
                .K = pb->C, .R = Rs, .S = Ss,
                .stride_h = 1, .stride_w = 1,
                .pad_top = ah.pad, .pad_bottom = 0, .pad_left = aw.pad, .pad_right = 0,
                .dil_h = ah.dil, .dil_w = aw.dil,
                .groups = G, .P = ah.nout, .Q = aw.nout,
            };
            status = FN(correlate)(dx_phase, &yl, dy, wsub, NULL, &sub);
        }
    }
    free(wsub);
    return status;
}

/* The data gradient as plain loops over the products its definition has: for weights
 * holding an inf or NaN, which the fast forms would multiply by zeros (dy's padding, or the
 * numbers past a row's end), giving NaN where the gradient is finite or inf. */
static fc_status FN(backward_data_loops)(REAL *dx, const REAL *dy, const REAL *w,
                                         const fc_conv_problem *pb)
{
    const int64_t Cg = pb->C / pb->groups, Kg = pb->K / pb->groups;
    const int64_t P = pb->P, Q = pb->Q, H = pb->H, W = pb->W;

#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < pb->N * pb->C; nc++) {
        const int64_t n = nc / pb->C, c = nc % pb->C, g = c / Cg;
        REAL *dx_plane = dx + nc * H * W;
        memset(dx_plane, 0, (size_t)(H * W) * sizeof(REAL));
        for (int64_t k = g * Kg; k < (g + 1) * Kg; k++) {
            const REAL *dy_plane = dy + (n * pb->K + k) * P * Q;
            const REAL *w_cs = w + (k * Cg + c % Cg) * pb->R * pb->S;
            for (int64_t r = 0; r < pb->R; r++) {
                int64_t p_lo, p_hi;
                fc_valid_range(P, H, pb->stride_h, fc_offset_h(pb, r), &p_lo, &p_hi);
                for (int64_t s = 0; s < pb->S; s++) {
                    int64_t q_lo, q_hi;
                    fc_valid_range(Q, W, pb->stride_w, fc_offset_w(pb, s), &q_lo, &q_hi);
                    for (int64_t p = p_lo; p < p_hi; p++) {
                        REAL *dx_row = dx_plane + (p * pb->stride_h + fc_offset_h(pb, r)) * W;
                        for (int64_t q = q_lo; q < q_hi; q++) {
                            dx_row[q * pb->stride_w + fc_offset_w(pb, s)]
                                += w_cs[r * pb->S + s] * dy_plane[p * Q + q];
                        }
                    }
                }
            }
        }
    }
    return FC_OK;
}

fc_status FN(fc_conv_direct_backward_data)(REAL *dx, const REAL *dy, const REAL *w,
                                           const fc_conv_problem *pb)
{
    /* dx (N, C, H, W) = the transposed convolution of dy (N, K, P, Q) with w (K, C/g, R, S) */
    if (!FN(all_finite)(w, pb->K * (pb->C / pb->groups) * pb->R * pb->S)) {
        return FN(backward_data_loops)(dx, dy, w, pb);
    }
    if (FN(scatter_suits)(pb, fc_get_num_threads())) {
        return FN(backward_data_scatter)(dx, dy, w, pb);
    }
    return FN(backward_data_gather)(dx, dy, w, pb);
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

/* Weight gradient vectorised over filters (the kernel is wgradk): per work item, dy
 * transposed to (pixels, filters), then TB taps x NV vectors of filters of dw^T in
 * registers over the band's pixels. Each thread sums into its own dw^T (G, T, ldv); the
 * copies are added in thread order while transposing back.
 * The choice against the pixel form is a cost model: lanes used x share of the last tap
 * block used x sum length / (sum length + ~10 vectors for the call and its reduction).
 * Measured (one thread, AVX-512 / AVX2): LeNet-5 conv2 (16 filters, 10 x 10 outputs) by
 * filters 0.32 vs 0.71 / 0.41 vs 0.83 ms; lecture net 2 (20 filters, 17 x 17) by filters
 * 1.25 vs 1.45 / 1.65 vs 1.99 ms; LeNet-5 conv1 (6 filters) and lecture net 1 (10 filters)
 * by pixels 0.22 vs 0.80 / 0.31 vs 0.59 and 0.39 vs 1.06 / 0.54 vs 1.23 ms. */
static int FN(wgrad_by_filters)(const fc_conv_problem *pb, const fc_band_geom *gm)
{
    const int64_t VL = FN(simd_lanes)(), Kg = pb->K / pb->groups, T = gm->taps;
    const int64_t ldv = fc_ceil_div(Kg, VL) * VL;
    const int64_t nv = ldv / VL < FC_WGRADK_NV_MAX ? ldv / VL : FC_WGRADK_NV_MAX;
    const int64_t tb_f = FC_WGRADK_TB(nv), tb_p = FC_WGRAD_TB(Kg < 3 ? Kg : 3);
    const double len_f = (double)(gm->band * pb->Q);
    const double len_p = (double)((gm->band - 1) * gm->pitch + pb->Q) / (double)VL;
    const double by_filters = (double)Kg / (double)ldv
                              * (double)T / (double)(fc_ceil_div(T, tb_f) * tb_f)
                              * len_f / (len_f + 10);
    /* 0.85: the pixel form's loads of x are unaligned (they split cache lines) */
    const double by_pixels = 0.85 * (double)pb->Q / (double)gm->pitch
                             * (double)T / (double)(fc_ceil_div(T, tb_p) * tb_p)
                             * len_p / (len_p + 10);
    return by_filters > by_pixels;
}

static fc_status FN(backward_weight_by_filters)(REAL *dw, const REAL *dy, const REAL *x,
                                                const fc_conv_problem *pb,
                                                const fc_band_geom *gm, int nthreads)
{
    const int64_t G = pb->groups, Kg = pb->K / G, P = pb->P, Q = pb->Q, T = gm->taps;
    const int64_t VL = FN(simd_lanes)();
    const int64_t ldv = fc_ceil_div(Kg, VL) * VL, dwt_size = G * T * ldv;
    const int64_t nblocks = filter_blocks(ldv / VL, FC_WGRADK_NV_MAX);
    const int64_t items = pb->N * G * gm->nbands;
    const int team = items < nthreads ? (int)items : nthreads;
    const int in_place = FN(band_is_image)(pb, gm);

    int64_t *off = malloc((size_t)(T + FC_WGRAD_TB_MAX) * sizeof(int64_t));
    REAL *dwt = calloc((size_t)(team * dwt_size), sizeof(REAL));
    if (off == NULL || dwt == NULL) {
        free(off);
        free(dwt);
        return FC_ERR_NOMEM;
    }
    tap_offsets(off, gm, pb);
    for (int64_t t = T; t < T + FC_WGRAD_TB_MAX; t++) {
        off[t] = off[T - 1];
    }
    int failed = 0;

#pragma omp parallel num_threads(team) reduction(|| : failed)
    {
        REAL *my_dwt = dwt + fc_thread_num() * dwt_size;
        REAL *buf = in_place ? NULL : calloc_aligned((size_t)gm->size * sizeof(REAL));
        REAL *dyt = malloc_aligned((size_t)(gm->band * Q * ldv) * sizeof(REAL));
        if ((!in_place && buf == NULL) || dyt == NULL) {
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            if (failed) {
                continue;
            }
            const fc_band_item t = band_item(it, G, P, gm);
            const int64_t n = t.n, g = t.g, p0 = t.p0, rows = t.rows;
            const REAL *band = FN(item_band)(buf, in_place, x, t, gm, pb);
            FN(fill_dy_transposed)(dyt, ldv, dy + (n * pb->K + g * Kg) * P * Q, Kg, p0, rows, pb);
            for (int64_t b = 0; b < nblocks; b++) {
                int64_t v0;
                int nv;
                filter_block(ldv / VL, nblocks, b, &v0, &nv);
                const FN(fc_wgradk_kernel) kernel = FN(wgradk_kernel)(nv);
                const int tb = FC_WGRADK_TB(nv);
                for (int64_t t0 = 0; t0 < T; t0 += tb) {
                    kernel(my_dwt + (g * T + t0) * ldv + v0 * VL, ldv, (int)min64(tb, T - t0),
                           dyt + v0 * VL, ldv, band, off + t0, gm->pitch, rows, Q);
                }
            }
        }
        free_aligned(buf);
        free_aligned(dyt);
    }
    for (int64_t g = 0; g < G; g++) {
        for (int64_t k = 0; k < Kg; k++) {
            for (int64_t t = 0; t < T; t++) {
                REAL sum = 0;
                for (int th = 0; th < team; th++) {
                    sum += dwt[th * dwt_size + (g * T + t) * ldv + k];
                }
                dw[(g * Kg + k) * T + t] = sum;
            }
        }
    }
    free(off);
    free(dwt);
    return failed ? FC_ERR_NOMEM : FC_OK;
}

fc_status FN(fc_conv_direct_backward_weight)(REAL *dw, const REAL *dy, const REAL *x,
                                             const fc_conv_problem *pb)
{
    /* dw (K, C/g, R, S) = sum over n, p, q of dy (N, K, P, Q) * the x (N, C, H, W) pixel
     * each tap read. Per work item, the forward's band buffer, then KB filters x TB taps
     * of dw summed in registers over the band's pixels: rows narrower than
     * FC_DIRECT_FLAT_ROWS as one run of pixels numbered as in the forward, with dy copied
     * into that numbering and 0 past each row's end (unless the band holds an inf or NaN,
     * which must not meet those zeros), else row by row with masked row ends. Each
     * thread sums its items into its own copy of dw and the copies are added in thread
     * order, so the result is bitwise reproducible at a given thread count. */
    const int64_t G = pb->groups, Kg = pb->K / G, P = pb->P, Q = pb->Q;
    const int nthreads = fc_get_num_threads();
    fc_band_geom gm;
    band_geom(&gm, pb, band_rows(pb, nthreads, (int64_t)sizeof(REAL)));
    if (FN(wgrad_by_filters)(pb, &gm)) {
        return FN(backward_weight_by_filters)(dw, dy, x, pb, &gm, nthreads);
    }
    const int64_t T = gm.taps, dw_size = pb->K * T;
    const int64_t nblocks = filter_blocks(Kg, FC_WGRAD_KB_MAX);
    const int64_t items = pb->N * G * gm.nbands;
    const int team = items < nthreads ? (int)items : nthreads;
    /* dy rows of the flat form, 64-byte multiples so the kernel's loads of dy are aligned */
    const int64_t ldd = round_up(gm.band * gm.pitch, 64 / (int64_t)sizeof(REAL));

    /* The last tap block is padded with copies of the last tap: valid reads, sums dropped. */
    int64_t *off = malloc((size_t)(T + FC_WGRAD_TB_MAX) * sizeof(int64_t));
    REAL *partials = team > 1 ? calloc((size_t)((team - 1) * dw_size), sizeof(REAL)) : NULL;
    if (off == NULL || (team > 1 && partials == NULL)) {
        free(off);
        free(partials);
        return FC_ERR_NOMEM;
    }
    tap_offsets(off, &gm, pb);
    for (int64_t t = T; t < T + FC_WGRAD_TB_MAX; t++) {
        off[t] = off[T - 1];
    }
    memset(dw, 0, (size_t)dw_size * sizeof(REAL));
    int failed = 0;

#pragma omp parallel num_threads(team) reduction(|| : failed)
    {
        const int th = fc_thread_num();
        REAL *my_dw = th == 0 ? dw : partials + (th - 1) * dw_size;
        REAL *buf = calloc_aligned((size_t)gm.size * sizeof(REAL));
        REAL *dyb = Q < FC_DIRECT_FLAT_ROWS ? malloc_aligned((size_t)(Kg * ldd) * sizeof(REAL))
                                            : NULL;
        if (buf == NULL || (Q < FC_DIRECT_FLAT_ROWS && dyb == NULL)) {
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            if (failed) {
                continue;
            }
            const fc_band_item t = band_item(it, G, P, &gm);
            const int64_t n = t.n, g = t.g, p0 = t.p0, rows = t.rows;
            const REAL *dy_group = dy + (n * pb->K + g * Kg) * P * Q;
            FN(item_band)(buf, 0, x, t, &gm, pb);      /* fills buf */
            /* long rows: summed row by row from dy itself (the copy would cost more than
             * the masked row ends) */
            const int flat = Q < FC_DIRECT_FLAT_ROWS && FN(band_finite)(buf, rows, &gm, pb);
            if (flat) {
                FN(fill_dy_band)(dyb, ldd, dy_group, Kg, p0, rows, gm.pitch, pb);
            }
            const int64_t v_end = (rows - 1) * gm.pitch + Q;
            for (int64_t b = 0; b < nblocks; b++) {
                int64_t k0;
                int kb;
                filter_block(Kg, nblocks, b, &k0, &kb);
                const FN(fc_wgrad_kernel) kernel = FN(wgrad_kernel)(kb);
                const int tb = FC_WGRAD_TB(kb);
                REAL *dw_block = my_dw + (g * Kg + k0) * T;
                for (int64_t t0 = 0; t0 < T; t0 += tb) {
                    const int nt = (int)min64(tb, T - t0);
                    if (flat) {
                        /* one "row" of v_end pixels */
                        kernel(dw_block + t0, T, nt, dyb + k0 * ldd, ldd, 0, buf, off + t0,
                               0, 1, v_end);
                    } else {
                        kernel(dw_block + t0, T, nt, dy_group + (k0 * P + p0) * Q, P * Q, Q,
                               buf, off + t0, gm.pitch, rows, Q);
                    }
                }
            }
        }
        free_aligned(buf);
        free_aligned(dyb);
    }
    FN(fc_add_partials)(dw, partials, team, dw_size);
    free(partials);
    free(off);
    return failed ? FC_ERR_NOMEM : FC_OK;
}

/* sum of a[0..n) with 8 partial sums in a fixed order, so the compiler can vectorise it
 * while the result stays deterministic. */
static inline REAL FN(sum8)(const REAL *a, int64_t n)
{
    REAL part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) {
            part[j] += a[i + j];
        }
    }
    for (; i < n; i++) {
        part[0] += a[i];
    }
    return ((part[0] + part[4]) + (part[1] + part[5]))
         + ((part[2] + part[6]) + (part[3] + part[7]));
}

fc_status FN(fc_conv_backward_bias)(REAL *db, const REAL *dy, const fc_conv_problem *pb)
{
    /* db (K) = sum over n, p, q of dy (N, K, P, Q) */
    const int64_t PQ = pb->P * pb->Q;

#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < pb->K; k++) {
        REAL acc = 0;
        for (int64_t n = 0; n < pb->N; n++) {
            const REAL *dy_plane = dy + (n * pb->K + k) * PQ;
            acc += FN(sum8)(dy_plane, PQ);
        }
        db[k] = acc;
    }
    return FC_OK;
}
