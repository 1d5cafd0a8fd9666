# SGD's and Adam's one-pass updates (src/optim.c). Arrays arrive flat, C-contiguous, of one length.

def adam_update(floating[::1] param, floating[::1] m, floating[::1] v,
                const floating[::1] grad, double beta1, double beta2, double correction1,
                double correction2, double lr, double eps):
    """param, m, v updated in place from grad. The scalars are Python's doubles: 1 - beta
    is formed in double and every scalar then rounded to the arrays' type, as NumPy does
    with a Python float in an expression (param first: Cython picks the type from it)."""
    cdef int64_t n = param.shape[0]
    if m.shape[0] != n or v.shape[0] != n or grad.shape[0] != n:
        raise ValueError("adam_update: param, m, v and grad must have the same length")
    cdef fc_adam_scalars_f32 s32
    cdef fc_adam_scalars_f64 s64
    if n == 0:
        return
    if floating is float:
        s32.beta1, s32.one_minus_beta1 = <float>beta1, <float>(1 - beta1)
        s32.beta2, s32.one_minus_beta2 = <float>beta2, <float>(1 - beta2)
        s32.correction1, s32.correction2 = <float>correction1, <float>correction2
        s32.lr, s32.eps = <float>lr, <float>eps
        with nogil:
            fc_adam_update_f32(&param[0], &m[0], &v[0], &grad[0], n, &s32)
    else:
        s64.beta1, s64.one_minus_beta1, s64.beta2, s64.one_minus_beta2 = \
            beta1, 1 - beta1, beta2, 1 - beta2
        s64.correction1, s64.correction2, s64.lr, s64.eps = correction1, correction2, lr, eps
        with nogil:
            fc_adam_update_f64(&param[0], &m[0], &v[0], &grad[0], n, &s64)


def sgd_update(floating[::1] param, floating[::1] velocity, const floating[::1] grad,
               double momentum, double lr, bint nesterov, bint first):
    """param (and velocity unless None) updated in place from grad; the scalars rounded
    to the arrays' type as NumPy rounds a Python float."""
    cdef int64_t n = param.shape[0]
    if grad.shape[0] != n or (velocity is not None and velocity.shape[0] != n):
        raise ValueError("sgd_update: param, velocity and grad must have the same length")
    if n == 0:
        return
    cdef floating *vel = &velocity[0] if velocity is not None else NULL
    with nogil:
        if floating is float:
            fc_sgd_update_f32(&param[0], vel, &grad[0], n, <float>momentum, <float>lr,
                              nesterov, first)
        else:
            fc_sgd_update_f64(&param[0], vel, &grad[0], n, momentum, lr, nesterov, first)
