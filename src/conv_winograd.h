/*
 * conv_winograd.h: Winograd minimal filtering F(m x m, 3 x 3) (Lavin & Gray, "Fast
 * Algorithms for Convolutional Neural Networks", CVPR 2016): what the driver
 * (conv_winograd_impl.h) and the per-ISA tile blocks (conv_winograd_block_impl.h) share.
 *
 * An m x m tile of outputs of a 3 x 3 correlation reads an ALPHA x ALPHA patch d of the
 * input, ALPHA = m + 2, and is
 *     Y = A^T [ (G g G^T) (.) (B^T d B) ] A
 * where (.) is the element-wise product. Summed over input channels, the element-wise
 * products at each of the ALPHA^2 positions xi form one GEMM per position:
 *     M[xi] (K x tiles) = U[xi] (K x C) * V[xi] (C x tiles),
 * U = G g G^T the transformed filters, V = B^T d B the transformed input tiles. The GEMMs
 * do ALPHA^2 / (9 m^2) of the direct convolution's multiplications: 1/2.25 for m = 2,
 * 1/4 for m = 4.
 *
 * m = 4: the GEMMs do 1/4 of the direct convolution's multiplications, and the larger
 * transforms' rounding error, about 10x the direct sum's, stays near 1e-5 of the output's
 * range in float32, far below what training notices (oneDNN and cuDNN also use
 * F(4x4, 3x3)). docs/PERFORMANCE.md ("Winograd") has the timings and errors behind it.
 */
#ifndef FC_CONV_WINOGRAD_H
#define FC_CONV_WINOGRAD_H

#include <stdint.h>

/* Outputs per tile side (m) and input patch side (ALPHA = m + 2). */
#define WG_M 4
#define WG_ALPHA (WG_M + 2)
#define WG_POSITIONS (WG_ALPHA * WG_ALPHA)

/* The three transforms along one axis, each in one place; the 2-D transforms apply them to
 * the rows, then the columns. o[] and u[] hold ALPHA values, y[] holds m. Points 0, +-1,
 * +-2, as Lavin & Gray's F(4x4, 3x3). */
/* o = B^T d */
#define WG_INPUT_1D(o, d)                                    \
    do {                                                     \
        (o)[0] = 4 * (d)[0] - 5 * (d)[2] + (d)[4];           \
        (o)[1] = ((d)[3] + (d)[4]) - 4 * ((d)[1] + (d)[2]);  \
        (o)[2] = ((d)[4] - (d)[3]) + 4 * ((d)[1] - (d)[2]);  \
        (o)[3] = ((d)[4] - (d)[2]) + 2 * ((d)[3] - (d)[1]);  \
        (o)[4] = ((d)[4] - (d)[2]) - 2 * ((d)[3] - (d)[1]);  \
        (o)[5] = 4 * (d)[1] - 5 * (d)[3] + (d)[5];           \
    } while (0)
/* u = G g (in double: the filters are transformed once per call; products with the
 * reciprocals, as divisions cost ~10x more and would dominate the call for 256 x 256
 * filters) */
#define WG_FILTER_1D(u, g)                                                     \
    do {                                                                       \
        (u)[0] = (g)[0] * 0.25;                                                \
        (u)[1] = ((g)[0] + (g)[1] + (g)[2]) * (-1.0 / 6);                      \
        (u)[2] = ((g)[0] - (g)[1] + (g)[2]) * (-1.0 / 6);                      \
        (u)[3] = (g)[0] * (1.0 / 24) + (g)[1] * (1.0 / 12) + (g)[2] * (1.0 / 6); \
        (u)[4] = (g)[0] * (1.0 / 24) - (g)[1] * (1.0 / 12) + (g)[2] * (1.0 / 6); \
        (u)[5] = (g)[2];                                                       \
    } while (0)
/* y = A^T m */
#define WG_OUTPUT_1D(y, m)                                                \
    do {                                                                  \
        (y)[0] = (m)[0] + ((m)[1] + (m)[2]) + ((m)[3] + (m)[4]);          \
        (y)[1] = ((m)[1] - (m)[2]) + 2 * ((m)[3] - (m)[4]);               \
        (y)[2] = ((m)[1] + (m)[2]) + 4 * ((m)[3] + (m)[4]);               \
        (y)[3] = ((m)[1] - (m)[2]) + 8 * ((m)[3] - (m)[4]) + (m)[5];      \
    } while (0)

/* The weight gradient's two transforms (conv_winograd_weight.c), the transposes of the
 * output and filter transforms above. */
/* v = A f: f[] holds m values (a column or row of an output-gradient tile), v[] ALPHA */
#define WG_GRAD_1D(v, f)                                         \
    do {                                                         \
        (v)[0] = (f)[0];                                         \
        (v)[1] = ((f)[0] + (f)[2]) + ((f)[1] + (f)[3]);          \
        (v)[2] = ((f)[0] + (f)[2]) - ((f)[1] + (f)[3]);          \
        (v)[3] = ((f)[0] + 4 * (f)[2]) + 2 * ((f)[1] + 4 * (f)[3]); \
        (v)[4] = ((f)[0] + 4 * (f)[2]) - 2 * ((f)[1] + 4 * (f)[3]); \
        (v)[5] = (f)[3];                                         \
    } while (0)
/* g = G^T m: m[] holds ALPHA sums, g[] 3 (in double, as WG_FILTER_1D) */
#define WG_FILTER_GRAD_1D(g, m)                                                     \
    do {                                                                            \
        (g)[0] = (m)[0] * 0.25 - ((m)[1] + (m)[2]) * (1.0 / 6)                      \
                 + ((m)[3] + (m)[4]) * (1.0 / 24);                                  \
        (g)[1] = ((m)[2] - (m)[1]) * (1.0 / 6) + ((m)[3] - (m)[4]) * (1.0 / 12);    \
        (g)[2] = (((m)[3] + (m)[4]) - ((m)[1] + (m)[2])) * (1.0 / 6) + (m)[5];      \
    } while (0)

/* One stride-1 3 x 3 correlation as the tile blocks see it: the forward pass, or the input
 * gradient (dy correlated with the filters rotated 180 degrees, K and C swapped). */
typedef struct {
    int64_t N, C, H, W;        /* input: x, or dy for the input gradient */
    int64_t K, P, Q;           /* output: channels, height, width */
    int64_t pad_top, pad_left; /* output pixel (p, q) reads input rows p - pad_top + r;
                                * negative for an input gradient of a padding above 2 */
    int64_t tiles_h, tiles_w;  /* ceil(P / m), ceil(Q / m) */
    int64_t tiles;             /* N * tiles_h * tiles_w, numbered (n, th, tw) row-major */
    int64_t mr, nr;            /* the GEMM micro-kernel's tile */
    int64_t kpanels;           /* ceil(K / mr): U holds K rounded up to whole panels */
    int64_t block;             /* tiles per work item, a multiple of nr */
    int64_t kc;                /* input channels per GEMM pass */
    int64_t kb;                /* output channels per pass, a multiple of mr */
    int64_t u_position;        /* elements from one position xi of U to the next */
    int relu;                  /* the forward's fused ReLU (fc_conv_problem.relu) */
} wg_plan;

/* Elements added to the stride between the positions xi of U, V and M. Each transform
 * reads or writes ALPHA^2 streams, one per position; with a stride that is a multiple of
 * 4 KiB they all fall into one set of the L1 cache and evict each other on every access
 * (for 256 x 256 filters the filter transform would then take 5x all the GEMMs' time). */
#define WG_STRIDE_PAD 32

/* The packed transformed filters: U[xi][panel][c][i] = (G g G^T)[xi] of filter
 * panel * mr + i (zero past K) and input channel c: each (xi, panel) is the kc x mr A panel
 * of gemm_kernels.h over all C channels; positions u_position elements apart. */
static inline int64_t wg_filter_index(const wg_plan *pl, int64_t xi, int64_t k, int64_t c)
{
    return xi * pl->u_position + (k / pl->mr * pl->C + c) * pl->mr + k % pl->mr;
}

/* Elements of one thread's workspace: V (ALPHA^2 x kc x block), M (ALPHA^2 x kb x block),
 * their stride pads and two ALPHA^2 x nr scratch patches. */
static inline int64_t wg_workspace(const wg_plan *pl)
{
    return WG_POSITIONS * ((pl->kc + pl->kb) * pl->block + 2 * WG_STRIDE_PAD + 2 * pl->nr);
}

/* The filter transform: the filter panel kp of U (wg_filter_index layout): G g G^T for
 * output channels kp * mr .. + mr (zero past K) and every input channel c, where g[r][s] is
 * w[k*s_out + c*s_in + r*3 + s], or w[... + (2 - r)*3 + (2 - s)] if flip (the filters
 * rotated 180 degrees). Computed in double, rounded once. */
typedef void wg_filters_fn_f32(float *u, const float *w, int64_t s_out, int64_t s_in, int flip,
                               const wg_plan *pl, int64_t kp);
typedef void wg_filters_fn_f64(double *u, const double *w, int64_t s_out, int64_t s_in,
                               int flip, const wg_plan *pl, int64_t kp);
/* One block of tiles: y (N, K, P, Q) for the tiles [t0, t0 + block) of the plan (fewer in
 * the last block): transform the input tiles, run the ALPHA^2 GEMMs, transform the outputs
 * back and add bias (or NULL). work: wg_workspace(pl) elements, 64-byte aligned. */
typedef void wg_block_fn_f32(float *y, const float *x, const float *u, const float *bias,
                             const wg_plan *pl, int64_t t0, float *work);
typedef void wg_block_fn_f64(double *y, const double *x, const double *u, const double *bias,
                             const wg_plan *pl, int64_t t0, double *work);

/* Both, for each instruction set (conv_winograd_block_impl.h, instantiated by
 * conv_winograd.c, conv_winograd_avx2.c and conv_winograd_avx512.c). */
wg_filters_fn_f32 wg_filters_generic_f32, wg_filters_avx2_f32, wg_filters_avx512_f32;
wg_filters_fn_f64 wg_filters_generic_f64, wg_filters_avx2_f64, wg_filters_avx512_f64;
wg_block_fn_f32 wg_block_generic_f32, wg_block_avx2_f32, wg_block_avx512_f32;
wg_block_fn_f64 wg_block_generic_f64, wg_block_avx2_f64, wg_block_avx512_f64;

#endif /* FC_CONV_WINOGRAD_H */
