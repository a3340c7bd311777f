"""Knee localisation on PA radiographs: joint centres by a classical profile method, then 140 mm ROIs at physical scale.

Method (documented so that a failure can be understood):

1. **Working image** at about 1 mm/px (area-averaged), intensities scaled to [0, 1] between the 1st and 99.5th
   percentile.
   Without pixel spacing the working scale is nominal (the image width is taken as ``NOMINAL_FIELD_MM``: 380 mm for a
   bilateral field, 160 mm for a single-knee crop): it only sets filter sizes; no physical size is reported (ROI
   ``spacing_mm`` is NaN, flag ``missing_spacing``).
2. **Layout**: a bilateral PA image (physical width ≥ ``BILATERAL_MIN_WIDTH_MM``, or, without spacing, width/height ≥
   ``BILATERAL_MIN_ASPECT``) is split at the dark gap between the legs nearest the middle; the right knee is in the
   image's LEFT half. Anything narrower is a single-knee image.
3. **Bone mask** per region: three-class Otsu (air / soft tissue / bone; the two upper classes in a tight crop without
   air), opened, small components dropped, hole-filled.
4. **Joint row**: the femoral condyles and tibial plateau are the widest bone of the leg, separated by the joint space,
   a dark horizontal band. The row profile of intensity, averaged over the central 70% of the bone's width, is
   searched for the deepest valley (both-sided depth against the maxima within ``±VALLEY_REACH_MM``) among rows where
   the bone is wide above and below.
5. **Joint column**: midpoint of the femoral condyles' medial and lateral bone edges just above the joint space,
   refined in step 6 to the middle of the intercondylar notch (the dark run between the two condyles).
6. **Refinement** at full resolution: the joint line is the midpoint between the femoral (bright→dark) and tibial
   (dark→bright) edges of the medial+lateral compartment row profile within ±8 mm; the column is the notch centre
   7–15 mm above the joint line (above the tibial spines).
7. **Acceptance**: a knee is reported only when the valley is deep against the image noise, the bone is wide above and
   below it, its width is knee-like (when spacing is known) and an intercondylar notch lies between two condyles above
   it; the two joint lines of a bilateral image must lie at similar heights. Otherwise: no ROI and flag
   ``no_knee_found`` (blank, noise and non-knee images), never a silent wrong crop. Fields taller than
   ``MAX_FIELD_HEIGHT_MM`` (long-leg, whole-body) are not searched.

ROIs (bilateral images, and single-knee images with spacing): ``roi_mm`` square around the joint centre (padded with the image minimum outside the image), resampled with
anti-aliasing to ``out_spacing_mm``; left knees mirrored to right orientation (DESIGN.md). Without spacing, a bilateral
image's ROIs are ``ROI_PER_CONDYLE_WIDTH`` femoral-condyle widths square, and a single-knee image (taken to be a
ready crop, like the Chen 2018 PNGs) passes through whole (padded square), once a knee is recognised in it; both
give ``spacing_mm`` NaN. Single-knee side: the ``side`` argument, else DICOM laterality, else ``""`` + ``unknown_side``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu
from skimage.transform import resize

from oa_kit.errors import OAKitError
from oa_kit.io.radiograph import Radiograph

__all__ = [
    "KneeROI",
    "KneeROIList",
    "JointCentre",
    "knee_rois",
    "find_joint_centres",
    "crop_roi",
    "passthrough_roi",
    "is_bilateral",
    "ROI_QA_FLAGS",
    "NOMINAL_FIELD_MM",
    "BILATERAL_MIN_WIDTH_MM",
    "BILATERAL_MIN_ASPECT",
    "MAX_FIELD_HEIGHT_MM",
]

#: Flags the localiser adds (the reader's flags are carried over too).
ROI_QA_FLAGS = {
    "no_knee_found": "no recognisable knee joint in the image (blank, noise, non-knee): no ROI returned",
    "bilateral_mismatch": "bilateral image whose two 'knees' differ in height by > 40 mm: both rejected "
    "(no_knee_found)",
    "field_too_tall": "field taller than MAX_FIELD_HEIGHT_MM (long-leg/whole-body): not searched (no_knee_found)",
    "knee_not_found_R": "bilateral image: the right knee (image's left half) was not found",
    "knee_not_found_L": "bilateral image: the left knee (image's right half) was not found",
    "unknown_side": "single-knee image without a side argument or DICOM laterality: not mirrored, side ''",
    "roi_padded": "the ROI extends beyond the image and was padded with the image minimum",
    "missing_spacing": "no pixel spacing: located in pixels; ROI sized from the knee's bone width, spacing_mm is NaN",
    "passthrough": "single-knee image without spacing (a ready crop, e.g. Chen 2018): the whole image is the ROI",
}

#: Pixel size (mm) of the working image the coarse search runs on.
WORK_SPACING_MM = 1.0
#: Without spacing, the image width is taken as this many mm (only to size filters; nothing physical is reported):
#: a bilateral PA field, or a joint-centred single-knee crop such as the Chen 2018 PNGs.
NOMINAL_FIELD_MM = {"bilateral": 380.0, "single": 160.0}
#: Layout: an image at least this wide (mm), or this wide for its height, is a bilateral PA image.
BILATERAL_MIN_WIDTH_MM = 300.0
BILATERAL_MIN_ASPECT = 1.15
#: The joint-space valley is measured against the brightest rows within this distance (mm) above and below.
VALLEY_REACH_MM = 14.0
#: Accepted distal-femur widths (mm) when spacing is known.
KNEE_WIDTH_RANGE_MM = (45.0, 150.0)
#: Acceptance: the joint-space valley must be this many noise SDs deep, and this deep in [0, 1] working units.
MIN_VALLEY_SNR = 6.0
MIN_VALLEY_DEPTH = 0.04
#: Fields taller than this (long-leg or whole-body images) are not searched: which joint is the knee is ambiguous.
MAX_FIELD_HEIGHT_MM = 600.0
#: Bilateral sanity: the two joint lines lie within this many mm in height.
MAX_KNEE_HEIGHT_DIFFERENCE_MM = 40.0
#: Rows (mm above the joint line) where the intercondylar notch is read, above the tibial spines.
NOTCH_ROWS_MM = (7.0, 15.0)
#: Half-width (mm) of the column window searched for the two condyles and the notch between them.
NOTCH_SEARCH_MM = 35.0
#: A region whose lowest Otsu class holds less than this fraction of pixels is a tight crop without air.
TIGHT_CROP_MAX_LOW_FRACTION = 0.25
#: Without spacing, the ROI side is this many condyle widths: 140 mm over a typical adult distal-femur width of
#: about 75 mm measured, as here, 3-12 mm above the joint line. An anatomical proportion, so ROI scale is approximate.
ROI_PER_CONDYLE_WIDTH = 140.0 / 75.0


@dataclass(frozen=True)
class JointCentre:
    """One located knee joint in source-image pixels.

    Attributes
    ----------
    side : str
        ``"R"``, ``"L"`` or ``""`` (unknown).
    row, col : float
        Joint-space centre in source pixels.
    condyle_width_px : float
        Femoral condyle width (medial to lateral bone edge) in source column pixels.
    valley_snr : float
        Depth of the joint-space valley over the working image's noise (acceptance score).
    notch_found : bool
        Whether the intercondylar notch was found (else the column is the condyle-edge midpoint).
    """

    side: str
    row: float
    col: float
    condyle_width_px: float
    valley_snr: float
    notch_found: bool = True


@dataclass(frozen=True, eq=False)  # holds an array: identity equality, like numpy-backed results
class KneeROI:
    """One knee cut from a radiograph at physical scale, in right-knee orientation.

    Attributes
    ----------
    side : str
        ``"R"`` or ``"L"`` (``""`` with QA flag ``unknown_side``).
    pixels : numpy.ndarray
        float32 ``(H, W)``, ``roi_mm`` square at ``spacing_mm`` per pixel; left knees mirrored.
    spacing_mm : float
        Output pixel size in mm (NaN when the source had no spacing).
    centre_px : tuple of float
        Joint centre ``(row, col)`` in the source image.
    box_px : tuple of int
        ``(row0, col0, row1, col1)`` crop in source pixels (end exclusive; may extend beyond the image: padded).
    mirrored : bool
        True when the crop was flipped left-right (left knees).
    qa_flags : tuple of str
        The radiograph's flags plus localiser flags (:data:`ROI_QA_FLAGS`).
    """

    side: str
    pixels: np.ndarray
    spacing_mm: float
    centre_px: tuple[float, float]
    box_px: tuple[int, int, int, int]
    mirrored: bool
    qa_flags: tuple[str, ...]


class KneeROIList(list):
    """A ``list[KneeROI]`` that also carries image-level QA flags (e.g. ``no_knee_found`` when it is empty)."""

    def __init__(self, rois: Iterable[KneeROI] = (), qa_flags: Iterable[str] = ()) -> None:
        super().__init__(rois)
        self.qa_flags: tuple[str, ...] = tuple(dict.fromkeys(qa_flags))


# --------------------------------------------------------------------------- public API


def knee_rois(
    radiograph: Radiograph, roi_mm: float = 140.0, out_spacing_mm: float = 0.5, side: str | None = None
) -> KneeROIList:
    """Find the knee joint(s) of a PA radiograph and cut ``roi_mm`` square ROIs at ``out_spacing_mm`` (mm/px).

    Parameters
    ----------
    radiograph : Radiograph
        From :func:`oa_kit.io.radiograph.read_radiograph` (float32, bone bright).
    roi_mm : float, default 140
        ROI side in mm (DeepKnee/KNEEL use 140 mm).
    out_spacing_mm : float, default 0.5
        Output pixel size in mm; the ROI is ``round(roi_mm / out_spacing_mm)`` pixels square.
    side : {"R", "L"} or None
        Side of a single-knee image; default from DICOM ``ImageLaterality``. Ignored for bilateral images.

    Returns
    -------
    KneeROIList
        A list of :class:`KneeROI` (right knee first for bilateral images); ``.qa_flags`` holds image-level flags,
        ``("no_knee_found",)`` with an empty list when no knee is recognisable.
    """
    if not isinstance(radiograph, Radiograph):
        raise OAKitError(
            f"radiograph: got {type(radiograph).__name__}; expected oa_kit.io.radiograph.Radiograph "
            "(read_radiograph(path), or Radiograph(pixels, spacing_mm, (), source, {}) for an array)"
        )
    if not (roi_mm > 0 and out_spacing_mm > 0):
        raise OAKitError(f"roi_mm/out_spacing_mm: got {roi_mm}/{out_spacing_mm}; expected positive numbers of mm")
    if side not in (None, "R", "L"):
        raise OAKitError(f"side: got {side!r}; expected 'R', 'L' or None")
    single_side = side or str(radiograph.meta.get("laterality", "") or "")
    centres, image_flags = find_joint_centres(radiograph.pixels, radiograph.spacing_mm, single_side)
    passthrough = radiograph.spacing_mm is None and not is_bilateral(radiograph.pixels.shape, None)
    rois = []
    for centre in centres:
        flags = list(radiograph.qa_flags)
        if not centre.side:
            flags.append("unknown_side")
        if passthrough:
            rois.append(passthrough_roi(radiograph, centre, int(round(roi_mm / out_spacing_mm)), flags))
        else:
            rois.append(crop_roi(radiograph, centre, roi_mm, out_spacing_mm, flags))
    return KneeROIList(rois, image_flags)


def find_joint_centres(
    pixels: np.ndarray, spacing_mm: tuple[float, float] | None, single_side: str = ""
) -> tuple[list[JointCentre], tuple[str, ...]]:
    """Locate knee joint centres (source pixels) in a bone-bright radiograph; returns centres and image flags.

    Bilateral images give up to two centres (``"R"`` from the image's left half first); single-knee images give at
    most one, with side ``single_side``. See the module docstring for the method.
    """
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim != 2 or min(pixels.shape) < 8:
        raise OAKitError(f"pixels: shape {pixels.shape}; expected a 2-D radiograph of at least 8×8 pixels")
    if spacing_mm is not None and pixels.shape[0] * spacing_mm[0] > MAX_FIELD_HEIGHT_MM:
        return [], ("no_knee_found", "field_too_tall")
    bilateral = is_bilateral(pixels.shape, spacing_mm)
    scale = _work_scale(pixels.shape, spacing_mm, bilateral)
    work = _working_image(pixels, scale)
    if work is None:
        return [], ("no_knee_found",)
    regions = _split_legs(work) if bilateral else [("", slice(0, work.shape[1]))]
    centres, flags = [], []
    for region_side, cols in regions:
        found = _locate_in_region(
            work, cols, spacing_known=spacing_mm is not None, maybe_crop=spacing_mm is None and not bilateral
        )
        side = region_side or single_side
        if found is None:
            if region_side:
                flags.append(f"knee_not_found_{region_side}")
            continue
        row_w, col_w, width_w, snr = found
        row, col, notch = _refine(pixels, scale, row_w, col_w, width_w)
        if not notch:  # a joint-space-like band without two condyles and a notch above it is not a knee
            if region_side:
                flags.append(f"knee_not_found_{region_side}")
            continue
        centres.append(JointCentre(side, row, col, width_w / scale[1], snr, notch))
    if len(centres) == 2 and not _consistent_pair(*centres, scale):
        return [], ("no_knee_found", "bilateral_mismatch")
    if not centres:
        return [], ("no_knee_found",)
    return centres, tuple(flags)


def _consistent_pair(right: JointCentre, left: JointCentre, scale: tuple[float, float]) -> bool:
    """The two knees of one standing PA image have their joint lines at similar heights."""
    return abs(right.row - left.row) * scale[0] <= MAX_KNEE_HEIGHT_DIFFERENCE_MM


def crop_roi(
    radiograph: Radiograph,
    centre: JointCentre,
    roi_mm: float = 140.0,
    out_spacing_mm: float = 0.5,
    flags: Iterable[str] = (),
) -> KneeROI:
    """Cut a ``roi_mm`` square around ``centre`` (padding outside the image), resample, mirror left knees."""
    pixels = radiograph.pixels
    n_out = max(1, int(round(roi_mm / out_spacing_mm)))
    flags = list(flags)
    if radiograph.spacing_mm is not None:
        half = (0.5 * roi_mm / radiograph.spacing_mm[0], 0.5 * roi_mm / radiograph.spacing_mm[1])
        spacing = float(out_spacing_mm)
    else:
        side_px = ROI_PER_CONDYLE_WIDTH * centre.condyle_width_px
        half, spacing = (0.5 * side_px, 0.5 * side_px), math.nan
        flags.append("missing_spacing")
    box = (
        int(round(centre.row - half[0])),
        int(round(centre.col - half[1])),
        int(round(centre.row + half[0])),
        int(round(centre.col + half[1])),
    )
    crop, padded = _padded_crop(pixels, box)
    if padded:
        flags.append("roi_padded")
    out = _resize(crop, (n_out, n_out))
    mirrored = centre.side == "L"
    if mirrored:
        out = out[:, ::-1]
    return KneeROI(
        side=centre.side,
        pixels=np.ascontiguousarray(out, dtype=np.float32),
        spacing_mm=spacing,
        centre_px=(float(centre.row), float(centre.col)),
        box_px=box,
        mirrored=mirrored,
        qa_flags=tuple(dict.fromkeys(flags)),
    )


def passthrough_roi(radiograph: Radiograph, centre: JointCentre, n_out: int, flags: Iterable[str] = ()) -> KneeROI:
    """A single-knee image without spacing (e.g. a Chen 2018 crop) as one ROI: the whole image, padded square."""
    rows, cols = radiograph.pixels.shape
    n = max(rows, cols)
    r0, c0 = (rows - n) // 2, (cols - n) // 2
    box = (r0, c0, r0 + n, c0 + n)
    crop, padded = _padded_crop(radiograph.pixels, box)
    flags = [*flags, "missing_spacing", "passthrough"] + (["roi_padded"] if padded else [])
    out = _resize(crop, (n_out, n_out))
    mirrored = centre.side == "L"
    return KneeROI(
        side=centre.side,
        pixels=np.ascontiguousarray(out[:, ::-1] if mirrored else out, dtype=np.float32),
        spacing_mm=math.nan,
        centre_px=(float(centre.row), float(centre.col)),
        box_px=box,
        mirrored=mirrored,
        qa_flags=tuple(dict.fromkeys(flags)),
    )


# --------------------------------------------------------------------------- working image and layout


def is_bilateral(shape: tuple[int, int], spacing_mm: tuple[float, float] | None) -> bool:
    """Bilateral PA layout: width/height ≥ ``BILATERAL_MIN_ASPECT``, or width ≥ ``BILATERAL_MIN_WIDTH_MM`` (mm)."""
    rows, cols = shape
    if spacing_mm is not None and cols * spacing_mm[1] >= BILATERAL_MIN_WIDTH_MM:
        return True
    aspect = (cols * spacing_mm[1]) / (rows * spacing_mm[0]) if spacing_mm is not None else cols / rows
    return aspect >= BILATERAL_MIN_ASPECT


def _work_scale(shape: tuple[int, int], spacing_mm: tuple[float, float] | None, bilateral: bool) -> tuple[float, float]:
    """Source mm per pixel (row, col): the real spacing, or a nominal one from ``NOMINAL_FIELD_MM`` (width)."""
    if spacing_mm is not None:
        return float(spacing_mm[0]), float(spacing_mm[1])
    nominal = NOMINAL_FIELD_MM["bilateral" if bilateral else "single"] / shape[1]
    return nominal, nominal


def _working_image(pixels: np.ndarray, scale: tuple[float, float]) -> np.ndarray | None:
    """Area-averaged ~1 mm/px copy scaled to [0, 1] by the 1st–99.5th percentiles; None when featureless."""
    finite = pixels[np.isfinite(pixels)]
    if finite.size == 0:
        return None
    lo, hi = np.percentile(finite, [1.0, 99.5])
    if not hi > lo:
        return None
    shape = (
        max(8, int(round(pixels.shape[0] * scale[0] / WORK_SPACING_MM))),
        max(8, int(round(pixels.shape[1] * scale[1] / WORK_SPACING_MM))),
    )
    work = _resize(np.nan_to_num(pixels, nan=float(lo)), shape)
    return np.clip((work - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample to ``shape`` with anti-aliasing when shrinking (skimage, bilinear)."""

    if tuple(image.shape) == tuple(shape):
        return image.astype(np.float32)
    shrink = image.shape[0] > shape[0] or image.shape[1] > shape[1]
    return resize(
        image.astype(np.float32), shape, order=1, mode="edge", anti_aliasing=shrink, preserve_range=True
    ).astype(np.float32)


def _split_legs(work: np.ndarray) -> list[tuple[str, slice]]:
    """Split a bilateral working image at the darkest column band near the middle: [("R", left), ("L", right)]."""
    cols = work.shape[1]
    profile = ndimage.gaussian_filter1d(work.mean(axis=0), 5.0)
    lo, hi = int(cols * 0.35), int(cols * 0.65)
    cut = lo + int(np.argmin(profile[lo:hi])) if hi > lo else cols // 2
    return [("R", slice(0, cut)), ("L", slice(cut, cols))]


# --------------------------------------------------------------------------- one knee in one region


def _bone_mask(region: np.ndarray, maybe_crop: bool = False) -> np.ndarray | None:
    """Bone = top class of a three-class Otsu (two upper classes in a tight crop), opened (5 px) and hole-filled.

    ``maybe_crop`` allows the tight-crop rule (only for single-knee images without spacing, like Chen 2018 crops).
    """

    smooth = ndimage.gaussian_filter(region, 1.0)
    try:
        t_soft, t_bone = threshold_multiotsu(smooth, classes=3)
    except ValueError:
        return None
    # a tight crop has no air: its lowest class is soft tissue, and bone spans the two upper classes
    tight = maybe_crop and np.mean(smooth <= t_soft) < TIGHT_CROP_MAX_LOW_FRACTION
    threshold = t_soft if tight else t_bone
    bone = ndimage.binary_opening(smooth > threshold, structure=np.ones((5, 5)))
    labels, n = ndimage.label(bone)
    if n == 0:
        return None
    sizes = ndimage.sum_labels(bone, labels, index=np.arange(1, n + 1))
    keep = np.isin(labels, 1 + np.flatnonzero(sizes >= 0.15 * sizes.max()))
    return ndimage.binary_fill_holes(keep)


def _noise_sigma(region: np.ndarray) -> float:
    """Robust pixel-noise estimate: MAD of the difference of horizontal neighbours / √2."""
    diff = np.diff(region, axis=1).ravel()
    return float(1.4826 * np.median(np.abs(diff - np.median(diff))) / math.sqrt(2.0)) + 1e-6


def _window_max(values: np.ndarray, reach: int, below: bool) -> np.ndarray:
    """Per index r, the max of ``values[r-reach:r]`` (or ``values[r+1:r+1+reach]`` when ``below``); -inf if empty."""
    n = values.size
    pad = np.full(reach + 1, -np.inf)
    if below:
        return np.lib.stride_tricks.sliding_window_view(np.concatenate([values, pad]), reach)[1 : n + 1].max(axis=1)
    return np.lib.stride_tricks.sliding_window_view(np.concatenate([pad[:reach], values]), reach)[:n].max(axis=1)


def _locate_in_region(
    work: np.ndarray, cols: slice, spacing_known: bool, maybe_crop: bool
) -> tuple[float, float, float, float] | None:
    """Coarse joint centre (work row, work col, condyle width in work px, valley SNR) in one leg's columns, or None.

    ``maybe_crop``: the region may be a tight joint-centred crop without air (single knee, no spacing).
    """
    region = work[:, cols]
    if region.shape[1] < 20 or region.shape[0] < 40:
        return None
    bone = _bone_mask(region, maybe_crop)
    if bone is None:
        return None
    width = ndimage.uniform_filter1d(bone.sum(axis=1).astype(float), 5)
    if width.max() < 20:
        return None
    reach = int(round(VALLEY_REACH_MM / WORK_SPACING_MM))
    profile = ndimage.gaussian_filter1d(_central_profile(region, bone), 1.0)
    depth = np.minimum(_window_max(profile, reach, False), _window_max(profile, reach, True)) - profile
    wide = 0.6 * width.max()
    wide_around = (_window_max(width, reach, False) >= wide) & (_window_max(width, reach, True) >= wide)
    candidates = np.flatnonzero(wide_around & np.isfinite(depth))
    if candidates.size == 0:
        return None
    row = int(candidates[np.argmax(depth[candidates])])
    noise = _noise_sigma(region) / math.sqrt(max(1.0, 0.7 * width[row]) * 3.0)  # noise of a 3-row band mean
    snr = float(depth[row] / noise)
    edges = _bone_edges(bone, max(0, row - 12), max(1, row - 3))
    if edges is None or snr < MIN_VALLEY_SNR or depth[row] < MIN_VALLEY_DEPTH:
        return None
    left, right = edges
    condyle_width = float(right - left)
    if spacing_known and not (KNEE_WIDTH_RANGE_MM[0] <= condyle_width <= KNEE_WIDTH_RANGE_MM[1]):
        return None
    return float(row), float(cols.start + 0.5 * (left + right)), condyle_width, snr


def _central_profile(region: np.ndarray, bone: np.ndarray) -> np.ndarray:
    """Per-row mean intensity over the central 70% of the bone's span (span pooled over 15 rows, so the
    joint-space rows, where the mask has a gap, still get the condyles' span)."""
    any_bone = bone.any(axis=1)
    first = np.where(any_bone, bone.argmax(axis=1), 10**6)
    last = np.where(any_bone, bone.shape[1] - 1 - bone[:, ::-1].argmax(axis=1), -1)
    span_lo = ndimage.minimum_filter1d(first, 15)
    span_hi = ndimage.maximum_filter1d(last, 15)
    profile = np.full(region.shape[0], np.nan)
    for r in np.flatnonzero(span_hi > span_lo):
        pad = 0.15 * (span_hi[r] - span_lo[r])
        profile[r] = region[r, int(span_lo[r] + pad) : int(span_hi[r] - pad) + 1].mean()
    floor = np.nanmin(profile) if np.isfinite(profile).any() else 0.0
    return np.where(np.isfinite(profile), profile, floor)


def _bone_edges(bone: np.ndarray, r0: int, r1: int) -> tuple[float, float] | None:
    """Median first and last bone column over rows ``r0:r1`` (the condyles' edges), or None without bone."""
    band = bone[r0:r1]
    rows = band.any(axis=1)
    if not rows.any():
        return None
    band = band[rows]
    first = band.argmax(axis=1)
    last = band.shape[1] - 1 - band[:, ::-1].argmax(axis=1)
    return float(np.median(first)), float(np.median(last))


def _refine(
    pixels: np.ndarray, scale: tuple[float, float], row_w: float, col_w: float, width_w: float
) -> tuple[float, float, bool]:
    """Full-resolution centre (row, col, notch found): joint line between the femoral and tibial edges, column at
    the intercondylar notch."""
    r_src = (row_w + 0.5) * WORK_SPACING_MM / scale[0] - 0.5
    c_src = (col_w + 0.5) * WORK_SPACING_MM / scale[1] - 0.5
    half_width = 0.5 * width_w * WORK_SPACING_MM / scale[1]
    row = _refine_row(pixels, scale, r_src, c_src, half_width)
    col, notch = _refine_col(pixels, scale, row, c_src, half_width)
    return row, col, notch


def _band(pixels: np.ndarray, r0: float, r1: float, c0: float, c1: float) -> np.ndarray:
    """``pixels[r0:r1, c0:c1]`` with bounds rounded and clipped to the image."""
    rows, cols = pixels.shape
    r0, r1 = max(0, int(round(r0))), min(rows, int(round(r1)))
    c0, c1 = max(0, int(round(c0))), min(cols, int(round(c1)))
    return pixels[r0:r1, c0:c1].astype(np.float64)


def _refine_row(pixels: np.ndarray, scale: tuple[float, float], r_src: float, c_src: float, half_width: float) -> float:
    """Joint line = midpoint of the femoral (bright→dark) and tibial (dark→bright) edges around the coarse row.

    The row profile averages the medial and lateral compartments (12–45% of the condyle width either side of the
    centre), leaving out the notch and tibial spines; the edges are the steepest descent/ascent within 8 mm.
    """
    reach = 8.0 / scale[0]
    r0 = max(0, int(round(r_src - 2 * reach)))
    r1 = r_src + 2 * reach
    bands = [
        _band(pixels, r0, r1, c_src - 0.9 * half_width, c_src - 0.24 * half_width),
        _band(pixels, r0, r1, c_src + 0.24 * half_width, c_src + 0.9 * half_width),
    ]
    bands = [b for b in bands if b.size]
    if not bands or min(b.shape[0] for b in bands) < 5:
        return r_src
    n = min(b.shape[0] for b in bands)
    profile = np.mean([b[:n].mean(axis=1) for b in bands], axis=0)
    grad = np.gradient(ndimage.gaussian_filter1d(profile, 0.7 / scale[0]))
    centre = r_src - r0
    lo, hi = int(max(0, centre - reach)), int(min(n, centre + reach + 1))
    if hi - lo < 3:
        return r_src
    valley = lo + int(np.argmin(ndimage.gaussian_filter1d(profile, 0.7 / scale[0])[lo:hi]))
    femoral = int(np.argmin(grad[lo : valley + 1])) + lo
    tibial = int(np.argmax(grad[valley:hi])) + valley
    return float(r0 + 0.5 * (femoral + tibial))


def _refine_col(
    pixels: np.ndarray, scale: tuple[float, float], row: float, c_src: float, half_width: float
) -> tuple[float, bool]:
    """Column of the intercondylar notch: middle of the deepest dark run between two brighter columns (the condyles),
    in rows ``NOTCH_ROWS_MM`` above the joint line (above the tibial spines), within ±``NOTCH_SEARCH_MM``.

    Returns (column, found); falls back to the condyle-edge midpoint ``c_src`` (found False) when no notch
    stands out of the noise between two condyles.
    """
    reach = max(0.6 * half_width, NOTCH_SEARCH_MM / scale[1])
    c0 = max(0, int(round(c_src - reach)))
    band = _band(pixels, row - NOTCH_ROWS_MM[1] / scale[0], row - NOTCH_ROWS_MM[0] / scale[0], c0, c_src + reach)
    if band.shape[0] < 3 or band.shape[1] < 7:
        return c_src, False
    profile = ndimage.gaussian_filter1d(band.mean(axis=0), 1.5 / scale[1])
    # deepest dip between a brighter column on each side (the two condyles), wherever it lies in the window
    depth = np.minimum(np.maximum.accumulate(profile), np.maximum.accumulate(profile[::-1])[::-1]) - profile
    best = int(np.argmax(depth))
    if best in (0, profile.size - 1) or depth[best] <= 0:
        return c_src, False
    left, right = int(np.argmax(profile[:best])), best + int(np.argmax(profile[best:]))
    rim = min(profile[left], profile[right])
    noise = _noise_sigma(band) / math.sqrt(band.shape[0])
    if rim - profile[best] < 5.0 * noise:
        return c_src, False
    # the notch is the dark run around the minimum below half-way to the condyles; its middle is the centre
    dark = profile < profile[best] + 0.5 * (rim - profile[best])
    labels, _ = ndimage.label(dark)
    run = np.flatnonzero(labels == labels[best])
    best = 0.5 * (run[0] + run[-1])
    return float(c0 + best), True


def _padded_crop(pixels: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, bool]:
    """Crop ``box`` (row0, col0, row1, col1; end exclusive) padding with the image minimum outside the image."""
    r0, c0, r1, c1 = box
    rows, cols = pixels.shape
    out = np.full((max(1, r1 - r0), max(1, c1 - c0)), float(np.nanmin(pixels)), dtype=np.float32)
    sr0, sc0, sr1, sc1 = max(r0, 0), max(c0, 0), min(r1, rows), min(c1, cols)
    if sr1 > sr0 and sc1 > sc0:
        out[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] = pixels[sr0:sr1, sc0:sc1]
    padded = r0 < 0 or c0 < 0 or r1 > rows or c1 > cols
    return out, padded
