# cython: language_level=3
"""fastconv._ext: the Cython glue between the checked Python API and the C kernels.

Arguments arrive here already validated and contiguous (fastconv/_checks.py); this module
only fills the C problem structs, releases the GIL around each kernel and turns a C status
code into a Python exception. No algorithm lives here.
"""
from cython cimport floating
from libc.stdint cimport int32_t, int64_t, intptr_t, uint8_t

from fastconv._cfastconv cimport *

include "_config.pxi"
include "_gemm.pxi"
include "_conv.pxi"
include "_depthwise.pxi"
include "_direct_plan.pxi"
include "_filter.pxi"
include "_pool.pxi"
include "_activation.pxi"
include "_scan.pxi"
include "_optim.pxi"
include "_batchnorm.pxi"
include "_program.pxi"
