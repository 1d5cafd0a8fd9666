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

/* OpenMP's thread count belongs to the thread that sets it: a Python thread started later
 * would run its kernels with the default. fastconv.set_num_threads is process-wide (like
 * torch.set_num_threads), so it is recorded here with a generation number, and
 * fc_sync_num_threads, called by the glue before every kernel, applies it once to each
 * calling thread. A later per-thread change (threadpoolctl's threadpool_limits) is left
 * alone until the next set_num_threads. Written and read with the GIL held. A serial
 * build has one thread and nothing to record. */
static int openmp_started = 0;          /* a kernel may have started OpenMP's thread pool */

#ifdef _OPENMP

#if defined(_MSC_VER)
#define FC_THREAD_LOCAL __declspec(thread)
#else
#define FC_THREAD_LOCAL _Thread_local
#endif

static int requested_threads = 0;       /* 0: never set, OpenMP's default */
static unsigned generation = 0;
static FC_THREAD_LOCAL unsigned seen_generation = 0;

void fc_set_num_threads(int n)
{
    requested_threads = n > 0 ? n : 1;
    generation++;
    seen_generation = generation;
    omp_set_num_threads(requested_threads);
}

void fc_set_thread_num_threads(int n)
{
    omp_set_num_threads(n > 0 ? n : 1);
    seen_generation = generation;
}

void fc_sync_num_threads(void)
{
    if (requested_threads > 0 && seen_generation != generation) {
        omp_set_num_threads(requested_threads);
        seen_generation = generation;
    }
    if (omp_get_max_threads() > 1) {
        openmp_started = 1;
    }
}

#else

void fc_set_num_threads(int n)
{
    (void)n;
}

void fc_sync_num_threads(void)
{
}

void fc_set_thread_num_threads(int n)
{
    (void)n;
}

#endif

int fc_openmp_started(void)
{
    return openmp_started;
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

int fc_cpu_has_avx512(void)
{
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return fc_cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

/* Chosen once at import (fastconv/config.py reads FASTCONV_SIMD) and on request by the
 * tests; kernels read it at the start of each call. */
static int simd_level = FC_SIMD_GENERIC;

void fc_simd_select(int level)
{
    if (level >= FC_SIMD_AVX512 && fc_cpu_has_avx512()) {
        simd_level = FC_SIMD_AVX512;
    } else if (level >= FC_SIMD_AVX2 && fc_cpu_has_avx2_fma()) {
        simd_level = FC_SIMD_AVX2;
    } else {
        simd_level = FC_SIMD_GENERIC;
    }
}

int fc_simd_avx2(void)
{
    return simd_level >= FC_SIMD_AVX2;
}

int fc_simd_avx512(void)
{
    return simd_level >= FC_SIMD_AVX512;
}

const char *fc_simd_name(void)
{
    return simd_level == FC_SIMD_AVX512 ? "avx512" : simd_level == FC_SIMD_AVX2 ? "avx2+fma"
                                                                                 : "generic";
}
