/* gemm_generic_impl.h: the portable GEMM micro-kernel (contract in gemm_kernels.h) for one
 * element type: 6 rows, FC_TEMPLATE_NR columns. Included by gemm.c with REAL (template.h),
 * FC_TEMPLATE_NR and FC_TEMPLATE_KERNEL, the name to define. */

/* c (6 x NR, row stride ldc) = a (kc x 6 packed) * b (kc x NR, row stride ldb) + beta c */
void FC_TEMPLATE_KERNEL(int64_t kc, const REAL *restrict a, const REAL *restrict b, int64_t ldb,
                        REAL *restrict c, int64_t ldc, REAL beta)
{
    enum { MR = 6, NR = FC_TEMPLATE_NR };
    /* One loop over j updating all six rows: the only loop left to vectorise runs along B's
     * contiguous rows (a loop over i gets GCC to vectorise along A's panel, 10x slower). */
    REAL acc[MR][NR] = {{0}};
    for (int64_t p = 0; p < kc; p++) {
        const REAL *ap = a + p * MR, *bp = b + p * ldb;
        REAL a0 = ap[0], a1 = ap[1], a2 = ap[2], a3 = ap[3], a4 = ap[4], a5 = ap[5];
        for (int j = 0; j < NR; j++) {
            REAL bj = bp[j];
            acc[0][j] += a0 * bj;
            acc[1][j] += a1 * bj;
            acc[2][j] += a2 * bj;
            acc[3][j] += a3 * bj;
            acc[4][j] += a4 * bj;
            acc[5][j] += a5 * bj;
        }
    }
    for (int i = 0; i < MR; i++) {
        for (int j = 0; j < NR; j++) {
            /* beta == 0 must not read C, which may hold NaN. */
            c[i * ldc + j] = beta == 0 ? acc[i][j] : acc[i][j] + beta * c[i * ldc + j];
        }
    }
}
