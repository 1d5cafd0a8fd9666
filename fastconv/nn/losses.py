"""Losses: softmax cross-entropy with its fused gradient."""
import math

import numpy as np

from .._checks import as_array, result_dtype

__all__ = ["softmax", "softmax_cross_entropy", "accuracy"]


def softmax(logits):
    """Row-wise softmax of (N, classes) scores, shifted by the row maximum so exp never
    overflows."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    loss = mean_i( log(sum_j exp(s_ij)) - s_i,y_i ), computed as a log-sum-exp of the
    scores shifted by their row maximum (stable for any magnitude). The gradient of
    softmax followed by cross-entropy fuses to ``(softmax(s) - onehot(y)) / N``.

    Parameters
    ----------
    logits : ndarray, shape (N, classes)
        Unnormalised scores (the last Linear layer's output).
    labels : array_like of int, shape (N,)
        Class indices in [0, classes).

    Returns
    -------
    loss : float
        NaN for an empty batch (N = 0), the mean over no samples, as in PyTorch.
    grad_logits : ndarray, shape (N, classes), logits' dtype
    """
    func = "softmax_cross_entropy"
    logits = as_array(logits, "logits", func)
    result_dtype(func, logits=logits)
    labels = as_array(labels, "labels", func)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{func}: labels must be an integer array of class indices, got "
                        f"dtype {labels.dtype}")
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"softmax_cross_entropy: expected logits (N, classes) and labels "
                         f"(N,), got {logits.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"softmax_cross_entropy: labels must be in [0, {logits.shape[1]}), "
                         f"got values in [{labels.min()}, {labels.max()}]")
    n = logits.shape[0]
    rows = np.arange(n)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_sum_exp = np.log(np.exp(shifted).sum(axis=1))
    log_probs_true = shifted[rows, labels] - log_sum_exp
    loss = float(-log_probs_true.mean()) if n else math.nan    # no samples: NaN, as PyTorch
    grad = np.exp(shifted - log_sum_exp[:, None])      # softmax, reusing the shifted scores
    grad[rows, labels] -= 1
    grad /= max(n, 1)
    return loss, grad


def accuracy(logits, labels):
    """Fraction of rows whose highest score is the label."""
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels))) if len(labels) else 0.0
