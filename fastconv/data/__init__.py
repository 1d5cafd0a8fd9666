"""fastconv.data: datasets and preprocessing.

Loaders return images raw, as the files hold them ((N, H, W) uint8, or (N, 3, 32, 32) for
CIFAR, with (N,) labels); :mod:`fastconv.data.preprocessing` turns them into network
input (scaled, padded to 32 x 32, standardised) and :mod:`fastconv.data.augment` varies
them for training (random crops and flips).
"""
from .datasets import (DownloadError, load_cifar10, load_cifar100, load_digits,
                       load_fashion_mnist, load_mnist, read_idx)
from .augment import random_crop_flip
from .preprocessing import image_statistics, is_prepared, scale_and_pad, standardize

__all__ = ["read_idx", "load_mnist", "load_fashion_mnist", "load_cifar10", "load_cifar100",
           "load_digits", "DownloadError",
           "scale_and_pad", "is_prepared", "image_statistics", "standardize",
           "random_crop_flip"]
