/*
 * conv_winograd.c: Winograd F(m x m, 3 x 3) convolution (conv_winograd.h) for the forward
 * pass and the input gradient of 3 x 3, stride-1, undilated, ungrouped layers.
 *
 * This file holds the plan (block and pass sizes), the portable tile blocks and the driver
 * (conv_winograd_impl.h, once per precision); conv_winograd_avx2.c and
 * conv_winograd_avx512.c compile the same tile blocks for their SIMD level.
 *
 * Memory (fastconv.h): the transformed filters, ALPHA^2 x ceil(K / mr) * mr x C elements
 * (4x the weights for m = 4), plus per thread wg_workspace(): V and M for one block. Both
 * are kept for the thread's next call (wg_take, below).
 */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE 1         /* madvise, under -std=c11 */
#endif
#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define WG_HAVE_KEPT 1
#else
#define WG_HAVE_KEPT 0
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fastconv.h"
#include "gemm_kernels.h"
#include "conv_winograd.h"
#include "template.h"
#include "real_math.h"


/* Input channels per GEMM pass (more are summed over passes into M) and filters per pass
 * (more re-run the input transform): one pass for every layer up to 256 -> 512 channels. */
#define WG_KC_MAX 256
#define WG_KB_MAX 512

/* A block's V and M together aim at about this many bytes, so that they stay in the L2
 * cache (2 MiB) between the input transform, the GEMMs and the output transform; larger
 * blocks run slower as V and M leave it (docs/PERFORMANCE.md, "Winograd"). A block is at
 * least one B panel of tiles: with the pass limits above a thread's workspace is at most
 * ALPHA^2 x (256 + 516) x 32 x 4 bytes = 3.5 MiB (float32 on AVX-512; float64 the same
 * bytes), 4 MiB in whole 2 MiB pages (wg_alloc). */
#define WG_BLOCK_BYTES ((int64_t)1 << 20)

/* Blocks are made small enough that each thread gets at least this many (load balance). */
#define WG_MIN_BLOCKS_PER_THREAD 2

/* size (bytes) -> rounded up to a multiple of 64, as aligned_alloc wants */
static size_t fc_round64(size_t size)
{
    return (size + 63) / 64 * 64;
}

/* bytes -> a 64-byte aligned block, or NULL, for the transformed filters and the
 * threads' workspaces. From 2 MiB on, it is rounded up to whole 2 MiB pages and asked for
 * them (Linux's transparent huge pages, as NumPy does for large arrays): in 4 KiB pages,
 * the first touch of every page of a fresh filter bank and workspaces costs thousands of
 * page faults per call, about as long as the call's GEMMs on one image. Released with
 * free(). */
/* A transparent huge page of x86-64 Linux: blocks from this size on are whole pages. */
#define WG_HUGE_PAGE_BYTES ((size_t)2 << 20)

static void *wg_alloc(size_t bytes)
{
    const size_t huge = WG_HUGE_PAGE_BYTES;
    if (bytes < huge) {
        return aligned_alloc(64, fc_round64(bytes));
    }
    bytes = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, bytes);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p != NULL) {
        madvise(p, bytes, MADV_HUGEPAGE);       /* a hint: 4 KiB pages if it is refused */
    }
#endif
    return p;
}

/* Buffers kept between calls, per thread: the calling thread's filter bank and each
 * OpenMP thread's block workspace. Fresh memory is zeroed by the OS page by page on first
 * touch, a noticeable share of a call's time for large filter banks (docs/PERFORMANCE.md,
 * "Winograd"). A kept buffer only grows, up to WG_KEPT_MAX_BYTES (larger ones are
 * allocated and freed per call), and is freed when its thread exits. */
#define WG_KEPT_MAX_BYTES ((size_t)16 << 20)
enum { WG_KEPT_FILTERS = 0, WG_KEPT_WORK = 1, WG_KEPT_SLOTS = 2 };

#if WG_HAVE_KEPT
typedef struct {
    void *buf[WG_KEPT_SLOTS];
    size_t bytes[WG_KEPT_SLOTS];
} wg_kept;

static pthread_key_t wg_kept_key;
static pthread_once_t wg_kept_once = PTHREAD_ONCE_INIT;
static int wg_kept_ready;
static int64_t wg_kept_total;       /* bytes kept by all threads (atomic) */

static void wg_kept_set(wg_kept *k, int slot, void *p, size_t bytes)
{
    __atomic_add_fetch(&wg_kept_total, (int64_t)bytes - (int64_t)k->bytes[slot],
                       __ATOMIC_RELAXED);
    free(k->buf[slot]);
    k->buf[slot] = p;
    k->bytes[slot] = bytes;
}

static void wg_kept_release(void *p)
{
    wg_kept *k = p;
    for (int i = 0; i < WG_KEPT_SLOTS; i++) {
        wg_kept_set(k, i, NULL, 0);
    }
    free(k);
}

static void wg_kept_init(void)
{
    wg_kept_ready = pthread_key_create(&wg_kept_key, wg_kept_release) == 0;
}

/* This thread's kept set, or NULL (no key, out of memory). */
static wg_kept *wg_kept_mine(void)
{
    pthread_once(&wg_kept_once, wg_kept_init);
    if (!wg_kept_ready) {
        return NULL;
    }
    wg_kept *k = pthread_getspecific(wg_kept_key);
    if (k == NULL) {
        k = calloc(1, sizeof *k);
        if (k != NULL && pthread_setspecific(wg_kept_key, k) != 0) {
            free(k);
            k = NULL;
        }
    }
    return k;
}
#endif

/* bytes for `slot` of this thread: its kept buffer (grown if needed), or a fresh one that
 * wg_give_back frees. */
static void *wg_take(int slot, size_t bytes)
{
#if WG_HAVE_KEPT
    wg_kept *k = bytes <= WG_KEPT_MAX_BYTES ? wg_kept_mine() : NULL;
    if (k != NULL) {
        if (k->bytes[slot] < bytes) {
            wg_kept_set(k, slot, NULL, 0);
            void *p = wg_alloc(bytes);
            wg_kept_set(k, slot, p, p != NULL ? bytes : 0);
        }
        return k->buf[slot];
    }
#endif
    (void)slot;
    return wg_alloc(bytes);
}

static void wg_give_back(int slot, void *p)
{
#if WG_HAVE_KEPT
    wg_kept *k = wg_kept_mine();
    if (k != NULL && k->buf[slot] == p) {
        return;
    }
#endif
    (void)slot;
    free(p);
}

int64_t fc_winograd_kept_bytes(void)
{
#if WG_HAVE_KEPT
    return __atomic_load_n(&wg_kept_total, __ATOMIC_RELAXED);
#else
    return 0;
#endif
}

int fc_winograd_supports(const fc_conv_problem *pb)
{
    return pb->R == 3 && pb->S == 3 && pb->stride_h == 1 && pb->stride_w == 1
           && pb->dil_h == 1 && pb->dil_w == 1 && pb->groups == 1;
}

/* The plan's problem: input N x C x H x W, output K x P x Q, padding before. */
static void wg_plan_problem(wg_plan *pl, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                            int64_t P, int64_t Q, int64_t pad_top, int64_t pad_left)
{
    pl->N = N;
    pl->C = C;
    pl->H = H;
    pl->W = W;
    pl->K = K;
    pl->P = P;
    pl->Q = Q;
    pl->pad_top = pad_top;
    pl->pad_left = pad_left;
    pl->tiles_h = (P + WG_M - 1) / WG_M;
    pl->tiles_w = (Q + WG_M - 1) / WG_M;
    pl->tiles = N * pl->tiles_h * pl->tiles_w;
    pl->relu = 0;
}

/* Pass and block sizes once mr and nr are known. */
static void wg_plan_blocks(wg_plan *pl, int64_t elem_bytes, int nthreads)
{
    pl->kpanels = (pl->K + pl->mr - 1) / pl->mr;
    pl->u_position = pl->kpanels * pl->mr * pl->C + WG_STRIDE_PAD;
    pl->kc = pl->C < WG_KC_MAX ? pl->C : WG_KC_MAX;
    const int64_t kb_max = WG_KB_MAX / pl->mr * pl->mr;
    pl->kb = pl->kpanels * pl->mr < kb_max ? pl->kpanels * pl->mr : kb_max;
    int64_t block = WG_BLOCK_BYTES / (WG_POSITIONS * (pl->kc + pl->kb) * elem_bytes);
    /* Leave every thread at least WG_MIN_BLOCKS_PER_THREAD blocks, for balance. */
    const int64_t blocks = (int64_t)WG_MIN_BLOCKS_PER_THREAD * nthreads;
    const int64_t share = (pl->tiles + blocks - 1) / blocks;
    block = block < share ? block : share;
    block = block / pl->nr * pl->nr;
    pl->block = block > pl->nr ? block : pl->nr;
}

/* The portable tile blocks, then the driver for each type. */
#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX generic
#include "gemm_tile.h"
#define FC_TEMPLATE_TARGET 
#define FC_TEMPLATE_SHUFFLES 0
#include "conv_winograd_block_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX generic
#include "gemm_tile.h"
#define FC_TEMPLATE_TARGET 
#define FC_TEMPLATE_SHUFFLES 0
#include "conv_winograd_block_impl.h"
#include "template_end.h"

#define REAL float
#define TYPE_SUFFIX f32
#define FC_TEMPLATE_NR FC_GEMM_NR_F32
#define FC_TEMPLATE_NR_AVX512 FC_GEMM_NR_AVX512_F32
#include "conv_winograd_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define FC_TEMPLATE_NR FC_GEMM_NR_F64
#define FC_TEMPLATE_NR_AVX512 FC_GEMM_NR_AVX512_F64
#include "conv_winograd_impl.h"
#include "template_end.h"
