"""Eval-mode programs: a network's forward pass for one input shape and dtype, run as one
C call (src/program.c).

Layer by layer, each kernel call from Python costs microseconds of argument handling: at
batch 1 as much as LeNet-5's kernels themselves. A :class:`Sequential` in eval mode makes a
program the first time it sees an input shape: each layer emits its steps
(``Layer._emit``), the steps call the kernels the layers call, in the same way, so the
output has the bits of the layer-by-layer forward pass. A program is kept per input shape,
dtype and settings (program_settings); before each run it checks that the layers it was
made from still hold (:meth:`InferenceProgram.status`).
"""
import threading

import numpy as np

from .. import _ext
from ..autotune import get_autotune
from ..config import get_num_threads

__all__ = ["InferenceProgram", "build_program", "program_settings"]

# A program runs when its workspace is at most this size. Above it each call is long
# enough that the layer-by-layer way's overhead does not show, and a program would hold
# its workspace between calls.
PROGRAM_MAX_WORKSPACE_BYTES = 16 << 20

# Workspace values start a multiple of this many bytes apart (a cache line, an AVX-512
# vector): two values never share a cache line.
VALUE_ALIGN_BYTES = 64


class Unsupported(Exception):
    """A layer (or an input) a program cannot hold: the layer-by-layer way runs."""


class _Value:
    """A value of the program: its shape and the storage it lives in (a root; views such
    as Flatten's share their input's)."""

    def __init__(self, shape, root):
        self.shape, self.root = tuple(shape), root

    @property
    def size(self):
        return int(np.prod(self.shape))


class ProgramBuilder:
    """Collects a network's steps for one input; layers call the methods below from their
    ``_emit``. Each step is a dict for ``_ext.Program``, with values as roots until
    :meth:`finish` places them."""

    def __init__(self, shape, dtype):
        self.dtype = np.dtype(dtype)
        self.steps = []
        self.root_sizes = [int(np.prod(shape))]    # root 0: the input
        self.root_defined = [-1]                    # the step writing each root
        self.root_last_use = [-1]                   # the last step reading it
        self.layers = []           # every layer, for its training flag
        self.guards = []           # (layer, its _program_state()) where that is not ()
        self.params = []           # (params or buffers dict, name, array)
        self.input = _Value(shape, 0)

    def emit(self, layer, x):
        """The value layer makes of value x (its steps appended)."""
        self.layers.append(layer)
        state = layer._program_state()
        if state:
            self.guards.append((layer, state))
        return layer._emit(self, x)

    def param(self, layer, name, group="_params"):
        """layer's parameter `name` (None when it has none), watched by the program; with
        group="_buffers", a buffer (BatchNorm's running statistics)."""
        arrays = getattr(layer, group)
        array = arrays.get(name)
        self.params.append((arrays, name, array))
        if array is not None and (array.dtype != self.dtype
                                  or not array.flags.c_contiguous):
            raise Unsupported
        return array

    def view(self, x, shape):
        """x seen with another shape (a reshape, no step)."""
        return _Value(shape, x.root)

    def step(self, kind, inputs, shape, **fields):
        """Append a step of `kind` reading values `inputs` and writing a new value of
        `shape`; returns that value."""
        if 0 in shape:
            raise Unsupported      # empty arrays: the layers' own code handles them
        index = len(self.steps)
        for value in inputs:
            self.root_last_use[value.root] = index
        out = _Value(shape, len(self.root_sizes))
        self.root_sizes.append(out.size)
        self.root_defined.append(index)
        self.root_last_use.append(index)
        fields.update(kind=kind, input=inputs[0].root, output=out.root)
        if len(inputs) > 1:
            fields["side"] = inputs[1].root
        self.steps.append(fields)
        return out

    def finish(self, result):
        """The program whose output is value `result`; Unsupported when it has no step, or
        its workspace is over PROGRAM_MAX_WORKSPACE_BYTES."""
        if result.root == 0:
            raise Unsupported      # the output is the input or a view of it
        places = self._place(result.root)
        workspace = max([offset + self.root_sizes[root]
                         for root, (buffer, offset) in places.items()
                         if buffer == "workspace"], default=0)
        if workspace * self.dtype.itemsize > PROGRAM_MAX_WORKSPACE_BYTES:
            raise Unsupported
        steps = []
        for step in self.steps:
            step = dict(step)
            for key in ("input", "output", "side"):
                if key in step:
                    step[key] = places[step[key]]
            steps.append(step)
        kernel = _ext.Program(steps, self.dtype.name, self.root_sizes[0],
                              self.root_sizes[result.root], workspace)
        return InferenceProgram(kernel, result.shape, self.dtype, workspace, self.layers,
                                self.guards, self.params)

    def _place(self, output_root):
        """{root: (buffer, offset)}: the input and output roots in their own buffers, the
        others in the workspace, first fit among the regions of roots still alive when
        each is written (a step's output never shares memory with its inputs)."""
        align = VALUE_ALIGN_BYTES // self.dtype.itemsize
        places = {0: ("input", 0), output_root: ("output", 0)}
        alive = []            # (offset, size, last use)
        for root in range(1, len(self.root_sizes)):
            if root == output_root:
                continue
            start = self.root_defined[root]
            size = -(-self.root_sizes[root] // align) * align
            alive = sorted(region for region in alive if region[2] >= start)
            offset = 0
            for region_offset, region_size, _ in alive:
                if offset + size <= region_offset:
                    break
                offset = max(offset, region_offset + region_size)
            alive.append((offset, size, self.root_last_use[root]))
            places[root] = ("workspace", offset)
        return places


def build_program(layer, shape, dtype):
    """The program of layer (in eval mode) for inputs of this shape and dtype, or None where
    a layer or the input is not supported. Raises what the layers' forward raises for an
    input of this shape."""
    builder = ProgramBuilder(shape, dtype)
    try:
        return builder.finish(builder.emit(layer, builder.input))
    except Unsupported:
        return None


class InferenceProgram:
    """A program and what it was made from: the layers, their states and the parameter
    arrays it reads. The workspace is kept between calls and used by one call at a time
    (another thread's concurrent call makes its own)."""

    def __init__(self, kernel, output_shape, dtype, workspace_size, layers, guards, params):
        self._kernel = kernel
        self.output_shape, self.dtype = output_shape, dtype
        self._workspace = np.empty(workspace_size, dtype)
        self._layers, self._guards, self._params = layers, guards, params
        self._lock = threading.Lock()

    def status(self):
        """"ready"; "training" when a layer is in training mode (the layer-by-layer way runs
        this call); "stale" when a parameter array or a layer's structure changed since (the
        program must be made again). The settings that chose its algorithms
        (program_settings) are part of its key in the layer's cache."""
        for params, name, array in self._params:
            if params.get(name) is not array:
                return "stale"
        for layer, state in self._guards:
            if layer._program_state() != state:
                return "stale"
        for layer in self._layers:
            if layer.training:
                return "training"
        return "ready"

    def run(self, x):
        """The output for x, a C-contiguous array of the program's input shape and dtype."""
        y = np.empty(self.output_shape, self.dtype)
        if self._lock.acquire(blocking=False):
            try:
                self._kernel.run(x, y, self._workspace)
            finally:
                self._lock.release()
        else:
            self._kernel.run(x, y, np.empty_like(self._workspace))
        return y


def program_settings():
    """What plan_for's choice depends on besides the problem."""
    return get_autotune(), get_num_threads(), _ext.simd_name()
