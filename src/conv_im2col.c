/* conv_im2col.c: convolution as im2col + GEMM (forward, data gradient, weight gradient),
 * written once in conv_im2col_impl.h and instantiated for float and double. */
#include <stdlib.h>
#include <string.h>

#include "fastconv.h"
#include "conv_index.h"
#include "conv_threads.h"
#include "template.h"
#include "real_math.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Each thread's column buffer holds at most this many bytes (or one output row's columns,
 * if that is larger, up to FC_IM2COL_MAX_ROW_BYTES of fastconv.h): the whole-batch im2col
 * matrix is never built. */
#define FC_IM2COL_WORKSPACE_BYTES ((int64_t)4 << 20)

/* A 1x1, stride-1, unpadded filter reads x itself: col would be a copy of x. */
static int is_pointwise(const fc_conv_problem *pb)
{
    return pb->R == 1 && pb->S == 1 && pb->stride_h == 1 && pb->stride_w == 1
        && pb->pad_top == 0 && pb->pad_bottom == 0 && pb->pad_left == 0 && pb->pad_right == 0;
}

/* One output row's columns (Cg*R*S x Q elements of elem_size bytes) exceed the hard limit:
 * the kernels then refuse (FC_ERR_TOO_LARGE) rather than allocate it. In double, as the
 * product of two int64 may not fit one. */
static int row_too_large(const fc_conv_problem *pb, size_t elem_size)
{
    const double row = (double)(pb->C / pb->groups) * (double)pb->R * (double)pb->S
                       * (double)pb->Q * (double)elem_size;
    return !is_pointwise(pb) && row > (double)FC_IM2COL_MAX_ROW_BYTES;
}

/* Split: with at least as many units of work (pairs, or blocks of images) as threads,
 * each thread takes whole units and runs single-threaded GEMMs; otherwise units go one by
 * one with a parallel GEMM. */
static int units_in_parallel(int64_t units, int nthreads)
{
    return nthreads > 1 && units >= nthreads;
}

/* A pointwise filter (groups 1) on small planes runs each pass on blocks of images whose
 * planes stand side by side, about this many columns in all: one product per image would
 * pack the weights again for a few columns each, fill only part of the GEMM's column
 * panels, and (weight gradient) read and write all of dw for a few products each. */
#define FC_IM2COL_BATCH_COLUMNS 256

/* What the three kernels of one call share: the GEMM sizes of an (n, g) pair, the band of
 * output rows whose columns are built at a time, and how the threads split the work. */
typedef struct {
    int64_t Cg, Kg;         /* input channels and filters per group */
    int64_t PQ;             /* output pixels per plane */
    int64_t crs;            /* rows of the column matrix: Cg * R * S */
    int64_t images;         /* images per unit: > 1 only for a pointwise filter on small
                             * planes (FC_IM2COL_BATCH_COLUMNS) */
    int64_t pairs;          /* units of work: (n, g) pairs, N * groups, or blocks of images */
    int64_t band;           /* output rows per band of columns */
    int pointwise;          /* the columns are x itself (is_pointwise) */
    int team;               /* threads sharing out the units */
    int gemm_threads;       /* threads inside each GEMM */
} im2col_plan;

/* Output rows per band so that one band's columns (elements of elem_size bytes) fit the
 * workspace (at least one row). */
static int64_t band_rows(const fc_conv_problem *pb, size_t elem_size)
{
    const int64_t crs = (pb->C / pb->groups) * pb->R * pb->S;
    int64_t rows = FC_IM2COL_WORKSPACE_BYTES / ((int64_t)elem_size * crs * pb->Q);
    if (rows < 1) {
        rows = 1;
    }
    return rows < pb->P ? rows : pb->P;
}

/* pl <- the plan of one pass on elements of elem_size bytes; FC_ERR_TOO_LARGE when one
 * output row's columns exceed their limit. */
static fc_status im2col_plan_of(im2col_plan *pl, const fc_conv_problem *pb, size_t elem_size)
{
    if (row_too_large(pb, elem_size)) {
        return FC_ERR_TOO_LARGE;
    }
    const int nthreads = fc_get_num_threads();
    pl->Cg = pb->C / pb->groups;
    pl->Kg = pb->K / pb->groups;
    pl->PQ = pb->P * pb->Q;
    pl->crs = pl->Cg * pb->R * pb->S;
    pl->pointwise = is_pointwise(pb);
    pl->images = 1;
    if (pl->pointwise && pb->groups == 1 && pl->PQ <= FC_IM2COL_BATCH_COLUMNS / 2) {
        /* The nearest whole number of blocks of FC_IM2COL_BATCH_COLUMNS, the images shared
         * evenly among them (5 images of 64 pixels: one block of 5, not 4 and then 1), and
         * a block for each thread at least: a parallel GEMM shares out less well. */
        const int64_t fit = FC_IM2COL_BATCH_COLUMNS / pl->PQ;
        const int64_t blocks = (pb->N + fit / 2) / fit > 1 ? (pb->N + fit / 2) / fit : 1;
        const int64_t per_block = (pb->N + blocks - 1) / blocks;
        const int64_t per_thread = (pb->N + nthreads - 1) / nthreads;
        pl->images = per_block < per_thread ? per_block : per_thread;
    }
    pl->pairs = (pb->N + pl->images - 1) / pl->images * pb->groups;
    pl->band = band_rows(pb, elem_size);
    const int outer = units_in_parallel(pl->pairs, nthreads);
    pl->team = outer ? nthreads : 1;
    pl->gemm_threads = outer ? 1 : nthreads;
    return FC_OK;
}

/* The product one pass over the (n, g) pairs computes. */
typedef enum { IM2COL_FORWARD, IM2COL_BACKWARD_DATA, IM2COL_BACKWARD_WEIGHT } im2col_pass;

#define REAL float
#define TYPE_SUFFIX f32
#include "conv_im2col_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#include "conv_im2col_impl.h"
#include "template_end.h"
