/* gemm_avx512_impl.h: the AVX-512 GEMM micro-kernel (contract in gemm_kernels.h) for one
 * element type: MR = FC_GEMM_MR_AVX512 rows of two ZMM vectors. Included by gemm_avx512.c
 * with REAL (template.h) and the vector of REAL:
 *     FC_TEMPLATE_KERNEL     the name to define (gemm_tile.h: fc_gemm_kernel_avx512_f32, ...)
 *     FC_TEMPLATE_KERNEL_NARROW   the name of its half-width form (one vector per row)
 *     FC_TEMPLATE_KERNEL_ROWS, FC_TEMPLATE_KERNEL_NARROW_ROWS   the names of both forms
 *                            reading A in place (gemm_kernels.h)
 *     FC_TEMPLATE_LANES      REALs per vector (16 float, 8 double); the tile is 2 vectors wide
 *     FC_TEMPLATE_VEC        the vector type
 *     FC_TEMPLATE_LOADU, FC_TEMPLATE_STOREU, FC_TEMPLATE_SETZERO, FC_TEMPLATE_SET1,
 *     FC_TEMPLATE_FMADD      its operations
 */

/* c (MR rows of one vector, row stride ldc) = acc + beta c: the last step of both kernels
 * below. With beta 0, C is overwritten without being read (it may hold NaN). */
static inline __attribute__((always_inline)) FC_AVX512 void
FC_PASTE(FC_TEMPLATE_KERNEL, store)(REAL *c, int64_t ldc, const FC_TEMPLATE_VEC *acc, REAL beta)
{
    if (beta == 0) {
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            FC_TEMPLATE_STOREU(c + i * ldc, acc[i]);
        }
    } else {
        FC_TEMPLATE_VEC vb = FC_TEMPLATE_SET1(beta);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            REAL *ci = c + i * ldc;
            FC_TEMPLATE_STOREU(ci, FC_TEMPLATE_FMADD(vb, FC_TEMPLATE_LOADU(ci), acc[i]));
        }
    }
}

/* c (MR x V*L, row stride ldc) = A (MR x kc, element (i, p) at a[i*a_row + p*a_depth]) *
 * b (kc x V*L, row stride ldb) + beta c, L = FC_TEMPLATE_LANES, V = 1 or 2: the body of the
 * kernels below, inlined with constant V, so each sum runs in the same order in all. */
static inline __attribute__((always_inline)) FC_AVX512 void
FC_PASTE(FC_TEMPLATE_KERNEL, body)(const int V, int64_t kc, const REAL *a, int64_t a_row,
                                   int64_t a_depth, const REAL *b, int64_t ldb, REAL *c,
                                   int64_t ldc, REAL beta)
{
    const int L = FC_TEMPLATE_LANES;
    /* Fully unrolled loops over i: GCC keeps the arrays in registers. */
    FC_TEMPLATE_VEC c0[MR], c1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        c0[i] = FC_TEMPLATE_SETZERO();
        c1[i] = FC_TEMPLATE_SETZERO();
    }
    if (V == 2) {
        prefetch_c((const char *)c, ldc * (int64_t)sizeof(REAL));
    }

#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++) {
        FC_TEMPLATE_VEC b0 = FC_TEMPLATE_LOADU(b);
        FC_TEMPLATE_VEC b1 = V == 2 ? FC_TEMPLATE_LOADU(b + L) : b0;
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            FC_TEMPLATE_VEC ai = FC_TEMPLATE_SET1(a[i * a_row]);
            c0[i] = FC_TEMPLATE_FMADD(ai, b0, c0[i]);
            if (V == 2) {
                c1[i] = FC_TEMPLATE_FMADD(ai, b1, c1[i]);
            }
        }
        a += a_depth;
        b += ldb;
    }

    FC_PASTE(FC_TEMPLATE_KERNEL, store)(c, ldc, c0, beta);
    if (V == 2) {
        FC_PASTE(FC_TEMPLATE_KERNEL, store)(c + L, ldc, c1, beta);
    }
}

/* c (MR x 2L, row stride ldc) = a (kc x MR packed) * b (kc x 2L, row stride ldb) + beta c */
FC_AVX512 void FC_TEMPLATE_KERNEL(int64_t kc, const REAL *a, const REAL *b, int64_t ldb,
                                  REAL *c, int64_t ldc, REAL beta)
{
    FC_PASTE(FC_TEMPLATE_KERNEL, body)(2, kc, a, 1, MR, b, ldb, c, ldc, beta);
}

/* c (MR x L, row stride ldc) = a (kc x MR packed) * b (kc x L of a 2L-wide panel, row stride
 * ldb) + beta c: the kernel above on its first vector of columns only. */
FC_AVX512 void FC_TEMPLATE_KERNEL_NARROW(int64_t kc, const REAL *a, const REAL *b, int64_t ldb,
                                         REAL *c, int64_t ldc, REAL beta)
{
    FC_PASTE(FC_TEMPLATE_KERNEL, body)(1, kc, a, 1, MR, b, ldb, c, ldc, beta);
}

/* Both kernels with A read in place: MR rows of a row-major A (row stride lda), unpacked. */
FC_AVX512 void FC_TEMPLATE_KERNEL_ROWS(int64_t kc, const REAL *a, int64_t lda, const REAL *b,
                                       int64_t ldb, REAL *c, int64_t ldc, REAL beta)
{
    FC_PASTE(FC_TEMPLATE_KERNEL, body)(2, kc, a, lda, 1, b, ldb, c, ldc, beta);
}

FC_AVX512 void FC_TEMPLATE_KERNEL_NARROW_ROWS(int64_t kc, const REAL *a, int64_t lda,
                                              const REAL *b, int64_t ldb, REAL *c, int64_t ldc,
                                              REAL beta)
{
    FC_PASTE(FC_TEMPLATE_KERNEL, body)(1, kc, a, lda, 1, b, ldb, c, ldc, beta);
}
