"""Autotuning: each pass of a convolution runs the algorithm measured fastest here.

``auto``'s rules (:mod:`fastconv.plan`) were measured on a few CPUs; where another CPU
ranks the algorithms differently, autotuning finds out. The first call for a problem (its
shapes, stride, padding, dilation, groups and dtype, at the current thread count and SIMD
level) times every algorithm that can run each pass, and each variant of the direct
convolution ("direct:by_pixels", "direct:by_filters" for the forward pass and the weight
gradient; "direct:gather", "direct:scatter" for the input gradient: the variants
:func:`fastconv.conv_plan` names), on random data of the problem's shapes, and keeps the
fastest. The tuning call takes a few times longer than a plain one;
the calls after it cost nothing extra.

    fastconv.set_autotune(True)                # "auto" autotunes, in layers and fit too
    fastconv.conv2d(x, w, algorithm="autotune")   # one call, whatever the setting

The environment variable FASTCONV_AUTOTUNE=1 turns it on at import. Every algorithm
computes the same convolution (within float rounding), and a problem keeps its choice, so
results are deterministic once a problem is tuned.

Choices are also kept on disk, so that later processes start tuned: in the file
FASTCONV_AUTOTUNE_CACHE names (read when a process first tunes; default
``~/.cache/fastconv/autotune.json``, under $XDG_CACHE_HOME when set; an empty value keeps
them in memory only). The file holds one section per fastconv version (with
TUNING_REVISION, what is timed) and CPU model (:func:`fastconv.config.cpu_model`: its name
and x86 family and model numbers), so a new version or another CPU tunes afresh (a new
version drops the old versions' sections).
It is rewritten atomically under a lock, so processes sharing it keep each other's
entries; a file that is not such a cache (corrupt, or another program's) is ignored with a
warning and replaced by the next write.
"""
import contextlib
import json
import os
import tempfile
import threading
import time
import warnings

import numpy as np

from . import _ext
from .config import cpu_model

try:
    import fcntl
except ImportError:               # no advisory locks (Windows): writes are still atomic
    fcntl = None

__all__ = ["set_autotune", "get_autotune", "clear_autotune", "tuned", "cache_path"]

# Timed runs per candidate after one untimed warm-up run (workspaces, first page touches);
# the candidate's time is the fastest of them.
TIMED_RUNS = 3
# What the cache file's "format" entry says.
CACHE_FORMAT = "fastconv autotune cache"
# What autotuning times, as a number: choices made under another revision (other
# candidates) are not used. 2: the direct convolution's variants are timed too.
TUNING_REVISION = 2

_settings = {"enabled": os.environ.get("FASTCONV_AUTOTUNE", "").strip().lower()
             in ("1", "true", "yes", "on")}
_chosen = {}                     # problem key -> (forward, backward_data, backward_weight)
_disk = {}                       # {"path": the file read, "entries": its section} once read
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
    """Forget every choice this process holds: the next call of each problem looks in the
    cache file again, and tunes the problem if the file has no choice for it."""
    with _lock:
        _chosen.clear()
        _disk.clear()


def tuned():
    """{problem key: (forward, backward_data, backward_weight)} of the choices this process
    holds (problem key: geometry, dtype name, threads, SIMD level; :func:`key_text` names
    it)."""
    with _lock:
        return dict(_chosen)


def cache_path():
    """The cache file FASTCONV_AUTOTUNE_CACHE names (default under ~/.cache/fastconv), or
    None when it is set empty (choices kept in memory only)."""
    path = os.environ.get("FASTCONV_AUTOTUNE_CACHE")
    if path is None:
        root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".cache")
        return os.path.join(root, "fastconv", "autotune.json")
    return path or None


def remembered(key, candidates, tune):
    """The algorithms of the three passes chosen for the problem `key` (geometry, dtype
    name, threads, SIMD level): this process's choice, else the cache file's, else tune()'s,
    which is then stored in both. A stored choice is used only where each of its passes is
    one of `candidates` (``{pass: names}``, in the passes' order)."""
    with _lock:
        if key not in _chosen:
            text = key_text(key)
            stored = _stored_entries().get(text)
            if _fits(stored, candidates):
                _chosen[key] = tuple(stored)
            else:
                _chosen[key] = tuple(tune())
                _store(text, _chosen[key])
        return _chosen[key]


def key_text(key):
    """The cache file's name for a problem key."""
    geom, dtype, threads, simd = key
    return (f"x{geom.input_shape} w{geom.weight_shape} stride{tuple(geom.stride)} "
            f"padding{tuple(geom.padding)} dilation{tuple(geom.dilation)} groups {geom.groups} "
            f"{dtype} threads {threads} {simd}")


def _section():
    """The cache file's section for this fastconv version, TUNING_REVISION and CPU."""
    from . import __version__
    return f"fastconv {__version__} tuning {TUNING_REVISION} on {cpu_model()}"


def _fits(stored, candidates):
    """Whether a choice read from the file names one of its candidates for every pass."""
    return (isinstance(stored, list) and len(stored) == len(candidates)
            and all(isinstance(name, str) and name in names
                    for name, names in zip(stored, candidates.values())))


def _read(path, warn):
    """The cache file's sections ({} when there is none); a file that is not a cache warns
    (when warn) and counts as empty."""
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        reason = f"it cannot be read ({exc})"
    except ValueError as exc:
        reason = f"it is not JSON ({exc})"
    else:
        if (isinstance(content, dict) and content.get("format") == CACHE_FORMAT
                and isinstance(content.get("sections"), dict)
                and all(isinstance(s, dict) for s in content["sections"].values())):
            return content["sections"]
        reason = f"it is not a {CACHE_FORMAT} file"
    if warn:
        warnings.warn(f"fastconv autotune: ignoring {path}: {reason}; the next choice "
                      f"replaces it", RuntimeWarning, stacklevel=5)
    return {}


def _stored_entries():
    """This version's and CPU's section of the cache file, read once per process."""
    path = cache_path()
    if path is None:
        return {}
    if _disk.get("path") != path:
        _disk.update(path=path, entries=_read(path, warn=True).get(_section(), {}))
    return _disk["entries"]


def _store(text, choice):
    """Add one choice to the cache file: under its lock, the file as it is now plus the
    choice, with other versions' sections dropped, written to a new file that then replaces
    it. A file that cannot be written leaves the choice in memory only, with a warning."""
    path = cache_path()
    if path is None:
        return
    section = _section()
    try:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        with _file_lock(path + ".lock"):
            sections = _read(path, warn=False)
            version = section.split(" on ", 1)[0]
            sections = {name: entries for name, entries in sections.items()
                        if name.split(" on ", 1)[0] == version}
            sections.setdefault(section, {})[text] = list(choice)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".autotune-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump({"format": CACHE_FORMAT, "sections": sections}, f, indent=1)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
    except OSError as exc:
        warnings.warn(f"fastconv autotune: cannot write {path} ({exc}); the choice is kept "
                      f"in memory only", RuntimeWarning, stacklevel=5)
        return
    _disk.update(path=path, entries=sections[section])


@contextlib.contextmanager
def _file_lock(path):
    """An exclusive advisory lock on the file at path for the block (none without fcntl)."""
    with open(path, "a") as f:
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_UN)


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
