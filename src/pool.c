/* pool.c: max, average and adaptive average pooling, forward and backward, written once in
 * pool_impl.h and instantiated for float and double. The AVX2 micro-kernels (float only)
 * live in pool_avx2.c; this file holds the index math both instantiations share. */
#include <math.h>
#include <string.h>

#include "fastconv.h"
#include "conv_index.h"
#include "pool_simd.h"
#include "template.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many input elements one thread beats the OpenMP fork/join. */
#define POOL_PARALLEL_MIN 16384

/* Taps a uint8 argmax can number: larger windows must return int64 indices instead. */
#define POOL_ARGMAX_TAPS 256

/* Windows per micro-kernel call when a compact argmax buffer is needed (on the stack). */
#define POOL_CHUNK 2048

/* The taps of one window that fall inside the input: taps (r, s) with r in [r_lo, r_hi) and
 * s in [s_lo, s_hi). Tap (r, s) reads input pixel (h0 + r*dil_h, w0 + s*dil_w). */
typedef struct {
    int64_t h0, w0;
    int64_t r_lo, r_hi, s_lo, s_hi;
} pool_window;

/* The taps t in [*lo, *hi) of `taps` (dil apart from start) that fall inside [0, n). */
static inline void pool_taps_inside(int64_t start, int64_t dil, int64_t taps, int64_t n,
                                    int64_t *lo, int64_t *hi)
{
    if (start >= 0 && start + (taps - 1) * dil < n) {
        *lo = 0;   /* all of them: most windows, and no division */
        *hi = taps;
    } else if (dil == 1) {
        *lo = start < 0 ? -start : 0;
        *hi = n - start < taps ? n - start : taps;
        *hi = *hi > *lo ? *hi : *lo;
    } else {
        /* The taps are a strided range of their own: fc_valid_range finds the ones inside
         * (with divisions, slow enough to show in the border windows of big planes). */
        fc_valid_range(taps, n, dil, start, lo, hi);
    }
}

static inline pool_window pool_window_at(const fc_pool_problem *pb, int64_t p, int64_t q)
{
    pool_window win;
    win.h0 = p * pb->stride_h - pb->pad_h;
    win.w0 = q * pb->stride_w - pb->pad_w;
    pool_taps_inside(win.h0, pb->dil_h, pb->R, pb->H, &win.r_lo, &win.r_hi);
    pool_taps_inside(win.w0, pb->dil_w, pb->S, pb->W, &win.s_lo, &win.s_hi);
    return win;
}

static inline int pool_window_empty(const pool_window *win)
{
    return win->r_lo >= win->r_hi || win->s_lo >= win->s_hi;
}

/* Tap t = r*S + s of a window: whether it reads the input (not the padding), and the flat
 * position h*W + w it reads, which is what PyTorch's indices hold. */
static inline int pool_tap_inside(const fc_pool_problem *pb, const pool_window *win, int64_t t)
{
    const int64_t r = t / pb->S, s = t % pb->S;
    return r >= win->r_lo && r < win->r_hi && s >= win->s_lo && s < win->s_hi;
}

static inline int64_t pool_tap_index(const fc_pool_problem *pb, const pool_window *win,
                                     int64_t t)
{
    return (win->h0 + (t / pb->S) * pb->dil_h) * pb->W + win->w0 + (t % pb->S) * pb->dil_w;
}

/* An average pooling window: input rows [h0, h1) and columns [w0, w1) (clipped to the input)
 * and PyTorch's divisor: the override, or the window size counting the padding but not the
 * ceil-mode overhang past it, or (count_include_pad off) the pixels actually read. */
typedef struct {
    int64_t h0, h1, w0, w1;
    int64_t divisor;
} avg_window;

static inline avg_window avg_window_at(const fc_pool_problem *pb, int64_t p, int64_t q)
{
    avg_window win;
    int64_t h0 = p * pb->stride_h - pb->pad_h, w0 = q * pb->stride_w - pb->pad_w;
    int64_t h1 = h0 + pb->R, w1 = w0 + pb->S;
    h1 = h1 < pb->H + pb->pad_h ? h1 : pb->H + pb->pad_h;
    w1 = w1 < pb->W + pb->pad_w ? w1 : pb->W + pb->pad_w;
    const int64_t padded_size = (h1 - h0) * (w1 - w0);
    win.h0 = h0 > 0 ? h0 : 0;
    win.w0 = w0 > 0 ? w0 : 0;
    win.h1 = h1 < pb->H ? h1 : pb->H;
    win.w1 = w1 < pb->W ? w1 : pb->W;
    if (pb->divisor_override != 0) {
        win.divisor = pb->divisor_override;
    } else if (pb->count_include_pad) {
        win.divisor = padded_size;
    } else {
        win.divisor = (win.h1 - win.h0) * (win.w1 - win.w0);
    }
    return win;
}

/* Adaptive pooling: output o of n_out covers input [floor(o*n/n_out), ceil((o+1)*n/n_out)). */
static inline void adaptive_range(int64_t o, int64_t n_out, int64_t n, int64_t *lo, int64_t *hi)
{
    *lo = (o * n) / n_out;
    *hi = ((o + 1) * n + n_out - 1) / n_out;
}

/* The lowest and highest set bit of a nonzero mask. */
static inline int pool_lowest_bit(unsigned mask)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctz(mask);
#else
    int bit = 0;
    while (!(mask & 1u)) {
        mask >>= 1;
        bit++;
    }
    return bit;
#endif
}

static inline int pool_highest_bit(unsigned mask)
{
#if defined(__GNUC__) || defined(__clang__)
    return 31 - __builtin_clz(mask);
#else
    int bit = 0;
    while (mask >>= 1) {
        bit++;
    }
    return bit;
#endif
}

/* K (2 or 3) when the problem is K x K / stride 2 / no dilation, the shapes with
 * micro-kernels; 0 otherwise. */
static inline int pool_fast_window(const fc_pool_problem *pb)
{
    if (pb->R != pb->S || (pb->R != 2 && pb->R != 3) || pb->stride_h != 2 || pb->stride_w != 2
        || pb->dil_h != 1 || pb->dil_w != 1) {
        return 0;
    }
    return (int)pb->R;
}

/* The outputs [*lo, *hi) along one axis whose whole window (span taps from o*stride - pad)
 * lies inside [0, n): the interior the micro-kernels handle. */
static inline void pool_interior(int64_t n_out, int64_t n, int64_t stride, int64_t pad,
                                 int64_t span, int64_t *lo, int64_t *hi)
{
    int64_t lo_first, hi_first, lo_last, hi_last;
    fc_valid_range(n_out, n, stride, -pad, &lo_first, &hi_first);
    fc_valid_range(n_out, n, stride, span - 1 - pad, &lo_last, &hi_last);
    *lo = lo_first > lo_last ? lo_first : lo_last;
    *hi = hi_first < hi_last ? hi_first : hi_last;
    if (*hi < *lo) {
        *hi = *lo;
    }
}

/* Where the micro-kernels work in every plane: output rows [p_lo, p_hi) x columns
 * [q_lo, q_hi), the windows wholly inside the input; the rest touch the padding and go to the
 * per-window code. Empty (all zero) when there is no micro-kernel (K == 0) or no such window. */
typedef struct {
    int K;
    int64_t p_lo, p_hi, q_lo, q_hi;
} pool_block;

static inline pool_block pool_block_of(const fc_pool_problem *pb, int K)
{
    pool_block blk = {0, 0, 0, 0, 0};
    if (K) {
        pool_interior(pb->P, pb->H, 2, pb->pad_h, K, &blk.p_lo, &blk.p_hi);
        pool_interior(pb->Q, pb->W, 2, pb->pad_w, K, &blk.q_lo, &blk.q_hi);
        if (blk.p_lo < blk.p_hi && blk.q_lo < blk.q_hi) {
            blk.K = K;
            return blk;
        }
    }
    blk.p_lo = blk.p_hi = blk.q_lo = blk.q_hi = 0;
    return blk;
}

/* Row p's windows outside the block: [0, *left_end) and [*right_begin, Q). */
static inline void pool_block_split(const pool_block *blk, int64_t p, int64_t Q,
                                    int64_t *left_end, int64_t *right_begin)
{
    if (p >= blk->p_lo && p < blk->p_hi) {
        *left_end = blk->q_lo;
        *right_begin = blk->q_hi;
    } else {
        *left_end = Q;
        *right_begin = Q;
    }
}

/* The first row from p on with windows outside the block: rows the block covers from edge
 * to edge are skipped, so LeNet's planes (all block) cost no per-row bookkeeping. */
static inline int64_t pool_border_row(const pool_block *blk, int64_t p, int64_t Q)
{
    if (p >= blk->p_lo && p < blk->p_hi && blk->q_lo == 0 && blk->q_hi == Q) {
        return blk->p_hi;
    }
    return p;
}

/* Flat input position of the top-left pixel of block window (p, q) (stride 2). */
static inline int64_t pool_block_input(const fc_pool_problem *pb, int64_t p, int64_t q)
{
    return (2 * p - pb->pad_h) * pb->W + 2 * q - pb->pad_w;
}

/* PyTorch's flat indices (i_plane, (P, Q)) of block rows [p0, p0 + rows) x columns
 * [q0, q0 + n) from the taps the micro-kernel found (pos, rows ldpos apart). */
static void pool_block_indices(int64_t *i_plane, const uint8_t *pos, int64_t ldpos,
                               const fc_pool_problem *pb, int K, int64_t p0, int64_t q0,
                               int64_t n, int64_t rows)
{
    int64_t tap[9];   /* flat offset of tap r*K + s from its window's corner */
    for (int r = 0; r < K; r++) {
        for (int s = 0; s < K; s++) {
            tap[r * K + s] = r * pb->W + s;
        }
    }
    for (int64_t i = 0; i < rows; i++) {
        int64_t *i_row = i_plane + (p0 + i) * pb->Q + q0;
        const uint8_t *pos_row = pos + i * ldpos;
        const int64_t corner = pool_block_input(pb, p0 + i, q0);
        for (int64_t j = 0; j < n; j++) {
            i_row[j] = corner + 2 * j + tap[pos_row[j]];
        }
    }
}

/* Whether a 2x2 block's windows cover every input pixel, so a gradient need not be cleared. */
static inline int pool_block_tiles_plane(const fc_pool_problem *pb, const pool_block *blk)
{
    return blk->K == 2 && pb->pad_h == 0 && pb->pad_w == 0 && 2 * pb->P == pb->H
           && 2 * pb->Q == pb->W;
}

/* Input elements of a plane stacked from smaller ones: it stays in a core's L2 cache. */
#define POOL_STACK_ELEMENTS 65536

/* The same problem on fewer, taller planes. 2x2 stride-2 windows without padding or
 * dilation that end exactly at the bottom of each plane (H = 2P) see g planes lying on top
 * of each other as one plane of g*H rows with the same windows and the same output rows, so
 * small planes (LeNet-5's 10x10) are walked without the per-plane work. g is the largest
 * divisor of the plane count whose stack stays in cache and leaves at least two stacks to
 * each thread. A window's tap (argmax) is the same in the stack; a position in the plane
 * (indices) is not, so passes with indices keep the planes as they are. */
static fc_pool_problem pool_stacked(const fc_pool_problem *pb)
{
    fc_pool_problem st = *pb;
    if (pb->R != 2 || pb->S != 2 || pb->stride_h != 2 || pb->stride_w != 2 || pb->pad_h != 0
        || pb->pad_w != 0 || pb->dil_h != 1 || pb->dil_w != 1 || pb->H != 2 * pb->P) {
        return st;
    }
    const int64_t planes = pb->N * pb->C;
    const int64_t per_thread = planes / (2 * (int64_t)fc_get_num_threads());
    int64_t g = POOL_STACK_ELEMENTS / (pb->H * pb->W);
    g = g < per_thread ? g : per_thread;
    while (g > 1 && planes % g != 0) {
        g--;
    }
    if (g > 1) {
        st.N = 1;
        st.C = planes / g;
        st.H = g * pb->H;
        st.P = g * pb->P;
    }
    return st;
}

static inline int pool_problem_ok(const fc_pool_problem *pb)
{
    return pb->N >= 0 && pb->C >= 0 && pb->H > 0 && pb->W > 0 && pb->R > 0 && pb->S > 0
           && pb->stride_h > 0 && pb->stride_w > 0 && pb->dil_h > 0 && pb->dil_w > 0
           && pb->pad_h >= 0 && pb->pad_w >= 0 && pb->P >= 0 && pb->Q >= 0;
}

static inline int adaptive_problem_ok(const fc_pool_problem *pb)
{
    return pb->N >= 0 && pb->C >= 0 && pb->H > 0 && pb->W > 0 && pb->P > 0 && pb->Q > 0;
}

/* For the per-plane skeletons shared by several passes: always inlined, and every caller
 * passes the pass as a constant, so that each pass compiles to its own branch-free copy. */
#if defined(__GNUC__) || defined(__clang__)
#define POOL_SPECIALISED static inline __attribute__((always_inline))
#else
#define POOL_SPECIALISED static inline
#endif

/* What a backward pass sends to the input pixels of each window. */
typedef enum {
    POOL_GRAD_MAX_FROM_X,       /* dy to the window's maximum, found again in x */
    POOL_GRAD_MAX_FROM_ARGMAX,  /* dy to the tap the forward pass saved in argmax */
    POOL_GRAD_AVG               /* dy / divisor to every pixel of the window */
} pool_grad;

/* The AVX2 micro-kernels exist for float32 only. */
#define REAL float
#define TYPE_SUFFIX f32
#define FC_TEMPLATE_AVX2 FC_POOL_HAVE_AVX2
#include "pool_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define FC_TEMPLATE_AVX2 0
#include "pool_impl.h"
#include "template_end.h"
