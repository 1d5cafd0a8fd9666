/* conv_direct_band.h: the band buffer of the direct convolution, what does not depend on
 * the element type: its geometry, the work items that share it out, the tap offsets into
 * it, the filter blocks of the micro-kernels, the strip maps that store a tile and the
 * phase split of the data gradient. Included by conv_direct.c only (the layout is
 * described at the top of that file). */
#ifndef FASTCONV_CONV_DIRECT_BAND_H
#define FASTCONV_CONV_DIRECT_BAND_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fastconv.h"
#include "conv_index.h"
#include "conv_direct_kernels.h"

/* A thread's band buffer holds about this many bytes (at least one output row's worth):
 * it stays in the L2 cache, a LeNet or lecture-net image is a single band and a
 * 1024 x 1024 image is cut into bands of ~60 rows. */
#define FC_DIRECT_BAND_BYTES ((int64_t)256 << 10)

/* With fewer (image, group) pairs than this many per thread, images are cut into more
 * bands so that every thread gets work. */
#define FC_DIRECT_ITEMS_PER_THREAD 4
/* ... but never into bands of fewer pixels (rows x pitch) than this: a band of one short
 * row fills a fraction of each vector and copies the rows above and below it for itself
 * (an 8 x 8 image in bands of one row ran slower on two threads than whole on one). */
#define FC_DIRECT_MIN_BAND_PIXELS 64

/* Elements after the last phase plane: a strip of up to FC_TILE_VW_MAX pixels that starts
 * in the band's last row reads up to that far past it. */
#define FC_DIRECT_SLACK (2 * FC_TILE_VW_MAX)

/* fill_dy_transposed moves dy in blocks of this many pixels: a filter's values of a block
 * are one contiguous load, and the block's rows of the transposed copy stay in the L1
 * cache while they fill. */
#define FC_DIRECT_TRANSPOSE_BLOCK 8

/* Rows shorter than this many values are copied by a loop: the library call costs more
 * than copying them (LeNet-5 conv2's rows are 10 and 14 values). */
#define FC_DIRECT_SHORT_ROW 32

/* Geometry of the band buffer of a problem (see the top of conv_direct.c). */
typedef struct {
    int64_t ch;          /* input channels of one group */
    int64_t taps;        /* ch * R * S */
    int64_t band;        /* output rows per band (the last band may have fewer) */
    int64_t nbands;
    int64_t reach_rows;  /* rows of a phase plane past the band's own: (R-1)*dh / sh */
    int64_t pitch;       /* elements per row of a phase plane: Q + (S-1)*dw / sw */
    int64_t plane;       /* elements per phase plane: (band + reach_rows) * pitch */
    int64_t row;         /* offset of a scratch row of pitch * stride_w elements, past the
                          * planes and their slack, used while a strided row is split */
    int64_t size;        /* elements of the whole buffer */
} fc_band_geom;

/* Where a kernel's output goes: element (n, k, p, q) at
 * y[n*image + k*channel + p*row + q*col]. A plain (N, K, P, Q) array has col = 1; the
 * phases of the data gradient write every stride-th pixel of dx. */
typedef struct {
    int64_t image, channel, row, col;
} fc_out_layout;

/* Workspace aligned to a cache line (64 bytes), so the kernels' loads split cache lines the
 * same way on every call; release with free_aligned. */
static void *malloc_aligned(size_t bytes)
{
    unsigned char *raw = malloc(bytes + 64 + sizeof(void *));
    if (raw == NULL) {
        return NULL;
    }
    uintptr_t p = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
    ((void **)p)[-1] = raw;
    return (void *)p;
}

static void *calloc_aligned(size_t bytes)
{
    void *p = malloc_aligned(bytes);
    if (p != NULL) {
        memset(p, 0, bytes);
    }
    return p;
}

static void free_aligned(void *p)
{
    if (p != NULL) {
        free(((void **)p)[-1]);
    }
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int64_t round_up(int64_t a, int64_t b)
{
    return fc_ceil_div(a, b) * b;
}

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b != 0) {
        const int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Work item `it` of the loops over bands: image n, group g, the output rows
 * p0 .. p0 + rows - 1 of one band and, for a forward by filters cut into parts, part
 * `part` of the filters. Items run band-fastest, then image, then group, then part: a
 * thread's run of items holds few (group, part) pairs, each of which it packs once. */
typedef struct {
    int64_t n, g, p0, rows, part;
} fc_band_item;

static fc_band_item band_item(int64_t it, int64_t N, int64_t groups, int64_t P,
                              const fc_band_geom *gm)
{
    const int64_t per_part = N * groups * gm->nbands;
    fc_band_item t;
    t.part = it / per_part;
    it %= per_part;
    t.g = it / (N * gm->nbands);
    t.n = it / gm->nbands % N;
    t.p0 = it % gm->nbands * gm->band;
    t.rows = min64(gm->band, P - t.p0);
    return t;
}

/* Output rows per band: the buffer fits FC_DIRECT_BAND_BYTES, and with fewer than
 * FC_DIRECT_ITEMS_PER_THREAD (image, group) pairs per thread the images are cut further,
 * down to FC_DIRECT_MIN_BAND_PIXELS pixels per band. */
static int64_t band_rows(const fc_conv_problem *pb, int nthreads, int64_t elem_size)
{
    const int64_t sh = pb->stride_h, sw = pb->stride_w;
    const int64_t reach_rows = (pb->R - 1) * pb->dil_h / sh;
    const int64_t pitch = pb->Q + (pb->S - 1) * pb->dil_w / sw;
    const int64_t row_bytes = (pb->C / pb->groups) * sh * sw * pitch * elem_size;
    int64_t band = FC_DIRECT_BAND_BYTES / row_bytes - reach_rows;
    const int64_t pairs = pb->N * pb->groups;
    const int64_t wanted = FC_DIRECT_ITEMS_PER_THREAD * (int64_t)nthreads;
    if (nthreads > 1 && pairs < wanted) {
        const int64_t bands_per_pair = fc_ceil_div(wanted, pairs);
        const int64_t fewest_rows = fc_ceil_div(FC_DIRECT_MIN_BAND_PIXELS, pitch);
        band = min64(band, max64(fc_ceil_div(pb->P, bands_per_pair), fewest_rows));
    }
    band = band < 1 ? 1 : min64(band, pb->P);
    return fc_ceil_div(pb->P, fc_ceil_div(pb->P, band));    /* bands as equal as can be */
}

/* The band buffer's geometry for bands of `band` output rows. */
static void band_geom(fc_band_geom *gm, const fc_conv_problem *pb, int64_t band)
{
    const int64_t sh = pb->stride_h, sw = pb->stride_w;
    gm->ch = pb->C / pb->groups;
    gm->taps = gm->ch * pb->R * pb->S;
    gm->reach_rows = (pb->R - 1) * pb->dil_h / sh;
    gm->pitch = pb->Q + (pb->S - 1) * pb->dil_w / sw;
    gm->band = band;
    gm->nbands = fc_ceil_div(pb->P, band);
    gm->plane = (band + gm->reach_rows) * gm->pitch;
    gm->row = gm->ch * sh * sw * gm->plane + FC_DIRECT_SLACK;
    gm->size = gm->row + gm->pitch * sw;
}

/* off[t] for every tap t = (c, r, s), in the order of the weights (K, C/g, R, S), then
 * `extra` copies of the last one (a padded tap block reads valid memory; its sums are
 * dropped). NULL if out of memory; release with free. */
static int64_t *tap_offsets(const fc_band_geom *gm, const fc_conv_problem *pb, int64_t extra)
{
    const int64_t sh = pb->stride_h, sw = pb->stride_w;
    int64_t *off = malloc((size_t)(gm->taps + extra) * sizeof(int64_t));
    if (off == NULL) {
        return NULL;
    }
    int64_t t = 0;
    for (int64_t c = 0; c < gm->ch; c++) {
        for (int64_t r = 0; r < pb->R; r++) {
            const int64_t rr = r * pb->dil_h;
            for (int64_t s = 0; s < pb->S; s++) {
                const int64_t ss = s * pb->dil_w;
                off[t++] = ((c * sh + rr % sh) * sw + ss % sw) * gm->plane
                    + (rr / sh) * gm->pitch + ss / sw;
            }
        }
    }
    for (; t < gm->taps + extra; t++) {
        off[t] = off[gm->taps - 1];
    }
    return off;
}

/* Rows of a tile kernel (filters, or channels of the scatter form) are cut into blocks of
 * FC_TILE_KB_MAX (6); up to FC_TILE_SPLIT_MAX rows left that do not fit one block are split
 * in two halves (7 or 8 rows become 3 + 4 or 4 + 4). Blocks of 6, 4 and 3 rows keep 12
 * accumulators busy (5 and 2 rows only 10): 10 filters are 6 + 4, 16 are 6 + 6 + 4, 20 are
 * 6 + 6 + 4 + 4. */
#define FC_TILE_SPLIT_MAX 8

static int64_t tile_blocks(int64_t n)
{
    return n <= FC_TILE_SPLIT_MAX ? (n <= FC_TILE_KB_MAX ? 1 : 2)
                                  : 1 + tile_blocks(n - FC_TILE_KB_MAX);
}

static void tile_block(int64_t n, int64_t b, int64_t *r0, int *kb)
{
    int64_t start = 0, left = n, size = 0;
    for (int64_t i = 0; i <= b; i++) {
        start += size;
        left -= size;
        size = left > FC_TILE_SPLIT_MAX ? FC_TILE_KB_MAX
               : left > FC_TILE_KB_MAX ? left / 2 : left;
    }
    *r0 = start;
    *kb = (int)size;
}

/* Filters cut into nblocks blocks of at most kb_max, sizes differing by at most one (the
 * weight-gradient kernels and tilek). */
static int64_t filter_blocks(int64_t Kg, int kb_max)
{
    return fc_ceil_div(Kg, kb_max);
}

static void filter_block(int64_t Kg, int64_t nblocks, int64_t b, int64_t *k0, int *kb)
{
    *k0 = b * Kg / nblocks;
    *kb = (int)((b + 1) * Kg / nblocks - *k0);
}

/* The stores of a strip of vw pixel numbers starting at band row pl, column q: one segment
 * per output row it touches. Returns 0 if that needs more than FC_STRIP_MAX_SEG segments
 * (outputs narrower than a strip) or the output columns are not contiguous: the caller
 * then goes through a tile and scatter_tile. */
static int strip_map(fc_strip_map *map, int64_t pl, int64_t q, int vw, int64_t rows,
                     int64_t pitch, int64_t Q, const fc_out_layout *yl)
{
    if (yl->col != 1) {
        return 0;
    }
    int n = 0;
    int64_t j = 0;  /* the lane holding column q of band row pl */
    while (j < vw && pl < rows) {
        if (q < Q) {
            if (n == FC_STRIP_MAX_SEG) {
                return 0;
            }
            map->lo[n] = (int)j;
            map->hi[n] = (int)min64(j + Q - q, vw);
            map->base[n] = pl * yl->row + q - j;
            n++;
        }
        j += pitch - q;
        q = 0;
        pl++;
    }
    map->nseg = n;
    map->ldk = yl->channel;
    return 1;
}

/* One axis of the data gradient's phase split. dx pixel h (on this axis) receives
 * dy[p] * w[r] for h + pad = p*stride + r*dil, so the pixels h = m*stride + phase - pad
 * (m an integer) receive exactly the taps r with r*dil % stride == phase:
 * r = first + j*tap_step, and p = m - e0 - j*dil' with dil' = dil / gcd(stride, dil).
 * Over dy that is a stride-1 correlation with the sub-filter flipped, dilation dil' and
 * padding `pad` (negative: dy is cropped), producing nout pixels out0 + i*stride of dx. */
typedef struct {
    int64_t first, ntaps, tap_step;  /* the taps of the phase: first + j*tap_step, j < ntaps */
    int64_t dil, pad;                /* the sub-problem's dilation and leading padding */
    int64_t out0, nout;              /* its outputs: dx pixels out0 + i*stride, i < nout */
} fc_phase_axis;

static void phase_axis(fc_phase_axis *ax, int64_t dx_size, int64_t taps, int64_t stride,
                       int64_t dil, int64_t pad, int64_t phase)
{
    const int64_t g = gcd64(stride, dil);
    ax->tap_step = stride / g;
    ax->dil = dil / g;
    ax->first = -1;
    for (int64_t r = 0; r < ax->tap_step && r < taps; r++) {
        if (r * dil % stride == phase) {
            ax->first = r;
            break;
        }
    }
    ax->ntaps = ax->first < 0 ? 0 : (taps - 1 - ax->first) / ax->tap_step + 1;
    const int64_t m_lo = fc_ceil_div(pad - phase, stride);
    const int64_t m_hi = fc_ceil_div(dx_size + pad - phase, stride);
    ax->nout = m_hi > m_lo ? m_hi - m_lo : 0;
    ax->out0 = m_lo * stride + phase - pad;
    const int64_t e0 = ax->first < 0 ? 0 : (ax->first * dil - phase) / stride;
    ax->pad = e0 + (ax->ntaps - 1) * ax->dil - m_lo;
}

#endif /* FASTCONV_CONV_DIRECT_BAND_H */
