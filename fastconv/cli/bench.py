"""fastconv bench: the key benchmark cases side by side, in one process.

Every contender runs on the same threads (default 2) in the same run; times are medians.
Writes a Markdown table (time, speed-up vs PyTorch and vs naive loops, GFLOP/s or GB/s,
% of the matrix-multiply ceiling), optionally JSON and a PNG chart, and can replace the
table in README.md between the markers ``<!-- bench:start -->`` and ``<!-- bench:end -->``.

    fastconv bench --quick                 # about 3 minutes on 2 cores
    fastconv bench --full --json out.json --png chart.png --readme README.md

(``fastconv bench`` is ``python -m fastconv.cli.bench``.)
"""
import contextlib
import datetime
import io
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np

import fastconv
from fastconv import reference
from fastconv._checks import conv_geometry
from fastconv.config import cpu_model
from fastconv.cli.options import (ArgumentParser, CommandError, existing_file, output_file,
                                  positive_int, run_command, thread_count)
from fastconv.plan import winograd_supports

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"

# name: (N, C, H, W, K, R, stride, padding)
CONV_SHAPES = {
    "LeNet-5 conv1 64x1x32x32 -> 6 @5x5": (64, 1, 32, 32, 6, 5, 1, 0),
    "LeNet-5 conv2 64x6x14x14 -> 16 @5x5": (64, 6, 14, 14, 16, 5, 1, 0),
    "lecture 32x3x39x39 -> 10 @3x3": (32, 3, 39, 39, 10, 3, 1, 0),
    "lecture 32x10x37x37 -> 20 @5x5 s2": (32, 10, 37, 37, 20, 5, 2, 0),
    "8x64x56x56 -> 64 @3x3 p1": (8, 64, 56, 56, 64, 3, 1, 1),
    "8x128x28x28 -> 128 @3x3 p1": (8, 128, 28, 28, 128, 3, 1, 1),
    "8x256x14x14 -> 256 @3x3 p1": (8, 256, 14, 14, 256, 3, 1, 1),
}
POOL_SHAPES = [(64, 6, 28, 28), (64, 16, 10, 10), (8, 64, 112, 112)]


# The networks beyond LeNet-5 in the bench: name -> (training batch, fastconv's class and
# arguments, PyTorch's twin class name in fastconv.nn.torch_models).
NETWORKS = {"ResNet-20": (128, "ResNet", dict(depth=20), "TorchResNet"),
            "MobileNetV2": (64, "MobileNetV2", {}, "TorchMobileNetV2")}
INFERENCE_BATCHES = (1, 256)


def network_twins(name, torch, seed=0):
    """fastconv's network `name` and PyTorch's with the same weights (None without PyTorch)."""
    from fastconv import nn as fnn
    _, cls, kwargs, torch_cls = NETWORKS[name]
    ours = getattr(fnn, cls)(seed=seed, **kwargs)
    if torch is None:
        return ours, None
    from fastconv.nn import torch_models
    torch.manual_seed(seed)
    theirs = getattr(torch_models, torch_cls)(**kwargs)
    ours.load_torch_state_dict(theirs.state_dict())
    return ours, theirs


def training_steps(name, torch, seed=0):
    """(fastconv's step, PyTorch's or None) on network `name` with its training batch of
    random 32x32x3 images: forward, cross-entropy, backward, SGD (momentum 0.9, weight
    decay 5e-4), each as its trainer runs it."""
    from fastconv.nn import SGD, softmax_cross_entropy
    batch = NETWORKS[name][0]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    ours, theirs = network_twins(name, torch, seed)
    ours.reuse_buffers().train()                  # as fastconv.nn.fit trains
    opt = SGD(ours, lr=0.1, momentum=0.9, weight_decay=5e-4)

    def step():
        _, grad = softmax_cross_entropy(ours.forward(x), y)
        ours.backward(grad, input_grad=False)
        opt.step()
    if theirs is None:
        return step, None
    theirs.train()
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def torch_step():
        topt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(theirs(xt), yt).backward()
        topt.step()
    return step, torch_step


def inference_calls(name, batch, torch, threads, seed=0):
    """(fastconv, PyTorch, ONNX Runtime) eval-mode forward passes of network `name` on a
    batch of random images: fastconv after fuse(), PyTorch under inference_mode, ONNX
    Runtime (when installed) on the PyTorch network exported to ONNX, on `threads`
    intra-op threads. A missing contender is None."""
    x = np.random.default_rng(seed).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    ours, theirs = network_twins(name, torch, seed)
    ours = ours.fuse()

    def call():
        ours.forward(x)
    if theirs is None:
        return call, None, None
    theirs.eval()
    xt = torch.from_numpy(x)

    def torch_call():
        with torch.inference_mode():
            theirs(xt)
    return call, torch_call, onnx_runtime_call(theirs, x, threads, torch)


def inference_note(batch, t_fc, t_ort):
    """The note of an inference row: images/s, and ONNX Runtime's time when it ran."""
    note = f"{batch / t_fc:,.0f} images/s"
    if t_ort:
        note += f"; ONNX Runtime {t_ort * 1e3:.3f} ms, fastconv {t_ort / t_fc:.2f}x"
    return note


def lenet_twins(torch, seed=0):
    """fastconv's LeNet-5 and PyTorch's (an nn.Sequential, None without PyTorch) with the
    same weights."""
    from fastconv.nn.models import LeNet5
    ours = LeNet5(seed=seed)
    if torch is None:
        return ours, None
    nn = torch.nn
    theirs = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
                           nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120),
                           nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    params = ours.params()
    with torch.no_grad():
        for index, name in ((0, "conv1"), (3, "conv2"), (7, "fc1"), (9, "fc2"), (11, "fc3")):
            theirs[index].weight.copy_(torch.from_numpy(params[f"{name}.weight"]))
            theirs[index].bias.copy_(torch.from_numpy(params[f"{name}.bias"]))
    return ours, theirs


def onnx_runtime_call(module, x, threads, torch):
    """A call running PyTorch `module` exported to ONNX on input `x` in ONNX Runtime with
    `threads` intra-op threads, or None when onnxruntime or onnx is not installed."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime
    except ImportError:
        return None
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.from_numpy(x), buffer, dynamo=False,
                          input_names=["x"], output_names=["logits"])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(buffer.getvalue(), options,
                                           providers=["CPUExecutionProvider"])

    def ort_call():
        session.run(None, {"x": x})
    return ort_call


def autotuned(fn):
    """fn, called with autotuning on (fastconv.set_autotune), the setting restored after."""
    def call():
        before = fastconv.get_autotune()
        fastconv.set_autotune(True)
        try:
            fn()
        finally:
            fastconv.set_autotune(before)
    return call


def other_times(times, chosen):
    """The times of the algorithms auto did not choose, for a note: "im2col 1.234 ms; ..."."""
    return "; ".join(f"{a} {t * 1e3:.3f} ms" for a, t in times.items() if a != chosen)


def median_times(fns, budget, turns=8, warm_s=0.005):
    """Median wall times of the contenders fns over about `budget` seconds each, taken in
    turns: fastconv's and PyTorch's calls, or one and two threads. On a busy host, timing
    one contender after the other lets one meet the slow moments the other missed; in
    turns, they share them, and their ratio is steadier. Each turn first calls its
    contender untimed for warm_s seconds, so that its caches and threads are warm again
    after the other contender ran."""
    times = [[] for _ in fns]
    for _ in range(turns):
        for fn, ts in zip(fns, times):
            for seconds, timed in ((warm_s, False), (budget / turns, True)):
                start = time.perf_counter()
                while True:
                    t0 = time.perf_counter()
                    fn()
                    if timed:
                        ts.append(time.perf_counter() - t0)
                    if time.perf_counter() - start >= seconds:
                        break
    return [float(np.median(ts)) for ts in times]


@contextlib.contextmanager
def busy_neighbour(threads):
    """A CPU-bound neighbour for the duration of the block: `threads` processes, each one
    thread spinning in Python, as another program busy on the same cores would be."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(threads)]
    try:
        time.sleep(0.2)                   # running, not starting up
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def median_time(fn, budget, min_reps=5, max_reps=200):
    """Median wall time of fn() over repeats filling about `budget` seconds."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def blas_threads(n):
    """Limit NumPy's BLAS to n threads (threadpoolctl), so the ceiling uses our cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


CEILING_N = 2048


def matmul_ceiling(threads, budget):
    """(GFLOP/s, seconds) of NumPy's float32 2048^3 matmul on `threads` threads: the
    matrix-multiply ceiling every rate is compared with, measured in the same session."""
    n = CEILING_N
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    with blas_threads(threads):
        t = median_time(lambda: a @ b, budget, min_reps=3)
    return 2 * n ** 3 / t / 1e9, t


def try_torch(threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


class Runner:
    def __init__(self, threads, budget, naive):
        self.threads = threads
        self.budget = budget
        self.naive = naive
        self.torch = try_torch(threads)
        self.rows = []
        self.ceiling = None

    def versus(self, fastconv_fn, torch_fn):
        """(fastconv's time, PyTorch's or None): medians, the two timed in turn."""
        if torch_fn is None:
            return median_time(fastconv_fn, self.budget), None
        return tuple(median_times([fastconv_fn, torch_fn], self.budget))

    def add(self, group, case, fastconv_s, torch_s=None, naive_s=None, work=None, unit="GFLOP/s",
            note=""):
        rate = work / fastconv_s / 1e9 if work else None
        row = dict(group=group, case=case, fastconv_ms=fastconv_s * 1e3,
                   torch_ms=None if torch_s is None else torch_s * 1e3,
                   naive_ms=None if naive_s is None else naive_s * 1e3,
                   vs_torch=None if torch_s is None else torch_s / fastconv_s,
                   vs_naive=None if naive_s is None else naive_s / fastconv_s,
                   rate=rate, unit=unit, note=note)
        if unit == "GFLOP/s" and rate is not None and self.ceiling:
            row["pct_ceiling"] = 100 * rate / self.ceiling
        self.rows.append(row)
        progress(f"  {group:15s} {case:42s} {fastconv_s * 1e3:9.3f} ms"
                 + (f"  x{row['vs_torch']:.2f} vs torch" if torch_s else ""))

    # -- the matrix-multiply ceiling and our GEMM
    def gemm(self, sizes):
        n = CEILING_N
        self.ceiling, t_np = matmul_ceiling(self.threads, self.budget)
        a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
        b = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
        c = np.empty((n, n), np.float32)
        t_fc = median_time(lambda: fastconv._ext.gemm(c, a, b, False), self.budget, min_reps=3)
        self.add("GEMM", "2048^3 float32 (NumPy matmul = ceiling)", t_fc, work=2 * n ** 3,
                 note=f"NumPy {t_np * 1e3:.2f} ms = {self.ceiling:.0f} GFLOP/s")
        for m, k, nn in sizes:
            a = np.random.default_rng(0).standard_normal((m, k)).astype(np.float32)
            b = np.random.default_rng(1).standard_normal((k, nn)).astype(np.float32)
            c = np.empty((m, nn), np.float32)
            torch_mm = None
            if self.torch is not None:
                at, bt = self.torch.from_numpy(a), self.torch.from_numpy(b)

                def torch_mm():
                    at @ bt
            t_fc, t_t = self.versus(lambda: fastconv._ext.gemm(c, a, b, False), torch_mm)
            self.add("GEMM", f"{m}x{k} @ {k}x{nn}", t_fc, t_t, work=2 * m * k * nn)

    # -- convolution forward and backward
    def conv(self, names):
        for name in names:
            N, C, H, W, K, R, s, p = CONV_SHAPES[name]
            rng = np.random.default_rng(0)
            x = rng.standard_normal((N, C, H, W)).astype(np.float32)
            w = rng.standard_normal((K, C, R, R)).astype(np.float32)
            b = rng.standard_normal(K).astype(np.float32)
            geom = conv_geometry(x.shape, w.shape, s, p, 1, 1, "bench")
            dy = rng.standard_normal(geom.output_shape).astype(np.float32)
            plan = fastconv.conv_plan(x.shape, w.shape, s, p)
            tuned = fastconv.conv_plan(x.shape, w.shape, s, p, algorithm="autotune")
            algo, algo_b = plan.forward, plan.backward_data
            winograd_w = plan.backward_weight == "winograd"
            torch_f = torch_b = None
            if self.torch is not None:
                F = self.torch.nn.functional
                xt, wt, bt = (self.torch.from_numpy(a) for a in (x, w, b))
                xg, wg, bg = (self.torch.from_numpy(a).requires_grad_() for a in (x, w, b))
                yg = F.conv2d(xg, wg, bg, s, p)
                dyt = self.torch.from_numpy(dy)

                def torch_f():
                    F.conv2d(xt, wt, bt, s, p)

                def torch_b():
                    xg.grad = wg.grad = bg.grad = None
                    self.torch.autograd.backward(yg, dyt, retain_graph=True)
            # auto (the fastconv column) is timed in turn with PyTorch; every other algorithm
            # that applies goes in the note, so the table shows whether the choice was right.
            # (auto may take grad_w from Winograd F(4x4, 3x3): then every explicit algorithm
            # goes in the backward note.)
            t_f, tt_f = self.versus(lambda: fastconv.conv2d(x, w, b, s, p), torch_f)
            t_b, tt_b = self.versus(lambda: fastconv.conv2d_backward(dy, x, w, s, p), torch_b)
            fwd = {algo: t_f}
            bwd = {} if winograd_w else {algo_b: t_b}   # Winograd's grad_w: auto is none of them
            for a in ("direct", "im2col") + (("winograd",) if winograd_supports(geom) else ()):
                if a not in fwd:
                    fwd[a] = median_time(lambda: fastconv.conv2d(x, w, b, s, p, algorithm=a),
                                         self.budget)
                if a not in bwd:
                    bwd[a] = median_time(
                        lambda: fastconv.conv2d_backward(dy, x, w, s, p, algorithm=a), self.budget)
            naive_f = None
            if self.naive:
                # The loops run on one image; the time is scaled to the batch.
                norm = dict(stride=geom.stride, padding=geom.padding, dilation=geom.dilation)
                x1 = x[:1]
                t1 = median_time(lambda: reference.conv2d(x1, w, b, **norm), 0, min_reps=1,
                                 max_reps=1)
                naive_f = t1 * N
            self.add("conv forward", name, t_f, tt_f, naive_f, work=geom.flops(),
                     note=f"auto -> {algo}, autotune -> {tuned.run_name('forward')}; "
                     + other_times(fwd, algo)
                     + ("; naive: 1 image x N" if naive_f else ""))
            self.add("conv backward", name, t_b, tt_b, work=2 * geom.flops(),
                     note=f"grad_x + grad_w + grad_b; auto -> {algo_b}"
                     + (" (grad_w winograd)" if winograd_w else "")
                     + f", autotune -> {tuned.run_name('backward_data')} "
                     + f"(grad_w {tuned.run_name('backward_weight')}); "
                     + other_times(bwd, None if winograd_w else algo_b))

    # -- how the large layers scale from one thread to all of them
    def thread_scaling(self, names):
        if self.threads < 2:
            return
        for name in names:
            N, C, H, W, K, R, s, p = CONV_SHAPES[name]
            rng = np.random.default_rng(0)
            x = rng.standard_normal((N, C, H, W)).astype(np.float32)
            w = rng.standard_normal((K, C, R, R)).astype(np.float32)
            geom = conv_geometry(x.shape, w.shape, s, p, 1, 1, "bench")

            def on(threads):
                def call():
                    fastconv.set_num_threads(threads)
                    fastconv.conv2d(x, w, None, s, p)
                return call
            try:
                t_n, t_1 = median_times([on(self.threads), on(1)], self.budget)
            finally:
                fastconv.set_num_threads(self.threads)
            self.add("threads", f"{name} forward", t_n, work=geom.flops(),
                     note=f"1 thread {t_1 * 1e3:.3f} ms: {t_1 / t_n:.2f}x on {self.threads} threads")

    # -- pooling, against a NumPy copy of the input (the bandwidth yardstick)
    def pooling(self):
        for shape in POOL_SHAPES:
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            moved = x.nbytes * 1.25   # read x, write y (a quarter of x)
            t_copy = median_time(lambda: x.copy(), self.budget)
            for kind in ("max", "avg"):
                fwd = getattr(fastconv, f"{kind}_pool2d")
                bwd = getattr(fastconv, f"{kind}_pool2d_backward")
                # each backward uses what its forward saved, as training does: PyTorch's
                # max pooling its indices, fastconv's its compact argmax
                saved = ({"argmax": fwd(x, 2, return_argmax=True)[1]} if kind == "max"
                         else {})
                y = fwd(x, 2)
                dy = np.ones_like(y)
                torch_f = torch_b = None
                if self.torch is not None:
                    tfun = getattr(self.torch.nn.functional, f"{kind}_pool2d")
                    xt = self.torch.from_numpy(x)
                    xg = self.torch.from_numpy(x).requires_grad_()
                    yg = tfun(xg, 2)
                    dyt = self.torch.from_numpy(dy)

                    def torch_f():
                        tfun(xt, 2)

                    def torch_b():
                        xg.grad = None
                        self.torch.autograd.backward(yg, dyt, retain_graph=True)
                t_f, tt_f = self.versus(lambda: fwd(x, 2), torch_f)
                t_b, tt_b = self.versus(lambda: bwd(dy, x, 2, **saved), torch_b)
                case = f"{kind} 2x2 {'x'.join(map(str, shape))}"
                self.add("pool forward", case, t_f, tt_f, work=moved, unit="GB/s",
                         note=f"NumPy copy {t_copy * 1e3:.3f} ms")
                self.add("pool backward", case, t_b, tt_b, work=moved * 2, unit="GB/s",
                         note="from the saved argmax (PyTorch: its indices)" if saved else "")

    # -- LeNet-5: a training step (forward, backward, SGD update), batch 64, and eval-mode
    # inference at batch 1 (latency) and 256 (throughput) against PyTorch and ONNX Runtime
    def lenet(self):
        from fastconv.nn.losses import softmax_cross_entropy
        from fastconv.nn.optim import SGD
        rng = np.random.default_rng(0)
        x = rng.standard_normal((64, 1, 32, 32)).astype(np.float32)
        y = rng.integers(0, 10, 64)
        model, net = lenet_twins(self.torch)
        model.reuse_buffers()                     # as fastconv.nn.fit trains
        opt = SGD(model, lr=0.01, momentum=0.9)

        def step():
            logits = model.forward(x)
            _, grad = softmax_cross_entropy(logits, y)
            model.backward(grad, input_grad=False)
            opt.step()
        tstep = None
        if net is not None:
            nn = self.torch.nn
            topt = self.torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
            xt, yt = self.torch.from_numpy(x), self.torch.from_numpy(y)

            def tstep():
                topt.zero_grad()
                loss = nn.functional.cross_entropy(net(xt), yt)
                loss.backward()
                topt.step()
        t_fc, t_t = self.versus(step, tstep)
        self.add("LeNet-5", "training step, batch 64", t_fc, t_t,
                 note=f"{64 / t_fc:,.0f} images/s" + (f" vs {64 / t_t:,.0f}" if t_t else ""))
        t_alone = median_time(step, self.budget)
        with busy_neighbour(2):
            t_beside = median_time(step, 2 * self.budget)
        self.add("LeNet-5", "training step beside a busy program", t_beside,
                 note=f"2 busy threads in other processes; alone {t_alone * 1e3:.3f} ms: "
                      f"{t_beside / t_alone:.2f}x its time alone")
        model, net = lenet_twins(self.torch)
        model.eval()
        for batch in INFERENCE_BATCHES:
            xb = rng.standard_normal((batch, 1, 32, 32)).astype(np.float32)
            calls = [lambda: model.forward(xb)]
            if net is not None:
                net.eval()
                xt = self.torch.from_numpy(xb)

                def torch_call():
                    with self.torch.inference_mode():
                        net(xt)
                ort_call = onnx_runtime_call(net, xb, self.threads, self.torch)
                calls += [torch_call] + ([ort_call] if ort_call else [])
            t_fc, *t_peers = median_times(calls, self.budget)
            self.add("LeNet-5", f"inference, batch {batch}", t_fc,
                     t_peers[0] if t_peers else None,
                     note=inference_note(batch, t_fc, t_peers[1] if len(t_peers) > 1 else None))

    # -- ResNet-20 and MobileNetV2: a training step, and inference after fuse() at batch 1
    # (latency) and 256 (throughput) against PyTorch and ONNX Runtime
    def networks(self):
        # Four times the budget of a kernel: a network's call lasts milliseconds (batch 1) to
        # a second, and four contenders take turns, each meeting the others' idle threads.
        budget = 4 * self.budget
        for name in NETWORKS:
            batch = NETWORKS[name][0]
            step, torch_step = training_steps(name, self.torch)
            calls = [step, autotuned(step)] + ([torch_step] if torch_step else [])
            t_auto, t_tuned, *t_t = median_times(calls, budget, turns=4)
            t_t = t_t[0] if t_t else None
            for label, t_fc in (("", t_auto), (" (autotune)", t_tuned)):
                self.add("network", f"{name} training step, batch {batch}{label}", t_fc, t_t,
                         note=f"{batch / t_fc:,.0f} images/s"
                         + (f" vs {batch / t_t:,.0f}" if t_t else ""))
            for batch in INFERENCE_BATCHES:
                call, torch_call, ort_call = inference_calls(name, batch, self.torch,
                                                             self.threads)
                calls = [call, autotuned(call)] + [f for f in (torch_call, ort_call) if f]
                t_auto, t_tuned, *t_peers = median_times(calls, budget, turns=4)
                t_t = t_peers[0] if torch_call else None
                t_ort = t_peers[-1] if ort_call else None
                for label, t_fc in (("", t_auto), (" (autotune)", t_tuned)):
                    self.add("network", f"{name} inference, batch {batch}{label}", t_fc, t_t,
                             note="fused; " + inference_note(batch, t_fc, t_ort))

    # -- edge filter: Sobel along one axis on a 1024x1024 float32 image
    def sobel(self):
        img = np.random.default_rng(0).random((1024, 1024)).astype(np.float32)
        torch_sobel = None
        if self.torch is not None:
            k = self.torch.tensor([[[[1, 0, -1], [2, 0, -2], [1, 0, -1]]]],
                                  dtype=self.torch.float32)
            it = self.torch.from_numpy(img)[None, None]

            def torch_sobel():
                self.torch.nn.functional.conv2d(it, k, padding=1)
        t_fc, t_t = self.versus(lambda: fastconv.filters.sobel(img, axis=1), torch_sobel)
        others = []
        try:
            import cv2
            cv2.setNumThreads(self.threads)
            t_cv = median_time(lambda: cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3), self.budget)
            others.append(f"OpenCV {t_cv * 1e3:.3f} ms")
        except ImportError:
            pass
        try:
            from skimage.filters import sobel_v
            t_sk = median_time(lambda: sobel_v(img), self.budget)
            others.append(f"scikit-image {t_sk * 1e3:.3f} ms")
        except ImportError:
            pass
        try:
            from scipy.ndimage import sobel as scipy_sobel
            t_sp = median_time(lambda: scipy_sobel(img, axis=1), self.budget)
            others.append(f"SciPy {t_sp * 1e3:.3f} ms")
        except ImportError:
            pass
        note = "; ".join(others)
        self.add("edge filter", "Sobel 1024x1024 float32", t_fc, t_t, work=2 * 9 * 1024 * 1024,
                 note=note)

    # -- edge filter: the Sobel magnitude beside OpenCV's (cv2.Sobel along each axis into
    #    float32, then cv2.magnitude), of float32 and uint8 images
    def sobel_magnitude(self):
        try:
            import cv2
            cv2.setNumThreads(self.threads)
        except ImportError:
            cv2 = None
        rng = np.random.default_rng(0)
        for side in (1024, 4096):
            for kind in ("float32", "uint8"):
                img = (rng.random((side, side), dtype=np.float32) if kind == "float32"
                       else rng.integers(0, 256, (side, side), dtype=np.uint8))

                def fc(img=img):
                    # float32 out, as OpenCV's CV_32F; a uint8 image is read as it is
                    return fastconv.filters.sobel(img, dtype=np.float32)
                if cv2 is None:
                    t_fc, note = median_time(fc, self.budget), ""
                else:
                    def opencv(img=img):
                        return cv2.magnitude(cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3),
                                             cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3))
                    t_fc, t_cv = median_times([fc, opencv], self.budget)
                    note = f"OpenCV {t_cv * 1e3:.3f} ms: fastconv {t_cv / t_fc:.2f}x OpenCV"
                self.add("edge filter", f"Sobel magnitude {side}x{side} {kind}", t_fc,
                         work=2 * 2 * 9 * side * side, note=note)


def fmt(value, spec, suffix=""):
    """A table cell: the value formatted, or "-" when there is none."""
    return "-" if value is None else format(value, spec) + suffix


def markdown(rows, meta):
    lines = [f"Measured {meta['date']} on {meta['cpu']}, {meta['threads']} threads, "
             f"fastconv {meta['version']} ({meta['simd']}), PyTorch {meta['torch']}, "
             f"NumPy {meta['numpy']}; float32, medians. Matmul ceiling (NumPy float32 2048^3): "
             f"{fmt(meta['ceiling'], '.0f')} GFLOP/s.",
             "",
             "| group | case | fastconv ms | PyTorch ms | vs PyTorch | vs naive | rate | % ceiling | note |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        rate = f"{r['rate']:.1f} {r['unit']}" if r["rate"] else "-"
        lines.append(f"| {r['group']} | {r['case']} | {r['fastconv_ms']:.3f} | "
                     f"{fmt(r['torch_ms'], '.3f')} | {fmt(r['vs_torch'], '.2f', 'x')} | "
                     f"{fmt(r['vs_naive'], ',.0f', 'x')} | {rate} | "
                     f"{fmt(r.get('pct_ceiling'), '.0f', '%')} | {r['note']} |")
    return "\n".join(lines) + "\n"


def chart(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart", file=sys.stderr)
        return
    rows = [r for r in rows if r["vs_torch"]]
    labels = [f"{r['group']}: {r['case']}" for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.3 * len(rows) + 1.5))
    ax.barh(range(len(rows)), [r["vs_torch"] for r in rows],
            color=["tab:green" if r["vs_torch"] >= 1 else "tab:red" for r in rows])
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("speed-up over PyTorch (higher is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def readme_parts(path):
    """(text before the table, text after it) of the README at `path`; a file without the
    markers, or none, is a CommandError naming --readme."""
    try:
        with open(path) as f:
            text = f.read()
    except (OSError, ValueError) as exc:       # unreadable, or not text
        raise CommandError(f"--readme: cannot read {path} as text ({exc})") from None
    if README_START not in text or README_END not in text:
        raise CommandError(f"--readme: {path} has no {README_START} ... {README_END} "
                           f"markers to put the table between")
    head, rest = text.split(README_START, 1)
    return head, rest.split(README_END, 1)[1]


def update_readme(path, table):
    head, tail = readme_parts(path)
    with open(path, "w") as f:
        f.write(head + README_START + "\n" + table + README_END + tail)


def add_arguments(parser):
    """The options of ``fastconv bench`` / ``python -m fastconv.cli.bench``."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short timing budget (default)")
    mode.add_argument("--full", action="store_true", help="longer timing budget per case")
    parser.add_argument("--threads", type=thread_count,
                        default=os.environ.get("FASTCONV_BENCH_THREADS", "2"),
                        help="threads for every contender (default 2, or $FASTCONV_BENCH_THREADS)")
    parser.add_argument("--markdown", metavar="PATH", type=output_file,
                        help="write the table here (default: print)")
    parser.add_argument("--json", metavar="PATH", type=output_file,
                        help="write all rows and metadata as JSON")
    parser.add_argument("--png", metavar="PATH", type=output_file,
                        help="write a chart of the speed-ups (matplotlib)")
    parser.add_argument("--readme", metavar="PATH", type=existing_file,
                        help="replace the table in this README")


def progress(line):
    """A progress line: stderr, so that stdout carries the report alone (``> table.md``)."""
    print(line, file=sys.stderr, flush=True)


def run(args):
    if args.readme:
        readme_parts(args.readme)        # a README without the markers fails before the run
    fastconv.set_num_threads(args.threads)
    runner = Runner(args.threads, budget=1.0 if args.full else 0.25, naive=True)
    progress(f"fastconv bench: {'full' if args.full else 'quick'} run on {args.threads} threads")
    runner.gemm([(64, 576, 3136), (128, 1152, 784), (256, 2304, 196), (6, 25, 784)])
    runner.conv(list(CONV_SHAPES))
    runner.thread_scaling([name for name in CONV_SHAPES if CONV_SHAPES[name][1] >= 64])
    runner.pooling()
    runner.lenet()
    runner.networks()
    runner.sobel()
    runner.sobel_magnitude()
    meta = dict(date=datetime.date.today().isoformat(), cpu=cpu_model(), threads=args.threads,
                version=fastconv.__version__, simd=fastconv.get_simd(), numpy=np.__version__,
                torch=runner.torch.__version__ if runner.torch else "not installed",
                ceiling=runner.ceiling)
    table = markdown(runner.rows, meta)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    else:
        print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, rows=runner.rows), f, indent=1)
    if args.png:
        chart(runner.rows, args.png)
    if args.readme:
        update_readme(args.readme, table)
    return 0


def main(argv=None):
    parser = ArgumentParser(prog="python -m fastconv.cli.bench",
                            description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.run = run
    return run_command(args, parser.prog)


if __name__ == "__main__":
    sys.exit(main())
