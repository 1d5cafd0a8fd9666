"""The command-line programs with user mistakes: one line on stderr naming the option,
exit status 2, no traceback, nothing left behind; existing runs are kept unless asked;
written files follow the umask; fastconv bench keeps stdout for the report."""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import fastconv
from fastconv import _files
from fastconv.cli import bench, edges, main
from fastconv.nn.checkpoint import load_checkpoint, save_checkpoint
from fastconv.nn.layers import Linear, Sequential
from conftest import subprocess_env
from train_helpers import write_synthetic_mnist


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    return write_synthetic_mnist(tmp_path_factory.mktemp("mnist"), n_train=64, n_test=32)


@pytest.fixture
def quiet(monkeypatch):
    """No plots (quicker), no download attempts, and the thread count restored."""
    monkeypatch.setattr("fastconv.cli.plots.have_matplotlib", lambda: False)
    monkeypatch.setenv("FASTCONV_MNIST_MIRRORS", "http://127.0.0.1:9/")
    threads = fastconv.get_num_threads()
    yield
    fastconv.set_num_threads(threads)


def fails(argv, capsys):
    """main(argv) as a user mistake: exit status 2; returns stderr's single line."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def train(tmp_path, mnist, *options):
    out = tmp_path / "run"
    return out, ["train", "--data-dir", str(mnist), "--out", str(out), "--no-progress",
                 "--batch-size", "32", *options]


@pytest.mark.parametrize("options, option", [
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "many"], "--batch-size"),
    (["--limit", "0"], "--limit"),
    (["--threads", "0"], "--threads"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-0.1"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--epochs", "0"], "--epochs"),
    (["--seed", "-1"], "--seed"),
    (["--resume"], "--resume"),                       # no checkpoint to resume from
    (["--resume", "--overwrite"], "--overwrite"),
])
def test_train_option_mistakes_report_one_line_and_leave_no_folder(tmp_path, mnist, capsys,
                                                                   quiet, options, option):
    out, argv = train(tmp_path, mnist, *options)
    err = fails(argv, capsys)
    assert err.startswith("fastconv train: error: ") and option in err
    assert not out.exists()


def test_train_epochs_zero_says_at_least_one(tmp_path, mnist, capsys, quiet):
    _, argv = train(tmp_path, mnist, "--epochs", "0")
    assert "--epochs: must be a positive integer, got 0" in fails(argv, capsys)


def test_train_without_the_mnist_files_names_data_dir(tmp_path, capsys, quiet):
    empty = tmp_path / "empty"
    empty.mkdir()
    err = fails(["train", "--data-dir", str(empty), "--out", str(tmp_path / "run")], capsys)
    assert "--data-dir" in err and "train-images-idx3-ubyte.gz" in err
    assert not (tmp_path / "run").exists()


def test_train_digits_without_scikit_learn_names_the_dataset(tmp_path, capsys, quiet,
                                                             monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    err = fails(["train", "--dataset", "digits", "--out", str(tmp_path / "run")], capsys)
    assert "--dataset digits" in err and "scikit-learn" in err
    assert not (tmp_path / "run").exists()


def test_train_refuses_an_out_that_is_a_file(tmp_path, capsys, quiet):
    (tmp_path / "run").write_text("x")
    assert "--out" in fails(["train", "--out", str(tmp_path / "run")], capsys)


def test_train_keeps_an_earlier_run_unless_resume_or_overwrite(tmp_path, mnist, capsys, quiet):
    out, argv = train(tmp_path, mnist, "--epochs", "1")
    assert main(argv) == 0
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    capsys.readouterr()
    err = fails(argv, capsys)
    assert "--out" in err and "--resume" in err and "--overwrite" in err
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before

    # --resume needs more epochs than the checkpoint holds
    assert "--epochs" in fails(argv + ["--resume"], capsys)

    # --overwrite starts afresh: a 2-epoch run replaces the 1-epoch one
    assert main(argv[:-2] + ["--epochs", "2", "--overwrite"]) == 0
    assert load_checkpoint(out / "checkpoint.npz")["epoch"] == 2
    assert len(load_checkpoint(out / "checkpoint.npz")["history"]["epoch"]) == 2


def test_train_with_overwrite_checks_its_inputs_before_touching_the_run(tmp_path, mnist,
                                                                        capsys, quiet):
    out, argv = train(tmp_path, mnist, "--epochs", "1")
    assert main(argv) == 0
    before = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    empty = tmp_path / "empty"
    empty.mkdir()
    argv[argv.index("--data-dir") + 1] = str(empty)
    assert "--data-dir" in fails(argv + ["--overwrite"], capsys)
    assert (out / "checkpoint.npz").read_bytes() == before


def test_evaluate_mistakes_report_one_line(tmp_path, mnist, capsys, quiet):
    err = fails(["evaluate", str(tmp_path / "missing.npz")], capsys)
    assert "checkpoint" in err and "does not exist" in err
    text = tmp_path / "README.md"
    text.write_text("# not a checkpoint\n")
    err = fails(["evaluate", str(text)], capsys)
    assert "not a checkpoint" in err and "pickle" not in err
    broken = tmp_path / "broken.npz"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("format.npy", b"junk")
    assert "checkpoint" in fails(["evaluate", str(broken)], capsys)
    out, argv = train(tmp_path, mnist, "--epochs", "1")
    main(argv)
    capsys.readouterr()
    assert "--threads" in fails(["evaluate", str(out / "checkpoint.npz"), "--threads", "0"],
                                capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "--data-dir" in fails(["evaluate", str(out / "checkpoint.npz"), "--data-dir",
                                  str(empty)], capsys)


def test_a_checkpoint_of_another_model_is_a_one_line_error(tmp_path, capsys, quiet):
    out = tmp_path / "run"
    save_checkpoint(out / "checkpoint.npz", Sequential(Linear(4, 3, seed=0)), epoch=1)
    err = fails(["evaluate", str(out / "checkpoint.npz")], capsys)
    assert "checkpoint" in err and "holds no model" in err
    err = fails(["train", "--out", str(out), "--resume", "--epochs", "2"], capsys)
    assert "--resume" in err and "holds no model" in err
    assert os.listdir(out) == ["checkpoint.npz"]


def test_edges_mistakes_report_one_line(tmp_path, capsys, monkeypatch):
    cases = [(["edges", str(tmp_path / "nope.png")], "IMAGE"),
             (["edges", __file__], "IMAGE"),
             (["edges", "--size", "0"], "--size"),
             (["edges", "--sigma", "0"], "--sigma"),
             (["edges", "--size", "16", "-o", str(tmp_path / "no" / "e.pgm")], "--output"),
             (["edges", "--size", "16", "-o", str(tmp_path / "e.xyz")], "--output"),
             (["edges", "--method", "canny", "--low", "5", "--high", "1", "--size", "16",
               "-o", str(tmp_path / "e.pgm")], "low")]
    for argv, option in cases:
        assert option in fails(argv, capsys), argv
    monkeypatch.setattr(edges, "_pillow", lambda: None)
    assert "Pillow" in fails(["edges", "--size", "16", "-o", str(tmp_path / "e.png")], capsys)
    assert os.listdir(tmp_path) == []


def test_bench_mistakes_report_one_line_before_any_timing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "Runner", None)       # reaching the run would be a TypeError
    (tmp_path / "README.md").write_text("no markers\n")
    for argv, option in [(["bench", "--threads", "0"], "--threads"),
                         (["bench", "--json", str(tmp_path / "no" / "x.json")], "--json"),
                         (["bench", "--readme", str(tmp_path / "missing.md")], "--readme"),
                         (["bench", "--readme", str(tmp_path / "README.md")], "--readme")]:
        assert option in fails(argv, capsys), argv


def test_a_user_mistake_in_a_real_process_is_one_line_and_status_2(tmp_path):
    (tmp_path / "README.md").write_text("# not a checkpoint\n")
    done = subprocess.run([sys.executable, "-m", "fastconv", "evaluate", "README.md"],
                          cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("fastconv evaluate: error: checkpoint: ")


def test_an_internal_error_keeps_its_traceback(tmp_path, mnist, quiet, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("a fault in fastconv")
    monkeypatch.setattr("fastconv.cli.train.fit", broken)
    _, argv = train(tmp_path, mnist)
    with pytest.raises(ValueError, match="a fault in fastconv"):
        main(argv)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_current_umask_reads_without_changing_it(umask_027):
    assert _files.current_umask() == 0o027
    assert _files.current_umask() == 0o027


def test_atomic_writes_follow_the_umask(tmp_path, umask_027):
    path = tmp_path / "data.bin"
    _files.write_atomic(path, b"bytes")
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_train_outputs_all_follow_the_umask(tmp_path, mnist, quiet, umask_027):
    out, argv = train(tmp_path, mnist, "--epochs", "1")
    assert main(argv) == 0
    modes = {name: os.stat(out / name).st_mode & 0o777 for name in os.listdir(out)}
    assert modes == {"checkpoint.npz": 0o640, "metrics.csv": 0o640, "metrics.json": 0o640}


def test_bench_progress_goes_to_stderr_and_the_report_alone_to_stdout(capsys, monkeypatch):
    class OneRow(bench.Runner):
        """Each group of cases adds one made-up row instead of timing anything."""
        def gemm(self, sizes):
            self.ceiling = 100.0
            self.add("GEMM", "made up", 1e-3, work=1e6)
        conv = thread_scaling = lambda self, names: None
        pooling = lenet = networks = sobel = sobel_magnitude = lambda self: None
    monkeypatch.setattr(bench, "Runner", OneRow)
    threads = fastconv.get_num_threads()
    try:
        assert main(["bench", "--threads", "1"]) == 0
    finally:
        fastconv.set_num_threads(threads)
    captured = capsys.readouterr()
    assert "run on 1 threads" in captured.err and "made up" in captured.err
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith("Measured ") and lines[2].startswith("| group |")
    assert lines[4].startswith("| GEMM | made up |") and len(lines) == 5


def test_filter_picture_diverges_from_zero_on_one_scale_with_a_colour_bar(tmp_path):
    pytest.importorskip("matplotlib")
    from fastconv.cli import plots
    weight = np.random.default_rng(0).standard_normal((6, 1, 5, 5)).astype(np.float32)
    weight[2, 0, 1, 1] = -3.5                       # the largest magnitude is negative
    fig = plots.filters_figure(weight)
    images = [image for ax in fig.axes for image in ax.get_images()]
    assert len(images) == 6
    for image in images:
        assert image.get_cmap().name == "RdBu_r"
        assert image.get_clim() == (-3.5, 3.5)
    assert len(fig.axes) == 7 and fig.axes[-1].get_ylabel() == "weight"   # the colour bar
    assert plots.plot_filters(weight, tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_train_a_resnet_with_augmentation_and_a_schedule_then_resume_and_evaluate(
        tmp_path, mnist, capsys, quiet):
    """--model, --augment and --schedule are stored with the run: --resume continues with
    them, the schedule spanning the first run's epochs (cosine over 1 epoch: 0 after it,
    back to the start rate after 2, as PyTorch's), and evaluate rebuilds the ResNet."""
    out, argv = train(tmp_path, mnist, "--model", "resnet20", "--augment", "--schedule",
                      "cosine", "--optimizer", "sgd", "--limit", "32")
    assert main(argv + ["--epochs", "1"]) == 0
    assert main(argv + ["--epochs", "2", "--resume"]) == 0
    state = load_checkpoint(out / "checkpoint.npz")
    settings = state["meta"]["settings"]
    assert (settings["model"], settings["augment"], settings["schedule"]) == (
        "resnet20", True, "cosine")
    assert state["model_config"]["class"] == "ResNet" and state["epoch"] == 2
    assert settings["schedule_epochs"] == 1
    assert float(state["optimizer"]["lr"]) == pytest.approx(0.05, rel=1e-12)
    capsys.readouterr()
    assert main(["evaluate", str(out / "checkpoint.npz")]) == 0
    assert "on mnist test images (32)" in capsys.readouterr().out


def test_train_autotune_tunes_the_network_into_the_cache_and_then_turns_it_off(
        tmp_path, mnist, quiet, monkeypatch):
    """--autotune: LeNet-5's two convolutions (at the batch size and at the last, smaller
    batch) are tuned and written to the cache file; autotuning is off again after."""
    from fastconv import autotune
    cache = tmp_path / "autotune.json"
    monkeypatch.setenv("FASTCONV_AUTOTUNE_CACHE", str(cache))
    autotune.clear_autotune()
    try:
        out, argv = train(tmp_path, mnist, "--autotune", "--limit", "40", "--epochs", "1")
        assert main(argv) == 0
        (section,) = json.loads(cache.read_text())["sections"].values()
        shapes = sorted(text.split(" stride")[0] for text in section)
        assert shapes == sorted(f"x({n}, {c}, {h}, {h}) w({k}, {c}, 5, 5)" for n in (32, 8)
                                for c, h, k in ((1, 32, 6), (6, 14, 16)))
        assert not fastconv.get_autotune()
    finally:
        autotune.clear_autotune()


def test_train_lenet5_refuses_colour_images_naming_the_model(tmp_path, capsys, quiet):
    err = fails(["train", "--model", "lenet5", "--dataset", "cifar10", "--out",
                 str(tmp_path / "run")], capsys)
    assert "--model lenet5 takes one-channel images" in err and "resnet20" in err
    assert not (tmp_path / "run").exists()


def test_convert_a_pytorch_resnet_then_evaluate_it(tmp_path, capsys, quiet, mnist):
    """A bare state dict and one under 'state_dict' both convert; the checkpoint holds
    PyTorch's weights, and mistakes are one-line errors naming the option."""
    torch = pytest.importorskip("torch")
    from fastconv.nn.torch_models import TorchResNet
    torch.manual_seed(0)
    theirs = TorchResNet(20, "A", in_channels=1)
    torch.save(theirs.state_dict(), tmp_path / "bare.pt")
    torch.save({"state_dict": theirs.state_dict(), "epoch": 3}, tmp_path / "wrapped.pt")
    for name in ("bare", "wrapped"):
        out = tmp_path / f"{name}.npz"
        assert main(["convert", str(tmp_path / f"{name}.pt"), "--model", "resnet20",
                     "--dataset", "mnist", "-o", str(out)]) == 0
        state = load_checkpoint(out)
        np.testing.assert_array_equal(state["model"]["layer2.0.body.conv1.weight"],
                                      theirs.layer2[0].conv1.weight.detach().numpy())
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "bare.npz"), "--data-dir", str(mnist)]) == 0
    assert "on mnist test images (32)" in capsys.readouterr().out
    assert "--output" in fails(["convert", str(tmp_path / "bare.pt"), "--model", "resnet20",
                                "--dataset", "mnist", "-o", str(tmp_path / "bare.npz")], capsys)
    err = fails(["convert", str(tmp_path / "bare.pt"), "--model", "resnet32", "--dataset",
                 "mnist", "-o", str(tmp_path / "other.npz")], capsys)
    assert "--model resnet32" in err and "missing layer1.3.conv1.weight" in err
    assert main(["convert", str(tmp_path / "bare.pt"), "--model", "resnet20", "--dataset",
                 "mnist", "--mean", "0.13", "--std", "0.31", "-o", str(tmp_path / "n.npz")]) == 0
    state = load_checkpoint(tmp_path / "n.npz")["model"]
    assert (state["input_mean"].tolist(), state["input_std"].tolist()) == ([0.13], [0.31])
    assert "--std" in fails(["convert", str(tmp_path / "bare.pt"), "--model", "resnet20",
                             "--dataset", "mnist", "--std", "0", "-o",
                             str(tmp_path / "z.npz")], capsys)
    err = fails(["convert", str(tmp_path / "bare.npz"), "--model", "resnet20", "-o",
                 str(tmp_path / "x.npz")], capsys)
    assert err.startswith("fastconv convert: error: file:")
    assert "--dataset" in fails(["evaluate", str(tmp_path / "bare.npz"), "--dataset",
                                 "cifar10"], capsys)


def test_tune_writes_each_convolution_of_a_network_to_the_cache(tmp_path, capsys, quiet,
                                                                monkeypatch):
    """LeNet-5 at two batch sizes: its two convolutions at each, tuned into the cache file
    and listed; autotuning is off again after; an empty cache setting is refused."""
    from fastconv import autotune
    cache = tmp_path / "autotune.json"
    monkeypatch.setenv("FASTCONV_AUTOTUNE_CACHE", str(cache))
    autotune.clear_autotune()
    try:
        assert main(["tune", "--model", "lenet5", "--batch-size", "4", "1", "--threads",
                     "1"]) == 0
        out = capsys.readouterr().out
        (section,) = json.loads(cache.read_text())["sections"].values()
        assert sorted(section) == sorted(
            f"x({n}, {c}, {h}, {h}) w({k}, {c}, 5, 5) stride(1, 1) padding(0, 0, 0, 0) "
            f"dilation(1, 1) groups 1 float32 threads 1 {fastconv._ext.simd_name()}"
            for n in (4, 1) for c, h, k in ((1, 32, 6), (6, 14, 16)))
        assert f"into {cache}" in out and all(text in out for text in section)
        assert not fastconv.get_autotune()
        monkeypatch.setenv("FASTCONV_AUTOTUNE_CACHE", "")
        assert "FASTCONV_AUTOTUNE_CACHE is empty" in fails(["tune", "--model", "lenet5"],
                                                           capsys)
    finally:
        autotune.clear_autotune()
