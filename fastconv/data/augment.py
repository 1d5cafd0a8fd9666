"""Training augmentation for 32x32 image classifiers (ResNet and MobileNet on CIFAR): a
random crop of the image padded with zeros, and a random horizontal flip, seeded.

One vectorised gather does both for the whole batch: each output pixel reads the padded
input at its image's offset, with the column index mirrored for flipped images.
"""
import numpy as np

from .._checks import as_array, as_bool, as_count

__all__ = ["random_crop_flip"]


def random_crop_flip(images, padding=4, flip=True, rng=None):
    """Randomly shifted (and mirrored) copies of `images`, as torchvision's
    ``RandomCrop(size, padding)`` followed by ``RandomHorizontalFlip()``.

    Each image is padded with `padding` zeros on every side (``fit`` augments the
    standardised network input, where 0 is the mean colour; torchvision pads the raw
    pixels with black) and cropped back to its size
    at an offset drawn uniformly from 0..2 * padding in each direction; with `flip`, half
    the images (each with probability 1/2) are mirrored left to right.

    Parameters
    ----------
    images : ndarray, (N, C, H, W)
        Any dtype; the result has the same.
    padding : int >= 0
    flip : bool
    rng : numpy.random.Generator, int or None
        The source of the offsets and flips: a Generator is drawn from (a training loop
        passes its own, so a seed makes the run repeatable).

    Returns
    -------
    ndarray, (N, C, H, W): new arrays; `images` is not modified.
    """
    func = "random_crop_flip"
    images = as_array(images, "images", func)
    if images.ndim != 4:
        raise ValueError(f"{func}: expected images of shape (N, C, H, W), got shape "
                         f"{images.shape}")
    padding = as_count(padding, "padding", func, minimum=0)
    flip = as_bool(flip, "flip", func)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n, c, h, w = images.shape
    padded = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=images.dtype)
    padded[:, :, padding:padding + h, padding:padding + w] = images
    top = rng.integers(0, 2 * padding + 1, n)
    left = rng.integers(0, 2 * padding + 1, n)
    columns = np.arange(w)
    mirrored = rng.random(n) < 0.5 if flip else np.zeros(n, dtype=bool)
    cols = left[:, None] + np.where(mirrored[:, None], columns[::-1], columns)   # (N, W)
    rows = top[:, None] + np.arange(h)                                            # (N, H)
    batch = np.arange(n)[:, None, None, None]
    return padded[batch, np.arange(c)[None, :, None, None], rows[:, None, :, None],
                  cols[:, None, None, :]]
