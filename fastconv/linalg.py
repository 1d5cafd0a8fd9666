"""matmul on fastconv's own GEMM (packed panels, AVX2/FMA micro-kernel, OpenMP).

fastconv does not call BLAS: NumPy's OpenBLAS runs its own thread pool, which would fight
the OpenMP threads of the convolution kernels. One pool serves every kernel.
"""
import numpy as np

from . import _ext
from ._checks import as_array, as_bool, as_kernel_input, check_out, result_dtype

__all__ = ["matmul"]


def matmul(a, b, out=None, *, accumulate=False):
    """Matrix product ``a @ b`` of two 2-D arrays with fastconv's GEMM.

    Parameters
    ----------
    a : array_like, shape (M, K)
    b : array_like, shape (K, N)
        Any strides (a transposed view costs nothing extra).
    out : ndarray, shape (M, N), optional
        Where to write the result, as NumPy's ``out=``: the result dtype, C-contiguous,
        writeable and not overlapping a or b (ValueError/TypeError otherwise: the GEMM
        reads a and b while it writes out).
    accumulate : bool
        Add the product to ``out`` instead of overwriting it (requires ``out``).

    Returns
    -------
    ndarray, shape (M, N)
        float32 when both inputs are float32, else float64.
    """
    func = "matmul"
    a = as_array(a, "a", func, ndim=2)
    b = as_array(b, "b", func, ndim=2)
    dtype = result_dtype(func, a=a, b=b)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"{func}: a has shape {a.shape} and b has shape {b.shape}; expected "
                         f"a's columns ({a.shape[1]}) to equal b's rows ({b.shape[0]})")
    shape = (a.shape[0], b.shape[1])
    accumulate = as_bool(accumulate, "accumulate", func)
    out = check_out(out, "out", shape, dtype, func, (("a", a), ("b", b)))
    if out is None:
        if accumulate:
            raise ValueError(f"{func}: accumulate=True needs an out array to add to")
        out = np.empty(shape, dtype=dtype)
    # The kernel reads any strides that are whole elements from an aligned buffer;
    # anything else is copied.
    a = a.astype(dtype, copy=False)
    b = b.astype(dtype, copy=False)
    if (any(s % dtype.itemsize for s in a.strides + b.strides)
            or not (a.flags.aligned and b.flags.aligned)):
        a, b = as_kernel_input(a, dtype), as_kernel_input(b, dtype)
    _ext.gemm(out, a, b, accumulate)
    return out
