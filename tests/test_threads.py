"""Threads, processes and the floating-point environment.

* 16 Python threads x 100 calls on separate arrays give the serial results bitwise, and
  the kernels release the GIL (Python keeps running beside a long kernel).
* set_num_threads is process-wide, and 1, 2, 4, 8 threads agree within 1e-12 (float64).
* The weight gradients are bitwise identical over repeated runs with 8 threads (a stress
  test in place of ThreadSanitizer, which reports false races inside an uninstrumented
  libgomp): 50 runs here, 1,000 with ``pytest -m slow``.
* A multiprocessing pool forked after OpenMP threads ran completes (GNU OpenMP's pool does
  not survive fork: fastconv makes such children single-threaded; see config.py).
* Calls leave the rounding mode and flush-to-zero / denormals-are-zero alone.

Every kernel appears in KERNELS; testing a new kernel here is adding an entry.
"""
import ctypes
import ctypes.util
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import fastconv
from fastconv import filters

from conftest import rel_err, subprocess_env, threads_in_effect


def conv_inputs(rng, dtype, N=2, C=4, H=12, W=12, K=8, R=3):
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, R, R)).astype(dtype)
    return x, w


# name -> (inputs(rng, dtype, scale) -> args, call(*args) -> tuple of arrays).
# scale=1 is a small call (about a millisecond); the work grows linearly with scale.
CONV_ALGORITHMS = ("direct", "im2col", "winograd")
KERNELS = {
    **{f"conv2d {algorithm}": (
        lambda rng, dt, s: conv_inputs(rng, dt, N=2 * s, H=16, W=16),
        lambda x, w, algorithm=algorithm: (fastconv.conv2d(x, w, padding=1,
                                                           algorithm=algorithm),))
       for algorithm in CONV_ALGORITHMS},
    **{f"conv2d_backward {algorithm}": (
        lambda rng, dt, s: conv_inputs(rng, dt, N=2 * s, H=16, W=16),
        lambda x, w, algorithm=algorithm: fastconv.conv2d_backward(
            np.ones((x.shape[0], w.shape[0]) + x.shape[2:], x.dtype), x, w, padding=1,
            algorithm=algorithm))
       for algorithm in CONV_ALGORITHMS},
    "matmul": (
        lambda rng, dt, s: (rng.standard_normal((40 * s, 60)).astype(dt),
                            rng.standard_normal((60, 50)).astype(dt)),
        lambda a, b: (fastconv.matmul(a, b),)),
    "filters.gaussian": (
        lambda rng, dt, s: (rng.standard_normal((48 * s, 40)).astype(dt),),
        lambda img: (filters.gaussian(img, 1.5),)),
    "filters.sobel": (
        lambda rng, dt, s: (rng.standard_normal((48 * s, 40)).astype(dt),),
        lambda img: (filters.sobel(img), filters.sobel(img, axis=0))),
    "filters.canny": (
        lambda rng, dt, s: (rng.random((48 * s, 40)).astype(dt),),
        lambda img: (filters.canny(img, 1.0),)),
}
KERNELS.update({                              # pooling
    "max_pool2d": (
        lambda rng, dt, s: (rng.standard_normal((2 * s, 8, 32, 32)).astype(dt),),
        lambda x: (fastconv.max_pool2d(x, 3, 2, 1),)),
    "avg_pool2d": (
        lambda rng, dt, s: (rng.standard_normal((2 * s, 8, 32, 32)).astype(dt),),
        lambda x: (fastconv.avg_pool2d(x, 3, 2, 1),)),
    "max_pool2d_backward": (
        lambda rng, dt, s: (rng.standard_normal((2 * s, 8, 32, 32)).astype(dt),),
        lambda x: (fastconv.max_pool2d_backward(np.ones_like(fastconv.max_pool2d(x, 2)), x, 2),)),
    "adaptive_avg_pool2d": (
        lambda rng, dt, s: (rng.standard_normal((2 * s, 8, 32, 32)).astype(dt),),
        lambda x: (fastconv.adaptive_avg_pool2d(x, (5, 3)),)),
})
NAMES = list(KERNELS)


def run(name, args):
    return KERNELS[name][1](*args)


def inputs(name, seed, dtype=np.float32, scale=1):
    return KERNELS[name][0](np.random.default_rng(seed), dtype, scale)


# -- many Python threads ---------------------------------------------------------------------
def test_sixteen_python_threads_x_100_calls_match_serial_calls_bitwise(threads):
    """Each thread has its own arrays and cycles through every kernel; results must equal
    the serial ones bitwise (same thread count, deterministic kernels), so no call saw
    another's data or workspace."""
    threads(2)                      # each call runs its own OpenMP team: 32 OS threads
    n_threads, calls = 16, 100
    args = [{name: inputs(name, 100 * t + i) for i, name in enumerate(NAMES)}
            for t in range(n_threads)]
    serial = [{name: run(name, args[t][name]) for name in NAMES} for t in range(n_threads)]
    mismatches, errors = [], []
    start = threading.Barrier(n_threads)

    def worker(t):
        try:
            start.wait()
            for i in range(calls):
                name = NAMES[(i + t) % len(NAMES)]
                got = run(name, args[t][name])
                if not all(np.array_equal(a, b) for a, b in zip(got, serial[t][name])):
                    mismatches.append((t, i, name))
        except BaseException as exc:        # reported below, not lost in the thread
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join(timeout=300)
    assert not any(th.is_alive() for th in pool), "a thread hung"
    assert not errors, errors
    assert not mismatches, mismatches[:10]


def longest_pause_beside(call):
    """Run `call` in another thread while this one keeps executing Python; return (the
    call's duration, the longest pause this thread saw meanwhile). A call that held the GIL
    would pause this thread for its whole duration."""
    looping, finished = threading.Event(), threading.Event()
    duration = []

    def worker():
        looping.wait()              # start only once this thread is in its loop
        t0 = time.perf_counter()
        call()
        duration.append(time.perf_counter() - t0)
        finished.set()

    th = threading.Thread(target=worker)
    th.start()
    last = time.perf_counter()
    longest = 0.0
    looping.set()
    while not finished.is_set():
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
    th.join()
    return duration[0], longest


@pytest.mark.skipif(sys.platform != "linux", reason="calls libc's usleep")
def test_the_pause_check_catches_a_call_that_holds_the_gil():
    """The check below is not vacuous: ctypes.PyDLL keeps the GIL during a C call."""
    usleep_with_gil = ctypes.PyDLL(None).usleep
    duration, pause = longest_pause_beside(lambda: usleep_with_gil(200000))
    assert pause > duration / 2
    usleep_without_gil = ctypes.CDLL(None).usleep
    duration, pause = longest_pause_beside(lambda: usleep_without_gil(200000))
    assert pause < duration / 4


@pytest.mark.parametrize("name", NAMES)
def test_kernels_release_the_gil_so_python_keeps_running(name, threads):
    """A long kernel (>= 0.1 s) in one thread; this thread's Python loop must never stall
    for a quarter of it (a GIL-holding call stalls it for the whole call). Robust to a
    loaded machine: the best of three attempts counts, relative to the kernel's duration."""
    threads(1)
    scale = 1
    while True:                     # grow the problem until one call lasts >= 0.1 s
        args = inputs(name, 0, np.float32, scale)
        t0 = time.perf_counter()
        run(name, args)
        took = time.perf_counter() - t0
        if took >= 0.1 or sum(a.nbytes for a in args) > 2**27:
            break
        # The work grows linearly with scale: aim at 0.12 s, at most 64x in one step.
        scale = max(2 * scale, min(int(scale * 0.12 / max(took, 1e-4)) + 1, 64 * scale))
    attempts = []
    for _ in range(3):
        duration, pause = longest_pause_beside(lambda: run(name, args))
        attempts.append((round(duration, 3), round(pause, 3)))
        if pause < duration / 4:
            return
    pytest.fail(f"{name}: Python stalled while the kernel ran (duration, longest pause): "
                f"{attempts}")


def test_set_num_threads_applies_to_threads_started_before_and_after(threads):
    """OpenMP's own thread count is per thread; fastconv's setting is process-wide."""
    seen = {}
    go = threading.Event()

    def early():
        go.wait()
        seen["early"] = fastconv.get_num_threads()

    th = threading.Thread(target=early)
    th.start()                      # started before the setting changes
    threads(3)
    go.set()
    th.join()
    late = threading.Thread(target=lambda: seen.update(late=fastconv.get_num_threads()))
    late.start()
    late.join()
    assert seen == {"early": threads_in_effect(3), "late": threads_in_effect(3)}


def test_threadpoolctl_limit_in_one_thread_is_kept_until_the_next_set_num_threads(threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not fastconv._ext.have_openmp():
        pytest.skip("built without OpenMP")
    threads(2)
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert fastconv.get_num_threads() == 1
        fastconv.conv2d(*conv_inputs(np.random.default_rng(0), np.float32))
        assert fastconv.get_num_threads() == 1
    assert fastconv.get_num_threads() == 2


# -- thread counts ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_thread_counts_1_2_4_8_agree_within_1e_12_in_float64(name, threads):
    args = inputs(name, 7, np.float64, scale=2)
    results = {}
    for n in (1, 2, 4, 8):
        threads(n)
        results[n] = run(name, args)
    for n in (2, 4, 8):
        for got, want in zip(results[n], results[1]):
            if got.dtype == np.bool_:
                assert np.array_equal(got, want), (name, n)
            else:
                assert rel_err(got, want) <= 1e-12, (name, n)


STRESS_CASES = [
    # (algorithm, dtype, N, groups): N * groups >= 8 gives im2col's per-thread partial
    # sums of dw; N = 1 its parallel GEMM; direct splits filter slices across threads.
    ("direct", np.float32, 8, 1), ("direct", np.float64, 3, 2),
    ("im2col", np.float32, 8, 1), ("im2col", np.float64, 4, 2), ("im2col", np.float32, 1, 1),
]


def weight_gradient_runs(runs, threads):
    threads(8)
    for algorithm, dtype, N, groups in STRESS_CASES:
        rng = np.random.default_rng(N * 10 + groups)
        x = rng.standard_normal((N, 4 * groups, 14, 14)).astype(dtype)
        w = rng.standard_normal((6 * groups, 4, 3, 3)).astype(dtype)
        dy = rng.standard_normal((N, 6 * groups, 14, 14)).astype(dtype)
        first = fastconv.conv2d_backward(dy, x, w, padding=1, groups=groups, algorithm=algorithm)
        for i in range(runs - 1):
            again = fastconv.conv2d_backward(dy, x, w, padding=1, groups=groups,
                                             algorithm=algorithm)
            for got, want, what in zip(again, first, ("dx", "dw", "db")):
                assert np.array_equal(got, want), (algorithm, dtype.__name__, N, groups, what, i)


def test_weight_gradient_with_8_threads_is_bitwise_identical_over_50_runs(threads):
    weight_gradient_runs(50, threads)


@pytest.mark.slow
def test_weight_gradient_with_8_threads_is_bitwise_identical_over_1000_runs(threads):
    weight_gradient_runs(1000, threads)


# -- fork --------------------------------------------------------------------------------------
FORK_SCRIPT = textwrap.dedent("""
    import multiprocessing as mp, sys, warnings
    import numpy as np
    import fastconv

    parent_threads = int(sys.argv[1])
    x = np.random.default_rng(0).standard_normal((4, 8, 24, 24))
    w = np.random.default_rng(1).standard_normal((16, 8, 3, 3))
    fastconv.set_num_threads(parent_threads)
    want = {a: fastconv.conv2d(x, w, padding=1, algorithm=a) for a in ("direct", "im2col")}

    def child(n):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fastconv.set_num_threads(n)
        ok = all(np.array_equal(fastconv.conv2d(x, w, padding=1, algorithm=a), want[a])
                 for a in want)
        return n, fastconv.get_num_threads(), ok, len(caught)

    with mp.get_context("fork").Pool(2) as pool:
        for result in pool.map_async(child, [1, 2, 1, 2]).get(timeout=60):
            print(*result)
""")


def run_fork_script(tmp_path, parent_threads):
    script = tmp_path / "fork_pool.py"
    script.write_text(FORK_SCRIPT)
    out = subprocess.run([sys.executable, str(script), str(parent_threads)], cwd=tmp_path,
                         env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [tuple(int(v) if v.isdigit() else v for v in line.split())
            for line in out.stdout.splitlines()]


@pytest.mark.skipif(not fastconv._ext.have_openmp(), reason="built without OpenMP")
def test_fork_pool_after_openmp_threads_ran_completes_single_threaded(tmp_path):
    """The parent ran on 2 OpenMP threads; children asking for 1 or 2 threads compute the
    right results on 1 thread, and asking for 2 warns (without the at-fork hook, a child
    using 2 threads hangs in GCC's libgomp)."""
    rows = run_fork_script(tmp_path, 2)
    assert rows == [(1, 1, "True", 0), (2, 1, "True", 1)] * 2, rows


@pytest.mark.skipif(not fastconv._ext.have_openmp(), reason="built without OpenMP")
def test_fork_pool_keeps_threads_when_the_parent_never_started_openmp_threads(tmp_path):
    rows = run_fork_script(tmp_path, 1)
    assert rows == [(1, 1, "True", 0), (2, 2, "True", 0)] * 2, rows


# -- floating-point environment -----------------------------------------------------------------
FE = {"to nearest": 0x000, "downward": 0x400, "upward": 0x800, "toward zero": 0xC00}


@pytest.fixture
def libm():
    if sys.platform != "linux" or not ctypes.util.find_library("m"):
        pytest.skip("the FE_* values here are glibc's")
    lib = ctypes.CDLL(ctypes.util.find_library("m"))
    yield lib
    lib.fesetround(FE["to nearest"])


def denormals_survive():
    """False if flush-to-zero or denormals-are-zero is on in this thread's MXCSR."""
    tiny32 = np.array([1e-40], dtype=np.float32)   # a float32 denormal
    tiny64 = np.array([5e-320])                    # a float64 denormal
    return bool((tiny32 * np.float32(1))[0] != 0 and (tiny64 * 1.0)[0] != 0
                and (tiny32 / np.float32(2))[0] != 0)


@pytest.mark.parametrize("mode", list(FE))
def test_calls_leave_the_rounding_mode_and_denormal_handling_alone(mode, libm):
    assert denormals_survive()
    assert libm.fesetround(FE[mode]) == 0
    for name in NAMES:
        run(name, inputs(name, 3))
        assert libm.fegetround() == FE[mode], name
        assert denormals_survive(), name


def test_importing_fastconv_does_not_enable_flush_to_zero(tmp_path):
    """A library built with -ffast-math would switch FTZ/DAZ on at load time."""
    code = ("import numpy as np; a = np.array([1e-40], np.float32); import fastconv; "
            "fastconv.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))); "
            "print((a * np.float32(1))[0] != 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=subprocess_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True", out.stderr


@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_denormal_inputs_give_the_exact_denormal_results(algorithm):
    """Denormals are computed, not flushed (they are slow: see README, Reliability)."""
    x = np.full((1, 1, 4, 4), 1e-39, dtype=np.float32)        # denormal
    w = np.full((1, 1, 2, 2), 0.5, dtype=np.float32)
    y = fastconv.conv2d(x, w, algorithm=algorithm)
    assert np.all(y == np.float32(1e-39) * np.float32(2)), y
