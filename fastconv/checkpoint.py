"""Training checkpoints: one ``.npz`` file, no pickle, written atomically.

A checkpoint holds everything a run needs to continue exactly where it stopped:

=====================  ==========================================================
entry                  content
=====================  ==========================================================
``format``             the text "fastconv-checkpoint" (foreign files lack it)
``version``            format version (1)
``epoch``              epochs completed
``model_config``       JSON: the architecture (see ``LeNet5.config``)
``model/<name>``       every parameter and buffer (``model.state_dict()``)
``optimizer/<name>``   the optimizer's type, settings, step count and buffers
``rng_state``          JSON: the shuffling Generator's bit-generator state
``history``            JSON: per-epoch metrics so far
``meta``               JSON: anything else the caller wants back (dataset, ...)
=====================  ==========================================================

Strings are stored as 0-d unicode arrays, so ``np.load(..., allow_pickle=False)`` reads
the whole file.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError", "FORMAT", "VERSION"]

FORMAT = "fastconv-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a complete fastconv checkpoint."""


def save_checkpoint(path, model, optimizer=None, rng=None, epoch=0, history=None, meta=None):
    """Write a checkpoint atomically: a temporary file in the same folder, flushed and
    fsync'ed, then ``os.replace``'d over `path`. A crash leaves the old file or the new
    one, never a partial file.

    Parameters
    ----------
    path : str
    model
        Has ``state_dict()`` and, to be rebuilt by ``evaluate``, ``config()``.
    optimizer : Optimizer, optional
    rng : numpy.random.Generator, optional
        The training loop's shuffling generator.
    epoch : int
        Epochs completed.
    history, meta : dict, optional
        JSON-serialisable.
    """
    entries = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "epoch": np.array(int(epoch)),
        "model_config": np.array(json.dumps(model.config() if hasattr(model, "config")
                                            else {})),
        "rng_state": np.array(json.dumps(rng.bit_generator.state if rng is not None else {})),
        "history": np.array(json.dumps(history or {})),
        "meta": np.array(json.dumps(meta or {})),
    }
    entries.update({f"model/{k}": v for k, v in model.state_dict().items()})
    if optimizer is not None:
        entries.update({f"optimizer/{k}": np.asarray(v)
                        for k, v in optimizer.state_dict().items()})
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                               suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    dict
        ``epoch`` (int), ``model_config``, ``rng_state``, ``history``, ``meta`` (parsed
        JSON), ``model`` and ``optimizer`` (``{name: array}`` state dicts; ``optimizer`` is
        empty when none was saved).

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    CheckpointError
        (a ValueError) if the file is truncated, not a ``.npz``, or not a fastconv
        checkpoint.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            entries = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint: the file is "
                              f"truncated or not a .npz archive ({exc})") from None
    if "format" not in entries or str(entries["format"]) != FORMAT:
        raise CheckpointError(f"{path} is not a fastconv checkpoint (no "
                              f"'format={FORMAT}' entry; found {sorted(entries)[:5]})")
    version = int(entries["version"])
    if version != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version}, this fastconv "
                              f"reads version {VERSION}")
    try:
        result = {key: json.loads(str(entries[key]))
                  for key in ("model_config", "rng_state", "history", "meta")}
        result["epoch"] = int(entries["epoch"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: incomplete checkpoint ({exc})") from None
    for group in ("model", "optimizer"):
        prefix = group + "/"
        result[group] = {k[len(prefix):]: v for k, v in entries.items() if k.startswith(prefix)}
    return result
