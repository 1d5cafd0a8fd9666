"""Training checkpoints: one ``.npz`` file, no pickle, written atomically.

A checkpoint holds everything a run needs to continue exactly where it stopped:

=====================  ==========================================================
entry                  content
=====================  ==========================================================
``format``             the text "fastconv-checkpoint" (foreign files lack it)
``version``            format version (2; version 1 files, without checksum, still load)
``checksum``           SHA-256 of every other entry (name, dtype, shape, bytes)
``epoch``              epochs completed
``model_config``       JSON: the architecture (see ``LeNet5.config``)
``model/<name>``       every parameter and buffer (``model.state_dict()``)
``optimizer/<name>``   the optimizer's type, settings, step count and buffers
``rng_state``          JSON: the shuffling Generator's bit-generator state
``model_rng_state``    JSON: ``{name: bit-generator state}`` of ``model.generators()``
                       (Dropout's masks); absent in files written before it was added
``history``            JSON: per-epoch metrics so far
``meta``               JSON: anything else the caller wants back (dataset, ...)
=====================  ==========================================================

Strings are stored as 0-d unicode arrays, so ``np.load(..., allow_pickle=False)`` reads
the whole file: loading never unpickles.

Loading validates what it reads (:func:`load_checkpoint`): format and version, the
checksum, entries of the right kinds, finite values, and, for a model the checkpoint can
rebuild (``model_config``), every parameter's name, shape and dtype. Saving refuses
non-finite parameters, so a diverged run never overwrites its last good checkpoint.
"""
import hashlib
import json
import os

import numpy as np

from .._files import write_atomic

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError", "FORMAT", "VERSION"]

FORMAT = "fastconv-checkpoint"
VERSION = 2
READABLE_VERSIONS = (1, 2)        # version 1: the same entries without the checksum


class CheckpointError(ValueError):
    """A file that is not a complete fastconv checkpoint."""


def save_checkpoint(path, model, optimizer=None, rng=None, epoch=0, history=None, meta=None):
    """Write a checkpoint atomically: a temporary file in the same folder, flushed and
    fsync'ed, then ``os.replace``'d over `path`. A crash leaves the old file or the new
    one, never a partial file (and the next save removes the crashed one's temporary
    file). Non-finite parameters raise :class:`CheckpointError` and write nothing.

    Parameters
    ----------
    path : str
    model
        Has ``state_dict()`` and, to be rebuilt by ``evaluate``, ``config()``.
    optimizer : Optimizer, optional
    rng : numpy.random.Generator, optional
        The training loop's shuffling generator. (The model's own generators, from its
        ``generators()``, are saved too.)
    epoch : int
        Epochs completed.
    history, meta : dict, optional
        JSON-serialisable.
    """
    generators = model.generators() if hasattr(model, "generators") else {}
    entries = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "epoch": np.array(int(epoch)),
        "model_config": np.array(json.dumps(model.config() if hasattr(model, "config")
                                            else {})),
        "rng_state": np.array(json.dumps(rng.bit_generator.state if rng is not None else {})),
        "model_rng_state": np.array(json.dumps(
            {name: g.bit_generator.state for name, g in generators.items()},
            default=_listed)),
        "history": np.array(json.dumps(history or {})),
        "meta": np.array(json.dumps(meta or {})),
    }
    entries.update({f"model/{k}": np.asarray(v) for k, v in model.state_dict().items()})
    if optimizer is not None:
        entries.update({f"optimizer/{k}": np.asarray(v)
                        for k, v in optimizer.state_dict().items()})
    path = os.fspath(path)
    bad = _non_finite(entries)
    if bad:
        raise CheckpointError(f"not writing checkpoint {path}: non-finite values in "
                              f"{', '.join(bad[:5])} (the previous checkpoint is kept)")
    entries["checksum"] = np.array(_checksum(entries))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    write_atomic(path, lambda f: np.savez(f, **entries))
    _remove_stale_parts(folder, os.path.basename(path))
    return path


def _listed(value):
    """JSON for what a bit-generator state holds besides numbers: arrays (MT19937's key),
    as lists, which setting the state accepts back."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _remove_stale_parts(folder, name):
    """Delete the temporary files of earlier saves to the same path that were killed
    mid-write (a SIGKILL skips the clean-up above). One writer per checkpoint path."""
    prefix = "." + name + "."
    for entry in os.listdir(folder):
        if entry.startswith(prefix) and entry.endswith(".part"):
            try:
                os.unlink(os.path.join(folder, entry))
            except OSError:
                pass


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    dict
        ``epoch`` (int), ``model_config``, ``rng_state``, ``history``, ``meta`` (parsed
        JSON), ``model_rng_state`` (``{name: bit-generator state}``, or None for a file
        written before it was saved), ``model`` and ``optimizer`` (``{name: array}`` state
        dicts; ``optimizer`` is empty when none was saved).

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    CheckpointError
        (a ValueError) if the file is truncated, corrupted (checksum), not a ``.npz``, not
        a fastconv checkpoint, of an unknown version, or holds non-finite values or
        parameters that do not fit its model.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):       # a bare .npy array
            raise ValueError(f"a single {type(loaded).__name__}, not an archive")
        with loaded as npz:
            entries = {key: npz[key] for key in npz.files}
    except Exception as exc:
        # Whatever a damaged archive makes zipfile or NumPy raise (BadZipFile, EOFError,
        # ValueError, zlib.error, NotImplementedError for unknown flags, RuntimeError for
        # "encrypted" members, ...) means one thing here.
        raise CheckpointError(f"{path} is not a readable checkpoint: the file is "
                              f"corrupted, truncated or not a .npz archive ({exc})") from None
    if "format" not in entries or str(entries["format"]) != FORMAT:
        raise CheckpointError(f"{path} is not a fastconv checkpoint (no "
                              f"'format={FORMAT}' entry; found {sorted(entries)[:5]})")
    try:
        version = int(entries["version"])
    except (KeyError, ValueError, TypeError):
        raise CheckpointError(f"{path}: checkpoint without a readable format version") from None
    if version not in READABLE_VERSIONS:
        raise CheckpointError(f"{path}: checkpoint format version {version}, this fastconv "
                              f"reads versions {READABLE_VERSIONS}")
    if version >= 2:
        stored = str(entries.pop("checksum", ""))
        if stored != _checksum(entries):
            raise CheckpointError(f"{path}: checksum mismatch: the checkpoint is corrupted "
                                  f"or was modified")
    try:
        result = {key: json.loads(str(entries[key]))
                  for key in ("model_config", "rng_state", "history", "meta")}
        result["epoch"] = int(entries["epoch"])
        generators = entries.get("model_rng_state")
        result["model_rng_state"] = None if generators is None else json.loads(str(generators))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: incomplete checkpoint ({exc})") from None
    states = result["model_rng_state"]
    if states is not None and not (isinstance(states, dict)
                                   and all(isinstance(v, dict) for v in states.values())):
        raise CheckpointError(f"{path}: model_rng_state must map generator names to "
                              f"bit-generator states, got {str(states)[:80]}")
    if result["epoch"] < 0:
        raise CheckpointError(f"{path}: negative epoch count {result['epoch']}")
    for group in ("model", "optimizer"):
        prefix = group + "/"
        result[group] = {k[len(prefix):]: v for k, v in entries.items() if k.startswith(prefix)}
    _validate_arrays(path, entries, result)
    return result


def _checksum(entries):
    """SHA-256 of the entries: each name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(entries):
        value = np.ascontiguousarray(entries[name])
        digest.update(f"{name}\0{value.dtype.str}\0{value.shape}\0".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _non_finite(entries):
    """Names of the floating-point entries holding NaN or infinity."""
    return [name for name, value in sorted(entries.items())
            if value.dtype.kind in "fc" and not np.all(np.isfinite(value))]


def _validate_arrays(path, entries, result):
    """Kinds and finite values of every array; for a model the checkpoint can rebuild,
    the names, shapes and dtypes of its parameters and of the optimizer's buffers."""
    for name, value in entries.items():
        if value.dtype.kind not in "biufU":
            raise CheckpointError(f"{path}: entry {name} has unsupported dtype {value.dtype}")
    bad = _non_finite(entries)
    if bad:
        raise CheckpointError(f"{path}: non-finite values in {', '.join(bad[:5])}")
    if not result["model_config"]:
        return
    from .models import from_config
    try:
        expected = from_config(result["model_config"]).state_dict()
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: model_config does not describe a known model "
                              f"({exc})") from None
    model = result["model"]
    if set(model) != set(expected):
        raise CheckpointError(f"{path}: the parameters do not match the model: missing "
                              f"{sorted(set(expected) - set(model))}, unexpected "
                              f"{sorted(set(model) - set(expected))}")
    for name, want in expected.items():
        _check_like(path, f"model/{name}", model[name], want)
    for key, value in result["optimizer"].items():
        buffer, _, param = key.partition("/")
        if param:
            if param not in expected:
                raise CheckpointError(f"{path}: optimizer entry {key} names no parameter")
            _check_like(path, f"optimizer/{key}", value, expected[param])


def _check_like(path, name, value, want):
    if value.shape != want.shape or value.dtype != want.dtype:
        raise CheckpointError(f"{path}: {name} is {value.dtype}{value.shape}, the model "
                              f"expects {want.dtype}{want.shape}")
