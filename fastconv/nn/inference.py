"""Batched inference shared by the models and the trainer."""
import numpy as np

from .._checks import as_count

__all__ = ["predict_logits"]


def predict_logits(model, x, batch_size=500, func="predict_logits", prepare=None):
    """The model's outputs for inputs `x`, in eval mode (nothing is kept for backward),
    `batch_size` (an int >= 1) images at a time; the model's mode is restored after.
    prepare, when given, makes each batch of x the model's input: raw images are prepared
    one batch at a time, since preparing them all first would hold a float copy of the
    whole set (800 MB for 200,000 digits), and fresh memory costs more than the network's
    first layers. func names the caller in errors."""
    batch_size = as_count(batch_size, "batch_size", func)
    prepare = np.asarray if prepare is None else prepare
    if np.ndim(x) == 0:
        x = prepare(x)          # not a batch: prepare says why (else len() below does)
    was_training = model.training
    model.eval()
    try:
        out = [model.forward(prepare(x[i:i + batch_size]))
               for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    if not out:
        empty = prepare(x[:0])
        return np.zeros((0,) + model.output_shape(empty.shape)[1:], dtype=empty.dtype)
    return np.concatenate(out)
