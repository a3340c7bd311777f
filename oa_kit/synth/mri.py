"""Synthetic sagittal DESS-like knee MRI phantom whose regional cartilage thickness is known exactly.

The phantom is built from analytic surfaces in right-knee RAS coordinates (mm, origin at the volume centre):

* femur: medial and lateral condyles whose sagittal profile is a circle about a per-compartment centre
  (medial radius larger), joined anteriorly by the trochlea and separated posteriorly by the notch, plus the shaft;
* tibia: a sloped plateau (medial concave, lateral convex, intercondylar eminence between them) and a tapering shaft;
* patella: the posterior cap of a sphere, anterior to the trochlea;
* cartilage: shells on those bone surfaces following a smooth field (painted radially for the femur and patella,
  along the normal for the tibia) scaled so that each subregion of :data:`oa_kit.io.labels.SUBREGIONS` has the
  requested mean thickness **measured along the bone-surface normal** (the DESIGN rule). For the sphere-cap patella
  radial is normal; on the femur it is not where the radius changes (the condyles' rounded sides, the trochlea, the
  notch), so the femoral truth is the radial offset times the cosine between radius and surface normal, averaged over
  the true surface area;
* menisci (wedges at the plateau periphery), a joint-fluid rim, a suprapatellar pouch, patellar tendon and a
  fat/muscle background.

Images are rendered at 2x supersampling on the in-plane (AP, SI) axes and averaged (partial volume), then a smooth
bias field and Rician noise are applied; labels are sampled at the voxel centres (unbiased boundaries). A left knee is the exact mirror image (along x) of the right knee rendered
with the same seed. ``RenderedMRI.true_thickness_mm`` is computed analytically from the thickness field on a fine
surface grid using the subregion rule of docs/DESIGN.md, never from voxels, over the cartilage at least
:data:`TRUTH_MIN_THICKNESS_MM` thick (the fields are scaled so that this mean equals the requested target).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from oa_kit.errors import OAKitError
from oa_kit.io.labels import FEMORAL_CENTRAL_HALF_ANGLE_DEG, LABEL_IDS, SUBREGIONS
from oa_kit.io.mri import MRIVolume, write_nifti

__all__ = [
    "DEFAULT_GEOMETRY",
    "DEFAULT_THICKNESS_MM",
    "MRIGeometry",
    "MRISite",
    "RenderedMRI",
    "SITE_MRI",
    "TISSUE_CONTRASTS",
    "render_knee_mri",
    "write_knee_mri",
]

#: Output intensity of joint fluid (the brightest tissue) before noise; images are stored as int16.
FLUID_SIGNAL = 1000.0
_VISIT_CODES = {0: "V00", 12: "V01", 24: "V03", 36: "V05", 48: "V06", 72: "V08", 96: "V10"}


@dataclass(frozen=True)
class MRIGeometry:
    """Voxel grid of a synthetic sagittal volume: ``shape`` (LR, AP, SI) voxels and ``spacing_mm`` per axis."""

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or any(int(n) < 2 for n in self.shape):
            raise OAKitError(f"MRIGeometry.shape: got {self.shape}; expected three voxel counts >= 2")
        if len(self.spacing_mm) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing_mm):
            raise OAKitError(f"MRIGeometry.spacing_mm: got {self.spacing_mm}; expected three positive mm values")

    @property
    def fov_mm(self) -> tuple[float, float, float]:
        """Field of view (mm) along LR, AP, SI."""
        return tuple(float(n * s) for n, s in zip(self.shape, self.spacing_mm))

    @property
    def affine(self) -> np.ndarray:
        """Voxel → RAS (mm) affine; voxel axes point +x, +y, +z and the volume centre sits at the origin."""
        aff = np.diag([*map(float, self.spacing_mm), 1.0])
        aff[:3, 3] = [-(n - 1) / 2.0 * s for n, s in zip(self.shape, self.spacing_mm)]
        return aff


@dataclass(frozen=True)
class MRISite:
    """Acquisition differences of one site: tissue ``contrast`` (1 = reference), Rician ``noise`` (fraction of the
    fluid signal) and multiplicative ``bias_field`` amplitude (log scale)."""

    site: str
    contrast: float
    noise: float
    bias_field: float


#: MRI acquisition differences between the synthetic sites A–E.
SITE_MRI: Mapping[str, MRISite] = MappingProxyType(
    {
        "A": MRISite("A", contrast=1.00, noise=0.030, bias_field=0.10),
        "B": MRISite("B", contrast=0.90, noise=0.040, bias_field=0.15),
        "C": MRISite("C", contrast=1.10, noise=0.025, bias_field=0.08),
        "D": MRISite("D", contrast=0.85, noise=0.050, bias_field=0.20),
        "E": MRISite("E", contrast=1.05, noise=0.035, bias_field=0.12),
    }
)

#: Sagittal 2 mm slices, 0.5 mm in plane: an 80 x 64 x 64 mm field of view around the joint line.
DEFAULT_GEOMETRY = MRIGeometry(shape=(40, 128, 128), spacing_mm=(2.0, 0.5, 0.5))

#: The OAI 3D DESS voxel size (0.7 mm sagittal slices, 0.3646 mm in plane) over the same field of view: the grid
#: cartilage morphometry is done on, about 7x the voxels of the default (renders in ~2.5 s instead of ~0.6 s).
OAI_DESS_GEOMETRY = MRIGeometry(shape=(114, 176, 176), spacing_mm=(0.7, 0.3646, 0.3646))

#: Phantom grids by name (``--geometry`` of ``oa-kit mri train`` / ``evaluate``).
MRI_GEOMETRIES: Mapping[str, MRIGeometry] = MappingProxyType(
    {"phantom": DEFAULT_GEOMETRY, "oai-dess": OAI_DESS_GEOMETRY}
)

#: Typical healthy mean cartilage thickness (mm) per subregion, a convenient default target.
DEFAULT_THICKNESS_MM: Mapping[str, float] = MappingProxyType(
    {
        "femoral_medial_anterior": 2.2,
        "femoral_medial_central": 2.3,
        "femoral_medial_posterior": 2.0,
        "femoral_lateral_anterior": 2.4,
        "femoral_lateral_central": 2.1,
        "femoral_lateral_posterior": 1.9,
        "tibial_medial": 1.8,
        "tibial_lateral": 2.3,
        "patellar": 2.8,
    }
)

#: Cartilage thinner than this (mm) does not count toward the true regional mean thickness. The phantom's plates taper
#: smoothly to exactly 0 mm at their margins, a rendering convenience: real plates end at a finite thickness, and the
#: reference measurements of real cartilage (Chondrometrics' ThCcAB) average over the cartilage a reader segments.
#: 0.1 mm is a fifth of the default 0.5 mm voxel and well below the ~0.25 mm that voxel-based methods resolve, so the
#: truth still includes rim cartilage no segmentation can see. ``RenderedMRI.true_thickness_all_mm`` keeps the mean
#: over the whole footprint (down to 0 mm) for reference.
TRUTH_MIN_THICKNESS_MM = 0.1


@dataclass(frozen=True)
class RenderedMRI:
    """One rendered knee: ``image`` float32 (LR, AP, SI) in integer-valued signal units, ``labels`` uint8
    (harmonised convention), ``affine`` (voxel → RAS mm), ``true_thickness_mm`` per subregion (over cartilage at least
    :data:`TRUTH_MIN_THICKNESS_MM` thick), ``side``, and ``true_thickness_all_mm`` (whole footprint, rim down to 0 mm)."""

    image: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    true_thickness_mm: Mapping[str, float]
    side: str
    true_thickness_all_mm: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size (mm) along LR, AP, SI."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))


# --------------------------------------------------------------------------------------------------------------------
# Anatomy (right knee, mm). Fixed layout with a small seeded size/position variation.
# --------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Anatomy:
    scale: float
    shift: tuple[float, float, float]
    r_med: float
    r_lat: float
    x_med: tuple[float, float]  # medial condyle x-range
    x_lat: tuple[float, float]  # lateral condyle x-range
    x_notch: float  # notch centre (field split for medial/lateral)
    y_c: float  # condyle centres, AP
    tib_z0: float  # plateau height at y = 0
    tib_slope: float  # tan(posterior slope)
    plateau_med: tuple[float, float, float, float]  # centre x, centre y, semi-axis x, semi-axis y
    plateau_lat: tuple[float, float, float, float]
    pat_radius: float
    pat_depth: float
    pat_x: float
    modulation: np.ndarray  # random coefficients of the smooth thickness modulation


def _draw_anatomy(rng: np.random.Generator) -> _Anatomy:
    """Draw one knee's anatomy: ±5% size and ±1.5 mm position around the template."""
    s = float(rng.uniform(0.95, 1.05))
    jitter = rng.uniform(-1.5, 1.5, size=3)
    shift = (float(jitter[0]), float(jitter[1]) - 1.0, float(jitter[2]))  # joint 1 mm posterior to the FOV centre
    return _Anatomy(
        scale=s,
        shift=shift,
        r_med=19.0 * s,
        r_lat=17.0 * s,
        x_med=(-33.0 * s, -7.0 * s),
        x_lat=(5.0 * s, 30.0 * s),
        x_notch=-1.0 * s,
        y_c=-3.0,
        tib_z0=-15.0,
        tib_slope=float(np.tan(np.deg2rad(rng.uniform(5.0, 9.0)))),
        plateau_med=(-19.0 * s, -1.0, 12.0 * s, 19.0 * s),
        plateau_lat=(16.0 * s, -1.0, 11.0 * s, 16.0 * s),
        pat_radius=16.0 * s,
        pat_depth=11.0 * s,
        pat_x=3.0 * s,
        modulation=rng.normal(0.0, 1.0, size=(3, 4)),
    )


def _smoothstep(v: np.ndarray) -> np.ndarray:
    """Cubic smoothstep on [0, 1] (0 below, 1 above)."""
    v = np.clip(v, 0.0, 1.0)
    return v * v * (3.0 - 2.0 * v)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    """Logistic function."""
    return 1.0 / (1.0 + np.exp(-v))


def _box(x: np.ndarray, lo: float, hi: float, width: float) -> np.ndarray:
    """Smooth indicator of ``lo <= x <= hi`` with edges ``width`` mm wide."""
    return _sigmoid((x - lo) / width) * _sigmoid((hi - x) / width)


def _modulation(a: _Anatomy, u: np.ndarray, v: np.ndarray, row: int) -> np.ndarray:
    """Smooth seeded ±~15% thickness modulation over surface coordinates (u, v) scaled to about [-1, 1]."""
    c = a.modulation[row]
    return 1.0 + 0.06 * (c[0] * np.cos(1.3 * u + c[2]) + c[1] * np.sin(1.1 * v + c[3]) + 0.5 * c[2] * np.cos(u + v))


# ---- femur -----------------------------------------------------------------------------------------------------------
def _femur_membership(a: _Anatomy, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smooth medial / lateral condyle membership along x."""
    return _box(x, *a.x_med, 1.0), _box(x, *a.x_lat, 1.0)


def _femur_radius(a: _Anatomy, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Bone surface radius (mm) at (x, θ) about the local condyle centre: condyles, trochlea and notch."""
    m_med, m_lat = _femur_membership(a, x)
    in_notch = np.clip(1.0 - m_med - m_lat, 0.0, 1.0) * _box(x, a.x_med[0], a.x_lat[1], 1.0)
    r_cond = a.r_med * m_med + a.r_lat * m_lat
    troch = _smoothstep((theta - 25.0) / 25.0)  # anterior: trochlear groove; posterior/inferior: notch
    r_notch = (0.90 * troch + 0.35 * (1.0 - troch)) * 0.5 * (a.r_med + a.r_lat)
    return r_cond + in_notch * r_notch


def _femur_centre(a: _Anatomy, x: np.ndarray, zc_med: float, zc_lat: float) -> tuple[np.ndarray, np.ndarray]:
    """Sagittal condyle centre (y, z) as a smooth function of x (medial and lateral blended across the notch)."""
    w = _sigmoid((x - a.x_notch) / 2.0)
    y = np.full_like(x, a.y_c)
    return y, zc_med * (1.0 - w) + zc_lat * w


def _femur_shape(a: _Anatomy, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Unscaled femoral cartilage thickness profile in (x, θ): tapers to 0 at the cartilage borders."""
    m_med, m_lat = _femur_membership(a, x)
    cond = _smoothstep((theta + 115.0) / 6.0) * _smoothstep((105.0 - theta) / 6.0)
    cond_x = _smoothstep((x - a.x_med[0] - 1.0) / 2.0) * _smoothstep((a.x_med[1] - x - 0.5) / 2.0) + _smoothstep(
        (x - a.x_lat[0] - 0.5) / 2.0
    ) * _smoothstep((a.x_lat[1] - x - 1.0) / 2.0)
    troch = _smoothstep((theta - 35.0) / 6.0) * _smoothstep((105.0 - theta) / 6.0)
    troch_x = _smoothstep((x - a.x_med[0] - 1.0) / 2.0) * _smoothstep((a.x_lat[1] - x - 1.0) / 2.0)
    taper = np.maximum(cond * cond_x, troch * troch_x)
    return taper * _modulation(a, x / 20.0, theta / 60.0, 0)


def _femur_regions(a: _Anatomy, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Hard subregion index (0..5, order of SUBREGIONS) in the femur's own (x, θ) parametrisation."""
    lateral = x > a.x_notch
    h = FEMORAL_CENTRAL_HALF_ANGLE_DEG
    sector = np.where(theta > h, 0, np.where(theta < -h, 2, 1))
    return sector + 3 * lateral


def _femur_soft(a: _Anatomy, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Soft subregion memberships (6, ...) so the scaled field stays smooth across region borders."""
    lat = _sigmoid((x - a.x_notch) / 2.0)
    h = FEMORAL_CENTRAL_HALF_ANGLE_DEG
    ant = _sigmoid((theta - h) / 5.0)
    post = _sigmoid((-h - theta) / 5.0)
    cen = np.clip(1.0 - ant - post, 0.0, 1.0)
    return np.stack([(1 - lat) * ant, (1 - lat) * cen, (1 - lat) * post, lat * ant, lat * cen, lat * post])


# ---- tibia -----------------------------------------------------------------------------------------------------------
def _plateau_rho(plateau: tuple[float, float, float, float], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Normalised elliptic radius within one plateau (1 at its border)."""
    cx, cy, ax, ay = plateau
    return np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)


def _tibia_top(a: _Anatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Height (mm) of the subchondral tibial surface: sloped, medial concave, lateral convex, with the eminence."""
    bump_m = np.clip(1.0 - _plateau_rho(a.plateau_med, x, y) ** 2, 0.0, None)
    bump_l = np.clip(1.0 - _plateau_rho(a.plateau_lat, x, y) ** 2, 0.0, None)
    spines = 4.5 * np.exp(-(((x - a.x_notch) / 3.5) ** 2)) * np.exp(-((y / 8.0) ** 2))
    return a.tib_z0 + a.tib_slope * y - 1.0 * bump_m + 0.6 * bump_l + spines


def _tibia_shape(a: _Anatomy, x: np.ndarray, y: np.ndarray, medial: bool) -> np.ndarray:
    """Unscaled tibial cartilage thickness profile on one plateau (0 outside it)."""
    plateau = a.plateau_med if medial else a.plateau_lat
    rho = _plateau_rho(plateau, x, y)
    return _smoothstep((1.0 - rho) / 0.12) * _modulation(a, x / 10.0, y / 12.0, 1)


def _tibia_normal_z(a: _Anatomy, x: np.ndarray, y: np.ndarray, eps: float = 0.05) -> np.ndarray:
    """z component of the unit normal of the tibial surface (for thickness measured along the normal)."""
    gx = (_tibia_top(a, x + eps, y) - _tibia_top(a, x - eps, y)) / (2 * eps)
    gy = (_tibia_top(a, x, y + eps) - _tibia_top(a, x, y - eps)) / (2 * eps)
    return 1.0 / np.sqrt(1.0 + gx * gx + gy * gy)


# ---- patella ---------------------------------------------------------------------------------------------------------
def _patella_shape(a: _Anatomy, ux: np.ndarray, uy: np.ndarray, uz: np.ndarray) -> np.ndarray:
    """Unscaled patellar cartilage profile over unit directions from the sphere centre (posterior cap only)."""
    cos_phi = -uy
    phi = np.degrees(np.arccos(np.clip(cos_phi, -1.0, 1.0)))
    return _smoothstep((46.0 - phi) / 6.0) * _modulation(a, 2.0 * ux, 2.0 * uz, 2)


# --------------------------------------------------------------------------------------------------------------------
# Thickness fields and analytic truth
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class _Fields:
    fem_scale: np.ndarray  # (6,) per femoral subregion
    tib_scale: np.ndarray  # (2,) medial, lateral
    pat_scale: float
    zc_med: float = 0.0
    zc_lat: float = 0.0
    pat_centre: tuple[float, float, float] = (0.0, 0.0, 0.0)


# Fine surface grids for fitting and truth (0.4 mm along x/y, 1° around the condyles); area-weighted sums.
_FEM_X = np.arange(-39.8, 40.0, 0.4)
_FEM_T = np.arange(-179.5, 180.0, 1.0)
_TIB_XY = np.meshgrid(np.arange(-39.8, 40.0, 0.4), np.arange(-29.8, 30.0, 0.4), indexing="ij")


def _femur_thickness(a: _Anatomy, f: _Fields, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Femoral cartilage thickness (mm) at (x, θ)."""
    soft = _femur_soft(a, x, theta)
    return _femur_shape(a, x, theta) * np.tensordot(f.fem_scale, soft, axes=1)


def _tibia_thickness(a: _Anatomy, f: _Fields, x: np.ndarray, y: np.ndarray, medial: bool) -> np.ndarray:
    """Tibial cartilage thickness (mm, along the normal) on one plateau."""
    return _tibia_shape(a, x, y, medial) * f.tib_scale[0 if medial else 1]


def _fit_fields(a: _Anatomy, target: Mapping[str, float], centres: tuple[float, float] = (0.0, 0.0)) -> _Fields:
    """Scale the smooth fields so each subregion's area-weighted mean thickness (the truth rule of :func:`_truth`:
    along the bone-surface normal, over cartilage at least TRUTH_MIN_THICKNESS_MM thick) equals the target.

    ``centres`` are the medial and lateral condyle centre heights (mm) that :func:`_place` sets; they tilt the femoral
    surface near the notch, so :func:`render_knee_mri` fits, places, and fits again with the placed centres.
    """
    xg, tg = np.meshgrid(_FEM_X, _FEM_T, indexing="ij")
    radius = _femur_radius(a, xg, tg)
    yc, zc = _femur_centre(a, xg, *centres)
    th = np.deg2rad(tg)
    cosine, area = _femur_surface(th, yc + radius * np.sin(th), zc - radius * np.cos(th))
    shape = _femur_shape(a, xg, tg) * cosine
    soft = _femur_soft(a, xg, tg)
    region = _femur_regions(a, xg, tg)
    fem_target = np.array([target[k] for k in SUBREGIONS[:6]])
    scale = fem_target.copy()
    for _ in range(8):
        t = shape * np.tensordot(scale, soft, axes=1)
        for r in range(6):
            m = (t >= TRUTH_MIN_THICKNESS_MM) & (region == r)
            scale[r] *= fem_target[r] / (np.sum(t[m] * area[m]) / np.sum(area[m]))
    x, y = _TIB_XY
    tib = [
        _scale_to_mean(_tibia_shape(a, x, y, medial), 1.0 / _tibia_normal_z(a, x, y), target[key])
        for medial, key in ((True, "tibial_medial"), (False, "tibial_lateral"))
    ]
    ux, uy, uz, w = _sphere_grid()
    pat = _scale_to_mean(_patella_shape(a, ux, uy, uz), w, target["patellar"])
    return _Fields(fem_scale=scale, tib_scale=np.array(tib), pat_scale=float(pat))


def _scale_to_mean(shape: np.ndarray, weight: np.ndarray, target: float) -> float:
    """Scale k such that the ``weight``-averaged ``k * shape`` over the part at least TRUTH_MIN_THICKNESS_MM thick is ``target``."""
    k = target
    for _ in range(8):
        m = k * shape >= TRUTH_MIN_THICKNESS_MM
        k = target / (np.sum(shape[m] * weight[m]) / np.sum(weight[m]))
    return float(k)


def _sphere_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unit directions on the posterior hemisphere (−y) with their area weights."""
    phi = np.deg2rad(np.arange(0.5, 90.0, 1.0))
    psi = np.deg2rad(np.arange(0.0, 360.0, 2.0))
    pg, sg = np.meshgrid(phi, psi, indexing="ij")
    return np.sin(pg) * np.cos(sg), -np.cos(pg), np.sin(pg) * np.sin(sg), np.sin(pg)


def _place(a: _Anatomy, f: _Fields) -> None:
    """Put the condyles on the tibial cartilage (0.3 mm fluid gap) and the patella in front of the trochlea."""
    gap = 0.3
    for medial in (True, False):
        cx, cy = (a.plateau_med if medial else a.plateau_lat)[:2]
        xs, ys = np.array([cx]), np.array([a.y_c])
        tib_surface = _tibia_top(a, xs, ys) + _tibia_thickness(a, f, xs, ys, medial) / _tibia_normal_z(a, xs, ys)
        r = a.r_med if medial else a.r_lat
        zc = float(tib_surface[0] + gap + _femur_thickness(a, f, xs, np.array([0.0]))[0] + r)
        if medial:
            f.zc_med = zc
        else:
            f.zc_lat = zc
    xs = np.array([a.pat_x])
    z_p = 0.5 * (f.zc_med + f.zc_lat)
    _, zc = _femur_centre(a, xs, f.zc_med, f.zc_lat)
    theta = 90.0 + np.degrees(np.arctan2(z_p - zc[0], _femur_radius(a, xs, np.array([90.0]))[0]))
    r_fem = _femur_radius(a, xs, np.array([theta]))[0] + _femur_thickness(a, f, xs, np.array([theta]))[0]
    y_front = a.y_c + np.sqrt(max(r_fem**2 - (z_p - zc[0]) ** 2, 1.0))
    t_pat = _patella_shape(a, np.zeros(1), -np.ones(1), np.zeros(1))[0] * f.pat_scale
    f.pat_centre = (a.pat_x, float(y_front + 0.6 + t_pat + a.pat_radius), float(z_p))


def _femur_surface(th: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine between radius and bone-surface normal, and the surface area element (mm^2 per grid cell), on the
    (x, θ) grid of the femoral bone surface points (x, py, pz) (θ in radians).

    The cartilage is painted as a radial offset of the bone surface; where the surface is not perpendicular to the
    radius (the condyles' rounded sides, the trochlea and the notch), the thickness along the normal, which is what
    the DESIGN rule measures, is the radial offset times this cosine.
    """
    d_py_dx, d_py_dt = np.gradient(py, _FEM_X, th[0], axis=(0, 1))
    d_pz_dx, d_pz_dt = np.gradient(pz, _FEM_X, th[0], axis=(0, 1))
    # normal = dP/dx x dP/dθ with dP/dx = (1, py_x, pz_x), dP/dθ = (0, py_θ, pz_θ)
    nx, ny, nz = d_py_dx * d_pz_dt - d_pz_dx * d_py_dt, -d_pz_dt, d_py_dt
    norm = np.sqrt(nx * nx + ny * ny + nz * nz)
    cosine = np.abs(ny * np.sin(th) - nz * np.cos(th)) / np.maximum(norm, 1e-12)  # radial unit (0, sin θ, −cos θ)
    area = norm * (_FEM_X[1] - _FEM_X[0]) * np.deg2rad(_FEM_T[1] - _FEM_T[0])
    return cosine, area


def _fitted_phantom(rng: np.random.Generator, target: Mapping[str, float]) -> tuple[_Anatomy, _Fields]:
    """Draw an anatomy and fit its thickness fields to ``target`` (mm): fit, place the bones, fit again with the
    placed condyle centres (they tilt the femoral surface near the notch), place again."""
    a = _draw_anatomy(rng)
    f = _fit_fields(a, target)
    _place(a, f)
    f = _fit_fields(a, target, (f.zc_med, f.zc_lat))
    _place(a, f)
    return a, f


def _femoral_normal_thickness(a: _Anatomy, f: _Fields) -> tuple[np.ndarray, ...]:
    """On the femur's (x, θ) grid: normal cartilage thickness (mm), surface area element (mm^2), x (mm) and the bone
    surface point (py, pz) (mm), and the radial thickness and radius (mm)."""
    xg, tg = np.meshgrid(_FEM_X, _FEM_T, indexing="ij")
    r = _femur_radius(a, xg, tg)
    radial = _femur_thickness(a, f, xg, tg)
    yc, zc = _femur_centre(a, xg, f.zc_med, f.zc_lat)
    th = np.deg2rad(tg)
    py, pz = yc + r * np.sin(th), zc - r * np.cos(th)
    cosine, area = _femur_surface(th, py, pz)
    return radial * cosine, area, xg, py, pz, radial, r


def _truth(a: _Anatomy, f: _Fields, floor_mm: float = TRUTH_MIN_THICKNESS_MM) -> dict[str, float]:
    """Mean thickness (mm) per subregion of the rendered cartilage, by the DESIGN rule, from the analytic field,
    over the part of each plate at least ``floor_mm`` thick (0 = the whole footprint, rim tapering to 0 mm)."""
    t, area, xg, py, pz, radial, r = _femoral_normal_thickness(a, f)
    covered = (t >= floor_mm) & (t > 0)
    vol = radial * r
    split = np.sum(xg * vol) / np.sum(vol)
    out: dict[str, float] = {}
    h = FEMORAL_CENTRAL_HALF_ANGLE_DEG
    for comp, sel, zcc in (("medial", xg < split, f.zc_med), ("lateral", xg >= split, f.zc_lat)):
        ang = np.degrees(np.arctan2(py - a.y_c, -(pz - zcc)))
        for name, m in (("anterior", ang > h), ("central", np.abs(ang) <= h), ("posterior", ang < -h)):
            m = m & sel & covered
            out[f"femoral_{comp}_{name}"] = float(np.sum(t[m] * area[m]) / np.sum(area[m]))
    x, y = _TIB_XY
    w = 1.0 / _tibia_normal_z(a, x, y)
    for medial, key in ((True, "tibial_medial"), (False, "tibial_lateral")):
        tt = _tibia_thickness(a, f, x, y, medial)
        m = (tt >= floor_mm) & (tt > 0)
        out[key] = float(np.sum(tt[m] * w[m]) / np.sum(w[m]))
    ux, uy, uz, w = _sphere_grid()
    tp = _patella_shape(a, ux, uy, uz) * f.pat_scale
    m = (tp >= floor_mm) & (tp > 0)
    out["patellar"] = float(np.sum(tp[m] * w[m]) / np.sum(w[m]))
    return {k: out[k] for k in SUBREGIONS}


# --------------------------------------------------------------------------------------------------------------------
# Voxel rendering
# --------------------------------------------------------------------------------------------------------------------
# Tissue classes for intensities (not labels): _SOFT is muscle (the background), _FAT the fat islands drawn in it.
_SOFT, _MARROW, _CORTEX, _CARTILAGE, _FLUID, _MENISCUS, _TENDON, _FAT = range(8)
#: Signal per tissue class (fluid = 1) of each phantom contrast. ``"we-dess"``: water-excited DESS as in real OAI and
#: GE scans: the water excitation suppresses fat, so fatty marrow and fat islands are dark, muscle intermediate,
#: cartilage bright and fluid brightest (after percentile scaling a rendered knee reads marrow ~0.05, muscle ~0.6);
#: cortex, menisci and tendons are dark (short T2). ``"bright-marrow"``: the phantoms before issue #20 (marrow brighter
#: than soft tissue, no fat islands), the contrast the shipped MRI weights were trained on.
TISSUE_CONTRASTS: Mapping[str, np.ndarray] = MappingProxyType(
    {
        "we-dess": np.array([0.56, 0.05, 0.03, 0.72, 1.00, 0.07, 0.04, 0.06], dtype=np.float32),
        "bright-marrow": np.array([0.16, 0.34, 0.05, 0.72, 1.00, 0.07, 0.04, 0.16], dtype=np.float32),
    }
)
#: Contrast :func:`render_knee_mri` uses by default: ``"bright-marrow"`` while the shipped weights are the ones trained
#: on it (they segment ``"we-dess"`` phantoms with Dice < 0.35); switch to ``"we-dess"`` with weights that are not.
DEFAULT_CONTRAST = "bright-marrow"
#: Smooth-field level above which muscle becomes fat (about a third of the background), where fat differs from muscle.
_FAT_LEVEL = 0.15


def _grid(geometry: MRIGeometry, a: _Anatomy, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World coordinates (anatomy frame) of the sample grid: x at each voxel, y and z at ``factor`` samples per
    voxel (``factor`` 1 = voxel centres), broadcastable as (X, 1, 1), (1, Y, 1), (1, 1, Z)."""
    (nx, ny, nz), (sx, sy, sz) = geometry.shape, geometry.spacing_mm
    x = (np.arange(nx) - (nx - 1) / 2.0) * sx
    y = (np.arange(factor * ny) - (factor * ny - 1) / 2.0) * (sy / factor)
    z = (np.arange(factor * nz) - (factor * nz - 1) / 2.0) * (sz / factor)
    return (
        (x - a.shift[0]).astype(np.float32)[:, None, None],
        (y - a.shift[1]).astype(np.float32)[None, :, None],
        (z - a.shift[2]).astype(np.float32)[None, None, :],
    )


def _rasterise(a: _Anatomy, f: _Fields, geometry: MRIGeometry, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Label map and tissue-class map sampled on the grid of :func:`_grid` (each structure in its bounding box)."""
    X, Y, Z = _grid(geometry, a, factor)
    shape = (X.shape[0], Y.shape[1], Z.shape[2])
    labels = np.zeros(shape, dtype=np.uint8)
    tissue = np.zeros(shape, dtype=np.uint8)
    zc_top = max(f.zc_med, f.zc_lat)
    boxes = (
        (_render_tibia, (-40.0, 40.0), (a.tib_z0 - 60.0, a.tib_z0 + 12.0)),
        (_render_femur, (-40.0, 40.0), (min(f.zc_med, f.zc_lat) - a.r_med - 8.0, zc_top + 60.0)),
        (
            _render_patella,
            (f.pat_centre[1] - a.pat_radius - 8.0, f.pat_centre[1] + 8.0),
            (f.pat_centre[2] - a.pat_radius - 30.0, f.pat_centre[2] + 32.0),
        ),
    )
    for render, (ylo, yhi), (zlo, zhi) in boxes:
        ys, zs = _window(Y[0, :, 0], ylo, yhi), _window(Z[0, 0, :], zlo, zhi)
        render(a, f, X, Y[:, ys], Z[:, :, zs], labels[:, ys, zs], tissue[:, ys, zs])
    return labels, tissue


def _window(coords: np.ndarray, lo: float, hi: float) -> slice:
    """Index slice of the sorted 1-D ``coords`` inside [lo, hi] (may be empty)."""
    return slice(int(np.searchsorted(coords, lo)), int(np.searchsorted(coords, hi, side="right")))


def _paint(labels: np.ndarray, tissue: np.ndarray, mask: np.ndarray, label: int | None, cls: int) -> None:
    """Set label and tissue class where ``mask`` (later calls override earlier ones)."""
    if label is not None:
        labels[mask] = label
    tissue[mask] = cls


def _render_tibia(a: _Anatomy, f: _Fields, X, Y, Z, labels, tissue) -> None:
    """Tibia bone (with cortical plate), tibial cartilage, menisci and the fluid rim above the cartilage."""
    x2, y2 = np.broadcast_arrays(X[:, :, 0], Y[:, :, 0])
    top = _tibia_top(a, x2, y2)[:, :, None]
    nz = _tibia_normal_z(a, x2, y2)[:, :, None]
    foot = ((X + 1.0) / 38.0) ** 2 + ((Y + 2.0) / 26.0) ** 2
    narrowing = 1.0 - 0.3 * np.clip((a.tib_z0 - 8.0 - Z) / 20.0, 0.0, 1.0)
    inside = (foot < narrowing**2) & (Z < top)
    _paint(labels, tissue, inside, LABEL_IDS["tibia"], _MARROW)
    _paint(labels, tissue, inside & (Z > top - 0.8), None, _CORTEX)
    for medial, name in ((True, "medial"), (False, "lateral")):
        plateau = a.plateau_med if medial else a.plateau_lat
        rho = _plateau_rho(plateau, x2, y2)[:, :, None]
        t = _tibia_thickness(a, f, x2, y2, medial)[:, :, None] / nz
        cart = (Z >= top) & (Z < top + t) & (t > 0)
        ang = np.arctan2(Y - plateau[1], (X - plateau[0]) * (1 if medial else -1))
        gap = np.deg2rad(40.0 if medial else 22.0)
        ring = (rho > 0.72) & (rho < 1.12) & (np.abs(ang) > gap)
        height = 6.0 * np.clip((rho - 0.72) / 0.28, 0.0, 1.0) * np.clip((1.12 - rho) / 0.1, 0.0, 1.0)
        base = top + t
        men = ring & (Z >= base - 0.2) & (Z < base + height) & (labels == 0)
        _paint(labels, tissue, men, LABEL_IDS[f"{name}_meniscus"], _MENISCUS)
        fluid = (Z >= top + t) & (Z < top + t + 0.8) & (rho < 1.0) & (labels == 0)
        _paint(labels, tissue, fluid, None, _FLUID)
        _paint(labels, tissue, cart, LABEL_IDS[f"{name}_tibial_cartilage"], _CARTILAGE)


def _femur_lookup(a: _Anatomy, f: _Fields, X: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bone radius and cartilage thickness at every voxel via per-x tables over θ (0.5° bins)."""
    t_idx = np.clip(np.rint((theta + 180.0) * 2.0).astype(np.intp), 0, 719)
    x_col = X[:, 0, 0]
    tg = np.arange(720, dtype=np.float64) / 2.0 - 180.0
    xx, tt = np.meshgrid(x_col.astype(np.float64), tg, indexing="ij")
    r_tab = _femur_radius(a, xx, tt).astype(np.float32)
    t_tab = _femur_thickness(a, f, xx, tt).astype(np.float32)
    ix = np.broadcast_to(np.arange(x_col.size)[:, None, None], theta.shape)
    return r_tab[ix, t_idx], t_tab[ix, t_idx]


def _render_femur(a: _Anatomy, f: _Fields, X, Y, Z, labels, tissue) -> None:
    """Femur (condyles, trochlea, notch, shaft, cortical rim), femoral cartilage and its fluid rim."""
    yc, zc = _femur_centre(a, X[:, 0, 0].astype(np.float64), f.zc_med, f.zc_lat)
    dy = Y - yc.astype(np.float32)[:, None, None]
    dz = Z - zc.astype(np.float32)[:, None, None]
    r = np.sqrt(dy * dy + dz * dz)
    theta = np.degrees(np.arctan2(dy, -dz))
    r_bone, t = _femur_lookup(a, f, X, theta)
    x_ok = _box(X, a.x_med[0] - 1.0, a.x_lat[1] + 1.0, 0.7) > 0.5
    width = np.float32(0.72 * a.r_med) * (1.0 - 0.25 * np.clip(dz / 20.0, 0.0, 1.0))
    shaft = (dz > 0) & (np.abs(dy) < width) & (_box(X, a.x_med[0] + 4.0, a.x_lat[1] - 4.0, 1.0) > 0.5)
    bone = ((r < r_bone) & x_ok) | shaft
    _paint(labels, tissue, bone, LABEL_IDS["femur"], _MARROW)
    _paint(labels, tissue, bone & (r > r_bone - 0.8) & ~shaft, None, _CORTEX)
    shell = ~bone & (t > 0) & (r >= r_bone)
    fluid = shell & (r < r_bone + t + 0.8) & (labels == 0)
    _paint(labels, tissue, fluid, None, _FLUID)
    _paint(labels, tissue, shell & (r < r_bone + t), LABEL_IDS["femoral_cartilage"], _CARTILAGE)


def _render_patella(a: _Anatomy, f: _Fields, X, Y, Z, labels, tissue) -> None:
    """Patella (posterior sphere cap), patellar cartilage, its fluid rim, the patellar tendon and suprapatellar pouch."""
    cx, cy, cz = f.pat_centre
    R = a.pat_radius
    pouch = (((X - cx) / 24.0) ** 2 + ((Y - (cy - R + 4.0)) / 3.0) ** 2 + ((Z - (cz + 20.0)) / 10.0) ** 2) < 1.0
    _paint(labels, tissue, pouch & (labels == 0), None, _FLUID)
    tendon = (np.abs(X - cx) < 12.0) & (np.abs(Y - (cy - R + a.pat_depth - 4.0)) < 2.5) & (Z < cz - 8.0)
    _paint(labels, tissue, tendon & (labels == 0), None, _TENDON)
    dx, dy, dz = X - cx, Y - cy, Z - cz
    r = np.sqrt(dx * dx + dy * dy + dz * dz)
    bone = (r < R) & (Y < cy - R + a.pat_depth)
    _paint(labels, tissue, bone, LABEL_IDS["patella"], _MARROW)
    _paint(labels, tissue, bone & (r > R - 0.8), None, _CORTEX)
    safe_r = np.maximum(r, 1e-3)
    t = _patella_shape(a, dx / safe_r, dy / safe_r, dz / safe_r) * f.pat_scale
    shell = (r >= R) & (t > 0)
    _paint(labels, tissue, shell & (r < R + t + 0.8) & (labels == 0), None, _FLUID)
    _paint(labels, tissue, shell & (r < R + t), LABEL_IDS["patellar_cartilage"], _CARTILAGE)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], n_terms: int = 4) -> np.ndarray:
    """A smooth random field in about [-1, 1], built from separable low-frequency cosines (cheap to broadcast)."""
    axes = [np.linspace(0.0, 1.0, n, dtype=np.float32) for n in shape]
    out = np.zeros(shape, dtype=np.float32)
    for _ in range(n_terms):
        freq = rng.uniform(0.5, 2.0, size=3)
        phase = rng.uniform(0.0, 2 * np.pi, size=3)
        term = [np.cos(2 * np.pi * fr * ax + ph).astype(np.float32) for fr, ax, ph in zip(freq, axes, phase)]
        out += term[0][:, None, None] * term[1][None, :, None] * term[2][None, None, :]
    return out / n_terms


def _check_thickness(thickness_mm: Mapping[str, float]) -> dict[str, float]:
    """Validate the target thickness mapping (keys exactly SUBREGIONS, values in (0, 8] mm)."""
    keys = set(thickness_mm)
    if keys != set(SUBREGIONS):
        missing, extra = sorted(set(SUBREGIONS) - keys), sorted(keys - set(SUBREGIONS))
        raise OAKitError(f"thickness_mm: missing {missing}, unknown {extra}; expected keys {list(SUBREGIONS)}")
    out = {k: float(thickness_mm[k]) for k in SUBREGIONS}
    bad = {k: v for k, v in out.items() if not (np.isfinite(v) and 0.0 < v <= 8.0)}
    if bad:
        raise OAKitError(f"thickness_mm: values {bad} out of range; expected mean thickness in (0, 8] mm")
    return out


def _check_field_of_view(labels: np.ndarray, geometry: MRIGeometry) -> None:
    """Raise when cartilage or menisci touch the volume border (the thickness truth would include unseen parts)."""
    soft = np.zeros(len(LABEL_IDS), dtype=bool)
    soft[
        [
            LABEL_IDS[n]
            for n in (
                "femoral_cartilage",
                "medial_tibial_cartilage",
                "lateral_tibial_cartilage",
                "patellar_cartilage",
                "medial_meniscus",
                "lateral_meniscus",
            )
        ]
    ] = True
    faces = (labels[0], labels[-1], labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1])
    if any(soft[face].any() for face in faces):
        raise OAKitError(
            f"geometry: field of view {geometry.fov_mm} mm cuts the cartilage; "
            "expected at least 76 x 64 x 64 mm (LR, AP, SI) around the joint"
        )


def _check_side(side: str) -> str:
    """Validate a knee side ("R" or "L")."""
    if side not in ("R", "L"):
        raise OAKitError(f"side: got {side!r}; expected 'R' or 'L'")
    return side


def render_knee_mri(
    side: str,
    thickness_mm: Mapping[str, float],
    geometry: MRIGeometry = DEFAULT_GEOMETRY,
    site: MRISite = SITE_MRI["A"],
    seed: int = 0,
    contrast: str = DEFAULT_CONTRAST,
) -> RenderedMRI:
    """Render one sagittal DESS-like knee volume with its label map and true regional cartilage thickness.

    Parameters
    ----------
    side : {"R", "L"}
        Knee side; a left knee is the mirror image (along x) of the right knee drawn with the same seed.
    thickness_mm : mapping
        Target mean cartilage thickness (mm) per subregion; keys exactly :data:`oa_kit.io.labels.SUBREGIONS`.
    geometry : MRIGeometry
        Voxel grid (LR, AP, SI). The anatomy is about 80 x 64 x 64 mm; a smaller field of view crops it.
    site : MRISite
        Acquisition differences (contrast, noise, bias field).
    seed : int
        Seed for anatomy variation, thickness modulation, bias field and noise.
    contrast : str
        Tissue signal table, a key of :data:`TISSUE_CONTRASTS`: ``"we-dess"`` (real water-excited DESS, dark marrow)
        or ``"bright-marrow"`` (the earlier phantoms); default :data:`DEFAULT_CONTRAST`. Labels and truth do not
        depend on it.

    Returns
    -------
    RenderedMRI
        ``image`` float32 (LR, AP, SI), integer-valued (fluid ≈ 1000); ``labels`` uint8 harmonised labels;
        ``affine`` voxel → RAS mm; ``true_thickness_mm`` mean thickness of the rendered cartilage per subregion
        (over cartilage at least :data:`TRUTH_MIN_THICKNESS_MM` thick; ``true_thickness_all_mm``: whole footprint).
    """
    _check_side(side)
    target = _check_thickness(thickness_mm)
    if contrast not in TISSUE_CONTRASTS:
        raise OAKitError(f"contrast: got {contrast!r}; expected one of {sorted(TISSUE_CONTRASTS)}")
    rng = np.random.default_rng(seed)
    a, f = _fitted_phantom(rng, target)
    _, tissue = _rasterise(a, f, geometry, factor=2)  # 2x supersampled tissue map → partial-volume image
    coarse_labels, _ = _rasterise(a, f, geometry, factor=1)  # labels at the voxel centres
    image = _intensities(tissue, site, rng, TISSUE_CONTRASTS[contrast])
    _check_field_of_view(coarse_labels, geometry)
    if side == "L":
        image, coarse_labels = image[::-1].copy(), coarse_labels[::-1].copy()
    return RenderedMRI(
        image=image,
        labels=coarse_labels,
        affine=geometry.affine,
        true_thickness_mm=MappingProxyType(_truth(a, f)),
        side=side,
        true_thickness_all_mm=MappingProxyType(_truth(a, f, floor_mm=0.0)),
    )


def _block_mean(fine: np.ndarray) -> np.ndarray:
    """Average 1x2x2 blocks of the supersampled grid (partial volume)."""
    nx, ny2, nz2 = fine.shape
    return fine.reshape(nx, ny2 // 2, 2, nz2 // 2, 2).mean(axis=(2, 4), dtype=np.float32)


def _intensities(tissue: np.ndarray, site: MRISite, rng: np.random.Generator, table: np.ndarray) -> np.ndarray:
    """DESS-like signal: tissue ``table`` (fat islands in the muscle background where it tells fat from muscle) with
    site contrast, partial volume, texture, bias field, Rician noise."""
    if table[_FAT] != table[_SOFT]:
        fat = (tissue == _SOFT) & (_smooth_field(rng, tissue.shape, n_terms=3) > _FAT_LEVEL)
        tissue = np.where(fat, np.uint8(_FAT), tissue)
    signal = _block_mean(table[tissue])
    soft = _block_mean((tissue == _SOFT).astype(np.float32))
    texture = _smooth_field(rng, signal.shape, n_terms=5)
    signal += texture * (0.03 + 0.05 * soft)  # fat/muscle texture, faint elsewhere
    mean = np.float32(0.35)
    signal = mean + np.float32(site.contrast) * (signal - mean)
    signal *= np.exp(np.float32(site.bias_field) * _smooth_field(rng, signal.shape, n_terms=2))
    sigma = np.float32(site.noise)
    n1 = rng.standard_normal(signal.shape, dtype=np.float32) * sigma
    n2 = rng.standard_normal(signal.shape, dtype=np.float32) * sigma
    rician = np.sqrt((np.clip(signal, 0.0, None) + n1) ** 2 + n2**2)
    return np.clip(np.rint(rician * FLUID_SIGNAL), 0, 32767).astype(np.float32)


def write_knee_mri(
    folder: str | os.PathLike, participant_id: str, side: str, visit_month: int, rendered: RenderedMRI
) -> tuple[Path, Path]:
    """Write ``{ID}_{side}_{Vxx}_DESS.nii.gz`` (int16) and ``{ID}_{side}_{Vxx}_labels.nii.gz`` (uint8) atomically.

    Returns the (image, labels) paths. Files are byte-identical for identical inputs (gzip mtime 0).
    """

    _check_side(side)
    if side != rendered.side:
        raise OAKitError(f"side: got {side!r} but the volume was rendered as {rendered.side!r}; expected the same side")
    if visit_month not in _VISIT_CODES:
        raise OAKitError(f"visit_month: got {visit_month!r}; expected one of {sorted(_VISIT_CODES)}")
    if not str(participant_id) or any(c in str(participant_id) for c in "/\\ "):
        raise OAKitError(f"participant_id: got {participant_id!r}; expected a non-empty ID without spaces or slashes")
    stem = Path(folder) / f"{participant_id}_{side}_{_VISIT_CODES[visit_month]}"
    image_path, labels_path = Path(f"{stem}_DESS.nii.gz"), Path(f"{stem}_labels.nii.gz")
    meta = {"side": side, "participant_id": str(participant_id), "visit_month": int(visit_month)}
    write_nifti(image_path, MRIVolume(rendered.image.astype(np.int16), rendered.affine, metadata=meta))
    write_nifti(labels_path, MRIVolume(rendered.labels.astype(np.uint8), rendered.affine, metadata=meta))
    return image_path, labels_path
