"""Layers with explicit forward and backward passes: NumPy arrays in, NumPy arrays out.

Every layer follows one small contract, in the spirit of cs231n's layer pairs:

- ``forward(x)`` computes the output and, in training mode, remembers what backward needs;
- ``backward(grad_out)`` takes dLoss/dOutput, returns dLoss/dInput and *overwrites* the
  layer's parameter gradients (there is no accumulation across calls);
- ``params()`` / ``grads()`` return ``{name: array}`` dictionaries with the same keys; the
  arrays are the layer's own, so an optimizer updates them in place;
- ``train()`` / ``eval()`` switch modes; in eval mode forward keeps nothing for backward;
- ``state_dict()`` / ``load_state_dict()`` save and restore parameters (and buffers),
  checking names, shapes and dtypes;
- ``generators()`` returns ``{name: Generator}`` of the random generators the layer
  draws from in training (Dropout's), whose states checkpoints keep;
- ``reuse_buffers()`` lets a training loop skip the allocations of every step (below).

Buffer reuse. By default every forward and backward returns new arrays, as NumPy and
PyTorch do. A training step of LeNet-5 allocates ~5 MB of activations and gradients, and
when the C allocator has handed that memory back to the OS in between (glibc trims the
heap), touching it again costs page faults: a third of the step. ``model.reuse_buffers()``
makes each layer, in training mode, write its output, its input gradient and its
parameter gradients into arrays it keeps from call to call (reallocated when the shape
changes). The results are bitwise the same; what changes is aliasing:

- an array a layer returned is overwritten by that layer's next call (forward output by
  the next forward, input gradient by the next backward), a :class:`Residual`'s too (its
  results are whole activation maps, not worth a copy inside a model); a layer still
  takes such an array back as its next input and computes what it would without reuse;
- ``grads()`` arrays are updated in place by every backward (as PyTorch's ``.grad``);
- a :class:`Sequential` still returns new arrays from forward and backward (it copies
  its last layer's output and first layer's input gradient, which are small), so for a
  model only the parameter gradients change behaviour. A Sequential inside another
  container (a residual block's body, a stage of a network) returns its layers' arrays
  as they are: its container uses them before any of its layers runs again, and copies
  of whole activation maps would cost as much as the layers that made them.

:func:`fastconv.nn.fit` and the benchmarks turn it on for the steps they run.

The heavy lifting happens in fastconv's C/OpenMP kernels (conv2d, pooling, and its own
GEMM for Linear), so one OpenMP thread pool serves a whole forward/backward pass; NumPy is
used only for elementwise work (ReLU, tanh, bias, reshapes).
"""
import copy
import math

import numpy as np

from .. import _ext
from .._checks import (as_bool, as_count, as_int_tuple, as_kernel_input, as_real_input,
                       as_real_number, conv_geometry, normalize_padding)
from ..conv import conv2d, conv2d_backward, conv2d_planned
from ..plan import forward_value_test, plan_for, windows_geometry
from ..pooling import (adaptive_geometry, avg_pool2d, avg_pool2d_backward, global_avg_pool2d,
                       global_avg_pool2d_backward, max_pool2d, max_pool2d_backward,
                       pool_geometry, pool_planned)
from .program import Unsupported, build_program, program_settings

__all__ = ["Layer", "Conv2D", "MaxPool2D", "AvgPool2D", "ReLU", "Tanh", "Flatten", "Linear",
           "BatchNorm1D", "BatchNorm2D", "Identity", "Dropout", "GlobalAvgPool2D", "Sequential",
           "Residual", "ZeroPadShortcut", "init_weight"]

ACTIVATIONS = (None, "relu", "tanh")
INITS = ("he", "glorot")
# Input shapes a layer keeps the plan of for eval mode (a dataset's batch and its last one).
INPUT_PLANS_KEPT = 4


def as_rng(seed):
    """A numpy Generator from a seed (None, int) or an existing Generator (shared)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def init_weight(shape, fan_in, fan_out, scheme, rng, dtype):
    """Random initial weights.

    "he" (Kaiming normal, for ReLU): N(0, 2 / fan_in) keeps the activations' variance
    roughly constant through ReLU layers. "glorot" (Xavier uniform, for tanh and the
    output layer): U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).
    """
    if scheme == "he":
        w = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)
    elif scheme == "glorot":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, size=shape)
    else:
        raise ValueError(f"init must be one of {INITS}, got {scheme!r}")
    return w.astype(dtype)


def _check_choice(value, choices, name, layer):
    if value not in choices:
        raise ValueError(f"{layer}: {name} must be one of {choices}, got {value!r}")


class Layer:
    """Base class: a layer without parameters whose forward is the identity.

    Subclasses keep their learnable arrays in ``self._params`` and the matching
    gradients in ``self._grads`` (same keys), and non-learnable state that must be saved
    in ``self._buffers``.
    """

    def __init__(self, name=None):
        self.name = name
        self.training = True
        self._params = {}
        self._grads = {}
        self._buffers = {}
        self._reuse = False
        self._inside = False  # reuse_buffers came from a container this layer is part of
        self._kept = {}       # arrays kept between calls under reuse_buffers, by role

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        return x

    def backward(self, grad_out, input_grad=True):
        """dL/dx from dL/dy (the last forward's output), filling grads(). With
        input_grad=False the caller does not need dL/dx (a network's first layer): a layer
        with parameters then skips computing it and returns None."""
        return grad_out

    # -- eval mode's quick way: containers call _infer on an ndarray --------------------
    def _infer(self, x):
        """forward(x) in eval mode for an ndarray x. A layer whose forward checks its
        arguments on every call defines :meth:`_new_input_plan` and :meth:`_run_planned`:
        it checks an input shape once and then runs its kernel directly, which at batch 1
        is most of the difference between milliseconds and microseconds per network."""
        planned = None if self.training else self._plan_input(x)
        return self.forward(x) if planned is None else self._run_planned(x, planned)

    def _new_input_plan(self, shape, dtype):
        """What :meth:`_run_planned` needs for inputs of this shape and dtype, after
        forward's checks (raising its errors); None: forward runs them."""
        return None

    def _run_planned(self, x, planned):
        """forward(x) in eval mode from what :meth:`_new_input_plan` made for x."""
        raise NotImplementedError

    def _emit(self, program, x):
        """The value this layer makes of value x in an eval-mode program
        (:mod:`fastconv.nn.program`), its steps appended through `program`; raises
        forward's errors for x's shape, and program.Unsupported where the layer has no
        steps for it."""
        raise Unsupported

    def _program_state(self):
        """What a program made from this layer depends on besides its parameter arrays and
        training flag: when it changes, the program is made again."""
        return ()

    def __getstate__(self):
        # Input plans are made again on the next call; a program holds raw addresses.
        state = self.__dict__.copy()
        state.pop("_input_plans", None)
        return state

    def _plan_input(self, x, settings=()):
        """``_new_input_plan(x.shape, x.dtype)``, made on the first input of each shape,
        dtype and `settings` (what else the plan depends on) and kept (a few, the last
        ones seen)."""
        plans = self.__dict__.setdefault("_input_plans", {})
        key = (x.shape, x.dtype, settings)
        if key not in plans:
            if len(plans) >= INPUT_PLANS_KEPT:
                plans.clear()
            plans[key] = self._new_input_plan(x.shape, x.dtype)
        return plans[key]

    def output_shape(self, input_shape):
        """The output shape for an input of `input_shape` (no computation)."""
        return tuple(input_shape)

    def multiply_adds(self, input_shape):
        """The multiply-adds of one forward pass on an input of `input_shape` (0 for
        layers that only compare, copy or add)."""
        return 0

    def fuse(self):
        """An eval-mode copy of this layer for inference, with each BatchNorm2D folded into
        the Conv2D before it (weights and bias) and a ReLU after them made that
        convolution's activation (applied in place to its output). The outputs equal this layer's in eval mode within float
        rounding; this layer is left as it is."""
        fused = copy.deepcopy(self).eval()
        fused._fuse_in_place()
        return fused

    def _fuse_in_place(self):
        """Fold what can be folded inside this layer (containers: in their layers)."""

    # -- parameters ---------------------------------------------------------------------
    def params(self):
        """``{name: array}`` of the learnable parameters (the layer's own arrays)."""
        return dict(self._params)

    def grads(self):
        """``{name: array}`` of the gradients from the last backward, same keys as params."""
        return dict(self._grads)

    def buffers(self):
        """``{name: array}`` of saved, non-learnable state."""
        return dict(self._buffers)

    def generators(self):
        """``{name: numpy.random.Generator}`` the layer draws from in training (Dropout's
        masks), its own objects: a checkpoint saves their states, so a resumed run draws
        what an uninterrupted one would."""
        return {}

    def num_params(self):
        """The number of learnable scalars."""
        return sum(p.size for p in self.params().values())

    def _new_param(self, name, value):
        self._params[name] = value
        self._grads[name] = np.zeros_like(value)

    @property
    def dtype(self):
        """The dtype the layer computes in (that of its parameters; float32 by default)."""
        params = self._params or self.params()    # own ones first: read on every call
        if params:
            return next(iter(params.values())).dtype
        return getattr(self, "_dtype", np.dtype(np.float32))

    def astype(self, dtype):
        """Convert parameters and gradients to `dtype` (e.g. float64 for gradient checks)."""
        dtype = np.dtype(dtype)
        self._dtype = dtype
        for key in self._params:
            self._params[key] = self._params[key].astype(dtype)
            self._grads[key] = self._grads[key].astype(dtype)
        return self

    # -- buffer reuse -------------------------------------------------------------------
    def reuse_buffers(self, mode=True):
        """Keep output and gradient arrays between training-mode calls (see the module
        docstring for what that changes); ``reuse_buffers(False)`` goes back to new arrays
        every call and drops the kept ones. Returns self."""
        return self._set_reuse(mode, inside=False)

    def _set_reuse(self, mode, inside):
        """reuse_buffers(mode); `inside`: asked by a container this layer belongs to."""
        self._reuse = as_bool(mode, "mode", f"{self.describe()}.reuse_buffers")
        self._inside = inside
        if not self._reuse:
            self._kept = {}
        return self

    @property
    def reusing_buffers(self):
        """Whether :meth:`reuse_buffers` is on."""
        return self._reuse

    def _out(self, role, shape, dtype, reads=()):
        """The array to write this call's `role` result into ("y", "grad_x", ...): None
        (let the function allocate) unless buffers are reused in training mode; then the
        array kept for `role`, made anew when the shape or dtype changed or when it
        overlaps one of the arrays the call `reads` (a caller may hand a layer the array it
        returned last time: the kernels must never write what they read)."""
        if not (self._reuse and self.training):
            return None
        kept = self._kept.get(role)
        if (kept is None or kept.shape != tuple(shape) or kept.dtype != dtype
                or any(isinstance(a, np.ndarray) and np.may_share_memory(kept, a)
                       for a in reads)):
            kept = self._kept[role] = np.empty(shape, dtype=dtype)
        return kept

    def _grad_out(self, name):
        """The parameter gradient array to overwrite in place under buffer reuse, or None."""
        return self._grads[name] if self._reuse and self.training else None

    def _elementwise_out(self, role, x, other=None, reads=()):
        """A kept array for an elementwise layer's result, only where NumPy would give the
        same: float arrays of one dtype and shape (else None: NumPy allocates and promotes).
        `reads` as for :meth:`_out`: arrays the result must not be written into."""
        if not (self._reuse and self.training) or not isinstance(x, np.ndarray) \
                or x.dtype not in (np.float32, np.float64):
            return None
        if other is not None and not (isinstance(other, np.ndarray) and other.dtype == x.dtype
                                      and other.shape == x.shape):
            return None
        return self._out(role, x.shape, x.dtype, reads)

    # -- modes --------------------------------------------------------------------------
    def train(self, mode=True):
        """Training mode: forward keeps what backward needs. Returns self."""
        self.training = as_bool(mode, "mode", f"{self.describe()}.train")
        return self

    def eval(self):
        """Evaluation mode: forward keeps nothing, backward is unavailable. Returns self."""
        return self.train(False)

    def _saved(self, value):
        """What forward stored for backward, or a clear error when there is none."""
        if value is None:
            raise RuntimeError(f"{self.describe()}: backward needs a forward pass in "
                               f"training mode first (call .train() before forward)")
        return value

    # -- saving -------------------------------------------------------------------------
    def state_dict(self):
        """A copy of every parameter and buffer, ``{name: ndarray}``."""
        state = {k: v.copy() for k, v in self.params().items()}
        state.update({k: np.array(v, copy=True) for k, v in self.buffers().items()})
        return state

    def load_state_dict(self, state):
        """Copy `state` (from :meth:`state_dict`) into this layer's arrays, in place.

        Raises
        ------
        KeyError
            If names are missing or unexpected.
        ValueError
            If a shape or dtype differs (convert the model with ``astype`` first).
        """
        own = {**self.params(), **self.buffers()}
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"{self.describe()}: state_dict does not match: missing "
                           f"{missing}, unexpected {unexpected}")
        for key, target in own.items():
            value = np.asarray(state[key])
            if value.shape != target.shape:
                raise ValueError(f"{self.describe()}: {key} has shape {value.shape} in the "
                                 f"state_dict, expected {target.shape}")
            if value.dtype != target.dtype:
                raise ValueError(f"{self.describe()}: {key} has dtype {value.dtype} in the "
                                 f"state_dict, expected {target.dtype} (convert the model "
                                 f"with .astype() first)")
        for key, target in own.items():
            np.copyto(target, state[key])

    def kind(self):
        """The layer's type as summaries show it, e.g. "Linear" or "Conv2D+relu"."""
        return type(self).__name__

    def describe(self):
        """Short text for messages: "name (kind)" or "kind"."""
        return f"{self.name} ({self.kind()})" if self.name else self.kind()

    def signature(self):
        """The layer as built, for messages about its input: "name (Conv2D(in_channels=3,
        ...))" or "Conv2D(in_channels=3, ...)"."""
        text = f"{type(self).__name__}({self.extra_repr()})"
        return f"{self.name} ({text})" if self.name else text

    def _check_ndim(self, shape, ndim, layout):
        """A ValueError naming the layer unless an input of `shape` has `ndim` axes."""
        if len(shape) != ndim:
            raise ValueError(f"{self.signature()}: expected a {ndim}-D input {layout}, got "
                             f"shape {tuple(shape)}")

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self):
        return ""


def _activation_forward(y, activation):
    """Apply the activation in place (y is a fresh C-contiguous array we own)."""
    if activation == "relu":
        _ext.relu_forward(y.reshape(-1), y.reshape(-1))
    elif activation == "tanh":
        np.tanh(y, out=y)
    return y


def _sum(a, b, out, activation=None):
    """a + b, then the activation, into out (None: a new array): one threaded pass in C for
    float arrays of one dtype and shape under no activation or ReLU (the same bits as the
    NumPy passes), else NumPy's add (broadcasting and promoting) and the activation."""
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape
            and a.dtype == b.dtype and a.dtype in (np.float32, np.float64)
            and activation in (None, "relu") and (out is None or out.dtype == a.dtype)):
        y = np.empty(a.shape, a.dtype) if out is None else out
        _ext.add_forward(as_kernel_input(a, a.dtype).reshape(-1),
                         as_kernel_input(b, b.dtype).reshape(-1), y.reshape(-1),
                         activation == "relu")
        return y
    return _activation_forward(np.add(a, b, out=out), activation)


def _activation_backward(grad_out, y, activation, out=None):
    """dL/d(pre-activation) from dL/dy and the activation's output y, into `out` (an array
    like y, or None for a new one) unless there is no activation."""
    if grad_out.shape != y.shape:
        raise ValueError(f"backward: expected grad_out of shape {y.shape} (the output of "
                         f"the last forward), got shape {grad_out.shape}")
    if activation == "relu":
        grad_out = as_kernel_input(grad_out, y.dtype)
        grad_pre = np.empty_like(y) if out is None else out
        _ext.relu_backward(grad_out.reshape(-1), y.reshape(-1), grad_pre.reshape(-1))
        return grad_pre
    if activation == "tanh":
        return _tanh_backward(grad_out, y, out)
    return grad_out


def _tanh_backward(grad_out, y, out=None):
    """grad_out * (1 - y * y), into `out` if given (the same operations, so the same bits)."""
    if out is None:
        return grad_out * (1 - y * y)
    np.multiply(y, y, out=out)
    np.subtract(1, out, out=out)
    return np.multiply(grad_out, out, out=out)


class Conv2D(Layer):
    """A convolutional layer: conv2d + a bias per filter (+ an optional activation).

    The lecture's conv layer is "convolution + bias + nonlinearity"; with
    ``activation="relu"`` the three happen in one layer (the bias inside the conv kernel;
    the ReLU too in eval mode, applied to the outputs as the kernel writes them, and in
    place on the output in training), and backward masks the gradient with the output.

    Parameters
    ----------
    in_channels, out_channels : int
        Input depth n_c(l-1) and number of filters n_c(l).
    kernel_size : int or (int, int)
        Filter size f.
    stride, padding, dilation, groups : int
        As in :func:`fastconv.conv2d` (and PyTorch's ``Conv2d``): ``groups`` splits the
        channels and filters into groups convolved separately; ``groups == in_channels``
        is a depthwise convolution (``out_channels`` a multiple of it).
    bias : bool
        Whether the layer adds a learnable bias per filter (False before a BatchNorm,
        whose shift makes it redundant).
    activation : {None, "relu", "tanh"}
        Fused nonlinearity applied after the bias.
    init : {"he", "glorot"}, optional
        Weight initialisation; default "he" for ReLU, "glorot" otherwise. Biases start at 0.
    seed : int, numpy.random.Generator or None
        Seeds the initialisation (a shared Generator draws in construction order).
    dtype : float32 or float64
    name : str, optional

    Shapes: x (N, C, H, W) -> y (N, K, P, Q); weight (K, C / groups, f, f); bias (K,).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, activation=None, init=None, seed=None,
                 dtype=np.float32, name=None):
        super().__init__(name)
        _check_choice(activation, ACTIVATIONS, "activation", "Conv2D")
        groups = as_count(groups, "groups", "Conv2D", minimum=1)
        for what, count in (("in_channels", in_channels), ("out_channels", out_channels)):
            if as_count(count, what, "Conv2D", minimum=1) % groups:
                raise ValueError(f"Conv2D: {what} must be a multiple of groups ({groups}), "
                                 f"got {count}")
        # The hyper-parameters are checked here, not at the first forward.
        kh, kw = as_int_tuple(kernel_size, "kernel_size", 2, "Conv2D", 1)
        normalize_padding(padding, (kh, kw), as_int_tuple(dilation, "dilation", 2, "Conv2D", 1),
                          as_int_tuple(stride, "stride", 2, "Conv2D", 1), "Conv2D")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), stride, padding
        self.dilation, self.groups = dilation, groups
        self.activation = activation
        init = init or ("he" if activation == "relu" else "glorot")
        shape = (out_channels, in_channels // groups, kh, kw)
        # fans as PyTorch counts them: the weight's input and output axes times the taps
        fan_in, fan_out = shape[1] * kh * kw, shape[0] * kh * kw
        self._new_param("weight", init_weight(shape, fan_in, fan_out, init, as_rng(seed), dtype))
        if as_bool(bias, "bias", "Conv2D"):
            self._new_param("bias", np.zeros(out_channels, dtype=dtype))
        self._x = self._y = None

    def forward(self, x):
        x = as_real_input(x, "x", f"{self.describe()}.forward", self.dtype)
        shape = self.output_shape(x.shape)        # an input that does not fit fails here
        out = None
        if self._reuse and self.training and min(shape) > 0:
            out = self._out("y", shape, self.dtype, (x,))
        y = conv2d(x, self._params["weight"], self._params.get("bias"), self.stride,
                   self.padding, self.dilation, self.groups, out=out)
        y = _activation_forward(y, self.activation)
        self._x, self._y = (x, y) if self.training else (None, None)
        return y

    def _new_input_plan(self, shape, dtype):
        """The geometry of an input of the layer's dtype that the kernels run as it is
        (no empty axis, no rows or columns skipped by the stride), else None."""
        self.output_shape(shape)
        geom = conv_geometry(shape, self._params["weight"].shape, self.stride, self.padding,
                             self.dilation, self.groups, self.signature())
        if dtype != self.dtype or 0 in shape + geom.output_shape \
                or windows_geometry(geom, self.signature())[0] is not geom:
            return None
        return geom

    def _emit(self, program, x):
        geom = self._new_input_plan(x.shape, program.dtype)
        if self.activation not in (None, "relu") or program.dtype != self.dtype:
            raise Unsupported
        if geom is None:
            x, geom = self._emit_subsample(program, x)
        plan = plan_for(geom, program.dtype, "auto", "Conv2D")
        # where the plan's algorithm is not exact, the step tests the values as
        # plan_for_values does, on each run
        return program.step("conv", [x], geom.output_shape, geometry=geom,
                            algorithm=plan.run_name("forward"),
                            value_test=forward_value_test(plan),
                            weight=program.param(self, "weight"),
                            bias=program.param(self, "bias"), relu=self.activation == "relu")

    def _emit_subsample(self, program, x):
        """(value, geometry) for a 1x1 unpadded filter at equal strides s > 1 (ResNet's
        option-B shortcut): its windows read x[:, :, ::s, ::s] (windows_geometry), a
        subsample step, then this convolution at stride 1 runs on it. Unsupported for
        any other problem the kernels do not run as it is."""
        geom = conv_geometry(x.shape, self._params["weight"].shape, self.stride, self.padding,
                             self.dilation, self.groups, self.signature())
        run, _, _ = windows_geometry(geom, self.signature())
        stride = geom.stride[0]
        if (geom.R, geom.S) != (1, 1) or any(geom.padding) or geom.stride[1] != stride \
                or 0 in x.shape + geom.output_shape:
            raise Unsupported
        shape = (geom.N, geom.C, -(-geom.H // stride), -(-geom.W // stride))
        if run.input_shape != shape:
            raise Unsupported
        sub = program.step("zero_pad_subsample", [x], shape, input_shape=x.shape,
                           out_channels=geom.C, before=0, stride=stride)
        return sub, run

    def _program_state(self):
        return (self.activation,)

    def _run_planned(self, x, geom):
        # planned per call: the plan follows set_autotune and, autotuned, the threads
        plan = plan_for(geom, x.dtype, "auto", "Conv2D")
        relu = self.activation == "relu"
        y = conv2d_planned(as_kernel_input(x, x.dtype), self._params["weight"],
                           self._params.get("bias"), geom, plan, relu)
        return y if relu else _activation_forward(y, self.activation)

    def backward(self, grad_out, input_grad=True):
        x, y = self._saved(self._x), self._y
        grad_out = np.asarray(grad_out, dtype=self.dtype)
        grad_pre = _activation_backward(
            grad_out, y, self.activation,
            self._out("grad_pre", y.shape, y.dtype, (grad_out,)) if self.activation else None)
        has_bias = "bias" in self._params
        out = (self._out("grad_x", x.shape, self.dtype, (grad_pre, x)) if input_grad else None,
               self._grad_out("weight"), self._grad_out("bias") if has_bias else None)
        grad_x, self._grads["weight"], grad_bias = conv2d_backward(
            grad_pre, x, self._params["weight"], self.stride, self.padding, self.dilation,
            self.groups, input_grad=input_grad, bias_grad=has_bias, out=out)
        if has_bias:
            self._grads["bias"] = grad_bias
        return grad_x

    def output_shape(self, input_shape):
        """The output shape for an input of `input_shape`; an input the layer cannot take
        raises a ValueError naming the layer and the input (not conv2d's weight)."""
        self._check_ndim(input_shape, 4, f"(N, {self.in_channels}, H, W)")
        if input_shape[1] != self.in_channels:
            raise ValueError(f"{self.signature()}: expected input with {self.in_channels} "
                             f"channels, got {input_shape[1]} (input shape "
                             f"{tuple(input_shape)})")
        geom = conv_geometry(input_shape, self._params["weight"].shape, self.stride,
                             self.padding, self.dilation, self.groups, self.signature())
        return geom.output_shape

    def _fold_batch_norm(self, bn):
        """Make this convolution compute bn(conv(x)) with bn's running statistics:
        w' = w * s and b' = (b - mean) * s + beta per filter, s = gamma / sqrt(var + eps)
        (gamma = 1, beta = 0 without affine), in float64."""
        scale = 1.0 / np.sqrt(bn.buffers()["running_var"].astype(np.float64) + bn.eps)
        shift = -bn.buffers()["running_mean"].astype(np.float64) * scale
        if bn.affine:
            gamma = bn.params()["weight"].astype(np.float64)
            shift = shift * gamma + bn.params()["bias"]
            scale = scale * gamma
        weight = self._params["weight"]
        bias = self._params.get("bias", np.zeros(self.out_channels))
        self._params["weight"] = (weight * scale[:, None, None, None]).astype(weight.dtype)
        self._new_param("bias", (bias * scale + shift).astype(weight.dtype))

    def multiply_adds(self, input_shape):
        """Each output value sums C / groups x f x f products."""
        n, k, p, q = self.output_shape(input_shape)
        return n * k * p * q * math.prod(self._params["weight"].shape[1:])

    def kind(self):
        return f"Conv2D+{self.activation}" if self.activation else "Conv2D"

    def extra_repr(self):
        kh, kw = self.kernel_size
        text = (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"kernel_size={kh if kh == kw else (kh, kw)}")
        if self.stride != 1:
            text += f", stride={self.stride}"
        if self.padding != 0:
            text += f", padding={self.padding!r}"
        if self.dilation != 1:
            text += f", dilation={self.dilation!r}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if "bias" not in self._params:
            text += ", bias=False"
        return text + (f", activation={self.activation!r}" if self.activation else "")


class Linear(Layer):
    """A fully connected layer: y = x @ W^T + b, computed with fastconv's own GEMM.

    Parameters
    ----------
    in_features, out_features : int
    init : {"he", "glorot"}
        Weight initialisation ("he" before a ReLU, "glorot" otherwise). Biases start at 0.
    seed, dtype, name
        As for :class:`Conv2D`.

    Shapes: x (N, in) -> y (N, out); weight (out, in) as in PyTorch; bias (out,).
    """

    def __init__(self, in_features, out_features, init="glorot", seed=None,
                 dtype=np.float32, name=None):
        super().__init__(name)
        self.in_features, self.out_features = in_features, out_features
        self._new_param("weight", init_weight((out_features, in_features), in_features,
                                              out_features, init, as_rng(seed), dtype))
        self._new_param("bias", np.zeros(out_features, dtype=dtype))
        self._x = None

    def forward(self, x):
        x = as_kernel_input(as_real_input(x, "x", f"{self.describe()}.forward", self.dtype),
                            self.dtype)                       # aligned, C-contiguous
        self.output_shape(x.shape)
        y = self._affine(x, self._out("y", (x.shape[0], self.out_features), self.dtype, (x,)))
        self._x = x if self.training else None
        return y

    def _affine(self, x, y=None):
        """y (new when None) <- x @ W^T + b, for a checked kernel input x."""
        if y is None:
            y = np.empty((x.shape[0], self.out_features), dtype=self.dtype)
        _ext.gemm(y, x, self._params["weight"].T, False)      # (N, in) @ (in, out)
        y += self._params["bias"]
        return y

    def _new_input_plan(self, shape, dtype):
        """True for an input of the layer's dtype (the shape checked), else None."""
        self.output_shape(shape)
        return True if dtype == self.dtype else None

    def _run_planned(self, x, planned):
        return self._affine(as_kernel_input(x, x.dtype))

    def _emit(self, program, x):
        if self._new_input_plan(x.shape, program.dtype) is None:
            raise Unsupported
        return program.step("linear", [x], self.output_shape(x.shape),
                            sizes=(x.shape[0], self.in_features, self.out_features),
                            weight=program.param(self, "weight"),
                            bias=program.param(self, "bias"))

    def backward(self, grad_out, input_grad=True):
        x = self._saved(self._x)
        g = as_kernel_input(grad_out, self.dtype)             # (N, out)
        w = self._params["weight"]                            # (out, in)
        _ext.gemm(self._grads["weight"], g.T, x, False)       # (out, N) @ (N, in)
        self._grads["bias"] = g.sum(axis=0, out=self._grad_out("bias"))
        if not input_grad:
            return None
        grad_x = self._out("grad_x", x.shape, x.dtype, (g, x))
        if grad_x is None:
            grad_x = np.empty_like(x)
        _ext.gemm(grad_x, g, w, False)                        # (N, out) @ (out, in)
        return grad_x

    def output_shape(self, input_shape):
        """(N, out_features); an input that is not (N, in_features) raises a ValueError
        naming the layer and the input."""
        if len(input_shape) != 2 or input_shape[1] != self.in_features:
            raise ValueError(f"{self.signature()}: expected input of shape (N, "
                             f"{self.in_features}), got shape {tuple(input_shape)}")
        return (input_shape[0], self.out_features)

    def multiply_adds(self, input_shape):
        return self.output_shape(input_shape)[0] * self.in_features * self.out_features

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


class _Pool2D(Layer):
    """Shared shape logic of the pooling layers (no parameters)."""

    def __init__(self, kernel_size, stride=None, padding=0, name=None):
        super().__init__(name)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self._x = None

    def output_shape(self, input_shape):
        """The output shape for an input of `input_shape`; an input the window does not
        fit raises a ValueError naming the layer and the input."""
        self._check_ndim(input_shape, 4, "(N, C, H, W)")
        return pool_geometry(self.signature(), input_shape, self.kernel_size, self.stride,
                             self.padding).output_shape

    def _kept_outputs(self, x, shape, roles):
        """The `out` for forward under buffer reuse (y, and argmax for max pooling) of an
        output of `shape`, or None; an input the pooling function will reject gets None and
        its error."""
        if not (self._reuse and self.training) or not isinstance(x, np.ndarray) \
                or x.dtype not in (np.float32, np.float64):
            return None
        kinds = {"y": x.dtype, "argmax": np.uint8}
        return tuple(self._out(role, shape, kinds[role], (x,)) for role in roles)

    def _grad_x_out(self, x, grad_out):
        if x.dtype not in (np.float32, np.float64):
            return None
        return self._out("grad_x", x.shape, x.dtype, (x, grad_out))

    def extra_repr(self):
        text = f"kernel_size={self.kernel_size}"
        if self.stride != self.kernel_size:
            text += f", stride={self.stride}"
        return text + (f", padding={self.padding}" if self.padding != 0 else "")

    def _new_input_plan(self, shape, dtype):
        """The geometry of a float32 or float64 input with no empty axis, else None."""
        self._check_ndim(shape, 4, "(N, C, H, W)")
        geom = pool_geometry(self.signature(), shape, self.kernel_size, self.stride,
                             self.padding)
        if dtype not in (np.float32, np.float64) or 0 in shape:
            return None
        return geom

    def _run_planned(self, x, geom):
        return pool_planned(self.KIND, as_kernel_input(x, x.dtype), geom)

    def _emit(self, program, x):
        geom = self._new_input_plan(x.shape, program.dtype)
        if geom is None:
            raise Unsupported
        return program.step(f"{self.KIND}_pool", [x], geom.output_shape, geometry=geom)


class MaxPool2D(_Pool2D):
    """Max pooling: the largest value of each window; backward routes each gradient to
    the position that won (the compact uint8 argmax saved by forward; none in eval mode)."""

    KIND = "max"

    def forward(self, x):
        shape = self.output_shape(np.shape(x))
        if not self.training:
            self._x = self._argmax = None
            return max_pool2d(x, self.kernel_size, self.stride, self.padding)
        out = self._kept_outputs(x, shape, ("y", "argmax"))
        y, argmax = max_pool2d(x, self.kernel_size, self.stride, self.padding,
                               return_argmax=True, out=out)
        self._x, self._argmax = x, argmax
        return y

    def backward(self, grad_out, input_grad=True):
        x = self._saved(self._x)
        grad_out = np.asarray(grad_out, dtype=x.dtype)
        return max_pool2d_backward(grad_out, x, self.kernel_size, self.stride, self.padding,
                                   argmax=self._argmax, out=self._grad_x_out(x, grad_out))


class AvgPool2D(_Pool2D):
    """Average pooling: the mean of each window; backward shares each gradient equally
    among the window's inputs."""

    KIND = "avg"

    def forward(self, x):
        shape = self.output_shape(np.shape(x))
        self._x = x if self.training else None
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                          out=self._kept_outputs(x, shape, ("y",)))

    def backward(self, grad_out, input_grad=True):
        x = self._saved(self._x)
        grad_out = np.asarray(grad_out, dtype=x.dtype)
        return avg_pool2d_backward(grad_out, x, self.kernel_size, self.stride, self.padding,
                                   out=self._grad_x_out(x, grad_out))


class ReLU(Layer):
    """max(x, 0); the gradient passes where the output is positive."""

    def __init__(self, name=None):
        super().__init__(name)
        self._y = None

    def forward(self, x):
        out = self._elementwise_out("y", x)
        if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
            y = np.maximum(x, 0, out=out)
        else:        # the C kernel: one pass on the threads (NaN stays NaN, as np.maximum)
            x = as_kernel_input(x, x.dtype)
            y = np.empty(x.shape, x.dtype) if out is None else out
            _ext.relu_forward(x.reshape(-1), y.reshape(-1))
        self._y = y if self.training else None
        return y

    def _emit(self, program, x):
        return program.step("relu", [x], x.shape, count=x.size)

    def backward(self, grad_out, input_grad=True):
        y = self._saved(self._y)
        if not (isinstance(grad_out, np.ndarray) and grad_out.dtype == y.dtype
                and y.dtype in (np.float32, np.float64)):
            return grad_out * (y > 0)          # NumPy's promotion and broadcasting
        # the C kernel: the gradient where y > 0, else 0, as PyTorch's (an inf or NaN
        # gradient where y <= 0 gives 0)
        return _activation_backward(grad_out, y, "relu",
                                    self._elementwise_out("grad_x", y, grad_out))


class Tanh(Layer):
    """tanh(x); its derivative is 1 - tanh(x)^2, computed from the saved output."""

    def __init__(self, name=None):
        super().__init__(name)
        self._y = None

    def forward(self, x):
        y = np.tanh(x, out=self._elementwise_out("y", x))
        self._y = y if self.training else None
        return y

    def backward(self, grad_out, input_grad=True):
        y = self._saved(self._y)
        return _tanh_backward(grad_out, y, self._elementwise_out("grad_x", y, grad_out))


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), the bridge from conv volumes to dense layers."""

    def __init__(self, name=None):
        super().__init__(name)
        self._shape = None

    def forward(self, x):
        shape = self.output_shape(np.shape(x))
        self._shape = x.shape if self.training else None
        return x.reshape(shape)

    def _new_input_plan(self, shape, dtype):
        return self.output_shape(shape)

    def _run_planned(self, x, shape):
        return x.reshape(shape)

    def _emit(self, program, x):
        return program.view(x, self.output_shape(x.shape))

    def backward(self, grad_out, input_grad=True):
        return grad_out.reshape(self._saved(self._shape))

    def output_shape(self, input_shape):
        """(N, product of the other axes); an input without a batch axis and at least one
        more raises a ValueError naming the layer and the input."""
        if len(input_shape) < 2:
            raise ValueError(f"{self.signature()}: expected an input of shape (N, ...) with "
                             f"at least 2 axes, got shape {tuple(input_shape)}")
        return (input_shape[0], int(np.prod(input_shape[1:])))


def _as_3d(shape):
    """(N, C, product of the other axes): how the batch norm kernels see an input."""
    return (shape[0], shape[1], math.prod(shape[2:]))


class _BatchNorm(Layer):
    """Batch normalisation, as PyTorch's BatchNorm: each channel normalised by the batch's
    mean and biased variance in training (and always without running statistics), by the
    running estimates in evaluation, then scaled by weight and shifted by bias (when
    affine). The running estimates follow running = (1 - momentum) * running + momentum *
    batch, with the batch's unbiased variance; momentum=None makes them the cumulative
    average of every batch so far. The statistics and gradients come from fastconv's C
    kernels, per channel in float64.

    Parameters
    ----------
    num_features : int
        The channels C.
    eps : float
        Added to the variance before its square root (> 0).
    momentum : float in [0, 1] or None
    affine : bool
        Learn weight (ones at first) and bias (zeros).
    track_running_stats : bool
        Keep running_mean, running_var and num_batches_tracked (buffers in state_dict).
    dtype : float32 or float64
    name : str, optional
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32, name=None):
        super().__init__(name)
        func = type(self).__name__
        self.num_features = as_count(num_features, "num_features", func)
        self.eps = as_real_number(eps, "eps", func, low=0, low_open=True)
        self.momentum = None if momentum is None else as_real_number(momentum, "momentum",
                                                                     func, low=0, high=1)
        self.affine = as_bool(affine, "affine", func)
        self.track_running_stats = as_bool(track_running_stats, "track_running_stats", func)
        self._dtype = np.dtype(dtype)
        if self._dtype not in (np.float32, np.float64):
            raise TypeError(f"{func}: dtype must be float32 or float64, got {self._dtype}")
        C = self.num_features
        if self.affine:
            self._new_param("weight", np.ones(C, dtype=self._dtype))
            self._new_param("bias", np.zeros(C, dtype=self._dtype))
        if self.track_running_stats:
            self._buffers["running_mean"] = np.zeros(C, dtype=self._dtype)
            self._buffers["running_var"] = np.ones(C, dtype=self._dtype)
            self._buffers["num_batches_tracked"] = np.zeros((), dtype=np.int64)
        self._x = self._mean = self._invstd = self._relu_y = None

    def multiply_adds(self, input_shape):
        """One per value: normalising, scaling and shifting fold into x * a + b."""
        return math.prod(input_shape)

    def astype(self, dtype):
        super().astype(dtype)
        for key in ("running_mean", "running_var"):
            if key in self._buffers:
                self._buffers[key] = self._buffers[key].astype(self._dtype)
        return self

    def forward(self, x):
        return self._normalize(x, relu=False)

    def _normalize(self, x, relu):
        """forward(x), then a ReLU where relu, in the same pass; backward then applies the
        ReLU's gradient in its own passes (the Sequential that holds both calls this)."""
        x = as_real_input(x, "x", f"{self.describe()}.forward", self.dtype)
        self.output_shape(x.shape)                 # an input that does not fit fails here
        x = as_kernel_input(x, self.dtype)
        N, C = x.shape[:2]
        x3 = x.reshape(_as_3d(x.shape))            # (N, C, spatial), a view
        y = self._out("y", x.shape, self.dtype, (x,))
        if y is None:
            y = np.empty_like(x)
        y3 = y.reshape(x3.shape)
        weight, bias = self._params.get("weight"), self._params.get("bias")
        self._x = self._mean = self._invstd = self._relu_y = None
        if self.training or not self.track_running_stats:
            if N * x3.shape[2] == 1:
                raise ValueError(f"{self.signature()}: expected more than 1 value per channel "
                                 f"when training, got input shape {tuple(x.shape)}")
            mean, invstd = np.empty(C), np.empty(C)
            running_mean = running_var = None
            momentum = 0.0
            if self.training and self.track_running_stats:
                running_mean = self._buffers["running_mean"]
                running_var = self._buffers["running_var"]
                tracked = self._buffers["num_batches_tracked"]
                tracked += 1
                momentum = 1.0 / int(tracked) if self.momentum is None else self.momentum
            _ext.batch_norm_forward_train(x3, y3, mean, invstd, running_mean, running_var,
                                          weight, bias, self.eps, momentum, relu)
            if self.training:
                self._x, self._mean, self._invstd = x, mean, invstd
                self._relu_y = y3 if relu else None
        else:
            _ext.batch_norm_forward_eval(x3, y3, self._buffers["running_mean"],
                                         self._buffers["running_var"], weight, bias, self.eps,
                                         relu)
        return y

    def _emit(self, program, x):
        self.output_shape(x.shape)
        if not self.track_running_stats:
            raise Unsupported
        return program.step("batch_norm", [x], x.shape, sizes=_as_3d(x.shape), eps=self.eps,
                            mean=program.param(self, "running_mean", "_buffers"),
                            var=program.param(self, "running_var", "_buffers"),
                            weight=program.param(self, "weight"),
                            bias=program.param(self, "bias"))

    def backward(self, grad_out, input_grad=True):
        x = self._saved(self._x)
        g = as_kernel_input(np.asarray(grad_out), self.dtype)
        if g.shape != x.shape:
            raise ValueError(f"{self.signature()}.backward: expected grad_out of shape "
                             f"{x.shape} (the output of the last forward), got shape "
                             f"{g.shape}")
        x3 = x.reshape(_as_3d(x.shape))
        dx = None
        if input_grad:
            dx = self._out("grad_x", x.shape, self.dtype, (g, x))
            if dx is None:
                dx = np.empty_like(x)
        dweight = dbias = None
        if self.affine:
            dweight, dbias = self._grad_out("weight"), self._grad_out("bias")
            if dweight is None:
                dweight, dbias = np.empty(x.shape[1], self.dtype), np.empty(x.shape[1],
                                                                            self.dtype)
        _ext.batch_norm_backward(g.reshape(x3.shape), x3, self._mean, self._invstd,
                                 self._params.get("weight"),
                                 None if dx is None else dx.reshape(x3.shape), dweight, dbias,
                                 self._relu_y)
        if self.affine:
            self._grads["weight"], self._grads["bias"] = dweight, dbias
        return dx

    def output_shape(self, input_shape):
        """The input's shape; an input with the wrong number of axes or channels raises a
        ValueError naming the layer and the input."""
        self._check_layout(tuple(input_shape))
        if input_shape[1] != self.num_features:
            raise ValueError(f"{self.signature()}: expected input with {self.num_features} "
                             f"channels, got {input_shape[1]} (input shape "
                             f"{tuple(input_shape)})")
        return tuple(input_shape)

    def extra_repr(self):
        text = f"num_features={self.num_features}"
        if self.eps != 1e-5:
            text += f", eps={self.eps!r}"
        if self.momentum != 0.1:
            text += f", momentum={self.momentum!r}"
        if not self.affine:
            text += ", affine=False"
        if not self.track_running_stats:
            text += ", track_running_stats=False"
        return text


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs over N, H and W, per channel (PyTorch's
    BatchNorm2d). Parameters as :class:`_BatchNorm`: ``BatchNorm2D(num_features, eps=1e-5,
    momentum=0.1, affine=True, track_running_stats=True)``."""

    def _check_layout(self, shape):
        self._check_ndim(shape, 4, f"(N, {self.num_features}, H, W)")


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs over N (and L), per channel
    (PyTorch's BatchNorm1d). Parameters as :class:`_BatchNorm`."""

    def _check_layout(self, shape):
        if len(shape) not in (2, 3):
            raise ValueError(f"{self.signature()}: expected a 2-D input (N, "
                             f"{self.num_features}) or a 3-D input (N, {self.num_features}, "
                             f"L), got shape {shape}")


class Identity(Layer):
    """Returns its input unchanged (and the gradient likewise): a placeholder, e.g. the
    shortcut of a residual block whose shapes already match."""

    def _emit(self, program, x):
        return x


class Dropout(Layer):
    """Inverted dropout: in training each value is zeroed with probability p and the rest
    are scaled by 1 / (1 - p), so eval mode (where it is the identity) needs no rescaling.

    The mask is drawn from ``seed``'s generator: a model passes its own Generator, so one
    seed makes a whole run repeatable. p = 1 zeroes everything, as in PyTorch.
    """

    def __init__(self, p=0.5, seed=None, name=None):
        super().__init__(name)
        self.p = as_real_number(p, "p", "Dropout", low=0.0, high=1.0)
        self._rng = as_rng(seed)
        self._mask = None

    def forward(self, x):
        x = np.asarray(x)
        if not self.training or self.p == 0.0:
            self._mask = None
            return x.copy() if self.training else x
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        keep = self._rng.random(x.shape) >= self.p
        self._mask = keep.astype(x.dtype if x.dtype.kind == "f" else np.float64) * scale
        return x * self._mask

    def generators(self):
        return {"rng": self._rng}

    def _emit(self, program, x):
        return x          # the identity in eval mode

    def backward(self, grad_out, input_grad=True):
        if not self.training:
            self._saved(None)
        if self.p == 0.0:
            return np.array(grad_out, copy=True)
        mask = self._saved(self._mask)
        if np.shape(grad_out) != mask.shape:
            raise ValueError(f"{self.signature()}: expected grad_out of shape {mask.shape} "
                             f"(the output of the last forward), got shape {np.shape(grad_out)}")
        return grad_out * mask

    def extra_repr(self):
        return f"p={self.p:g}"


class GlobalAvgPool2D(Layer):
    """(N, C, H, W) -> (N, C): the mean of each channel, the head of ResNet and MobileNet
    before their last Linear layer (PyTorch: ``AdaptiveAvgPool2d(1)`` then flatten)."""

    def __init__(self, name=None):
        super().__init__(name)
        self._x = None

    def forward(self, x):
        self._check_ndim(np.shape(x), 4, "(N, C, H, W)")
        y = global_avg_pool2d(x)
        self._x = x if self.training else None
        return y.reshape(y.shape[:2])

    def backward(self, grad_out, input_grad=True):
        x = self._saved(self._x)
        expected = tuple(np.shape(x)[:2])
        if np.shape(grad_out) != expected:
            raise ValueError(f"{self.signature()}: expected grad_out of shape {expected} "
                             f"(the output of the last forward), got shape {np.shape(grad_out)}")
        grad_out = np.asarray(grad_out)
        return global_avg_pool2d_backward(grad_out.reshape(grad_out.shape + (1, 1)), x)

    def output_shape(self, input_shape):
        self._check_ndim(input_shape, 4, "(N, C, H, W)")
        return tuple(input_shape[:2])

    def _emit(self, program, x):
        self._check_ndim(x.shape, 4, "(N, C, H, W)")
        if 0 in x.shape:
            raise Unsupported
        geom = adaptive_geometry("global_avg_pool2d", x.shape, 1)
        y = program.step("adaptive_avg_pool", [x], geom.output_shape, geometry=geom)
        return program.view(y, self.output_shape(x.shape))


class ZeroPadShortcut(Layer):
    """ResNet's parameter-free shortcut ("option A"): the input subsampled by `stride`
    (``x[:, :, ::stride, ::stride]``) with zero channels added, half before and half after
    its own, to reach `out_channels`."""

    def __init__(self, in_channels, out_channels, stride=2, name=None):
        super().__init__(name)
        self.in_channels = as_count(in_channels, "in_channels", "ZeroPadShortcut")
        self.out_channels = as_count(out_channels, "out_channels", "ZeroPadShortcut")
        self.stride = as_count(stride, "stride", "ZeroPadShortcut")
        extra = self.out_channels - self.in_channels
        if extra < 0 or extra % 2:
            raise ValueError(f"ZeroPadShortcut: out_channels must be in_channels plus an even "
                             f"number, got {in_channels} -> {out_channels}")
        self.before = extra // 2
        self._x_shape = None

    def forward(self, x):
        x = np.asarray(x)
        self.output_shape(x.shape)
        s, c0 = self.stride, self.before
        sub = x[:, :, ::s, ::s]
        y = np.zeros((x.shape[0], self.out_channels) + sub.shape[2:], dtype=x.dtype)
        y[:, c0:c0 + self.in_channels] = sub
        self._x_shape = x.shape if self.training else None
        return y

    def backward(self, grad_out, input_grad=True):
        shape = self._saved(self._x_shape)
        grad_out = np.asarray(grad_out)
        expected = self.output_shape(shape)
        if grad_out.shape != expected:
            raise ValueError(f"{self.signature()}: expected grad_out of shape {expected} "
                             f"(the output of the last forward), got shape {grad_out.shape}")
        s, c0 = self.stride, self.before
        grad_x = np.zeros(shape, dtype=grad_out.dtype)
        grad_x[:, :, ::s, ::s] = grad_out[:, c0:c0 + self.in_channels]
        return grad_x

    def output_shape(self, input_shape):
        self._check_ndim(input_shape, 4, f"(N, {self.in_channels}, H, W)")
        if input_shape[1] != self.in_channels:
            raise ValueError(f"{self.signature()}: expected input with {self.in_channels} "
                             f"channels, got {input_shape[1]}")
        n, _, h, w = input_shape
        return (n, self.out_channels, -(-h // self.stride), -(-w // self.stride))

    def _emit(self, program, x):
        return program.step("zero_pad_subsample", [x], self.output_shape(x.shape),
                            input_shape=x.shape, out_channels=self.out_channels,
                            before=self.before, stride=self.stride)

    def extra_repr(self):
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"stride={self.stride}")


class _Container(Layer):
    """A layer made of named sub-layers (:meth:`named_layers`): parameters, gradients and
    buffers are theirs, under ``"<sub-layer name>.<name>"``, and modes, dtype and buffer
    reuse apply to all of them."""

    def named_layers(self):
        """[(name, layer), ...]."""
        raise NotImplementedError

    def _on_all(self, method, *args):
        """Run a Layer method on this container and on each of its layers."""
        getattr(super(), method)(*args)
        for _, layer in self.named_layers():
            getattr(layer, method)(*args)
        return self

    def _set_reuse(self, mode, inside):
        super()._set_reuse(mode, inside)
        for _, layer in self.named_layers():
            layer._set_reuse(mode, inside=True)
        return self

    def _fuse_in_place(self):
        for _, layer in self.named_layers():
            layer._fuse_in_place()

    def _gather(self, method):
        out = dict(getattr(super(), method)())
        for name, layer in self.named_layers():
            out.update({f"{name}.{k}": v for k, v in getattr(layer, method)().items()})
        return out

    def params(self):
        return self._gather("params")

    def grads(self):
        return self._gather("grads")

    def buffers(self):
        return self._gather("buffers")

    def generators(self):
        return self._gather("generators")

    def astype(self, dtype):
        return self._on_all("astype", dtype)

    def train(self, mode=True):
        return self._on_all("train", mode)


class Sequential(_Container):
    """Layers applied in order; backward runs them in reverse.

    Parameter names are ``"<layer name>.<param>"``, the layer name being the layer's
    ``name`` or its position (``"0.weight"``), as in PyTorch.

    >>> net = Sequential(Linear(4, 3, seed=0), ReLU(), Linear(3, 2, seed=1))
    >>> sorted(net.params())
    ['0.bias', '0.weight', '2.bias', '2.weight']
    """

    def __init__(self, *layers, name=None):
        super().__init__(name)
        self.layers = list(layers)
        self._names = [layer.name or str(i) for i, layer in enumerate(self.layers)]
        if len(set(self._names)) != len(self._names):
            raise ValueError(f"Sequential: layer names must be unique, got {self._names}")

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getitem__(self, index):
        if isinstance(index, str):
            return self.layers[self._names.index(index)]
        return self.layers[index]

    def _fuse_in_place(self):
        super()._fuse_in_place()
        kept = []
        for name, layer in self.named_layers():
            last = kept[-1][1] if kept else None
            if isinstance(last, Conv2D) and last.activation is None \
                    and isinstance(layer, BatchNorm2D) and layer.track_running_stats:
                last._fold_batch_norm(layer)
            elif isinstance(last, Conv2D) and last.activation is None \
                    and type(layer) is ReLU:
                last.activation = "relu"
            else:
                kept.append((name, layer))
        self._names = [name for name, _ in kept]
        self.layers = [layer for _, layer in kept]

    def named_layers(self):
        """[(name, layer), ...] in order."""
        return list(zip(self._names, self.layers))

    def _escaping(self, result):
        """What forward/backward return: under buffer reuse a copy, since the layer that
        made it would overwrite it on its next call (the caller keeps new arrays); inside
        a container, the array itself (the container uses it before that call)."""
        if self._reuse and self.training and not self._inside \
                and isinstance(result, np.ndarray):
            return result.copy()
        return result

    def _relu_inside(self, i):
        """True where layer i is a batch norm and a ReLU follows it: forward and backward
        run the ReLU inside the batch norm's passes (one pass over the values fewer each
        way, with the same bits), and skip the ReLU layer."""
        layers = self.layers
        return (isinstance(layers[i], _BatchNorm) and i + 1 < len(layers)
                and type(layers[i + 1]) is ReLU)

    def forward(self, x):
        if not self.training and type(x) is np.ndarray:
            return self._infer(x)
        i = 0
        while i < len(self.layers):
            if self._relu_inside(i):
                x = self.layers[i]._normalize(x, relu=True)
                self.layers[i + 1]._y = None      # its backward runs inside the batch norm's
                i += 2
            else:
                x = self.layers[i].forward(x)
                i += 1
        return self._escaping(x)

    def _infer(self, x):
        if self.training:
            return self.forward(x)
        settings = program_settings()       # a program for each: autotune may alternate
        program = self._plan_input(x, settings)
        status = None if program is None else program.status()
        if status == "stale":
            self._input_plans.pop((x.shape, x.dtype, settings))
            program = self._plan_input(x, settings)
            status = None if program is None else program.status()
        if status == "ready":
            return program.run(as_kernel_input(x, x.dtype))
        for layer in self.layers:
            x = layer._infer(x)
        return x

    def _new_input_plan(self, shape, dtype):
        """The eval-mode program for inputs of this shape and dtype (None: not one)."""
        if dtype not in (np.float32, np.float64):
            return None
        return build_program(self, shape, dtype)

    def _emit(self, program, x):
        for layer in self.layers:
            x = program.emit(layer, x)
        return x

    def _program_state(self):
        return tuple(self.layers)

    def backward(self, grad_out, input_grad=True):
        i = len(self.layers) - 1
        while i >= 0:
            if i > 0 and self._relu_inside(i - 1):
                i -= 1                     # the ReLU's backward runs inside the batch norm's
            grad_out = self.layers[i].backward(grad_out, input_grad=input_grad or i > 0)
            i -= 1
        return self._escaping(grad_out) if input_grad else None

    def output_shape(self, input_shape):
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def multiply_adds(self, input_shape):
        total, shape = 0, tuple(input_shape)
        for _, layer in self.named_layers():
            total += layer.multiply_adds(shape)
            shape = layer.output_shape(shape)
        return total

    def summary_table(self, input_shape):
        """The rows of :meth:`summary`: [(layer, output shape, parameters, multiply-adds
        per image), ...]."""
        rows, shape = [], (1,) + tuple(input_shape[1:])
        for name, layer in self.named_layers():
            adds = layer.multiply_adds(shape)
            shape = layer.output_shape(shape)
            rows.append((f"{name} ({layer.kind()})", ("None",) + tuple(shape[1:]),
                         layer.num_params(), adds))
        return rows

    def summary(self, input_shape, file=None):
        """Print a Keras-style table of layers, output shapes, parameter counts and
        multiply-adds per image.

        Parameters
        ----------
        input_shape : tuple
            The shape of one batch, e.g. (1, 1, 32, 32); the batch size shows as None.
        """
        rows = self.summary_table(input_shape)
        width = 80
        lines = [f"Model: {self.name or type(self).__name__}", "_" * width,
                 f"{'Layer (type)':<26}{'Output shape':<24}{'Param #':>14}{'Mult-adds':>16}",
                 "=" * width]
        for label, shape, count, adds in rows:
            shape_text = "(" + ", ".join(str(s) for s in shape) + ")"
            lines.append(f"{label:<26}{shape_text:<24}{count:>14,}{adds:>16,}")
        total = self.num_params()
        lines += ["=" * width, f"Total params: {total:,}", f"Trainable params: {total:,}",
                  "Non-trainable params: 0",
                  f"Multiply-adds per image: {sum(row[3] for row in rows):,}", "_" * width]
        print("\n".join(lines), file=file)

    def extra_repr(self):
        return ", ".join(repr(layer) for layer in self.layers)


class Residual(_Container):
    """y = body(x) + shortcut(x), then an optional activation: the residual block of ResNet
    (``activation="relu"``) and MobileNetV2 (none).

    ``shortcut=None`` is the identity (body must keep the shape). backward sends the
    gradient through both branches and adds what comes back. Parameter names are
    ``"body.<...>"`` and ``"shortcut.<...>"``. Under :meth:`reuse_buffers` it returns the
    arrays it keeps, as every layer does (a Sequential around it returns new ones).
    """

    def __init__(self, body, shortcut=None, activation=None, name=None):
        super().__init__(name)
        for what, layer in (("body", body), ("shortcut", shortcut)):
            if layer is not None and not isinstance(layer, Layer):
                raise TypeError(f"Residual: {what} must be a Layer, got {type(layer).__name__}")
        _check_choice(activation, ACTIVATIONS, "activation", "Residual")
        self.body = body
        self.shortcut = shortcut if shortcut is not None else Identity()
        self.activation = activation
        self._y = None

    def named_layers(self):
        return [("body", self.body), ("shortcut", self.shortcut)]

    def forward(self, x):
        return self._add(x, self.body.forward(x), self.shortcut.forward(x))

    def _infer(self, x):
        if self.training:
            return self.forward(x)
        return self._add(x, self.body._infer(x), self.shortcut._infer(x))

    def _emit(self, program, x):
        if self.activation not in (None, "relu"):
            raise Unsupported
        main, side = program.emit(self.body, x), program.emit(self.shortcut, x)
        self.output_shape(x.shape)            # the branches' shapes must match
        return program.step("add", [main, side], main.shape, count=main.size,
                            relu=self.activation == "relu")

    def _program_state(self):
        return (self.activation, self.body, self.shortcut)

    def _add(self, x, main, side):
        """The block's output from its input x and what the two branches made of it."""
        if np.shape(main) != np.shape(side):
            raise ValueError(f"{self.signature()}: the body gives shape {np.shape(main)} and "
                             f"the shortcut {np.shape(side)} for an input of shape "
                             f"{np.shape(x)}; they must match to be added")
        # Not into x, which may be the sum this block returned last time: the body's
        # layers keep x for their backward.
        out = self._elementwise_out("y", main, side, reads=(x,))
        if out is None and self.activation:      # a new array the activation may overwrite
            out = np.empty(np.broadcast_shapes(np.shape(main), np.shape(side)),
                           np.result_type(main, side))
        y = _sum(main, side, out, self.activation)
        self._y = y if self.training and self.activation else None
        return y

    def backward(self, grad_out, input_grad=True):
        if self.activation:
            y = self._saved(self._y)
            grad_out = _activation_backward(grad_out, y, self.activation,
                                            self._elementwise_out("grad_sum", y, grad_out))
        grad_body = self.body.backward(grad_out, input_grad=input_grad)
        grad_short = self.shortcut.backward(grad_out, input_grad=input_grad)
        if not input_grad:
            return None
        return _sum(grad_body, grad_short,
                    self._elementwise_out("grad_x", grad_body, grad_short))

    def output_shape(self, input_shape):
        main = tuple(self.body.output_shape(input_shape))
        side = tuple(self.shortcut.output_shape(input_shape))
        if main != side:
            raise ValueError(f"{self.signature()}: the body gives shape {main} and the "
                             f"shortcut {side} for an input of shape {tuple(input_shape)}; "
                             f"they must match to be added")
        return main

    def multiply_adds(self, input_shape):
        return self.body.multiply_adds(input_shape) + self.shortcut.multiply_adds(input_shape)

    def kind(self):
        return f"Residual+{self.activation}" if self.activation else "Residual"

    def extra_repr(self):
        text = f"body={self.body!r}, shortcut={self.shortcut!r}"
        return text + (f", activation={self.activation!r}" if self.activation else "")
