/* real_math.h: the scalar math a template needs on REAL, under names with the type's
 * suffix, so that a template calls FN(fc_sqrt)(x) (template.h) and its includer passes
 * nothing. Each name is the C library's function of that type itself. */
#ifndef FASTCONV_REAL_MATH_H
#define FASTCONV_REAL_MATH_H

#include <math.h>

/* The correctly rounded square root. */
#define fc_sqrt_f32 sqrtf
#define fc_sqrt_f64 sqrt

/* a * b + c rounded once (fused multiply-add). */
#define fc_fma_f32 fmaf
#define fc_fma_f64 fma

#endif /* FASTCONV_REAL_MATH_H */
