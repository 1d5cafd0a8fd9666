# Eval-mode programs (src/program.c): the steps of fastconv/nn/program.py in C structs,
# run in one call without the GIL.
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_C_CONTIGUOUS, \
    PyBUF_FORMAT, PyBUF_WRITABLE
from libc.stdlib cimport calloc, free

_STEP_KINDS = {"conv": FC_STEP_CONV, "max_pool": FC_STEP_MAX_POOL,
               "avg_pool": FC_STEP_AVG_POOL, "adaptive_avg_pool": FC_STEP_ADAPTIVE_AVG_POOL,
               "linear": FC_STEP_LINEAR, "relu": FC_STEP_RELU, "add": FC_STEP_ADD,
               "zero_pad_subsample": FC_STEP_ZERO_PAD_SUBSAMPLE,
               "batch_norm": FC_STEP_BATCH_NORM}
_BUFFERS = {"input": FC_BUFFER_INPUT, "output": FC_BUFFER_OUTPUT,
            "workspace": FC_BUFFER_WORKSPACE}


cdef fc_value _value(ref):
    cdef fc_value v
    v.buffer = _BUFFERS[ref[0]]
    v.offset = ref[1]
    return v


cdef int _check_view(Py_buffer *view, Py_ssize_t size, str format, str what) except -1:
    """ValueError unless the buffer holds exactly `size` values of `format` (a program
    reads and writes that many)."""
    if view.format[0] != ord(format) or view.format[1] != 0 \
            or view.len != size * view.itemsize:
        raise ValueError(f"program: {what} must hold {size} values of format {format!r}, "
                         f"got {view.len} bytes of format {view.format.decode()!r}")
    return 0


cdef const void *_address(array, Py_ssize_t size, str format, str what) except? NULL:
    """The first element of a C-contiguous array of `size` elements of `format`."""
    cdef Py_buffer view
    PyObject_GetBuffer(array, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
    try:
        _check_view(&view, size, format, what)
        return view.buf
    finally:
        PyBuffer_Release(&view)      # the program keeps the array itself alive


cdef class Program:
    """An eval-mode program's steps (src/fastconv.h, "eval-mode programs").

    Built from a list of dicts (fastconv/nn/program.py: ``kind``, the ``input``,
    ``output`` and ``side`` values as (buffer name, offset), and each kind's fields) and
    the sizes in elements of the input, the output and the workspace. It keeps the
    arrays its steps point to (weights and biases) alive."""
    cdef fc_step *steps
    cdef Py_ssize_t count, input_size, output_size, workspace_size
    cdef str format
    cdef bint double
    cdef list kept
    cdef list kinds

    def __cinit__(self, list steps, str dtype, Py_ssize_t input_size, Py_ssize_t output_size,
                  Py_ssize_t workspace_size):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"program: dtype must be float32 or float64, got {dtype}")
        self.double = dtype == "float64"
        self.format = "d" if self.double else "f"
        self.input_size, self.output_size = input_size, output_size
        self.workspace_size = workspace_size
        self.steps = <fc_step *>calloc(max(len(steps), 1), sizeof(fc_step))
        if self.steps == NULL:
            raise MemoryError("program: could not allocate its steps")
        self.kept, self.kinds = [], []
        for step in steps:
            self._fill(&self.steps[self.count], step)
            self.count += 1

    def __dealloc__(self):
        free(self.steps)

    cdef int _fill(self, fc_step *s, dict step) except -1:
        kind = step["kind"]
        s.kind = _STEP_KINDS[kind]
        s.input = _value(step["input"])
        s.output = _value(step["output"])
        s.side = _value(step.get("side", ("input", 0)))
        if kind == "conv":
            s.conv = _conv_problem(step["geometry"], step["relu"])
            s.algorithm = _pass_code(step["algorithm"], &s.conv, "forward")
            s.weight = self._keep(step["weight"], s.conv.K * (s.conv.C // s.conv.groups)
                                  * s.conv.R * s.conv.S, "a convolution's weight")
            s.value_scale, s.value_limit = step["value_test"] or (0.0, 0.0)
        elif kind.endswith("pool"):
            s.pool = _pool_problem(step["geometry"])
        elif kind == "linear":
            s.rows, s.in_features, s.out_features = step["sizes"]
            s.weight = self._keep(step["weight"], s.in_features * s.out_features,
                                  "a linear layer's weight")
        elif kind == "relu":
            s.count = step["count"]
        elif kind == "add":
            s.count, s.relu = step["count"], step["relu"]
        elif kind == "zero_pad_subsample":
            s.shape[0], s.shape[1], s.shape[2], s.shape[3] = step["input_shape"]
            s.out_channels, s.before, s.stride = step["out_channels"], step["before"], step["stride"]
        elif kind == "batch_norm":
            s.batch_norm.N, s.batch_norm.C, s.batch_norm.HW = step["sizes"]
            s.batch_norm.eps, s.batch_norm.momentum = step["eps"], 0.0
            s.batch_norm.relu = 0
            s.mean = self._keep(step["mean"], s.batch_norm.C, "a running mean")
            s.var = self._keep(step["var"], s.batch_norm.C, "a running variance")
            if step["weight"] is not None:
                s.weight = self._keep(step["weight"], s.batch_norm.C, "a batch norm's weight")
        if step.get("bias") is not None:
            s.bias = self._keep(step["bias"], s.conv.K if kind == "conv" else
                                s.batch_norm.C if kind == "batch_norm" else s.out_features,
                                "a bias")
        self.kinds.append(kind)
        return 0

    cdef const void *_keep(self, array, Py_ssize_t size, str what) except? NULL:
        self.kept.append(array)
        return _address(array, size, self.format, what)

    def run(self, x, y, workspace, Py_ssize_t chunks=1, int threads=1):
        """y <- the program's output for input x; workspace: its scratch memory. With
        chunks > 1, x and y hold that many of the program's inputs and outputs, one after
        the other, shared among `threads` threads, each with its own workspace
        (fc_program_run_chunks). All three C-contiguous of the program's dtype; x and y
        hold `chunks` times the program's sizes, the workspace `threads` times its
        (checked)."""
        cdef Py_buffer xb, yb, wb
        cdef fc_status st
        cdef int64_t failed = -1
        cdef int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT
        if chunks < 1 or threads < 1:
            raise ValueError(f"program: chunks and threads must be at least 1, got "
                             f"{chunks} and {threads}")
        PyObject_GetBuffer(x, &xb, flags)
        try:
            PyObject_GetBuffer(y, &yb, flags | PyBUF_WRITABLE)
            try:
                PyObject_GetBuffer(workspace, &wb, flags | PyBUF_WRITABLE)
                try:
                    _check_view(&xb, chunks * self.input_size, self.format, "x")
                    _check_view(&yb, chunks * self.output_size, self.format, "y")
                    _check_view(&wb, threads * self.workspace_size, self.format, "workspace")
                    fc_sync_num_threads()      # set_num_threads applies to every thread
                    with nogil:
                        if not self.double:
                            st = fc_program_run_chunks_f32(
                                self.steps, self.count, <float *>xb.buf, <float *>yb.buf,
                                <float *>wb.buf, chunks, self.input_size, self.output_size,
                                self.workspace_size, threads, &failed)
                        else:
                            st = fc_program_run_chunks_f64(
                                self.steps, self.count, <double *>xb.buf, <double *>yb.buf,
                                <double *>wb.buf, chunks, self.input_size, self.output_size,
                                self.workspace_size, threads, &failed)
                finally:
                    PyBuffer_Release(&wb)
            finally:
                PyBuffer_Release(&yb)
        finally:
            PyBuffer_Release(&xb)
        if st != FC_OK:
            _check(st, f"eval-mode program, step {failed} ({self.kinds[failed]})")
