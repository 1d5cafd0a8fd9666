# Batch normalisation (src/batchnorm.c). Arrays arrive C-contiguous: x, y, dy, dx as
# (N, C, HW); per-channel arrays of C values (weight, bias, running statistics: the layer's
# dtype or None; mean, invstd: float64).

cdef fc_batch_norm_problem _batch_norm_problem(tuple shape, tuple per_channel, double eps,
                                               double momentum, bint relu, str what) except *:
    """The C problem of an (N, C, HW) call (relu: a ReLU follows, in the same passes), after
    checking that every per-channel array that is not None holds C values (shape[1])."""
    cdef fc_batch_norm_problem pb
    pb.N, pb.C, pb.HW = shape[0], shape[1], shape[2]
    for a in per_channel:
        if a is not None and a.shape[0] != pb.C:
            raise ValueError(f"{what}: the per-channel arrays must hold {pb.C} values, got "
                             f"one of {a.shape[0]}")
    pb.eps, pb.momentum, pb.relu = eps, momentum, relu
    return pb


def batch_norm_forward_train(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                             double[::1] mean, double[::1] invstd,
                             floating[::1] running_mean, floating[::1] running_var,
                             const floating[::1] weight, const floating[::1] bias,
                             double eps, double momentum, bint relu=False):
    """y from the batch's statistics (then max(y, 0) where relu); mean and invstd (float64)
    for the backward; the running statistics (None: none) updated in place with `momentum`
    (x first: Cython picks the type from it)."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    what = "batch_norm (training)"
    shape = (x.shape[0], x.shape[1], x.shape[2])
    if (y.shape[0], y.shape[1], y.shape[2]) != shape:
        raise ValueError(f"{what}: y must have the shape of x")
    cdef fc_batch_norm_problem pb = _batch_norm_problem(
        shape, (mean, invstd, running_mean, running_var, weight, bias),
        eps, momentum, relu, what)
    if (mean is None or invstd is None or (running_mean is None) != (running_var is None)):
        raise ValueError(f"{what}: mean and invstd are required, running_mean and "
                         f"running_var go together")
    cdef floating *rm = &running_mean[0] if running_mean is not None else NULL
    cdef floating *rv = &running_var[0] if running_var is not None else NULL
    cdef const floating *w = &weight[0] if weight is not None else NULL
    cdef const floating *b = &bias[0] if bias is not None else NULL
    cdef fc_status st
    with nogil:
        if floating is float:
            st = fc_batch_norm_forward_train_f32(&y[0, 0, 0], &mean[0], &invstd[0], rm, rv,
                                                 &x[0, 0, 0], w, b, &pb)
        else:
            st = fc_batch_norm_forward_train_f64(&y[0, 0, 0], &mean[0], &invstd[0], rm, rv,
                                                 &x[0, 0, 0], w, b, &pb)
    _check(st, what)


def batch_norm_forward_eval(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                            const floating[::1] mean, const floating[::1] var,
                            const floating[::1] weight, const floating[::1] bias, double eps,
                            bint relu=False):
    """y from given statistics (the running ones), then max(y, 0) where relu."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    what = "batch_norm (inference)"
    shape = (x.shape[0], x.shape[1], x.shape[2])
    if (y.shape[0], y.shape[1], y.shape[2]) != shape:
        raise ValueError(f"{what}: y must have the shape of x")
    if mean is None or var is None:
        raise ValueError(f"{what}: mean and var are required")
    cdef fc_batch_norm_problem pb = _batch_norm_problem(
        shape, (mean, var, weight, bias), eps, 0.0, relu, what)
    cdef const floating *w = &weight[0] if weight is not None else NULL
    cdef const floating *b = &bias[0] if bias is not None else NULL
    cdef fc_status st
    with nogil:
        if floating is float:
            st = fc_batch_norm_forward_eval_f32(&y[0, 0, 0], &x[0, 0, 0], &mean[0], &var[0],
                                                w, b, &pb)
        else:
            st = fc_batch_norm_forward_eval_f64(&y[0, 0, 0], &x[0, 0, 0], &mean[0], &var[0],
                                                w, b, &pb)
    _check(st, what)


def batch_norm_backward(const floating[:, :, ::1] dy, const floating[:, :, ::1] x,
                        const double[::1] mean, const double[::1] invstd,
                        const floating[::1] weight, floating[:, :, ::1] dx,
                        floating[::1] dweight, floating[::1] dbias,
                        const floating[:, :, ::1] relu_y=None):
    """dx (None: skipped), dweight and dbias (None: skipped) of the training forward that
    gave mean and invstd; relu_y, that forward's output where it ran with relu (a ReLU
    after it: dy counts where relu_y > 0 only), else None (dy first: Cython picks the type
    from it)."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    what = "batch_norm_backward"
    shape = (x.shape[0], x.shape[1], x.shape[2])
    if (dy.shape[0], dy.shape[1], dy.shape[2]) != shape or \
            (dx is not None and (dx.shape[0], dx.shape[1], dx.shape[2]) != shape) or \
            (relu_y is not None and (relu_y.shape[0], relu_y.shape[1],
                                     relu_y.shape[2]) != shape):
        raise ValueError(f"{what}: dy, dx and relu_y must have the shape of x")
    if mean is None or invstd is None:
        raise ValueError(f"{what}: mean and invstd are required")
    cdef fc_batch_norm_problem pb = _batch_norm_problem(
        shape, (mean, invstd, weight, dweight, dbias), 1.0, 0.0, relu_y is not None, what)
    cdef const floating *py = &relu_y[0, 0, 0] if relu_y is not None else NULL
    cdef const floating *w = &weight[0] if weight is not None else NULL
    cdef floating *pdx = &dx[0, 0, 0] if dx is not None else NULL
    cdef floating *pdw = &dweight[0] if dweight is not None else NULL
    cdef floating *pdb = &dbias[0] if dbias is not None else NULL
    cdef fc_status st
    with nogil:
        if floating is float:
            st = fc_batch_norm_backward_f32(pdx, pdw, pdb, &dy[0, 0, 0], &x[0, 0, 0], py,
                                            &mean[0], &invstd[0], w, &pb)
        else:
            st = fc_batch_norm_backward_f64(pdx, pdw, pdb, &dy[0, 0, 0], &x[0, 0, 0], py,
                                            &mean[0], &invstd[0], w, &pb)
    _check(st, what)
