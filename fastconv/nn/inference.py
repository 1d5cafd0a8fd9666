"""Batched inference shared by the models and the trainer."""
import numpy as np

from .._checks import as_count

__all__ = ["predict_logits"]


def predict_logits(model, x, batch_size=500, func="predict_logits"):
    """The model's outputs for prepared inputs `x`, in eval mode (nothing is kept for
    backward), `batch_size` (an int >= 1) images at a time; the model's mode is restored
    after. func names the caller in errors."""
    batch_size = as_count(batch_size, "batch_size", func)
    was_training = model.training
    model.eval()
    try:
        out = [model.forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0,) + model.output_shape((0,) + x.shape[1:])[1:], dtype=x.dtype)
    return np.concatenate(out)
