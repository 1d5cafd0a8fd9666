/*
 * gemm_avx2.c: AVX2+FMA GEMM micro-kernels (contract in gemm_kernels.h).
 *
 * The project is compiled without -mavx2, so each function carries its own target attribute
 * and is only called after fc_simd_avx2() says the CPU has AVX2 and FMA.
 */
#include "gemm_kernels.h"

#if FC_GEMM_HAVE_AVX2

#include <immintrin.h>

#define FC_AVX2 __attribute__((target("avx2,fma")))

/* c (6 x 16, row stride ldc) = a (kc x 6 packed) * b (kc x 16, row stride ldb) + beta c */
FC_AVX2 void fc_gemm_kernel_avx2_6x16_f32(int64_t kc, const float *a, const float *b,
                                          int64_t ldb, float *c, int64_t ldc, float beta)
{
    /* 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 YMM registers. */
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();

    /* The C tile is written last: start pulling its 6 rows into cache now. */
    for (int i = 0; i < 6; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
    }

#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(b);
        __m256 b1 = _mm256_loadu_ps(b + 8);
        __m256 ai;
        ai = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(ai, b0, c00);
        c01 = _mm256_fmadd_ps(ai, b1, c01);
        ai = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(ai, b0, c10);
        c11 = _mm256_fmadd_ps(ai, b1, c11);
        ai = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(ai, b0, c20);
        c21 = _mm256_fmadd_ps(ai, b1, c21);
        ai = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(ai, b0, c30);
        c31 = _mm256_fmadd_ps(ai, b1, c31);
        ai = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(ai, b0, c40);
        c41 = _mm256_fmadd_ps(ai, b1, c41);
        ai = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(ai, b0, c50);
        c51 = _mm256_fmadd_ps(ai, b1, c51);
        a += 6;
        b += ldb;
    }

    __m256 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    if (beta == 0.0f) {
        /* Overwrite without reading C: it may hold NaN. */
        for (int i = 0; i < 6; i++) {
            _mm256_storeu_ps(c + i * ldc, acc[2 * i]);
            _mm256_storeu_ps(c + i * ldc + 8, acc[2 * i + 1]);
        }
    } else {
        __m256 vb = _mm256_set1_ps(beta);
        for (int i = 0; i < 6; i++) {
            float *ci = c + i * ldc;
            _mm256_storeu_ps(ci, _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), acc[2 * i]));
            _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), acc[2 * i + 1]));
        }
    }
}

/* c (6 x 8, row stride ldc) = a (kc x 6 packed) * b (kc x 8, row stride ldb) + beta c */
FC_AVX2 void fc_gemm_kernel_avx2_6x8_f64(int64_t kc, const double *a, const double *b,
                                         int64_t ldb, double *c, int64_t ldc, double beta)
{
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();

    for (int i = 0; i < 6; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 7), _MM_HINT_T0);
    }

#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        __m256d b0 = _mm256_loadu_pd(b);
        __m256d b1 = _mm256_loadu_pd(b + 4);
        __m256d ai;
        ai = _mm256_broadcast_sd(a + 0);
        c00 = _mm256_fmadd_pd(ai, b0, c00);
        c01 = _mm256_fmadd_pd(ai, b1, c01);
        ai = _mm256_broadcast_sd(a + 1);
        c10 = _mm256_fmadd_pd(ai, b0, c10);
        c11 = _mm256_fmadd_pd(ai, b1, c11);
        ai = _mm256_broadcast_sd(a + 2);
        c20 = _mm256_fmadd_pd(ai, b0, c20);
        c21 = _mm256_fmadd_pd(ai, b1, c21);
        ai = _mm256_broadcast_sd(a + 3);
        c30 = _mm256_fmadd_pd(ai, b0, c30);
        c31 = _mm256_fmadd_pd(ai, b1, c31);
        ai = _mm256_broadcast_sd(a + 4);
        c40 = _mm256_fmadd_pd(ai, b0, c40);
        c41 = _mm256_fmadd_pd(ai, b1, c41);
        ai = _mm256_broadcast_sd(a + 5);
        c50 = _mm256_fmadd_pd(ai, b0, c50);
        c51 = _mm256_fmadd_pd(ai, b1, c51);
        a += 6;
        b += ldb;
    }

    __m256d acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    if (beta == 0.0) {
        for (int i = 0; i < 6; i++) {
            _mm256_storeu_pd(c + i * ldc, acc[2 * i]);
            _mm256_storeu_pd(c + i * ldc + 4, acc[2 * i + 1]);
        }
    } else {
        __m256d vb = _mm256_set1_pd(beta);
        for (int i = 0; i < 6; i++) {
            double *ci = c + i * ldc;
            _mm256_storeu_pd(ci, _mm256_fmadd_pd(vb, _mm256_loadu_pd(ci), acc[2 * i]));
            _mm256_storeu_pd(ci + 4, _mm256_fmadd_pd(vb, _mm256_loadu_pd(ci + 4), acc[2 * i + 1]));
        }
    }
}

#else

/* No x86 AVX2 here: gemm.c uses the portable kernels only. ISO C wants a non-empty unit. */
typedef int fc_gemm_avx2_unavailable;

#endif
