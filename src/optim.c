/* optim.c: SGD's and Adam's updates of one parameter in one pass over memory, written once
 * in optim_impl.h for float and double.
 *
 * NumPy spends ~12 passes (and, without scratch arrays, as many temporaries) on
 * m, v <- moments; param -= lr * m_hat / (sqrt(v_hat) + eps). Here each element is read
 * and written once. The float operations are those of the NumPy expression in
 * fastconv/optim.py, in the same order and each rounded to the element type (ISO C mode
 * compiles with -ffp-contract=off: no fused multiply-add; sqrt and / are correctly
 * rounded), so both give the same bits: tests/test_buffer_reuse.py checks it.
 * Single-threaded: LeNet-5's largest parameter (48,000 floats) takes microseconds, less
 * than waking a second thread. */
#include "fastconv.h"
#include "real_math.h"
#include "template.h"

#define REAL float
#define TYPE_SUFFIX f32
#include "optim_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#include "optim_impl.h"
#include "template_end.h"
