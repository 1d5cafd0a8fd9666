/* gemm_avx2_impl.h: the AVX2+FMA GEMM micro-kernel (contract in gemm_kernels.h) for one
 * element type: 6 rows of two YMM vectors. Included by gemm_avx2.c with REAL (template.h),
 * the kernel (gemm_tile.h) and the vector of REAL (simd_avx2_f32.h, simd_avx2_f64.h):
 *     FC_TEMPLATE_KERNEL     the name to define (fc_gemm_kernel_avx2_6x16_f32, ...)
 *     FC_TEMPLATE_LANES      REALs per vector (8 float, 4 double); the tile is 2 vectors wide
 *     FC_TEMPLATE_VEC        the vector type
 *     FC_TEMPLATE_LOADU, FC_TEMPLATE_STOREU, FC_TEMPLATE_SETZERO, FC_TEMPLATE_BROADCAST,
 *     FC_TEMPLATE_SET1, FC_TEMPLATE_FMADD   its operations (BROADCAST from memory, SET1
 *                                           from a value)
 */

/* c (6 x 2L, row stride ldc) = a (kc x 6 packed) * b (kc x 2L, row stride ldb) + beta c,
 * L = FC_TEMPLATE_LANES */
FC_AVX2 void FC_TEMPLATE_KERNEL(int64_t kc, const REAL *a, const REAL *b, int64_t ldb, REAL *c,
                                int64_t ldc, REAL beta)
{
    const int L = FC_TEMPLATE_LANES;
    /* 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 YMM registers. */
    FC_TEMPLATE_VEC c00 = FC_TEMPLATE_SETZERO(), c01 = FC_TEMPLATE_SETZERO();
    FC_TEMPLATE_VEC c10 = FC_TEMPLATE_SETZERO(), c11 = FC_TEMPLATE_SETZERO();
    FC_TEMPLATE_VEC c20 = FC_TEMPLATE_SETZERO(), c21 = FC_TEMPLATE_SETZERO();
    FC_TEMPLATE_VEC c30 = FC_TEMPLATE_SETZERO(), c31 = FC_TEMPLATE_SETZERO();
    FC_TEMPLATE_VEC c40 = FC_TEMPLATE_SETZERO(), c41 = FC_TEMPLATE_SETZERO();
    FC_TEMPLATE_VEC c50 = FC_TEMPLATE_SETZERO(), c51 = FC_TEMPLATE_SETZERO();

    /* The C tile is written last: start pulling its 6 rows into cache now. */
    for (int i = 0; i < 6; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 2 * L - 1), _MM_HINT_T0);
    }

#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        FC_TEMPLATE_VEC b0 = FC_TEMPLATE_LOADU(b);
        FC_TEMPLATE_VEC b1 = FC_TEMPLATE_LOADU(b + L);
        FC_TEMPLATE_VEC ai;
        ai = FC_TEMPLATE_BROADCAST(a + 0);
        c00 = FC_TEMPLATE_FMADD(ai, b0, c00);
        c01 = FC_TEMPLATE_FMADD(ai, b1, c01);
        ai = FC_TEMPLATE_BROADCAST(a + 1);
        c10 = FC_TEMPLATE_FMADD(ai, b0, c10);
        c11 = FC_TEMPLATE_FMADD(ai, b1, c11);
        ai = FC_TEMPLATE_BROADCAST(a + 2);
        c20 = FC_TEMPLATE_FMADD(ai, b0, c20);
        c21 = FC_TEMPLATE_FMADD(ai, b1, c21);
        ai = FC_TEMPLATE_BROADCAST(a + 3);
        c30 = FC_TEMPLATE_FMADD(ai, b0, c30);
        c31 = FC_TEMPLATE_FMADD(ai, b1, c31);
        ai = FC_TEMPLATE_BROADCAST(a + 4);
        c40 = FC_TEMPLATE_FMADD(ai, b0, c40);
        c41 = FC_TEMPLATE_FMADD(ai, b1, c41);
        ai = FC_TEMPLATE_BROADCAST(a + 5);
        c50 = FC_TEMPLATE_FMADD(ai, b0, c50);
        c51 = FC_TEMPLATE_FMADD(ai, b1, c51);
        a += 6;
        b += ldb;
    }

    FC_TEMPLATE_VEC acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    if (beta == 0) {
        /* Overwrite without reading C: it may hold NaN. */
        for (int i = 0; i < 6; i++) {
            FC_TEMPLATE_STOREU(c + i * ldc, acc[2 * i]);
            FC_TEMPLATE_STOREU(c + i * ldc + L, acc[2 * i + 1]);
        }
    } else {
        FC_TEMPLATE_VEC vb = FC_TEMPLATE_SET1(beta);
        for (int i = 0; i < 6; i++) {
            REAL *ci = c + i * ldc;
            FC_TEMPLATE_STOREU(ci, FC_TEMPLATE_FMADD(vb, FC_TEMPLATE_LOADU(ci), acc[2 * i]));
            FC_TEMPLATE_STOREU(ci + L,
                               FC_TEMPLATE_FMADD(vb, FC_TEMPLATE_LOADU(ci + L), acc[2 * i + 1]));
        }
    }
}
