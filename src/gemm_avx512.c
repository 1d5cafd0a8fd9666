/*
 * gemm_avx512.c: AVX-512 GEMM micro-kernels (contract in gemm_kernels.h).
 *
 * A 6-row tile of 512-bit vectors would hold only 12 accumulators: with two FMA units of
 * 4-cycle latency at least 8 independent chains are needed, and each k step would spend
 * 6 broadcasts on 12 FMAs. So the tile is taller and two vectors wide: MR x 32 floats or
 * MR x 16 doubles, 2*MR accumulators (MR = FC_GEMM_MR_AVX512; 2*MR + 2 B vectors + 1
 * broadcast fit the 32 ZMM registers). The project is compiled without -mavx512f, so each
 * function carries its own target attribute and is only called when fc_simd_avx512() is 1.
 */
#include "gemm_kernels.h"

#if FC_GEMM_HAVE_AVX512

#include <immintrin.h>

#define FC_AVX512 __attribute__((target("avx512f")))
#define MR FC_GEMM_MR_AVX512

/* The C tile is written last: start pulling its rows (two 64-byte lines each) into cache. */
static inline void prefetch_c(const char *c, int64_t ldc_bytes)
{
    for (int i = 0; i < MR; i++) {
        _mm_prefetch(c + i * ldc_bytes, _MM_HINT_T0);
        _mm_prefetch(c + i * ldc_bytes + 64, _MM_HINT_T0);
    }
}

/* c (MR x 32, row stride ldc) = a (kc x MR packed) * b (kc x 32, row stride ldb) + beta c */
FC_AVX512 void fc_gemm_kernel_avx512_f32(int64_t kc, const float *a, const float *b,
                                         int64_t ldb, float *c, int64_t ldc, float beta)
{
    /* Fully unrolled loops over i: GCC keeps the arrays in registers. */
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        c0[i] = _mm512_setzero_ps();
        c1[i] = _mm512_setzero_ps();
    }
    prefetch_c((const char *)c, ldc * (int64_t)sizeof(float));

#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_loadu_ps(b);
        __m512 b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        }
        a += MR;
        b += ldb;
    }

    if (beta == 0.0f) {
        /* Overwrite without reading C: it may hold NaN. */
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            _mm512_storeu_ps(c + i * ldc, c0[i]);
            _mm512_storeu_ps(c + i * ldc + 16, c1[i]);
        }
    } else {
        __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            float *ci = c + i * ldc;
            _mm512_storeu_ps(ci, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), c0[i]));
            _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16), c1[i]));
        }
    }
}

/* c (MR x 16, row stride ldc) = a (kc x MR packed) * b (kc x 16, row stride ldb) + beta c */
FC_AVX512 void fc_gemm_kernel_avx512_f64(int64_t kc, const double *a, const double *b,
                                         int64_t ldb, double *c, int64_t ldc, double beta)
{
    __m512d c0[MR], c1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        c0[i] = _mm512_setzero_pd();
        c1[i] = _mm512_setzero_pd();
    }
    prefetch_c((const char *)c, ldc * (int64_t)sizeof(double));

#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++) {
        __m512d b0 = _mm512_loadu_pd(b);
        __m512d b1 = _mm512_loadu_pd(b + 8);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            __m512d ai = _mm512_set1_pd(a[i]);
            c0[i] = _mm512_fmadd_pd(ai, b0, c0[i]);
            c1[i] = _mm512_fmadd_pd(ai, b1, c1[i]);
        }
        a += MR;
        b += ldb;
    }

    if (beta == 0.0) {
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            _mm512_storeu_pd(c + i * ldc, c0[i]);
            _mm512_storeu_pd(c + i * ldc + 8, c1[i]);
        }
    } else {
        __m512d vb = _mm512_set1_pd(beta);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            double *ci = c + i * ldc;
            _mm512_storeu_pd(ci, _mm512_fmadd_pd(vb, _mm512_loadu_pd(ci), c0[i]));
            _mm512_storeu_pd(ci + 8, _mm512_fmadd_pd(vb, _mm512_loadu_pd(ci + 8), c1[i]));
        }
    }
}

#else

/* No x86 AVX-512 here: gemm.c uses the 6-row kernels only. ISO C wants a non-empty unit. */
typedef int fc_gemm_avx512_unavailable;

#endif
