/*
 * fastconv.h: the problem descriptors, status codes and prototypes of every C kernel.
 *
 * Conventions:
 *   - Arrays are dense, C-contiguous, NCHW; weights are (K, C/groups, R, S).
 *   - Arguments go outputs first, then inputs, then the problem descriptor.
 *   - Every size and index is int64_t / ptrdiff_t so tensors past 2^31 elements never wrap.
 *   - C never prints or exits: every kernel that can fail returns an fc_status.
 *   - Backward kernels overwrite the gradient they produce (they are not accumulating).
 *   - Each function exists for float (_f32) and double (_f64).
 */
#ifndef FASTCONV_H
#define FASTCONV_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    FC_OK = 0,
    FC_ERR_NOMEM = 1,   /* a workspace could not be allocated */
    FC_ERR_INVALID = 2, /* the problem descriptor is inconsistent (a bug in the caller) */
    FC_ERR_TOO_LARGE = 3 /* a workspace would exceed its documented limit */
} fc_status;

/* im2col workspace: each thread builds the columns of a band of output rows, at most 4 MiB
 * or one output row (Cg*R*S x Q elements) if that is larger. One row above this limit is
 * refused with FC_ERR_TOO_LARGE instead of allocated; fastconv's algorithm="auto" then
 * runs the direct kernels, whose band buffers are ~256 KiB per thread (at least one output
 * row's inputs; conv_direct_band.h, FC_DIRECT_BAND_BYTES). So im2col never holds more than
 * 64 MiB of columns per thread, plus (threads - 1) private copies of dw in the weight
 * gradient and the GEMM's packing buffers (at most 6.4 MiB per thread). */
#define FC_IM2COL_MAX_ROW_BYTES ((int64_t)64 << 20)

/* One 2-D convolution problem, filled in one place (fastconv/_ext.pyx) from the checked
 * Python arguments. P and Q come from fastconv.sizing.conv_output_size. */
typedef struct {
    int64_t N, C, H, W;           /* input: batch, channels, height, width */
    int64_t K, R, S;              /* filters: count, height, width (each has C/groups channels) */
    int64_t stride_h, stride_w;
    int64_t pad_top, pad_bottom, pad_left, pad_right;
    int64_t dil_h, dil_w;
    int64_t groups;
    int64_t P, Q;                 /* output height, width */
    int relu;                     /* forward only: each output y becomes fc_relu(y), after
                                   * the bias, as the kernel writes it (conv + bias + ReLU
                                   * in one pass); the gradient passes ignore it */
    int direct_forward;           /* the direct passes' variants: 0 for the plan's choice,
                                   * else 1 + an fc_direct_forward_variant, ... */
    int direct_data;              /* ... 1 + an fc_direct_data_variant (scatter only where
                                   * it fits, fc_direct_plan.scatter_fits) ... */
    int direct_weight;            /* ... 1 + an fc_direct_weight_variant (autotuning times
                                   * each) */
} fc_conv_problem;

/* The three passes of a convolution, one signature each, shared by every algorithm's
 * kernels (direct, im2col + GEMM, Winograd) and the dispatchers of conv.c:
 *   forward          y (N, K, P, Q) = x (N, C, H, W) correlated with w (K, C/groups, R, S),
 *                    plus bias (K), or no bias for NULL
 *   backward_data    dx (N, C, H, W) = the transposed convolution of dy (N, K, P, Q) with w
 *   backward_weight  dw (K, C/groups, R, S) = sum over n, p, q of dy times the x pixel
 *                    each tap reads
 * The gradient kernels overwrite what they produce. */
typedef fc_status fc_conv_forward_fn_f32(float *y, const float *x, const float *w,
                                         const float *bias, const fc_conv_problem *pb);
typedef fc_status fc_conv_forward_fn_f64(double *y, const double *x, const double *w,
                                         const double *bias, const fc_conv_problem *pb);
typedef fc_status fc_conv_data_fn_f32(float *dx, const float *dy, const float *w,
                                      const fc_conv_problem *pb);
typedef fc_status fc_conv_data_fn_f64(double *dx, const double *dy, const double *w,
                                      const fc_conv_problem *pb);
typedef fc_status fc_conv_weight_fn_f32(float *dw, const float *dy, const float *x,
                                        const fc_conv_problem *pb);
typedef fc_status fc_conv_weight_fn_f64(double *dw, const double *dy, const double *x,
                                        const fc_conv_problem *pb);

/* One 2-D pooling problem (max, average or adaptive average), filled in one place
 * (fastconv/_pool.pxi) from the checked Python arguments. P and Q come from
 * fastconv.sizing.conv_output_size (adaptive pooling: the requested output size). */
typedef struct {
    int64_t N, C, H, W;           /* input; N*C planes are pooled independently */
    int64_t R, S;                 /* window height, width (unused by adaptive pooling) */
    int64_t stride_h, stride_w;
    int64_t pad_h, pad_w;         /* symmetric padding, at most half the window */
    int64_t dil_h, dil_w;         /* max pooling only; 1 for average pooling */
    int64_t P, Q;                 /* output height, width */
    int count_include_pad;        /* average pooling: divide by the padded window size */
    int64_t divisor_override;     /* average pooling: nonzero replaces the divisor */
} fc_pool_problem;

/* ---- runtime configuration (config.c) ---- */
int fc_have_openmp(void);
int fc_get_num_threads(void);
/* Process-wide: applied to each calling thread by fc_sync_num_threads (config.c says why). */
void fc_set_num_threads(int n);
/* Call before every kernel, with the GIL held: gives this thread the set_num_threads count. */
void fc_sync_num_threads(void);
/* The calling thread alone runs its kernels on n threads, until it or set_num_threads
 * changes that (fastconv.dask's tasks share the cores of their worker). */
void fc_set_thread_num_threads(int n);
/* 1 once a kernel ran with more than one thread allowed (so a forked child must not). */
int fc_openmp_started(void);
/* SIMD levels of the micro-kernels. AVX-512 kernels exist for the direct convolution, the
 * GEMM (and so the im2col convolution), the Winograd convolution and the Winograd weight
 * gradient's transforms; at that level pooling and the 2-D filters use their AVX2+FMA
 * versions. */
enum { FC_SIMD_GENERIC = 0, FC_SIMD_AVX2 = 1, FC_SIMD_AVX512 = 2 };
/* 1 when the AVX2+FMA micro-kernels are in use (level AVX2 or AVX-512), 0 for the portable
 * C path. */
int fc_simd_avx2(void);
/* 1 when the AVX-512 micro-kernels are in use. */
int fc_simd_avx512(void);
/* Use the highest level <= `level` the CPU has: FC_SIMD_GENERIC forces the portable path. */
void fc_simd_select(int level);
const char *fc_simd_name(void);
int fc_cpu_has_avx2_fma(void);
int fc_cpu_has_avx512(void);

/* ---- GEMM (gemm.c): C = A B + beta C, general strides ----
 * A is M x K with element (i, p) at A[i*rsa + p*csa]; B is K x N with (p, j) at B[p*rsb + j*csb];
 * C is M x N, row-major with leading dimension ldc. beta is 0 (C is overwritten, never read,
 * so it may hold NaN) or 1 (accumulate). Transposes are just swapped strides.
 * nthreads > 1 parallelises inside the call; call it with 1 from inside a parallel region. */
fc_status fc_gemm_f32(int64_t M, int64_t N, int64_t K,
                      const float *A, int64_t rsa, int64_t csa,
                      const float *B, int64_t rsb, int64_t csb,
                      float beta, float *C, int64_t ldc, int nthreads);
fc_status fc_gemm_f64(int64_t M, int64_t N, int64_t K,
                      const double *A, int64_t rsa, int64_t csa,
                      const double *B, int64_t rsb, int64_t csb,
                      double beta, double *C, int64_t ldc, int nthreads);

/* ---- direct convolution (conv_direct.c) ----
 * x (N, C, H, W); w (K, C/groups, R, S); bias (K) or NULL; y (N, K, P, Q).
 * Each call makes the plan below (one function decides every variant) and runs it. */

/* The forward: the band's pixel numbers vectorised (tile kernels), or the filters (tilek,
 * for groups of at most two vectors of filters). */
typedef enum {
    FC_DIRECT_FORWARD_BY_PIXELS = 0,
    FC_DIRECT_FORWARD_BY_FILTERS = 1
} fc_direct_forward_variant;
/* The data gradient: the forward's adjoint over a whole-image buffer (scatter),
 * stride_h x stride_w correlations of dy with flipped sub-filters (gather), or plain loops
 * over the definition's products (loops: for weights holding an inf or NaN). */
typedef enum {
    FC_DIRECT_DATA_SCATTER = 0,
    FC_DIRECT_DATA_GATHER = 1,
    FC_DIRECT_DATA_LOOPS = 2
} fc_direct_data_variant;
/* The weight gradient: the band's pixels vectorised (wgrad), or the filters (wgradk). */
typedef enum {
    FC_DIRECT_WEIGHT_BY_PIXELS = 0,
    FC_DIRECT_WEIGHT_BY_FILTERS = 1
} fc_direct_weight_variant;

/* What the direct convolution runs for one problem, thread count, element type and SIMD
 * level (fc_simd_select). The gather form's stride phases are forward-style correlations
 * of their own (dy as input, strided output columns): each gets its bands and forward
 * variant from the same rules when it runs. */
typedef struct {
    fc_direct_forward_variant forward;
    fc_direct_data_variant backward_data;   /* for finite weights: scatter or gather; weights
                                             * holding an inf or NaN run loops */
    fc_direct_weight_variant backward_weight;
    int64_t band_rows;                /* output rows per band (forward, weight gradient) */
    int64_t bands;                    /* bands per (image, group) */
    int forward_reads_x_in_place;     /* the forward by filters reads x itself, no band copy */
    int64_t filter_parts;             /* the forward by filters cuts its filters into this
                                       * many parts, shared out to the threads (1: none) */
    int weight_reads_x_in_place;      /* the weight gradient by filters reads x itself */
    int weight_rows_flat;             /* by pixels: a band whose values are all finite is
                                       * summed as one run of pixels (rows < 128 wide) */
    int64_t data_gather_phases;       /* correlations the gather form runs: stride_h*stride_w */
    int scatter_fits;                 /* the scatter form can run: its whole-image buffers
                                       * fit FC_DIRECT_IMAGE_BYTES, the image holds a
                                       * strip */
    int threads;                      /* the team each pass runs on: the threads given, fewer
                                       * when the problem is too small to share */
} fc_direct_plan;

/* The plan of pb on nthreads threads (>= 1) with the kernels of the current SIMD level.
 * FC_ERR_INVALID for nthreads < 1 or a problem with an empty dimension. */
fc_status fc_conv_direct_plan_f32(fc_direct_plan *plan, const fc_conv_problem *pb, int nthreads);
fc_status fc_conv_direct_plan_f64(fc_direct_plan *plan, const fc_conv_problem *pb, int nthreads);

/* Calls of each variant since the library was loaded (both element types; one per kernel
 * call, counted atomically). */
int64_t fc_conv_direct_forward_runs(fc_direct_forward_variant variant);
int64_t fc_conv_direct_data_runs(fc_direct_data_variant variant);
int64_t fc_conv_direct_weight_runs(fc_direct_weight_variant variant);

/* The kernels of the direct convolution (conv_direct.c) and of im2col + GEMM
 * (conv_im2col.c), by pass. The direct weight gradient is bitwise reproducible at a given
 * thread count. */
fc_conv_forward_fn_f32 fc_conv_direct_forward_f32, fc_conv_im2col_forward_f32;
fc_conv_forward_fn_f64 fc_conv_direct_forward_f64, fc_conv_im2col_forward_f64;
fc_conv_data_fn_f32 fc_conv_direct_backward_data_f32, fc_conv_im2col_backward_data_f32;
fc_conv_data_fn_f64 fc_conv_direct_backward_data_f64, fc_conv_im2col_backward_data_f64;
fc_conv_weight_fn_f32 fc_conv_direct_backward_weight_f32, fc_conv_im2col_backward_weight_f32;
fc_conv_weight_fn_f64 fc_conv_direct_backward_weight_f64, fc_conv_im2col_backward_weight_f64;
/* db (K) = sum over n, p, q of dy (every algorithm's bias gradient). */
fc_status fc_conv_backward_bias_f32(float *db, const float *dy, const fc_conv_problem *pb);
fc_status fc_conv_backward_bias_f64(double *db, const double *dy, const fc_conv_problem *pb);

/* ---- Winograd F(4x4, 3x3) weight gradient (conv_winograd_weight.c) ----
 * For 3x3 filters, stride 1, dilation 1, one group, any padding (fc_winograd_supports,
 * below); other problems return FC_ERR_INVALID. Workspace per thread: the transformed
 * gradient's sums, 36*C*K elements (4x dw; above FC_WINOGRAD_MAX_SUMS_BYTES the kernels
 * refuse with FC_ERR_TOO_LARGE), one chunk's transformed tiles, 36*64*(C + K) elements
 * (more only if one row of 4x4 output tiles is wider than 64 tiles), their source rows,
 * about 1/4 of that, and the GEMM's packing buffers. */
#define FC_WINOGRAD_MAX_SUMS_BYTES ((int64_t)64 << 20)
fc_conv_weight_fn_f32 fc_conv_winograd_backward_weight_f32;
fc_conv_weight_fn_f64 fc_conv_winograd_backward_weight_f64;

/* ---- Winograd F(4x4, 3x3) convolution (conv_winograd.c) ----
 * Only 3 x 3 filters, stride 1, dilation 1, groups 1, any padding (fc_winograd_supports;
 * other problems return FC_ERR_INVALID); the same arrays as the direct convolution. The
 * forward pass and the input gradient (a correlation of dy with the filters rotated 180
 * degrees) share one code path.
 * Memory: the transformed filters, 36 x ceil(K / mr) * mr x C elements (about 4x the
 * weights; mr = 6, or 12 with AVX-512), plus per thread one block's transformed inputs and
 * GEMM outputs, about 1 MiB and at most 4 MiB (conv_winograd.c, WG_BLOCK_BYTES). Each
 * thread keeps these buffers for its next call (the calling thread the filters, when they
 * take at most 16 MiB); they are freed when the thread exits. */
int fc_winograd_supports(const fc_conv_problem *pb);
/* Bytes the threads keep between Winograd calls (freed as each thread exits). */
int64_t fc_winograd_kept_bytes(void);
fc_conv_forward_fn_f32 fc_conv_winograd_forward_f32;
fc_conv_forward_fn_f64 fc_conv_winograd_forward_f64;
fc_conv_data_fn_f32 fc_conv_winograd_backward_data_f32;
fc_conv_data_fn_f64 fc_conv_winograd_backward_data_f64;

/* ---- convolution by a named algorithm (conv.c) ----
 * One entry point per pass, running the kernel of the algorithm given: the same arrays
 * and results as that kernel (above), whose own checks apply (Winograd: FC_ERR_INVALID
 * outside its geometry; im2col and the Winograd weight gradient: FC_ERR_TOO_LARGE above
 * their workspace limits). An algorithm outside fc_conv_algorithm, or a problem with an
 * empty dimension, returns FC_ERR_INVALID.
 * fastconv/plan.py chooses the algorithm of each pass. */
typedef enum {
    FC_CONV_DIRECT = 0,   /* conv_direct.c */
    FC_CONV_IM2COL = 1,   /* conv_im2col.c */
    FC_CONV_WINOGRAD = 2, /* F(4x4, 3x3) forward, data and weight gradients */
    FC_CONV_DEPTHWISE = 3 /* conv_depthwise.c */
} fc_conv_algorithm;
fc_status fc_conv_forward_f32(float *y, const float *x, const float *w, const float *bias,
                              const fc_conv_problem *pb, fc_conv_algorithm algorithm);
fc_status fc_conv_forward_f64(double *y, const double *x, const double *w, const double *bias,
                              const fc_conv_problem *pb, fc_conv_algorithm algorithm);
fc_status fc_conv_backward_data_f32(float *dx, const float *dy, const float *w,
                                    const fc_conv_problem *pb, fc_conv_algorithm algorithm);
fc_status fc_conv_backward_data_f64(double *dx, const double *dy, const double *w,
                                    const fc_conv_problem *pb, fc_conv_algorithm algorithm);
fc_status fc_conv_backward_weight_f32(float *dw, const float *dy, const float *x,
                                      const fc_conv_problem *pb, fc_conv_algorithm algorithm);
fc_status fc_conv_backward_weight_f64(double *dw, const double *dy, const double *x,
                                      const fc_conv_problem *pb, fc_conv_algorithm algorithm);

/* ---- single-plane 2-D filters (filter2d.c) and Canny's stages (canny.c) ---- */

/* How a filter reads past the image border (names as scipy.ndimage; OpenCV in brackets):
 *   constant   0 0 0 | a b c d | 0 0 0   [BORDER_CONSTANT]
 *   reflect    c b a | a b c d | d c b   [BORDER_REFLECT]
 *   replicate  a a a | a b c d | d d d   [BORDER_REPLICATE]
 *   mirror     d c b | a b c d | c b a   [BORDER_REFLECT_101]
 *   wrap       b c d | a b c d | a b c   [BORDER_WRAP] */
typedef enum {
    FC_BORDER_CONSTANT = 0,
    FC_BORDER_REFLECT = 1,
    FC_BORDER_REPLICATE = 2,
    FC_BORDER_MIRROR = 3,
    FC_BORDER_WRAP = 4
} fc_border;

/* N independent planes of H x W, each correlated with one R x S kernel anchored at
 * (R / 2, S / 2). The output is the window of out_H x out_W pixels at row top, column left
 * of the same-size result: all of it when top = left = 0, out_H = H and out_W = W. */
typedef struct {
    int64_t N, H, W;
    int64_t R, S;
    fc_border border;
    int64_t top, left, out_H, out_W;
} fc_filter_problem;

/* The planes a filter reads, as rows of segments: row i of plane n is `pieces` segments
 * side by side, segment j being widths[j] elements from rows[i * pieces + j] + n *
 * plane_steps[i * pieces + j] bytes. So a plane may be one array or the tiles of an image
 * (a chunk and its neighbours' edges), read in place. The elements are uint8 when u8 is
 * not 0, else of the output's type. */
typedef struct {
    const char *const *rows;        /* H x pieces: each segment's start in plane 0 */
    const int64_t *plane_steps;     /* H x pieces: bytes from a segment to the next plane's */
    const int64_t *widths;          /* pieces: elements per segment, summing to W */
    int64_t pieces;
    int u8;
} fc_filter_input;

/* y (N, out_H, out_W)[n, i, j] = sum over r, s of k (R, S)[r, s] * x[n, top + i + r - R/2,
 * left + j + s - S/2], pixels outside the planes read as the border mode says. A uint8
 * input is converted row by row as it is read (no float copy of the image is made). */
fc_status fc_filter2d_f32(float *y, const fc_filter_input *x, const float *k,
                          const fc_filter_problem *pb);
fc_status fc_filter2d_f64(double *y, const fc_filter_input *x, const double *k,
                          const fc_filter_problem *pb);
/* y = sqrt(gx^2 + gy^2) where gx and gy are x filtered as above with kx and ky (both
 * R x S): a gradient magnitude in one pass. */
fc_status fc_filter2d_magnitude_f32(float *y, const fc_filter_input *x, const float *kx,
                                    const float *ky, const fc_filter_problem *pb);
fc_status fc_filter2d_magnitude_f64(double *y, const fc_filter_input *x, const double *kx,
                                    const double *ky, const fc_filter_problem *pb);

/* Canny's non-maximum suppression and thresholds on N planes of H x W: classes[i] is
 * 2 (strong: mag >= high), 1 (weak: low <= mag < high, mag > 0) or 0 (not an edge, or not
 * a local maximum of mag along the gradient (gx, gy), or on the outermost pixel ring). */
fc_status fc_canny_nms_f32(uint8_t *classes, const float *gx, const float *gy, const float *mag,
                           int64_t N, int64_t H, int64_t W, double low, double high);
fc_status fc_canny_nms_f64(uint8_t *classes, const double *gx, const double *gy,
                           const double *mag, int64_t N, int64_t H, int64_t W,
                           double low, double high);
/* Hysteresis: edges (N, H, W) is 1 for strong pixels and for weak pixels 8-connected to a
 * strong one through weak pixels, 0 elsewhere. */
fc_status fc_canny_hysteresis(uint8_t *edges, const uint8_t *classes, int64_t N, int64_t H,
                              int64_t W);
/* The 8-connected regions of nonzero classes pixels, each plane on its own: labels
 * (N, H, W) numbers them 1, 2, ... in the order their first pixel comes in memory, going on
 * from plane to plane, and is 0 elsewhere; *count is the number of regions. N * H * W must
 * fit an int32 (FC_ERR_INVALID otherwise). */
fc_status fc_label_regions(int32_t *labels, const uint8_t *classes, int64_t N, int64_t H,
                           int64_t W, int64_t *count);
/* out[k] = the index inside [0, n) that position start + k reads under border mode, or -1
 * for a zero of the constant mode (as the filters read past the border), k < count. */
void fc_border_indices(int64_t *out, int64_t start, int64_t count, int64_t n, fc_border mode);

/* ---- pooling (pool.c) ----
 * x, dx (N, C, H, W); y, dy (N, C, P, Q). Where each window's maximum is, two ways, each
 * (N, C, P, Q) and optional (NULL) in the forward pass:
 *   argmax  uint8, the tap r*S + s inside the window (the compact form; needs R*S <= 256);
 *   indices int64, the flat position h*W + w in the input plane, as PyTorch's return_indices.
 * The max backward recomputes the maxima from x, or reads argmax (x unused), or sends dy to
 * indices (entries outside [0, H*W), from windows wholly in the padding, are skipped). */
fc_status fc_max_pool_forward_f32(float *y, uint8_t *argmax, int64_t *indices, const float *x,
                                  const fc_pool_problem *pb);
fc_status fc_max_pool_forward_f64(double *y, uint8_t *argmax, int64_t *indices,
                                  const double *x, const fc_pool_problem *pb);
fc_status fc_max_pool_backward_f32(float *dx, const float *dy, const float *x,
                                   const fc_pool_problem *pb);
fc_status fc_max_pool_backward_f64(double *dx, const double *dy, const double *x,
                                   const fc_pool_problem *pb);
fc_status fc_max_pool_backward_argmax_f32(float *dx, const float *dy, const uint8_t *argmax,
                                          const fc_pool_problem *pb);
fc_status fc_max_pool_backward_argmax_f64(double *dx, const double *dy, const uint8_t *argmax,
                                          const fc_pool_problem *pb);
fc_status fc_max_pool_backward_indices_f32(float *dx, const float *dy, const int64_t *indices,
                                           const fc_pool_problem *pb);
fc_status fc_max_pool_backward_indices_f64(double *dx, const double *dy,
                                           const int64_t *indices, const fc_pool_problem *pb);
fc_status fc_avg_pool_forward_f32(float *y, const float *x, const fc_pool_problem *pb);
fc_status fc_avg_pool_forward_f64(double *y, const double *x, const fc_pool_problem *pb);
fc_status fc_avg_pool_backward_f32(float *dx, const float *dy, const fc_pool_problem *pb);
fc_status fc_avg_pool_backward_f64(double *dx, const double *dy, const fc_pool_problem *pb);
fc_status fc_adaptive_avg_pool_forward_f32(float *y, const float *x, const fc_pool_problem *pb);
fc_status fc_adaptive_avg_pool_forward_f64(double *y, const double *x,
                                           const fc_pool_problem *pb);
fc_status fc_adaptive_avg_pool_backward_f32(float *dx, const float *dy,
                                            const fc_pool_problem *pb);
fc_status fc_adaptive_avg_pool_backward_f64(double *dx, const double *dy,
                                            const fc_pool_problem *pb);

/* ---- ReLU (activation.c): y = max(x, 0), in place when y is x; dx may not overlap dy or
 * y. n elements each. ---- */
/* Below this many elements an element-wise loop runs on one thread: waking the others
 * costs more than the loop. */
#define FC_ELEMENTWISE_PARALLEL_MIN ((int64_t)1 << 16)
void fc_relu_forward_f32(float *y, const float *x, int64_t n);
void fc_relu_forward_f64(double *y, const double *x, int64_t n);
void fc_relu_backward_f32(float *dx, const float *dy, const float *y, int64_t n);
void fc_relu_backward_f64(double *dx, const double *dy, const double *y, int64_t n);
/* y <- a + b, then max(., 0) if relu: a residual block's sum (y may be a or b). */
void fc_add_forward_f32(float *y, const float *a, const float *b, int64_t n, int relu);
void fc_add_forward_f64(double *y, const double *a, const double *b, int64_t n, int relu);

/* ---- Adam (optim.c): one parameter's update; the scalars as the NumPy expression rounds
 * them to T: correction_k = 1 - beta_k ** step. No array may overlap another. ---- */
typedef struct {
    float beta1, one_minus_beta1, beta2, one_minus_beta2, correction1, correction2, lr, eps;
} fc_adam_scalars_f32;
typedef struct {
    double beta1, one_minus_beta1, beta2, one_minus_beta2, correction1, correction2, lr, eps;
} fc_adam_scalars_f64;
void fc_adam_update_f32(float *param, float *m, float *v, const float *grad, int64_t n,
                        const fc_adam_scalars_f32 *s);
void fc_adam_update_f64(double *param, double *m, double *v, const double *grad, int64_t n,
                        const fc_adam_scalars_f64 *s);

/* ---- SGD (optim.c): one parameter's update; velocity NULL without momentum, first: the
 * velocity's first step (v <- g). No array may overlap another. ---- */
void fc_sgd_update_f32(float *param, float *velocity, const float *grad, int64_t n,
                       float momentum, float lr, int nesterov, int first);
void fc_sgd_update_f64(double *param, double *velocity, const double *grad, int64_t n,
                       double momentum, double lr, int nesterov, int first);

/* ---- scan (scan.c) ---- */
/* *result = the largest |x[i]| of n elements (0 when n = 0): +inf when an element is
 * infinite, NaN when one is NaN. FC_ERR_INVALID for n < 0. */
fc_status fc_max_abs_f32(float *result, const float *x, int64_t n);
fc_status fc_max_abs_f64(double *result, const double *x, int64_t n);
/* 1 when max_a x max_b x scale + max_c <= limit, 0 otherwise (also for NaN): the test by
 * which a pass's values let it run an algorithm that sums in another order than direct
 * (fastconv.plan.plan_for_values says why; eval-mode programs run it here). */
int fc_values_fit(double max_a, double max_b, double max_c, double scale, double limit);

/* ---- batch normalisation (batchnorm.c): x, y, dy, dx (N, C, HW) C-contiguous, channel c
 * the N planes of HW values at (n * C + c) * HW; per-channel arrays of C values. ---- */
typedef struct {
    int64_t N, C, HW;
    double eps;        /* added to the variance before the square root; > 0 */
    double momentum;   /* weight of the batch's statistics in the running ones */
    int relu;          /* a ReLU follows, in the same passes: the forward writes max(y, 0)
                        * (NaN stays NaN), the backward takes dy only where that output
                        * y > 0 (0 elsewhere), as the two layers would */
} fc_batch_norm_problem;
/* Training: y from the batch's mean and biased variance; mean and invstd (float64) kept for
 * the backward; running_mean/var (NULL: none) <- momentum * batch + (1 - momentum) * running,
 * with the unbiased variance (then N * HW must not be 1). weight, bias NULL: 1 and 0. An
 * empty batch leaves the running statistics alone. */
fc_status fc_batch_norm_forward_train_f32(float *y, double *mean, double *invstd,
                                         float *running_mean, float *running_var,
                                         const float *x, const float *weight,
                                         const float *bias, const fc_batch_norm_problem *pb);
fc_status fc_batch_norm_forward_train_f64(double *y, double *mean, double *invstd,
                                         double *running_mean, double *running_var,
                                         const double *x, const double *weight,
                                         const double *bias, const fc_batch_norm_problem *pb);
/* Inference: y from given statistics (the running ones); pb->momentum is not read. */
fc_status fc_batch_norm_forward_eval_f32(float *y, const float *x, const float *mean,
                                        const float *var, const float *weight,
                                        const float *bias, const fc_batch_norm_problem *pb);
fc_status fc_batch_norm_forward_eval_f64(double *y, const double *x, const double *mean,
                                        const double *var, const double *weight,
                                        const double *bias, const fc_batch_norm_problem *pb);
/* Backward of the training forward, from its mean and invstd: dx (NULL: not needed),
 * dweight and dbias (NULL: not needed), overwritten. y is that forward's output, read
 * where pb->relu (else it may be NULL). No output may overlap an input. */
fc_status fc_batch_norm_backward_f32(float *dx, float *dweight, float *dbias, const float *dy,
                                    const float *x, const float *y, const double *mean,
                                    const double *invstd, const float *weight,
                                    const fc_batch_norm_problem *pb);
fc_status fc_batch_norm_backward_f64(double *dx, double *dweight, double *dbias,
                                    const double *dy, const double *x, const double *y,
                                    const double *mean, const double *invstd,
                                    const double *weight, const fc_batch_norm_problem *pb);

/* ---- depthwise convolution (conv_depthwise.c) ----
 * groups == C and K = C x multiplier filters of one channel each (filter k reads channel
 * k / multiplier), any filter size, stride, padding and dilation (fc_depthwise_supports;
 * other problems return FC_ERR_INVALID); the same arrays as the direct convolution.
 * Workspace per thread: the zero-padded phase planes of one channel plane and one wide
 * output plane (fc_depthwise_workspace_bytes), refused with FC_ERR_TOO_LARGE above
 * FC_DEPTHWISE_MAX_WORKSPACE_BYTES. The weight gradient is bitwise reproducible at a given
 * thread count. */
#define FC_DEPTHWISE_MAX_WORKSPACE_BYTES ((int64_t)64 << 20)
/* Multiplier 1 on input planes of at most this many pixels runs channels-last, a block of
 * channels per vector (conv_depthwise.c): on small planes the plane-by-plane path's rows,
 * padded to whole blocks, are mostly padding, and its per-plane work outweighs its short
 * sums; on larger planes its long rows make it the faster. */
#define FC_DEPTHWISE_CHANNELS_LAST_MAX_PIXELS 400
int fc_depthwise_supports(const fc_conv_problem *pb);
int64_t fc_depthwise_workspace_bytes(const fc_conv_problem *pb, int64_t itemsize);
fc_conv_forward_fn_f32 fc_conv_depthwise_forward_f32;
fc_conv_forward_fn_f64 fc_conv_depthwise_forward_f64;
fc_conv_data_fn_f32 fc_conv_depthwise_backward_data_f32;
fc_conv_data_fn_f64 fc_conv_depthwise_backward_data_f64;
fc_conv_weight_fn_f32 fc_conv_depthwise_backward_weight_f32;
fc_conv_weight_fn_f64 fc_conv_depthwise_backward_weight_f64;

/* ---- eval-mode programs (program.c): a network's forward pass as one call ----
 * A program is an array of steps run in order. Each step reads one value (two for ADD)
 * and writes one; a value is an offset in elements into one of three buffers: the
 * network's input, its output, or a workspace the caller sizes from the offsets. The
 * steps call the kernels the layers call, in the same way, so a program's output has the
 * bits of the layer-by-layer forward pass. */
typedef enum {
    FC_STEP_CONV = 0,              /* conv: fc_conv_forward(algorithm), weight, bias (the
                                    * ReLU, if any, in conv.relu) */
    FC_STEP_MAX_POOL = 1,          /* pool: fc_max_pool_forward, no argmax */
    FC_STEP_AVG_POOL = 2,          /* pool: fc_avg_pool_forward */
    FC_STEP_ADAPTIVE_AVG_POOL = 3, /* pool: fc_adaptive_avg_pool_forward */
    FC_STEP_LINEAR = 4,            /* (rows, in_features) @ weight^T + bias, weight
                                    * (out_features, in_features) C-contiguous */
    FC_STEP_RELU = 5,              /* count values: output = max(input, 0) */
    FC_STEP_ADD = 6,               /* count values: output = input + side, then ReLU if relu */
    FC_STEP_ZERO_PAD_SUBSAMPLE = 7, /* shape (N, C, H, W) -> (N, out_channels, ceil(H/stride),
                                     * ceil(W/stride)): input[:, :, ::stride, ::stride] at
                                     * channels before .. before + C, zeros elsewhere */
    FC_STEP_BATCH_NORM = 8         /* batch_norm: fc_batch_norm_forward_eval with mean, var,
                                    * weight, bias (weight, bias may be NULL) */
} fc_step_kind;
typedef enum { FC_BUFFER_INPUT = 0, FC_BUFFER_OUTPUT = 1, FC_BUFFER_WORKSPACE = 2 } fc_buffer;
typedef struct {
    fc_buffer buffer;
    int64_t offset;                /* elements from the buffer's start */
} fc_value;
typedef struct {
    fc_step_kind kind;
    fc_value input, side, output;  /* side: ADD's second operand */
    const void *weight, *bias;     /* CONV, LINEAR: of the program's type; bias may be NULL */
    fc_conv_problem conv;          /* CONV */
    fc_conv_algorithm algorithm;   /* CONV */
    fc_pool_problem pool;          /* the pools */
    int64_t rows, in_features, out_features;          /* LINEAR */
    int64_t count;                                    /* RELU, ADD */
    int64_t shape[4], out_channels, before, stride;   /* ZERO_PAD_SUBSAMPLE */
    const void *mean, *var;                           /* BATCH_NORM */
    fc_batch_norm_problem batch_norm;                 /* BATCH_NORM */
    int relu;                      /* ADD: ReLU on the output, in place */
    double value_scale, value_limit; /* CONV: scale > 0 runs direct unless the input's,
                                      * weight's and bias's largest magnitudes pass
                                      * fc_values_fit with these */
} fc_step;
/* Runs steps[0 .. count - 1]; on a failure returns its status with *failed the index of the
 * step that failed (else *failed = -1). */
fc_status fc_program_run_f32(const fc_step *steps, int64_t count, const float *input,
                             float *output, float *workspace, int64_t *failed);
fc_status fc_program_run_f64(const fc_step *steps, int64_t count, const double *input,
                             double *output, double *workspace, int64_t *failed);
/* Runs the steps on `chunks` consecutive parts of input and output (input_size and
 * output_size values each: a program made for a part of the batch), shared among nthreads
 * threads; each thread uses its own workspace_size values of workspace (nthreads of them)
 * and runs its kernels on itself alone. On a failure: as fc_program_run (the first found). */
fc_status fc_program_run_chunks_f32(const fc_step *steps, int64_t count, const float *input,
                                    float *output, float *workspace, int64_t chunks,
                                    int64_t input_size, int64_t output_size,
                                    int64_t workspace_size, int nthreads, int64_t *failed);
fc_status fc_program_run_chunks_f64(const fc_step *steps, int64_t count, const double *input,
                                    double *output, double *workspace, int64_t chunks,
                                    int64_t input_size, int64_t output_size,
                                    int64_t workspace_size, int nthreads, int64_t *failed);

#endif /* FASTCONV_H */
