# Single-plane filters and Canny's stages (src/filter2d.c, src/canny.c).

# Border mode names of fastconv.filters, in the order of the C enum fc_border.
BORDER_MODES = ("constant", "reflect", "replicate", "mirror", "wrap")


def _tiles(pieces, dtype):
    """The tables of fc_filter_input for the planes (N, H, W) that the grid `pieces` makes:
    rows of (N, h, w) arrays side by side, the rows one above the other (the pieces of a row
    of one height, those of a column of one width), all of dtype or all uint8, aligned, each
    row of a piece contiguous. Returns (rows, plane_steps, widths, u8, (N, H, W)); the
    pieces are read where they lie, so they must outlive the call that reads them."""
    import numpy as np
    if not pieces or not pieces[0]:
        raise ValueError("filter2d: expected a grid of at least one piece")
    kind = pieces[0][0].dtype
    if kind != np.uint8 and kind != dtype:
        raise TypeError(f"filter2d: expected pieces of {dtype} or uint8, got {kind}")
    if any(piece.ndim != 3 for row in pieces for piece in row):
        raise ValueError("filter2d: expected pieces of 3 dimensions (N, h, w)")
    N, widths = pieces[0][0].shape[0], [piece.shape[2] for piece in pieces[0]]
    H = sum(row[0].shape[1] for row in pieces)
    rows = np.empty((H, len(widths)), np.intp)
    steps = np.empty((H, len(widths)), np.int64)
    cdef intptr_t[:, ::1] rows_view = rows
    cdef int64_t[:, ::1] steps_view = steps
    cdef intptr_t start, row_step
    cdef int64_t plane_step, top = 0, r, h
    for i, row in enumerate(pieces):
        h = row[0].shape[1]
        if len(row) != len(widths):
            raise ValueError(f"filter2d: rows of {len(widths)} and {len(row)} pieces")
        for j, piece in enumerate(row):
            if (piece.dtype != kind or piece.shape != (N, h, widths[j])
                    or not piece.flags.aligned
                    or (piece.size and widths[j] > 1 and piece.strides[2] != piece.itemsize)):
                raise ValueError(f"filter2d: piece ({i}, {j}) of shape {piece.shape} "
                                 f"and dtype {piece.dtype}; expected {(N, h, widths[j])} of "
                                 f"{kind}, aligned, with contiguous rows")
            start, row_step, plane_step = piece.ctypes.data, piece.strides[1], piece.strides[0]
            for r in range(h):
                rows_view[top + r, j] = start + r * row_step
                steps_view[top + r, j] = plane_step
        top += h
    return rows, steps, np.asarray(widths, np.int64), kind == np.uint8, (N, H, sum(widths))


cdef fc_filter_problem _filter_problem(y_shape, x_shape, k_shape, int border,
                                       window) except *:
    cdef fc_filter_problem pb
    pb.N, pb.H, pb.W = x_shape
    pb.R, pb.S = k_shape[0], k_shape[1]
    pb.border = <fc_border>border
    pb.top, pb.left = window
    pb.out_H, pb.out_W = y_shape[1], y_shape[2]
    if (y_shape[0] != pb.N or pb.top < 0 or pb.left < 0 or pb.top + pb.out_H > pb.H
            or pb.left + pb.out_W > pb.W):
        raise ValueError(f"filter2d: y of shape {tuple(y_shape[:3])} at {tuple(window)} is "
                         f"not a window of the planes {tuple(x_shape)}")
    return pb


cdef fc_filter_input _filter_input(const intptr_t[:, ::1] rows, const int64_t[:, ::1] steps,
                                   const int64_t[::1] widths, bint u8):
    cdef fc_filter_input x
    x.rows = <const char *const *>&rows[0, 0]
    x.plane_steps = &steps[0, 0]
    x.widths = &widths[0]
    x.pieces = widths.shape[0]
    x.u8 = u8
    return x


def filter2d(floating[:, :, ::1] y, pieces, const floating[:, ::1] k, int border,
             window=(0, 0)):
    """y (N, h, w) = the planes x (N, H, W) correlated with k (R, S), borders by
    BORDER_MODES[border], from row window[0] and column window[1] of the same-size result;
    x is the grid `pieces` (see _tiles) of y's type or uint8."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    rows, steps, widths, u8, shape = _tiles(pieces, "float32" if floating is float
                                            else "float64")
    cdef fc_filter_problem pb = _filter_problem(y.shape, shape, k.shape, border, window)
    cdef fc_filter_input x
    cdef fc_status st = FC_OK
    if pb.N == 0 or pb.out_H == 0 or pb.out_W == 0:
        return
    x = _filter_input(rows, steps, widths, u8)
    with nogil:
        if floating is float:
            st = fc_filter2d_f32(&y[0, 0, 0], &x, &k[0, 0], &pb)
        else:
            st = fc_filter2d_f64(&y[0, 0, 0], &x, &k[0, 0], &pb)
    _check(st, "filter2d")


def filter2d_magnitude(floating[:, :, ::1] y, pieces, const floating[:, ::1] kx,
                       const floating[:, ::1] ky, int border, window=(0, 0)):
    """y = sqrt((x * kx)^2 + (x * ky)^2) as filter2d computes x * k, kx and ky (R, S) of
    the same size."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    if ky.shape[0] != kx.shape[0] or ky.shape[1] != kx.shape[1]:
        raise ValueError("filter2d_magnitude: kx and ky must have the same shape")
    rows, steps, widths, u8, shape = _tiles(pieces, "float32" if floating is float
                                            else "float64")
    cdef fc_filter_problem pb = _filter_problem(y.shape, shape, kx.shape, border, window)
    cdef fc_filter_input x
    cdef fc_status st = FC_OK
    if pb.N == 0 or pb.out_H == 0 or pb.out_W == 0:
        return
    x = _filter_input(rows, steps, widths, u8)
    with nogil:
        if floating is float:
            st = fc_filter2d_magnitude_f32(&y[0, 0, 0], &x, &kx[0, 0], &ky[0, 0], &pb)
        else:
            st = fc_filter2d_magnitude_f64(&y[0, 0, 0], &x, &kx[0, 0], &ky[0, 0], &pb)
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
