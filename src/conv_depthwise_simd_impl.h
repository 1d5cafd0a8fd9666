/* conv_depthwise_simd_impl.h: the SIMD micro-kernels of the depthwise convolution
 * (conv_depthwise.c), the same contracts as the portable ones of
 * conv_depthwise_kernels_impl.h, for one element type and instruction set (template.h:
 * REAL, FN, ISA). Its includer defines the vector of REAL and its operations
 * (simd_avx2_f32.h, simd_avx2_f64.h, or the AVX-512 ones of conv_depthwise.c):
 *     FC_TEMPLATE_LANES      REALs per vector
 *     FC_TEMPLATE_VEC        the vector type
 *     FC_TEMPLATE_LOADU, FC_TEMPLATE_STOREU, FC_TEMPLATE_SETZERO, FC_TEMPLATE_SET1,
 *     FC_TEMPLATE_FMADD      its unaligned load and store, zero, broadcast of a value and
 *                            a*b + c, fused
 *     FC_TEMPLATE_TARGET     the target attribute of the instruction set */

/* Vectors per block of the sum kernel, and per dot product's partial sums. */
#define DW_SIMD_BLOCK_VECS (DW_BLOCK(REAL) / FC_TEMPLATE_LANES)
#define DW_SIMD_LANE_VECS (DW_LANES(REAL) / FC_TEMPLATE_LANES)

static FC_TEMPLATE_TARGET void FN(ISA(dw_taps_sum))(REAL *restrict out, int64_t n,
                                                    const REAL *const *src, const REAL *wt,
                                                    int64_t taps, int add)
{
    for (int64_t i0 = 0; i0 < n; i0 += DW_BLOCK(REAL)) {
        FC_TEMPLATE_VEC acc[DW_SIMD_BLOCK_VECS];
        DW_UNROLL
        for (int v = 0; v < DW_SIMD_BLOCK_VECS; v++) {
            acc[v] = add ? FC_TEMPLATE_LOADU(out + i0 + v * FC_TEMPLATE_LANES)
                         : FC_TEMPLATE_SETZERO();
        }
        for (int64_t t = 0; t < taps; t++) {
            const FC_TEMPLATE_VEC w = FC_TEMPLATE_SET1(wt[t]);
            const REAL *s = src[t] + i0;
            DW_UNROLL
            for (int v = 0; v < DW_SIMD_BLOCK_VECS; v++) {
                acc[v] = FC_TEMPLATE_FMADD(w, FC_TEMPLATE_LOADU(s + v * FC_TEMPLATE_LANES),
                                           acc[v]);
            }
        }
        DW_UNROLL
        for (int v = 0; v < DW_SIMD_BLOCK_VECS; v++) {
            FC_TEMPLATE_STOREU(out + i0 + v * FC_TEMPLATE_LANES, acc[v]);
        }
    }
}

static FC_TEMPLATE_TARGET void FN(ISA(dw_dots))(REAL *restrict sums, const REAL *a,
                                                const REAL *const *src, int64_t taps,
                                                int64_t n)
{
    for (int64_t t = 0; t < taps; t++) {
        const REAL *s = src[t];
        FC_TEMPLATE_VEC acc[DW_SIMD_LANE_VECS];
        DW_UNROLL
        for (int v = 0; v < DW_SIMD_LANE_VECS; v++) {
            acc[v] = FC_TEMPLATE_SETZERO();
        }
        for (int64_t i0 = 0; i0 < n; i0 += DW_LANES(REAL)) {
            DW_UNROLL
            for (int v = 0; v < DW_SIMD_LANE_VECS; v++) {
                const int64_t i = i0 + v * FC_TEMPLATE_LANES;
                acc[v] = FC_TEMPLATE_FMADD(FC_TEMPLATE_LOADU(a + i), FC_TEMPLATE_LOADU(s + i),
                                           acc[v]);
            }
        }
        REAL part[DW_LANES(REAL)];
        for (int v = 0; v < DW_SIMD_LANE_VECS; v++) {
            FC_TEMPLATE_STOREU(part + v * FC_TEMPLATE_LANES, acc[v]);
        }
        for (int width = DW_LANES(REAL) / 2; width >= 1; width /= 2) {
            for (int j = 0; j < width; j++) {
                part[j] += part[j + width];
            }
        }
        sums[t] += part[0];
    }
}

static FC_TEMPLATE_TARGET int FN(ISA(dw_all_finite))(const REAL *a, int64_t n)
{
    /* v * 0 is 0 for a finite v and NaN for an inf or NaN. */
    const FC_TEMPLATE_VEC zero = FC_TEMPLATE_SETZERO();
    FC_TEMPLATE_VEC acc = zero;
    int64_t i = 0;
    for (; i + FC_TEMPLATE_LANES <= n; i += FC_TEMPLATE_LANES) {
        acc = FC_TEMPLATE_FMADD(FC_TEMPLATE_LOADU(a + i), zero, acc);
    }
    REAL part[FC_TEMPLATE_LANES];
    FC_TEMPLATE_STOREU(part, acc);
    REAL total = 0;
    for (int j = 0; j < FC_TEMPLATE_LANES; j++) {
        total += part[j];
    }
    for (; i < n; i++) {
        total += a[i] * 0;
    }
    return total == 0;
}

static const FN(fc_dw_kernels) FN(ISA(dw_kernels)) = {
    FN(ISA(dw_taps_sum)), FN(ISA(dw_dots)), FN(ISA(dw_all_finite))
};

#undef DW_SIMD_BLOCK_VECS
#undef DW_SIMD_LANE_VECS
