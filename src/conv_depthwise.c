/* conv_depthwise.c: the depthwise convolution (groups == C, K = C x multiplier filters of
 * one channel each; any filter size, stride, padding and dilation): forward, data gradient
 * and weight gradient, written once per element type in conv_depthwise_impl.h, with the
 * micro-kernels of conv_depthwise_kernels_impl.h built for each instruction set.
 *
 * The layout. A channel plane is copied, zero-padded, into stride_h x stride_w phase
 * planes of Hph x Wph values,
 *     xph[a][b][u][v] = x_padded[u * stride_h + a][v * stride_w + b],
 * so filter tap (r, s) of output pixel (p, q) reads padded row p*sh + r*dh, which is phase
 * a = r*dh % sh at row p + r*dh / sh, and likewise for columns. Numbering the output
 * pixels "wide", i = p * Wph + q, pixel i of tap t reads xph[i + off[t]]: one offset per
 * tap, contiguous memory along the row, whatever the stride, dilation and padding. The
 * last Wph - Q numbers of each wide row are not pixels: the kernels compute them anyway
 * (so a run crosses rows without a branch) and the passes never store them.
 *   - forward: y_wide = sum over taps of w[t] * xph[. + off[t]], then the pixels are
 *     copied out (plus the bias).
 *   - data gradient: the transpose. dy is laid out wide (zeros in the non-pixels and
 *     around), and each phase plane of the padded dx gathers its taps:
 *     dx_phase[j] = sum over the taps t of that phase of w[t] * dy_wide[j - off[t]]; the
 *     unpadded part of the phase planes is then copied out.
 *   - weight gradient: dw[k][t] = sum over images and wide pixels of
 *     dy_wide[i] * xph[i + off[t]] (the non-pixels of dy_wide are zeros).
 * Each thread owns whole (image, channel) planes; the weight gradient, which sums over
 * images, is split by channels when there are enough of them (each thread owns its
 * channels' filters, so the bits do not depend on the thread count) and otherwise by
 * images, with per-thread partial sums added in thread order (fc_add_partials), so the bits
 * are the same on every call at a given thread count.
 *
 * Non-finite values. The wide layout adds products a plain sum would not: the data
 * gradient multiplies each weight by the zeros around dy, the weight gradient multiplies x
 * values by the zeros of dy's non-pixels. With finite factors these are +0 and change
 * nothing; with an inf or NaN they would make NaN where the definition has none. So a
 * channel whose weights are not all finite runs the data gradient as plain loops over the
 * definition's products, and an (image, channel) plane of x that is not all finite runs
 * the weight gradient's sums over the pixels alone. The forward pass's extra products are
 * the padding's (which the definition has: 0 x inf is NaN there too) and the non-pixels'
 * (never stored), so it needs no check.
 *
 * The channels-last path (multiplier 1, planes of at most
 * FC_DEPTHWISE_CHANNELS_LAST_MAX_PIXELS pixels, fastconv.h). Small planes are mostly wide
 * rows' padding, so there the passes work on a block of DW_CB channels at once, one
 * vector's lanes (conv_depthwise_cl_impl.h): an (image, channel block) pair is copied into a
 * zero-padded buffer of Hp x Wp pixels of DW_CB lanes, and each output pixel is the sum
 * over the taps, in order, of the filters' lanes times the buffer at the tap; the result is
 * copied back plane by plane.
 *   - forward: exactly the definition's products, the padding's included.
 *   - data gradient: at stride 1, on channel blocks whose filters are all finite, the
 *     forward kernel over dy zero-padded by the filter's reach less the padding, with the
 *     flipped filters (its extra products are finite weights times zeros); otherwise each
 *     input pixel sums the definition's products alone, from per-row and per-column tables
 *     of the taps that reach it.
 *   - weight gradient: each tap's lanes sum dy times the padded x over the output pixels,
 *     exactly the definition's products, image after image. Each thread owns whole
 *     channel blocks, so the bits do not depend on the thread count.
 * Each thread owns whole (image, channel block) pairs in the forward pass and the data
 * gradient. */
#include <stdlib.h>
#include <string.h>

#include "fastconv.h"
#include "template.h"
#include "real_math.h"
#include "conv_index.h"
#include "conv_threads.h"

/* Values per block of the sum kernel: 256 bytes, four 64-byte or eight 32-byte vectors of
 * sums held in registers across the taps. */
#define DW_BLOCK_BYTES 256
#define DW_BLOCK(T) ((int)(DW_BLOCK_BYTES / sizeof(T)))
/* Partial sums per dot product: 128 bytes, enough independent FMA chains to cover the
 * FMA latency. */
#define DW_LANES_BYTES 256
#define DW_LANES(T) ((int)(DW_LANES_BYTES / sizeof(T)))
/* Multiply-adds below which a pass runs on one thread (fork/join would cost more), and
 * the least a thread gets when the pass runs on several. */
#define DW_MIN_WORK_PER_THREAD ((int64_t)1 << 15)
/* The weight gradient is split by channels when there are at least this many channels
 * per thread (each thread's share then differs from the others' by at most a fraction of
 * it); with fewer, by images. */
#define DW_WEIGHT_CHANNELS_PER_THREAD 4

/* The channels-last path. Channels per block: 64 bytes, one AVX-512 vector. */
#define DW_CB_BYTES 64
#define DW_CB(T) ((int)(DW_CB_BYTES / sizeof(T)))
/* The geometry of the channels-last kernels: x padded to Hp x Wp pixels of DW_CB lanes. */
typedef struct {
    int64_t H, W, P, Q, R, S;
    int64_t sh, sw, dh, dw, pt, pl;
    int64_t Hp, Wp;
} fc_dw_cl_geom;

/* For each input row (or column) of the data gradient, the filter rows (columns) and
 * output rows (columns) whose products land on it (dw_cl_data). */
typedef struct {
    int64_t *count, *tap, *at;
} fc_dw_cl_lists;

/* ---- the micro-kernel table ---- */

#define FC_DEFINE_DW_KERNELS(SUFFIX, T)                                                      \
    typedef struct {                                                                         \
        void (*taps_sum)(T *restrict out, int64_t n, const T *const *src, const T *wt,       \
                         int64_t taps, int add);                                             \
        void (*dots)(T *restrict sums, const T *a, const T *const *src, int64_t taps,        \
                     int64_t n);                                                             \
        int (*all_finite)(const T *a, int64_t n);                                            \
    } fc_dw_kernels_##SUFFIX;
FC_DEFINE_DW_KERNELS(f32, float)
FC_DEFINE_DW_KERNELS(f64, double)
#undef FC_DEFINE_DW_KERNELS

#define FC_DEFINE_DW_CL_KERNELS(SUFFIX, T)                                                   \
    typedef struct {                                                                         \
        void (*forward)(T *restrict yb, const T *xb, const T *wcl, const fc_dw_cl_geom *g);  \
        void (*data)(T *restrict dxb, const T *dyb, const T *wcl, const fc_dw_cl_geom *g,    \
                     const fc_dw_cl_lists *rows, const fc_dw_cl_lists *cols);                \
        void (*weight)(T *restrict sums, const T *xb, const T *dyb, const fc_dw_cl_geom *g); \
        void (*fill)(T *restrict buf, const T *src, int64_t lanes, int64_t plane,            \
                     const int64_t *pos, int64_t npix);                                      \
        void (*unfill)(T *restrict dst, const T *buf, int64_t lanes, int64_t npix,           \
                       const T *bias);                                                       \
    } fc_dw_cl_kernels_##SUFFIX;
FC_DEFINE_DW_CL_KERNELS(f32, float)
FC_DEFINE_DW_CL_KERNELS(f64, double)
#undef FC_DEFINE_DW_CL_KERNELS

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define FC_DW_HAVE_X86 1
#else
#define FC_DW_HAVE_X86 0
#endif

#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX generic
#define FC_TEMPLATE_FMA(a, b, c) ((a) * (b) + (c))
#include "conv_depthwise_kernels_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX generic
#define FC_TEMPLATE_FMA(a, b, c) ((a) * (b) + (c))
#include "conv_depthwise_kernels_impl.h"
#include "template_end.h"

#define DW_UNROLL _Pragma("GCC unroll 16")

/* The portable channels-last kernels: "vectors" of one REAL, loops over a block's lanes
 * the compiler vectorises. */
#define FC_TEMPLATE_LANES 1
#define FC_TEMPLATE_VEC REAL
#define FC_TEMPLATE_LOADU(p) (*(p))
#define FC_TEMPLATE_STOREU(p, v) (*(p) = (v))
#define FC_TEMPLATE_SETZERO() ((REAL)0)
#define FC_TEMPLATE_FMADD(a, b, c) ((a) * (b) + (c))
#define FC_TEMPLATE_TARGET
#define DW_CL_PIX_VECS 32
#define DW_CL_TAP_VECS 48
#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX generic
#include "conv_depthwise_cl_impl.h"
#undef REAL
#undef TYPE_SUFFIX
#undef ISA_SUFFIX
#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX generic
#include "conv_depthwise_cl_impl.h"
#include "template_end.h"
#undef DW_CL_PIX_VECS
#undef DW_CL_TAP_VECS

#if FC_DW_HAVE_X86
#include <immintrin.h>

#include "transpose_avx512.h"

#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX avx2
#define FC_TEMPLATE_TARGET __attribute__((target("avx2,fma")))
#include "simd_avx2_f32.h"
#include "conv_depthwise_simd_impl.h"
#define DW_CL_PIX_VECS 8
#define DW_CL_TAP_VECS 12
#include "conv_depthwise_cl_impl.h"
#undef DW_CL_PIX_VECS
#undef DW_CL_TAP_VECS
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX avx2
#define FC_TEMPLATE_TARGET __attribute__((target("avx2,fma")))
#include "simd_avx2_f64.h"
#include "conv_depthwise_simd_impl.h"
#define DW_CL_PIX_VECS 8
#define DW_CL_TAP_VECS 12
#include "conv_depthwise_cl_impl.h"
#undef DW_CL_PIX_VECS
#undef DW_CL_TAP_VECS
#include "template_end.h"

#define REAL float
#define TYPE_SUFFIX f32
#define ISA_SUFFIX avx512
#define FC_TEMPLATE_TARGET __attribute__((target("avx512f")))
#include "simd_avx512_f32.h"
#include "conv_depthwise_simd_impl.h"
#define DW_CL_PIX_VECS 8
#define DW_CL_TAP_VECS 12
#define DW_CL_TRANSPOSE fc_transpose16_f32_avx512
#define DW_CL_ADD_SET1(v, b) _mm512_add_ps(v, _mm512_set1_ps(b))
#include "conv_depthwise_cl_impl.h"
#undef DW_CL_TRANSPOSE
#undef DW_CL_ADD_SET1
#undef DW_CL_PIX_VECS
#undef DW_CL_TAP_VECS
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define ISA_SUFFIX avx512
#define FC_TEMPLATE_TARGET __attribute__((target("avx512f")))
#include "simd_avx512_f64.h"
#include "conv_depthwise_simd_impl.h"
#define DW_CL_PIX_VECS 8
#define DW_CL_TAP_VECS 12
#define DW_CL_TRANSPOSE fc_transpose8_f64_avx512
#define DW_CL_ADD_SET1(v, b) _mm512_add_pd(v, _mm512_set1_pd(b))
#include "conv_depthwise_cl_impl.h"
#undef DW_CL_TRANSPOSE
#undef DW_CL_ADD_SET1
#undef DW_CL_PIX_VECS
#undef DW_CL_TAP_VECS
#include "template_end.h"
#endif

/* ---- the geometry every pass shares ---- */

typedef struct {
    int64_t mult;        /* filters per channel: K / C */
    int64_t taps;        /* R * S */
    int64_t phases;      /* stride_h * stride_w phase planes */
    int64_t Hph, Wph;    /* a phase plane's rows and columns; Wph is the wide row pitch */
    int64_t plane;       /* values from one phase plane to the next in a buffer */
    int64_t out_len;     /* the wide output, P * Wph, rounded up to whole blocks */
    int64_t img_len;     /* a phase plane, Hph * Wph, rounded up to whole blocks */
    int64_t front;       /* zeros before the wide dy, for the data gradient's offsets */
    int64_t dy_len;      /* values of the wide dy buffer, front and slack included */
    int64_t block;       /* DW_BLOCK of the element type */
} fc_dw_geom;

static int64_t dw_round_up(int64_t a, int64_t b)
{
    return (a + b - 1) / b * b;
}

/* 1 when pb is a depthwise problem these kernels run: groups == C >= 1, K a positive
 * multiple of C, filters of at least 1x1 that fit the padded image, positive strides and
 * dilations, non-negative padding, and the output size conv_output_size gives. */
int fc_depthwise_supports(const fc_conv_problem *pb)
{
    if (pb->C < 1 || pb->groups != pb->C || pb->K < pb->C || pb->K % pb->C != 0) {
        return 0;
    }
    if (pb->N < 0 || pb->H < 0 || pb->W < 0 || pb->R < 0 || pb->S < 0 || pb->stride_h < 1
        || pb->stride_w < 1 || pb->dil_h < 1 || pb->dil_w < 1 || pb->pad_top < 0
        || pb->pad_bottom < 0 || pb->pad_left < 0 || pb->pad_right < 0) {
        return 0;
    }
    const int64_t span_h = pb->H + pb->pad_top + pb->pad_bottom - (pb->R - 1) * pb->dil_h - 1;
    const int64_t span_w = pb->W + pb->pad_left + pb->pad_right - (pb->S - 1) * pb->dil_w - 1;
    return pb->R >= 1 && pb->S >= 1 && span_h >= 0 && span_w >= 0
           && pb->P == span_h / pb->stride_h + 1 && pb->Q == span_w / pb->stride_w + 1;
}

static void dw_geom_of(fc_dw_geom *g, const fc_conv_problem *pb, int64_t block)
{
    const int64_t Hp = pb->H + pb->pad_top + pb->pad_bottom;
    const int64_t Wp = pb->W + pb->pad_left + pb->pad_right;
    g->block = block;
    g->mult = pb->K / pb->C;
    g->taps = pb->R * pb->S;
    g->phases = pb->stride_h * pb->stride_w;
    g->Hph = fc_ceil_div(Hp, pb->stride_h);
    g->Wph = fc_ceil_div(Wp, pb->stride_w);
    const int64_t max_off = (pb->R - 1) * pb->dil_h / pb->stride_h * g->Wph
                            + (pb->S - 1) * pb->dil_w / pb->stride_w;
    g->out_len = dw_round_up(pb->P * g->Wph, block);
    g->img_len = dw_round_up(g->Hph * g->Wph, block);
    const int64_t reach = max_off + g->out_len;
    g->plane = dw_round_up(reach > g->img_len ? reach : g->img_len, block);
    g->front = dw_round_up(max_off, block);
    g->dy_len = g->front + (g->out_len > g->img_len ? g->out_len : g->img_len);
}

/* Bytes of one thread's workspace for a pass: the phase planes, the wide dy (or output)
 * and the per-tap tables. */
static int64_t dw_thread_bytes(const fc_dw_geom *g, int64_t itemsize)
{
    return (g->phases * g->plane + g->dy_len) * itemsize
           + g->mult * g->taps * (int64_t)(sizeof(void *) + (size_t)itemsize)
           + 4 * 64;
}

int64_t fc_depthwise_workspace_bytes(const fc_conv_problem *pb, int64_t itemsize)
{
    fc_dw_geom g;
    dw_geom_of(&g, pb, DW_BLOCK_BYTES / itemsize);
    return dw_thread_bytes(&g, itemsize);
}

/* The threads a pass of `items` independent items and `work` multiply-adds runs on. */
static int dw_team(int64_t items, int64_t work)
{
    int64_t team = fc_get_num_threads();
    const int64_t by_work = work / DW_MIN_WORK_PER_THREAD;
    if (team > by_work) {
        team = by_work;
    }
    if (team > items) {
        team = items;
    }
    return team < 1 ? 1 : (int)team;
}

/* Aligned to a cache line and zero-filled: the zeros are the phase planes' padding and
 * the wide buffers' non-pixels, which the passes never overwrite. */
static void *dw_calloc(int64_t bytes)
{
    const size_t size = (size_t)dw_round_up(bytes > 0 ? bytes : 64, 64);
    void *p = aligned_alloc(64, size);
    if (p != NULL) {
        memset(p, 0, size);
    }
    return p;
}

#define REAL float
#define TYPE_SUFFIX f32
#include "conv_depthwise_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#include "conv_depthwise_impl.h"
#include "template_end.h"
