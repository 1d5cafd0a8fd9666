/* conv_impl.h: the convolution dispatchers for one element type (template.h): each runs
 * one pass of a convolution with the algorithm the caller names. Included by conv.c,
 * after conv_algorithm_known. The algorithm is chosen in Python (fastconv/plan.py) and
 * the kernels check the problem themselves, so a dispatcher only routes the call (and
 * refuses an empty problem, FC_ERR_INVALID, which no kernel runs). */

/* Each pass's kernel per algorithm (signatures in fastconv.h), indexed by
 * fc_conv_algorithm. FC_CONV_WINOGRAD runs F(4x4, 3x3) in every pass. */
static FN(fc_conv_forward_fn) *const FN(forward_kernels)[FC_CONV_ALGORITHM_COUNT] = {
    [FC_CONV_DIRECT] = FN(fc_conv_direct_forward),
    [FC_CONV_IM2COL] = FN(fc_conv_im2col_forward),
    [FC_CONV_WINOGRAD] = FN(fc_conv_winograd_forward),
    [FC_CONV_DEPTHWISE] = FN(fc_conv_depthwise_forward),
};
static FN(fc_conv_data_fn) *const FN(backward_data_kernels)[FC_CONV_ALGORITHM_COUNT] = {
    [FC_CONV_DIRECT] = FN(fc_conv_direct_backward_data),
    [FC_CONV_IM2COL] = FN(fc_conv_im2col_backward_data),
    [FC_CONV_WINOGRAD] = FN(fc_conv_winograd_backward_data),
    [FC_CONV_DEPTHWISE] = FN(fc_conv_depthwise_backward_data),
};
static FN(fc_conv_weight_fn) *const FN(backward_weight_kernels)[FC_CONV_ALGORITHM_COUNT] = {
    [FC_CONV_DIRECT] = FN(fc_conv_direct_backward_weight),
    [FC_CONV_IM2COL] = FN(fc_conv_im2col_backward_weight),
    [FC_CONV_WINOGRAD] = FN(fc_conv_winograd_backward_weight),
    [FC_CONV_DEPTHWISE] = FN(fc_conv_depthwise_backward_weight),
};

fc_status FN(fc_conv_forward)(REAL *y, const REAL *x, const REAL *w, const REAL *bias,
                              const fc_conv_problem *pb, fc_conv_algorithm algorithm)
{
    if (!conv_algorithm_known(algorithm) || !fc_conv_problem_nonempty(pb)) {
        return FC_ERR_INVALID;
    }
    return FN(forward_kernels)[algorithm](y, x, w, bias, pb);
}

fc_status FN(fc_conv_backward_data)(REAL *dx, const REAL *dy, const REAL *w,
                                    const fc_conv_problem *pb, fc_conv_algorithm algorithm)
{
    if (!conv_algorithm_known(algorithm) || !fc_conv_problem_nonempty(pb)) {
        return FC_ERR_INVALID;
    }
    return FN(backward_data_kernels)[algorithm](dx, dy, w, pb);
}

fc_status FN(fc_conv_backward_weight)(REAL *dw, const REAL *dy, const REAL *x,
                                      const fc_conv_problem *pb, fc_conv_algorithm algorithm)
{
    if (!conv_algorithm_known(algorithm) || !fc_conv_problem_nonempty(pb)) {
        return FC_ERR_INVALID;
    }
    return FN(backward_weight_kernels)[algorithm](dw, dy, x, pb);
}
