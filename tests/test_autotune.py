"""Autotuning (fastconv.autotune): each pass runs the algorithm timed fastest for the
problem, chosen once per problem, thread count and SIMD level; results equal the exact
reference; the switch, its environment variable and concurrent first calls."""
import json
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastconv
from fastconv import autotune, reference
from fastconv.plan import PASSES, plan_for_values, tuning_candidates
from fastconv._checks import conv_geometry
from fastconv.config import cpu_model
from conftest import needs_openmp, rel_err, subprocess_env, thread_count


@pytest.fixture(autouse=True)
def fresh_choices(tmp_path, monkeypatch):
    """Every test starts with nothing tuned, a cache file of its own (not there yet) and
    autotuning off, and leaves the process so."""
    monkeypatch.setenv("FASTCONV_AUTOTUNE_CACHE", str(tmp_path / "autotune.json"))
    autotune.clear_autotune()
    before = fastconv.get_autotune()
    fastconv.set_autotune(False)
    yield
    fastconv.set_autotune(before)
    autotune.clear_autotune()


@pytest.fixture
def timed(monkeypatch):
    """The candidate lists autotune.fastest was asked to time, in call order."""
    calls = []
    fastest = autotune.fastest

    def counting(candidates, run):
        calls.append(list(candidates))
        return fastest(candidates, run)
    monkeypatch.setattr(autotune, "fastest", counting)
    return calls


def geometry(x_shape, w_shape, **kwargs):
    return conv_geometry(x_shape, w_shape, kwargs.get("stride", 1), kwargs.get("padding", 0),
                         kwargs.get("dilation", 1), kwargs.get("groups", 1), "test")


CASES = [  # x shape, weight shape, conv arguments
    ((2, 32, 12, 12), (32, 32, 3, 3), dict(padding=1)),                 # Winograd applies
    ((2, 8, 11, 11), (8, 1, 3, 3), dict(stride=2, padding=1, groups=8)),  # depthwise
    ((3, 6, 9, 10), (4, 3, 2, 3), dict(dilation=2, groups=2)),          # grouped, dilated
]


@pytest.mark.parametrize("x_shape, w_shape, kwargs", CASES)
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_autotuned_passes_equal_the_reference(x_shape, w_shape, kwargs, dtype, tolerance):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    y = fastconv.conv2d(x, w, b, algorithm="autotune", **kwargs)
    assert rel_err(y, reference.conv2d(x, w, b, **kwargs)) < tolerance
    dy = rng.standard_normal(y.shape).astype(dtype)
    got = fastconv.conv2d_backward(dy, x, w, algorithm="autotune", **kwargs)
    want = reference.conv2d_backward(dy, x, w, **kwargs)
    assert all(rel_err(g, e) < tolerance for g, e in zip(got, want))


DIRECT_VARIANTS = {"forward": ["direct:by_pixels", "direct:by_filters"],
                   "backward_data": ["direct:gather", "direct:scatter"],
                   "backward_weight": ["direct:by_pixels", "direct:by_filters"]}


def test_candidates_are_the_algorithms_and_direct_variants_that_can_run_each_pass():
    winograd = tuning_candidates(geometry((2, 32, 12, 12), (32, 32, 3, 3), padding=1),
                                 np.dtype(np.float32))
    assert winograd == {name: DIRECT_VARIANTS[name] + ["im2col", "winograd"]
                        for name in PASSES}
    depthwise = tuning_candidates(geometry((2, 8, 11, 11), (8, 1, 3, 3), stride=2, groups=8),
                                  np.dtype(np.float32))
    assert depthwise == {name: DIRECT_VARIANTS[name] + ["im2col", "depthwise"]
                         for name in PASSES}


def test_the_scatter_form_is_a_candidate_only_where_it_fits():
    """Its whole-image buffers (8 MiB a thread at most) do not fit a 64 x 400 x 400 image."""
    large = tuning_candidates(geometry((1, 64, 400, 400), (8, 64, 3, 3), padding=1),
                              np.dtype(np.float32))
    assert large["backward_data"][:2] == ["direct:gather", "im2col"]


@pytest.mark.parametrize("choice", [0, 1])
def test_a_tuned_direct_variant_is_the_one_that_runs(monkeypatch, choice):
    """Autotuning picking the first or second direct variant of every pass: the plan
    forces it (conv_plan shows it), conv2d and conv2d_backward run it (the C counters),
    and the results equal the reference."""
    monkeypatch.setattr(autotune, "fastest", lambda candidates, run: candidates[choice])
    rng = np.random.default_rng(choice)
    x = rng.standard_normal((2, 24, 10, 10))
    w = rng.standard_normal((40, 24, 3, 3))
    plan = fastconv.conv_plan(x.shape, w.shape, stride=2, padding=1, dtype="float64",
                              algorithm="autotune")
    names = [DIRECT_VARIANTS[name][choice].split(":")[1] for name in PASSES]
    assert plan.forced == tuple(names) and plan.variants == tuple(names)
    assert [plan.run_name(name) for name in PASSES] == [
        DIRECT_VARIANTS[name][choice] for name in PASSES]
    before = fastconv._ext.conv_direct_variant_counts()
    y = fastconv.conv2d(x, w, stride=2, padding=1, algorithm="autotune")
    dy = rng.standard_normal(y.shape)
    got = fastconv.conv2d_backward(dy, x, w, stride=2, padding=1, algorithm="autotune")
    after = fastconv._ext.conv_direct_variant_counts()
    for name, variant in zip(PASSES, names):
        assert after[name][variant] == before[name][variant] + 1
    assert rel_err(y, reference.conv2d(x, w, stride=2, padding=1)) < 1e-12
    want = reference.conv2d_backward(dy, x, w, stride=2, padding=1)
    assert all(rel_err(g, e) < 1e-12 for g, e in zip(got, want))


def test_a_problem_is_timed_once_then_its_choice_is_kept(timed):
    """The first call times the candidates of its three passes; later calls, forward or
    backward, reuse the choice; the plan conv_plan shows is the one the calls run."""
    x = np.ones((2, 32, 12, 12), np.float32)
    w = np.ones((32, 32, 3, 3), np.float32)
    fastconv.conv2d(x, w, padding=1, algorithm="autotune")
    assert timed == [DIRECT_VARIANTS[name] + ["im2col", "winograd"] for name in PASSES]
    fastconv.conv2d(x, w, padding=1, algorithm="autotune")
    fastconv.conv2d_backward(np.ones((2, 32, 12, 12), np.float32), x, w, padding=1,
                             algorithm="autotune")
    plan = fastconv.conv_plan(x.shape, w.shape, padding=1, algorithm="autotune")
    assert len(timed) == 3
    assert all(getattr(plan, name) in ("direct", "im2col", "winograd") for name in PASSES)


@needs_openmp
def test_each_thread_count_is_tuned_on_its_own(timed):
    x = np.ones((2, 16, 10, 10), np.float32)
    w = np.ones((16, 16, 3, 3), np.float32)
    for n in (1, 2, 1):
        with thread_count(n):
            fastconv.conv2d(x, w, algorithm="autotune")
    assert len(timed) == 6                  # 3 passes x 2 thread counts, the third reused


def test_set_autotune_makes_auto_autotune(timed):
    x_shape, w_shape = (2, 32, 12, 12), (32, 32, 3, 3)
    assert not fastconv.get_autotune()
    fastconv.conv_plan(x_shape, w_shape, padding=1)
    assert timed == []
    fastconv.set_autotune(True)
    assert fastconv.get_autotune()
    auto = fastconv.conv_plan(x_shape, w_shape, padding=1)
    assert len(timed) == 3
    assert auto == fastconv.conv_plan(x_shape, w_shape, padding=1, algorithm="autotune")
    with pytest.raises(TypeError, match="set_autotune: enabled must be True or False, got 1"):
        fastconv.set_autotune(1)


def test_the_environment_variable_turns_it_on_at_import(tmp_path):
    code = "import fastconv; print(fastconv.get_autotune())"
    for value, expected in (("1", "True"), ("0", "False")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=subprocess_env(FASTCONV_AUTOTUNE=value), cwd=tmp_path,
                             check=True)
        assert out.stdout.strip() == expected


def test_values_that_could_overflow_run_direct_as_under_auto(monkeypatch):
    """A tuned plan is checked against the values as auto's is: with an inf in x, the
    passes tuned to Winograd run direct, whose NaN and inf reach only the outputs whose
    sums read them."""
    monkeypatch.setattr(autotune, "fastest", lambda candidates, run: candidates[-1])
    x = np.ones((1, 32, 8, 8), np.float32)
    w = np.ones((32, 32, 3, 3), np.float32)
    plan = fastconv.conv_plan(x.shape, w.shape, padding=1, algorithm="autotune")
    assert plan.forward == "winograd"
    x[0, 0, 0, 0] = np.inf
    assert plan_for_values(plan, "autotune", x, w).forward == "direct"
    y = fastconv.conv2d(x, w, padding=1, algorithm="autotune")
    assert np.isinf(y[0, :, :2, :2]).all() and np.isfinite(y[0, :, 2:, :]).all()


def test_empty_problems_are_not_timed(timed):
    y = fastconv.conv2d(np.ones((0, 4, 5, 5)), np.ones((4, 4, 3, 3)), algorithm="autotune")
    assert y.shape == (0, 4, 3, 3) and timed == []


def test_threads_that_meet_an_untuned_problem_share_one_tuning(timed):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 32, 12, 12)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    results = [None] * 4
    start = threading.Barrier(len(results))

    def call(i):
        start.wait()
        results[i] = fastconv.conv2d(x, w, padding=1, algorithm="autotune")
    workers = [threading.Thread(target=call, args=(i,)) for i in range(len(results))]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert len(timed) == 3
    assert all(np.array_equal(r, results[0]) for r in results)


# -- the cache file ----------------------------------------------------------------------------
X_SHAPE, W_SHAPE = (2, 32, 12, 12), (32, 32, 3, 3)


def tune_one():
    """Tune the module's example problem (padding 1); its plan."""
    return fastconv.conv_plan(X_SHAPE, W_SHAPE, padding=1, algorithm="autotune")


def cache_file():
    with open(autotune.cache_path(), encoding="utf-8") as f:
        return json.load(f)


def test_choices_reach_the_cache_file_and_a_new_process_starts_from_it(timed, tmp_path):
    plan = tune_one()
    assert len(timed) == 3
    content = cache_file()
    section = content["sections"][f"fastconv {fastconv.__version__} tuning "
                                  f"{autotune.TUNING_REVISION} on {cpu_model()}"]
    assert list(section.values()) == [[plan.run_name(name) for name in PASSES]]
    autotune.clear_autotune()                     # as a new process: nothing in memory
    assert tune_one() == plan and len(timed) == 3
    code = ("import fastconv\n"
            "from fastconv import autotune\n"
            "autotune.fastest = None   # tuning would fail: the file must answer\n"
            f"print(fastconv.conv_plan({X_SHAPE}, {W_SHAPE}, padding=1, "
            "algorithm='autotune').run_name('forward'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=subprocess_env(), cwd=tmp_path, check=True)
    assert out.stdout.strip() == plan.run_name("forward")


def test_a_new_version_revision_or_cpu_tunes_afresh_and_old_versions_are_dropped(
        timed, monkeypatch):
    tune_one()
    version = f"fastconv {fastconv.__version__} tuning {autotune.TUNING_REVISION}"
    old = f"{version} on {cpu_model()}"
    shipped = autotune._section
    assert shipped() == old
    monkeypatch.setattr(autotune, "_section", lambda: f"{version} on another CPU")
    autotune.clear_autotune()
    tune_one()
    assert len(timed) == 6
    assert set(cache_file()["sections"]) == {old, f"{version} on another CPU"}
    monkeypatch.setattr(autotune, "_section", shipped)     # with the next revision
    monkeypatch.setattr(autotune, "TUNING_REVISION", autotune.TUNING_REVISION + 1)
    autotune.clear_autotune()
    tune_one()
    assert len(timed) == 9
    assert set(cache_file()["sections"]) == {autotune._section()}
    monkeypatch.setattr(autotune, "_section", lambda: "fastconv 99.0 on another CPU")
    autotune.clear_autotune()
    tune_one()
    assert len(timed) == 12
    assert set(cache_file()["sections"]) == {"fastconv 99.0 on another CPU"}


@pytest.mark.parametrize("content, reason", [
    ("{not json", "is not JSON"),
    ('{"format": "something else", "sections": {}}', "is not a fastconv autotune cache"),
    ('[1, 2, 3]', "is not a fastconv autotune cache"),
])
def test_a_file_that_is_not_a_cache_is_ignored_with_a_warning_and_replaced(
        timed, content, reason):
    path = autotune.cache_path()
    with open(path, "w") as f:
        f.write(content)
    with pytest.warns(RuntimeWarning, match=f"ignoring {path}: it {reason}"):
        tune_one()
    assert len(timed) == 3 and cache_file()["format"] == autotune.CACHE_FORMAT


def test_entries_naming_algorithms_that_cannot_run_are_tuned_again(timed):
    tune_one()
    content = cache_file()
    for section in content["sections"].values():
        for key in section:
            section[key] = ["depthwise", "nonsense", 3]
    with open(autotune.cache_path(), "w") as f:
        json.dump(content, f)
    autotune.clear_autotune()
    plan = tune_one()
    assert len(timed) == 6 and plan.forward in ("direct", "im2col", "winograd")


def test_an_empty_setting_keeps_choices_in_memory_only(timed, monkeypatch, tmp_path):
    monkeypatch.setenv("FASTCONV_AUTOTUNE_CACHE", "")
    assert autotune.cache_path() is None
    tune_one()
    assert len(timed) == 3 and list(tmp_path.iterdir()) == []


def test_an_unwritable_cache_warns_and_keeps_the_choice_in_memory(timed, monkeypatch, tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("FASTCONV_AUTOTUNE_CACHE", str(blocker / "autotune.json"))
    with pytest.warns(RuntimeWarning) as caught:
        plan = tune_one()
    assert [str(w.message).split(" (")[0] for w in caught] == [
        f"fastconv autotune: ignoring {blocker / 'autotune.json'}: it cannot be read",
        f"fastconv autotune: cannot write {blocker / 'autotune.json'}"]
    assert tune_one() == plan and len(timed) == 3


def test_processes_tuning_at_once_keep_each_others_choices(tmp_path):
    """Four processes, each tuning two problems of its own into one file at the same time:
    the file ends with all eight choices (the lock serialises the read-merge-writes)."""
    code = ("import sys, fastconv\n"
            "i = int(sys.argv[1])\n"
            "for c in (2 * i + 1, 2 * i + 2):\n"
            "    fastconv.conv_plan((1, c, 6, 6), (c, c, 3, 3), algorithm='autotune')\n")
    env = subprocess_env(FASTCONV_AUTOTUNE_CACHE=str(tmp_path / "shared.json"))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], env=env, cwd=tmp_path)
             for i in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    content = json.loads((tmp_path / "shared.json").read_text())
    (section,) = content["sections"].values()
    assert sorted(int(k.split(", ")[1]) for k in section) == list(range(1, 9))


def test_conv_plan_states_what_a_strided_call_runs(monkeypatch, threads):
    """A 1x1 filter at stride 2 runs on the rows and columns its windows read
    (windows_geometry): conv_plan tunes that problem, as conv2d does, so one problem is
    tuned and the variant it states is the one that runs."""
    threads(1)
    monkeypatch.setattr(autotune, "fastest", lambda candidates, run: (
        "direct:scatter" if "direct:scatter" in candidates else candidates[0]))
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 4, 12, 12)), rng.standard_normal((8, 4, 1, 1))
    plan = fastconv.conv_plan(x.shape, w.shape, stride=2, dtype="float64",
                              algorithm="autotune")
    assert plan.geometry.input_shape == x.shape
    dy = rng.standard_normal((2, 8, 6, 6))
    before = fastconv._ext.conv_direct_variant_counts()["backward_data"]
    fastconv.conv2d_backward(dy, x, w, stride=2, algorithm="autotune")
    after = fastconv._ext.conv_direct_variant_counts()["backward_data"]
    ran = [name for name in after if after[name] > before[name]]
    assert ran == [plan.variant("backward_data")] and len(autotune.tuned()) == 1
