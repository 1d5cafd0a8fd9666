"""From digit images to LeNet-5's input: scale to [0, 1], pad to 32x32, standardise.

*Raw* images are what datasets hold: (N, H, W) or (N, 1, H, W) with H, W <= 32, either
integers 0..255 (uint8, as MNIST) or floats already in [0, 1]. *Prepared* images are the
network's input: float arrays of shape (N, 1, 32, 32), already standardised.
"""
import numpy as np

__all__ = ["scale_and_pad", "is_prepared", "image_statistics", "standardize"]

INPUT_SIZE = 32


def is_prepared(images, size=INPUT_SIZE):
    """True for float arrays of shape (N, 1, size, size): the network's own input."""
    images = np.asarray(images)
    return images.dtype.kind == "f" and images.ndim == 4 and images.shape[1:] == (1, size, size)


def scale_and_pad(images, size=INPUT_SIZE):
    """Raw images -> (N, 1, size, size) float32 in [0, 1], zero-padded around the centre.

    MNIST's 28x28 digits get 2 pixels of padding on every side: LeNet-5 takes 32x32.
    Integer images are divided by 255; float images are taken to be in [0, 1] already.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected grayscale images of shape (N, H, W) or (N, 1, H, W), "
                         f"got shape {images.shape}")
    if images.dtype.kind in "biu":
        scaled = images.astype(np.float32) / np.float32(255)
    elif images.dtype.kind == "f":
        scaled = images.astype(np.float32)
    else:
        raise TypeError(f"expected integer (0..255) or float ([0, 1]) images, got dtype "
                        f"{images.dtype}")
    H, W = images.shape[2:]
    if H > size or W > size:
        raise ValueError(f"images of {H}x{W} pixels do not fit the {size}x{size} input; "
                         f"resize them first")
    top, left = (size - H) // 2, (size - W) // 2
    out = np.zeros((images.shape[0], 1, size, size), dtype=np.float32)
    out[:, :, top:top + H, left:left + W] = scaled
    return out


def image_statistics(images, batch=10_000):
    """Mean and standard deviation of the scaled, padded pixels (in batches, float64)."""
    total = total_sq = 0.0
    count = 0
    for start in range(0, len(images), batch):
        x = scale_and_pad(images[start:start + batch]).astype(np.float64)
        total += x.sum()
        total_sq += (x * x).sum()
        count += x.size
    if count == 0:
        raise ValueError("image_statistics: no images")
    mean = total / count
    std = max(np.sqrt(max(total_sq / count - mean * mean, 0.0)), 1e-6)
    return float(mean), float(std)


def standardize(images, mean, std):
    """Raw images -> prepared network input: (scale_and_pad(images) - mean) / std."""
    x = scale_and_pad(images)
    x -= np.float32(mean)
    x /= np.float32(std)
    return x
