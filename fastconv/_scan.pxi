# The largest magnitude of an array (src/scan.c), for the plan's check of its inputs.

def max_abs(const floating[::1] x):
    """The largest |x[i]| as a Python float (0.0 for an empty x): inf when an element is
    infinite, nan when one is NaN."""
    fc_sync_num_threads()      # set_num_threads applies to every thread
    cdef float r32 = 0
    cdef double r64 = 0
    cdef fc_status st
    if x.shape[0] == 0:
        return 0.0
    with nogil:
        if floating is float:
            st = fc_max_abs_f32(&r32, &x[0], x.shape[0])
        else:
            st = fc_max_abs_f64(&r64, &x[0], x.shape[0])
    _check(st, "max_abs")
    return float(r32) if floating is float else r64


def values_fit(double max_a, double max_b, double max_c, double scale, double limit):
    """max_a x max_b x scale + max_c <= limit (False for NaN): fc_values_fit."""
    return bool(fc_values_fit(max_a, max_b, max_c, scale, limit))
