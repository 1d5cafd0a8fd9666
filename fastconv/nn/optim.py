"""Optimizers: SGD (momentum, Nesterov, weight decay) and Adam, each with a state_dict, and
learning-rate schedules (step, cosine, linear warm-up, in sequence).

An optimizer holds a model (anything with ``params()`` and ``grads()`` returning
``{name: array}``) and, on :meth:`Optimizer.step`, updates every parameter in place from
the gradients of the last backward pass. Its per-parameter buffers are keyed by parameter
name, so :meth:`Optimizer.state_dict` is a flat ``{name: array or number}`` that a
checkpoint stores without pickle. The update rules are PyTorch's (``torch.optim.SGD`` and
``torch.optim.Adam``), so results can be compared step for step.

The updates run in place, in one pass of C per parameter (src/optim.c), or for arrays
the C code does not take (non-contiguous) as NumPy operations into scratch arrays the
optimizer keeps; both do the plain expressions' operations in the same order, so they give
the same bits. A step of LeNet-5 thus allocates nothing: temporaries the size of the large
fc1 weight would cost fresh pages every step.
"""
import math

import numpy as np

from .. import _ext
from .._checks import as_bool, as_count, as_real_number

__all__ = ["Optimizer", "SGD", "Adam", "make_optimizer", "StepLR", "CosineAnnealingLR",
           "LinearLR", "SequentialLR"]


class Optimizer:
    """Base class: hyper-parameters, a step counter and per-parameter buffers.

    ``weight_decay`` adds ``weight_decay * param`` to each gradient (L2, as torch.optim);
    ``decay_biases_and_norms=False`` leaves the one-dimensional parameters (biases,
    BatchNorm's weight and bias) undecayed.
    """

    #: names of the per-parameter buffers, e.g. ("velocity",)
    buffer_names = ()

    def __init__(self, model, lr, weight_decay=0.0, decay_biases_and_norms=True):
        if not lr > 0:
            raise ValueError(f"{type(self).__name__}: lr must be > 0, got {lr!r}")
        if weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: weight_decay must be >= 0, "
                             f"got {weight_decay!r}")
        self.model = model
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        # Biases and normalisation scales and shifts are the one-dimensional parameters:
        # decaying them towards zero only constrains the model (the usual ResNet recipe
        # leaves them alone, as PyTorch users do with a second parameter group).
        self.decay_biases_and_norms = as_bool(decay_biases_and_norms,
                                              "decay_biases_and_norms", type(self).__name__)
        self.steps = 0
        self.buffers = {b: {} for b in self.buffer_names}
        self._scratch_store = {}      # (slot, dtype) -> flat array, never handed out

    def hyperparameters(self):
        """The optimizer's settings as a dict of numbers."""
        return {"lr": self.lr, "weight_decay": self.weight_decay}

    def step(self):
        """Update every parameter in place from its gradient."""
        grads = self.model.grads()
        self.steps += 1
        for name, param in self.model.params().items():
            grad = grads[name]
            if self.weight_decay and (param.ndim > 1 or self.decay_biases_and_norms):
                # L2 penalty, as torch.optim does:
                decayed = self._scratch("decay", param)       # grad + weight_decay * param
                np.multiply(param, self.weight_decay, out=decayed)
                grad = np.add(grad, decayed, out=decayed)
            self.update(name, param, grad)

    def update(self, name, param, grad):
        raise NotImplementedError

    def _scratch(self, slot, like):
        """A temporary array shaped like `like` (contents undefined): a view of one flat
        array per slot and dtype, grown to the largest parameter and kept."""
        key = (slot, like.dtype)
        flat = self._scratch_store.get(key)
        if flat is None or flat.size < like.size:
            flat = self._scratch_store[key] = np.empty(like.size, dtype=like.dtype)
        return flat[:like.size].reshape(like.shape)

    def _buffer(self, kind, name, like):
        """The buffer `kind` of parameter `name`, created as zeros on first use."""
        store = self.buffers[kind]
        if name not in store:
            store[name] = np.zeros_like(like)
        return store[name]

    def state_dict(self):
        """``{"type": ..., "steps": ..., <hyper-parameters>, "<buffer>/<param>": array}``."""
        state = {"type": type(self).__name__, "steps": self.steps, **self.hyperparameters()}
        for kind, store in self.buffers.items():
            state.update({f"{kind}/{name}": value.copy() for name, value in store.items()})
        return state

    def load_state_dict(self, state):
        """Restore from :meth:`state_dict`, checking type, names, shapes and dtypes."""
        kind = str(np.asarray(state.get("type", "")))
        if kind != type(self).__name__:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state is for "
                             f"{kind or 'an unknown optimizer'}")
        params = self.model.params()
        buffers = {b: {} for b in self.buffer_names}
        for key, value in state.items():
            if "/" not in key:
                continue
            buffer, name = key.split("/", 1)
            if buffer not in buffers or name not in params:
                raise KeyError(f"{type(self).__name__}.load_state_dict: unexpected entry "
                               f"{key!r} (no such buffer or parameter)")
            value = np.asarray(value)
            if value.shape != params[name].shape or value.dtype != params[name].dtype:
                raise ValueError(f"{type(self).__name__}.load_state_dict: {key} is "
                                 f"{value.dtype}{value.shape}, the parameter is "
                                 f"{params[name].dtype}{params[name].shape}")
            buffers[buffer][name] = value.copy()
        for key, current in self.hyperparameters().items():
            setattr(self, key, type(current)(np.asarray(state[key]).item()))
        self.steps = int(np.asarray(state["steps"]))
        self.buffers = buffers

    def __repr__(self):
        settings = ", ".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({settings})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and weight decay.

    With momentum m: ``v = m * v + g``; the step is ``lr * v`` (heavy ball), or
    ``lr * (g + m * v)`` with Nesterov (a look-ahead along the velocity).
    """

    buffer_names = ("velocity",)

    def __init__(self, model, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0,
                 decay_biases_and_norms=True):
        super().__init__(model, lr, weight_decay, decay_biases_and_norms)
        if momentum < 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {momentum!r}")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True needs a momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def hyperparameters(self):
        return {**super().hyperparameters(), "momentum": self.momentum,
                "nesterov": self.nesterov}

    def update(self, name, param, grad):
        first = bool(self.momentum) and name not in self.buffers["velocity"]
        velocity = self._buffer("velocity", name, param) if self.momentum else None
        if _one_pass_ok(param, grad, *([] if velocity is None else [velocity])):
            _ext.sgd_update(param.reshape(-1), None if velocity is None else velocity.reshape(-1),
                            grad.reshape(-1), self.momentum, self.lr, self.nesterov, first)
            return
        # The same operations in NumPy, for arrays the C kernel does not take.
        if self.momentum:
            if first:
                velocity[...] = grad                      # torch starts v at the gradient
            else:
                velocity *= self.momentum
                velocity += grad
            if self.nesterov:                             # grad + momentum * velocity
                ahead = self._scratch("a", param)
                np.multiply(velocity, self.momentum, out=ahead)
                grad = np.add(grad, ahead, out=ahead)
            else:
                grad = velocity
        step = self._scratch("b", param)                  # lr * grad
        param -= np.multiply(grad, self.lr, out=step)


class Adam(Optimizer):
    """Adam: per-parameter steps from bias-corrected running means of the gradient (m)
    and of its square (v): ``param -= lr * m_hat / (sqrt(v_hat) + eps)``."""

    buffer_names = ("m", "v")

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decay_biases_and_norms=True):
        super().__init__(model, lr, weight_decay, decay_biases_and_norms)
        self.beta1, self.beta2 = (float(b) for b in betas)
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas!r}")
        self.eps = float(eps)

    def hyperparameters(self):
        return {**super().hyperparameters(), "beta1": self.beta1, "beta2": self.beta2,
                "eps": self.eps}

    def update(self, name, param, grad):
        m = self._buffer("m", name, param)
        v = self._buffer("v", name, param)
        correction1, correction2 = 1 - self.beta1 ** self.steps, 1 - self.beta2 ** self.steps
        if _one_pass_ok(param, m, v, grad):
            _ext.adam_update(param.reshape(-1), m.reshape(-1), v.reshape(-1), grad.reshape(-1),
                             self.beta1, self.beta2, correction1, correction2, self.lr,
                             self.eps)
            return
        # The same operations in NumPy, for arrays the C kernel does not take.
        a, b = self._scratch("a", param), self._scratch("b", param)
        m *= self.beta1
        m += np.multiply(grad, 1 - self.beta1, out=a)     # (1 - beta1) * grad
        v *= self.beta2
        np.multiply(grad, 1 - self.beta2, out=a)          # (1 - beta2) * grad * grad
        v += np.multiply(a, grad, out=a)
        m_hat = np.divide(m, correction1, out=a)
        v_hat = np.divide(v, correction2, out=b)
        denominator = np.add(np.sqrt(v_hat, out=b), self.eps, out=b)
        step = np.multiply(m_hat, self.lr, out=a)         # lr * m_hat / denominator
        param -= np.divide(step, denominator, out=a)


def _one_pass_ok(param, *others):
    """Whether src/optim.c can update `param` in place: float32 or float64 arrays of one
    dtype and shape, C-contiguous (so the flat views it gets share their memory)."""
    if param.dtype not in (np.float32, np.float64) or not param.flags.c_contiguous:
        return False
    return all(o.dtype == param.dtype and o.shape == param.shape and o.flags.c_contiguous
               for o in others)


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def make_optimizer(optimizer, model, lr=None):
    """An optimizer from a name ("adam", "sgd"), an instance, or None (Adam).

    The named optimizers carry settings that train LeNet-5 on MNIST-style digits without
    tuning: "adam" is Adam with lr 2e-3 (twice PyTorch's default, which measurably helps
    in a 5-epoch budget), "sgd" is SGD with Nesterov momentum 0.9 and lr 0.05. `lr`
    overrides the learning rate.
    """
    if isinstance(optimizer, Optimizer):
        if lr is not None:
            optimizer.lr = float(lr)
        return optimizer
    name = "adam" if optimizer is None else str(optimizer).lower()
    if name == "adam":
        return Adam(model, lr=2e-3 if lr is None else lr)
    if name == "sgd":
        return SGD(model, lr=0.05 if lr is None else lr, momentum=0.9, nesterov=True)
    raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or an Optimizer, "
                     f"got {optimizer!r}")


# -- learning-rate schedules ----------------------------------------------------------------
class _Schedule:
    """Sets ``optimizer.lr`` from the epoch count, as torch.optim.lr_scheduler does:
    construction applies epoch 0's rate and each :meth:`step` (once per epoch, after the
    optimizer's steps) moves to the next epoch. The rate is a closed form of the epoch
    (:meth:`lr_at`), so a resumed run sets ``last_epoch`` and gets the same rates."""

    def __init__(self, optimizer, last_epoch=0):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: optimizer must be an Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        # The rate the optimizer had before any schedule changed it: schedules combined
        # (SequentialLR) all start from it.
        if not hasattr(optimizer, "initial_lr"):
            optimizer.initial_lr = optimizer.lr
        self.base_lr = optimizer.initial_lr
        self.last_epoch = as_count(last_epoch, "last_epoch", type(self).__name__, minimum=0)
        optimizer.lr = self.lr_at(self.last_epoch)

    def lr_at(self, epoch):
        raise NotImplementedError

    def step(self):
        """Move to the next epoch and set its learning rate; returns it."""
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)
        return self.optimizer.lr


class StepLR(_Schedule):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=0):
        self.step_size = as_count(step_size, "step_size", "StepLR")
        self.gamma = as_real_number(gamma, "gamma", "StepLR", low=0, low_open=True)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(_Schedule):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2, from base_lr
    at epoch 0 down to eta_min at epoch T_max (and back up beyond it, as PyTorch's)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=0):
        self.T_max = as_count(T_max, "T_max", "CosineAnnealingLR")
        self.eta_min = as_real_number(eta_min, "eta_min", "CosineAnnealingLR", low=0)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch):
        cosine = (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        return self.eta_min + (self.base_lr - self.eta_min) * cosine


class LinearLR(_Schedule):
    """lr = base_lr * factor, the factor going linearly from start_factor at epoch 0 to
    end_factor at epoch total_iters and staying there: a linear warm-up."""

    def __init__(self, optimizer, start_factor=1 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=0):
        self.start_factor = as_real_number(start_factor, "start_factor", "LinearLR", low=0,
                                           low_open=True, high=1)
        self.end_factor = as_real_number(end_factor, "end_factor", "LinearLR", low=0, high=1)
        self.total_iters = as_count(total_iters, "total_iters", "LinearLR")
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch):
        done = min(epoch, self.total_iters) / self.total_iters
        return self.base_lr * (self.start_factor + (self.end_factor - self.start_factor) * done)


class SequentialLR(_Schedule):
    """Schedules one after another: ``schedules[i]`` from epoch ``milestones[i - 1]`` on,
    counting its own epochs from 0 there (a warm-up, then a cosine decay).

    `schedules` is a list of schedules of this optimizer and `milestones` a list of
    increasing ints >= 1, one fewer than the schedules; both are checked here.
    """

    def __init__(self, optimizer, schedules, milestones, last_epoch=0):
        func = "SequentialLR"
        if not isinstance(schedules, (list, tuple)):
            raise TypeError(f"{func}: schedules must be a list of schedules, got "
                            f"{type(schedules).__name__} {schedules!r}")
        if not schedules:
            raise ValueError(f"{func}: schedules must hold at least one schedule, got "
                             f"{schedules!r}")
        for i, schedule in enumerate(schedules):
            if not isinstance(schedule, _Schedule):
                raise TypeError(f"{func}: schedules[{i}] must be a schedule (StepLR, "
                                f"CosineAnnealingLR, ...), got {type(schedule).__name__} "
                                f"{schedule!r}")
        if not isinstance(milestones, (list, tuple)):
            raise TypeError(f"{func}: milestones must be a list of ints, got "
                            f"{type(milestones).__name__} {milestones!r}")
        schedules = list(schedules)
        # Milestones are whole epochs: a float or a string is refused, not rounded or parsed.
        milestones = [as_count(m, f"milestones[{i}]", func) for i, m in enumerate(milestones)]
        if len(milestones) != len(schedules) - 1 or any(
                a >= b for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"{func}: expected {len(schedules) - 1} increasing "
                             f"milestones >= 1 for {len(schedules)} schedules, got "
                             f"{milestones}")
        if any(s.optimizer is not optimizer for s in schedules):
            raise ValueError("SequentialLR: every schedule must drive the same optimizer")
        self.schedules, self.milestones = schedules, milestones
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch):
        starts = [0] + self.milestones
        index = max(i for i, start in enumerate(starts) if start <= epoch)
        return self.schedules[index].lr_at(epoch - starts[index])
