/* activation.c: ReLU forward (in place) and backward, for the layers' fused conv + ReLU,
 * written once in activation_impl.h for float and double.
 *
 * NumPy needs two passes and a temporary for each (np.maximum, then grad * (y > 0)); one
 * pass over memory the convolution just wrote is several times faster on LeNet-5's
 * activations (1.2 MB). The loops are simple enough for the compiler to vectorise. */
#include "fastconv.h"
#include "real_math.h"
#include "template.h"

#define REAL float
#define TYPE_SUFFIX f32
#include "activation_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#include "activation_impl.h"
#include "template_end.h"
