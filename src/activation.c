/* activation.c: ReLU forward (in place) and backward, for the layers' fused conv + ReLU.
 *
 * NumPy needs two passes and a temporary for each (np.maximum, then grad * (y > 0)); one
 * pass over memory the convolution just wrote is several times faster on LeNet-5's
 * activations (1.2 MB). The loops are simple enough for the compiler to vectorise. */
#include "fastconv.h"

/* Below this many elements one thread is faster than waking the others. */
#define ACT_PARALLEL_MIN ((int64_t)1 << 16)

/* y <- max(y, 0) element-wise; NaN stays NaN (as np.maximum). */
#define FC_DEFINE_RELU(SUFFIX, T)                                                             \
    void fc_relu_forward_##SUFFIX(T *y, int64_t n)                                            \
    {                                                                                         \
        _Pragma("omp parallel for simd schedule(static) if (n >= ACT_PARALLEL_MIN)")          \
        for (int64_t i = 0; i < n; i++) {                                                     \
            const T v = y[i];                                                                 \
            y[i] = v < 0 ? (T)0 : v;                                                          \
        }                                                                                     \
    }                                                                                         \
    /* dx <- dy where y > 0, else 0 (y: the ReLU's output; NaN in y gives 0, as y > 0). */   \
    void fc_relu_backward_##SUFFIX(T *dx, const T *dy, const T *y, int64_t n)                 \
    {                                                                                         \
        _Pragma("omp parallel for simd schedule(static) if (n >= ACT_PARALLEL_MIN)")          \
        for (int64_t i = 0; i < n; i++) {                                                     \
            const T g = dy[i];   /* read unconditionally: the select becomes a blend */ \
            dx[i] = y[i] > 0 ? g : (T)0;                                                      \
        }                                                                                     \
    }

FC_DEFINE_RELU(f32, float)
FC_DEFINE_RELU(f64, double)
