/* conv_direct_generic.c: the portable C twins of the direct convolution's micro-kernels
 * (contract in conv_direct_kernels.h), written once in conv_direct_generic_impl.h and
 * instantiated for float and double. Fixed-size loops the compiler can unroll and
 * vectorise for whatever the build targets. */
#include <stddef.h>

#include "conv_direct_kernels.h"

#define REAL float
#define FN(name) name##_f32
#include "conv_direct_generic_impl.h"
#undef REAL
#undef FN

#define REAL double
#define FN(name) name##_f64
#include "conv_direct_generic_impl.h"
#undef REAL
#undef FN
