/*
 * scan_impl.h: the largest magnitude in an array (template, see template.h), with
 * FC_TEMPLATE_UINT the unsigned integer type of REAL's width.
 *
 * The scan compares bit patterns: with the sign bit cleared, the IEEE patterns of
 * non-negative values order as unsigned integers do, and inf and NaN lie above every finite
 * value (NaN above inf). An integer maximum vectorises without the rules a floating-point
 * maximum must keep for NaN, so the scan runs at memory speed.
 */
#include <string.h>

fc_status FN(fc_max_abs)(REAL *result, const REAL *x, int64_t n)
{
    const FC_TEMPLATE_UINT magnitude = ~((FC_TEMPLATE_UINT)1 << (8 * sizeof(REAL) - 1));
    FC_TEMPLATE_UINT largest = 0;
    if (n < 0) {
        return FC_ERR_INVALID;
    }
    _Pragma("omp parallel for simd schedule(static) reduction(max: largest) if (n >= SCAN_PARALLEL_MIN)")
    for (int64_t i = 0; i < n; i++) {
        FC_TEMPLATE_UINT bits;
        memcpy(&bits, &x[i], sizeof bits);
        bits &= magnitude;
        largest = bits > largest ? bits : largest;
    }
    memcpy(result, &largest, sizeof largest);
    return FC_OK;
}
