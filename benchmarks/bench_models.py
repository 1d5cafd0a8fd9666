"""ResNet-20 and MobileNetV2: a training step beside PyTorch's, and inference after fuse()
beside PyTorch's and ONNX Runtime's, float32, the same threads for every contender
(benchmarks/conftest.py, 2 by default).

    pytest benchmarks/bench_models.py --benchmark-only      # timings, grouped per case
    fastconv bench                                          # the same cases, side by side

A training step is forward, cross-entropy, backward and an SGD update (momentum 0.9, weight
decay 5e-4) on the network's batch (ResNet-20: 128, MobileNetV2: 64) of 32x32x3 images.
"fastconv autotune" runs with fastconv.set_autotune(True) (the tuning call is the warm-up).
Inference is one eval-mode forward at batch 1 (latency) and 256 (throughput): fastconv's
fused network, PyTorch under inference_mode, and ONNX Runtime (onnxruntime and onnx
installed) running the PyTorch network exported to ONNX on the same intra-op threads. The
contenders share weights (fastconv loads PyTorch's), so each computes the same function.
"""
import functools

import pytest

from fastconv.cli.bench import (INFERENCE_BATCHES, NETWORKS, autotuned, inference_calls,
                                training_steps)
from conftest import THREADS

CONTENDERS = ["fastconv", "fastconv autotune", "torch", "onnxruntime"]


@functools.lru_cache(maxsize=None)
def inference_contenders(network, batch, torch):
    """{contender: its call or None}, built once per case (an ONNX export takes seconds)."""
    call, torch_call, ort_call = inference_calls(network, batch, torch, THREADS)
    return dict(zip(CONTENDERS, (call, autotuned(call), torch_call, ort_call)))


@pytest.mark.parametrize("network", list(NETWORKS))
@pytest.mark.parametrize("contender", CONTENDERS[:3])
def test_training_step(benchmark, torch, network, contender):
    step, torch_step = training_steps(network, torch)
    call = dict(zip(CONTENDERS, (step, autotuned(step), torch_step)))[contender]
    call()                                            # warm-up: buffers, plans, threads
    benchmark.group = f"{network} training step"
    benchmark.extra_info.update(threads=THREADS, batch=NETWORKS[network][0])
    benchmark(call)


@pytest.mark.parametrize("network", list(NETWORKS))
@pytest.mark.parametrize("batch", INFERENCE_BATCHES)
@pytest.mark.parametrize("contender", CONTENDERS)
def test_inference(benchmark, torch, network, batch, contender):
    call = inference_contenders(network, batch, torch)[contender]
    if call is None:
        pytest.skip(f"{contender} is not installed")
    call()
    benchmark.group = f"{network} inference, batch {batch}"
    benchmark.extra_info.update(threads=THREADS, batch=batch)
    benchmark(call)
