"""Cartilage biomarkers: volume (mm^3), normal-ray thickness (mm) with a closest-point cross-check, subregion stats, FCL area.

Thickness follows the normal-ray idea of CartiMorph/pyMSKT: rays leave the bone surface (marching cubes on the bone
mask, normals from the smoothed bone field) and the cartilage indicator (a probability map or a mask) is integrated
along each ray over its first cartilage segment. Integrating a trilinear-interpolated occupancy is exact for a sharp
interface crossed at right angles and uses partial-volume fractions, so it measures below the voxel size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

from oa_kit.errors import OAKitError
from oa_kit.features.subregions import PLATE_SUBREGION, SUBREGION_INDEX, FemoralSubregions
from oa_kit.io.labels import LABELS, SUBREGIONS

#: Cartilage label -> the bone it covers (harmonised ids).
CARTILAGE_BONE = {2: 1, 4: 3, 5: 3, 7: 6}


@dataclass
class SurfaceThickness:
    """Thickness sampled at bone-surface points under one cartilage plate.

    Arrays have one entry per bone-surface vertex; ``points_mm`` are in the scan's voxel frame scaled by the
    spacing (index * spacing), ``world_xyz`` in RAS mm. Uncovered vertices have thickness 0 and NaN cross-check.
    """

    label: int
    points_mm: np.ndarray
    world_xyz: np.ndarray
    normals: np.ndarray
    area_mm2: np.ndarray
    thickness_mm: np.ndarray
    covered: np.ndarray
    thickness_cp_mm: np.ndarray
    fcl: np.ndarray
    subregion: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))


# -------------------------------------------------------------------------------------------------- geometry
def voxel_spacing(affine: np.ndarray) -> np.ndarray:
    """Voxel size along each array axis (mm); rejects sheared (non-orthogonal) grids, where thickness would be wrong."""
    cols = np.asarray(affine, dtype=float)[:3, :3]
    zooms = np.sqrt((cols ** 2).sum(axis=0))
    if np.any(zooms <= 0):
        raise OAKitError("affine: zero voxel size; expected a valid voxel->RAS matrix")
    unit = cols / zooms
    if np.abs(unit.T @ unit - np.eye(3)).max() > 1e-3:
        raise OAKitError("affine: voxel axes are not orthogonal (sheared grid); expected an orthogonal scanner grid")
    return zooms


def cartilage_volume_mm3(labels: np.ndarray, affine: np.ndarray, proba: np.ndarray | None = None) -> dict[str, float]:
    """Volume (mm^3) of each cartilage plate: voxel count (or summed probability, sub-voxel) times voxel volume."""
    vox = float(np.prod(voxel_spacing(affine)))
    out = {}
    for label in CARTILAGE_BONE:
        amount = float(proba[label].sum()) if proba is not None else float((labels == label).sum())
        out[LABELS[label]] = amount * vox
    return out


def _crop(mask: np.ndarray, margin: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of ``mask`` grown by ``margin`` voxels per axis, clipped to the array."""
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _sample(field_: np.ndarray, points_mm: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Trilinear samples of a voxel field at points given in mm (index * spacing); zero outside."""
    coords = (points_mm / spacing).reshape(-1, 3).T
    return ndimage.map_coordinates(field_, coords, order=1, mode="constant", cval=0.0).reshape(points_mm.shape[:-1])


def _vertex_area(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Surface area (mm^2) carried by each mesh vertex: a third of each adjacent triangle."""
    tri = verts[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    out = np.zeros(len(verts))
    np.add.at(out, faces.ravel(), np.repeat(area / 3.0, 3))
    return out


def bone_surface(bone: np.ndarray, spacing: np.ndarray, smooth_mm: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bone surface vertices (mm), outward unit normals (from the gradient of the smoothed bone field) and vertex areas.

    The smoothing width is ``smooth_mm`` but never less than the largest voxel size, so that on anisotropic grids
    (e.g. 2 mm sagittal slices) normals follow the underlying surface rather than the voxel staircase.
    """
    if bone.max() <= 0.5 or bone.min() >= 0.5:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)
    verts, faces, _, _ = marching_cubes(bone, level=0.5, spacing=tuple(spacing))
    sigma_mm = max(smooth_mm, float(spacing.max()))          # at least one thick slice: no staircase normals
    smooth = ndimage.gaussian_filter(bone, sigma=sigma_mm / spacing, mode="nearest")
    grads = np.stack([_sample(np.gradient(smooth, axis=a) / spacing[a], verts, spacing) for a in range(3)], axis=1)
    norm = np.linalg.norm(grads, axis=1, keepdims=True)
    normals = -grads / np.where(norm > 0, norm, 1.0)
    return verts, normals, _vertex_area(verts, faces)


# -------------------------------------------------------------------------------------------------- thickness
def ray_thickness(cartilage: np.ndarray, points_mm: np.ndarray, normals: np.ndarray, spacing: np.ndarray,
                  max_mm: float = 10.0, step_mm: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Normal-ray thickness (mm) at each bone-surface point, and whether the ray met cartilage next to the bone.

    Each ray starts one voxel inside the bone and runs ``max_mm`` outward; thickness is the integral of the
    cartilage occupancy over the first segment where it is positive that reaches 0.5 (an interface crossing).
    """
    step = step_mm or float(spacing.min()) / 5.0
    back = np.abs(normals) @ spacing                         # one voxel along each ray's direction, mm
    t = np.arange(-float(spacing.max()), max_mm + step, step)
    thickness = np.zeros(len(points_mm))
    covered = np.zeros(len(points_mm), dtype=bool)
    for start in range(0, len(points_mm), 4096):
        sl = slice(start, start + 4096)
        pts = points_mm[sl, None, :] + t[None, :, None] * normals[sl, None, :]
        occ = np.clip(_sample(cartilage, pts, spacing), 0.0, 1.0)
        occ[t[None, :] < -back[sl, None]] = 0.0
        thickness[sl], covered[sl] = _first_segment(occ, t, back[sl], step)
    return thickness, covered


def _first_segment(occ: np.ndarray, t: np.ndarray, near_mm: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Integral of each row of ``occ`` over its first segment reaching 0.5, if that segment starts within ``near_mm``."""
    eps = 1e-3
    n = occ.shape[1]
    above = occ >= 0.5
    has = above.any(axis=1)
    first_hi = np.where(has, above.argmax(axis=1), n - 1)
    cols = np.arange(n)[None, :]
    zero = occ < eps
    seg_start = np.where(zero & (cols < first_hi[:, None]), cols, -1).max(axis=1) + 1
    after = zero & (cols > first_hi[:, None])
    seg_end = np.where(after.any(axis=1), after.argmax(axis=1), n)
    inside = (cols >= seg_start[:, None]) & (cols < seg_end[:, None])
    integral = (occ * inside).sum(axis=1) * step
    covered = has & (t[seg_start.clip(0, n - 1)] <= near_mm + step)
    return np.where(covered, integral, 0.0), covered


def closest_point_thickness(cartilage: np.ndarray, bone: np.ndarray, points_mm: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Cross-check: distance (mm) from each bone-surface point to the nearest articular-surface point of the cartilage."""
    union = np.clip(cartilage + bone, 0.0, 1.0)
    if union.max() <= 0.5 or len(points_mm) == 0:
        return np.full(len(points_mm), np.nan)
    verts, _, _, _ = marching_cubes(union, level=0.5, spacing=tuple(spacing))
    articular = verts[_sample(cartilage, verts, spacing) > _sample(bone, verts, spacing)]
    if len(articular) == 0:
        return np.full(len(points_mm), np.nan)
    return cKDTree(articular).query(points_mm)[0]


def full_thickness_loss(points_mm: np.ndarray, normals: np.ndarray, covered: np.ndarray, radius_mm: float = 6.0,
                        grid_mm: float = 1.0, max_gap_deg: float = 100.0, min_agreement: float = 0.9,
                        candidates: np.ndarray | None = None) -> np.ndarray:
    """Flag uncovered bone-surface points that covered cartilage encloses on all sides (a hole = full-thickness loss).

    Only covered points within ``radius_mm`` whose surface faces the same way count, and the candidate's own normal
    must agree with theirs (cosine >= ``min_agreement``; side and back faces of a bone fail this). Their directions in
    the candidate's tangent plane must then leave no angular gap wider than ``max_gap_deg``: a plate rim leaves a
    180 deg gap, an open notch between plates a wide one, a hole none. Holes wider than ~2 x ``radius_mm`` are missed
    in their centre. ``candidates`` (bool per point) limits which uncovered points are tested.
    """
    fcl = np.zeros(len(points_mm), dtype=bool)
    cov = points_mm[covered]
    if len(cov) < 8 or covered.all():
        return fcl
    _, keep = np.unique(np.round(cov / grid_mm).astype(np.int64), axis=0, return_index=True)
    anchors, anchor_normals = cov[keep], normals[covered][keep]
    tree = cKDTree(anchors)
    candidates = np.flatnonzero(~covered if candidates is None else ~covered & candidates)
    dist, _ = tree.query(points_mm[candidates], distance_upper_bound=radius_mm)
    candidates = candidates[np.isfinite(dist)]
    for i, nbrs in zip(candidates, tree.query_ball_point(points_mm[candidates], r=radius_mm)):
        nbrs = np.asarray(nbrs, dtype=int)
        if len(nbrs) < 6:
            continue
        mean_normal = anchor_normals[nbrs].mean(axis=0)
        mean_normal /= max(np.linalg.norm(mean_normal), 1e-9)
        if mean_normal @ normals[i] >= min_agreement:
            fcl[i] = _max_angular_gap_deg(anchors[nbrs] - points_mm[i], mean_normal) < max_gap_deg
    return fcl


def _max_angular_gap_deg(vectors: np.ndarray, normal: np.ndarray) -> float:
    """Largest angular gap (deg) between ``vectors`` projected onto the plane perpendicular to ``normal``."""
    u = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    ang = np.sort(np.degrees(np.arctan2(vectors @ v, vectors @ u)))
    if len(ang) < 2:
        return 360.0
    return float(np.max(np.diff(np.concatenate([ang, [ang[0] + 360.0]]))))


def plate_thickness(cartilage: np.ndarray, bone: np.ndarray, affine: np.ndarray, label: int, max_mm: float = 10.0,
                    smooth_mm: float = 1.0, fcl_radius_mm: float = 6.0) -> SurfaceThickness:
    """Measure one cartilage plate: bone surface under it, normal-ray thickness, closest-point cross-check, FCL points.

    Parameters
    ----------
    cartilage, bone
        Occupancy fields in [0, 1] (probabilities or masks) on the scan grid.
    affine
        Voxel -> RAS mm matrix of that grid.
    label
        Harmonised cartilage id (kept on the result).
    """
    spacing = voxel_spacing(affine)
    margin = np.ceil((3.0 * max(smooth_mm, float(spacing.max())) + max_mm) / spacing).astype(int) + 2
    box = _crop(cartilage > 0.5, margin)
    offset = np.array([s.start for s in box]) * spacing
    c = np.ascontiguousarray(cartilage[box], dtype=np.float32)
    b = np.ascontiguousarray(bone[box], dtype=np.float32)
    verts, normals, area = bone_surface(b, spacing, smooth_mm)
    thickness, covered = ray_thickness(c, verts, normals, spacing, max_mm)
    near = covered | _near_cartilage(c, verts, spacing, fcl_radius_mm)
    verts, normals, area, thickness, covered = verts[near], normals[near], area[near], thickness[near], covered[near]
    cp = np.full(len(verts), np.nan)
    cp[covered] = closest_point_thickness(c, b, verts[covered], spacing)
    fcl = full_thickness_loss(verts, normals, covered, fcl_radius_mm, candidates=_judgeable(normals, spacing))
    points = verts + offset
    world = nib.affines.apply_affine(affine, points / spacing)
    return SurfaceThickness(label, points, world, normals, area, thickness, covered, cp, fcl)


def _judgeable(normals: np.ndarray, spacing: np.ndarray, max_component: float = 0.5) -> np.ndarray:
    """False where a bone face points along a thick-slice axis (spacing > 1.5 x the finest): there the voxel staircase
    leaves bare "risers" between slices that look like denuded bone, so full-thickness loss cannot be judged."""
    thick = spacing > 1.5 * spacing.min()
    if not thick.any():
        return np.ones(len(normals), dtype=bool)
    return np.abs(normals[:, thick]).max(axis=1) < max_component


def _near_cartilage(cartilage: np.ndarray, points_mm: np.ndarray, spacing: np.ndarray, radius_mm: float) -> np.ndarray:
    """True for points within ``radius_mm`` of any cartilage voxel (candidates for full-thickness loss)."""
    dist = ndimage.distance_transform_edt(cartilage <= 0.5, sampling=spacing)
    return _sample(dist.astype(np.float32), points_mm, spacing) <= radius_mm


# -------------------------------------------------------------------------------------------------- whole knee
@dataclass
class CartilageMeasurement:
    """All cartilage biomarkers of one knee, plus voxel maps on the scan grid (same voxel order and affine)."""

    side: str
    affine: np.ndarray
    surfaces: dict[int, SurfaceThickness]
    volume_mm3: dict[str, float]
    thickness_map: np.ndarray            # (X, Y, Z) float32, mm at every cartilage voxel, 0 elsewhere
    subregion_map: np.ndarray            # (X, Y, Z) uint8, 0 none, i + 1 = SUBREGIONS[i]

    def subregion_table(self) -> pd.DataFrame:
        """One row per subregion: mean/median/p5 thickness (mm), closest-point mean (mm), FCL and covered area (mm^2), volume."""
        vox = float(np.prod(voxel_spacing(self.affine)))
        rows = []
        for name in SUBREGIONS:
            th, cp, area, fcl_area = [], [], [], 0.0
            for surf in self.surfaces.values():
                sel = surf.subregion == name
                th.append(surf.thickness_mm[sel & surf.covered])
                cp.append(surf.thickness_cp_mm[sel & surf.covered])
                area.append(surf.area_mm2[sel & surf.covered])
                fcl_area += float(surf.area_mm2[sel & surf.fcl].sum())
            th, cp, area = np.concatenate(th), np.concatenate(cp), np.concatenate(area)
            rows.append({
                "subregion": name,
                "thickness_mm_mean": float(np.average(th, weights=area)) if area.sum() > 0 else np.nan,
                "thickness_mm_median": float(np.median(th)) if len(th) else np.nan,
                "thickness_mm_p05": float(np.percentile(th, 5)) if len(th) else np.nan,
                "thickness_cp_mm_mean": float(np.nanmean(cp)) if np.isfinite(cp).any() else np.nan,
                "fcl_area_mm2": fcl_area,
                "covered_area_mm2": float(area.sum()),
                "volume_mm3": float((self.subregion_map == SUBREGION_INDEX[name]).sum()) * vox,
            })
        return pd.DataFrame(rows)

    def to_row(self) -> dict[str, float]:
        """Flat biomarker columns for the per-knee table (``thickness_mm_mean_<subregion>``, ``volume_mm3_<plate>``, ...)."""
        row = {f"volume_mm3_{name}": value for name, value in self.volume_mm3.items()}
        for rec in self.subregion_table().to_dict("records"):
            name = rec.pop("subregion")
            row.update({f"{key}_{name}": value for key, value in rec.items()})
        return row


def measure_cartilage(labels: np.ndarray, affine: np.ndarray, side: str, proba: np.ndarray | None = None,
                      max_mm: float = 10.0, smooth_mm: float = 1.0, fcl_radius_mm: float = 6.0) -> CartilageMeasurement:
    """Measure every cartilage plate of one knee and assign subregions (docs/DESIGN.md rule).

    Parameters
    ----------
    labels
        Harmonised label map (X, Y, Z) in the scan's voxel order.
    affine
        4x4 voxel -> RAS mm matrix of the scan.
    side
        ``"R"`` or ``"L"``: decides which side of the femoral split is medial.
    proba
        Optional harmonised probabilities (10, X, Y, Z); when given, cartilage and bone occupancies come from it
        (sub-voxel thickness), restricted to the hard label's neighbourhood.

    Returns
    -------
    CartilageMeasurement
        Per-vertex surfaces, plate volumes, a thickness map and a subregion map on the scan grid.
    """
    if labels.ndim != 3:
        raise OAKitError(f"labels: shape {labels.shape}; expected a 3D label map")
    if side not in ("R", "L"):
        raise OAKitError(f"side: got {side!r}; expected 'R' or 'L'")
    if proba is not None and proba.shape != (len(LABELS), *labels.shape):
        raise OAKitError(f"proba: shape {proba.shape}; expected {(len(LABELS), *labels.shape)}")
    spacing = voxel_spacing(affine)
    surfaces: dict[int, SurfaceThickness] = {}
    for label, bone_label in CARTILAGE_BONE.items():
        if (labels == label).sum() < 4 or not np.any(labels == bone_label):
            continue
        cart, bone = _occupancy(labels, proba, label), _occupancy(labels, proba, bone_label)
        surfaces[label] = plate_thickness(cart, bone, affine, label, max_mm, smooth_mm, fcl_radius_mm)
    _assign_subregions(surfaces, labels, affine, side)
    thickness_map, subregion_map = _voxel_maps(surfaces, labels, spacing)
    return CartilageMeasurement(side, np.asarray(affine, dtype=float), surfaces, cartilage_volume_mm3(labels, affine, proba),
                                thickness_map, subregion_map)


def _occupancy(labels: np.ndarray, proba: np.ndarray | None, label: int) -> np.ndarray:
    """Occupancy of one tissue: its probability near the hard mask (so distant false positives cannot add), else the mask."""
    mask = labels == label
    if proba is None:
        return mask.astype(np.float32)
    near = ndimage.binary_dilation(mask, iterations=1)
    return np.where(near, proba[label], 0.0).astype(np.float32)


def _assign_subregions(surfaces: dict[int, SurfaceThickness], labels: np.ndarray, affine: np.ndarray, side: str) -> None:
    """Set ``subregion`` on every surface: femoral by the fitted condyle geometry, the other plates by label."""
    for label, surf in surfaces.items():
        if label in PLATE_SUBREGION:
            surf.subregion = np.full(len(surf.points_mm), PLATE_SUBREGION[label], dtype=object)
    if 2 in surfaces:
        fem = surfaces[2]
        fc_xyz = nib.affines.apply_affine(affine, np.argwhere(labels == 2))
        model = FemoralSubregions(side).fit(fc_xyz, fem.world_xyz[fem.covered])
        fem.subregion = model.transform(fem.world_xyz)


def _voxel_maps(surfaces: dict[int, SurfaceThickness], labels: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Give each cartilage voxel the thickness and subregion of its nearest covered bone-surface point."""
    thickness = np.zeros(labels.shape, dtype=np.float32)
    subregions = np.zeros(labels.shape, dtype=np.uint8)
    for label, surf in surfaces.items():
        if not surf.covered.any():
            continue
        vox = np.argwhere(labels == label)
        _, nearest = cKDTree(surf.points_mm[surf.covered]).query(vox * spacing)
        idx = tuple(vox.T)
        thickness[idx] = surf.thickness_mm[surf.covered][nearest]
        subregions[idx] = [SUBREGION_INDEX[s] for s in surf.subregion[surf.covered][nearest]]
    return thickness, subregions


def write_map_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write a voxel map (thickness mm, labels, subregions) as NIfTI on the scan's grid: same affine, so it overlays the scan."""
    from oa_kit.io.mri import MRIVolume, write_nifti

    return write_nifti(path, MRIVolume(np.asarray(data), np.asarray(affine, dtype=float)))
