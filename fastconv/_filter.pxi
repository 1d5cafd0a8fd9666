# Single-plane filters and Canny's stages (src/filter2d.c, src/canny.c).

# Border mode names of fastconv.filters, in the order of the C enum fc_border.
BORDER_MODES = ("constant", "reflect", "replicate", "mirror", "wrap")


cdef fc_filter_problem _filter_problem(y_shape, x_shape, k_shape, int border) except *:
    cdef fc_filter_problem pb
    if tuple(y_shape[:3]) != tuple(x_shape):
        raise ValueError(f"filter2d: y has shape {tuple(y_shape[:3])}, x {tuple(x_shape)}")
    pb.N, pb.H, pb.W = x_shape[0], x_shape[1], x_shape[2]
    pb.R, pb.S = k_shape[0], k_shape[1]
    pb.border = <fc_border>border
    return pb


def filter2d(floating[:, :, ::1] y, x, const floating[:, ::1] k, int border):
    """y (N, H, W) = x (N, H, W) correlated with k (R, S), borders by BORDER_MODES[border];
    x of y's type, or uint8."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    cdef fc_filter_problem pb = _filter_problem(y.shape, x.shape, k.shape, border)
    cdef fc_status st = FC_OK
    cdef const uint8_t[:, :, ::1] x8
    cdef const floating[:, :, ::1] xf
    if pb.N == 0 or pb.H == 0 or pb.W == 0:
        return
    if x.dtype.name == "uint8":
        x8 = x
        with nogil:
            if floating is float:
                st = fc_filter2d_u8_f32(&y[0, 0, 0], &x8[0, 0, 0], &k[0, 0], &pb)
            else:
                st = fc_filter2d_u8_f64(&y[0, 0, 0], &x8[0, 0, 0], &k[0, 0], &pb)
    else:
        xf = x
        with nogil:
            if floating is float:
                st = fc_filter2d_f32(&y[0, 0, 0], &xf[0, 0, 0], &k[0, 0], &pb)
            else:
                st = fc_filter2d_f64(&y[0, 0, 0], &xf[0, 0, 0], &k[0, 0], &pb)
    _check(st, "filter2d")


def filter2d_magnitude(floating[:, :, ::1] y, x, const floating[:, ::1] kx,
                       const floating[:, ::1] ky, int border):
    """y (N, H, W) = sqrt((x * kx)^2 + (x * ky)^2), kx and ky (R, S) of the same size; x of
    y's type, or uint8."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    cdef fc_filter_problem pb = _filter_problem(y.shape, x.shape, kx.shape, border)
    cdef fc_status st = FC_OK
    cdef const uint8_t[:, :, ::1] x8
    cdef const floating[:, :, ::1] xf
    if ky.shape[0] != kx.shape[0] or ky.shape[1] != kx.shape[1]:
        raise ValueError("filter2d_magnitude: kx and ky must have the same shape")
    if pb.N == 0 or pb.H == 0 or pb.W == 0:
        return
    if x.dtype.name == "uint8":
        x8 = x
        with nogil:
            if floating is float:
                st = fc_filter2d_magnitude_u8_f32(&y[0, 0, 0], &x8[0, 0, 0], &kx[0, 0],
                                                  &ky[0, 0], &pb)
            else:
                st = fc_filter2d_magnitude_u8_f64(&y[0, 0, 0], &x8[0, 0, 0], &kx[0, 0],
                                                  &ky[0, 0], &pb)
    else:
        xf = x
        with nogil:
            if floating is float:
                st = fc_filter2d_magnitude_f32(&y[0, 0, 0], &xf[0, 0, 0], &kx[0, 0], &ky[0, 0],
                                               &pb)
            else:
                st = fc_filter2d_magnitude_f64(&y[0, 0, 0], &xf[0, 0, 0], &kx[0, 0], &ky[0, 0],
                                               &pb)
    _check(st, "filter2d (gradient magnitude)")


def canny_nms(uint8_t[:, :, ::1] classes, const floating[:, :, ::1] gx,
              const floating[:, :, ::1] gy, const floating[:, :, ::1] mag,
              double low, double high):
    """classes (N, H, W): 2 strong, 1 weak, 0 suppressed, from gx, gy, mag (N, H, W)."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    cdef int64_t N = gx.shape[0], H = gx.shape[1], W = gx.shape[2]
    cdef fc_status st = FC_OK
    if N == 0 or H == 0 or W == 0:
        return
    with nogil:
        if floating is float:
            st = fc_canny_nms_f32(&classes[0, 0, 0], &gx[0, 0, 0], &gy[0, 0, 0],
                                  &mag[0, 0, 0], N, H, W, low, high)
        else:
            st = fc_canny_nms_f64(&classes[0, 0, 0], &gx[0, 0, 0], &gy[0, 0, 0],
                                  &mag[0, 0, 0], N, H, W, low, high)
    _check(st, "canny (non-maximum suppression)")


def canny_hysteresis(uint8_t[:, :, ::1] edges, const uint8_t[:, :, ::1] classes):
    """edges (N, H, W) in {0, 1}: strong pixels and the weak ones connected to them."""
    cdef int64_t N = classes.shape[0], H = classes.shape[1], W = classes.shape[2]
    cdef fc_status st = FC_OK
    if N == 0 or H == 0 or W == 0:
        return
    with nogil:
        st = fc_canny_hysteresis(&edges[0, 0, 0], &classes[0, 0, 0], N, H, W)
    _check(st, "canny (hysteresis)")


def label_regions(int32_t[:, :, ::1] labels, const uint8_t[:, :, ::1] classes):
    """labels (N, H, W): the 8-connected regions of nonzero classes pixels numbered 1, 2, ...
    (each plane on its own, numbers going on across planes); returns their count."""
    cdef int64_t N = classes.shape[0], H = classes.shape[1], W = classes.shape[2]
    cdef int64_t count = 0
    cdef fc_status st = FC_OK
    if N == 0 or H == 0 or W == 0:
        return 0
    with nogil:
        st = fc_label_regions(&labels[0, 0, 0], &classes[0, 0, 0], N, H, W, &count)
    _check(st, "label_regions")
    return count


def border_indices(int64_t start, int64_t count, int64_t n, int border):
    """int64 array of the indices in [0, n) that positions start .. start + count - 1 read
    under BORDER_MODES[border] (-1: a zero of the constant mode)."""
    import numpy as np
    out = np.empty(max(count, 0), dtype=np.int64)
    cdef int64_t[::1] view = out
    if count > 0:
        fc_border_indices(&view[0], start, count, n, <fc_border>border)
    return out
