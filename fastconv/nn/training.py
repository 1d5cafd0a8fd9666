"""Training: :func:`fit` (mini-batch gradient descent with metrics, progress, checkpoints
and exact resume) and :func:`evaluate`.

One training step is the whole story of backpropagation::

    logits = model.forward(x_batch)                        # (B, 10)
    loss, grad = softmax_cross_entropy(logits, y_batch)    # grad = dLoss/dlogits
    model.backward(grad, input_grad=False)                 # fills every layer's grads()
    optimizer.step()                                       # params -= f(grads)
"""
import contextlib
import math
import sys
import time

import numpy as np

from .._checks import as_count
from .checkpoint import load_checkpoint, save_checkpoint
from .inference import predict_logits
from .losses import softmax_cross_entropy
from .optim import _Schedule, make_optimizer
from ..data.preprocessing import is_prepared

__all__ = ["fit", "evaluate", "predict_logits", "confusion_matrix"]

HISTORY_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "images_per_s",
                "seconds")


def _prepare(model, images):
    """Network input for `images`: the model's own preprocessing when it has one."""
    prepare = getattr(model, "prepare", None)
    return prepare(images) if prepare is not None else np.asarray(images)


@contextlib.contextmanager
def _reusing_buffers(model):
    """Inside the block the model's layers keep their activations and gradients from step
    to step (:meth:`fastconv.nn.Layer.reuse_buffers`: the same bits, no fresh memory
    to fault in every step); after it, the model is as the caller had it."""
    before = getattr(model, "reusing_buffers", None)
    if before is None:                       # a model without the option trains as is
        yield
        return
    model.reuse_buffers(True)
    try:
        yield
    finally:
        model.reuse_buffers(before)


def evaluate(model, images, labels, batch_size=500):
    """Mean cross-entropy loss and accuracy of `model` on raw or prepared images.

    Returns
    -------
    (loss, accuracy) : (float, float)
    """
    labels = np.asarray(labels, dtype=np.int64)
    logits = predict_logits(model, images, batch_size, "evaluate",
                            prepare=getattr(model, "prepare", None))
    loss, _ = softmax_cross_entropy(logits, labels)
    return loss, float(np.mean(logits.argmax(axis=1) == labels))


def confusion_matrix(true_labels, predicted, classes=10):
    """counts[i, j] = number of images of class i predicted as class j."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(true_labels, dtype=np.int64),
                       np.asarray(predicted, dtype=np.int64)), 1)
    return counts


class _Progress:
    """A progress bar over one epoch: tqdm when installed, else one plain text line
    rewritten in place (at most twice a second)."""

    def __init__(self, total, description, enabled, file=None):
        self.enabled, self.total, self.description = enabled, total, description
        self.file = file or sys.stderr
        self.done, self.last_print = 0, 0.0
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=total, desc=description, unit="img", leave=True,
                                file=self.file, dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, n, loss, accuracy, images_per_s):
        self.done += n
        if not self.enabled:
            return
        text = f"loss {loss:.4f}  acc {accuracy:6.2%}  {images_per_s:,.0f} img/s"
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix_str(text, refresh=False)
            return
        now = time.perf_counter()
        if now - self.last_print >= 0.5 or self.done >= self.total:
            self.last_print = now
            print(f"\r{self.description}  {self.done:>{len(str(self.total))}}/{self.total}"
                  f"  {text}", end="", file=self.file, flush=True)

    def close(self, summary):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(summary)
            self.bar.close()
        else:
            print(f"\r{self.description}  {self.total}/{self.total}  {summary}",
                  file=self.file, flush=True)


def format_epoch(row):
    """One line of an epoch's metrics (a row of the history)."""
    text = f"loss {row['loss']:.4f}  acc {row['accuracy']:6.2%}"
    if row.get("val_loss") is not None:
        text += f"  val_loss {row['val_loss']:.4f}  val_acc {row['val_accuracy']:6.2%}"
    return text + f"  {row['images_per_s']:,.0f} img/s"


def fit(model, x, y, *, epochs=5, batch_size=64, optimizer=None, lr=None,
        validation_data=None, seed=None, shuffle=True, callbacks=(), progress=True,
        checkpoint=None, resume=None, meta=None, augment=None, schedule=None):
    """Train `model` on images `x` with labels `y` by mini-batch gradient descent.

    The defaults (Adam, lr 2e-3, batch 64, He initialisation, inputs standardised with the
    training images' statistics) train LeNet-5 on MNIST-style digits without tuning.

    Parameters
    ----------
    model
        A network with ``forward``/``backward``/``params``/``grads``/``train``/``eval``,
        e.g. :class:`fastconv.nn.LeNet5`.
    x : ndarray
        Raw images ((N, 28, 28) uint8 0..255, or any (N, H, W) digits up to 32x32) or
        prepared network input ((N, 1, 32, 32) float). For raw images, a model with
        ``fit_preprocessing`` learns the input standardisation from them and keeps it, so
        ``model.predict`` later applies the same preprocessing.
    y : array_like of int, shape (N,)
        Labels 0..9.
    epochs : int
        Total number of epochs (a resumed run continues up to this number).
    batch_size : int
    optimizer : {"adam", "sgd"}, Optimizer or None
        None is Adam (lr 2e-3); "sgd" is Nesterov momentum 0.9, lr 0.05.
    lr : float, optional
        Learning rate, overriding the optimizer's default.
    validation_data : (images, labels), optional
        Evaluated after every epoch (val_loss, val_accuracy).
    seed : int, optional
        Seeds the shuffling (the model's initialisation has its own seed).
    shuffle : bool
        Reshuffle the training set every epoch.
    callbacks : sequence of callables
        Each is called as ``callback(epoch, history)`` after every epoch.
    progress : bool
        Show a progress bar (tqdm if installed, else a text line) on stderr.
    checkpoint : str, optional
        Path of a ``.npz`` checkpoint rewritten (atomically) after every epoch.
    resume : str, optional
        Checkpoint to continue from: model, optimizer, shuffling state, the model's own
        generators (Dropout's), epoch and history are restored, so the result is bitwise
        identical to an uninterrupted run.
    meta : dict, optional
        JSON-serialisable information stored in the checkpoints.
    augment : callable, optional
        ``augment(batch, rng) -> batch``: varies each training batch of prepared images
        (e.g. :func:`fastconv.data.random_crop_flip`), drawing from fit's seeded generator;
        it returns an array of the batch's shape.
    schedule : callable, optional
        ``schedule(optimizer) -> schedule`` making a learning-rate schedule for the
        optimizer it is given (e.g. ``lambda o: CosineAnnealingLR(o, epochs)``); it steps
        after every epoch, and a resumed run starts it at the epoch it resumes from.
        fit checks both before it trains, and what augment returns before a step uses it.

    Returns
    -------
    dict
        The history: lists ``epoch``, ``loss``, ``accuracy`` (training, averaged over the
        epoch), ``val_loss``, ``val_accuracy`` (None without validation data),
        ``images_per_s`` (training throughput) and ``seconds`` per epoch.
    """
    epochs = as_count(epochs, "epochs", "fit", minimum=0)
    batch_size = as_count(batch_size, "batch_size", "fit")
    labels = np.asarray(y, dtype=np.int64)
    if len(labels) != len(x):
        raise ValueError(f"fit: {len(x)} images but {len(labels)} labels")
    if augment is not None and not callable(augment):
        raise TypeError(f"fit: augment must be a callable augment(batch, rng) -> batch, or "
                        f"None, got {type(augment).__name__} {augment!r}")
    if schedule is not None and not callable(schedule):
        raise TypeError(f"fit: schedule must be a callable schedule(optimizer) -> schedule "
                        f"(e.g. lambda o: CosineAnnealingLR(o, epochs)), or None, got "
                        f"{type(schedule).__name__} {schedule!r}")
    optimizer = make_optimizer(optimizer, model, lr)
    # Made before a checkpoint's optimizer state is loaded: the schedule starts from the
    # rate the optimizer was configured with, not from the scheduled one the checkpoint
    # holds; and a bad schedule fails before the model changes.
    if schedule is not None:
        schedule = _made_schedule(schedule, optimizer)
    if not is_prepared(x) and hasattr(model, "fit_preprocessing"):
        model.fit_preprocessing(x)
    rng = np.random.default_rng(seed)
    history = {key: [] for key in HISTORY_KEYS}
    start_epoch = 0
    if resume is not None:
        state = load_checkpoint(resume)
        model.load_state_dict(state["model"])
        if state["model_rng_state"] is not None:
            _restore_generators(model, state["model_rng_state"], resume)
        if state["optimizer"]:
            optimizer.load_state_dict(state["optimizer"])
        if state["rng_state"]:
            rng.bit_generator.state = state["rng_state"]
        start_epoch = state["epoch"]
        history.update({k: list(v) for k, v in state["history"].items() if k in history})

    if schedule is not None:
        schedule.last_epoch = start_epoch
        optimizer.lr = schedule.lr_at(start_epoch)
    inputs = _prepare(model, x)
    n = len(inputs)
    steps = math.ceil(n / batch_size)
    with _reusing_buffers(model):
        _run_epochs(model, inputs, labels, optimizer, rng, history, start_epoch, epochs,
                    batch_size, steps, shuffle, validation_data, progress, checkpoint, meta,
                    callbacks, augment, schedule)
    return history


def _made_schedule(schedule, optimizer):
    """schedule(optimizer), which must be a learning-rate schedule of that optimizer."""
    made = schedule(optimizer)
    if not isinstance(made, _Schedule):
        raise TypeError(f"fit: schedule(optimizer) must return a learning-rate schedule "
                        f"(StepLR, CosineAnnealingLR, ...), got {type(made).__name__}")
    if made.optimizer is not optimizer:
        raise ValueError("fit: schedule(optimizer) returned a schedule of another optimizer; "
                         "it must set the rate of the optimizer it is given")
    return made


def _augmented(augment, batch, rng):
    """augment(batch, rng), which must be an array of the batch's shape (the network's
    input), checked before the model sees it."""
    out = augment(batch, rng)
    expected = f"fit: augment(batch, rng) must return an array of the batch's shape " \
               f"{batch.shape}"
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{expected}, got {type(out).__name__}")
    if out.shape != batch.shape:
        raise ValueError(f"{expected}, got shape {out.shape}")
    return out


def _restore_generators(model, states, path):
    """Set the generators the model draws from (Dropout's) to the states a checkpoint
    saved, so the resumed run draws the masks the uninterrupted one would; the names
    must match, as those of the parameters do."""
    own = model.generators() if hasattr(model, "generators") else {}
    if set(states) != set(own):
        raise ValueError(f"fit: resume={path} holds generator states for {sorted(states)}, "
                         f"the model draws from {sorted(own)}")
    for name, generator in own.items():
        try:
            generator.bit_generator.state = states[name]
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"fit: resume={path}: the saved state of generator {name} does "
                             f"not fit it ({exc})") from None


def _run_epochs(model, inputs, labels, optimizer, rng, history, start_epoch, epochs,
                batch_size, steps, shuffle, validation_data, progress, checkpoint, meta,
                callbacks, augment, schedule):
    """fit's loop over epochs and batches (arguments as fit has prepared them)."""
    n = len(inputs)
    # One array takes every batch's images in turn (np.take into it), as the layers keep
    # theirs: a new 256 KB batch per step would be fresh pages every step.
    batch_store = np.empty((min(batch_size, n),) + inputs.shape[1:], dtype=inputs.dtype)
    for epoch in range(start_epoch, epochs):
        order = rng.permutation(n) if shuffle else np.arange(n)
        model.train()
        bar = _Progress(n, f"epoch {epoch + 1}/{epochs}", progress)
        loss_sum = correct = seen = 0
        start = time.perf_counter()
        for step in range(steps):
            batch = order[step * batch_size:(step + 1) * batch_size]
            # mode="clip": the indices are a permutation, in range; "raise" would buffer
            xb = np.take(inputs, batch, axis=0, out=batch_store[:len(batch)], mode="clip")
            yb = labels[batch]
            if augment is not None:
                xb = _augmented(augment, xb, rng)
            logits = model.forward(xb)
            loss, grad = softmax_cross_entropy(logits, yb)
            model.backward(grad, input_grad=False)          # no use for dL/d(images)
            optimizer.step()
            loss_sum += loss * len(batch)
            correct += int(np.sum(logits.argmax(axis=1) == yb))
            seen += len(batch)
            bar.update(len(batch), loss_sum / seen, correct / seen,
                       seen / (time.perf_counter() - start))
        seconds = time.perf_counter() - start
        row = {"epoch": epoch + 1, "loss": loss_sum / max(seen, 1),
               "accuracy": correct / max(seen, 1), "val_loss": None, "val_accuracy": None,
               "images_per_s": seen / seconds if seconds > 0 else float("inf"),
               "seconds": seconds}
        if validation_data is not None:
            row["val_loss"], row["val_accuracy"] = evaluate(model, *validation_data)
        for key in HISTORY_KEYS:
            history[key].append(row[key])
        bar.close(format_epoch(row))
        if schedule is not None:
            schedule.step()
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, rng, epoch + 1, history, meta)
        for callback in callbacks:
            callback(epoch + 1, history)
