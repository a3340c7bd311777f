"""Classical marginal-osteophyte measurement on PA knee ROIs: spur length (mm) and spur area (mm^2) per joint margin.

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
6. **Spur area** (sub-pixel, no threshold): the smoothed ROI is resampled (``EDGE_STEP_MM`` along, ``ROW_STEP_MM``
   across) in a joint-line frame per compartment: the joint line runs through the two compartments' joint-space
   mid-gaps (refined to sub-pixel from a first pass, as whole joint rows tilt it by up to ~0.6 deg, i.e. ~0.2 mm at
   the tibial margin). In each frame row the bone edge is the outermost peak of the outward intensity drop that
   reaches ``EDGE_GRADIENT_FRACTION`` of the condyles' edge gradient (reference rows) where the image is still
   above the air/soft-tissue Otsu threshold (so the skin's drop never counts), located to sub-sample precision by a
   parabola through the peak. The femoral and tibial articular surfaces are where the compartment's column-mean
   profile crosses half-way from the joint-space valley to the bone. Spurs arise at the margin's corner, so the
   spur rows are ``SPUR_ROWS_MM`` from each surface (above the femoral, below the tibial one; scaled by
   ``h / NOMINAL_HALF_WIDTH_MM``). The mean edge offset of the spur rows beyond the reference edge, minus the same
   offset of a spur-free knee (``SPUR_FREE_OFFSET_MM``, scaled likewise), times the spur rows' height is the area
   (signed: a margin inside the typical spur-free one reads below 0). Edge positions average the noise of every
   pixel across the edge and all spur rows, so the area tracks sub-millimetre differences in spur size that a
   thresholded extent cannot.

The lengths are the part of the spur that stands out as bone against soft tissue. On the synthetic cohort they track
the drawn lengths (r 0.7-0.9 per margin, ``benchmarks/osteophyte.py``), but single knees scatter: thin femoral spur
tips fade into the soft tissue (lengths read short), a spur whose faint base leaves a gap wider than ``MAX_GAP_MM``
is missed, a detached spur body can overshoot, and the medial tibial plateau's own thin rim now and then reads as a
few mm of spur. Use the lengths as a feature, not as a per-knee measurement to report.
The areas track spur size within an OARSI grade, where the lengths do not (on the synthetic cohort's 1000 knees,
within-grade r with the drawn length at grade 0, whose spurs are 0.15-1.75 mm, is about 0.6-0.8 per margin against
-0.1-0.3 for the lengths; ``benchmarks/osteophyte.py``). A spur that reaches the joint line and merges with its
opposite spur can read small. ``NORMAL_MARGIN`` and ``SPUR_FREE_OFFSET_MM`` were measured on spur-free synthetic
knees (``oa_kit.synth.radiograph``) and the spur rows chosen on synthetic knees, so on real radiographs they are a
starting point, not a calibration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu

from oa_kit.errors import OAKitError
from oa_kit.imaging.localize import KneeROI

__all__ = [
    "OSTEOPHYTE_SITES",
    "OsteophyteMeasurement",
    "band_extents",
    "marginal_osteophytes",
    "measure_osteophytes",
    "spur_row_offsets",
]

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
#: Spur rows (mm from the bone's own articular surface: above the femoral, below the tibial) where marginal spurs
#: arise, in a knee of reference half-width ``NOMINAL_HALF_WIDTH_MM`` (scaled with the knee's measured half-width).
SPUR_ROWS_MM = (2.0, 4.0)
#: Femoral condyle half-width (mm) of the knee the spur rows and :data:`SPUR_FREE_OFFSET_MM` refer to.
NOMINAL_HALF_WIDTH_MM = 36.5
#: Sampling steps (mm) of the joint-line frame: along the joint line (edge profiles) and across it (rows).
EDGE_STEP_MM = 0.25
ROW_STEP_MM = 0.5
#: A row's bone edge is the outermost intensity drop whose gradient reaches this fraction of the condyles' edge
#: gradient.
EDGE_GRADIENT_FRACTION = 0.3
#: Mean spur-row edge offset (mm, nominal knee) from the reference edge of spur-free knees: the spur-free margin the
#: spur area is measured beyond (median over 30 spur-free synthetic knees, 3 bilateral renders per site A-E, seed 0;
#: reproduced by ``python benchmarks/osteophyte.py --normal-margin``).
SPUR_FREE_OFFSET_MM = {"fm": -3.009, "fl": -3.192, "tm": 0.344, "tl": -0.754}


@dataclass(frozen=True)
class OsteophyteMeasurement:
    """Marginal osteophyte lengths and spur areas of one ROI, and why they are missing, if they are.

    Attributes
    ----------
    lengths_mm : dict
        ``{"fm", "fl", "tm", "tl"} -> mm`` outer extent beyond the spur-free margin (NaN when not measurable).
    reason : str
        Empty when measured; else one line saying why every value is NaN.
    joint_rows : dict
        ROI row of the joint line used per compartment (``"medial"``, ``"lateral"``); empty when not measured.
    areas_mm2 : dict
        ``{"fm", "fl", "tm", "tl"} -> mm^2`` bone area beyond the spur-free margin in the spur rows (signed: below 0
        when the margin lies inside the typical spur-free one; NaN when not measurable).
    """

    lengths_mm: dict[str, float]
    reason: str = ""
    joint_rows: dict[str, float] = field(default_factory=dict)
    areas_mm2: dict[str, float] = field(default_factory=lambda: dict.fromkeys(OSTEOPHYTE_SITES, math.nan))

    def as_dict(self) -> dict[str, float]:
        """Feature-table form: ``osteophyte_mm_{fm,fl,tm,tl}`` (mm) and ``osteophyte_area_mm2_{fm,fl,tm,tl}`` (mm^2)."""
        row = {f"osteophyte_mm_{key}": float(self.lengths_mm[key]) for key in OSTEOPHYTE_SITES}
        row.update({f"osteophyte_area_mm2_{key}": float(self.areas_mm2[key]) for key in OSTEOPHYTE_SITES})
        return row


def marginal_osteophytes(roi: KneeROI) -> dict[str, float]:
    """Marginal osteophyte lengths (mm) and spur areas (mm^2) at the four tibiofemoral margins of a knee ROI, for the
    feature table.

    Parameters
    ----------
    roi : KneeROI
        From :func:`oa_kit.imaging.localize.knee_rois` (right-knee orientation, physical spacing).

    Returns
    -------
    dict
        ``osteophyte_mm_fm``, ``osteophyte_mm_fl``, ``osteophyte_mm_tm``, ``osteophyte_mm_tl`` in mm (outer extent
        beyond the spur-free margin, floored at 0) and ``osteophyte_area_mm2_fm`` ... ``osteophyte_area_mm2_tl`` in mm^2
        (spur area beyond the spur-free margin in the spur rows, signed; tracks spur size within an OARSI grade); all
        NaN when the ROI has no spacing or no joint is found (:func:`measure_osteophytes` gives the reason).
    """
    return measure_osteophytes(roi).as_dict()


def measure_osteophytes(roi: KneeROI) -> OsteophyteMeasurement:
    """Measure the four marginal osteophyte lengths (mm) and spur areas (mm^2) of ``roi``; NaN with a reason when not
    measurable."""
    if not isinstance(roi, KneeROI):
        raise OAKitError(f"roi: got {type(roi).__name__}; expected oa_kit.imaging.localize.KneeROI (from knee_rois)")
    pixels = _checked_pixels(roi.pixels, "roi.pixels")
    if not (np.isfinite(roi.spacing_mm) and roi.spacing_mm > 0):
        return _missing("ROI has no pixel spacing (missing_spacing): lengths and areas in mm cannot be measured")
    return _measure(pixels, float(roi.spacing_mm))


def _checked_pixels(pixels: np.ndarray, name: str, sp: float = 1.0) -> np.ndarray:
    """``pixels`` as float32 after checking it is a 2-D ROI of at least 16 x 16 and ``sp`` a positive spacing (mm)."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim != 2 or min(pixels.shape) < 16:
        raise OAKitError(f"{name}: got shape {pixels.shape}; expected a 2-D ROI of at least 16 x 16 pixels")
    if not (np.isfinite(sp) and sp > 0):
        raise OAKitError(f"sp: got {sp!r}; expected the ROI's pixel spacing in mm (> 0)")
    return pixels


def _missing(reason: str) -> OsteophyteMeasurement:
    """All-NaN measurement with ``reason``."""
    return OsteophyteMeasurement(dict.fromkeys(OSTEOPHYTE_SITES, math.nan), reason)


def _px(mm: float, sp: float) -> int:
    """``mm`` as a whole number of pixels (at least 1) at ``sp`` mm/px."""
    return max(1, int(round(mm / sp)))


def _measure(pixels: np.ndarray, sp: float) -> OsteophyteMeasurement:
    """Steps 1-6 of the module docstring on a float ROI at ``sp`` mm/px."""
    knee = _prepare(pixels, sp)
    if isinstance(knee, str):
        return _missing(knee)
    extents, half, joint_rows = _band_extents(knee, sp)
    lengths = {}
    for key, extent in extents.items():
        beyond = (extent - half * (1.0 + NORMAL_MARGIN[key])) * sp
        lengths[key] = max(0.0, float(beyond)) if np.isfinite(beyond) else math.nan
    offsets, scale = _spur_row_offsets(knee, sp)
    height = (SPUR_ROWS_MM[1] - SPUR_ROWS_MM[0]) * scale
    areas = {key: float((offsets[key] - SPUR_FREE_OFFSET_MM[key] * scale) * height) for key in OSTEOPHYTE_SITES}
    return OsteophyteMeasurement(lengths, "", joint_rows, areas)


@dataclass(frozen=True)
class _Knee:
    """What steps 1-4 find in one ROI (pixel units): smoothed image, thresholds, reference geometry, joint rows."""

    smooth: np.ndarray
    t_soft: float
    centre_col: float
    half: float
    background: np.ndarray
    contrast: dict[str, float]
    joint_rows: dict[str, int]


def _prepare(pixels: np.ndarray, sp: float) -> _Knee | str:
    """Steps 1-4: smoothing, Otsu classes, reference rows, soft-tissue background and joint rows; or why not."""

    smooth = ndimage.gaussian_filter(np.nan_to_num(pixels), SMOOTH_MM / sp)
    if not np.ptp(smooth) > 0:
        return "ROI is blank (constant intensity): no bone, no joint found"
    try:
        t_soft, t_bone = threshold_multiotsu(smooth, classes=3)
    except ValueError:
        return "ROI intensities do not separate into air/soft tissue/bone: no joint found"
    centre_row = smooth.shape[0] // 2
    ref = _reference(smooth, smooth > t_bone, centre_row, sp)
    if ref is None:
        return "no femoral condyles in the reference rows above the ROI centre: no joint found"
    centre_col, half, background, contrast = ref
    if not min(contrast.values()) > 0:
        return "condyles are not brighter than the soft tissue beside them: no joint found"
    joint_rows = {
        compartment: _joint_row(smooth, centre_row, centre_col, sign, contrast[compartment], sp)
        for compartment, sign in (("medial", 1), ("lateral", -1))
    }
    return _Knee(smooth, float(t_soft), centre_col, half, background, contrast, joint_rows)


def band_extents(pixels: np.ndarray, sp: float) -> tuple[dict[str, float], float, dict[str, float]] | str:
    """Steps 1-5 before the spur-free margin is subtracted: outer bone extent per margin (px from the knee's centre
    column), the reference half-width (px) and the joint row per compartment; or the reason no joint was found.

    ``extent / half - 1`` on spur-free knees is what :data:`NORMAL_MARGIN` holds (``benchmarks/osteophyte.py
    --normal-margin`` recomputes it).
    """
    knee = _prepare(_checked_pixels(pixels, "pixels", sp), sp)
    return knee if isinstance(knee, str) else _band_extents(knee, sp)


def spur_row_offsets(pixels: np.ndarray, sp: float) -> tuple[dict[str, float], float] | str:
    """Step 6 before the spur-free margin is subtracted: mean bone-edge offset (mm) of the spur rows beyond the
    reference edge per margin and the knee's scale (reference half-width / :data:`NOMINAL_HALF_WIDTH_MM`); or the
    reason no joint was found.

    ``offset / scale`` on spur-free knees is what :data:`SPUR_FREE_OFFSET_MM` holds (``benchmarks/osteophyte.py
    --normal-margin`` recomputes it).
    """
    knee = _prepare(_checked_pixels(pixels, "pixels", sp), sp)
    return knee if isinstance(knee, str) else _spur_row_offsets(knee, sp)


def _band_extents(knee: _Knee, sp: float) -> tuple[dict[str, float], float, dict[str, float]]:
    """Step 5: outer bone extent (px from the centre column) per margin, the half-width (px) and the joint rows."""
    corrected = knee.smooth - knee.background[None, :]
    extents = {}
    for compartment, sign in (("medial", 1), ("lateral", -1)):
        row = knee.joint_rows[compartment]
        mask = corrected > EDGE_FRACTION * knee.contrast[compartment]
        bands = {
            "f": (row - _px(FEMORAL_BAND_MM[1], sp), row - _px(FEMORAL_BAND_MM[0], sp) + 1),
            "t": (row + _px(TIBIAL_BAND_MM[0], sp), row + _px(TIBIAL_BAND_MM[1], sp) + 1),
        }
        for bone_name, (r0, r1) in bands.items():
            extents[bone_name + compartment[0]] = _outer_extent(
                mask[max(0, r0) : max(0, r1)],
                knee.centre_col,
                sign,
                knee.half,
                _px(MAX_LENGTH_MM, sp),
                _px(OPEN_MM, sp),
                _px(MAX_GAP_MM, sp),
            )
    return extents, knee.half, {k: float(v) for k, v in knee.joint_rows.items()}


def _spur_row_offsets(knee: _Knee, sp: float) -> tuple[dict[str, float], float]:
    """Step 6: mean spur-row edge offset (mm beyond the reference edge) per margin, and the knee's scale."""
    scale = knee.half * sp / NOMINAL_HALF_WIDTH_MM
    rows = knee.joint_rows
    span = 2.0 * float(np.mean(COMPARTMENT_COLS_MM))  # mm between the two compartments' profile centres
    angle = math.atan2((rows["medial"] - rows["lateral"]) * sp, span)
    # the joint line through the two compartments' mid-gaps, to sub-pixel precision (whole rows tilt it by ~0.6 deg)
    middle = {}
    for compartment, sign in (("medial", 1), ("lateral", -1)):
        patch, u, v = _joint_frame_patch(knee, sign, angle, scale, sp, outer_mm=COMPARTMENT_COLS_MM[1])
        middle[compartment] = float(np.mean(_surfaces(patch, u, v, scale)))
    if all(np.isfinite(list(middle.values()))):
        angle += math.atan2(middle["medial"] - middle["lateral"], span)
    frames = _compartment_frames(knee, angle, scale, sp)
    offsets = {}
    steps = np.arange(SPUR_ROWS_MM[0], SPUR_ROWS_MM[1] + 1e-6, 0.5 * ROW_STEP_MM) * scale
    for compartment, (edges, reference, v, femoral, tibial) in frames.items():
        for bone_name, rows_at in (("f", femoral - steps), ("t", tibial + steps)):
            values = np.interp(rows_at, v, edges - reference) if np.isfinite(rows_at).all() else np.array([math.nan])
            offsets[bone_name + compartment[0]] = _nanmean(values)
    return offsets, scale


def _compartment_frames(
    knee: _Knee, angle: float, scale: float, sp: float
) -> dict[str, tuple[np.ndarray, float, np.ndarray, float, float]]:
    """Per compartment, in its joint-line frame tilted by ``angle``: row edges (mm), reference edge (mm), rows ``v``
    (mm) and the femoral and tibial surface rows (mm)."""
    frames = {}
    for compartment, sign in (("medial", 1), ("lateral", -1)):
        patch, u, v = _joint_frame_patch(knee, sign, angle, scale, sp, outer_mm=knee.half * sp + MAX_LENGTH_MM + 2.0)
        reference_rows = _reference_rows(v, scale)
        edges = _row_edges(patch, u, knee.t_soft, knee.half * sp, reference=reference_rows)
        known = edges[reference_rows][np.isfinite(edges[reference_rows])]
        reference = float(np.median(known)) if known.size else math.nan
        frames[compartment] = (edges, reference, v, *_surfaces(patch, u, v, scale))
    return frames


def _nanmean(values: np.ndarray) -> float:
    """Mean of the finite ``values``; NaN when there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _reference_rows(v: np.ndarray, scale: float) -> np.ndarray:
    """Rows of the joint-line frame (``v`` mm) inside the reference rows (widest condyles, above spurs)."""
    return (v >= -REFERENCE_ROWS_MM[1] * scale) & (v <= -REFERENCE_ROWS_MM[0] * scale)


def _joint_frame_patch(
    knee: _Knee, sign: int, angle: float, scale: float, sp: float, outer_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The smoothed ROI resampled in the joint-line frame of the compartment on side ``sign``: rows ``v`` (mm,
    + distal, 0 on the joint line, which passes midway between the two compartments' joint rows at the centre column
    and is tilted by ``angle``) by columns ``u`` (mm outward from the knee's centre column along that line, up to
    ``outer_mm``)."""
    v = np.arange(-(REFERENCE_ROWS_MM[1] + 2.0) * scale, (TIBIAL_BAND_MM[1] + 8.0) * scale, ROW_STEP_MM)
    u = np.arange(COMPARTMENT_COLS_MM[0] * 0.8, outer_mm + EDGE_STEP_MM, EDGE_STEP_MM)
    middle = 0.5 * (knee.joint_rows["medial"] + knee.joint_rows["lateral"])
    across = v[:, None] / sp
    along = sign * u[None, :] / sp
    cos, sin = math.cos(angle), math.sin(angle)
    coords = [middle + across * cos + along * sin, knee.centre_col + along * cos - across * sin]
    return ndimage.map_coordinates(knee.smooth, coords, order=1, mode="nearest"), u, v


def _row_edges(patch: np.ndarray, u: np.ndarray, t_soft: float, half_mm: float, reference: np.ndarray) -> np.ndarray:
    """Sub-sample bone edge (mm, ``u``) of every patch row: the outermost gradient peak (intensity dropping outward)
    of at least :data:`EDGE_GRADIENT_FRACTION` of the ``reference`` rows' edge gradient, within :data:`MAX_LENGTH_MM`
    beyond the reference half-width ``half_mm`` and where the patch is above ``t_soft`` (the air/soft-tissue
    threshold, which leaves out the skin's drop); NaN where there is none."""
    drop = -np.gradient(patch, EDGE_STEP_MM, axis=1)
    peak = np.zeros(patch.shape, bool)
    peak[:, 1:-1] = (drop[:, 1:-1] >= drop[:, :-2]) & (drop[:, 1:-1] > drop[:, 2:])
    inside = (u <= half_mm + MAX_LENGTH_MM)[None, :] & (patch >= t_soft)
    strongest = np.where(inside, drop, -np.inf)[reference].max(axis=1)
    if not np.isfinite(strongest).any():
        return np.full(patch.shape[0], math.nan)
    ok = peak & inside & (drop >= EDGE_GRADIENT_FRACTION * np.median(strongest[np.isfinite(strongest)]))
    last = patch.shape[1] - 1 - ok[:, ::-1].argmax(axis=1)
    i = np.clip(last, 1, patch.shape[1] - 2)
    rows = np.arange(patch.shape[0])
    before, at, after = drop[rows, i - 1], drop[rows, i], drop[rows, i + 1]
    curvature = before - 2.0 * at + after
    shift = np.where(curvature < 0, 0.5 * (before - after) / np.where(curvature < 0, curvature, -1.0), 0.0)
    edges = u[0] + EDGE_STEP_MM * (i + np.clip(shift, -0.5, 0.5))
    return np.where(ok.any(axis=1), edges, math.nan)


def _surfaces(patch: np.ndarray, u: np.ndarray, v: np.ndarray, scale: float) -> tuple[float, float]:
    """Femoral and tibial articular surface rows (mm, ``v``) of the compartment: where its column-mean profile
    crosses half-way from the joint-space valley to the bone above / below it; NaN when not found."""
    profile = patch[:, (u >= COMPARTMENT_COLS_MM[0]) & (u <= COMPARTMENT_COLS_MM[1])].mean(axis=1)
    near = np.abs(v) <= JOINT_SEARCH_MM * 0.6 * scale
    low = int(np.argmin(np.where(near, profile, np.inf)))
    reach = np.abs(v - v[low]) <= JOINT_SEARCH_MM * scale
    surfaces = []
    for step in (-1, 1):
        side = np.flatnonzero(reach & (np.sign(np.arange(v.size) - low) == step))[::step]
        if side.size == 0:
            return math.nan, math.nan
        level = 0.5 * (profile[low] + profile[side].max())
        above = side[profile[side] >= level]
        if above.size == 0:
            return math.nan, math.nan
        j = above[0]
        p0, p1 = profile[j - step], profile[j]
        surfaces.append(float(v[j - step] + step * ROW_STEP_MM * (level - p0) / max(p1 - p0, 1e-9)))
    return surfaces[0], surfaces[1]


def _reference(
    smooth: np.ndarray, bone: np.ndarray, centre_row: int, sp: float
) -> tuple[float, float, np.ndarray, dict[str, float]] | None:
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
        "medial": float(np.median(corrected[max(0, int(right) - inner[1]) : max(1, int(right) - inner[0])])),
        "lateral": float(np.median(corrected[int(left) + inner[0] : int(left) + inner[1]])),
    }
    return 0.5 * (left + right), half, background.astype(np.float32), contrast


def _joint_row(smooth: np.ndarray, centre_row: int, centre_col: float, sign: int, contrast: float, sp: float) -> int:
    """ROI row of the compartment's joint-space gap (minimum column-mean intensity); the centre row if no valley."""
    reach = _px(JOINT_SEARCH_MM, sp)
    c0 = int(round(centre_col + sign * _px(COMPARTMENT_COLS_MM[0], sp)))
    c1 = int(round(centre_col + sign * _px(COMPARTMENT_COLS_MM[1], sp)))
    c0, c1 = sorted((c0, c1))
    r0 = max(0, centre_row - reach)
    block = smooth[r0 : centre_row + reach + 1, max(0, c0) : max(0, c1)]
    if block.size == 0:
        return centre_row
    profile = block.mean(axis=1)
    low = int(np.argmin(profile))
    depth = min(profile[: low + 1].max(), profile[low:].max()) - profile[low]
    return r0 + low if depth >= MIN_VALLEY_FRACTION * contrast else centre_row


def _outer_extent(
    band: np.ndarray, centre_col: float, sign: int, half: float, reach: int, open_px: int, max_gap: int
) -> float:
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
