/* conv.c: one entry point per convolution pass (forward, data gradient, weight gradient)
 * that runs the algorithm the caller names: direct (conv_direct.c), im2col + GEMM
 * (conv_im2col.c), Winograd (conv_winograd.c, conv_winograd_weight.c) or depthwise
 * (conv_depthwise.c). Written once in conv_impl.h and instantiated for float and double. */
#include "fastconv.h"
#include "template.h"
#include "conv_index.h"

/* How many algorithms fc_conv_algorithm names (0 .. FC_CONV_ALGORITHM_COUNT - 1). */
#define FC_CONV_ALGORITHM_COUNT 4

/* 1 for a value of fc_conv_algorithm, 0 for anything else the caller passed. */
static int conv_algorithm_known(fc_conv_algorithm algorithm)
{
    return (int)algorithm >= 0 && (int)algorithm < FC_CONV_ALGORITHM_COUNT;
}

#define REAL float
#define TYPE_SUFFIX f32
#include "conv_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#include "conv_impl.h"
#include "template_end.h"
