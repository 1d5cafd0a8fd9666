/* real_math.h: the scalar math a template needs on REAL, under names with the type's
 * suffix, so that a template calls FN(fc_sqrt)(x) (template.h) and its includer passes
 * nothing. Most names are the C library's function of that type itself. */
#ifndef FASTCONV_REAL_MATH_H
#define FASTCONV_REAL_MATH_H

#include <math.h>
#include <stdint.h>

/* The correctly rounded square root. */
#define fc_sqrt_f32 sqrtf
#define fc_sqrt_f64 sqrt

/* a * b + c rounded once (fused multiply-add). */
#define fc_fma_f32 fmaf
#define fc_fma_f64 fma

/* sqrt(a^2 + b^2), each square rounded on its own: separate statements, so that no
 * compiler fuses one into a multiply-add, and the vector magnitudes (mul, mul, add, sqrt)
 * give the same values. */
static inline float fc_magnitude_f32(float a, float b)
{
    const float a2 = a * a;
    const float b2 = b * b;
    return sqrtf(a2 + b2);
}

static inline double fc_magnitude_f64(double a, double b)
{
    const double a2 = a * a;
    const double b2 = b * b;
    return sqrt(a2 + b2);
}

/* The ReLU of one value, and its gradient: v, or 0 where v < 0 (NaN and -0.0 stay as they
 * are, as np.maximum keeps NaN); g where the ReLU's output y > 0, else 0 (NaN in y gives
 * 0, and an inf or NaN g where y <= 0 gives 0, as PyTorch's). Every pass with a ReLU
 * (activation.c, batchnorm.c, the convolutions' fused ReLU) computes it by these; g is
 * taken as an argument, read whatever y is, so a loop's select vectorises as a blend. */
static inline float fc_relu_f32(float v)
{
    return v < 0 ? 0.0f : v;
}

static inline double fc_relu_f64(double v)
{
    return v < 0 ? 0.0 : v;
}

static inline float fc_relu_grad_f32(float g, float y)
{
    return y > 0 ? g : 0.0f;
}

static inline double fc_relu_grad_f64(double g, double y)
{
    return y > 0 ? g : 0.0;
}

/* y[i] = fc_relu(y[i]) for i < n: a convolution's fused ReLU (fc_conv_problem.relu) on
 * outputs it has just written, while they are in cache. */
static inline void fc_relu_span_f32(float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] = fc_relu_f32(y[i]);
    }
}

static inline void fc_relu_span_f64(double *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] = fc_relu_f64(y[i]);
    }
}

#endif /* FASTCONV_REAL_MATH_H */
