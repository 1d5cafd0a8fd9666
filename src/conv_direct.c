/* conv_direct.c: direct convolution (forward, data gradient, weight gradient, bias
 * gradient), written once in conv_direct_impl.h and instantiated for float and double. */
#include "fastconv.h"
#include "conv_index.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define REAL float
#define FN(name) name##_f32
#include "conv_direct_impl.h"
#undef REAL
#undef FN

#define REAL double
#define FN(name) name##_f64
#include "conv_direct_impl.h"
#undef REAL
#undef FN
