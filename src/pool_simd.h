/*
 * pool_simd.h: the pooling micro-kernels' contract and the AVX2 ones (pool_avx2.c).
 *
 * A micro-kernel pools n consecutive windows of one output row for the two shapes that
 * dominate CNNs, K x K windows with K = 2 or 3, stride 2, no dilation, every window inside
 * the input (the drivers in pool_impl.h keep the padded borders for themselves):
 *   window q reads rows x, x + ldx (, x + 2*ldx) at columns 2q .. 2q + K - 1.
 * pos (n bytes, may be NULL) receives the position r*K + s of each window's maximum: the
 * compact argmax, turned into PyTorch's int64 indices only when they are asked for.
 * The grad kernels *overwrite* the two input rows of their (non-overlapping) 2x2 windows.
 * Each AVX2 kernel has a portable twin in pool_impl.h with the same signature and result.
 */
#ifndef FASTCONV_POOL_SIMD_H
#define FASTCONV_POOL_SIMD_H

#include <stdint.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define FC_POOL_HAVE_AVX2 1
#else
#define FC_POOL_HAVE_AVX2 0
#endif

#if FC_POOL_HAVE_AVX2
void fc_max_row_k2s2_avx2_f32(float *y, uint8_t *pos, const float *x, int64_t ldx, int64_t n);
void fc_max_row_k3s2_avx2_f32(float *y, uint8_t *pos, const float *x, int64_t ldx, int64_t n);
void fc_avg_row_k2s2_avx2_f32(float *y, const float *x, int64_t ldx, int64_t n, float divisor);
void fc_avg_row_k3s2_avx2_f32(float *y, const float *x, int64_t ldx, int64_t n, float divisor);
/* dx rows (2, 2n) from dy (n): the gradient of max pooling goes to each window's maximum
 * (recomputed from x), zeros elsewhere; of average pooling, dy / divisor everywhere. */
void fc_max_grad_row_k2s2_avx2_f32(float *dx, int64_t ldx, const float *dy, const float *x,
                                   int64_t n);
void fc_avg_grad_row_k2s2_avx2_f32(float *dx, int64_t ldx, const float *dy, int64_t n,
                                   float divisor);
#endif

#endif /* FASTCONV_POOL_SIMD_H */
