/* conv_direct_impl.h: the passes of the direct convolution for one element type
 * (template.h: REAL, FN), and its public entry points.
 *
 * Layouts: x (N, C, H, W); w (K, C/groups, R, S); y and dy (N, K, P, Q); all C-contiguous.
 * Each entry point makes the plan (conv_direct_plan.h), counts the variant it runs and
 * calls that variant's pass. A pass packs its weights once, then runs one function per
 * work item through run_items (conv_direct.c); each thread owns its band buffer and the
 * outputs of its items. Where items add into one result (the weight gradient), the split
 * is fixed and each thread keeps its own partial sums, added in thread order. */
#include "conv_direct_kernels_impl.h"

/* The kernel table of the current SIMD level. */
static const FN(fc_direct_kernels) *FN(kernels)(void)
{
    static const FN(fc_direct_kernels) *const sets[] = {
        [FC_SIMD_GENERIC] = &FC_PASTE(FN(fc_direct_kernels), generic),
        [FC_SIMD_AVX2] = &FC_PASTE(FN(fc_direct_kernels), avx2),
        [FC_SIMD_AVX512] = &FC_PASTE(FN(fc_direct_kernels), avx512),
    };
    return sets[fc_simd_avx512() ? FC_SIMD_AVX512 : fc_simd_avx2() ? FC_SIMD_AVX2
                                                                   : FC_SIMD_GENERIC];
}

/* The vector shape the plan counts lanes with. */
static fc_vector_shape FN(vector_shape)(void)
{
    const FN(fc_direct_kernels) *ks = FN(kernels)();
    const fc_vector_shape vs = {(int64_t)sizeof(REAL), ks->lanes, ks->tilek_acc};
    return vs;
}

fc_status FN(fc_conv_direct_plan)(fc_direct_plan *plan, const fc_conv_problem *pb, int nthreads)
{
    if (plan == NULL || pb == NULL || nthreads < 1 || !fc_conv_problem_nonempty(pb)) {
        return FC_ERR_INVALID;
    }
    const fc_vector_shape vs = FN(vector_shape)();
    plan_problem(plan, pb, nthreads, &vs);
    return FC_OK;
}

/* The plan of one kernel call on the library's threads (at least one, so the plan cannot
 * be refused); returns the number its passes run on. */
static int FN(plan_call)(fc_direct_plan *plan, const fc_conv_problem *pb)
{
    (void)FN(fc_conv_direct_plan)(plan, pb, fc_get_num_threads());
    return plan->threads;
}

/* ---- forward: y = x correlated with w, + bias ---- */

/* A forward-style correlation (the forward, or a stride phase of the data gradient's
 * gather form): y placed by yl = x correlated with w, + bias or 0, and what its items
 * share once the pass has packed the weights. */
typedef struct {
    REAL *y;
    const fc_out_layout *yl;
    const REAL *x;
    const fc_conv_problem *pb;
    const fc_band_geom *gm;
    const FN(fc_direct_kernels) *ks;
    int in_place;           /* by filters: the kernels read x itself (band_is_image) */
    const int64_t *off;     /* tap offsets into the band buffer */
    const REAL *w;          /* the weights as given, (K, C/groups, R, S) */
    const REAL *bias;       /* the bias as given, or NULL */
    const REAL *wp, *bp;    /* the weights and the bias as the pass's kernel reads them
                             * (by filters in parts: each thread packs its own) */
    int64_t ldv;            /* by filters: filters per tap of wp, a multiple of the lanes */
    int64_t parts;          /* by filters: filter parts (fc_direct_plan.filter_parts) */
} FN(correlation);

/* Runs every item of a correlation, each thread with a zeroed band buffer of buf_bytes
 * (none for 0) and a zeroed second buffer of part_bytes (none for 0). */
static fc_status FN(run_correlation)(const FN(correlation) *cr, fc_item_fn run,
                                     size_t buf_bytes, size_t part_bytes, int nthreads)
{
    const fc_item_loop loop = {
        .gm = cr->gm, .items = cr->parts * cr->pb->N * cr->pb->groups * cr->gm->nbands,
        .N = cr->pb->N, .groups = cr->pb->groups, .P = cr->pb->P, .team = nthreads,
        .fixed_split = cr->parts > 1,
        .ws = {.bytes = {buf_bytes, part_bytes}, .zeroed = {1, 1}}, .run = run, .pass = cr,
    };
    return run_items(&loop);
}

/* wp (K, T) <- w (K, T) with each filter block's taps interleaved, [t][kb], in the order
 * the tile kernel reads them; block (g, k0) starts at wp + (g*Kg + k0)*T. */
static void FN(pack_filters)(REAL *wp, const REAL *w, int64_t Kg, int64_t groups, int64_t T,
                             const FN(fc_direct_kernels) *ks)
{
    const int64_t nblocks = tile_blocks(Kg);
    for (int64_t g = 0; g < groups; g++) {
        for (int64_t b = 0; b < nblocks; b++) {
            int64_t k0;
            int kb;
            tile_block(Kg, b, &k0, &kb);
            const REAL *src = w + (g * Kg + k0) * T;
            ks->transpose(wp + (g * Kg + k0) * T, kb, src, T, kb, T);
        }
    }
}

/* The fused ReLU (pb->relu, a forward pass) on the outputs a block of an item has just
 * written, while they are in L1: filters [k0, k1) of its group, its band of rows. */
static void FN(relu_block)(const FN(correlation) *cr, fc_band_item t, int64_t k0, int64_t k1)
{
    const fc_conv_problem *pb = cr->pb;
    const fc_out_layout *yl = cr->yl;
    const int64_t Kg = pb->K / pb->groups;
    for (int64_t k = k0; k < k1; k++) {
        REAL *yk = cr->y + t.n * yl->image + (t.g * Kg + k) * yl->channel + t.p0 * yl->row;
        for (int64_t i = 0; i < t.rows; i++) {
            FN(fc_relu_span)(yk + i * yl->row, pb->Q);
        }
    }
}

/* One band by pixels: per block of filters, strips of the band's pixel numbers through
 * the tile kernel, stored by a strip map (or through `tile` and scatter_tile). */
static void FN(forward_by_pixels_item)(const void *pass, fc_band_item t, void *const *ws,
                                       int thread)
{
    const FN(correlation) *cr = pass;
    const fc_conv_problem *pb = cr->pb;
    const fc_band_geom *gm = cr->gm;
    const fc_out_layout *yl = cr->yl;
    const int64_t Kg = pb->K / pb->groups, Q = pb->Q, T = gm->taps, nblocks = tile_blocks(Kg);
    REAL *buf = ws[0];
    _Alignas(64) REAL tile[FC_TILE_KB_MAX * FC_TILE_VW_MAX];
    fc_strip_map map;
    fc_strip_map tile_map = {.nseg = 1};  /* all lanes into `tile`, for scatter_tile */
    (void)thread;
    FN(item_band)(buf, 0, cr->x, t, gm, pb);      /* fills buf */
    const int64_t v_end = (t.rows - 1) * gm->pitch + Q;  /* past the band's last pixel */
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t k0;
        int kb;
        tile_block(Kg, b, &k0, &kb);
        const FN(fc_tile_kernel) kernel = cr->ks->tile[kb];
        const int vw = fc_tile_nv[kb] * cr->ks->lanes;
        const REAL *wb = cr->wp + (t.g * Kg + k0) * T, *bb = cr->bp + t.g * Kg + k0;
        REAL *yb = cr->y + t.n * yl->image + (t.g * Kg + k0) * yl->channel + t.p0 * yl->row;
        int64_t pl = 0, q = 0;  /* band row and column of pixel number v */
        for (int64_t v = 0; v < v_end; v += vw) {
            if (strip_map(&map, pl, q, vw, t.rows, gm->pitch, Q, yl)) {
                kernel(yb, &map, buf + v, cr->off, T, wb, bb);
            } else {
                tile_map.hi[0] = vw;
                tile_map.ldk = vw;
                kernel(tile, &tile_map, buf + v, cr->off, T, wb, bb);
                FN(scatter_tile)(yb, tile, kb, vw, pl, q, t.rows, gm->pitch, Q, yl);
            }
            for (q += vw; q >= gm->pitch; q -= gm->pitch) {
                pl++;
            }
        }
        if (pb->relu) {
            FN(relu_block)(cr, t, k0, k0 + kb);
        }
    }
}

static fc_status FN(forward_by_pixels)(FN(correlation) *cr, int nthreads)
{
    const fc_conv_problem *pb = cr->pb;
    const int64_t G = pb->groups, T = cr->gm->taps;
    int64_t *off = tap_offsets(cr->gm, pb, 0);
    REAL *wpack = malloc((size_t)(pb->K * T) * sizeof(REAL));
    REAL *bpack = malloc((size_t)pb->K * sizeof(REAL));
    fc_status status = FC_ERR_NOMEM;
    if (off != NULL && wpack != NULL && bpack != NULL) {
        FN(pack_filters)(wpack, cr->w, pb->K / G, G, T, cr->ks);
        for (int64_t k = 0; k < pb->K; k++) {
            bpack[k] = cr->bias != NULL ? cr->bias[k] : (REAL)0;
        }
        cr->off = off;
        cr->wp = wpack;
        cr->bp = bpack;
        status = FN(run_correlation)(cr, FN(forward_by_pixels_item),
                                     (size_t)cr->gm->size * sizeof(REAL), 0, nthreads);
    }
    free(off);
    free(wpack);
    free(bpack);
    return status;
}

/* Filters [k0, k0 + nk) of group g packed for tilek: wk[t*ld + k] = w[g*Kg + k0 + k][t]
 * and bk[k] = their bias (or 0), zeros for nk <= k < ld. */
static void FN(pack_by_filters)(REAL *wk, REAL *bk, int64_t ld, const FN(correlation) *cr,
                                int64_t g, int64_t k0, int64_t nk)
{
    const int64_t Kg = cr->pb->K / cr->pb->groups, T = cr->gm->taps;
    cr->ks->transpose(wk, ld, cr->w + (g * Kg + k0) * T, T, nk, T);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t k = nk; k < ld; k++) {
            wk[t * ld + k] = 0;
        }
    }
    for (int64_t k = 0; k < ld; k++) {
        bk[k] = k < nk && cr->bias != NULL ? cr->bias[g * Kg + k0 + k] : (REAL)0;
    }
}

/* A thread's copy of one filter part's weights (forward by filters in parts): which
 * (group, part) it holds, then the bias and the weights as pack_by_filters lays them out,
 * in the thread's second buffer (zeroed: key 0 holds none). */
typedef struct {
    int64_t key;                        /* g * parts + part + 1 */
    _Alignas(64) REAL bias[];
} FN(part_copy);

/* The second buffer's bytes for parts of at most ld filters per tap. */
static size_t FN(part_copy_bytes)(int64_t ld, int64_t T)
{
    return sizeof(FN(part_copy)) + (size_t)((1 + T) * ld) * sizeof(REAL);
}

/* One band by filters: per block of vectors of filters of the item's part, each output
 * row in runs of sizes differing by at most one, through tilek. Cut into parts, the item
 * reads its (group, part)'s weights from its thread's copy, packed on the thread's first
 * item of that pair. */
static void FN(forward_by_filters_item)(const void *pass, fc_band_item t, void *const *ws,
                                        int thread)
{
    (void)thread;
    const FN(correlation) *cr = pass;
    const fc_conv_problem *pb = cr->pb;
    const int64_t Kg = pb->K / pb->groups, Q = pb->Q, T = cr->gm->taps, pitch = cr->gm->pitch;
    const int64_t VL = cr->ks->lanes, nvec = cr->ldv / VL;
    const int64_t v_lo = t.part * nvec / cr->parts, v_hi = (t.part + 1) * nvec / cr->parts;
    const REAL *wp, *bp;    /* the part's weights and bias, ldw filters per tap */
    int64_t ldw;
    if (cr->parts > 1) {
        FN(part_copy) *copy = ws[1];
        const int64_t key = t.g * cr->parts + t.part + 1;
        ldw = (v_hi - v_lo) * VL;
        REAL *wk = copy->bias + ldw;
        if (copy->key != key) {
            FN(pack_by_filters)(wk, copy->bias, ldw, cr, t.g, v_lo * VL,
                                min64(Kg, v_hi * VL) - v_lo * VL);
            copy->key = key;
        }
        wp = wk;
        bp = copy->bias;
    } else {
        ldw = cr->ldv;
        wp = cr->wp + t.g * T * ldw;
        bp = cr->bp + t.g * ldw;
    }
    const int64_t nblocks = filter_blocks(v_hi - v_lo, FC_TILEK_NV_MAX);
    const fc_out_layout *yl = cr->yl;
    const REAL *band = FN(item_band)(ws[0], cr->in_place, cr->x, t, cr->gm, pb);
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t v0;
        int nv;
        filter_block(v_hi - v_lo, nblocks, b, &v0, &nv);
        const int64_t k0 = (v_lo + v0) * VL;
        const int nk = (int)min64(Kg - k0, nv * VL);
        const int64_t runs = fc_ceil_div(Q, cr->ks->tilek_acc / nv);
        const REAL *wb = wp + v0 * VL, *bb = bp + v0 * VL;
        REAL *yb = cr->y + t.n * yl->image + (t.g * Kg + k0) * yl->channel + t.p0 * yl->row;
        for (int64_t i = 0; i < t.rows; i++) {
            for (int64_t r = 0; r < runs; r++) {
                const int64_t q0 = r * Q / runs, q1 = (r + 1) * Q / runs;
                cr->ks->tilek[nv][q1 - q0](yb + i * yl->row + q0, yl->channel, nk,
                                           band + i * pitch + q0, cr->off, T, wb, ldw, bb);
            }
        }
        if (pb->relu) {
            FN(relu_block)(cr, t, k0, k0 + nk);
        }
    }
}

/* The weights packed as wk (G, T, ldv) and the bias as bk (G, ldv): filters contiguous,
 * zero past Kg. Cut into parts, each thread packs its parts' own instead
 * (forward_by_filters_item). */
static fc_status FN(forward_by_filters)(FN(correlation) *cr, int nthreads)
{
    const fc_conv_problem *pb = cr->pb;
    const int64_t G = pb->groups, Kg = pb->K / G, T = cr->gm->taps, VL = cr->ks->lanes;
    const int64_t ldv = fc_ceil_div(Kg, VL) * VL;
    const int64_t shared = cr->parts > 1 ? 0 : G;   /* groups packed before the items */
    int64_t *off = tap_offsets(cr->gm, pb, 0);
    /* one element more: never a request of 0 bytes, which may return NULL */
    REAL *wk = malloc_aligned((size_t)(shared * T * ldv + 1) * sizeof(REAL));
    REAL *bk = malloc_aligned((size_t)(shared * ldv + 1) * sizeof(REAL));
    fc_status status = FC_ERR_NOMEM;
    if (off != NULL && wk != NULL && bk != NULL) {
        cr->off = off;
        cr->wp = wk;
        cr->bp = bk;
        cr->ldv = ldv;
        for (int64_t g = 0; g < shared; g++) {
            FN(pack_by_filters)(wk + g * T * ldv, bk + g * ldv, ldv, cr, g, 0, Kg);
        }
        const size_t buf_bytes = cr->in_place ? 0 : (size_t)cr->gm->size * sizeof(REAL);
        const size_t part_bytes = cr->parts > 1
            ? FN(part_copy_bytes)(fc_ceil_div(ldv / VL, cr->parts) * VL, T) : 0;
        status = FN(run_correlation)(cr, FN(forward_by_filters_item), buf_bytes, part_bytes,
                                     nthreads);
    }
    free(off);
    free_aligned(wk);
    free_aligned(bk);
    return status;
}

/* y (N, K, P, Q), placed by yl, = sum over c, r, s of x (N, C, H, W) * w (K, C/g, R, S)
 * + bias (K) or 0, by the plan's forward variant and bands. */
static fc_status FN(correlate)(REAL *y, const fc_out_layout *yl, const REAL *x, const REAL *w,
                               const REAL *bias, const fc_conv_problem *pb,
                               const fc_direct_plan *plan, int nthreads)
{
    fc_band_geom gm;
    band_geom(&gm, pb, plan->band_rows);
    FN(correlation) cr = {
        .y = y, .yl = yl, .x = x, .pb = pb, .gm = &gm, .ks = FN(kernels)(),
        .in_place = plan->forward_reads_x_in_place, .w = w, .bias = bias,
        .parts = plan->forward == FC_DIRECT_FORWARD_BY_FILTERS ? plan->filter_parts : 1,
    };
    if (plan->forward == FC_DIRECT_FORWARD_BY_FILTERS) {
        return FN(forward_by_filters)(&cr, nthreads);
    }
    return FN(forward_by_pixels)(&cr, nthreads);
}

fc_status FN(fc_conv_direct_forward)(REAL *y, const REAL *x, const REAL *w, const REAL *bias,
                                     const fc_conv_problem *pb)
{
    fc_direct_plan plan;
    const int nthreads = FN(plan_call)(&plan, pb);
    count_run(&forward_runs[plan.forward]);
    const fc_out_layout yl = {pb->K * pb->P * pb->Q, pb->P * pb->Q, pb->Q, 1};
    return FN(correlate)(y, &yl, x, w, bias, pb, &plan, nthreads);
}

