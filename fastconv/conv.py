"""2-D convolution: :func:`conv2d` and its gradients :func:`conv2d_backward`.

Names, argument order and semantics follow ``torch.nn.functional.conv2d``. Like PyTorch
(and every deep-learning library) the default is *cross-correlation*: the filter slides
over the image unflipped. ``flip=True`` gives true convolution.

Which algorithm runs each pass is decided in :mod:`fastconv.plan` (:func:`fastconv.conv_plan`
shows it for a problem); this module checks the arguments and runs the plan.
"""
import numpy as np

from . import _ext
from ._checks import (as_array, as_bool, as_kernel_input, check_out, conv_geometry, out_arrays,
                      result_dtype)
from .plan import (EXACT_ALGORITHMS, check_algorithm, plan_for, plan_for_values,
                   windows_geometry)

__all__ = ["conv2d", "conv2d_backward"]


def _prepare(func, x, weight, stride, padding, dilation, groups, algorithm, flip,
             input_grad=True, **others):
    """Shared checks of conv2d and conv2d_backward: (geometry, dtype, plan, weight, run).
    run is (x, geometry, rows, cols) of the problem the kernels run
    (:func:`fastconv.plan.windows_geometry`: x cut down to the rows and columns its
    windows read where the stride leaves gaps). The plan is the one for that problem and
    these values (plan_for_values): others holds bias (conv2d) or grad_out
    (conv2d_backward)."""
    check_algorithm(algorithm, func)
    dtype = result_dtype(func, x=x, weight=weight, **others)
    geom = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups, func)
    run_geom, rows, cols = windows_geometry(geom, func)
    run_x = x if run_geom is geom else gather(x, rows, cols)
    plan = plan_for_values(plan_for(run_geom, dtype, algorithm, func), algorithm, run_x,
                           weight, input_grad=input_grad, **others)
    if as_bool(flip, "flip", func):
        weight = weight[:, :, ::-1, ::-1]
    return geom, dtype, plan, weight, (run_x, run_geom, rows, cols)


def gather(x, rows, cols):
    """x's rows and columns (its last two axes) at the indices rows and cols (None: all of
    them), zeros where an index is -1."""
    for axis, index in ((-2, rows), (-1, cols)):
        if index is not None and index.size and index.min() >= 0:
            x = np.take(x, index, axis=axis)          # no zeros: one pass
        elif index is not None:
            shape = list(x.shape)
            shape[axis] = index.size
            gathered = np.zeros(shape, dtype=x.dtype)
            inside = index >= 0
            where = [slice(None)] * x.ndim
            where[axis] = inside
            gathered[tuple(where)] = np.take(x, index[inside], axis=axis)
            x = gathered
    return x


def _scatter(grad_x, run_grad_x, rows, cols):
    """grad_x from the gradient of the gathered x (:func:`gather`): each gathered row and
    column goes back where it came from. Windows that leave gaps never share a row or a
    column, so no two gathered values meet; what no window reads gets 0."""
    grad_x[...] = 0
    index = [slice(None), slice(None), slice(None), slice(None)]
    for axis, taken in ((2, rows), (3, cols)):
        if taken is not None:
            inside = taken >= 0
            where = [slice(None)] * 4
            where[axis] = inside
            run_grad_x = run_grad_x[tuple(where)]
            index[axis] = taken[inside]
    if rows is not None and cols is not None:
        index[2] = index[2][:, None]
    grad_x[tuple(index)] = run_grad_x


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           algorithm="auto", flip=False, out=None):
    """2-D convolution (cross-correlation) of a batch of images with a bank of filters.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        Batch of N images with C channels.
    weight : array_like, shape (K, C / groups, R, S)
        K filters of size R x S; each spans C / groups channels (the filter depth equals
        the input depth).
    bias : array_like, shape (K,), optional
        One bias per filter.
    stride : int or (int, int)
        Step between windows.
    padding : int, (h, w), (top, bottom, left, right), "valid" or "same"
        Zero padding. "same" keeps the size (stride 1 only); an even kernel puts the odd
        pixel at the bottom/right, as PyTorch does.
    dilation : int or (int, int)
        Spacing between filter taps.
    groups : int
        Split channels and filters into groups convolved separately (groups = C is a
        depthwise convolution).
    algorithm : {"auto", "autotune", "direct", "im2col", "winograd", "depthwise"}
        Kernel to run; "auto" picks per shape (:func:`fastconv.conv_plan` shows which);
        "autotune" runs what was measured fastest for the problem on this machine, timed
        on its first call (:mod:`fastconv.autotune`; ``fastconv.set_autotune(True)`` makes
        "auto" do it).
        "winograd" (F(4x4, 3x3)) needs 3x3 filters, stride 1, dilation 1 and groups 1; it
        rounds a little more in float32 (max error / max |y| up to ~1e-5 against float64,
        vs ~1e-6 for direct). "depthwise" needs groups == C and K a multiple of C (a
        channel multiplier); auto runs it on such layers of two or more channels and one
        filter per channel (:mod:`fastconv.plan` states the rule).
    flip : bool
        True convolution: flip each filter in both spatial axes first.
    out : ndarray, optional
        Where to write the result, as NumPy's ``out=``: shape (N, K, P, Q), the dtype
        conv2d computes in, C-contiguous, writeable and not overlapping x, weight or bias
        (ValueError/TypeError otherwise). It is returned. Reusing one array saves an
        allocation per call (a training loop's page faults).

    Returns
    -------
    ndarray, shape (N, K, P, Q)
        P and Q from :func:`fastconv.conv_output_size`. The dtype rule of every fastconv
        function: float64 when any input is float64, integer or bool, else float32
        (float16 and float32 inputs, alone or together, compute in float32).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> img = np.array([[3, 0, 1, 2, 7, 4], [1, 5, 8, 9, 3, 1], [2, 7, 2, 5, 1, 3],
    ...                 [0, 1, 3, 1, 7, 8], [4, 2, 1, 6, 2, 8], [2, 4, 5, 2, 3, 9]])
    >>> edge = np.array([[1, 0, -1]] * 3)
    >>> fastconv.conv2d(img[None, None], edge[None, None])[0, 0, 0]
    array([-5., -4.,  0.,  8.])
    """
    func = "conv2d"
    x = as_array(x, "x", func, ndim=4)
    weight = as_array(weight, "weight", func, ndim=4)
    if bias is not None:
        bias = as_array(bias, "bias", func, ndim=1)
    geom, dtype, plan, weight, (run_x, run_geom, _, _) = _prepare(
        func, x, weight, stride, padding, dilation, groups, algorithm, flip, bias=bias)
    if bias is not None and bias.shape != (geom.K,):
        raise ValueError(f"{func}: expected bias of shape ({geom.K},) (one per filter), "
                         f"got shape {bias.shape}")
    y = check_out(*out_arrays(out, 1, func), "out", geom.output_shape, dtype, func,
                  (("x", x), ("weight", weight), ("bias", bias)))
    if y is None:
        y = np.empty(geom.output_shape, dtype=dtype)
    if y.size == 0 or x.size == 0:
        y[...] = 0 if bias is None else bias.astype(dtype)[:, None, None]
        return y
    _forward(y, run_x, weight, bias, run_geom, plan)
    return y


def _forward(y, x, weight, bias, geom, plan, relu=False):
    """y <- the forward pass of a checked problem (geom: the problem the kernels run),
    then the ReLU in the same pass where relu is set."""
    dtype = y.dtype
    _ext.conv_forward(y, as_kernel_input(x, dtype), as_kernel_input(weight, dtype),
                      None if bias is None else as_kernel_input(bias, dtype), geom,
                      plan.run_name("forward"), relu)


def conv2d_planned(x, weight, bias, geom, plan, relu=False):
    """conv2d of arrays of the plan's dtype for a problem already checked, with auto's plan
    for it: what a layer runs in eval mode once it has checked an input shape. geom must be
    a problem the kernels run as it is (windows_geometry(geom) is geom), with no empty
    axis; the plan turns to direct for values that need it (plan_for_values). relu: the
    output goes through a ReLU as the kernel writes it (a Conv2D's activation)."""
    if plan.forward not in EXACT_ALGORITHMS:
        plan = plan_for_values(plan, "auto", x, weight, bias)
    y = np.empty(geom.output_shape, dtype=plan.dtype)
    _forward(y, x, weight, bias, geom, plan, relu)
    return y


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1, *,
                    algorithm="auto", flip=False, input_grad=True, bias_grad=True, out=None):
    """Gradients of :func:`conv2d` with respect to its input, weight and bias.

    Parameters
    ----------
    grad_out : array_like, shape (N, K, P, Q)
        Gradient of the loss with respect to conv2d's output.
    x, weight, stride, padding, dilation, groups, algorithm, flip
        As given to :func:`conv2d`. algorithm="winograd" computes grad_x by Winograd and
        the weight gradient by direct or im2col, as "auto" would without Winograd.
        With algorithm="auto", grad_weight may come from Winograd F(4x4, 3x3)
        (:func:`fastconv.conv_plan` shows each pass's algorithm).
    input_grad : bool
        False skips grad_x (returned as None): a network's first layer needs only the
        weight and bias gradients, and grad_x is often the larger part of the work.
    bias_grad : bool
        False skips grad_bias (returned as None): a layer without a bias needs none, and
        the sum is a pass over grad_out.
    out : (grad_x, grad_weight, grad_bias), optional
        Arrays to write the gradients into, as NumPy's ``out=`` (None entries are
        allocated; grad_x's must be None when input_grad is False, grad_bias's when
        bias_grad is False). Each must have its
        gradient's shape and dtype, be C-contiguous, writeable and overlap neither the
        inputs nor the other outputs (ValueError/TypeError otherwise). A training loop
        passes the same arrays every step, e.g. a layer's own gradient arrays.

    Returns
    -------
    (grad_x, grad_weight, grad_bias) : ndarrays of shapes (N, C, H, W), (K, C/groups, R, S)
        and (K,), in the dtype conv2d would compute in (None for a skipped one).
    """
    func = "conv2d_backward"
    grad_out = as_array(grad_out, "grad_out", func, ndim=4)
    x = as_array(x, "x", func, ndim=4)
    weight = as_array(weight, "weight", func, ndim=4)
    input_grad = as_bool(input_grad, "input_grad", func)
    bias_grad = as_bool(bias_grad, "bias_grad", func)
    geom, dtype, plan, w_used, (run_x, run_geom, rows, cols) = _prepare(
        func, x, weight, stride, padding, dilation, groups, algorithm, flip, input_grad,
        grad_out=grad_out)
    if grad_out.shape != geom.output_shape:
        raise ValueError(f"{func}: expected grad_out of shape {geom.output_shape} (the "
                         f"output of conv2d for x {geom.input_shape} and weight "
                         f"{geom.weight_shape}), got shape {grad_out.shape}")
    grad_x, grad_w, grad_b = out_arrays(out, 3, func)
    if grad_x is not None and not input_grad:
        raise ValueError(f"{func}: out[0] (grad_x) must be None when input_grad is False")
    if grad_b is not None and not bias_grad:
        raise ValueError(f"{func}: out[2] (grad_bias) must be None when bias_grad is False")
    inputs = (("grad_out", grad_out), ("x", x), ("weight", weight))
    grad_x = check_out(grad_x, "out[0] (grad_x)", geom.input_shape, dtype, func, inputs)
    inputs += (("out[0] (grad_x)", grad_x),)
    grad_w = check_out(grad_w, "out[1] (grad_weight)", geom.weight_shape, dtype, func, inputs)
    inputs += (("out[1] (grad_weight)", grad_w),)
    grad_b = check_out(grad_b, "out[2] (grad_bias)", (geom.K,), dtype, func, inputs)
    if grad_x is None and input_grad:
        grad_x = np.empty(geom.input_shape, dtype=dtype)
    if grad_w is None:
        grad_w = np.empty(geom.weight_shape, dtype=dtype)
    if grad_b is None and bias_grad:
        grad_b = np.empty((geom.K,), dtype=dtype)
    if grad_out.size == 0 or x.size == 0 or weight.size == 0:
        # Some sum is empty: grad_x sums grad_out x weight, grad_weight grad_out x x, and
        # those are 0 where a factor is empty; grad_bias sums grad_out alone, so an empty
        # x or weight (C = 0, H = 0) leaves it grad_out's sum over (N, P, Q).
        if input_grad:
            grad_x[...] = 0
        grad_w[...] = 0
        if bias_grad:
            np.sum(grad_out, axis=(0, 2, 3), dtype=dtype, out=grad_b)
        return grad_x, grad_w, grad_b
    # flip: the kernels' weight gradient is of the flipped filters; flip it back after.
    grad_w_used = np.empty_like(grad_w) if flip else grad_w
    gathered = run_geom is not geom
    run_grad_x = np.empty(run_geom.input_shape, dtype) if gathered and input_grad else grad_x
    _ext.conv_backward(as_kernel_input(grad_out, dtype), as_kernel_input(run_x, dtype),
                       as_kernel_input(w_used, dtype), run_grad_x, grad_w_used, grad_b,
                       run_geom, plan.run_name("backward_data"),
                       plan.run_name("backward_weight"))
    if gathered and input_grad:
        _scatter(grad_x, run_grad_x, rows, cols)
    if flip:
        np.copyto(grad_w, grad_w_used[:, :, ::-1, ::-1])
    return grad_x, grad_w, grad_b
