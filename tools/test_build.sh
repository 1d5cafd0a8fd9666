#!/usr/bin/env bash
# Build fastconv another way into a scratch copy of the tree and run the test suite on it.
# The build must be free of compiler warnings, and must be the build asked for.
#
#   tools/test_build.sh clang                 # clang with LLVM's OpenMP runtime (libomp)
#   tools/test_build.sh serial                # FASTCONV_NO_OPENMP=1: no OpenMP, one thread
#   tools/test_build.sh clang tests/test_conv.py -k direct   # extra arguments go to pytest
#
# Environment:
#   PYTHON            the interpreter (default: python3); it needs numpy, Cython, setuptools,
#                     pytest and the test extras, like a normal test run.
#
# Why a scratch copy: the other build must not replace the normal one in the working tree.
# The tests run with `python -m pytest` from the copy, so they import the copy's build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
variant=${1:-}
shift || true
case "$variant" in
    clang)  export CC=clang; unset FASTCONV_NO_OPENMP; want_openmp=1 ;;
    serial) export FASTCONV_NO_OPENMP=1; want_openmp=0 ;;
    *) echo "usage: tools/test_build.sh clang|serial [pytest arguments]" >&2; exit 2 ;;
esac
if [ "$variant" = clang ] && ! command -v clang > /dev/null; then
    echo "test_build.sh: clang is not installed (Debian: apt-get install clang libomp-dev)" >&2
    exit 2
fi

. tools/scratch_copy.sh
scratch=$(mktemp -d "/tmp/fastconv-$variant.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
copy_tree_to "$scratch"
cd "$scratch"

log="$scratch/build.log"
"$PYTHON" setup.py build_ext --inplace > "$log" 2>&1 || { cat "$log"; exit 1; }
# Compiler diagnostics read FILE:LINE:COLUMN: warning: ...
if grep -E '^[^ ]+:[0-9]+:[0-9]+: warning:' "$log"; then
    echo "test_build.sh: the $variant build has compiler warnings (above)" >&2
    exit 1
fi
"$PYTHON" - "$variant" "$want_openmp" <<'EOF'
import sys
import fastconv
from fastconv import _ext
variant, want_openmp = sys.argv[1], sys.argv[2] == "1"
fastconv.show_config()
assert _ext.have_openmp() == want_openmp, f"the {variant} build has OpenMP: {_ext.have_openmp()}"
assert variant != "clang" or _ext.compiler().startswith("clang"), _ext.compiler()
EOF
echo "test_build.sh: the $variant build has no compiler warnings; running the tests"
"$PYTHON" -m pytest -q -rfE -p no:cacheprovider --benchmark-skip "$@"
