# Convolution kernels: the problem struct is filled here, in one place, from a
# fastconv._checks.ConvGeometry, and each pass is one call of src/conv.c's dispatcher for
# its dtype, with the algorithm fastconv/plan.py chose. Nothing here checks the problem
# again: the kernels refuse what they cannot run, and _check_conv says why.

cdef fc_conv_problem _conv_problem(geom, bint relu=False):
    """The problem of geom; relu: the forward pass's outputs go through a ReLU as the
    kernel writes them."""
    cdef fc_conv_problem pb
    pb.N, pb.C, pb.H, pb.W = geom.N, geom.C, geom.H, geom.W
    pb.K, pb.R, pb.S = geom.K, geom.R, geom.S
    pb.stride_h, pb.stride_w = geom.stride
    pb.pad_top, pb.pad_bottom, pb.pad_left, pb.pad_right = geom.padding
    pb.dil_h, pb.dil_w = geom.dilation
    pb.groups = geom.groups
    pb.P, pb.Q = geom.P, geom.Q
    pb.relu = relu
    pb.direct_forward = pb.direct_data = pb.direct_weight = 0     # the plan's variants
    return pb


# The C enum of each algorithm name of fastconv/plan.py.
_ALGORITHM_CODES = {"direct": FC_CONV_DIRECT, "im2col": FC_CONV_IM2COL,
                    "winograd": FC_CONV_WINOGRAD, "depthwise": FC_CONV_DEPTHWISE}


cdef fc_conv_algorithm _algorithm_code(str algorithm):
    """The enum of an algorithm name; -1 (which the C dispatchers refuse) for any other."""
    cdef int code = _ALGORITHM_CODES.get(algorithm, -1)
    return <fc_conv_algorithm>code


cdef fc_conv_algorithm _pass_code(str algorithm, fc_conv_problem *pb, str pass_name) except *:
    """The enum of the algorithm pass pass_name ("forward", "backward_data" or
    "backward_weight") runs; "direct:VARIANT" (a name of conv_direct_plan's, e.g.
    "direct:by_filters") also sets the problem's variant for that pass."""
    name, _, variant = algorithm.partition(":")
    if variant:
        codes = _VARIANT_CODES[pass_name]
        if name != "direct" or variant not in codes:
            raise ValueError(f"{pass_name}: unknown direct variant {algorithm!r}; expected "
                             f"one of {['direct:' + v for v in codes]}")
        if pass_name == "forward":
            pb.direct_forward = 1 + codes[variant]
        elif pass_name == "backward_data":
            pb.direct_data = 1 + codes[variant]
        else:
            pb.direct_weight = 1 + codes[variant]
    return _algorithm_code(name)


cdef int _check_conv(fc_status status, str what, str algorithm,
                     const fc_conv_problem *pb) except -1:
    """_check, with the Winograd kernels' refusals said in their own terms."""
    if algorithm == "winograd" and status == FC_ERR_INVALID:
        raise ValueError(f"{what}: winograd needs 3x3 filters, stride 1, dilation 1 and one "
                         f"group, got filters {pb.R}x{pb.S}, stride ({pb.stride_h}, "
                         f"{pb.stride_w}), dilation ({pb.dil_h}, {pb.dil_w}), groups {pb.groups}")
    if algorithm == "winograd" and status == FC_ERR_TOO_LARGE:
        raise MemoryError(f"{what}: the winograd weight gradient's sums (16 x {pb.C} "
                          f"channels x {pb.K} filters) exceed the workspace limit of "
                          f"{FC_WINOGRAD_MAX_SUMS_BYTES >> 20} MiB per thread")
    if algorithm == "depthwise":
        _check_depthwise(status, what, pb)
    return _check(status, what)


def conv_forward(floating[:, :, :, ::1] y, const floating[:, :, :, ::1] x,
                 const floating[:, :, :, ::1] w, const floating[::1] bias, geom, str algorithm,
                 bint relu=False):
    """y (N, K, P, Q) = conv(x (N, C, H, W), w (K, C/g, R, S)) + bias (K or None), by
    algorithm ("direct", "im2col", "winograd" or "depthwise"; "direct:by_pixels" or
    "direct:by_filters" names the direct variant); relu: then max(y, 0) (NaN and -0.0
    kept, as relu_forward), in the same pass."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    cdef fc_conv_problem pb = _conv_problem(geom, relu)
    cdef const floating *b = &bias[0] if bias is not None else NULL
    cdef fc_conv_algorithm code = _pass_code(algorithm, &pb, "forward")
    cdef fc_status st
    with nogil:
        if floating is float:
            st = fc_conv_forward_f32(&y[0, 0, 0, 0], &x[0, 0, 0, 0], &w[0, 0, 0, 0], b, &pb, code)
        else:
            st = fc_conv_forward_f64(&y[0, 0, 0, 0], &x[0, 0, 0, 0], &w[0, 0, 0, 0], b, &pb, code)
    _check_conv(st, "conv2d", algorithm, &pb)


def conv_backward(const floating[:, :, :, ::1] dy, const floating[:, :, :, ::1] x,
                  const floating[:, :, :, ::1] w, floating[:, :, :, ::1] dx,
                  floating[:, :, :, ::1] dw, floating[::1] db, geom, str algorithm,
                  str weight_algorithm):
    """dx (N, C, H, W), dw (K, C/g, R, S), db (K) from dy (N, K, P, Q); None skips one.
    algorithm runs dx; weight_algorithm runs dw ("winograd": the F(4x4, 3x3) weight
    gradient of conv_winograd_weight.c; "direct:scatter" or "direct:gather", and
    "direct:by_pixels" or "direct:by_filters", name the direct variants).
    (dy comes first: Cython picks float or double from the first fused argument.)"""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    cdef fc_conv_problem pb = _conv_problem(geom)
    cdef fc_conv_algorithm code = _pass_code(algorithm, &pb, "backward_data")
    cdef fc_conv_algorithm weight_code = _pass_code(weight_algorithm, &pb, "backward_weight")
    cdef fc_status st = FC_OK
    with nogil:
        if dx is not None:
            if floating is float:
                st = fc_conv_backward_data_f32(&dx[0, 0, 0, 0], &dy[0, 0, 0, 0], &w[0, 0, 0, 0], &pb, code)
            else:
                st = fc_conv_backward_data_f64(&dx[0, 0, 0, 0], &dy[0, 0, 0, 0], &w[0, 0, 0, 0], &pb, code)
    _check_conv(st, "conv2d_backward (input gradient)", algorithm, &pb)
    with nogil:
        if dw is not None:
            if floating is float:
                st = fc_conv_backward_weight_f32(&dw[0, 0, 0, 0], &dy[0, 0, 0, 0], &x[0, 0, 0, 0], &pb, weight_code)
            else:
                st = fc_conv_backward_weight_f64(&dw[0, 0, 0, 0], &dy[0, 0, 0, 0], &x[0, 0, 0, 0], &pb, weight_code)
    _check_conv(st, "conv2d_backward (weight gradient)", weight_algorithm, &pb)
    with nogil:
        if db is not None:
            if floating is float:
                st = fc_conv_backward_bias_f32(&db[0], &dy[0, 0, 0, 0], &pb)
            else:
                st = fc_conv_backward_bias_f64(&db[0], &dy[0, 0, 0, 0], &pb)
    _check(st, "conv2d_backward (bias gradient)")


def winograd_kept_bytes():
    """Bytes all threads keep for their next Winograd call (each thread's are freed as it
    exits): the filter bank of a calling thread and each OpenMP thread's block workspace."""
    return fc_winograd_kept_bytes()
