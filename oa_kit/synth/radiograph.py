"""Synthetic bilateral standing PA knee radiographs rendered at physical scale, and their DICOM writer.

The renderer builds each knee from analytic bone shapes in millimetres (femoral shaft, condyles and
intercondylar notch, tibial plateau with spines, fibular head, patella, soft-tissue envelope), places the
medial and lateral joint spaces exactly at the requested widths, adds marginal osteophytes, subchondral
sclerosis and varus deformity, then simulates an exposure: line-integral attenuation, focal-spot/detector
blur, quantum (Poisson, Gaussian approximation) and electronic noise, and a log transform so that bone is
bright in MONOCHROME2. The right knee lies in the image's LEFT half (radiological convention).

Geometry of one knee ("knee frame", mm, right-knee orientation): origin at the joint centre (mid joint
line, centre of the intercondylar notch), ``x`` toward the medial side, ``y`` toward the feet. In the image
the right knee's medial side faces the image centre; the left knee is the mirror image.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pydicom
import pydicom.uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_encoder
from scipy import ndimage

from oa_kit.errors import OAKitError
from oa_kit.io.atomic import atomic_path

__all__ = [
    "KneeAnatomy",
    "RadiographSite",
    "RenderedRadiograph",
    "SITE_PROFILES",
    "OSTEOPHYTE_KEYS",
    "SERIES_DESCRIPTION",
    "OSTEOPHYTE_MM_BY_GRADE",
    "COMPARTMENT_OFFSET_MM",
    "render_bilateral_pa",
    "write_radiograph_dicom",
    "anatomy_from_grades",
]

OSTEOPHYTE_KEYS = ("FM", "FL", "TM", "TL")
"""Marginal osteophyte sites: femoral/tibial, medial/lateral."""

OSTEOPHYTE_MM_BY_GRADE = {0: 0.0, 1: 1.5, 2: 3.5, 3: 6.0}
"""Typical marginal osteophyte length (mm) per OARSI osteophyte grade 0–3."""

COMPARTMENT_OFFSET_MM = 23.0
"""Distance (mm, before the knee's size factor) from the joint centre to each compartment's minimum-JSW point."""

SERIES_DESCRIPTION = "Bilateral PA Fixed Flexion Knee"

# Effective linear attenuation (1/mm) beyond the soft tissue each tissue displaces, at knee-radiograph energies.
_MU_SOFT = 0.021
_MU_TRABECULAR = 0.0115
_MU_CORTICAL = 0.042

# Condyle ellipse half-axes (mm): frontal-plane radius of curvature at the bottom = AX**2 / AY.
_CONDYLE_AX, _CONDYLE_AY, _CONDYLE_SQUARENESS = 15.5, 14.0, 0.5
_NOTCH_HEIGHT_MM = 16.0
# The beam runs along the (flat) tibial plateau and the flexed condyles, so bone path grows faster inward from the
# articular surfaces than from a round shaft: their distances are stretched by these factors before ``_chord``.
_CONDYLE_SHARPNESS = 3.5
_PLATEAU_SHARPNESS = 6.0
_SPUR_SHARPNESS = 6.0  # osteophytes are ridges along the joint margin, long in the beam direction
_DISPLAY_RANGE = 5.6  # log-attenuation units mapped onto 90% of the stored range


def _transfer_syntax_uid(name: str) -> pydicom.uid.UID:
    """Resolve a pydicom UID keyword or dotted UID to a supported transfer syntax."""
    uid = getattr(pydicom.uid, name, None) if not name[:1].isdigit() else pydicom.uid.UID(name)
    supported = (pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.RLELossless, pydicom.uid.JPEG2000Lossless)
    if uid not in supported:
        keywords = [u.keyword for u in supported]
        raise OAKitError(f"RadiographSite.transfer_syntax: got {name!r}; expected one of {keywords}")
    return pydicom.uid.UID(uid)


@dataclass(frozen=True)
class KneeAnatomy:
    """One knee as the radiograph shows it (mm, degrees).

    Parameters
    ----------
    side : str
        ``"R"`` or ``"L"``.
    jsw_medial_mm, jsw_lateral_mm : float
        Minimum joint-space width of each tibiofemoral compartment, mm (>= 0).
    osteophyte_mm : Mapping[str, float]
        Marginal osteophyte length (mm, >= 0) at ``"FM"``, ``"FL"``, ``"TM"``, ``"TL"``; missing keys mean 0.
    sclerosis : float
        Subchondral sclerosis, 0 (none) to 1 (marked).
    varus_deg : float
        Tibiofemoral deformity, degrees; positive = varus, negative = valgus.
    """

    side: str
    jsw_medial_mm: float
    jsw_lateral_mm: float
    osteophyte_mm: Mapping[str, float] = field(default_factory=dict)
    sclerosis: float = 0.0
    varus_deg: float = 0.0

    def __post_init__(self) -> None:
        """Validate fields at construction so a bad knee fails with one clear line."""
        if self.side not in ("R", "L"):
            raise OAKitError(f"KneeAnatomy.side: got {self.side!r}; expected 'R' or 'L'")
        for name in ("jsw_medial_mm", "jsw_lateral_mm"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0.0 <= value <= 15.0):
                raise OAKitError(f"KneeAnatomy.{name}: got {value!r}; expected a finite width in [0, 15] mm")
        unknown = set(self.osteophyte_mm) - set(OSTEOPHYTE_KEYS)
        if unknown:
            raise OAKitError(f"KneeAnatomy.osteophyte_mm: unknown keys {sorted(unknown)}; expected {OSTEOPHYTE_KEYS}")
        for key, value in self.osteophyte_mm.items():
            if not (np.isfinite(value) and 0.0 <= value <= 15.0):
                raise OAKitError(f"KneeAnatomy.osteophyte_mm[{key!r}]: got {value!r}; expected a length in [0, 15] mm")
        if not (np.isfinite(self.sclerosis) and 0.0 <= self.sclerosis <= 1.0):
            raise OAKitError(f"KneeAnatomy.sclerosis: got {self.sclerosis!r}; expected a value in [0, 1]")
        if not (np.isfinite(self.varus_deg) and abs(self.varus_deg) <= 20.0):
            raise OAKitError(f"KneeAnatomy.varus_deg: got {self.varus_deg!r}; expected degrees in [-20, 20]")

    def osteophyte(self, key: str) -> float:
        """Osteophyte length (mm) at ``key`` (0 when absent)."""
        return float(self.osteophyte_mm.get(key, 0.0))


@dataclass(frozen=True)
class RadiographSite:
    """Acquisition settings of one site (differences between sites A–E).

    Parameters
    ----------
    site : str
        Site code, e.g. ``"A"``.
    photometric : str
        ``"MONOCHROME1"`` (stored values inverted: bone dark) or ``"MONOCHROME2"`` (bone bright).
    spacing_mm : float
        Detector pixel pitch (ImagerPixelSpacing), 0.1–0.3 mm.
    exposure : float
        Relative dose (1 = nominal); lower is noisier and brighter after the log transform.
    noise : float
        Standard deviation of additive electronic noise, in log-attenuation units.
    blur_mm : float
        Gaussian sigma (mm) of focal-spot plus detector unsharpness.
    transfer_syntax : str
        pydicom UID keyword (``"ExplicitVRLittleEndian"``, ``"RLELossless"``, ``"JPEG2000Lossless"``) or a dotted UID.
    modality : str
        ``"DX"`` or ``"CR"``.
    bits_stored : int
        BitsStored of the DICOM (12–16); rendered pixels use this range.
    """

    site: str
    photometric: str
    spacing_mm: float
    exposure: float
    noise: float
    blur_mm: float
    transfer_syntax: str
    modality: str = "DX"
    bits_stored: int = 12

    def __post_init__(self) -> None:
        """Validate fields at construction so a bad site profile fails with one clear line."""
        if self.photometric not in ("MONOCHROME1", "MONOCHROME2"):
            raise OAKitError(
                f"RadiographSite.photometric: got {self.photometric!r}; expected MONOCHROME1 or MONOCHROME2"
            )
        checks = {"spacing_mm": (0.1, 0.3), "exposure": (0.1, 10.0), "noise": (0.0, 0.5), "blur_mm": (0.0, 2.0)}
        for name, (low, high) in checks.items():
            value = getattr(self, name)
            if not (np.isfinite(value) and low <= value <= high):
                raise OAKitError(f"RadiographSite.{name}: got {value!r}; expected a value in [{low}, {high}]")
        if self.modality not in ("DX", "CR"):
            raise OAKitError(f"RadiographSite.modality: got {self.modality!r}; expected 'DX' or 'CR'")
        if not (isinstance(self.bits_stored, int) and 12 <= self.bits_stored <= 16):
            raise OAKitError(f"RadiographSite.bits_stored: got {self.bits_stored!r}; expected an int in [12, 16]")
        _transfer_syntax_uid(self.transfer_syntax)


SITE_PROFILES: dict[str, RadiographSite] = {
    "A": RadiographSite("A", "MONOCHROME2", 0.15, 1.00, 0.015, 0.15, "ExplicitVRLittleEndian", "DX", 12),
    "B": RadiographSite("B", "MONOCHROME1", 0.20, 0.75, 0.025, 0.25, "ExplicitVRLittleEndian", "CR", 12),
    "C": RadiographSite("C", "MONOCHROME2", 0.175, 1.25, 0.010, 0.20, "RLELossless", "DX", 14),
    "D": RadiographSite("D", "MONOCHROME2", 0.16, 0.90, 0.020, 0.20, "JPEG2000Lossless", "DX", 12),
    "E": RadiographSite("E", "MONOCHROME1", 0.19, 1.10, 0.020, 0.30, "ExplicitVRLittleEndian", "CR", 16),
}
"""Acquisition profiles of the five synthetic sites (photometric, spacing, exposure, noise, blur, transfer syntax)."""


@dataclass(frozen=True, eq=False)
class RenderedRadiograph:
    """A rendered bilateral PA radiograph with its ground-truth geometry.

    Attributes
    ----------
    pixels : numpy.ndarray
        uint16 ``(rows, cols)``, MONOCHROME2 sense (bone bright), values in ``[0, 2**bits_stored - 1]``.
    spacing_mm : float
        Square pixel pitch, mm.
    joint_centres_px : dict
        ``{"R": (row, col), "L": (row, col)}``: centre of each knee's joint space, pixels (right knee in the left half).
    compartment_centres_px : dict
        ``{"R": {"medial": (row, col), "lateral": (row, col)}, "L": {...}}``: minimum-JSW point of each compartment.
    bits_stored : int
        Number of significant bits in ``pixels``.
    """

    pixels: np.ndarray
    spacing_mm: float
    joint_centres_px: dict[str, tuple[float, float]]
    compartment_centres_px: dict[str, dict[str, tuple[float, float]]]
    bits_stored: int = 12


@dataclass(frozen=True)
class _Pose:
    """Placement of one knee frame in the image (mm) and its size factor."""

    row_mm: float
    col_mm: float
    angle_rad: float
    scale: float
    mirror: bool

    def to_image_mm(self, x: float, y: float) -> tuple[float, float]:
        """Map a knee-frame point (mm) to image (row_mm, col_mm)."""
        x = -x if self.mirror else x
        x, y = x * self.scale, y * self.scale
        c, s = math.cos(self.angle_rad), math.sin(self.angle_rad)
        return self.row_mm + s * x + c * y, self.col_mm + c * x - s * y


# --------------------------------------------------------------------------------------------- rendering


def render_bilateral_pa(
    right: KneeAnatomy,
    left: KneeAnatomy,
    site: RadiographSite,
    seed: int,
    field_mm: tuple[float, float] = (180.0, 280.0),
) -> RenderedRadiograph:
    """Render a standing bilateral PA knee radiograph at the site's pixel spacing.

    Parameters
    ----------
    right, left : KneeAnatomy
        The two knees; ``right.side`` must be ``"R"`` and ``left.side`` ``"L"``.
    site : RadiographSite
        Acquisition profile (spacing, exposure, noise, blur, bit depth).
    seed : int
        Seeds positioning variation, knee size, trabecular texture and noise.
    field_mm : tuple of float
        Detector field ``(height, width)`` in mm; default 180 x 280 mm.

    Returns
    -------
    RenderedRadiograph
        uint16 pixels (bone bright), spacing and the true joint and compartment centres in pixels.
    """
    if right.side != "R" or left.side != "L":
        raise OAKitError(f"render_bilateral_pa: got sides ({right.side!r}, {left.side!r}); expected ('R', 'L')")
    height, width = (float(v) for v in field_mm)
    if not (120.0 <= height <= 600.0 and 200.0 <= width <= 600.0):
        raise OAKitError(f"render_bilateral_pa.field_mm: got {field_mm!r}; expected (height >= 120, width >= 200) mm")
    rng = np.random.default_rng(seed)
    sp = site.spacing_mm
    shape = (int(round(height / sp)), int(round(width / sp)))
    poses = _draw_poses(rng, height, width)
    texture = _trabecular_texture(rng, shape, sp)
    attenuation = np.zeros(shape, np.float32)
    for anatomy, pose in ((right, poses["R"]), (left, poses["L"])):
        knee_rng = np.random.default_rng(rng.integers(2**63))
        _add_knee(attenuation, anatomy, pose, sp, texture, knee_rng)
    pixels = _expose(attenuation, site, rng)
    centres = {side: _to_px(pose.to_image_mm(0.0, 0.0), sp) for side, pose in poses.items()}
    compartments = {
        side: {
            "medial": _to_px(pose.to_image_mm(COMPARTMENT_OFFSET_MM, 0.0), sp),
            "lateral": _to_px(pose.to_image_mm(-COMPARTMENT_OFFSET_MM, 0.0), sp),
        }
        for side, pose in poses.items()
    }
    return RenderedRadiograph(pixels, sp, centres, compartments, site.bits_stored)


def _to_px(point_mm: tuple[float, float], spacing_mm: float) -> tuple[float, float]:
    """Convert an image point in mm to (row, col) pixels (pixel i is centred at i * spacing)."""
    return (point_mm[0] / spacing_mm, point_mm[1] / spacing_mm)


def _draw_poses(rng: np.random.Generator, height: float, width: float) -> dict[str, _Pose]:
    """Draw positioning: knee separation, translation, rotations and a participant size factor."""
    separation = rng.uniform(140.0, 162.0)
    centre_row = height / 2 + rng.uniform(-8.0, 8.0)
    centre_col = width / 2 + rng.uniform(-6.0, 6.0)
    tilt = math.radians(rng.uniform(-2.0, 2.0))
    size = float(np.clip(rng.normal(1.0, 0.045), 0.9, 1.1))
    poses = {}
    for side, sign in (("R", -1.0), ("L", 1.0)):
        poses[side] = _Pose(
            row_mm=centre_row + sign * math.sin(tilt) * separation / 2 + rng.uniform(-3.0, 3.0),
            col_mm=centre_col + sign * separation / 2,
            angle_rad=tilt + math.radians(rng.uniform(-1.5, 1.5)),
            scale=size * rng.uniform(0.99, 1.01),
            mirror=side == "L",
        )
    return poses


def _trabecular_texture(rng: np.random.Generator, shape: tuple[int, int], spacing_mm: float) -> np.ndarray:
    """Zero-mean band-pass texture (unit SD) of thin, vertically elongated grains, like loaded trabecular bone."""
    white = rng.standard_normal(shape, dtype=np.float32)
    fine = ndimage.gaussian_filter(white, (0.45 / spacing_mm, 0.12 / spacing_mm), truncate=3.0)
    broad = ndimage.uniform_filter(fine, int(round(1.5 / spacing_mm)))
    band = fine - broad
    band /= band.std() + 1e-6
    return band


def _add_knee(
    attenuation: np.ndarray,
    anatomy: KneeAnatomy,
    pose: _Pose,
    spacing_mm: float,
    texture: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Add one knee's soft tissue and bone line integrals (log-attenuation) into ``attenuation`` in place."""
    soft_box = _image_box(pose, (-80.0, 80.0), (-130.0, 130.0), attenuation.shape, spacing_mm)
    x, y = _knee_frame(pose, soft_box, spacing_mm)
    soft_half_width = rng.uniform(50.0, 62.0)
    attenuation[soft_box] += _MU_SOFT * pose.scale * _soft_tissue_path(x, y, soft_half_width)
    shapes = _KneeShapes(anatomy, pose.scale, rng)
    for part, (xr, yr) in shapes.boxes().items():
        box = _image_box(pose, xr, yr, attenuation.shape, spacing_mm)
        if box[0].stop <= box[0].start or box[1].stop <= box[1].start:
            continue
        x, y = _knee_frame(pose, box, spacing_mm)
        cortical, trabecular, density = shapes.paths(part, x, y)
        trab_mu = _MU_TRABECULAR * density * (1.0 + 0.12 * texture[box])
        attenuation[box] += pose.scale * (_MU_CORTICAL * cortical + trab_mu * trabecular)


def _image_box(
    pose: _Pose, x_range: tuple[float, float], y_range: tuple[float, float], shape: tuple[int, int], sp: float
) -> tuple[slice, slice]:
    """Pixel slices covering a knee-frame rectangle (mm) after placement, clipped to the image."""
    corners = [pose.to_image_mm(x, y) for x in x_range for y in y_range]
    rows = [c[0] for c in corners]
    cols = [c[1] for c in corners]
    r0, r1 = max(int(min(rows) / sp) - 2, 0), min(int(max(rows) / sp) + 3, shape[0])
    c0, c1 = max(int(min(cols) / sp) - 2, 0), min(int(max(cols) / sp) + 3, shape[1])
    return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))


def _knee_frame(pose: _Pose, box: tuple[slice, slice], sp: float) -> tuple[np.ndarray, np.ndarray]:
    """Knee-frame coordinates (x medial, y distal; mm before scaling) of every pixel in ``box``."""
    rows = (np.arange(box[0].start, box[0].stop, dtype=np.float32) * sp - pose.row_mm)[:, None]
    cols = (np.arange(box[1].start, box[1].stop, dtype=np.float32) * sp - pose.col_mm)[None, :]
    c, s = math.cos(pose.angle_rad), math.sin(pose.angle_rad)
    x = (c * cols + s * rows) / pose.scale
    y = (-s * cols + c * rows) / pose.scale
    return (-x if pose.mirror else x), y


def _soft_tissue_path(x: np.ndarray, y: np.ndarray, half_width: float) -> np.ndarray:
    """Soft-tissue path length (mm) through an elliptic leg that widens toward the thigh."""
    w = half_width + 0.16 * np.maximum(-y - 20.0, 0.0) + 0.06 * np.maximum(y - 50.0, 0.0)
    depth = 0.92 * w
    return 2.0 * depth * np.sqrt(np.clip(1.0 - ((x + 4.0) / w) ** 2, 0.0, None))


def _rows_within(y: np.ndarray, low: float, high: float) -> slice:
    """Rows of a knee-frame ``y`` grid (mm; rows run distally) that contain any point with ``low <= y <= high``."""
    hit = np.flatnonzero((y.max(axis=1) >= low) & (y.min(axis=1) <= high))
    return slice(int(hit[0]), int(hit[-1]) + 1) if hit.size else slice(0, 0)


def _chord(d: np.ndarray, radius: np.ndarray | float) -> np.ndarray:
    """Path length (mm) through a round section of ``radius`` along a ray ``d`` mm inside its edge."""
    d = np.minimum(np.maximum(d, 0.0), radius)
    return 2.0 * np.sqrt(d * (2.0 * radius - d))


def _smoothstep(t: np.ndarray) -> np.ndarray:
    """Cubic ease from 0 (t <= 0) to 1 (t >= 1)."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _ellipse_depth(
    x: np.ndarray,
    y: np.ndarray,
    cx: float,
    cy: float,
    ax: float,
    ay: float,
    ay_up: float | None = None,
    squareness: float = 0.0,
) -> np.ndarray:
    """Approximate signed distance (mm, > 0 inside) from an axis-aligned ellipse.

    ``ay_up`` is a different upper half-axis; ``squareness`` in [0, 1] blends ``u**2`` toward ``u**4`` across x,
    flattening the bottom and straightening the sides (femoral condyles).
    """
    if ay_up is not None:
        ay = np.where(y < cy, np.float32(ay_up), np.float32(ay))
    u, v = (x - cx) / ax, (y - cy) / ay
    u2 = u * u
    q = (1.0 - squareness) * u2 + squareness * u2 * u2 + v * v
    du = (2.0 * (1.0 - squareness) + 4.0 * squareness * u2) * u
    grad = np.sqrt((du / ax) ** 2 + (2.0 * v / ay) ** 2)
    return np.clip((1.0 - q) / np.maximum(grad, 1e-3), -60.0, 60.0)


def _spur_depth(
    x: np.ndarray, y: np.ndarray, anchor: tuple[float, float], direction: float, length: float, slope: float
) -> np.ndarray:
    """Signed distance (mm, > 0 inside) of a tapering osteophyte spur growing from ``anchor`` along ±x."""
    s = (x - anchor[0]) * direction
    half = (0.3 * length + 1.2) * np.clip(1.0 - s / length, 0.0, 1.0)
    across = half - np.abs(y - anchor[1] - slope * s)
    return np.minimum(np.minimum(across, length - s), s + 3.0)


class _KneeShapes:
    """Analytic bones of one knee in the knee frame; ``paths`` gives cortical/trabecular path lengths (mm)."""

    def __init__(self, anatomy: KneeAnatomy, scale: float, rng: np.random.Generator) -> None:
        self.anatomy = anatomy
        self.jsw_m = anatomy.jsw_medial_mm / scale
        self.jsw_l = anatomy.jsw_lateral_mm / scale
        self.ost = {key: anatomy.osteophyte(key) / scale for key in OSTEOPHYTE_KEYS}
        self.c = COMPARTMENT_OFFSET_MM
        self.femoral_tilt = math.tan(math.radians(rng.uniform(4.0, 7.0)))
        self.varus = math.tan(math.radians(anatomy.varus_deg))
        self.spines = (rng.uniform(4.5, 6.5), rng.uniform(3.5, 5.5))
        self.fibula = (-self.c - rng.uniform(12.0, 16.0), rng.uniform(19.0, 24.0), rng.uniform(9.0, 11.0))
        self.patella = (rng.uniform(-5.0, 1.0), rng.uniform(-42.0, -34.0))
        narrow = np.clip((6.0 - np.array([self.jsw_m, self.jsw_l])) / 5.0, 0.15, 1.0)
        self.sclerosis_weight = {"M": float(narrow[0]), "L": float(narrow[1])}

    def boxes(self) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
        """Knee-frame bounding rectangles ``(x_range, y_range)`` in mm of each bone."""
        return {
            "femur": ((-62.0, 62.0), (-120.0, 6.0)),
            "tibia": ((-62.0, 62.0), (-16.0, 120.0)),
            "fibula": ((-60.0, -18.0), (5.0, 120.0)),
            "patella": ((-30.0, 26.0), (-70.0, -8.0)),
        }

    def paths(self, part: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cortical path, trabecular path (mm) and relative trabecular density of ``part`` at knee-frame points."""
        depth, radius, cortex = getattr(self, f"_{part}")(x, y)
        cortical = _chord(depth, radius) - _chord(depth - cortex, radius - cortex)
        trabecular = _chord(depth - cortex, radius - cortex)
        density = self._sclerosis(x, y, depth) if part in ("femur", "tibia") else np.float32(1.0)
        return cortical, trabecular, density

    def _femur(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Femur: shaft flaring into the metaphysis, two condyle ellipses and the notch between them."""
        jsw_mean = 0.5 * (self.jsw_m + self.jsw_l)
        flare = np.exp(-np.maximum(-y - 24.0, 0.0) / 24.0)  # concave flare of the metaphysis
        half_width = np.minimum(15.5 + 23.0 * flare, 37.5)
        centre = self.femoral_tilt * np.minimum(y + 30.0, 0.0)
        roof = -jsw_mean / 2 - _NOTCH_HEIGHT_MM + 0.06 * np.minimum(x * x, 64.0)
        depth = np.minimum(half_width - np.abs(x - centre), roof - y)
        near = _rows_within(y, -52.0, 10.0)  # condyles and spurs live only here
        xs, ys, part = x[near], y[near], depth[near]
        for sign, jsw in ((1.0, self.jsw_m), (-1.0, self.jsw_l)):
            cy = -jsw / 2 - _CONDYLE_AY
            condyle = _ellipse_depth(xs, ys, sign * self.c, cy, _CONDYLE_AX, _CONDYLE_AY, 18.0, _CONDYLE_SQUARENESS)
            toward_bottom = np.clip((ys - cy) / _CONDYLE_AY, 0.0, 1.0)  # stretch only the articular (lower) side
            np.maximum(part, (1.0 + (_CONDYLE_SHARPNESS - 1.0) * toward_bottom) * condyle, out=part)
        for key, sign, jsw in (("FM", 1.0, self.jsw_m), ("FL", -1.0, self.jsw_l)):
            if self.ost[key] > 0.05:
                angle = math.radians(40.0)
                anchor = (
                    sign * (self.c + _CONDYLE_AX * math.cos(angle)),
                    -jsw / 2 - _CONDYLE_AY * (1 - math.sin(angle)),
                )
                spur = _spur_depth(xs, ys, anchor, sign, self.ost[key] + 1.5, 0.25)
                np.maximum(part, _SPUR_SHARPNESS * spur, out=part)
        radius = 15.5 + 14.0 * flare
        cortex = 4.0 - 2.8 * flare
        return depth, radius, cortex

    def _plateau(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tibial articular surface height (mm, +distal) and its slope dy/dx: concave medial, convex lateral, spines."""
        c = self.c
        medial = self.jsw_m / 2 - (x - c) ** 2 / 120.0
        lateral = self.jsw_l / 2 + (x + c) ** 2 / 240.0
        w = 1.0 / (1.0 + np.exp(-x / 1.2))
        surface = w * medial + (1.0 - w) * lateral
        slope = w * (-(x - c) / 60.0) + (1.0 - w) * (x + c) / 120.0
        for height, centre in ((self.spines[0], 5.0), (self.spines[1], -4.5)):
            bump = height * np.exp(-((x - centre) ** 2) / (2 * 3.0**2))
            surface = surface - bump
            slope = slope + bump * (x - centre) / 3.0**2
        edge = np.maximum(np.abs(x) - 34.0, 0.0)
        surface = surface + edge**2 / 5.0
        slope = slope + np.sign(x) * 2.0 * edge / 5.0
        return surface, slope

    def _tibia(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tibia: plateau with spines and rounded margins, metaphysis tapering into the shaft, varus tilt."""
        taper = 1.0 - np.exp(-np.maximum(y - 6.0, 0.0) / 30.0)  # concave metaphysis under the plateau rim
        half_width = 15.0 + 21.0 * (1.0 - taper) + 5.0 * np.exp(-np.maximum(y - 4.0, 0.0) / 6.0)
        centre = self.varus * np.maximum(y - 5.0, 0.0)
        depth = half_width - np.abs(x - centre)
        near = _rows_within(y, -20.0, 30.0)  # below this the (stretched) plateau distance never wins
        xs, ys, part = x[near], y[near], depth[near]
        surface, slope = self._plateau(xs)
        np.minimum(part, _PLATEAU_SHARPNESS * (ys - surface) / np.sqrt(1.0 + slope * slope), out=part)
        for key, sign, jsw in (("TM", 1.0, self.jsw_m), ("TL", -1.0, self.jsw_l)):
            if self.ost[key] > 0.05:
                anchor = (sign * 37.5, (jsw / 2 + 3.5) if sign > 0 else (jsw / 2 + 4.5))
                spur = _spur_depth(xs, ys, anchor, sign, self.ost[key] + 1.5, -0.3)
                np.maximum(part, _SPUR_SHARPNESS * spur, out=part)
        depth[: near.start] = np.minimum(depth[: near.start], -1.0)  # rows above the plateau hold no tibia
        radius = 26.0 - 12.0 * taper
        cortex = 1.1 + 2.9 * taper
        return depth, radius, cortex

    def _fibula(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fibula: round head below the lateral plateau and a thin shaft (follows the tibial varus tilt)."""
        fx, fy, head = self.fibula
        shift = self.varus * np.maximum(y - 5.0, 0.0)
        head_depth = head - np.sqrt((x - fx - shift) ** 2 + (y - fy) ** 2)
        shaft_depth = np.minimum(6.5 - np.abs(x - fx - 1.5 - shift), y - fy)
        depth = np.maximum(head_depth, shaft_depth)
        radius = np.where(y < fy + 8.0, 10.0, 6.5).astype(np.float32)
        return depth, radius, np.float32(1.6)

    def _patella(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Patella: faint ellipse projected over the distal femur."""
        depth = _ellipse_depth(x, y, self.patella[0], self.patella[1], 21.0, 24.0)
        return depth, np.float32(2.0), np.float32(0.6)

    def _sclerosis(self, x: np.ndarray, y: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Relative trabecular density: 1 plus subchondral sclerosis within ~6 mm of each compartment's surface."""
        amount = self.anatomy.sclerosis
        if amount <= 0.0:
            return np.float32(1.0)
        density = np.ones_like(y)
        near = _rows_within(y, -45.0, 45.0)
        xs, ys = x[near], y[near]
        gap = 0.5 * max(self.jsw_m, self.jsw_l)
        band = np.exp(-np.maximum(np.abs(ys) - gap, 0.0) / 6.0)
        medial = self.sclerosis_weight["M"] * np.exp(-np.square(np.square((xs - self.c) / 13.0)))
        lateral = self.sclerosis_weight["L"] * np.exp(-np.square(np.square((xs + self.c) / 13.0)))
        density[near] += 1.6 * amount * band * (medial + lateral)
        return density


def _expose(attenuation: np.ndarray, site: RadiographSite, rng: np.random.Generator) -> np.ndarray:
    """Blur, add quantum and electronic noise, log-transform and quantise to ``site.bits_stored`` (bone bright).

    Quantum noise uses the Gaussian approximation of Poisson counts in the log domain: a pixel expecting
    ``n`` photons has log-signal SD ``1 / sqrt(n)``; electronic noise (``site.noise``) adds in quadrature.
    """
    sp = site.spacing_mm
    blurred = ndimage.gaussian_filter(attenuation, site.blur_mm / sp) if site.blur_mm > 0 else attenuation
    photons = np.float32(6.0e4 * (sp / 0.15) ** 2 * site.exposure)
    variance = np.exp(blurred) / photons + np.float32(site.noise**2)
    log_signal = blurred - np.float32(math.log(site.exposure))
    log_signal += np.sqrt(variance) * rng.standard_normal(blurred.shape, dtype=np.float32)
    top = 2**site.bits_stored - 1
    scaled = log_signal * np.float32(0.9 * top / _DISPLAY_RANGE) + np.float32(0.05 * top)
    return np.clip(np.rint(scaled, out=scaled), 0, top, out=scaled).astype(np.uint16)


# ---------------------------------------------------------------------------------- grades -> anatomy


def anatomy_from_grades(
    side: str,
    kl: int,
    jsw_medial_mm: float,
    jsw_lateral_mm: float,
    osteophyte_grades: Mapping[str, int] | None = None,
    jsn_medial: float = 0.0,
    jsn_lateral: float = 0.0,
    extra_osteophyte_mm: float | Mapping[str, float] = 0.0,
    seed: int = 0,
) -> KneeAnatomy:
    """Build a ``KneeAnatomy`` from KL/OARSI grades and JSW (mm), so the cohort generator need not know shapes.

    Parameters
    ----------
    side : str
        ``"R"`` or ``"L"``.
    kl : int
        Kellgren–Lawrence grade 0–4 (drives sclerosis and varus deformity).
    jsw_medial_mm, jsw_lateral_mm : float
        Minimum joint-space widths, mm (rendered exactly).
    osteophyte_grades : Mapping[str, int], optional
        OARSI osteophyte grades 0–3 at ``"FM"``, ``"FL"``, ``"TM"``, ``"TL"``;
        ``None`` derives typical grades from ``kl``.
    jsn_medial, jsn_lateral : float
        OARSI joint-space-narrowing grades 0–3 (raise sclerosis; medial > lateral gives varus, else valgus).
    extra_osteophyte_mm : float or Mapping[str, float]
        Osteophyte length (mm) beyond what the grade implies (the latent size the grade does not capture).
    seed : int
        Seeds small within-grade variation of osteophyte lengths and deformity.

    Returns
    -------
    KneeAnatomy
    """
    if kl not in (0, 1, 2, 3, 4):
        raise OAKitError(f"anatomy_from_grades.kl: got {kl!r}; expected an integer KL grade 0-4")
    grades = dict(osteophyte_grades) if osteophyte_grades is not None else _typical_osteophyte_grades(kl)
    for key, grade in grades.items():
        if key not in OSTEOPHYTE_KEYS or grade not in OSTEOPHYTE_MM_BY_GRADE:
            raise OAKitError(
                f"anatomy_from_grades.osteophyte_grades[{key!r}]: got {grade!r}; expected 0-3 at {OSTEOPHYTE_KEYS}"
            )
    rng = np.random.default_rng(seed)
    if isinstance(extra_osteophyte_mm, Mapping):
        extra = extra_osteophyte_mm
    else:
        extra = dict.fromkeys(OSTEOPHYTE_KEYS, extra_osteophyte_mm)
    lengths = {}
    for key in OSTEOPHYTE_KEYS:
        base = OSTEOPHYTE_MM_BY_GRADE[int(grades.get(key, 0))]
        if kl == 1 and base == 0.0 and key in ("FM", "TM"):
            base = 0.8  # KL1: doubtful osteophytic lipping
        jitter = 1.0 + 0.12 * rng.standard_normal() if base > 0 else 1.0
        lengths[key] = float(np.clip(base * jitter + float(extra.get(key, 0.0)), 0.0, 15.0))
    sclerosis = float(np.clip(0.22 * (kl - 1) + 0.08 * max(jsn_medial, jsn_lateral), 0.0, 1.0))
    direction = 1.0 if jsn_medial >= jsn_lateral else -1.0
    varus = {4: rng.uniform(4.0, 8.0), 3: rng.uniform(0.5, 2.5)}.get(kl, 0.0) * direction
    return KneeAnatomy(side, float(jsw_medial_mm), float(jsw_lateral_mm), lengths, sclerosis, float(varus))


def _typical_osteophyte_grades(kl: int) -> dict[str, int]:
    """Typical OARSI osteophyte grades for a KL grade (medial one grade above lateral from KL2)."""
    medial = {0: 0, 1: 0, 2: 1, 3: 2, 4: 3}[kl]
    lateral = max(medial - 1, 0)
    return {"FM": medial, "TM": medial, "FL": lateral, "TL": lateral}


# ------------------------------------------------------------------------------------------- DICOM


def _digest(*parts: object) -> int:
    """Stable integer hash of ``parts`` (independent of PYTHONHASHSEED)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


def _study_datetime(participant_id: str, visit_month: int) -> tuple[str, str]:
    """Deterministic StudyDate/StudyTime: a per-participant baseline in 2004–2006 plus the visit's months."""
    baseline = date(2004, 2, 1) + timedelta(days=_digest(participant_id, "baseline") % 700)
    day = baseline + timedelta(days=round(visit_month * 30.4375))
    seconds = 8 * 3600 + _digest(participant_id, visit_month, "time") % (9 * 3600)
    return day.strftime("%Y%m%d"), f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"


def write_radiograph_dicom(
    path: str | Path, rendered: RenderedRadiograph, site: RadiographSite, participant_id: str, visit_month: int
) -> None:
    """Write ``rendered`` as a 16-bit DX/CR DICOM file, atomically and byte-reproducibly.

    Parameters
    ----------
    path : str or Path
        Output file (``xray/{ID}_V00_PA.dcm`` in a cohort).
    rendered : RenderedRadiograph
        Output of :func:`render_bilateral_pa` (bone bright; inverted here when the site is MONOCHROME1).
    site : RadiographSite
        Photometric interpretation, modality, bit depth and transfer syntax to write.
    participant_id : str
        PatientID; with ``visit_month`` it seeds the UIDs and dates, so equal inputs give identical bytes.
    visit_month : int
        Months since baseline (0, 12, 24, ...).
    """
    pixels = np.asarray(rendered.pixels)
    if pixels.ndim != 2 or pixels.dtype != np.uint16:
        raise OAKitError(
            f"write_radiograph_dicom.rendered.pixels: got {pixels.dtype} {pixels.shape}; expected uint16 (rows, cols)"
        )
    if not isinstance(participant_id, str) or not participant_id.strip() or len(participant_id) > 64:
        raise OAKitError(f"write_radiograph_dicom.participant_id: got {participant_id!r}; expected a non-empty string")
    if not isinstance(visit_month, (int, np.integer)) or visit_month < 0:
        raise OAKitError(f"write_radiograph_dicom.visit_month: got {visit_month!r}; expected an integer >= 0")
    top = 2**site.bits_stored - 1
    if int(pixels.max()) > top:
        raise OAKitError(
            f"write_radiograph_dicom.rendered.pixels: max {int(pixels.max())} exceeds {site.bits_stored} bits"
        )
    stored = (top - pixels).astype(np.uint16) if site.photometric == "MONOCHROME1" else pixels
    ds = _dicom_dataset(stored, rendered.spacing_mm, site, participant_id, int(visit_month))
    syntax = _transfer_syntax_uid(site.transfer_syntax)
    if syntax.is_compressed and _encoder_available(syntax):
        ds.compress(syntax, stored, generate_instance_uid=False)
    else:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        ds.PixelData = np.ascontiguousarray(stored).astype("<u2").tobytes()
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def _encoder_available(syntax: pydicom.uid.UID) -> bool:
    """Whether pydicom can encode ``syntax`` here; warns and falls back to uncompressed when it cannot."""

    encoder = get_encoder(syntax)
    if encoder.is_available:
        return True
    warnings.warn(f"no encoder for {syntax.name} ({encoder.missing_dependencies}); writing uncompressed", stacklevel=3)
    return False


def _dicom_dataset(
    stored: np.ndarray, spacing_mm: float, site: RadiographSite, participant_id: str, visit_month: int
) -> Dataset:
    """Header of the radiograph: patient/study/series identity, geometry, pixel description and display window."""
    if site.modality == "DX":
        sop_class = pydicom.uid.DigitalXRayImageStorageForPresentation
    else:
        sop_class = pydicom.uid.ComputedRadiographyImageStorage
    uid = {
        kind: pydicom.uid.generate_uid(entropy_srcs=[participant_id, str(visit_month), kind])
        for kind in ("study", "series", "sop")
    }
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid["sop"]
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    study_date, study_time = _study_datetime(participant_id, visit_month)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, uid["sop"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = study_time
    ds.AccessionNumber = f"{_digest(participant_id, visit_month, 'accession') % 10**8:08d}"
    ds.Modality = site.modality
    ds.Manufacturer = "oa_kit synthetic renderer"
    ds.InstitutionName = f"Synthetic site {site.site}"
    ds.StudyDescription = "Knee radiograph (synthetic, not a real patient)"
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.PatientName = f"SYNTHETIC^{participant_id}"
    ds.PatientID = participant_id
    ds.BodyPartExamined = "KNEE"
    ds.ViewPosition = "PA"
    ds.ImageLaterality = "B"
    ds.PatientOrientation = ["L", "F"]
    ds.ClinicalTrialTimePointID = str(visit_month)
    ds.ClinicalTrialTimePointDescription = f"{visit_month} months after baseline"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid["study"], uid["series"]
    ds.StudyID = f"{visit_month:03d}"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.KVP = 65
    ds.DistanceSourceToDetector = 1000
    ds.ImagerPixelSpacing = [f"{spacing_mm:.6g}", f"{spacing_mm:.6g}"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = site.photometric
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, site.bits_stored, site.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    if site.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
    low, high = np.percentile(stored[::4, ::4], [0.5, 99.5])
    ds.WindowCenter = f"{(low + high) / 2:.1f}"
    ds.WindowWidth = f"{max(high - low, 1.0):.1f}"
    ds.BurnedInAnnotation = "NO"
    return ds
