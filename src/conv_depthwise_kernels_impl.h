/* conv_depthwise_kernels_impl.h: the portable micro-kernels of the depthwise convolution
 * (conv_depthwise.c), included once per element type (template.h: REAL, FN, ISA;
 * FC_TEMPLATE_FMA(a, b, c), a * b + c as the build computes it). Their SIMD twins are in
 * conv_depthwise_simd_impl.h.
 *
 * Every kernel works on runs whose length is a whole number of blocks (DW_BLOCK values):
 * the callers' buffers carry the slack, so no loop has a remainder and each block's inner
 * loop has a fixed trip count the compiler turns into whole vectors. Sums run in a fixed
 * order (taps in the order given; each of DW_LANES lanes, then the lanes pairwise), so a
 * kernel gives the same bits on every call. */

/* out[0 .. n) = (add ? out : 0) + sum over taps t of wt[t] * src[t][0 .. n). n is a
 * multiple of DW_BLOCK. A block's sums stay in registers across all the taps, so each
 * output value is loaded (add) and stored once. */
static void FN(ISA(dw_taps_sum))(REAL *restrict out, int64_t n,
                                                    const REAL *const *src, const REAL *wt,
                                                    int64_t taps, int add)
{
    for (int64_t i0 = 0; i0 < n; i0 += DW_BLOCK(REAL)) {
        REAL acc[DW_BLOCK(REAL)];
        for (int j = 0; j < DW_BLOCK(REAL); j++) {
            acc[j] = add ? out[i0 + j] : 0;
        }
        for (int64_t t = 0; t < taps; t++) {
            const REAL w = wt[t];
            const REAL *s = src[t] + i0;
            for (int j = 0; j < DW_BLOCK(REAL); j++) {
                acc[j] = FC_TEMPLATE_FMA(w, s[j], acc[j]);
            }
        }
        for (int j = 0; j < DW_BLOCK(REAL); j++) {
            out[i0 + j] = acc[j];
        }
    }
}

/* sums[t] += the dot product of a[0 .. n) and src[t][0 .. n), for each of taps taps. n is
 * a multiple of DW_BLOCK. Each dot product keeps DW_LANES partial sums (independent FMA
 * chains) and adds them pairwise at the end. */
static void FN(ISA(dw_dots))(REAL *restrict sums, const REAL *a,
                                                const REAL *const *src, int64_t taps,
                                                int64_t n)
{
    for (int64_t t = 0; t < taps; t++) {
        const REAL *s = src[t];
        REAL acc[DW_LANES(REAL)];
        for (int j = 0; j < DW_LANES(REAL); j++) {
            acc[j] = 0;
        }
        for (int64_t i0 = 0; i0 < n; i0 += DW_LANES(REAL)) {
            for (int j = 0; j < DW_LANES(REAL); j++) {
                acc[j] = FC_TEMPLATE_FMA(a[i0 + j], s[i0 + j], acc[j]);
            }
        }
        for (int width = DW_LANES(REAL) / 2; width >= 1; width /= 2) {
            for (int j = 0; j < width; j++) {
                acc[j] += acc[j + width];
            }
        }
        sums[t] += acc[0];
    }
}

/* 1 when a[0 .. n) is all finite: x - x is 0 for a finite x and NaN for an inf or NaN. */
static int FN(ISA(dw_all_finite))(const REAL *a, int64_t n)
{
    REAL acc[DW_LANES(REAL)];
    for (int j = 0; j < DW_LANES(REAL); j++) {
        acc[j] = 0;
    }
    int64_t i0 = 0;
    for (; i0 + DW_LANES(REAL) <= n; i0 += DW_LANES(REAL)) {
        for (int j = 0; j < DW_LANES(REAL); j++) {
            acc[j] += a[i0 + j] - a[i0 + j];
        }
    }
    for (; i0 < n; i0++) {
        acc[0] += a[i0] - a[i0];
    }
    REAL total = 0;
    for (int j = 0; j < DW_LANES(REAL); j++) {
        total += acc[j];
    }
    return total == 0;
}

static const FN(fc_dw_kernels) FN(ISA(dw_kernels)) = {
    FN(ISA(dw_taps_sum)), FN(ISA(dw_dots)), FN(ISA(dw_all_finite))
};
