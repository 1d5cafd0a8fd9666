/*
 * conv_threads.h: what the convolution kernels share about their OpenMP teams: which
 * thread is running, and the fixed-order sum of per-thread weight-gradient partials that
 * makes results bitwise identical from run to run at a given thread count.
 */
#ifndef FC_CONV_THREADS_H
#define FC_CONV_THREADS_H

#include <stdint.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* The calling thread's number in its team (0 outside a parallel region or without OpenMP). */
static inline int fc_thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The number of threads in the calling thread's team (1 outside a parallel region or
 * without OpenMP): the runtime may start fewer than num_threads asks for. */
static inline int fc_team_size(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* dw (size values, thread 0's sum) += partials of threads 1 .. team-1, stored one after
 * the other, in thread order: a fixed order, so the same thread count gives the same bits. */
#define FC_DEFINE_ADD_PARTIALS(SUFFIX, T)                                                    \
    static inline void fc_add_partials_##SUFFIX(T *dw, const T *partials, int team,          \
                                                int64_t size)                               \
    {                                                                                        \
        for (int t = 1; t < team; t++) {                                                     \
            const T *part = partials + (t - 1) * size;                                       \
            for (int64_t i = 0; i < size; i++) {                                             \
                dw[i] += part[i];                                                            \
            }                                                                                \
        }                                                                                    \
    }
FC_DEFINE_ADD_PARTIALS(f32, float)
FC_DEFINE_ADD_PARTIALS(f64, double)
#undef FC_DEFINE_ADD_PARTIALS

#endif /* FC_CONV_THREADS_H */
