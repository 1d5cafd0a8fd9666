# ReLU for the ReLU layer and the layers' fused conv + ReLU (src/activation.c). Arrays
# arrive C-contiguous, of one shape.

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
