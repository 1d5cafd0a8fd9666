/* conv_direct_generic.c: the portable C twins of the direct convolution's micro-kernels
 * (contract in conv_direct_kernels.h), written once in conv_direct_generic_impl.h and
 * instantiated for float and double as the tables fc_direct_kernels_f32_generic and
 * fc_direct_kernels_f64_generic. Fixed-size loops the compiler can unroll and vectorise
 * for whatever the build targets. */
#include <stddef.h>

#include "template.h"
#include "conv_direct_kernels.h"

#define REAL float
#define TYPE_SUFFIX f32
#include "conv_direct_generic_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#include "conv_direct_generic_impl.h"
#include "template_end.h"
