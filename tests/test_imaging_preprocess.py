"""The standard KL input: size, range, CLAHE on/off, bit depths, RGB, odd shapes, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from oa_kit.errors import OAKitError
from oa_kit.imaging.preprocess import KL_INPUT_SIZE, kl_input


def _knee_like(shape=(300, 300), seed=0) -> np.ndarray:
    """A smooth gradient with a dark horizontal band (joint space) plus noise."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, shape[0])[:, None]
    image = 0.5 + 0.3 * np.cos(np.linspace(0, 3, shape[1]))[None] - 0.4 * np.exp(-(((rows - 0.5) / 0.03) ** 2))
    return image + 0.02 * rng.standard_normal(shape)


def test_shape_dtype_range():
    out = kl_input(_knee_like())
    assert out.shape == (1, KL_INPUT_SIZE, KL_INPUT_SIZE) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1 and out.std() > 0.1


def test_bit_depth_invariance():
    base = _knee_like()
    as8 = np.round((base - base.min()) / np.ptp(base) * 255).astype(np.uint8)
    as16 = np.round((base - base.min()) / np.ptp(base) * 65535).astype(np.uint16)
    a, b = kl_input(as8, clahe=False), kl_input(as16, clahe=False)
    assert np.abs(a - b).mean() < 0.01  # percentile clip makes the scale irrelevant


def test_clahe_changes_local_contrast_and_can_be_skipped():
    image = _knee_like()
    plain, enhanced = kl_input(image, clahe=False), kl_input(image, clahe=True)
    assert not np.allclose(plain, enhanced)
    assert np.allclose(kl_input(image, clahe=False), plain)  # deterministic


def test_rgb_gray_accepted_colour_rejected_and_odd_sizes_padded():
    gray = (np.clip(_knee_like(), 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    assert np.allclose(kl_input(rgb), kl_input(gray))
    colour = rgb.copy()
    colour[..., 0] = 0
    with pytest.raises(OAKitError, match="colour"):
        kl_input(colour)
    wide = kl_input(_knee_like((200, 333)))
    assert wide.shape == (1, KL_INPUT_SIZE, KL_INPUT_SIZE)


def test_blank_roi_gives_zeros_even_with_clahe():
    assert not kl_input(np.full((224, 224), 128, np.uint8), clahe=True).any()


@pytest.mark.parametrize(
    "bad, match",
    [(np.zeros((10, 10)), "too small"), (np.zeros((4, 50, 50)), "2-D"), (np.full((64, 64), np.nan), "NaN")],
)
def test_bad_inputs(bad, match):
    with pytest.raises(OAKitError, match=match):
        kl_input(bad)


def test_chen_image_matches_packed_preprocessing(chen_dir):
    from oa_kit.io.chen import read_chen
    from oa_kit.models.kl.data import chen_input, read_gray

    row = read_chen(chen_dir, splits=("val",)).query("side == 'L'").iloc[0]
    x = chen_input(row.path, "L")
    raw = read_gray(row.path)
    assert raw.shape == (224, 224) and x.shape == (1, KL_INPUT_SIZE, KL_INPUT_SIZE)
    mirrored_back = chen_input(row.path, "R")[0, :, ::-1]
    assert np.allclose(x[0], mirrored_back, atol=1e-5)  # left knees are mirrored to right orientation
