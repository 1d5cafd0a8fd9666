"""Eval-mode programs: a network's forward pass for one input shape and dtype, run as one
C call (src/program.c).

Layer by layer, each kernel call from Python costs microseconds of argument handling: at
batch 1 as much as LeNet-5's kernels themselves. A :class:`Sequential` in eval mode makes a
program the first time it sees an input shape: each layer emits its steps
(``Layer._emit``), the steps call the kernels the layers call, in the same way, so the
output has the bits of the layer-by-layer forward pass. A program is kept per input shape,
dtype and settings (program_settings); before each run it checks that the layers it was
made from still hold (:meth:`InferenceProgram.status`).

A large batch of images runs in chunks of equal size (the last padded with zero images): a
program made for one chunk runs on each, the threads taking whole chunks, each thread's
kernels on itself alone. A chunk's values stay in the caches from one layer to the next,
where the whole batch's would go to memory and back, and the threads do not wait for each
other after every layer. The kernels then run at the chunk's batch size on one thread, so
the output equals the whole batch's layer-by-layer pass within float rounding (bitwise
where the kernels' choices do not depend on the batch size and thread count).
"""
import threading

import numpy as np

from .. import _ext
from ..autotune import get_autotune
from ..config import get_num_threads

__all__ = ["InferenceProgram", "build_program", "program_settings"]

# A program runs when its workspace (each thread's, in chunks) is at most this size. Above
# it each call is long enough that the layer-by-layer way's overhead does not show, and a
# program would hold its workspace between calls.
PROGRAM_MAX_WORKSPACE_BYTES = 16 << 20

# A batch of images whose program needs more workspace than this runs in chunks of at most
# this much each: a chunk of each of two threads then fits in a 32 MiB last-level cache
# beside the weights.
PROGRAM_CHUNK_BYTES = 8 << 20

# A chunk holds at least enough images for each pointwise convolution on small planes to
# multiply this many columns at once (4 column panels of the AVX-512 GEMM): each product
# reads all the weights, and over fewer columns that read is a larger part of it
# (MobileNetV2, whose last planes are 4x4, runs faster in chunks of 8 images than of 5).
PROGRAM_MIN_POINTWISE_COLUMNS = 128

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

    def finish(self, result, chunks=1, threads=1):
        """The program whose output is value `result`, run on `chunks` inputs of the
        builder's shape, one after the other, by `threads` threads (an :class:`_Kernel`).
        Unsupported when it has no step, or its workspace is over
        PROGRAM_MAX_WORKSPACE_BYTES."""
        if result.root == 0:
            raise Unsupported      # the output is the input or a view of it
        places = self._place(result.root)
        workspace = self.workspace_size(places)
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
        return _Kernel(kernel, self.dtype, workspace, chunks, threads,
                       chunks * self.input.shape[0] if self.input.shape else 1)

    def workspace_size(self, places):
        """The workspace (in values) the roots placed at `places` (:meth:`_place`) need."""
        return max([offset + self.root_sizes[root]
                    for root, (buffer, offset) in places.items()
                    if buffer == "workspace"], default=0)

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
    shape = tuple(shape)
    try:
        builder, result = _emitted(layer, shape, dtype)
        places = builder._place(result.root) if result.root else {}
        batch_bytes = builder.workspace_size(places) * builder.dtype.itemsize
        if len(shape) == 4 and shape[0] > 1 and result.shape[:1] == shape[:1] \
                and batch_bytes > PROGRAM_CHUNK_BYTES:
            return _chunked(layer, shape, dtype, -(-batch_bytes // shape[0]),
                            _pointwise_images(builder))
        return InferenceProgram(builder.finish(result), result.shape, builder)
    except Unsupported:
        return None


def _emitted(layer, shape, dtype):
    """(builder, output value): layer's steps for an input of shape and dtype."""
    builder = ProgramBuilder(shape, dtype)
    return builder, builder.emit(layer, builder.input)


def _pointwise_images(builder):
    """The images a chunk needs for each pointwise convolution among builder's steps to
    multiply PROGRAM_MIN_POINTWISE_COLUMNS columns at once (1 where there is none)."""
    geometries = [step["geometry"] for step in builder.steps if step["kind"] == "conv"]
    return max([-(-PROGRAM_MIN_POINTWISE_COLUMNS // (g.P * g.Q)) for g in geometries
                if (g.R, g.S, tuple(g.stride), g.groups) == (1, 1, (1, 1), 1)
                and not any(g.padding)], default=1)


def _chunked(layer, shape, dtype, image_bytes, least):
    """The program of a batch of images run in chunks of equal size, each of at most
    PROGRAM_CHUNK_BYTES of workspace (or one image), or of `least` images where those fit
    PROGRAM_MAX_WORKSPACE_BYTES: the fewest chunks that fit, rounded up to a multiple of
    the threads, then made even (which may drop a few). The last chunk may be padded with
    zero images."""
    threads = get_num_threads()
    batch = shape[0]
    fit = max(1, PROGRAM_CHUNK_BYTES // image_bytes,
              min(least, PROGRAM_MAX_WORKSPACE_BYTES // image_bytes))
    chunks = -(-batch // fit)
    chunks = -(-chunks // threads) * threads
    per_chunk = -(-batch // chunks)
    chunks = -(-batch // per_chunk)
    builder, result = _emitted(layer, (per_chunk,) + shape[1:], dtype)
    kernel = builder.finish(result, chunks=chunks, threads=min(threads, chunks))
    return InferenceProgram(kernel, (batch,) + result.shape[1:], builder)


class _Kernel:
    """A C program (``_ext.Program``) run on `chunks` inputs, `images` rows in all, by
    `threads` threads, with the workspace it keeps between calls (used by one call at a
    time: another thread's concurrent call makes its own)."""

    def __init__(self, program, dtype, workspace_size, chunks, threads, images):
        self.program, self.chunks, self.threads = program, chunks, threads
        self.images = images
        self.workspace = np.empty(threads * workspace_size, dtype)
        self.lock = threading.Lock()

    def run(self, x, y):
        """y <- the output for x (C-contiguous, `chunks` of the program's inputs)."""
        if self.lock.acquire(blocking=False):
            try:
                self.program.run(x, y, self.workspace, self.chunks, self.threads)
            finally:
                self.lock.release()
        else:
            self.program.run(x, y, np.empty_like(self.workspace), self.chunks,
                             self.threads)


class InferenceProgram:
    """A program and what it was made from: the layers, their states and the parameter
    arrays it reads."""

    def __init__(self, kernel, output_shape, builder):
        self._kernel = kernel
        self.output_shape, self.dtype = tuple(output_shape), builder.dtype
        self._layers, self._guards = builder.layers, builder.guards
        self._params = builder.params

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
        images = self._kernel.images
        if self._kernel.chunks == 1 or images == len(x):
            y = np.empty(self.output_shape, self.dtype)
            self._kernel.run(x, y)
            return y
        # chunks of equal size: the batch padded with zero images to fill the last one
        padded = np.zeros((images,) + x.shape[1:], x.dtype)
        padded[:len(x)] = x
        y = np.empty((images,) + self.output_shape[1:], self.dtype)
        self._kernel.run(padded, y)
        return y[:len(x)]


def program_settings():
    """What plan_for's choice depends on besides the problem."""
    return get_autotune(), get_num_threads(), _ext.simd_name()
