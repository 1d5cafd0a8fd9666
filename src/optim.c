/* optim.c: SGD's and Adam's updates of one parameter in one pass over memory.
 *
 * NumPy spends ~12 passes (and, without scratch arrays, as many temporaries) on
 * m, v <- moments; param -= lr * m_hat / (sqrt(v_hat) + eps). Here each element is read
 * and written once. The float operations are those of the NumPy expression in
 * fastconv/optim.py, in the same order and each rounded to T (ISO C mode compiles with
 * -ffp-contract=off: no fused multiply-add; sqrt and / are correctly rounded), so both
 * give the same bits: tests/test_buffer_reuse.py checks it. Single-threaded: LeNet-5's
 * largest parameter (48,000 floats) takes microseconds, less than waking a second thread. */
#include <math.h>

#include "fastconv.h"

#define FC_DEFINE_ADAM(SUFFIX, T, SQRT)                                                        \
    void fc_adam_update_##SUFFIX(T *param, T *m, T *v, const T *grad, int64_t n,             \
                                 const fc_adam_scalars_##SUFFIX *s)                            \
    {                                                                                         \
        for (int64_t i = 0; i < n; i++) {                                                     \
            const T g = grad[i];                                                              \
            const T mi = m[i] * s->beta1 + g * s->one_minus_beta1;                            \
            const T vi = v[i] * s->beta2 + (g * s->one_minus_beta2) * g;                      \
            m[i] = mi;                                                                        \
            v[i] = vi;                                                                        \
            const T m_hat = mi / s->correction1;                                              \
            const T v_hat = vi / s->correction2;                                              \
            param[i] -= (m_hat * s->lr) / (SQRT(v_hat) + s->eps);                             \
        }                                                                                     \
    }

FC_DEFINE_ADAM(f32, float, sqrtf)
FC_DEFINE_ADAM(f64, double, sqrt)

/* SGD: with a velocity v (momentum > 0) v <- momentum * v + g (v <- g on the first step,
 * as torch), the step along v or, Nesterov, along g + momentum * v; param -= lr * step.
 * velocity NULL: plain SGD, param -= lr * g. */
#define FC_DEFINE_SGD(SUFFIX, T)                                                               \
    void fc_sgd_update_##SUFFIX(T *param, T *velocity, const T *grad, int64_t n, T momentum,  \
                                T lr, int nesterov, int first)                                \
    {                                                                                         \
        for (int64_t i = 0; i < n; i++) {                                                     \
            const T g = grad[i];                                                              \
            T step = g;                                                                       \
            if (velocity != NULL) {                                                           \
                const T vi = first ? g : velocity[i] * momentum + g;                          \
                velocity[i] = vi;                                                             \
                step = nesterov ? g + vi * momentum : vi;                                     \
            }                                                                                 \
            param[i] -= step * lr;                                                            \
        }                                                                                     \
    }

FC_DEFINE_SGD(f32, float)
FC_DEFINE_SGD(f64, double)
