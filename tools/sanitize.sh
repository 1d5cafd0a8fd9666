#!/usr/bin/env bash
# Build fastconv with AddressSanitizer + UndefinedBehaviorSanitizer into a scratch copy of
# the tree and run the fast test suite there. Any ASan or UBSan report fails the run.
#
#   tools/sanitize.sh                 # the whole default (not slow) suite
#   tools/sanitize.sh tests/test_conv.py -k direct     # extra arguments go to pytest
#
# Environment:
#   PYTHON            the interpreter (default: python3); it needs numpy, Cython, pytest,
#                     hypothesis and the test extras, like a normal test run.
#   SANITIZE_DIR      scratch folder (default: a fresh mktemp -d, removed afterwards)
#
# Why a scratch copy: the instrumented extension must not replace the normal one in the
# working tree. Why LD_PRELOAD: Python itself is not built with ASan, and the ASan runtime
# must be the first library loaded. Leak detection is off (CPython keeps memory until exit);
# allocator_may_return_null lets a huge request fail with NULL (MemoryError), as malloc does,
# where ASan would abort by default: the tests check that absurd sizes raise MemoryError.
# libstdc++ is preloaded too: without it ASan cannot intercept C++ exceptions thrown by
# libraries loaded later (matplotlib's ft2font, PyTorch) and aborts in __cxa_throw.
# FASTCONV_NO_TORCH=1 (set it before calling this script) makes the tests that compare
# against PyTorch skip (tests/conftest.py): CI does this to save a minute.
#
# On 2 cores the run without PyTorch (as CI runs it) takes a few minutes, plus the build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LIBASAN=$(gcc -print-file-name=libasan.so)
LIBSTDCXX=$(gcc -print-file-name=libstdc++.so.6)
if [ ! -e "$LIBASAN" ]; then
    echo "sanitize.sh: gcc has no libasan.so ($LIBASAN)" >&2
    exit 2
fi

. tools/scratch_copy.sh
scratch=${SANITIZE_DIR:-$(mktemp -d /tmp/fastconv-sanitize.XXXXXX)}
[ -n "${SANITIZE_DIR:-}" ] || trap 'rm -rf "$scratch"' EXIT
copy_tree_to "$scratch/src"
cd "$scratch/src"

# setup.py's own -O3 stays, so the kernels are checked as they ship (vectorised loops and
# all). -fno-sanitize-recover=all makes the first UBSan report abort the run.
# FASTCONV_DEBUG_INFO=1 keeps the -g (setup.py adds -g0 otherwise), so reports give file
# and line.
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
CFLAGS="$SAN" LDFLAGS="$SAN" FASTCONV_DEBUG_INFO=1 "$PYTHON" setup.py build_ext --inplace -q 2>&1 \
    | grep -v '^\(gcc\|copying\|cythoning\|Compiling\)' || true

export LD_PRELOAD="$LIBASAN $LIBSTDCXX"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
log="$scratch/pytest.log"
set +e
"$PYTHON" -m pytest -s -q -rfEs -p no:cacheprovider --benchmark-skip "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
reports=$(grep -c -E 'ERROR: AddressSanitizer|runtime error:' "$log" || true)
echo "sanitize.sh: pytest exit status $status, sanitizer reports: $reports"
[ "$status" -eq 0 ] && [ "$reports" -eq 0 ]
