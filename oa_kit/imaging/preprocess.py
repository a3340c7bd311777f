"""The one standard KL-model input: square ROI → fixed size, percentile clip to [0, 1], CLAHE (skipped for CLAHE-enhanced sources)."""

from __future__ import annotations

import numpy as np
from skimage.exposure import equalize_adapthist
from skimage.transform import resize

from oa_kit.errors import OAKitError

#: Side length (px) of the KL model input; the packed training images and every inference input use it.
KL_INPUT_SIZE = 160
#: Intensity percentiles clipped before rescaling to [0, 1].
KL_CLIP_PERCENTILES = (0.5, 99.5)
#: CLAHE clip limit (skimage units) used for inputs that were not CLAHE-enhanced at the source.
KL_CLAHE_CLIP = 0.02


def kl_input(
    roi: np.ndarray,
    size: int = KL_INPUT_SIZE,
    clahe: bool = True,
    clip_percentiles: tuple[float, float] = KL_CLIP_PERCENTILES,
) -> np.ndarray:
    """Turn one knee ROI into the KL model input.

    Steps: pad to square (edge values), resample to ``size``×``size`` (anti-aliased, bilinear), clip to the
    given intensity percentiles and rescale to [0, 1], then CLAHE unless ``clahe=False`` (use False for
    sources that were CLAHE-enhanced already, like the shipped Chen 2018 copy). A ROI without contrast (blank) returns
    all zeros, which ``KLGrader.qa_flags`` reports as ``blank_image``.

    Parameters
    ----------
    roi : numpy.ndarray
        2-D grayscale ROI (any numeric dtype, e.g. uint8, uint16, float), right-knee orientation.
    size : int
        Output side length in pixels.
    clahe : bool
        Apply CLAHE after clipping.
    clip_percentiles : (float, float)
        Lower and upper percentiles for the intensity clip.

    Returns
    -------
    numpy.ndarray
        float32 array of shape (1, size, size) with values in [0, 1].
    """
    image = check_roi(roi)
    image = _pad_square(image)
    image = resize(image, (size, size), order=1, anti_aliasing=image.shape[0] > size, preserve_range=True)
    low, high = np.percentile(image, clip_percentiles)
    if high - low <= 1e-6 * max(1.0, abs(float(high))):  # blank ROI: no contrast to stretch or equalise
        return np.zeros((1, size, size), np.float32)
    image = np.clip((image - low) / (high - low), 0.0, 1.0)
    if clahe:
        image = equalize_adapthist(image, clip_limit=KL_CLAHE_CLIP)
    return image.astype(np.float32)[None]


def check_roi(roi: np.ndarray, name: str = "roi") -> np.ndarray:
    """Validate a grayscale ROI and return it as float64 (H, W); RGB/RGBA with equal channels is reduced, colour rejected."""
    image = np.asarray(roi)
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        rgb = image[..., :3].astype(np.float64)
        if np.abs(rgb - rgb[..., :1]).max() > 2:
            raise OAKitError(f"{name}: colour image (channels differ); expected a grayscale radiograph")
        image = rgb[..., 0]
    if image.ndim != 2:
        raise OAKitError(f"{name}: shape {tuple(np.shape(roi))}; expected a 2-D grayscale image (H, W)")
    if min(image.shape) < 32:
        raise OAKitError(f"{name}: shape {image.shape} too small; expected at least 32×32 pixels")
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(image.dtype, np.complexfloating):
        raise OAKitError(f"{name}: dtype {image.dtype}; expected integer or float pixels")
    image = image.astype(np.float64)
    if not np.isfinite(image).all():
        raise OAKitError(f"{name}: contains NaN or infinite pixels; expected finite values")
    return image


def _pad_square(image: np.ndarray) -> np.ndarray:
    """Pad the shorter axis symmetrically with edge values so the image is square."""
    rows, cols = image.shape
    if rows == cols:
        return image
    extra = abs(rows - cols)
    pad = ((extra // 2, extra - extra // 2), (0, 0)) if rows < cols else ((0, 0), (extra // 2, extra - extra // 2))
    return np.pad(image, pad, mode="edge")
