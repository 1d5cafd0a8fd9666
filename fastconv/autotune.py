"""Autotuning: each pass of a convolution runs the algorithm measured fastest here.

``auto``'s rules (:mod:`fastconv.plan`) were measured on a few CPUs; where another CPU
ranks the algorithms differently, autotuning finds out. The first call for a problem (its
shapes, stride, padding, dilation, groups and dtype, at the current thread count and SIMD
level) times every algorithm that can run each pass, on random data of the problem's
shapes, and keeps the fastest for the rest of the process. The tuning call takes a few
times longer than a plain one; the calls after it cost nothing extra.

    fastconv.set_autotune(True)                # "auto" autotunes, in layers and fit too
    fastconv.conv2d(x, w, algorithm="autotune")   # one call, whatever the setting

The environment variable FASTCONV_AUTOTUNE=1 turns it on at import. Every algorithm
computes the same convolution (within float rounding), and a problem keeps its choice, so
results are deterministic once a problem is tuned.
"""
import os
import threading
import time

import numpy as np

from . import _ext

__all__ = ["set_autotune", "get_autotune"]

# Timed runs per candidate after one untimed warm-up run (workspaces, first page touches);
# the candidate's time is the fastest of them.
TIMED_RUNS = 3

_settings = {"enabled": os.environ.get("FASTCONV_AUTOTUNE", "").strip().lower()
             in ("1", "true", "yes", "on")}
_chosen = {}                     # problem key -> the tuned plan
_lock = threading.Lock()         # one tuning at a time; others wait for its result


def set_autotune(enabled):
    """Make ``algorithm="auto"`` autotune (True) or follow its fixed rules (False)."""
    if not isinstance(enabled, (bool, np.bool_)):
        raise TypeError(f"set_autotune: enabled must be True or False, got {enabled!r}")
    _settings["enabled"] = bool(enabled)


def get_autotune():
    """Whether ``algorithm="auto"`` autotunes."""
    return _settings["enabled"]


def clear_autotune():
    """Forget every tuned choice: the next call of each problem tunes it again."""
    with _lock:
        _chosen.clear()


def remembered(key, tune):
    """The choice stored under key, or tune()'s result, stored first."""
    with _lock:
        if key not in _chosen:
            _chosen[key] = tune()
        return _chosen[key]


def fastest(candidates, run):
    """The candidate whose run(candidate) is fastest: each is run once untimed, then
    TIMED_RUNS times, and compared by its fastest run. A single candidate is not run."""
    if len(candidates) == 1:
        return candidates[0]
    times = {}
    for candidate in candidates:
        run(candidate)
        best = float("inf")
        for _ in range(TIMED_RUNS):
            start = time.perf_counter()
            run(candidate)
            best = min(best, time.perf_counter() - start)
        times[candidate] = best
    return min(candidates, key=times.__getitem__)


def fastest_passes(geom, dtype, candidates):
    """(forward, backward_data, backward_weight): the fastest of each pass's candidate
    algorithms (``candidates``: a dict from pass name to names) on random data of geom's
    shapes in dtype."""
    rng = np.random.default_rng(0)

    def random(shape):
        return rng.standard_normal(shape).astype(dtype)
    x, w, dy = random(geom.input_shape), random(geom.weight_shape), random(geom.output_shape)
    y, dx, dw = np.empty_like(dy), np.empty_like(x), np.empty_like(w)
    return (
        fastest(candidates["forward"], lambda a: _ext.conv_forward(y, x, w, None, geom, a)),
        fastest(candidates["backward_data"],
                lambda a: _ext.conv_backward(dy, x, w, dx, None, None, geom, a, "direct")),
        fastest(candidates["backward_weight"],
                lambda a: _ext.conv_backward(dy, x, w, None, dw, None, geom, "direct", a)))
