# C = A @ B (+ C) with fastconv's own GEMM.

def gemm(floating[:, ::1] c, const floating[:, :] a, const floating[:, :] b, bint accumulate):
    """c (M, N) = a (M, K) @ b (K, N) (+ c when accumulate). a and b may be any strided
    views (a transpose is just swapped strides); c must be C-contiguous."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    cdef int64_t M = a.shape[0], K = a.shape[1], N = b.shape[1]
    cdef int64_t item = sizeof(floating)
    cdef int nthreads = fc_get_num_threads()
    cdef fc_status st
    if M == 0 or N == 0:
        return
    # K == 0 is a valid product (all zeros); pass any pointer, it is never read.
    cdef const floating *pa = &a[0, 0] if K > 0 else <const floating *>&c[0, 0]
    cdef const floating *pb = &b[0, 0] if K > 0 else <const floating *>&c[0, 0]
    cdef int64_t rsa = a.strides[0] // item, csa = a.strides[1] // item
    cdef int64_t rsb = b.strides[0] // item, csb = b.strides[1] // item
    with nogil:
        if floating is float:
            st = fc_gemm_f32(M, N, K, pa, rsa, csa, pb, rsb, csb,
                             1.0 if accumulate else 0.0, &c[0, 0], c.strides[0] // item, nthreads)
        else:
            st = fc_gemm_f64(M, N, K, pa, rsa, csa, pb, rsb, csb,
                             1.0 if accumulate else 0.0, &c[0, 0], c.strides[0] // item, nthreads)
    _check(st, "matmul")
