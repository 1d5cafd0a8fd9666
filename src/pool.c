/* pool.c: max, average and adaptive average pooling, forward and backward, written once in
 * pool_impl.h and instantiated for float and double. The AVX2 micro-kernels (float only)
 * live in pool_avx2.c; this file holds the index math both instantiations share. */
#include <math.h>
#include <string.h>

#include "fastconv.h"
#include "conv_index.h"
#include "pool_simd.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many input elements one thread beats the OpenMP fork/join (PERF-NOTES). */
#define POOL_PARALLEL_MIN 16384

/* Outputs per micro-kernel call when a compact argmax buffer is needed (lives on the stack). */
#define POOL_CHUNK 256

/* The taps of one window that fall inside the input: taps (r, s) with r in [r_lo, r_hi) and
 * s in [s_lo, s_hi). Tap (r, s) reads input pixel (h0 + r*dil_h, w0 + s*dil_w). */
typedef struct {
    int64_t h0, w0;
    int64_t r_lo, r_hi, s_lo, s_hi;
} pool_window;

static inline pool_window pool_window_at(const fc_pool_problem *pb, int64_t p, int64_t q)
{
    pool_window win;
    win.h0 = p * pb->stride_h - pb->pad_h;
    win.w0 = q * pb->stride_w - pb->pad_w;
    /* The taps are a strided range of their own: fc_valid_range finds the ones inside. */
    fc_valid_range(pb->R, pb->H, pb->dil_h, win.h0, &win.r_lo, &win.r_hi);
    fc_valid_range(pb->S, pb->W, pb->dil_w, win.w0, &win.s_lo, &win.s_hi);
    return win;
}

static inline int pool_window_empty(const pool_window *win)
{
    return win->r_lo >= win->r_hi || win->s_lo >= win->s_hi;
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

#define REAL float
#define FN(name) name##_f32
#define POOL_USE_AVX2 FC_POOL_HAVE_AVX2
#include "pool_impl.h"
#undef REAL
#undef FN
#undef POOL_USE_AVX2

#define REAL double
#define FN(name) name##_f64
#define POOL_USE_AVX2 0
#include "pool_impl.h"
#undef REAL
#undef FN
#undef POOL_USE_AVX2
