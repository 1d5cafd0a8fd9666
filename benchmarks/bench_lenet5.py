"""Training throughput of LeNet-5 (images/s): fastconv beside an equivalent PyTorch model.

Both train the same architecture (the lecture's LeNet-5, ReLU, max pooling) on the same
32x32 batches of 64 with Adam, on the same number of threads (2 by default). One "step"
is forward, softmax cross-entropy, backward and the optimizer update.

    python benchmarks/bench_lenet5.py [--threads 2] [--batches 125]   # prints images/s
    pytest benchmarks/bench_lenet5.py --benchmark-only                # pytest-benchmark
"""
import argparse
import time

import numpy as np
import pytest

import fastconv
from fastconv.nn.losses import softmax_cross_entropy
from fastconv.nn.models import LeNet5
from fastconv.nn.optim import Adam

BATCH = 64
THREADS = 2


def make_batches(count, batch=BATCH, seed=0):
    """`count` batches of prepared input (batch, 1, 32, 32) float32 and labels (batch,)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, batch, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, (count, batch))
    return x, y


# -- fastconv ------------------------------------------------------------------------------
def fastconv_setup():
    model = LeNet5(seed=0).reuse_buffers()        # as fastconv.nn.fit trains
    return model, Adam(model, lr=1e-3)


def fastconv_step(model, optimizer, x, y):
    logits = model.forward(x)
    loss, grad = softmax_cross_entropy(logits, y)
    model.backward(grad, input_grad=False)
    optimizer.step()
    return loss


# -- PyTorch ---------------------------------------------------------------------------------
def torch_setup():
    import torch
    from torch import nn
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def torch_step(model, optimizer, x, y):
    import torch.nn.functional as F
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def torch_batches(x, y):
    import torch
    return torch.from_numpy(x), torch.from_numpy(y)


# -- threads -----------------------------------------------------------------------------------
class same_threads:
    """Run fastconv and torch on `n` threads inside the block; restore both after."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.saved = fastconv.get_num_threads()
        fastconv.set_num_threads(self.n)
        try:
            import torch
            self.saved_torch = torch.get_num_threads()
            torch.set_num_threads(self.n)
        except ImportError:
            self.saved_torch = None

    def __exit__(self, *exc):
        fastconv.set_num_threads(self.saved)
        if self.saved_torch is not None:
            import torch
            torch.set_num_threads(self.saved_torch)


# -- pytest-benchmark ------------------------------------------------------------------------
@pytest.fixture
def batches():
    return make_batches(4)


def test_fastconv_lenet5_train_step(benchmark, batches):
    x, y = batches
    model, optimizer = fastconv_setup()
    fastconv_step(model, optimizer, x[0], y[0])                 # warm-up
    with same_threads(THREADS):
        loss = benchmark(fastconv_step, model, optimizer, x[1], y[1])
    assert np.isfinite(loss)
    benchmark.extra_info["batch"] = BATCH
    benchmark.extra_info["threads"] = THREADS


def test_torch_lenet5_train_step(benchmark, batches):
    pytest.importorskip("torch")
    x, y = torch_batches(*batches)
    model, optimizer = torch_setup()
    torch_step(model, optimizer, x[0], y[0])
    with same_threads(THREADS):
        loss = benchmark(torch_step, model, optimizer, x[1], y[1])
    assert np.isfinite(loss)
    benchmark.extra_info["batch"] = BATCH
    benchmark.extra_info["threads"] = THREADS


# -- a whole epoch, printed -------------------------------------------------------------------
def images_per_second(step, model, optimizer, x, y, repeats=3):
    """Best of `repeats` passes over all batches (an epoch), in images per second."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for xb, yb in zip(x, y):
            step(model, optimizer, xb, yb)
        best = min(best, time.perf_counter() - start)
    return len(x) * x.shape[1] / best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--batches", type=int, default=125,
                        help="batches of 64 per timed epoch (125 = 8,000 images)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    x, y = make_batches(args.batches)
    results = {}
    with same_threads(args.threads):
        model, optimizer = fastconv_setup()
        fastconv_step(model, optimizer, x[0], y[0])
        results["fastconv"] = images_per_second(fastconv_step, model, optimizer, x, y,
                                                args.repeats)
        try:
            tx, ty = torch_batches(x, y)
            model, optimizer = torch_setup()
            torch_step(model, optimizer, tx[0], ty[0])
            results["torch"] = images_per_second(torch_step, model, optimizer, tx, ty,
                                                 args.repeats)
        except ImportError:
            print("torch is not installed: fastconv only")
    print(f"LeNet-5 training, batch {BATCH}, {args.threads} threads, "
          f"{args.batches * BATCH} images per epoch (best of {args.repeats}):")
    for name, rate in results.items():
        print(f"  {name:<9} {rate:10,.0f} images/s")
    if len(results) == 2:
        print(f"  fastconv / torch = {results['fastconv'] / results['torch']:.2f}")
    return results


if __name__ == "__main__":
    main()
