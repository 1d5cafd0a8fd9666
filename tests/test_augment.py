"""random_crop_flip: every output is one of the crops (and mirror images) of the zero-padded
input, offsets and flips are uniform and seeded, the input is left alone."""
import numpy as np
import pytest

from fastconv.data.augment import random_crop_flip


def candidates(image, padding):
    """Every crop of the zero-padded image, and its mirror image."""
    c, h, w = image.shape
    padded = np.pad(image, ((0, 0), (padding, padding), (padding, padding)))
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            crop = padded[:, top:top + h, left:left + w]
            yield (top, left, False), crop
            yield (top, left, True), crop[:, :, ::-1]


def test_each_output_is_a_crop_of_the_padded_image_or_its_mirror():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 255, (40, 3, 8, 7), dtype=np.uint8)      # no zeros: crops differ
    before = x.copy()
    y = random_crop_flip(x, padding=2, rng=1)
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_array_equal(x, before)
    seen = set()
    for image, out in zip(x, y):
        matches = [key for key, crop in candidates(image, 2) if np.array_equal(crop, out)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len({key[2] for key in seen}) == 2 and len({key[:2] for key in seen}) > 10


def test_offsets_and_flips_are_uniform():
    """With one bright pixel, its position in the output tells the offset and the flip."""
    x = np.zeros((20_000, 1, 5, 5), dtype=np.float32)
    x[:, 0, 2, 2] = 1
    y = random_crop_flip(x, padding=2, rng=3)
    rows, cols = np.nonzero(y[:, 0].max(axis=2))[1], np.nonzero(y[:, 0].max(axis=1))[1]
    # the pixel moves by -2..2 (five offsets each way, the image keeps its size)
    assert np.bincount(rows, minlength=5) / len(rows) == pytest.approx([0.2] * 5, abs=0.015)
    assert np.bincount(cols, minlength=5) / len(cols) == pytest.approx([0.2] * 5, abs=0.015)
    flipped = random_crop_flip(np.arange(4.0).reshape(1, 1, 1, 4).repeat(20_000, 0),
                               padding=0, rng=4)
    assert np.mean(flipped[:, 0, 0, 0] == 3.0) == pytest.approx(0.5, abs=0.015)


def test_the_seed_repeats_the_draws_and_no_padding_or_flip_is_the_identity():
    x = np.random.default_rng(5).standard_normal((6, 2, 9, 9))
    np.testing.assert_array_equal(random_crop_flip(x, rng=7), random_crop_flip(x, rng=7))
    np.testing.assert_array_equal(random_crop_flip(x, padding=0, flip=False, rng=7), x)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"images": np.zeros((2, 3, 4))}, ValueError, r"expected images of shape \(N, C, H, W\)"),
    ({"padding": -1}, ValueError, "padding must be from 0"),
    ({"padding": 1.5}, TypeError, "padding must be an int"),
])
def test_bad_arguments_are_refused_naming_them(kwargs, error, match):
    args = {"images": np.zeros((2, 3, 4, 4)), **kwargs}
    with pytest.raises(error, match=match):
        random_crop_flip(**args)
