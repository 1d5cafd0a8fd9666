/* program.c: an eval-mode program (fastconv.h, "eval-mode programs"): a network's forward
 * pass for one input shape, run as one call.
 *
 * Layer by layer, each kernel call from Python costs microseconds of argument handling,
 * as much as LeNet-5's kernels take at batch 1. A program runs the same kernels from a
 * list of steps made once per input shape (fastconv/nn/program.py), so a small batch
 * pays that cost once. Written once in program_impl.h for float and double. */
#include <string.h>

#include "conv_threads.h"
#include "fastconv.h"
#include "template.h"

/* In a team of several threads, each sharing out chunks of a batch: the calling thread's
 * kernels run on that thread alone. The setting belongs to the parallel region's task
 * (OpenMP's nthreads-var) and ends with it. */
static void run_kernels_alone(void)
{
#ifdef _OPENMP
    if (omp_get_num_threads() > 1) {
        omp_set_num_threads(1);
    }
#endif
}

#define REAL float
#define TYPE_SUFFIX f32
#include "program_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#include "program_impl.h"
#include "template_end.h"
