/*
 * fastconv.h: the problem descriptors, status codes and prototypes of every C kernel.
 *
 * Conventions (see STYLE.md of the project):
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
    FC_ERR_INVALID = 2  /* the problem descriptor is inconsistent (a bug in the caller) */
} fc_status;

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
} fc_conv_problem;

/* One 2-D pooling problem (max or average). */
typedef struct {
    int64_t N, C, H, W;           /* input; N*C planes are pooled independently */
    int64_t R, S;                 /* window height, width */
    int64_t stride_h, stride_w;
    int64_t pad_h, pad_w;         /* symmetric padding, at most half the window */
    int64_t dil_h, dil_w;         /* max pooling only; 1 for average pooling */
    int64_t P, Q;                 /* output height, width */
    int count_include_pad;        /* average pooling: divide by the padded window size */
    int64_t divisor_override;     /* average pooling: > 0 replaces the divisor */
} fc_pool_problem;

/* ---- runtime configuration (config.c) ---- */
int fc_have_openmp(void);
int fc_get_num_threads(void);
void fc_set_num_threads(int n);
/* SIMD levels of the micro-kernels. AVX-512 kernels exist for the direct convolution;
 * at that level every other kernel uses its AVX2+FMA version. */
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
 * x (N, C, H, W); w (K, C/groups, R, S); bias (K) or NULL; y (N, K, P, Q). */
#define FC_DECLARE_CONV(SUFFIX, T)                                                          \
    fc_status fc_conv_direct_forward_##SUFFIX(T *y, const T *x, const T *w, const T *bias,  \
                                              const fc_conv_problem *pb);                   \
    fc_status fc_conv_direct_backward_data_##SUFFIX(T *dx, const T *dy, const T *w,         \
                                                    const fc_conv_problem *pb);             \
    fc_status fc_conv_direct_backward_weight_##SUFFIX(T *dw, const T *dy, const T *x,       \
                                                      const fc_conv_problem *pb);           \
    fc_status fc_conv_backward_bias_##SUFFIX(T *db, const T *dy, const fc_conv_problem *pb); \
    fc_status fc_conv_im2col_forward_##SUFFIX(T *y, const T *x, const T *w, const T *bias,  \
                                              const fc_conv_problem *pb);                   \
    fc_status fc_conv_im2col_backward_data_##SUFFIX(T *dx, const T *dy, const T *w,         \
                                                    const fc_conv_problem *pb);             \
    fc_status fc_conv_im2col_backward_weight_##SUFFIX(T *dw, const T *dy, const T *x,       \
                                                      const fc_conv_problem *pb);
FC_DECLARE_CONV(f32, float)
FC_DECLARE_CONV(f64, double)
#undef FC_DECLARE_CONV

#endif /* FASTCONV_H */
