#!/usr/bin/env bash
# Run a subset of the test suite under valgrind's memcheck and count the errors whose
# stack reaches fastconv (tools/valgrind_errors.py): invalid reads or writes, uses of
# uninitialised values. Goal and exit status: 0 of them. CPython and glibc are not
# memcheck-clean (an uninstrumented pyenv build reports uninitialised values in its long
# integers, the dynamic loader reads past strings); those reports are counted apart.
#
#   tools/valgrind.sh                       # the default subset below (about 10 minutes)
#   tools/valgrind.sh tests/test_gemm.py    # or any pytest arguments
#
# PYTHONMALLOC=malloc makes CPython use malloc for every object, so memcheck sees each
# allocation (pymalloc's arenas would hide overruns of small blocks). Leak checking is
# off: CPython and NumPy keep memory until exit on purpose. The extension used is the one
# the interpreter imports; build it first with debug info, so that reports give file and
# line (setup.py leaves it out otherwise):
#   FASTCONV_DEBUG_INFO=1 python setup.py build_ext --inplace -q
# Environment: PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ $# -eq 0 ]; then
    # Every kernel (conv both algorithms forward and backward, GEMM, filters, Canny) on
    # small shapes, plus the fuzzing and thread tests; the slow oracle comparisons are
    # left out, as valgrind runs 20-50x slower, and so are the timing-based GIL checks.
    # valgrind 3.19 has no AVX-512: under it the CPU reports AVX2 at most, so the AVX-512
    # kernels are left to tools/sanitize.sh. The selection takes about a quarter of an
    # hour on 2 cores.
    set -- tests/test_gemm.py tests/test_conv_errors.py tests/test_huge_shapes.py \
        tests/test_fuzz.py tests/test_threads.py \
        "tests/test_conv.py::test_adjoint_identity" \
        "tests/test_conv.py::test_direct_and_im2col_agree" \
        "tests/test_conv.py::test_non_contiguous_inputs_equal_contiguous" \
        "tests/test_conv.py::test_nan_and_inf_propagate" \
        "tests/test_filters.py" tests/test_conv_direct.py \
        "tests/test_layers.py::test_fused_relu_kernels_match_numpy" -k "not pause and not gil"
fi
# valgrind must run the interpreter itself: a launcher script (a pyenv shim) would run
# under valgrind instead and start Python natively, checking nothing.
PYEXE=$("$PYTHON" -c 'import sys; print(sys.executable)')
# Without debug info the reports still name fastconv's functions, only not file and line.
ext=$("$PYTHON" -c 'import fastconv._ext as e; print(e.__file__)' 2>/dev/null || true)
sections=$(readelf -S "$ext" 2>/dev/null || true)
if [ -n "$ext" ] && [[ $sections != *.debug_info* ]]; then
    echo "valgrind.sh: $ext has no debug info (rebuild it with FASTCONV_DEBUG_INFO=1)" >&2
fi
logs=$(mktemp -d /tmp/fastconv-valgrind.XXXXXX)
set +e
PYTHONMALLOC=malloc FASTCONV_NO_TORCH=1 valgrind --tool=memcheck --leak-check=no \
    --track-origins=yes --num-callers=30 --log-file="$logs/memcheck.%p.log" \
    "$PYEXE" -m pytest -q -p no:cacheprovider --benchmark-skip "$@"
status=$?
set -e
echo "valgrind.sh: pytest exit status $status (logs: $logs)"
"$PYTHON" tools/valgrind_errors.py "$logs"/memcheck.*.log
[ "$status" -eq 0 ]
