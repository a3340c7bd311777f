"""Classical marginal-osteophyte measurement on PA knee ROIs: horizontal bone extent (mm) beyond the expected margin.

Method (per :class:`~oa_kit.imaging.localize.KneeROI`, right-knee orientation: medial at the ROI's RIGHT, i.e. higher
columns, because the right knee's medial side faces the image centre and left knees are mirrored):

1. **Smoothing and classes**: Gaussian smoothing (``SMOOTH_MM``), three-class Otsu (air / soft tissue / bone).
2. **Reference rows** ``REFERENCE_ROWS_MM`` above the ROI centre row (the localiser's joint line): the widest part of
   the femoral condyles, above where marginal spurs reach. Their median medial and lateral bone edges (top Otsu class)
   give the knee's centre column and reference half-width ``h`` (sets the knee's size).
3. **Soft-tissue background**: the reference rows' column median outside the condyles (more than ``SOFT_GAP_MM``
   beyond each edge), interpolated linearly across the bone, is subtracted from every row (the soft-tissue envelope
   hardly changes with height near the joint). Each side's bone contrast is the corrected intensity
   ``BONE_PROBE_MM`` inside its edge; bone is where the corrected image exceeds ``EDGE_FRACTION`` of it. Spurs are
   thinner than the condyles and fainter than the top Otsu class, and the soft tissue is thicker laterally, so a
   global class threshold misses medial spurs and leaks laterally.
4. **Joint line per compartment**: the row of minimum mean intensity over the compartment's columns
   (``COMPARTMENT_COLS_MM`` from the centre) within ``JOINT_SEARCH_MM`` of the centre row (the joint-space gap); it
   must be a valley at least ``MIN_VALLEY_FRACTION`` of the contrast deep, else the centre row is used (bone-on-bone).
5. **Margins**: the outermost bone column (mask opened by ``OPEN_MM`` to drop noise specks; bone followed outward
   across gaps up to ``MAX_GAP_MM``, as a spur's base is often fainter than its body, but no farther, which leaves out
   the soft-tissue envelope's edge) within ``MAX_LENGTH_MM`` beyond ``h``, in a femoral band
   ``FEMORAL_BAND_MM`` above and a tibial band ``TIBIAL_BAND_MM`` below each compartment's joint line. Its distance
   beyond ``h * (1 + NORMAL_MARGIN)`` (the band extent of a spur-free knee), floored at 0, is the length; a band with
   no bone at all gives NaN for that margin.

The lengths are the part of the spur that stands out as bone against soft tissue. On the synthetic cohort they track
the drawn lengths (r 0.7-0.9 per margin, ``benchmarks/osteophyte.py``), but single knees scatter: thin femoral spur
tips fade into the soft tissue (lengths read short), a spur whose faint base leaves a gap wider than ``MAX_GAP_MM``
is missed, a detached spur body can overshoot, and the medial tibial plateau's own thin rim now and then reads as a
few mm of spur. Use the lengths as a feature, not as a per-knee measurement to report.
``NORMAL_MARGIN`` was measured on spur-free synthetic knees (``oa_kit.synth.radiograph``), so on real radiographs it is
a starting point, not a calibration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from oa_kit.errors import OAKitError
from oa_kit.imaging.localize import KneeROI

__all__ = ["OSTEOPHYTE_SITES", "OsteophyteMeasurement", "measure_osteophytes", "marginal_osteophytes"]

#: Output keys, one per joint margin (femoral/tibial x medial/lateral).
OSTEOPHYTE_SITES = ("fm", "fl", "tm", "tl")
#: Gaussian smoothing sigma (mm) before thresholding.
SMOOTH_MM = 0.75
#: Rows (mm above the ROI centre row) holding the widest, spur-free part of the femoral condyles.
REFERENCE_ROWS_MM = (13.0, 18.0)
#: Soft-tissue background columns start this many mm outside the reference bone edges.
SOFT_GAP_MM = 2.0
#: Columns (mm inside the reference bone edge) where each side's bone contrast is read.
BONE_PROBE_MM = (2.0, 6.0)
#: Bone is where the soft-tissue-corrected intensity exceeds this fraction of the condyles' contrast.
EDGE_FRACTION = 0.35
#: The compartment's joint line is searched within this many mm of the ROI centre row.
JOINT_SEARCH_MM = 10.0
#: Compartment columns (mm from the knee's centre column) for the joint-line profile.
COMPARTMENT_COLS_MM = (12.0, 34.0)
#: Minimum depth of the joint-space valley as a fraction of the bone/soft contrast.
MIN_VALLEY_FRACTION = 0.05
#: Bands (mm from the compartment's joint line) where femoral / tibial marginal spurs lie.
FEMORAL_BAND_MM = (2.0, 9.0)
TIBIAL_BAND_MM = (1.0, 8.0)
#: Spurs are searched up to this many mm beyond the reference edge (the soft-tissue envelope's own edge lies farther).
MAX_LENGTH_MM = 13.0
#: Bone is followed outward across gaps of at most this many mm (a spur's faint base), no farther.
MAX_GAP_MM = 6.0
#: Side (mm) of the square opening that removes noise specks (and the plateau rim's thin tip) from the band mask.
OPEN_MM = 2.5
#: Band extent beyond the reference half-width of a spur-free knee, as a fraction of that half-width
#: (median over 30 spur-free synthetic knees, 3 bilateral renders per site A-E, seed 0, of the band extent over the
#: ~36.5 mm half-width, minus 1; reproduced by ``python benchmarks/osteophyte.py --normal-margin``).
NORMAL_MARGIN = {"fm": -0.023, "fl": -0.050, "tm": -0.040, "tl": -0.012}


@dataclass(frozen=True)
class OsteophyteMeasurement:
    """Marginal osteophyte lengths of one ROI and why they are missing, if they are.

    Attributes
    ----------
    lengths_mm : dict
        ``{"fm", "fl", "tm", "tl"} -> mm`` (NaN when not measurable).
    reason : str
        Empty when measured; else one line saying why every length is NaN.
    joint_rows : dict
        ROI row of the joint line used per compartment (``"medial"``, ``"lateral"``); empty when not measured.
    """

    lengths_mm: dict[str, float]
    reason: str = ""
    joint_rows: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        """Feature-table form: ``osteophyte_mm_{fm,fl,tm,tl}`` (mm)."""
        return {f"osteophyte_mm_{key}": float(self.lengths_mm[key]) for key in OSTEOPHYTE_SITES}


def marginal_osteophytes(roi: KneeROI) -> dict[str, float]:
    """Marginal osteophyte lengths (mm) at the four tibiofemoral margins of a knee ROI, for the feature table.

    Parameters
    ----------
    roi : KneeROI
        From :func:`oa_kit.imaging.localize.knee_rois` (right-knee orientation, physical spacing).

    Returns
    -------
    dict
        ``osteophyte_mm_fm``, ``osteophyte_mm_fl``, ``osteophyte_mm_tm``, ``osteophyte_mm_tl`` in mm; all NaN when the
        ROI has no spacing or no joint is found (:func:`measure_osteophytes` gives the reason).
    """
    return measure_osteophytes(roi).as_dict()


def measure_osteophytes(roi: KneeROI) -> OsteophyteMeasurement:
    """Measure the four marginal osteophyte lengths (mm) of ``roi``; NaN with a reason when not measurable."""
    if not isinstance(roi, KneeROI):
        raise OAKitError(f"roi: got {type(roi).__name__}; expected oa_kit.imaging.localize.KneeROI (from knee_rois)")
    pixels = np.asarray(roi.pixels, dtype=np.float32)
    if pixels.ndim != 2 or min(pixels.shape) < 16:
        raise OAKitError(f"roi.pixels: got shape {pixels.shape}; expected a 2-D ROI of at least 16 x 16 pixels")
    if not (np.isfinite(roi.spacing_mm) and roi.spacing_mm > 0):
        return _missing("ROI has no pixel spacing (missing_spacing): lengths in mm cannot be measured")
    return _measure(pixels, float(roi.spacing_mm))


def _missing(reason: str) -> OsteophyteMeasurement:
    """All-NaN measurement with ``reason``."""
    return OsteophyteMeasurement(dict.fromkeys(OSTEOPHYTE_SITES, math.nan), reason)


def _px(mm: float, sp: float) -> int:
    """``mm`` as a whole number of pixels (at least 1) at ``sp`` mm/px."""
    return max(1, int(round(mm / sp)))


def _measure(pixels: np.ndarray, sp: float) -> OsteophyteMeasurement:
    """Steps 1-5 of the module docstring on a float ROI at ``sp`` mm/px."""
    found = band_extents(pixels, sp)
    if isinstance(found, str):
        return _missing(found)
    extents, half, joint_rows = found
    lengths = {}
    for key, extent in extents.items():
        beyond = (extent - half * (1.0 + NORMAL_MARGIN[key])) * sp
        lengths[key] = max(0.0, float(beyond)) if np.isfinite(beyond) else math.nan
    return OsteophyteMeasurement(lengths, "", joint_rows)


def band_extents(pixels: np.ndarray, sp: float) -> tuple[dict[str, float], float, dict[str, float]] | str:
    """Steps 1-5 before the spur-free margin is subtracted: outer bone extent per margin (px from the knee's centre
    column), the reference half-width (px) and the joint row per compartment; or the reason no joint was found.

    ``extent / half - 1`` on spur-free knees is what :data:`NORMAL_MARGIN` holds (``benchmarks/osteophyte.py
    --normal-margin`` recomputes it).
    """
    from skimage.filters import threshold_multiotsu

    smooth = ndimage.gaussian_filter(np.nan_to_num(pixels), SMOOTH_MM / sp)
    if not np.ptp(smooth) > 0:
        return "ROI is blank (constant intensity): no bone, no joint found"
    try:
        _, t_bone = threshold_multiotsu(smooth, classes=3)
    except ValueError:
        return "ROI intensities do not separate into air/soft tissue/bone: no joint found"
    centre_row = smooth.shape[0] // 2
    ref = _reference(smooth, smooth > t_bone, centre_row, sp)
    if ref is None:
        return "no femoral condyles in the reference rows above the ROI centre: no joint found"
    centre_col, half, background, contrast = ref
    if not min(contrast.values()) > 0:
        return "condyles are not brighter than the soft tissue beside them: no joint found"
    corrected = smooth - background[None, :]
    extents, joint_rows = {}, {}
    for compartment, sign in (("medial", 1), ("lateral", -1)):
        row = _joint_row(smooth, centre_row, centre_col, sign, contrast[compartment], sp)
        joint_rows[compartment] = float(row)
        mask = corrected > EDGE_FRACTION * contrast[compartment]
        bands = {"f": (row - _px(FEMORAL_BAND_MM[1], sp), row - _px(FEMORAL_BAND_MM[0], sp) + 1),
                 "t": (row + _px(TIBIAL_BAND_MM[0], sp), row + _px(TIBIAL_BAND_MM[1], sp) + 1)}
        for bone_name, (r0, r1) in bands.items():
            extents[bone_name + compartment[0]] = _outer_extent(
                mask[max(0, r0):max(0, r1)], centre_col, sign, half, _px(MAX_LENGTH_MM, sp), _px(OPEN_MM, sp),
                _px(MAX_GAP_MM, sp))
    return extents, half, joint_rows


def _reference(smooth: np.ndarray, bone: np.ndarray, centre_row: int,
               sp: float) -> tuple[float, float, np.ndarray, dict[str, float]] | None:
    """Centre column, half-width (px), soft-tissue background per column and per-side bone contrast, or None.

    The background is the reference rows' column median outside the condyles (the soft-tissue envelope, which does
    not change with height near the joint), interpolated linearly across the bone.
    """
    r0, r1 = max(0, centre_row - _px(REFERENCE_ROWS_MM[1], sp)), max(0, centre_row - _px(REFERENCE_ROWS_MM[0], sp))
    band = bone[r0:r1]
    if band.shape[0] == 0 or band.any(axis=1).mean() < 0.5:
        return None
    band = band[band.any(axis=1)]
    left = float(np.median(band.argmax(axis=1)))
    right = float(np.median(band.shape[1] - 1 - band[:, ::-1].argmax(axis=1)))
    half = 0.5 * (right - left)
    if half < _px(20.0, sp):  # a distal femur is far wider than 40 mm
        return None
    profile = np.median(smooth[r0:r1], axis=0)
    cols = np.arange(profile.size)
    outside = (cols < left - _px(SOFT_GAP_MM, sp)) | (cols > right + _px(SOFT_GAP_MM, sp))
    if outside.sum() < 2:
        return None
    background = np.interp(cols, cols[outside], profile[outside])
    corrected = profile - background
    inner = _px(BONE_PROBE_MM[0], sp), _px(BONE_PROBE_MM[1], sp)
    contrast = {
        "medial": float(np.median(corrected[max(0, int(right) - inner[1]):max(1, int(right) - inner[0])])),
        "lateral": float(np.median(corrected[int(left) + inner[0]:int(left) + inner[1]])),
    }
    return 0.5 * (left + right), half, background.astype(np.float32), contrast


def _joint_row(smooth: np.ndarray, centre_row: int, centre_col: float, sign: int, contrast: float, sp: float) -> int:
    """ROI row of the compartment's joint-space gap (minimum column-mean intensity); the centre row if no valley."""
    reach = _px(JOINT_SEARCH_MM, sp)
    c0 = int(round(centre_col + sign * _px(COMPARTMENT_COLS_MM[0], sp)))
    c1 = int(round(centre_col + sign * _px(COMPARTMENT_COLS_MM[1], sp)))
    c0, c1 = sorted((c0, c1))
    r0 = max(0, centre_row - reach)
    block = smooth[r0:centre_row + reach + 1, max(0, c0):max(0, c1)]
    if block.size == 0:
        return centre_row
    profile = block.mean(axis=1)
    low = int(np.argmin(profile))
    depth = min(profile[:low + 1].max(), profile[low:].max()) - profile[low]
    return r0 + low if depth >= MIN_VALLEY_FRACTION * contrast else centre_row


def _outer_extent(band: np.ndarray, centre_col: float, sign: int, half: float, reach: int, open_px: int,
                  max_gap: int) -> float:
    """Largest distance (px) from ``centre_col`` toward ``sign`` where the band holds bone, within ``half + reach``.

    Searched from half-way out to the reference edge; the band mask is opened (``open_px`` square) so noise specks do
    not count, and bone is followed outward across gaps of at most ``max_gap`` columns: a spur whose thin base falls
    below the threshold still counts, but the soft-tissue envelope's edge, farther out, does not.
    """
    if band.shape[0] < 3:
        return math.nan
    cols = band.shape[1]
    start = int(round(centre_col + sign * 0.5 * half))
    stop = int(round(centre_col + sign * (half + reach)))
    lo, hi = sorted((start, stop))
    lo, hi = max(0, lo), min(cols, hi + 1)
    if hi - lo < 2:
        return math.nan
    window = ndimage.binary_opening(band[:, lo:hi], structure=np.ones((open_px, open_px), bool))
    hit = np.flatnonzero(window.any(axis=0)[::sign])  # column offsets outward from the start column
    if hit.size == 0 or hit[0] > max_gap:
        return math.nan
    gaps = np.flatnonzero(np.diff(hit) > max_gap + 1)
    return 0.5 * half + float(hit[gaps[0]] if gaps.size else hit[-1])
