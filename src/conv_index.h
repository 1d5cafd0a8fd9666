/* conv_index.h: the index math shared by every convolution kernel, in one place.
 *
 * Output pixel o along one axis reads input pixel  i = o * stride + offset,  where
 * offset = tap * dilation - pad_before  for filter tap `tap`.  Pixels outside [0, in_size)
 * are the zero padding. */
#ifndef FASTCONV_CONV_INDEX_H
#define FASTCONV_CONV_INDEX_H

#include <stdint.h>

#include "fastconv.h"

/* 1 if no dimension of pb is empty: the kernels and their plans run only such problems
 * (fastconv's Python layer computes empty ones itself: zeros, or the bias). */
static inline int fc_conv_problem_nonempty(const fc_conv_problem *pb)
{
    return pb->N > 0 && pb->C > 0 && pb->H > 0 && pb->W > 0 && pb->K > 0 && pb->R > 0
           && pb->S > 0 && pb->P > 0 && pb->Q > 0 && pb->groups > 0;
}

static inline int64_t fc_ceil_div(int64_t a, int64_t b)
{
    /* b > 0; rounds towards +infinity for negative a too */
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

/* The outputs o in [*lo, *hi) of [0, n_out) whose input o*stride + offset lies inside
 * [0, in_size): the ones that do not read padding. Empty when *lo >= *hi. */
static inline void fc_valid_range(int64_t n_out, int64_t in_size, int64_t stride,
                                  int64_t offset, int64_t *lo, int64_t *hi)
{
    int64_t first = fc_ceil_div(-offset, stride);             /* o*stride + offset >= 0 */
    int64_t last = fc_ceil_div(in_size - offset, stride);     /* o*stride + offset < in_size */
    *lo = first < 0 ? 0 : first;
    *hi = last > n_out ? n_out : last;
    if (*hi < *lo) {
        *hi = *lo;
    }
}

/* Input offset of filter tap (r, s) along each axis. */
static inline int64_t fc_offset_h(const fc_conv_problem *pb, int64_t r)
{
    return r * pb->dil_h - pb->pad_top;
}

static inline int64_t fc_offset_w(const fc_conv_problem *pb, int64_t s)
{
    return s * pb->dil_w - pb->pad_left;
}

#endif /* FASTCONV_CONV_INDEX_H */
