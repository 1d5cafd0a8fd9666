# ReLU for the ReLU layer and the layers' fused conv + ReLU, and a residual block's sum
# (src/activation.c). Arrays arrive C-contiguous, of one shape.

def relu_forward(const floating[::1] x, floating[::1] y):
    """y <- max(x, 0) (y may be x; x first: Cython picks the type from it)."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    if x.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            fc_relu_forward_f32(&y[0], &x[0], x.shape[0])
        else:
            fc_relu_forward_f64(&y[0], &x[0], x.shape[0])


def relu_backward(const floating[::1] dy, const floating[::1] y, floating[::1] dx):
    """dx <- dy where y > 0, else 0 (dy first: Cython picks the type from it)."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    if dy.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            fc_relu_backward_f32(&dx[0], &dy[0], &y[0], dy.shape[0])
        else:
            fc_relu_backward_f64(&dx[0], &dy[0], &y[0], dy.shape[0])


def add_forward(const floating[::1] a, const floating[::1] b, floating[::1] y, bint relu):
    """y <- a + b, then max(., 0) if relu (y may be a or b; a first: Cython picks the type
    from it)."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    if a.shape[0] != b.shape[0] or a.shape[0] != y.shape[0]:
        raise ValueError("add_forward: a, b and y must have the same size")
    if a.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            fc_add_forward_f32(&y[0], &a[0], &b[0], a.shape[0], relu)
        else:
            fc_add_forward_f64(&y[0], &a[0], &b[0], a.shape[0], relu)
