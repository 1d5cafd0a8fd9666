/* scan.c: the largest magnitude of an array, in one pass over memory (fastconv.h). */
#include <stdint.h>

#include "fastconv.h"
#include "template.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* The AVX2 loop exists where the compiler can target x86 AVX2 per function. */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define SCAN_HAVE_AVX2 1
#else
#define SCAN_HAVE_AVX2 0
#endif

#define REAL float
#define TYPE_SUFFIX f32
#define FC_TEMPLATE_UINT uint32_t
#include "scan_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#define FC_TEMPLATE_UINT uint64_t
#include "scan_impl.h"
#include "template_end.h"

int fc_values_fit(double max_a, double max_b, double max_c, double scale, double limit)
{
    return max_a * max_b * scale + max_c <= limit;       /* 0 for NaN */
}
