"""Shared test helpers: error measures, the SIMD-path and thread settings, the lecture's
example, the child-process environment and the run modes of the reliability tests."""
import contextlib
from pathlib import Path

import numpy as np
import pytest

import fastconv
from fastconv.filters import LECTURE_IMAGE  # noqa: F401  (the input; the tests import it from here)

# What the lecture's vertical edge filter gives on its 6x6 image (fastconv.filters'
# LECTURE_IMAGE), written out here rather than computed, so the tests check the package.
LECTURE_VERTICAL_EDGES = np.array([[-5, -4, 0, 8],
                                   [-10, -2, 2, 3],
                                   [0, -2, -4, -7],
                                   [-3, -2, -3, -16]])


def rel_err(actual, expected):
    """max |actual - expected| / max(1, max |expected|): relative for large values,
    absolute near zero."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if expected.size == 0:
        return 0.0
    return float(np.max(np.abs(actual - expected)) / max(1.0, np.max(np.abs(expected))))


def subprocess_env(**extra):
    """Environment for a child Python that imports the same fastconv as this process
    (installed, or built in place), whatever its working directory."""
    import os
    package_parent = str(Path(fastconv.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, **extra)


SIMD_PATHS = (["generic"] + (["avx2"] if fastconv._ext.cpu_has_avx2_fma() else [])
              + (["avx512"] if fastconv._ext.cpu_has_avx512() else []))


@contextlib.contextmanager
def _setting(get, put, value):
    """put(value) for the block, then put back what get() gave before it."""
    before = get()
    put(value)
    try:
        yield value
    finally:
        put(before)


def _simd_choice():
    """The path in use, as set_simd takes it (get_simd says "avx2+fma" for "avx2")."""
    name = fastconv.get_simd()
    return {"avx2+fma": "avx2"}.get(name, name)


def simd_path(path):
    """Run the block on one micro-kernel path (a set_simd name), then on the path before."""
    return _setting(_simd_choice, fastconv.set_simd, path)


# A build without OpenMP runs every kernel on one thread: there set_num_threads(n > 1)
# warns and changes nothing, and the thread tests check that promise instead.
OPENMP = fastconv._ext.have_openmp()
needs_openmp = pytest.mark.skipif(not OPENMP, reason="built without OpenMP: one thread")


def threads_in_effect(n):
    """The thread count fastconv.set_num_threads(n) gives in this build."""
    return int(n) if OPENMP else 1


def set_threads(n):
    """fastconv.set_num_threads(n), expecting its warning where the build is serial."""
    if OPENMP or n == 1:
        fastconv.set_num_threads(n)
    else:
        with pytest.warns(RuntimeWarning, match="built without OpenMP"):
            fastconv.set_num_threads(n)


def thread_count(n):
    """Run the block on n threads (one in a serial build), then on the thread count before."""
    return _setting(fastconv.get_num_threads, set_threads, n)


@pytest.fixture(params=SIMD_PATHS)
def simd(request):
    """Run a test once per micro-kernel path this CPU has, restoring the path after."""
    with simd_path(request.param):
        yield request.param


@pytest.fixture
def threads():
    """Lets a test change the thread count (set_threads); restores it afterwards."""
    before = fastconv.get_num_threads()
    yield set_threads
    fastconv.set_num_threads(before)


@pytest.fixture
def two_threads(threads):
    """Two threads (one in a serial build) whatever the machine's cores, for tests of
    auto's rules that count the work per thread (WINOGRAD_MIN_TILE_CHANNELS_PER_THREAD)."""
    threads(2)


# -- reliability: run modes shared by the fuzz, thread and sanitizer runs -----------------
import os
import sys

# FASTCONV_NO_TORCH=1 hides PyTorch, so the tests that compare against it skip: CI's
# sanitizer run (tools/sanitize.sh) uses it to stay within its time budget.
if os.environ.get("FASTCONV_NO_TORCH"):
    class _HideTorch:
        """`import torch` raises ModuleNotFoundError, as if it were not installed
        (sys.modules["torch"] = None would confuse libraries that look for an already
        imported torch, such as SciPy)."""

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "torch":
                raise ModuleNotFoundError(f"{name} is hidden by FASTCONV_NO_TORCH")
            return None

    sys.meta_path.insert(0, _HideTorch())

# Hypothesis profiles, chosen by FASTCONV_HYPOTHESIS_PROFILE: "ci" (the default: 25
# examples per fuzzed function, a few hundred in all, derandomized so CI is reproducible)
# and "thorough" (2,000 examples per function, random; see README, Reliability).
try:
    from hypothesis import HealthCheck, settings as _hypothesis_settings
except ImportError:          # hypothesis is a test extra; only the fuzz tests need it
    pass
else:
    _hypothesis_settings.register_profile(
        "ci", max_examples=25, deadline=None, derandomize=True, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    _hypothesis_settings.register_profile(
        "thorough", max_examples=2000, deadline=None, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    _hypothesis_settings.load_profile(os.environ.get("FASTCONV_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True, scope="session")
def autotune_cache_in_a_temporary_folder(tmp_path_factory):
    """Autotuning's cache file (fastconv.autotune) lives in the session's temporary folder,
    for this process and the programs the tests start: the tests never write the user's
    ~/.cache."""
    before = os.environ.get("FASTCONV_AUTOTUNE_CACHE")
    os.environ["FASTCONV_AUTOTUNE_CACHE"] = str(tmp_path_factory.mktemp("autotune")
                                                / "autotune.json")
    yield
    if before is None:
        del os.environ["FASTCONV_AUTOTUNE_CACHE"]
    else:
        os.environ["FASTCONV_AUTOTUNE_CACHE"] = before
