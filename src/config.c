/* config.c: run-time facts and switches: OpenMP threads and the SIMD path in use. */
#include "fastconv.h"

#ifdef _OPENMP
#include <omp.h>
#endif

int fc_have_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* Threads follow OpenMP's own setting (OMP_NUM_THREADS, omp_set_num_threads), so
 * threadpoolctl, which calls omp_set_num_threads in the loaded runtime, works too. */
int fc_get_num_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void fc_set_num_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n > 0 ? n : 1);
#else
    (void)n;
#endif
}

int fc_cpu_has_avx2_fma(void)
{
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* Chosen once at import (fastconv/config.py reads FASTCONV_SIMD) and on request by the
 * tests; kernels read it at the start of each call. */
static int use_avx2 = 0;

void fc_simd_select(int want_avx2)
{
    use_avx2 = want_avx2 && fc_cpu_has_avx2_fma();
}

int fc_simd_avx2(void)
{
    return use_avx2;
}

const char *fc_simd_name(void)
{
    return use_avx2 ? "avx2+fma" : "generic";
}
