"""Build fastconv's one extension module from fastconv/_ext.pyx and src/*.c.

OpenMP is used when a compile-and-link test with -fopenmp succeeds; otherwise the build
goes on serially and says so (fastconv.show_config() reports it at run time too).
Portable by default: no -march=native. The AVX2/FMA micro-kernels carry their own
per-function target attributes and are chosen at run time.

Environment:
  FASTCONV_NO_OPENMP=1    build serially, without OpenMP.
  FASTCONV_BUILD_JOBS=N   compile N C files at once (default: one per core).
  FASTCONV_DEBUG_INFO=1   keep debug info in the extension. Without it, -g0 follows
                          Python's own CFLAGS (which hold -g), so the module ships without
                          DWARF sections, a fifth of the size. tools/sanitize.sh sets it
                          and tools/valgrind.sh asks for it: their reports then give file
                          and line.
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import PlatformError

OPENMP_TEST = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""


def compiler_command():
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return cc.split()


def compiles(source, flags, link_flags=(), run=False):
    """True when the compiler builds (and, with run=True, runs) source with these flags."""
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        exe = os.path.join(tmp, "probe")
        try:
            ok = subprocess.run(compiler_command() + flags + [src, "-o", exe] + list(link_flags),
                                capture_output=True).returncode == 0
            return ok and (not run or subprocess.run([exe], capture_output=True).returncode == 0)
        except OSError:
            return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def serial_flags():
    """Compile flags for a build without OpenMP's runtime. The kernels' OpenMP directives
    are meant to be ignored there, except `omp simd`, which -fopenmp-simd keeps; GCC still
    warns about `omp atomic` under that flag, hence -Wno-unknown-pragmas."""
    flags = ["-fopenmp-simd", "-Wno-unknown-pragmas"]
    return flags if compiles("int main(void) { return 0; }\n", flags + ["-Werror"]) else []


def openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or the serial build's when it does not
    work or FASTCONV_NO_OPENMP is set."""
    if os.environ.get("FASTCONV_NO_OPENMP"):
        print("fastconv: OpenMP disabled by FASTCONV_NO_OPENMP; building serially", file=sys.stderr)
        return serial_flags(), []
    if sys.platform == "darwin":
        candidates = [["-Xpreprocessor", "-fopenmp"], ["-fopenmp"]]
        link = [["-lomp"], ["-fopenmp"]]
    else:
        candidates = [["-fopenmp"]]
        link = [["-fopenmp"]]
    for cflags, lflags in zip(candidates, link):
        if compiles(OPENMP_TEST, cflags, lflags, run=True):
            print("fastconv: building with OpenMP (%s)" % " ".join(cflags), file=sys.stderr)
            return cflags, lflags
    print("fastconv: OpenMP not available with this compiler; building serially", file=sys.stderr)
    return serial_flags(), []


def build_extensions():
    omp_compile, omp_link = openmp_flags()
    # In extra_compile_args, after the user's CFLAGS, so a CFLAGS=-O0 cannot silently drop
    # the optimisation level the kernels are designed for. GCC and Clang (also MinGW's)
    # only: MSVC is refused below.
    base = ["-O3", "-std=c11", "-fno-math-errno", "-Wall"]
    if os.environ.get("FASTCONV_DEBUG_INFO", "") in ("", "0"):
        base.append("-g0")    # the last -g option wins, so this cancels CFLAGS' -g
    ext = Extension(
        "fastconv._ext",
        sources=["fastconv/_ext.pyx"] + sorted(glob.glob("src/*.c")),
        include_dirs=["src", numpy.get_include()],
        depends=sorted(glob.glob("src/*.h")) + sorted(glob.glob("fastconv/*.pxi"))
        + sorted(glob.glob("fastconv/*.pxd")),
        extra_compile_args=base + omp_compile,
        extra_link_args=omp_link,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    return cythonize(
        [ext],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
        },
    )


MSVC_UNSUPPORTED = (
    "fastconv cannot be built with MSVC: its SIMD kernels use GCC/Clang per-function "
    "target attributes (__attribute__((target(...)))), which MSVC does not support; "
    "build on Linux or macOS (on Windows, in WSL)")


def build_jobs():
    """How many C files compile at once: FASTCONV_BUILD_JOBS, else one per core."""
    jobs = os.environ.get("FASTCONV_BUILD_JOBS")
    return max(1, int(jobs)) if jobs else os.cpu_count() or 1


class ParallelBuildExt(build_ext):
    """build_ext that compiles an extension's C files in parallel.

    setuptools compiles one extension's sources one after another; fastconv has one
    extension of some 30 files, so the files go to a pool of build_jobs() compilers.
    The Cython-generated module comes first in the list, and it takes longest.
    """

    def build_extension(self, ext):
        # The SIMD kernels need GCC/Clang per-function target attributes; MSVC has none
        # (it does not know __attribute__), so stop here with one line that says why.
        if self.compiler.compiler_type == "msvc":
            raise PlatformError(MSVC_UNSUPPORTED)
        compile_serially = self.compiler.compile

        def compile_in_parallel(sources, *args, **kwargs):
            with ThreadPoolExecutor(build_jobs()) as pool:
                parts = pool.map(lambda source: compile_serially([source], *args, **kwargs),
                                 sources)
                return [obj for objects in parts for obj in objects]

        self.compiler.compile = compile_in_parallel
        try:
            super().build_extension(ext)
        finally:
            del self.compiler.compile     # the compiler's own method again


setup(ext_modules=build_extensions(), cmdclass={"build_ext": ParallelBuildExt})
