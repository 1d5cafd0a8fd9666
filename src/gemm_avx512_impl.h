/* gemm_avx512_impl.h: the AVX-512 GEMM micro-kernel (contract in gemm_kernels.h) for one
 * element type: MR = FC_GEMM_MR_AVX512 rows of two ZMM vectors. Included by gemm_avx512.c
 * with REAL (template.h) and the vector of REAL:
 *     FC_TEMPLATE_KERNEL     the name to define (gemm_tile.h: fc_gemm_kernel_avx512_f32, ...)
 *     FC_TEMPLATE_KERNEL_NARROW   the name of its half-width form (one vector per row)
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

/* c (MR x 2L, row stride ldc) = a (kc x MR packed) * b (kc x 2L, row stride ldb) + beta c,
 * L = FC_TEMPLATE_LANES */
FC_AVX512 void FC_TEMPLATE_KERNEL(int64_t kc, const REAL *a, const REAL *b, int64_t ldb,
                                  REAL *c, int64_t ldc, REAL beta)
{
    const int L = FC_TEMPLATE_LANES;
    /* Fully unrolled loops over i: GCC keeps the arrays in registers. */
    FC_TEMPLATE_VEC c0[MR], c1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        c0[i] = FC_TEMPLATE_SETZERO();
        c1[i] = FC_TEMPLATE_SETZERO();
    }
    prefetch_c((const char *)c, ldc * (int64_t)sizeof(REAL));

#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++) {
        FC_TEMPLATE_VEC b0 = FC_TEMPLATE_LOADU(b);
        FC_TEMPLATE_VEC b1 = FC_TEMPLATE_LOADU(b + L);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            FC_TEMPLATE_VEC ai = FC_TEMPLATE_SET1(a[i]);
            c0[i] = FC_TEMPLATE_FMADD(ai, b0, c0[i]);
            c1[i] = FC_TEMPLATE_FMADD(ai, b1, c1[i]);
        }
        a += MR;
        b += ldb;
    }

    FC_PASTE(FC_TEMPLATE_KERNEL, store)(c, ldc, c0, beta);
    FC_PASTE(FC_TEMPLATE_KERNEL, store)(c + L, ldc, c1, beta);
}

/* c (MR x L, row stride ldc) = a (kc x MR packed) * b (kc x L of a 2L-wide panel, row stride
 * ldb) + beta c: the kernel above on its first vector of columns only, each sum in the same
 * order. */
FC_AVX512 void FC_TEMPLATE_KERNEL_NARROW(int64_t kc, const REAL *a, const REAL *b, int64_t ldb,
                                         REAL *c, int64_t ldc, REAL beta)
{
    FC_TEMPLATE_VEC c0[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        c0[i] = FC_TEMPLATE_SETZERO();
    }

#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++) {
        FC_TEMPLATE_VEC b0 = FC_TEMPLATE_LOADU(b);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            c0[i] = FC_TEMPLATE_FMADD(FC_TEMPLATE_SET1(a[i]), b0, c0[i]);
        }
        a += MR;
        b += ldb;
    }

    FC_PASTE(FC_TEMPLATE_KERNEL, store)(c, ldc, c0, beta);
}
