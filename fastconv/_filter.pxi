# Single-plane filters and Canny's stages (src/filter2d.c, src/canny.c).

# Border mode names of fastconv.filters, in the order of the C enum fc_border.
BORDER_MODES = ("constant", "reflect", "replicate", "mirror", "wrap")


def filter2d(floating[:, :, ::1] y, const floating[:, :, ::1] x, const floating[:, ::1] k,
             int border):
    """y (N, H, W) = x (N, H, W) correlated with k (R, S), borders by BORDER_MODES[border]."""
    cdef fc_filter_problem pb
    pb.N, pb.H, pb.W = x.shape[0], x.shape[1], x.shape[2]
    pb.R, pb.S = k.shape[0], k.shape[1]
    pb.border = <fc_border>border
    cdef fc_status st = FC_OK
    if pb.N == 0 or pb.H == 0 or pb.W == 0:
        return
    with nogil:
        if floating is float:
            st = fc_filter2d_f32(&y[0, 0, 0], &x[0, 0, 0], &k[0, 0], &pb)
        else:
            st = fc_filter2d_f64(&y[0, 0, 0], &x[0, 0, 0], &k[0, 0], &pb)
    _check(st, "filter2d")


def canny_nms(uint8_t[:, :, ::1] classes, const floating[:, :, ::1] gx,
              const floating[:, :, ::1] gy, const floating[:, :, ::1] mag,
              double low, double high):
    """classes (N, H, W): 2 strong, 1 weak, 0 suppressed, from gx, gy, mag (N, H, W)."""
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
