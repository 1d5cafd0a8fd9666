/*
 * scan_impl.h: the largest magnitude in an array (template, see template.h), with
 * FC_TEMPLATE_UINT the unsigned integer type of REAL's width.
 *
 * The scan compares bit patterns: with the sign bit cleared, the IEEE patterns of
 * non-negative values order as unsigned integers do, and inf and NaN lie above every finite
 * value (NaN above inf). An integer maximum vectorises without the rules a floating-point
 * maximum must keep for NaN, so the scan runs at memory speed where the instruction set
 * has a vector integer maximum (AVX2's; SSE2 has none, so the portable loop emulates it).
 */
#include <string.h>

/* The largest magnitude's bit pattern among x[0..n): the portable loop, and the same loop
 * compiled for AVX2 where the compiler can target it per function. */
#define SCAN_MAX_BITS_BODY                                                                  \
    {                                                                                       \
        const FC_TEMPLATE_UINT magnitude = ~((FC_TEMPLATE_UINT)1 << (8 * sizeof(REAL) - 1)); \
        FC_TEMPLATE_UINT largest = 0;                                                       \
        for (int64_t i = 0; i < n; i++) {                                                   \
            FC_TEMPLATE_UINT bits;                                                          \
            memcpy(&bits, &x[i], sizeof bits);                                              \
            bits &= magnitude;                                                              \
            largest = bits > largest ? bits : largest;                                      \
        }                                                                                   \
        return largest;                                                                     \
    }

static FC_TEMPLATE_UINT FN(max_bits_generic)(const REAL *x, int64_t n)
SCAN_MAX_BITS_BODY

#if SCAN_HAVE_AVX2
__attribute__((target("avx2")))
static FC_TEMPLATE_UINT FN(max_bits_avx2)(const REAL *x, int64_t n)
SCAN_MAX_BITS_BODY
#endif

#undef SCAN_MAX_BITS_BODY

fc_status FN(fc_max_abs)(REAL *result, const REAL *x, int64_t n)
{
    FC_TEMPLATE_UINT (*max_bits)(const REAL *, int64_t) = FN(max_bits_generic);
#if SCAN_HAVE_AVX2
    if (fc_simd_avx2()) {
        max_bits = FN(max_bits_avx2);
    }
#endif
    FC_TEMPLATE_UINT largest = 0;
    if (n < 0) {
        return FC_ERR_INVALID;
    }
    /* Each thread scans one contiguous share; the shares' maxima are combined. */
    _Pragma("omp parallel reduction(max: largest) if (n >= FC_ELEMENTWISE_PARALLEL_MIN)")
    {
        int64_t lo = 0, hi = n;
#ifdef _OPENMP
        const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
        lo = n / threads * t + (t < n % threads ? t : n % threads);
        hi = lo + n / threads + (t < n % threads);
#endif
        const FC_TEMPLATE_UINT share = max_bits(x + lo, hi - lo);
        largest = share > largest ? share : largest;
    }
    memcpy(result, &largest, sizeof largest);
    return FC_OK;
}
