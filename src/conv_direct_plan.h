/* conv_direct_plan.h: the direct convolution's plan (fc_direct_plan, fastconv.h), decided
 * here and nowhere else: the band geometry, and for each pass which variant runs. Each
 * choice is a cost model counting the share of the vector lanes a variant computes that
 * are results; the measurements behind the constants are in docs/PERFORMANCE.md,
 * "Direct convolution: variant choice". Included by conv_direct.c only; the public
 * fc_conv_direct_plan_f32 / _f64 (conv_direct_impl.h) fill in the vector shape of the
 * kernel set in use and call plan_problem. */
#ifndef FASTCONV_CONV_DIRECT_PLAN_H
#define FASTCONV_CONV_DIRECT_PLAN_H

#include "conv_direct_band.h"

/* ---- threads ---- */

/* Waking a second thread costs about what one thread does in this many multiply-adds of a
 * small problem: below it, a pass runs on fewer threads than it may (a batch-1 LeNet-5
 * layer runs faster alone). */
#define FC_DIRECT_MIN_MACS_PER_THREAD 131072.0

/* ---- forward: by pixels (tile) or by filters (tilek) ---- */

/* By filters runs only if the share of its lanes that are results beats the pixel form's
 * by this factor: a tie goes to the pixel form, which handles every layer. */
#define FC_DIRECT_BY_FILTERS_MARGIN 1.15
/* A tilek call with fewer accumulators than this cannot hide the FMA latency (2 pipes x 4
 * cycles): its useful share is scaled by accumulators / this. */
#define FC_DIRECT_TILEK_MIN_ACC 8

/* ---- data gradient: scatter (the forward's adjoint) or gather (correlations of dy) ---- */

/* The scatter form holds a whole image: it runs up to this many bytes of workspace per
 * thread. */
#define FC_DIRECT_IMAGE_BYTES ((int64_t)8 << 20)
/* On stride-1 layers the scatter form runs when it computes at most this share of the
 * gather form's pixels (it adds each tile to memory, the gather form keeps sums in
 * registers)... */
#define FC_DIRECT_SCATTER_MAX_WORK 0.85
/* ...and the group has at least this many filters (a single filter's tile_add is a pass
 * over memory per tap). */
#define FC_DIRECT_SCATTER_MIN_FILTERS 2

/* ---- weight gradient: by pixels (wgrad) or by filters (wgradk) ---- */

/* Each kernel call costs about this many vector FMAs more than its sum (the call, its
 * setup and its horizontal reduction). */
#define FC_DIRECT_WGRAD_CALL_VECTORS 10
/* The pixel form's loads of x are unaligned and split cache lines: its useful share counts
 * this much. */
#define FC_DIRECT_WGRAD_UNALIGNED 0.85
/* The pixel form sums rows narrower than this as one run of pixels numbered as in the
 * forward (dy copied with zeros past each row's end), wider ones row by row from dy
 * itself, where the copy would cost more than the masked row ends. */
#define FC_DIRECT_FLAT_ROWS 128

/* The vector shape of the kernel set a plan is made for. */
typedef struct {
    int64_t elem_size;   /* bytes per element: 4 (float) or 8 (double) */
    int64_t lanes;       /* elements per vector */
    int64_t tilek_acc;   /* accumulators a tilek call may use: pixels per call x vectors */
} fc_vector_shape;

/* 1 if a band buffer would hold a copy of an image's channels: stride 1, one band per
 * image, no padding (none above or left; the band's rows and pitch are the image's, so
 * none below or right). The kernels that read only the pixels the outputs read (tilek,
 * wgradk) then read x itself; with more than one band, each band would need its own rows. */
static int band_is_image(const fc_conv_problem *pb, const fc_band_geom *gm)
{
    return pb->stride_h == 1 && pb->stride_w == 1 && pb->pad_top == 0 && pb->pad_left == 0
           && gm->nbands == 1 && gm->pitch == pb->W && gm->plane == pb->H * pb->W;
}

/* Forward by filters: its useful share is Kg / (vectors of filters x lanes), less for runs
 * of pixels with too few accumulators (a call takes a block of at most FC_TILEK_NV_MAX
 * vectors); by pixels, the share of the numbers the strips of tile_blocks cover that are
 * pixels (a row's last pitch - Q numbers are not). Only for contiguous output columns. */
static int forward_by_filters_suits(const fc_conv_problem *pb, const fc_band_geom *gm,
                                    const fc_vector_shape *vs, int64_t out_col)
{
    const int64_t VL = vs->lanes, Kg = pb->K / pb->groups, Q = pb->Q;
    const int64_t nv = fc_ceil_div(Kg, VL), block = min64(nv, FC_TILEK_NV_MAX);
    if (out_col != 1) {
        return 0;
    }
    const int64_t runs = fc_ceil_div(Q, vs->tilek_acc / block);
    const double run = (double)Q / (double)runs;
    const double acc = (double)block * run;
    const double by_filters = (double)Kg / (double)(nv * VL)
                              * (acc < FC_DIRECT_TILEK_MIN_ACC ? acc / FC_DIRECT_TILEK_MIN_ACC
                                                               : 1);
    const int64_t v_end = (gm->band - 1) * gm->pitch + Q;
    double lanes = 0;
    for (int64_t b = 0; b < tile_blocks(Kg); b++) {
        int64_t k0;
        int kb;
        tile_block(Kg, b, &k0, &kb);
        const int64_t vw = fc_tile_nv[kb] * VL;
        lanes += (double)(kb * fc_ceil_div(v_end, vw) * vw);
    }
    const double by_pixels = (double)(Kg * gm->band * Q) / lanes;
    return by_filters > FC_DIRECT_BY_FILTERS_MARGIN * by_pixels;
}

/* The filter parts of a forward by filters: with more weights than input values, the
 * threads share out the filters, up to one part per vector of filters, so that each packs
 * and reads only its part's weights, and copies every band of the input for itself.
 * Sharing out images or rows instead, each thread would read all the weights, packed by
 * one thread in its own cache; with fewer weights, copying every band costs more. */
static int64_t filter_parts(const fc_conv_problem *pb, int nthreads,
                            const fc_vector_shape *vs)
{
    const int64_t vectors = fc_ceil_div(pb->K / pb->groups, vs->lanes);
    const int64_t weights = pb->K * (pb->C / pb->groups) * pb->R * pb->S;
    return weights > pb->N * pb->C * pb->H * pb->W ? min64(vectors, nthreads) : 1;
}

/* The data gradient's scatter form computes only dy's P x Q pixels (the gather form all
 * H x W of dx, over dy's zero padding) but adds each tile to memory; its band is the whole
 * image, so it needs an (image, group) pair per thread. It runs on strided layers (the
 * gather form's stride phases store pixel by pixel) and on stride-1 layers where it saves
 * enough work, where it fits (scatter_fits). image: the band geometry of a whole image. */
static int scatter_suits(const fc_conv_problem *pb, const fc_band_geom *image, int nthreads)
{
    const int64_t Kg = pb->K / pb->groups;
    const int strided = pb->stride_h > 1 || pb->stride_w > 1;
    /* pixels x taps computed, relative to the gather form's (stride 1) */
    const double work = (double)(pb->P * image->pitch)
                        / (double)(pb->H * (pb->W + (pb->S - 1) * pb->dil_w));
    return pb->N * pb->groups >= nthreads
        && (strided || (Kg >= FC_DIRECT_SCATTER_MIN_FILTERS
                        && work <= FC_DIRECT_SCATTER_MAX_WORK));
}

/* 1 where the scatter form can run: its whole-image buffers fit FC_DIRECT_IMAGE_BYTES and
 * the image holds at least one strip. image: the band geometry of a whole image. */
static int scatter_fits(const fc_conv_problem *pb, const fc_band_geom *image,
                        int64_t elem_size)
{
    const int64_t Kg = pb->K / pb->groups;
    const int64_t bytes = (image->size + Kg * (pb->P * image->pitch + FC_TILE_VW_MAX))
                          * elem_size;
    return pb->stride_h * pb->stride_w * image->plane >= FC_TILE_VW_MAX
        && bytes <= FC_DIRECT_IMAGE_BYTES;
}

/* Weight gradient: each form's useful share is lanes used x share of the last tap block
 * used x sum length / (sum length + FC_DIRECT_WGRAD_CALL_VECTORS); the pixel form's counts
 * FC_DIRECT_WGRAD_UNALIGNED of it. */
static int weight_by_filters_suits(const fc_conv_problem *pb, const fc_band_geom *gm,
                                   const fc_vector_shape *vs)
{
    const int64_t VL = vs->lanes, Kg = pb->K / pb->groups, T = gm->taps;
    const int64_t ldv = fc_ceil_div(Kg, VL) * VL;
    const int64_t nv = min64(ldv / VL, FC_WGRADK_NV_MAX);
    const int64_t tb_f = fc_wgrad_tb[nv], tb_p = fc_wgrad_tb[min64(Kg, FC_WGRAD_KB_MAX)];
    const double len_f = (double)(gm->band * pb->Q);
    const double len_p = (double)((gm->band - 1) * gm->pitch + pb->Q) / (double)VL;
    const double by_filters = (double)Kg / (double)ldv
                              * (double)T / (double)(fc_ceil_div(T, tb_f) * tb_f)
                              * len_f / (len_f + FC_DIRECT_WGRAD_CALL_VECTORS);
    const double by_pixels = FC_DIRECT_WGRAD_UNALIGNED * (double)pb->Q / (double)gm->pitch
                             * (double)T / (double)(fc_ceil_div(T, tb_p) * tb_p)
                             * len_p / (len_p + FC_DIRECT_WGRAD_CALL_VECTORS);
    return by_filters > by_pixels;
}

/* The threads a pass of pb shares out: at most one per FC_DIRECT_MIN_MACS_PER_THREAD
 * multiply-adds (of one pass), at least one. */
static int team_for(const fc_conv_problem *pb, int nthreads)
{
    const double macs = (double)(pb->N * pb->K * pb->P * pb->Q) * (double)(pb->C / pb->groups)
                        * (double)(pb->R * pb->S);
    const double most = macs / FC_DIRECT_MIN_MACS_PER_THREAD;
    return most < 2 ? 1 : most < nthreads ? (int)most : nthreads;
}

/* The forward variant of a plan with what depends on it: by filters reads x in place
 * where the band is the image, and cuts its filters into parts. */
static void set_forward(fc_direct_plan *plan, const fc_conv_problem *pb, int nthreads,
                        const fc_vector_shape *vs, const fc_band_geom *gm,
                        fc_direct_forward_variant variant)
{
    plan->forward = variant;
    plan->forward_reads_x_in_place = variant == FC_DIRECT_FORWARD_BY_FILTERS
                                     && band_is_image(pb, gm);
    plan->filter_parts = variant == FC_DIRECT_FORWARD_BY_FILTERS
                         ? filter_parts(pb, nthreads, vs) : 1;
}

/* The plan of a forward-style correlation (the forward, or one stride phase of the data
 * gradient's gather form) whose output columns lie out_col apart: its bands and forward
 * variant. */
static void plan_correlation(fc_direct_plan *plan, const fc_conv_problem *pb, int nthreads,
                             const fc_vector_shape *vs, int64_t out_col)
{
    fc_band_geom gm;
    band_geom(&gm, pb, band_rows(pb, nthreads, vs->elem_size));
    plan->band_rows = gm.band;
    plan->bands = gm.nbands;
    const int by_filters = forward_by_filters_suits(pb, &gm, vs, out_col);
    set_forward(plan, pb, nthreads, vs, &gm,
                by_filters ? FC_DIRECT_FORWARD_BY_FILTERS : FC_DIRECT_FORWARD_BY_PIXELS);
}

/* The whole plan of a problem: the forward's, then the two gradients' variants (the weight
 * gradient uses the forward's bands). A variant the problem names (pb->direct_forward,
 * _data, _weight: autotuning's) replaces the rules' choice; the scatter form only where it
 * fits. */
static void plan_problem(fc_direct_plan *plan, const fc_conv_problem *pb, int nthreads,
                         const fc_vector_shape *vs)
{
    nthreads = team_for(pb, nthreads);
    plan->threads = nthreads;
    plan_correlation(plan, pb, nthreads, vs, 1);
    fc_band_geom gm;
    band_geom(&gm, pb, plan->band_rows);
    if (pb->direct_forward == 1 + FC_DIRECT_FORWARD_BY_PIXELS
        || pb->direct_forward == 1 + FC_DIRECT_FORWARD_BY_FILTERS) {
        set_forward(plan, pb, nthreads, vs, &gm,
                    (fc_direct_forward_variant)(pb->direct_forward - 1));
    }
    fc_band_geom image;                 /* the scatter form's band: the whole image */
    band_geom(&image, pb, pb->P);
    plan->scatter_fits = scatter_fits(pb, &image, vs->elem_size);
    plan->backward_data = plan->scatter_fits && scatter_suits(pb, &image, nthreads)
                          ? FC_DIRECT_DATA_SCATTER : FC_DIRECT_DATA_GATHER;
    if (pb->direct_data == 1 + FC_DIRECT_DATA_GATHER
        || (pb->direct_data == 1 + FC_DIRECT_DATA_SCATTER && plan->scatter_fits)) {
        plan->backward_data = (fc_direct_data_variant)(pb->direct_data - 1);
    }
    plan->data_gather_phases = pb->stride_h * pb->stride_w;
    plan->backward_weight = weight_by_filters_suits(pb, &gm, vs) ? FC_DIRECT_WEIGHT_BY_FILTERS
                                                                 : FC_DIRECT_WEIGHT_BY_PIXELS;
    if (pb->direct_weight == 1 + FC_DIRECT_WEIGHT_BY_PIXELS
        || pb->direct_weight == 1 + FC_DIRECT_WEIGHT_BY_FILTERS) {
        plan->backward_weight = (fc_direct_weight_variant)(pb->direct_weight - 1);
    }
    plan->weight_reads_x_in_place = plan->backward_weight == FC_DIRECT_WEIGHT_BY_FILTERS
                                    && band_is_image(pb, &gm);
    plan->weight_rows_flat = pb->Q < FC_DIRECT_FLAT_ROWS;
}

/* The data gradient's variant for weights that are finite or not: the scatter and gather
 * forms multiply the weights by zeros (dy's padding, the numbers past a row's end), which
 * turns an inf or NaN weight into NaN where the gradient is finite or inf; plain loops over
 * the definition's products do not. */
static fc_direct_data_variant data_variant(const fc_direct_plan *plan, int weights_finite)
{
    return weights_finite ? plan->backward_data : FC_DIRECT_DATA_LOOPS;
}

#endif /* FASTCONV_CONV_DIRECT_PLAN_H */
