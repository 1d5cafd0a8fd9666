"""Checkpoints that survive a kill, and files that are checked before they are trusted.

* SIGKILL the trainer at random moments (during training and during checkpoint writes):
  the last checkpoint always loads and validates (format version, checksum, kinds, shapes,
  dtypes, finite values), and resuming from it after every kill finishes the run with
  exactly the weights of an uninterrupted one. 5 kills here, 50 with ``pytest -m slow``.
* Corrupted, tampered, foreign, pickled or non-finite checkpoints raise CheckpointError
  (a ValueError) with a clear message; loading never unpickles.
* (tests/test_fuzz.py: random bytes and mutated files never make read_idx or
  load_checkpoint fail with anything but their documented errors.)
"""
import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

from fastconv.nn import checkpoint as ckpt
from fastconv.nn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from fastconv.data.datasets import read_idx
from fastconv.nn.models import LeNet5
from fastconv.nn.optim import Adam
from fastconv.nn.training import fit

from conftest import subprocess_env

# A tiny training run: 32 random 28x28 images, 2 steps per epoch, a checkpoint per epoch,
# so a large share of the run is spent writing checkpoints. Prints each finished epoch.
TRAINER = textwrap.dedent("""
    import sys
    import numpy as np
    from fastconv.nn.models import LeNet5
    from fastconv.nn.training import fit

    path, epochs, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "resume"
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 32)
    print("start", flush=True)
    fit(LeNet5(seed=0), x, y, epochs=epochs, batch_size=16, seed=1, progress=False,
        checkpoint=path, resume=path if resume else None,
        callbacks=[lambda epoch, history: print(epoch, flush=True)])
    print("done", flush=True)
""")


def start_trainer(folder, path, epochs, resume):
    script = folder / "trainer.py"
    if not script.exists():
        script.write_text(TRAINER)
    return subprocess.Popen(
        [sys.executable, str(script), str(path), str(epochs), "resume" if resume else "new"],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=subprocess_env(OMP_NUM_THREADS="1"))


def kill_resume_and_finish(folder, kills, epochs, seed):
    """Kill the trainer `kills` times at random moments, resuming each time from the last
    checkpoint, then let it finish. Returns (the final checkpoint, kills that hit a
    checkpoint write, epochs reached at each kill)."""
    rng = random.Random(seed)
    path = folder / "checkpoint.npz"
    during_write, reached = 0, []
    for _ in range(kills):
        proc = start_trainer(folder, path, epochs, resume=path.exists())
        assert proc.stdout.readline() == "start\n", proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL, "the run finished before the kill: " \
            "give it more epochs"
        # A temporary file left behind means the kill landed inside save_checkpoint.
        during_write += any(folder.glob(".checkpoint.npz.*.part"))
        if path.exists():
            state = load_checkpoint(path)            # validates, or raises
            assert not reached or state["epoch"] >= reached[-1]
            reached.append(state["epoch"])
    proc = start_trainer(folder, path, epochs, resume=path.exists())
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert out.splitlines()[-1] == "done"
    assert not list(folder.glob(".checkpoint.npz.*.part")), "stale temporary files"
    return load_checkpoint(path), during_write, reached


def uninterrupted(folder, epochs):
    folder.mkdir()
    proc = start_trainer(folder, folder / "checkpoint.npz", epochs, resume=False)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return load_checkpoint(folder / "checkpoint.npz")


def assert_same_run(a, b):
    assert a["epoch"] == b["epoch"] and a["rng_state"] == b["rng_state"]
    for group in ("model", "optimizer"):
        assert a[group].keys() == b[group].keys()
        for key in a[group]:
            assert np.array_equal(a[group][key], b[group][key]), (group, key)


def test_sigkill_5_times_then_resume_finishes_the_same_run(tmp_path):
    killed = tmp_path / "killed"
    killed.mkdir()
    # 400 epochs take ~3 s; the 5 kills come at most 0.3 s into each run, so the run can
    # never finish before its last kill.
    final, _, reached = kill_resume_and_finish(killed, kills=5, epochs=400, seed=5)
    assert final["epoch"] == 400 and len(final["history"]["epoch"]) == 400
    assert_same_run(final, uninterrupted(tmp_path / "straight", 400))


@pytest.mark.slow
def test_sigkill_50_times_then_resume_finishes_the_same_run(tmp_path):
    killed = tmp_path / "killed"
    killed.mkdir()
    final, during_write, reached = kill_resume_and_finish(killed, kills=50, epochs=5000,
                                                          seed=50)
    print(f"50 kills: {during_write} inside a checkpoint write; epochs at the kills: "
          f"{reached}")
    assert final["epoch"] == 5000
    assert_same_run(final, uninterrupted(tmp_path / "straight", 5000))


# -- validation ----------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    """A checkpoint of a LeNet-5 after one Adam step (so the optimizer has buffers)."""
    model = LeNet5(seed=0)
    optimizer = Adam(model)
    images = np.random.default_rng(0).integers(0, 256, (16, 28, 28), dtype=np.uint8)
    fit(model, images, np.arange(16) % 10, epochs=1, batch_size=16, optimizer=optimizer,
        progress=False)
    save_checkpoint(tmp_path / "c.npz", model, optimizer, np.random.default_rng(0), epoch=2,
                    history={"loss": [1.0, 0.5]})
    return tmp_path / "c.npz"


def rewrite(path, change):
    """Rewrite a checkpoint's entries through `change(entries)`, as a valid .npz."""
    with np.load(path, allow_pickle=False) as npz:
        entries = {k: npz[k] for k in npz.files}
    change(entries)
    with open(path, "wb") as f:
        np.savez(f, **entries)


def test_a_checkpoint_stores_and_verifies_its_checksum(saved):
    with np.load(saved, allow_pickle=False) as npz:
        entries = {k: npz[k] for k in npz.files}
    assert int(entries["version"]) == ckpt.VERSION == 2
    stored = str(entries.pop("checksum"))
    assert len(stored) == 64 and stored == ckpt._checksum(entries)   # of every other entry
    state = load_checkpoint(saved)
    assert state["epoch"] == 2 and state["model"]["conv1.weight"].shape == (6, 1, 5, 5)
    rewrite(saved, lambda e: e.__setitem__("checksum", np.array("0" * 64)))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(saved)


def test_tampered_values_fail_the_checksum(saved):
    rewrite(saved, lambda e: e["model/fc1.bias"].__setitem__(0, 1.0))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(saved)


def data_offsets(path):
    """name -> offset of the middle of that member's stored bytes in a .npz file."""
    raw = path.read_bytes()
    offsets = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            start = info.header_offset
            name_len = int.from_bytes(raw[start + 26:start + 28], "little")
            extra_len = int.from_bytes(raw[start + 28:start + 30], "little")
            offsets[info.filename] = start + 30 + name_len + extra_len + info.compress_size // 2
    return offsets


def test_flipped_bytes_in_any_entry_raise_a_checkpoint_error(saved):
    """A flipped bit in stored data fails the zip CRC or the checksum. (Bytes of zip
    metadata that reading ignores, such as a local header's zip64 field, may change
    harmlessly: the mutation test below covers that case.)"""
    data = saved.read_bytes()
    offsets = data_offsets(saved)
    for name in ("model/fc1.weight.npy", "optimizer/m/conv1.bias.npy", "epoch.npy",
                 "model_config.npy", "checksum.npy"):
        corrupt = bytearray(data)
        corrupt[offsets[name]] ^= 0x01
        saved.write_bytes(bytes(corrupt))
        with pytest.raises(CheckpointError, match="corrupted"):
            load_checkpoint(saved)


@pytest.mark.parametrize("flag, what", [(0x0001, "encrypted"), (0x0020, "patched data"),
                                        (0x0040, "strong encryption")])
def test_zip_flags_zipfile_cannot_read_raise_checkpoint_errors(saved, flag, what):
    """zipfile raises RuntimeError or NotImplementedError for these: still a CheckpointError."""
    data = bytearray(saved.read_bytes())
    central = data.index(b"PK\x01\x02")            # the first central directory entry
    data[central + 8] |= flag                       # its general purpose flags
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(saved)


def fix_checksum(entries):
    entries.pop("checksum", None)
    entries["checksum"] = np.array(ckpt._checksum(entries))


@pytest.mark.parametrize("change, words", [
    (lambda e: e.__setitem__("model/conv1.weight", np.zeros((6, 1, 3, 3), np.float32)),
     ["model/conv1.weight", "(6, 1, 3, 3)", "(6, 1, 5, 5)"]),
    (lambda e: e.__setitem__("model/conv1.weight", np.zeros((6, 1, 5, 5))),
     ["model/conv1.weight", "float64", "float32"]),
    (lambda e: e.pop("model/fc3.bias"), ["missing", "fc3.bias"]),
    (lambda e: e.__setitem__("model/extra", np.zeros(3, np.float32)), ["unexpected", "extra"]),
    (lambda e: e["model/fc2.weight"].__setitem__((0, 0), np.nan), ["non-finite", "fc2.weight"]),
    (lambda e: e["optimizer/m/fc2.bias"].__setitem__(0, np.inf), ["non-finite", "m/fc2.bias"]),
    (lambda e: e.__setitem__("optimizer/m/fc2.bias", np.zeros(3, np.float32)),
     ["optimizer/m/fc2.bias", "(3,)", "(84,)"]),
    (lambda e: e.__setitem__("epoch", np.array(-1)), ["negative epoch"]),
    (lambda e: e.__setitem__("version", np.array(99)), ["version 99"]),
    (lambda e: e.__setitem__("model_config", np.array('{"class": "VGG"}')), ["model_config"]),
    (lambda e: e.__setitem__("history", np.array("{not json")), ["incomplete"]),
    (lambda e: e.__setitem__("model_rng_state", np.array('{"3.rng": 5}')),
     ["model_rng_state must map generator names to bit-generator states", "5"]),
])
def test_inconsistent_checkpoints_raise_clear_errors(saved, change, words):
    """Each defect alone, with a correct checksum, so the validation itself must see it."""
    rewrite(saved, lambda e: (change(e), fix_checksum(e)))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(saved)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_version_1_checkpoints_without_checksum_still_load(saved):
    rewrite(saved, lambda e: (e.pop("checksum"), e.__setitem__("version", np.array(1))))
    assert load_checkpoint(saved)["epoch"] == 2


def test_checkpoints_written_before_model_rng_state_still_load(saved):
    assert load_checkpoint(saved)["model_rng_state"] == {}      # LeNet-5 draws no masks
    rewrite(saved, lambda e: (e.pop("model_rng_state"), fix_checksum(e)))
    state = load_checkpoint(saved)
    assert state["model_rng_state"] is None and state["epoch"] == 2


def test_saving_non_finite_parameters_keeps_the_previous_checkpoint(saved):
    before = saved.read_bytes()
    model = LeNet5(seed=0)
    model["fc1"].params()["weight"][0, 0] = np.nan
    with pytest.raises(CheckpointError, match="non-finite.*fc1.weight.*previous checkpoint"):
        save_checkpoint(saved, model, epoch=3)
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_loading_never_unpickles(tmp_path):
    """An object array in the file would run code when unpickled; it is refused unread."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.npz"
    buf = io.BytesIO()
    np.save(buf, np.array([Payload()], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("format.npy", _npy(np.array(ckpt.FORMAT)))
        zf.writestr("version.npy", _npy(np.array(2)))
        zf.writestr("model/w.npy", buf.getvalue())
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def _npy(array):
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def test_foreign_files_raise_checkpoint_errors(tmp_path):
    cases = {"page.npz": b"<html>404</html>", "array.npz": _npy(np.zeros(3)),
             "empty.npz": b"", "plain.zip": _zip({"readme.txt": b"hello"})}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError):
            load_checkpoint(tmp_path / name)


def _zip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_read_idx_sizes_never_wrap_around(tmp_path):
    """Dimensions 2**30 x 2**30 x 16 need 2**64 bytes: in int64 that wraps to 0, which the
    empty payload would match."""
    path = tmp_path / "huge.idx"
    header = bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in (2**30, 2**30, 16))
    path.write_bytes(header)
    with pytest.raises(ValueError, match="truncated.*18446744073709551616 bytes"):
        read_idx(path)
