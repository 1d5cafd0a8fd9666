"""fastconv.nn: layers, models, losses, optimizers, training and checkpoints.

Every layer has ``forward(x)``, ``backward(grad_out)`` (returns the input gradient and
fills ``grads()``), ``params()``, ``train()`` / ``eval()``, ``state_dict()`` /
``load_state_dict()`` and ``reuse_buffers()``::

    from fastconv.nn import LeNet5, fit
    model = LeNet5(seed=0)
    history = fit(model, images, labels, epochs=5)
"""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .layers import (AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dropout, Flatten,
                     GlobalAvgPool2D, Identity, Layer, Linear, MaxPool2D, ReLU, Residual,
                     Sequential, Tanh, ZeroPadShortcut)
from .losses import accuracy, softmax, softmax_cross_entropy
from .models import LeNet5, MobileNetV2, ResNet, from_config
from .optim import (SGD, Adam, CosineAnnealingLR, LinearLR, Optimizer, SequentialLR, StepLR,
                    make_optimizer)
from .training import confusion_matrix, evaluate, fit

__all__ = [
    "Layer", "Conv2D", "MaxPool2D", "AvgPool2D", "ReLU", "Tanh", "Flatten", "Linear",
    "BatchNorm1D", "BatchNorm2D", "Identity", "Dropout", "GlobalAvgPool2D", "Sequential",
    "Residual", "ZeroPadShortcut", "LeNet5", "ResNet", "MobileNetV2", "from_config",
    "softmax", "softmax_cross_entropy", "accuracy",
    "Optimizer", "SGD", "Adam", "make_optimizer",
    "StepLR", "CosineAnnealingLR", "LinearLR", "SequentialLR",
    "fit", "evaluate", "confusion_matrix",
    "save_checkpoint", "load_checkpoint", "CheckpointError",
]
