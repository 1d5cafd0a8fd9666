"""``python -m fastconv train`` and ``python -m fastconv evaluate``.

train writes into ``--out DIR``: ``checkpoint.npz`` (every epoch, atomically),
``metrics.csv`` and ``metrics.json`` (every epoch), and at the end ``curves.png``,
``conv1_filters.png`` and ``confusion_matrix.png`` when matplotlib is installed.
"""
import csv
import json
import os
import time

import zipfile

import numpy as np

from ..autotune import get_autotune, set_autotune
from ..data.augment import random_crop_flip
from ..nn.checkpoint import CheckpointError, load_checkpoint
from ..nn.models import LeNet5, MobileNetV2, ResNet, from_config
from ..nn.training import HISTORY_KEYS, confusion_matrix, evaluate, fit, format_epoch
from .options import (CommandError, existing_file, nonnegative_int, positive_float,
                      positive_int, thread_count)

CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAMES = ("metrics.csv", "metrics.json")
PLOT_NAMES = ("curves.png", "conv1_filters.png", "confusion_matrix.png")
#: The files of a run: a folder holding any of the first three holds a run.
RUN_FILES = (CHECKPOINT_NAME,) + METRICS_NAMES + PLOT_NAMES
DATASETS = ("mnist", "digits", "fashion-mnist", "cifar10")
MODELS = ("lenet5", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "mobilenetv2")
SCHEDULES = ("none", "cosine", "step")


def add_parser(subparsers):
    """Register the ``train`` and ``evaluate`` subcommands."""
    p = subparsers.add_parser(
        "train", help="train LeNet-5, a ResNet or MobileNetV2 on MNIST, Fashion-MNIST, "
                      "CIFAR-10 or scikit-learn's digits",
        description="Train a network. Writes a checkpoint and metrics every epoch into --out, "
                    "and plots at the end when matplotlib is installed.")
    p.add_argument("--model", choices=MODELS, default="lenet5",
                   help="lenet5 (default; one-channel datasets), resnet20 ... resnet110 (He et "
                        "al.'s CIFAR ResNets, option A) or mobilenetv2; the input channels "
                        "follow the dataset, 28x28 images are padded to 32x32")
    p.add_argument("--dataset", choices=DATASETS, default="mnist",
                   help="mnist, fashion-mnist, cifar10 (each downloaded once, cached) or "
                        "digits (scikit-learn's bundled 8x8 digits: offline; needs "
                        "fastconv[examples])")
    p.add_argument("--data-dir", default=None,
                   help="folder with the dataset's files (default: $FASTCONV_DATA/<dataset> "
                        "or ~/.cache/fastconv/<dataset>)")
    p.add_argument("--augment", action="store_true",
                   help="random crops (the standardised images padded by 4 pixels of "
                        "the mean colour) and horizontal flips of every training batch")
    p.add_argument("--schedule", choices=SCHEDULES, default="none",
                   help="learning-rate schedule over the epochs of the first run: none "
                        "(default), cosine (annealed towards 0 over them) or step (x0.1 "
                        "after every third of them); --resume keeps it")
    p.add_argument("--epochs", type=positive_int, default=5,
                   help="total epochs, at least 1 (default 5)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="default 64")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate (default: 2e-3 for adam, 0.05 for sgd)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                   help="adam (default) or sgd (Nesterov momentum 0.9)")
    p.add_argument("--activation", choices=("relu", "tanh"), default="relu")
    p.add_argument("--pool", choices=("max", "avg"), default="max")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seeds the initialisation and the shuffling (default 0)")
    p.add_argument("--threads", type=thread_count, default=None,
                   help="OpenMP threads for the kernels")
    p.add_argument("--autotune", action="store_true",
                   help="time the algorithms of each convolution on its first step and "
                        "keep the fastest (fastconv.set_autotune; the choices go to the "
                        "autotune cache file, for later runs)")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="train on the first N training images only")
    p.add_argument("--out", default=os.path.join("runs", "lenet"),
                   help="output folder (default runs/lenet); a folder that already holds "
                        "a run needs --resume or --overwrite")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help=f"continue from OUT/{CHECKPOINT_NAME} up to --epochs, with the "
                            f"settings stored in it; the result is bitwise identical to an "
                            f"uninterrupted run")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the run already in OUT")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_train)

    e = subparsers.add_parser(
        "evaluate", help="accuracy of a checkpoint on its dataset's test images",
        description="Load a checkpoint written by 'train' and report loss, accuracy and the "
                    "confusion matrix on the test split of the dataset it was trained on.")
    e.add_argument("checkpoint", type=existing_file,
                   help=f"a {CHECKPOINT_NAME} written by 'train'")
    e.add_argument("--dataset", choices=DATASETS, default=None,
                   help="default: the checkpoint's")
    e.add_argument("--data-dir", default=None, help="default: the checkpoint's")
    e.add_argument("--threads", type=thread_count, default=None)
    e.set_defaults(run=run_evaluate)


def load_split(dataset, data_dir, train):
    """(images, labels) of a dataset's training or test split. What keeps a dataset from
    loading (its files, its folder, a missing package) is the user's to fix: a
    CommandError naming the option."""
    from ..data import datasets
    if dataset == "digits":
        try:
            return datasets.load_digits(train=train)
        except ImportError as exc:
            raise CommandError(f"--dataset digits: {exc}") from None
    load = {"mnist": datasets.load_mnist, "fashion-mnist": datasets.load_fashion_mnist,
            "cifar10": datasets.load_cifar10}[dataset]
    try:
        return load(root=data_dir, train=train)
    except (OSError, ValueError) as exc:      # files missing, unreadable or corrupt
        raise CommandError(f"--data-dir: {exc}") from None


def dataset_channels(dataset):
    """The colour channels of a dataset's images."""
    return 3 if dataset == "cifar10" else 1


def build_model(name, dataset, seed, activation, pool):
    """The network --model names, for the dataset's images."""
    channels = dataset_channels(dataset)
    if name == "lenet5":
        if channels != 1:
            raise CommandError(f"--model lenet5 takes one-channel images; --dataset {dataset} "
                               f"has {channels} channels (try --model resnet20)")
        return LeNet5(seed=seed, activation=activation, pool=pool)
    if name == "mobilenetv2":
        return MobileNetV2(in_channels=channels, seed=seed)
    return ResNet(int(name[len("resnet"):]), in_channels=channels, seed=seed)


def augment_batch(batch, rng):
    """--augment: a random crop of the batch padded by 4 pixels, and random flips."""
    return random_crop_flip(batch, padding=4, rng=rng)


def make_schedule(name, epochs):
    """fit's schedule= for --schedule, or None."""
    from ..nn.optim import CosineAnnealingLR, StepLR
    if name == "cosine":
        return lambda optimizer: CosineAnnealingLR(optimizer, epochs)
    if name == "step":
        return lambda optimizer: StepLR(optimizer, max(1, epochs // 3), gamma=0.1)
    return None


def read_checkpoint(path, option):
    """load_checkpoint(path); a missing file or one that is no checkpoint is a
    CommandError naming `option`."""
    if not os.path.isfile(path):
        raise CommandError(f"{option}: there is no checkpoint {path}")
    if not zipfile.is_zipfile(path):     # NumPy's own complaint would be about pickles
        raise CommandError(f"{option}: {path} is not a checkpoint written by 'fastconv "
                           f"train' (not a .npz archive)")
    try:
        return load_checkpoint(path)
    except (OSError, CheckpointError) as exc:
        raise CommandError(f"{option}: {exc}") from None


def checkpoint_model(state, path, option):
    """The model a checkpoint describes; one that train did not write (another model, or
    none) is a CommandError naming `option`."""
    try:
        return from_config(state["model_config"])
    except (KeyError, ValueError) as exc:
        raise CommandError(f"{option}: {path} holds no model that 'fastconv train' writes "
                           f"({exc})") from None


def check_new_run(out, overwrite):
    """Refuse an --out that is a file, or a folder holding an earlier run (a checkpoint
    or metrics) unless --overwrite: a run is never replaced by accident."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise CommandError(f"--out: expected a folder, but {out} is a file")
    earlier = [name for name in (CHECKPOINT_NAME,) + METRICS_NAMES
               if os.path.exists(os.path.join(out, name))]
    if earlier and not overwrite:
        raise CommandError(f"--out: {out} already holds a run ({', '.join(earlier)}); give "
                           f"--resume to continue it, --overwrite to replace it, or another "
                           f"--out")


def write_metrics(out, history):
    """metrics.csv and metrics.json from the history so far."""
    rows = [dict(zip(HISTORY_KEYS, values)) for values in zip(*(history[k] for k in HISTORY_KEYS))]
    with open(os.path.join(out, "metrics.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_KEYS)
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(rows, f, indent=1)


def write_plots(out, model, history, val_images, val_labels):
    """The three PNG figures, or a note when matplotlib is missing."""
    from . import plots
    if not plots.have_matplotlib():
        print("note: matplotlib is not installed; skipping plots "
              "(pip install 'fastconv[examples]')")
        return
    plots.plot_history(history, os.path.join(out, "curves.png"))
    written = ["curves.png"]
    if isinstance(model, LeNet5):         # six one-channel filters: one row of images
        plots.plot_filters(model["conv1"].params()["weight"],
                           os.path.join(out, "conv1_filters.png"))
        written.append("conv1_filters.png")
    counts = confusion_matrix(val_labels, model.predict(val_images))
    plots.plot_confusion(counts, os.path.join(out, "confusion_matrix.png"))
    print(f"plots: {out}/" + ", ".join(written + ["confusion_matrix.png"]))


def _set_threads(threads):
    if threads is not None:
        from ..config import set_num_threads
        set_num_threads(threads)


def run_train(args):
    checkpoint = os.path.join(args.out, CHECKPOINT_NAME)
    settings = {key: getattr(args, key) for key in
                ("model", "dataset", "data_dir", "batch_size", "lr", "optimizer",
                 "activation", "pool", "seed", "limit", "augment", "schedule")}
    resume = None
    if args.resume:
        state = read_checkpoint(checkpoint, "--resume")
        if args.epochs <= state["epoch"]:
            raise CommandError(f"--epochs is the total to train up to, and {checkpoint} "
                               f"already holds {state['epoch']} epochs; expected more than "
                               f"{state['epoch']}, got {args.epochs}")
        settings.update({"model": "lenet5", "augment": False, "schedule": "none",
                         "schedule_epochs": args.epochs})
        settings.update(state["meta"].get("settings", {}))
        model = checkpoint_model(state, checkpoint, "--resume")
        resume = checkpoint
    else:
        check_new_run(args.out, args.overwrite)
        settings["schedule_epochs"] = args.epochs     # a resumed run keeps the schedule
        model = build_model(settings["model"], settings["dataset"], settings["seed"],
                            settings["activation"], settings["pool"])
    _set_threads(args.threads)
    images, labels = load_split(settings["dataset"], settings["data_dir"], train=True)
    if settings["limit"] is not None:
        images, labels = images[:settings["limit"]], labels[:settings["limit"]]
    val_images, val_labels = load_split(settings["dataset"], settings["data_dir"], train=False)
    # Only now, with every input loaded and checked, does the run touch --out.
    if args.overwrite:
        for name in RUN_FILES:
            if os.path.exists(os.path.join(args.out, name)):
                os.unlink(os.path.join(args.out, name))
    os.makedirs(args.out, exist_ok=True)
    if resume:
        print(f"resuming from {checkpoint} (epoch {state['epoch']}) with its settings")
    print(f"{settings['dataset']}: {len(images)} training and {len(val_images)} "
          f"validation images")
    model.summary()
    callbacks = [lambda epoch, h: write_metrics(args.out, h)]
    if args.no_progress:          # still one line per epoch
        callbacks.append(lambda epoch, h: print(
            f"epoch {epoch}/{args.epochs}  "
            + format_epoch({k: h[k][-1] for k in HISTORY_KEYS}), flush=True))
    start = time.perf_counter()
    autotuning = get_autotune()
    set_autotune(autotuning or args.autotune)
    try:
        history = fit(model, images, labels, epochs=args.epochs,
                      batch_size=settings["batch_size"], optimizer=settings["optimizer"],
                      lr=settings["lr"], validation_data=(val_images, val_labels),
                      seed=settings["seed"], progress=not args.no_progress,
                      checkpoint=checkpoint, resume=resume, meta={"settings": settings},
                      callbacks=callbacks,
                      augment=augment_batch if settings["augment"] else None,
                      schedule=make_schedule(settings["schedule"],
                                             settings["schedule_epochs"]))
    finally:
        set_autotune(autotuning)
    seconds = time.perf_counter() - start
    if history["epoch"]:
        print(f"validation accuracy {history['val_accuracy'][-1]:.2%} after "
              f"{history['epoch'][-1]} epochs ({seconds:.1f} s in this run, "
              f"{np.mean(history['images_per_s']):,.0f} training images/s)")
    print(f"checkpoint: {checkpoint}; metrics: {args.out}/metrics.csv, metrics.json")
    write_plots(args.out, model, history, val_images, val_labels)
    return 0


def run_evaluate(args):
    _set_threads(args.threads)
    state = read_checkpoint(args.checkpoint, "checkpoint")
    settings = state["meta"].get("settings", {})
    dataset = args.dataset or settings.get("dataset", "mnist")
    data_dir = args.data_dir or settings.get("data_dir")
    model = checkpoint_model(state, args.checkpoint, "checkpoint")
    model.load_state_dict(state["model"])
    if model.input_shape[0] != dataset_channels(dataset):
        raise CommandError(f"--dataset: {args.checkpoint} holds a network for images of "
                           f"{model.input_shape[0]} channels; {dataset} has "
                           f"{dataset_channels(dataset)}")
    images, labels = load_split(dataset, data_dir, train=False)
    loss, accuracy = evaluate(model, images, labels)
    counts = confusion_matrix(labels, model.predict(images))
    print(f"{args.checkpoint} (epoch {state['epoch']}) on {dataset} test images "
          f"({len(images)}): loss {loss:.4f}, accuracy {accuracy:.2%}")
    print("confusion matrix (rows: true class, columns: predicted):")
    print("      " + "".join(f"{j:>6}" for j in range(counts.shape[1])))
    for i, row in enumerate(counts):
        print(f"{i:>6}" + "".join(f"{c:>6}" for c in row))
    return 0
