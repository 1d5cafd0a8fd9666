# Pooling kernels: the problem struct is filled here, in one place, from a
# fastconv.pooling.PoolGeometry.

cdef fc_pool_problem _pool_problem(geom):
    cdef fc_pool_problem pb
    pb.N, pb.C, pb.H, pb.W = geom.N, geom.C, geom.H, geom.W
    pb.R, pb.S = geom.kernel
    pb.stride_h, pb.stride_w = geom.stride
    pb.pad_h, pb.pad_w = geom.padding
    pb.dil_h, pb.dil_w = geom.dilation
    pb.P, pb.Q = geom.P, geom.Q
    pb.count_include_pad = geom.count_include_pad
    pb.divisor_override = geom.divisor_override or 0
    return pb


def max_pool_forward(floating[:, :, :, ::1] y, uint8_t[:, :, :, ::1] argmax,
                     int64_t[:, :, :, ::1] indices, const floating[:, :, :, ::1] x, geom):
    """y (N, C, P, Q) from x (N, C, H, W), and the positions of the maxima in argmax and/or
    indices (N, C, P, Q) unless they are None."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    cdef fc_pool_problem pb = _pool_problem(geom)
    cdef uint8_t *am = &argmax[0, 0, 0, 0] if argmax is not None else NULL
    cdef int64_t *ind = &indices[0, 0, 0, 0] if indices is not None else NULL
    cdef fc_status st
    with nogil:
        if floating is float:
            st = fc_max_pool_forward_f32(&y[0, 0, 0, 0], am, ind, &x[0, 0, 0, 0], &pb)
        else:
            st = fc_max_pool_forward_f64(&y[0, 0, 0, 0], am, ind, &x[0, 0, 0, 0], &pb)
    _check(st, "max_pool2d")


def max_pool_backward(floating[:, :, :, ::1] dx, const floating[:, :, :, ::1] dy,
                      const floating[:, :, :, ::1] x, const uint8_t[:, :, :, ::1] argmax,
                      const int64_t[:, :, :, ::1] indices, geom):
    """dx (N, C, H, W) from dy (N, C, P, Q) and, the first not None of them, argmax or indices
    (N, C, P, Q), or x (N, C, H, W) to find the maxima again."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    cdef fc_pool_problem pb = _pool_problem(geom)
    cdef fc_status st
    with nogil:
        if argmax is not None:
            if floating is float:
                st = fc_max_pool_backward_argmax_f32(&dx[0, 0, 0, 0], &dy[0, 0, 0, 0],
                                                     &argmax[0, 0, 0, 0], &pb)
            else:
                st = fc_max_pool_backward_argmax_f64(&dx[0, 0, 0, 0], &dy[0, 0, 0, 0],
                                                     &argmax[0, 0, 0, 0], &pb)
        elif indices is not None:
            if floating is float:
                st = fc_max_pool_backward_indices_f32(&dx[0, 0, 0, 0], &dy[0, 0, 0, 0],
                                                      &indices[0, 0, 0, 0], &pb)
            else:
                st = fc_max_pool_backward_indices_f64(&dx[0, 0, 0, 0], &dy[0, 0, 0, 0],
                                                      &indices[0, 0, 0, 0], &pb)
        else:
            if floating is float:
                st = fc_max_pool_backward_f32(&dx[0, 0, 0, 0], &dy[0, 0, 0, 0], &x[0, 0, 0, 0], &pb)
            else:
                st = fc_max_pool_backward_f64(&dx[0, 0, 0, 0], &dy[0, 0, 0, 0], &x[0, 0, 0, 0], &pb)
    _check(st, "max_pool2d_backward")


def avg_pool_forward(floating[:, :, :, ::1] y, const floating[:, :, :, ::1] x, geom):
    """y (N, C, P, Q) from x (N, C, H, W); geom.adaptive selects adaptive windows."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    cdef fc_pool_problem pb = _pool_problem(geom)
    cdef bint adaptive = geom.adaptive
    cdef fc_status st
    with nogil:
        if floating is float:
            if adaptive:
                st = fc_adaptive_avg_pool_forward_f32(&y[0, 0, 0, 0], &x[0, 0, 0, 0], &pb)
            else:
                st = fc_avg_pool_forward_f32(&y[0, 0, 0, 0], &x[0, 0, 0, 0], &pb)
        else:
            if adaptive:
                st = fc_adaptive_avg_pool_forward_f64(&y[0, 0, 0, 0], &x[0, 0, 0, 0], &pb)
            else:
                st = fc_avg_pool_forward_f64(&y[0, 0, 0, 0], &x[0, 0, 0, 0], &pb)
    _check(st, "adaptive_avg_pool2d" if adaptive else "avg_pool2d")


def avg_pool_backward(floating[:, :, :, ::1] dx, const floating[:, :, :, ::1] dy, geom):
    """dx (N, C, H, W) from dy (N, C, P, Q); geom.adaptive selects adaptive windows."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    cdef fc_pool_problem pb = _pool_problem(geom)
    cdef bint adaptive = geom.adaptive
    cdef fc_status st
    with nogil:
        if floating is float:
            if adaptive:
                st = fc_adaptive_avg_pool_backward_f32(&dx[0, 0, 0, 0], &dy[0, 0, 0, 0], &pb)
            else:
                st = fc_avg_pool_backward_f32(&dx[0, 0, 0, 0], &dy[0, 0, 0, 0], &pb)
        else:
            if adaptive:
                st = fc_adaptive_avg_pool_backward_f64(&dx[0, 0, 0, 0], &dy[0, 0, 0, 0], &pb)
            else:
                st = fc_avg_pool_backward_f64(&dx[0, 0, 0, 0], &dy[0, 0, 0, 0], &pb)
    _check(st, "adaptive_avg_pool2d_backward" if adaptive else "avg_pool2d_backward")
