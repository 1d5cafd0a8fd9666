/*
 * conv_winograd_weight.c: the weight gradient of a 3x3, stride-1 convolution by Winograd's
 * minimal filtering F(4x4, 3x3) (Lavin & Gray, CVPR 2016), transposed.
 *
 * The forward F(4x4, 3x3) computes a 4x4 output tile y = A^T [(G g G^T) . (B^T d B)] A
 * from a 6x6 input tile d and a 3x3 filter g (conv_winograd.h). Its transpose gives the
 * filter's gradient from that tile and the tile's 4x4 output gradient dy:
 *     dg (3x3) = G^T [(A dy A^T) . (B^T d B)] G        (. the elementwise product)
 * and the sum over all tiles of all images is linear, so it runs in the transformed
 * domain: for each of the 36 positions t of the 6x6 tile, one matrix product
 *     M_t (K x C) += V_t^T (K x tiles) U_t (tiles x C),
 * U_t = (B^T d B)_t of every channel and tile, V_t = (A dy A^T)_t of every filter and tile;
 * dw is G^T M G once at the end. 4x fewer multiplications than the direct sum (36 products
 * per tile and filter-channel pair instead of 144), all in fc_gemm (whose micro-kernel
 * carries the SIMD); the transforms are adds, subtracts and small multiples, O(data), with
 * the forward pass's formulas and their transposes (conv_winograd.h).
 *
 * Work is split into chunks of whole tile rows (crossing images). Where M is small, the
 * chunks are shared among the threads, assigned statically; each thread sums its chunks
 * into its own M, and the Ms are added in thread order. Where one M per thread would not
 * fit the caches (WG_WEIGHT_SPLIT_FILTERS_SUMS), the filters are shared instead: each
 * thread transforms every chunk's input (the only duplicated work) and its filters'
 * gradients, and sums its rows of the one M. Either way bitwise reproducible at a given
 * thread count.
 * Workspace per thread: M (36*C*K elements; one M in all where the threads share the
 * filters), the chunk's U and V (36*tiles*(C + K)
 * elements, tiles <= FC_WINOGRAD_CHUNK_TILES or one tile row), the input and gradient rows
 * they come from, and fc_gemm's packing buffers.
 */
#include <stdlib.h>
#include <string.h>

#include "fastconv.h"
#include "conv_threads.h"
#include "conv_winograd.h"
#include "template.h"

/* Tiles per chunk: the depth of each chunk's 36 matrix products (deep enough that updating
 * M, 36*C*K elements, is cheap beside them) and the size of U and V, which the GEMMs read
 * back right after the transforms wrote them, so they should stay in L2: 64 ran faster
 * than 32 and 128 over 64- to 256-channel layers (docs/PERFORMANCE.md). */
#define FC_WINOGRAD_CHUNK_TILES 64

/* Sums M of more elements than this (per thread, were the chunks shared) share the
 * filters among the threads instead: the Ms leave L2, and zeroing and adding them costs
 * more than transforming the input twice. */
#define WG_WEIGHT_SPLIT_FILTERS_SUMS ((int64_t)1 << 20)

/* Filters per GEMM row block: a thread's share of the filters is a multiple of it. */
#define WG_WEIGHT_FILTER_BLOCK 16

/* Channels per block of the final transform G^T M G (its scratch on the stack). */
#define WG_WEIGHT_CHANNEL_BLOCK 64

/* How the tile rows of one call are cut into chunks and shared among the team. */
typedef struct {
    int64_t tiles_w;            /* tiles per tile row, ceil(Q / m) */
    int64_t total_rows;         /* tile rows of the batch, N * ceil(P / m) */
    int64_t chunk_rows;         /* tile rows per chunk (the last may have fewer) */
    int64_t chunks;
    int64_t chunk_tiles;        /* tiles per full chunk */
    int64_t m_position;         /* elements from one position of M to the next */
    int64_t u_position;         /* elements from one position of U to the next */
    int64_t v_position;         /* the same in V */
    int64_t xband_size;         /* elements of a chunk's input rows, channel-minor */
    int64_t dband_size;         /* elements of a chunk's gradient rows, channel-minor */
    int by_filters;             /* 1: the threads share the filters; 0: the chunks */
    int team;                   /* threads, at most one per chunk or filter block */
} wg_weight_plan;

/* The first filter of thread t's share when a team of `team` shares K filters (t = team
 * gives K): shares of whole WG_WEIGHT_FILTER_BLOCKs, as even as they can be. */
static int64_t wg_filter_share(int64_t K, int team, int t)
{
    if (t >= team) {
        return K;
    }
    return K * t / team / WG_WEIGHT_FILTER_BLOCK * WG_WEIGHT_FILTER_BLOCK;
}

/* Chunks of at most FC_WINOGRAD_CHUNK_TILES tiles (at least one tile row), their count a
 * multiple of the threads when there are rows enough, so the threads share evenly; or, with
 * large sums and filters enough, the threads share the filters. */
static void wg_weight_plan_of(wg_weight_plan *wp, const fc_conv_problem *pb, int nthreads)
{
    const int64_t filter_blocks = pb->K / WG_WEIGHT_FILTER_BLOCK;
    wp->by_filters = nthreads > 1 && filter_blocks >= 2
                     && WG_POSITIONS * pb->C * pb->K > WG_WEIGHT_SPLIT_FILTERS_SUMS;
    if (wp->by_filters) {
        nthreads = filter_blocks < nthreads ? (int)filter_blocks : nthreads;
    }
    const int64_t tiles_h = (pb->P + WG_M - 1) / WG_M;
    wp->tiles_w = (pb->Q + WG_M - 1) / WG_M;
    wp->total_rows = pb->N * tiles_h;
    int64_t max_rows = FC_WINOGRAD_CHUNK_TILES / wp->tiles_w;
    max_rows = max_rows < 1 ? 1 : max_rows;
    int64_t chunks = (wp->total_rows + max_rows - 1) / max_rows;
    if (wp->total_rows >= nthreads) {
        chunks = (chunks + nthreads - 1) / nthreads * nthreads;
    }
    wp->chunk_rows = (wp->total_rows + chunks - 1) / chunks;
    wp->chunks = (wp->total_rows + wp->chunk_rows - 1) / wp->chunk_rows;
    wp->team = wp->by_filters || wp->chunks >= nthreads ? nthreads : (int)wp->chunks;
    wp->chunk_tiles = wp->chunk_rows * wp->tiles_w;
    /* padded as the forward pass's positions are (WG_STRIDE_PAD says why) */
    wp->m_position = pb->K * pb->C + WG_STRIDE_PAD;
    wp->u_position = wp->chunk_tiles * pb->C + WG_STRIDE_PAD;
    wp->v_position = wp->chunk_tiles * pb->K + WG_STRIDE_PAD;
    const int64_t runs = wp->chunk_rows < tiles_h ? wp->chunk_rows : tiles_h;
    wp->xband_size = (WG_M * runs + 2) * (WG_M * wp->tiles_w + 2) * pb->C;
    wp->dband_size = WG_M * runs * WG_M * wp->tiles_w * pb->K;
}

/* Elements of one thread's sums M. */
static int64_t wg_weight_sums(const wg_weight_plan *wp)
{
    return WG_POSITIONS * wp->m_position;
}

/* The transforms for every instruction set: the portable build, and where the compiler can
 * target x86 per function, AVX2 and AVX-512 builds of the same source (fc_simd_* picks). */
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define FC_WINOGRAD_HAVE_X86 1
#else
#define FC_WINOGRAD_HAVE_X86 0
#endif

#if FC_WINOGRAD_HAVE_X86
#include <immintrin.h>

#include "transpose_avx512.h"

/* out[j*ldo + i] = in[i*ldi + j] for i, j < 16: one 16 x 16 block of floats transposed in
 * ZMM registers. The scalar copy of the same block costs several cycles per element (a
 * load per channel plane). */
static inline __attribute__((target("avx512f"))) void transpose16_f32_avx512(
    float *out, int64_t ldo, const float *in, int64_t ldi)
{
    __m512 r[16];
    for (int i = 0; i < 16; i++) {
        r[i] = _mm512_loadu_ps(in + i * ldi);
    }
    fc_transpose16_f32_avx512(r);
    for (int j = 0; j < 16; j++) {
        _mm512_storeu_ps(out + j * ldo, r[j]);
    }
}
#endif

/* The transforms for each type and instruction set, then the kernel of each type. */
#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX generic
#define FC_TEMPLATE_TARGET
#include "conv_winograd_weight_transforms_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX generic
#define FC_TEMPLATE_TARGET
#include "conv_winograd_weight_transforms_impl.h"
#include "template_end.h"

#if FC_WINOGRAD_HAVE_X86
#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX avx2
#define FC_TEMPLATE_TARGET __attribute__((target("avx2")))
#include "conv_winograd_weight_transforms_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX avx2
#define FC_TEMPLATE_TARGET __attribute__((target("avx2")))
#include "conv_winograd_weight_transforms_impl.h"
#include "template_end.h"

#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX avx512
#define FC_TEMPLATE_TARGET __attribute__((target("avx512f")))
#define FC_TEMPLATE_TRANSPOSE16 transpose16_f32_avx512
#include "conv_winograd_weight_transforms_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX avx512
#define FC_TEMPLATE_TARGET __attribute__((target("avx512f")))
#include "conv_winograd_weight_transforms_impl.h"
#include "template_end.h"
#endif

#define REAL float
#define TYPE_SUFFIX f32
#include "conv_winograd_weight_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#include "conv_winograd_weight_impl.h"
#include "template_end.h"
