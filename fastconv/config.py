"""Run-time configuration: threads and the SIMD path, and :func:`show_config`."""
import os
import platform
import sys

from . import _ext

__all__ = ["show_config", "set_num_threads", "get_num_threads", "set_simd", "get_simd"]

SIMD_CHOICES = ("auto", "avx512", "avx2", "generic")
# simd_select levels; "auto" asks for the highest and gets the best the CPU has
_SIMD_LEVELS = {"generic": 0, "avx2": 1, "avx512": 2, "auto": 2}


def set_num_threads(n):
    """Use n OpenMP threads in fastconv's kernels (like torch.set_num_threads).

    OMP_NUM_THREADS sets the initial value, and threadpoolctl's ``threadpool_limits``
    works too: fastconv uses the OpenMP runtime's own setting. Without OpenMP the kernels
    always run on one thread.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__} {n!r}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _ext.set_num_threads(n)


def get_num_threads():
    """The number of threads fastconv's kernels use."""
    return _ext.get_num_threads()


def set_simd(path):
    """Select the micro-kernels: "avx512" (AVX-512 for the direct convolution, AVX2+FMA
    elsewhere), "avx2" (AVX2+FMA), "generic" (portable C) or "auto" (the best this CPU
    has). The environment variable FASTCONV_SIMD sets it at import."""
    if path not in SIMD_CHOICES:
        raise ValueError(f"set_simd: path must be one of {SIMD_CHOICES}, got {path!r}")
    if path == "avx2" and not _ext.cpu_has_avx2_fma():
        raise ValueError("set_simd: this CPU lacks AVX2/FMA; use 'generic' or 'auto'")
    if path == "avx512" and not _ext.cpu_has_avx512():
        raise ValueError("set_simd: this CPU lacks AVX-512; use 'avx2', 'generic' or 'auto'")
    _ext.simd_select(_SIMD_LEVELS[path])


def get_simd():
    """The micro-kernel path in use: "avx512", "avx2+fma" or "generic"."""
    return _ext.simd_name()


def _init_simd_from_env():
    path = os.environ.get("FASTCONV_SIMD", "auto").strip().lower() or "auto"
    if path not in SIMD_CHOICES:
        raise ImportError(f"FASTCONV_SIMD must be one of {SIMD_CHOICES}, got {path!r}")
    # a path the CPU lacks falls back to the best it has below it
    _ext.simd_select(_SIMD_LEVELS[path])


def show_config(file=None):
    """Print the version, compiler, OpenMP and thread count, and SIMD path in use."""
    from . import __version__
    lines = [
        f"fastconv {__version__}",
        f"python    {sys.version.split()[0]} ({platform.machine()})",
        f"compiler  {_ext.compiler()}",
        f"openmp    {'on' if _ext.have_openmp() else 'off (built without OpenMP: serial kernels)'}",
        f"threads   {get_num_threads()}",
        f"simd      {get_simd()} (cpu has avx2+fma: {'yes' if _ext.cpu_has_avx2_fma() else 'no'}, "
        f"avx512: {'yes' if _ext.cpu_has_avx512() else 'no'})",
    ]
    print("\n".join(lines), file=file or sys.stdout)
