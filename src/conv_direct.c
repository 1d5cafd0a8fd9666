/* conv_direct.c: the direct convolution (forward, data gradient, weight gradient, bias
 * gradient), written once per element type in the templates below and instantiated for
 * float and double.
 *
 * From conv2d(..., algorithm="direct") to the loop that runs:
 *   1. plan      conv2d reaches fc_conv_direct_forward_f32 (or _f64; the gradients'
 *                entry points are its siblings) through fastconv/_conv.pxi; it first calls
 *                fc_conv_direct_plan_f32: the rules of conv_direct_plan.h choose the band
 *                geometry and each pass's variant (fc_direct_plan, fastconv.h; from Python,
 *                fastconv._ext.conv_direct_plan shows it).
 *   2. pass      the entry point counts the variant and runs its pass: forward_by_pixels /
 *                forward_by_filters (conv_direct_impl.h), backward_data_scatter / _gather /
 *                _loops and backward_weight_by_pixels / _by_filters
 *                (conv_direct_backward_impl.h).
 *   3. items     the pass packs its weights once (a forward by filters in parts: each
 *                thread its (group, part)'s, on its first item of it), then hands run_items
 *                (below) one function per work item: each thread allocates its workspace
 *                and runs its share of the items (image, group, band of output rows, and
 *                filter part).
 *   4. kernel    each item fills its band buffer (conv_direct_band_impl.h) and calls a
 *                micro-kernel from the table of the current SIMD level
 *                (conv_direct_kernels.h: tile, tile_add, tilek, wgrad, wgradk).
 *
 * The band buffer. A work item is (image n, group g, band of output rows [p0, p0 + bp)).
 * Its thread copies the input rows the band reads, zero-padded, into a buffer laid out
 *     buf[c][a][b][i][j] = x_padded[c][(p0 + i) * sh + a][j * sw + b]
 * for channel c, row phase a < stride_h, column phase b < stride_w: each phase plane holds
 * every stride-th padded row and column. Filter tap t = (c, r, s) of output pixel (p, q)
 * reads padded row p*sh + r*dh = (p + r*dh / sh) * sh + (r*dh % sh), i.e. phase plane
 * a = r*dh % sh at row (p - p0) + r*dh / sh, and likewise for columns. So with the output
 * pixels of the band numbered v = (p - p0) * pitch + q, pixel v reads buf[v + off[t]]: one
 * offset per tap, contiguous memory along q, whatever the stride, dilation and padding.
 * A row's last pitch - Q numbers are not pixels; the tile kernel computes them anyway
 * (so its strips run across rows without a branch) and never stores them.
 *
 * The gradients reuse this layout:
 *   - data gradient, scatter form: the forward's adjoint, dx_band[v + off[t]] += w . dy[v],
 *     into a band buffer holding the whole image, then copied out without the padding;
 *     gather form: stride_h x stride_w stride-1 correlations of dy with flipped sub-filters,
 *     run by the forward's code.
 *   - weight gradient: dw[k][t] = sum over the band's pixels of dy[k][v] * x_band[v + off[t]],
 *     vectorised over pixels or over filters, per-thread partial sums added in thread
 *     order (fc_add_partials), so results are bitwise reproducible at a thread count. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fastconv.h"
#include "template.h"
#include "real_math.h"
#include "conv_index.h"
#include "conv_threads.h"
#include "conv_direct_kernels.h"
#include "conv_direct_band.h"
#include "conv_direct_plan.h"

/* ---- run counters (fc_conv_direct_forward_runs and its siblings) ---- */

static atomic_llong forward_runs[2], data_runs[3], weight_runs[2];

static void count_run(atomic_llong *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

static int64_t runs_of(atomic_llong *counters, int n, int variant)
{
    return variant >= 0 && variant < n ? (int64_t)atomic_load(&counters[variant]) : 0;
}

int64_t fc_conv_direct_forward_runs(fc_direct_forward_variant variant)
{
    return runs_of(forward_runs, 2, (int)variant);
}

int64_t fc_conv_direct_data_runs(fc_direct_data_variant variant)
{
    return runs_of(data_runs, 3, (int)variant);
}

int64_t fc_conv_direct_weight_runs(fc_direct_weight_variant variant)
{
    return runs_of(weight_runs, 2, (int)variant);
}

/* ---- the work-item loop and its per-thread workspace ---- */

/* Buffers per thread a pass may ask for. */
#define FC_DIRECT_WS_BUFFERS 2

/* The per-thread workspace of a pass: buffer i holds bytes[i] bytes (none for 0), aligned
 * to a cache line, zero-filled once when zeroed[i]. */
typedef struct {
    size_t bytes[FC_DIRECT_WS_BUFFERS];
    int zeroed[FC_DIRECT_WS_BUFFERS];
} fc_thread_ws;

/* Allocates a thread's workspace into ws; 0 if any buffer could not be had. */
static int ws_alloc(void **ws, const fc_thread_ws *spec)
{
    int ok = 1;
    for (int i = 0; i < FC_DIRECT_WS_BUFFERS; i++) {
        ws[i] = NULL;
        if (spec->bytes[i] > 0) {
            ws[i] = spec->zeroed[i] ? calloc_aligned(spec->bytes[i])
                                    : malloc_aligned(spec->bytes[i]);
            ok &= ws[i] != NULL;
        }
    }
    return ok;
}

static void ws_free(void **ws)
{
    for (int i = 0; i < FC_DIRECT_WS_BUFFERS; i++) {
        free_aligned(ws[i]);
    }
}

/* Runs one work item: `pass` is the pass's shared data, ws the thread's workspace, thread
 * its number in the team. */
typedef void (*fc_item_fn)(const void *pass, fc_band_item item, void *const *ws, int thread);

/* A pass's loop over its work items: items = N * groups * gm->nbands (times the filter
 * parts of a forward by filters), numbered as in band_item, on `team` threads. With
 * fixed_split each thread runs the same run of items on every call (the weight gradient
 * sums per thread, so the sums stay bitwise reproducible; a forward cut into filter parts
 * packs each (group, part)'s weights once per thread); otherwise items go to whichever
 * thread is free (each writes its own outputs, so results do not depend on the thread, and
 * a thread the OS pauses does not hold up the call). */
typedef struct {
    const fc_band_geom *gm;
    int64_t items, N, groups, P;
    int team;
    int fixed_split;
    fc_thread_ws ws;
    fc_item_fn run;
    const void *pass;
} fc_item_loop;

static void run_item(const fc_item_loop *loop, int64_t it, void *const *ws)
{
    loop->run(loop->pass, band_item(it, loop->N, loop->groups, loop->P, loop->gm), ws,
              fc_thread_num());
}

/* Every item of the loop, each thread with its own workspace. FC_ERR_NOMEM if a thread's
 * workspace could not be allocated (its items are then skipped). */
static fc_status run_items(const fc_item_loop *loop)
{
    int failed = 0;

#ifdef _OPENMP
    /* A thread with no item would only allocate its workspace and wait. */
    const int team = loop->items < loop->team ? (int)loop->items : loop->team;
#pragma omp parallel num_threads(team > 0 ? team : 1) reduction(|| : failed)
#endif
    {
        void *ws[FC_DIRECT_WS_BUFFERS];
        failed = !ws_alloc(ws, &loop->ws);
        if (loop->fixed_split) {
#pragma omp for schedule(static)
            for (int64_t it = 0; it < loop->items; it++) {
                if (!failed) {
                    run_item(loop, it, ws);
                }
            }
        } else {
#pragma omp for schedule(dynamic)
            for (int64_t it = 0; it < loop->items; it++) {
                if (!failed) {
                    run_item(loop, it, ws);
                }
            }
        }
        ws_free(ws);
    }
    return failed ? FC_ERR_NOMEM : FC_OK;
}

/* ---- the templates, per element type ---- */

#define REAL float
#define TYPE_SUFFIX f32
#include "conv_direct_band_impl.h"
#include "conv_direct_impl.h"
#include "conv_direct_backward_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#include "conv_direct_band_impl.h"
#include "conv_direct_impl.h"
#include "conv_direct_backward_impl.h"
#include "template_end.h"
