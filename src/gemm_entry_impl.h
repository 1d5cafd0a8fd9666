/* gemm_entry_impl.h: the public GEMM entry point for one element type (template.h: REAL,
 * FN), included by gemm.c after the per-ISA instances of gemm_impl.h: the AVX-512 instance
 * at that level, else the AVX2 one, else the portable one. */

fc_status FN(fc_gemm)(int64_t M, int64_t N, int64_t K, const REAL *A, int64_t rsa, int64_t csa,
                      const REAL *B, int64_t rsb, int64_t csb, REAL beta, REAL *C, int64_t ldc,
                      int nthreads)
{
#if FC_GEMM_HAVE_AVX512
    if (fc_simd_avx512()) {
        return FN(gemm_avx512)(M, N, K, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads);
    }
#endif
#if FC_GEMM_HAVE_AVX2
    if (fc_simd_avx2()) {
        return FN(gemm_avx2)(M, N, K, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads);
    }
#endif
    return FN(gemm_generic)(M, N, K, A, rsa, csa, B, rsb, csb, beta, C, ldc, nthreads);
}
