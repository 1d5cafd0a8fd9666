"""Run-time configuration: threads and the SIMD path, and :func:`show_config`."""
import os
import platform
import sys
import warnings

from . import _ext
from ._checks import as_integer

__all__ = ["show_config", "set_num_threads", "get_num_threads", "set_simd", "get_simd"]

SIMD_CHOICES = ("auto", "avx512", "avx2", "generic")
# simd_select levels; "auto" asks for the highest and gets the best the CPU has
_SIMD_LEVELS = {"generic": 0, "avx2": 1, "avx512": 2, "auto": 2}

# Most threads set_num_threads accepts: four per core the machine has (at least 16). More
# threads than cores only share the cores (four per core leaves room to measure
# oversubscription), while each OpenMP thread costs a stack and its kernels' per-thread
# workspace (up to tens of MiB for im2col and Winograd): tens of thousands of threads
# exhaust memory, and GNU OpenMP then aborts the process or crashes inside its thread
# start, which no Python code can catch.
MAX_THREADS = max(16, 4 * (os.cpu_count() or 1))

# True in a child forked after fastconv's kernels ran with several OpenMP threads: GNU
# OpenMP's thread pool does not survive fork, and the child's first parallel region with
# more than one thread hangs (as with multiprocessing's "fork" pool and GCC's libgomp).
# Such a child runs fastconv single-threaded.
_serial_after_fork = False


def set_num_threads(n):
    """Use n OpenMP threads in fastconv's kernels (like torch.set_num_threads).

    The setting is process-wide: it applies to calls from every Python thread, including
    threads started earlier. OMP_NUM_THREADS sets the initial value, and threadpoolctl's
    ``threadpool_limits`` works too (for the thread that uses it, until the next
    set_num_threads). A build without OpenMP runs its kernels on one thread: there n > 1
    warns and get_num_threads() stays 1.

    n is any integer (a Python int, a NumPy integer: anything ``operator.index`` takes;
    not a bool) from 1 to ``fastconv.config.MAX_THREADS``, four times the machine's cores
    (at least 16): beyond the cores threads only share them, and each costs a stack and its
    kernels' workspace, so tens of thousands exhaust memory and OpenMP aborts the process.
    TypeError for a non-integer, ValueError outside the range.

    In a process forked (``multiprocessing`` with the "fork" start method) after fastconv
    ran on several threads, kernels run on one thread and n > 1 warns: GNU OpenMP cannot
    start threads again after fork. Use the "spawn" or "forkserver" start method for
    parallel kernels in child processes.
    """
    n = check_thread_count(n, "n", "set_num_threads")
    if not _ext.have_openmp() and n > 1:
        warnings.warn(f"fastconv: set_num_threads({n}) has no effect: this fastconv was built "
                      "without OpenMP, so its kernels run on 1 thread (show_config() says "
                      "how it was built)", RuntimeWarning, stacklevel=2)
    if _serial_after_fork and n > 1:
        warnings.warn("fastconv: this process was forked after fastconv used OpenMP threads; "
                      "its kernels stay on 1 thread (GNU OpenMP cannot start threads again "
                      "after fork). Use the 'spawn' or 'forkserver' start method for "
                      "parallel kernels in child processes.", RuntimeWarning, stacklevel=2)
        n = 1
    _ext.set_num_threads(n)


def check_thread_count(n, name, func):
    """n as an int if it is a thread count set_num_threads accepts (1 to MAX_THREADS, any
    integral type but bool); TypeError or ValueError naming the argument otherwise."""
    count = as_integer(n)
    if count is None:
        raise TypeError(f"{func}: {name} must be an int, got {type(n).__name__} {n!r}")
    if not 1 <= count <= MAX_THREADS:
        raise ValueError(f"{func}: {name} must be from 1 to {MAX_THREADS} (four threads per "
                         f"core of this machine, at least 16), got {count}")
    return count


def _after_fork_in_child():
    """os.register_at_fork hook: a child of a process whose kernels ran on several OpenMP
    threads goes single-threaded instead of hanging in its first parallel region."""
    global _serial_after_fork
    if _ext.openmp_started():
        _serial_after_fork = True
        _ext.set_num_threads(1)


def get_num_threads():
    """The number of threads fastconv's kernels use."""
    return _ext.get_num_threads()


def set_simd(path):
    """Select the micro-kernels: "avx512" (AVX-512 for the direct convolution and the
    GEMM, AVX2+FMA elsewhere), "avx2" (AVX2+FMA), "generic" (portable C) or "auto" (the best this CPU
    has). The environment variable FASTCONV_SIMD sets it at import."""
    if path not in SIMD_CHOICES:
        raise ValueError(f"set_simd: path must be one of {SIMD_CHOICES}, got {path!r}")
    if path == "avx2" and not _ext.cpu_has_avx2_fma():
        raise ValueError("set_simd: this CPU lacks AVX2/FMA; use 'generic' or 'auto'")
    if path == "avx512" and not _ext.cpu_has_avx512():
        raise ValueError("set_simd: this CPU lacks AVX-512; use 'avx2', 'generic' or 'auto'")
    _ext.simd_select(_SIMD_LEVELS[path])


def cpu_model():
    """The CPU's model: Linux's /proc/cpuinfo (:func:`cpu_model_from_cpuinfo`), else what
    the platform module says."""
    try:
        with open("/proc/cpuinfo") as f:
            model = cpu_model_from_cpuinfo(f.read())
    except OSError:
        model = None
    return model or platform.processor() or platform.machine()


def cpu_model_from_cpuinfo(text):
    """The first processor's "model name" in /proc/cpuinfo's text, with its x86 family and
    model numbers where the text has them ("Intel(R) Xeon(R) Processor (family 6, model
    207)"): a virtual machine often names only the vendor's line of CPUs, and the numbers
    tell its generations apart. None without a model name."""
    fields = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name")
    if not name:
        return None
    if fields.get("cpu family") and fields.get("model"):
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def get_simd():
    """The micro-kernel path in use: "avx512", "avx2+fma" or "generic"."""
    return _ext.simd_name()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _bound_threads_from_env():
    """An initial thread count above MAX_THREADS (OMP_NUM_THREADS=1000000) would crash the
    first kernel inside OpenMP, so fastconv starts with MAX_THREADS instead, and warns.
    The variable is read here rather than asked of OpenMP: asking counts as OpenMP having
    started, which a forked child must not inherit (see set_num_threads). A serial build
    ignores the variable, as any program without OpenMP does."""
    text = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if _ext.have_openmp() and text.isdigit() and int(text) > MAX_THREADS:
        warnings.warn(f"fastconv: OMP_NUM_THREADS asks for {int(text)} threads; fastconv's "
                      f"kernels use at most {MAX_THREADS} (four per core, at least 16)",
                      RuntimeWarning, stacklevel=2)
        _ext.set_num_threads(MAX_THREADS)


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
