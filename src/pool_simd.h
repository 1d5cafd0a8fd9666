/*
 * pool_simd.h: the pooling micro-kernels' contract and the AVX2 ones (pool_avx2.c).
 *
 * A micro-kernel pools a block of `rows` output rows of n windows each, for the two shapes
 * that dominate CNNs: K x K windows with K = 2 or 3, stride 2, no dilation, every window
 * inside the input (the drivers in pool_impl.h keep the padded borders for themselves).
 *   Output row i is y + i*ldy; it reads input rows x + 2i*ldx, x + (2i+1)*ldx (, x + (2i+2)*ldx),
 *   window q at columns 2q .. 2q + K - 1.
 * Whole blocks, not single rows, because LeNet-5's rows are 5 and 14 windows long: per-row
 * call and tail set-up would otherwise cost more than the pooling.
 * pos (rows of n bytes, ldpos apart; may be NULL) receives the tap r*K + s of each window's
 * maximum: the compact argmax, turned into PyTorch's int64 indices only on request.
 * The grad kernels *overwrite* the input rows of their (non-overlapping) 2x2 windows; dx and
 * x share the row stride ldx.
 * Each AVX2 kernel has a portable twin in pool_impl.h with the same signature and results.
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
void fc_max_rows_k2s2_avx2_f32(float *y, int64_t ldy, uint8_t *pos, int64_t ldpos,
                               const float *x, int64_t ldx, int64_t n, int64_t rows);
void fc_max_rows_k3s2_avx2_f32(float *y, int64_t ldy, uint8_t *pos, int64_t ldpos,
                               const float *x, int64_t ldx, int64_t n, int64_t rows);
void fc_avg_rows_k2s2_avx2_f32(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t n,
                               int64_t rows, float divisor);
void fc_avg_rows_k3s2_avx2_f32(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t n,
                               int64_t rows, float divisor);
/* dx rows (2*rows, 2n) from dy rows (rows, n): max pooling sends each window's gradient to
 * its maximum (recomputed from x, or the tap in pos), zeros elsewhere; average pooling sends
 * dy / divisor everywhere. */
void fc_max_grad_rows_k2s2_avx2_f32(float *dx, int64_t ldx, const float *dy, int64_t ldy,
                                    const float *x, int64_t n, int64_t rows);
void fc_max_grad_argmax_rows_k2s2_avx2_f32(float *dx, int64_t ldx, const float *dy, int64_t ldy,
                                           const uint8_t *pos, int64_t ldpos, int64_t n,
                                           int64_t rows);
void fc_avg_grad_rows_k2s2_avx2_f32(float *dx, int64_t ldx, const float *dy, int64_t ldy,
                                    int64_t n, int64_t rows, float divisor);
#endif

#endif /* FASTCONV_POOL_SIMD_H */
