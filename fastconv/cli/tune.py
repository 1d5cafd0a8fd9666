"""Autotune a network's convolutions ahead of time: every convolution of one training step
and one inference pass of the network at each batch size is timed with each algorithm that
can run it, and the fastest goes to the autotune cache file (FASTCONV_AUTOTUNE_CACHE,
default ~/.cache/fastconv/autotune.json). Training and inference with autotuning on
(``fastconv.set_autotune(True)`` or FASTCONV_AUTOTUNE=1) then start tuned, at the same
thread count."""
import numpy as np

from .. import autotune
from ..config import get_num_threads
from .options import CommandError, positive_int, thread_count
from .train import DATASETS, MODELS, _set_threads, build_model, dataset_channels


def add_arguments(parser):
    parser.add_argument("--model", choices=MODELS, required=True, help="the network to tune")
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="the images it takes (their channels; default: mnist for "
                             "lenet5, cifar10 for the others)")
    parser.add_argument("--batch-size", type=positive_int, nargs="+", default=[64],
                        metavar="N", help="the batch sizes it runs at (default 64; e.g. "
                                          "128 1 for training and one-image inference)")
    parser.add_argument("--threads", type=thread_count, default=None,
                        help="OpenMP threads (the choices hold for this count)")


def run(args):
    if autotune.cache_path() is None:
        raise CommandError("FASTCONV_AUTOTUNE_CACHE is empty, so the choices would be kept "
                           "in memory only and lost: unset it or name a file")
    _set_threads(args.threads)
    dataset = args.dataset or ("mnist" if args.model == "lenet5" else "cifar10")
    model = build_model(args.model, dataset, seed=0, activation="relu", pool="max")
    fused = model.fuse()
    print(f"tuning {args.model} ({dataset_channels(dataset)}-channel images) on "
          f"{get_num_threads()} threads into {autotune.cache_path()}")
    before = autotune.get_autotune()
    autotune.set_autotune(True)
    try:
        for batch in args.batch_size:
            x = np.random.default_rng(0).standard_normal(
                (batch,) + tuple(model.input_shape)).astype(np.float32)
            logits = model.train().forward(x)
            model.backward(np.ones_like(logits) / logits.size, input_grad=False)
            fused.forward(x)
    finally:
        autotune.set_autotune(before)
    for key, passes in autotune.tuned().items():
        print(f"  {autotune.key_text(key)}: forward {passes[0]}, grad_x {passes[1]}, "
              f"grad_w {passes[2]}")
    return 0
