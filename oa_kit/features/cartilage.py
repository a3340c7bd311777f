"""Cartilage biomarkers: volume (mm^3), normal-ray thickness (mm) with a closest-point cross-check, subregion stats, FCL area.

Thickness follows the normal-ray idea of CartiMorph/pyMSKT: rays leave the bone surface (marching cubes on the bone
mask, normals from the smoothed bone field) and the cartilage indicator (a probability map or a mask) is integrated
along each ray over its first cartilage segment. Integrating a trilinear-interpolated occupancy is exact for a sharp
interface crossed at right angles and uses partial-volume fractions, so it measures below the voxel size.

A bone point counts as covered when its ray's occupancy reaches 0.5, i.e. where the cartilage is at least about half
a voxel thick along the ray; plate means are area-weighted over covered points. A rim that tapers to zero is
therefore measured only down to that thickness: its thinner margin (< ~0.25 mm at 0.5 mm voxels) is below what the
voxels resolve, and a reference mean that includes it down to 0 mm is lower than the measured one (on the synthetic
phantoms' patella ~0.1 mm; see tests/test_features_cartilage.py::test_tapered_cap_local_thickness_and_rim). The
phantoms' truth therefore counts cartilage at least ``oa_kit.synth.mri.TRUTH_MIN_THICKNESS_MM`` (0.1 mm) thick.

Work is confined to each plate's bounding box (grown by the rays' reach and the normal smoothing), so the cost
follows the cartilage, not the field of view.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

from oa_kit.errors import OAKitError
from oa_kit.features.subregions import PLATE_SUBREGION, SUBREGION_INDEX, FemoralSubregions
from oa_kit.io.labels import LABELS, SUBREGIONS
from oa_kit.io.mri import MRIVolume, write_nifti

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
    zooms = np.sqrt((cols**2).sum(axis=0))
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


def _grow(box: tuple[slice, ...], margin: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """``box`` grown by ``margin`` voxels per axis, clipped to ``shape``."""
    return tuple(
        slice(max(int(b.start) - int(m), 0), min(int(b.stop) + int(m), int(n))) for b, m, n in zip(box, margin, shape)
    )


def _margin(spacing: np.ndarray, smooth_mm: float, max_mm: float) -> np.ndarray:
    """Voxels kept around a plate: the rays' reach plus three smoothing widths of the bone normals, plus two."""
    return np.ceil((3.0 * max(smooth_mm, float(spacing.max())) + max_mm) / spacing).astype(int) + 2


def _sample(field_: np.ndarray, points_mm: np.ndarray, spacing: np.ndarray, mode: str = "constant") -> np.ndarray:
    """Trilinear samples of a voxel field at points given in mm (index * spacing); zero outside (``mode="constant"``)."""
    coords = (points_mm / spacing).reshape(-1, 3).T
    return ndimage.map_coordinates(field_, coords, order=1, mode=mode, cval=0.0).reshape(points_mm.shape[:-1])


def _vertex_area(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Surface area (mm^2) carried by each mesh vertex: a third of each adjacent triangle."""
    tri = verts[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    return np.bincount(faces.ravel(), weights=np.repeat(area / 3.0, 3), minlength=len(verts))


def bone_surface(
    bone: np.ndarray, spacing: np.ndarray, smooth_mm: float = 1.0, region: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bone surface vertices (mm), outward unit normals (from the gradient of the smoothed bone field) and vertex areas.

    The smoothing width is ``smooth_mm`` but never less than the largest voxel size, so that on anisotropic grids
    (e.g. 2 mm sagittal slices) normals follow the underlying surface rather than the voxel staircase. ``region``
    (bool, the shape of ``bone``) limits the surface to the cubes whose first corner lies in it (the marching cubes
    mask): vertices more than a voxel inside it are those of the whole surface, in the same order, with the same areas.
    """
    empty = np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)
    if bone.max() <= 0.5 or bone.min() >= 0.5 or (region is not None and not region.any()):
        return empty
    try:
        verts, faces, _, _ = marching_cubes(bone, level=0.5, spacing=tuple(spacing), mask=region)
    except RuntimeError:  # no surface inside the region
        return empty
    if not len(faces):
        return empty
    sigma_mm = max(smooth_mm, float(spacing.max()))  # at least one thick slice: no staircase normals
    # smoothing only the vertices' box, widened by the filter's reach (4 sigma) plus the differences' and the
    # interpolation's voxels, gives the same values at the vertices as smoothing the whole crop, at a fraction of its
    # cost on real-size scans
    reach = np.ceil(4.0 * sigma_mm / spacing).astype(int) + 3
    lo = np.maximum(np.floor(verts.min(axis=0) / spacing).astype(int) - reach, 0)
    hi = np.minimum(np.ceil(verts.max(axis=0) / spacing).astype(int) + reach + 1, bone.shape)
    sub = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    smooth = ndimage.gaussian_filter(bone[sub], sigma=sigma_mm / spacing, mode="nearest")
    # central differences one voxel either side, interpolated at the vertices: np.gradient sampled at the vertices,
    # without computing three gradient volumes (the linear padding reproduces its one-sided differences at the border)
    padded, shifted = _pad_linear(smooth), verts - lo * spacing + spacing
    grads = np.stack(
        [
            (_sample(padded, shifted + e, spacing) - _sample(padded, shifted - e, spacing)) / (2.0 * spacing[a])
            for a, e in enumerate(np.diag(spacing))
        ],
        axis=1,
    )
    norm = np.linalg.norm(grads, axis=1, keepdims=True)
    normals = -grads / np.where(norm > 0, norm, 1.0)
    return verts, normals, _vertex_area(verts, faces)


def _pad_linear(field_: np.ndarray) -> np.ndarray:
    """``field_`` (float64) with one extra voxel on every side, linearly extrapolated from the two nearest."""
    out = np.pad(field_.astype(np.float64), 1, mode="edge")
    for axis in range(out.ndim):
        first, second, last, before = ([slice(None)] * out.ndim for _ in range(4))
        first[axis], second[axis], last[axis], before[axis] = 0, 1, -1, -2
        nxt, prev = list(second), list(before)
        nxt[axis], prev[axis] = 2, -3
        out[tuple(first)] = 2.0 * out[tuple(second)] - out[tuple(nxt)]
        out[tuple(last)] = 2.0 * out[tuple(before)] - out[tuple(prev)]
    return out


# -------------------------------------------------------------------------------------------------- thickness
def ray_thickness(
    cartilage: np.ndarray,
    points_mm: np.ndarray,
    normals: np.ndarray,
    spacing: np.ndarray,
    max_mm: float = 10.0,
    step_mm: float | None = None,
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Normal-ray thickness (mm) at each bone-surface point, and whether the ray met cartilage next to the bone.

    Each ray starts one voxel inside the bone and runs ``max_mm`` outward; thickness is the integral of the
    cartilage occupancy over the first segment where it is positive that reaches 0.5 (an interface crossing).
    Rays are marched about 1 mm at a time and dropped once their answer is known (segment closed, or no segment can
    start next to the bone any more), so the cost follows the cartilage thickness rather than ``max_mm``. They go in
    chunks of :data:`RAY_CHUNK` (the working memory stays ~100 MB whatever the surface size), on ``workers``
    threads (the trilinear sampling releases the GIL); every ray's answer is independent of the others'.
    """
    step = step_mm or float(spacing.min()) / 5.0
    t = np.arange(-float(spacing.max()), max_mm + step, step)
    near = np.abs(normals) @ spacing + step  # a segment must start within one voxel (+ a step)
    blind = _blind(cartilage, points_mm, spacing, float(spacing.sum()) + step)
    chunks = [slice(i, i + RAY_CHUNK) for i in range(0, len(points_mm), RAY_CHUNK)]

    def march(chunk: slice) -> tuple[np.ndarray, np.ndarray]:
        return _march_rays(cartilage, points_mm[chunk], normals[chunk], spacing, t, near[chunk], blind[chunk], step)

    if workers > 1 and len(chunks) > 1:
        with ThreadPoolExecutor(min(workers, len(chunks))) as pool:
            parts = list(pool.map(march, chunks))
    else:
        parts = [march(chunk) for chunk in chunks]
    if not parts:
        return np.zeros(0), np.zeros(0, dtype=bool)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


#: Rays marched together by :func:`ray_thickness` (about 25 MB of sample positions per 1 mm block).
RAY_CHUNK = 65536


def _march_rays(
    cartilage: np.ndarray,
    points_mm: np.ndarray,
    normals: np.ndarray,
    spacing: np.ndarray,
    t: np.ndarray,
    near: np.ndarray,
    blind: np.ndarray,
    step: float,
) -> tuple[np.ndarray, np.ndarray]:
    """March one chunk of rays through ``t`` (mm along each normal), 1 mm blocks at a time; see :func:`ray_thickness`."""
    state = _RayState(len(points_mm))
    state.done[blind] = True
    block = max(1, int(round(1.0 / step)))
    for b0 in range(0, len(t), block):
        live = state.live()
        if not len(live):
            break
        tb = t[b0 : b0 + block]
        inside_bone = tb[-1] < step - near[live]  # whole block before the ray's start: all zeros
        state.skip(live[inside_bone], b0 + len(tb))
        live = live[~inside_bone]
        pts = points_mm[live, None, :] + tb[None, :, None] * normals[live, None, :]
        occ = np.clip(_sample(cartilage, pts, spacing), 0.0, 1.0)
        occ[tb[None, :] < step - near[live, None]] = 0.0
        state.advance(live, occ, t, b0, near[live])
    return state.finish(t, near, step)


def _blind(cartilage: np.ndarray, points_mm: np.ndarray, spacing: np.ndarray, reach_mm: float) -> np.ndarray:
    """True for points with no cartilage (occupancy >= the ray's zero level) within ``reach_mm``: their rays cannot
    start a segment next to the bone, so they are uncovered without marching (the max filter covers every voxel a
    trilinear sample within ``reach_mm`` of the point's nearest voxel can touch)."""
    half = np.ceil(reach_mm / spacing).astype(int) + 2
    nearby = ndimage.maximum_filter(cartilage, size=tuple(2 * half + 1), mode="constant", cval=0.0)
    idx = np.clip(np.rint(points_mm / spacing).astype(int), 0, np.array(cartilage.shape) - 1)
    return nearby[tuple(idx.T)] < _RayState.eps


class _RayState:
    """Per-ray bookkeeping of :func:`ray_thickness`: running integral of the current segment, its start, and whether
    it has reached 0.5 (found) or closed (done)."""

    eps = 1e-3

    def __init__(self, n: int) -> None:
        self.run = np.zeros(n)
        self.start = np.zeros(n, dtype=np.intp)
        self.found = np.zeros(n, dtype=bool)
        self.done = np.zeros(n, dtype=bool)

    def live(self) -> np.ndarray:
        """Indices of rays still marching."""
        return np.flatnonzero(~self.done)

    def skip(self, rays: np.ndarray, next_index: int) -> None:
        """Rays whose samples up to ``next_index`` are all zero (still inside the bone): the segment restarts there."""
        self.run[rays] = 0.0
        self.start[rays] = next_index

    def advance(self, live: np.ndarray, occ: np.ndarray, t: np.ndarray, b0: int, near: np.ndarray) -> None:
        """Consume one block of samples (rows = ``live`` rays, columns = t[b0:])."""
        run, start, found = self.run[live], self.start[live], self.found[live]
        done = np.zeros(len(live), dtype=bool)
        for j in range(occ.shape[1]):
            o = occ[:, j]
            zero = o < self.eps
            reset = zero & ~found & ~done
            run[reset] = 0.0
            start[reset] = b0 + j + 1
            grow = ~zero & ~done
            run[grow] += o[grow]
            found |= grow & (o >= 0.5)
            done |= found & zero  # first segment reaching 0.5 has closed
            done |= ~found & (t[np.minimum(start, len(t) - 1)] > near)  # no segment can start next to the bone now
        self.run[live], self.start[live], self.found[live], self.done[live] = run, start, found, done

    def finish(self, t: np.ndarray, near: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
        """Thickness (integral x step) and covered flag per ray."""
        covered = self.found & (t[np.minimum(self.start, len(t) - 1)] <= near)
        return np.where(covered, self.run * step, 0.0), covered


def closest_point_thickness(
    cartilage: np.ndarray, bone: np.ndarray, points_mm: np.ndarray, spacing: np.ndarray
) -> np.ndarray:
    """Cross-check: distance (mm) from each bone-surface point to the nearest articular-surface point of the cartilage."""
    union = np.clip(cartilage + bone, 0.0, 1.0)
    if union.max() <= 0.5 or len(points_mm) == 0:
        return np.full(len(points_mm), np.nan)
    verts, _, _, _ = marching_cubes(union, level=0.5, spacing=tuple(spacing))
    articular = verts[_sample(cartilage, verts, spacing) > _sample(bone, verts, spacing)]
    if len(articular) == 0:
        return np.full(len(points_mm), np.nan)
    return cKDTree(articular).query(points_mm)[0]


def full_thickness_loss(
    points_mm: np.ndarray,
    normals: np.ndarray,
    covered: np.ndarray,
    radius_mm: float = 6.0,
    grid_mm: float = 1.0,
    max_gap_deg: float = 100.0,
    min_agreement: float = 0.9,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
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
    if not len(candidates):
        return fcl
    for part in np.array_split(candidates, -(-len(candidates) // FCL_CHUNK)):  # bounded pair arrays
        fcl[part] = _enclosed(
            points_mm[part], normals[part], (anchors, anchor_normals, tree), radius_mm, max_gap_deg, min_agreement
        )
    return fcl


#: Candidate points :func:`full_thickness_loss` judges together (their neighbour pairs take ~24 bytes each, ~100 per
#: candidate at the default radius): bounds the memory when a poor segmentation leaves millions of candidates.
FCL_CHUNK = 20_000


def _enclosed(
    points: np.ndarray,
    normals: np.ndarray,
    anchors: tuple[np.ndarray, np.ndarray, cKDTree],
    radius_mm: float,
    max_gap_deg: float,
    min_agreement: float,
) -> np.ndarray:
    """Per candidate point: do the covered anchors (positions, normals, their k-d tree) within ``radius_mm`` face its
    way and surround it with no angular gap wider than ``max_gap_deg``? (:func:`full_thickness_loss`'s test.)"""
    positions, anchor_normals, tree = anchors
    owner, nbrs = _pairs_within(points, tree, radius_mm)
    counts = np.bincount(owner, minlength=len(points))
    mean_normal = np.stack([np.bincount(owner, anchor_normals[nbrs, a], len(points)) for a in range(3)], axis=1)
    mean_normal /= np.maximum(counts, 1)[:, None]
    mean_normal /= np.maximum(np.linalg.norm(mean_normal, axis=1, keepdims=True), 1e-9)
    judged = (counts >= 6) & (np.einsum("ij,ij->i", mean_normal, normals) >= min_agreement)
    pair = judged[owner]
    gaps = _max_angular_gaps_deg(positions[nbrs[pair]] - points[owner[pair]], mean_normal, owner[pair])
    return judged & (gaps < max_gap_deg)


def _pairs_within(points: np.ndarray, tree: cKDTree, radius_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(point index, tree index) of every pair closer than ``radius_mm``, sorted by point then tree index: what
    ``tree.query_ball_point`` lists, as two flat arrays built without a Python loop over the points."""
    pairs = cKDTree(points).sparse_distance_matrix(tree, radius_mm, output_type="ndarray")
    order = np.lexsort((pairs["j"], pairs["i"]))
    return pairs["i"][order].astype(np.intp), pairs["j"][order].astype(np.intp)


def _max_angular_gaps_deg(vectors: np.ndarray, normal: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Per owner (row of ``normal``): largest angular gap (deg) between its ``vectors`` projected onto the plane
    perpendicular to its normal; 360 for owners with fewer than two vectors."""
    out = np.full(len(normal), 360.0)
    if not len(owner):
        return out
    ref = np.where((np.abs(normal[:, 0]) < 0.9)[:, None], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    u = np.cross(normal, ref)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(normal, u)
    ang = np.degrees(np.arctan2(np.einsum("ij,ij->i", vectors, v[owner]), np.einsum("ij,ij->i", vectors, u[owner])))
    order = np.lexsort((ang, owner))
    ang, owner = ang[order], owner[order]
    first = np.r_[True, owner[1:] != owner[:-1]]
    starts = np.flatnonzero(first)
    size = np.diff(np.r_[starts, len(ang)])
    wrap = ang[starts][np.cumsum(first) - 1] + 360.0 - ang  # gap from each angle back to its group's first
    gap = np.where(np.r_[~first[1:], False], np.r_[ang[1:], 0.0] - ang, wrap)
    out[owner[starts]] = np.where(size >= 2, np.maximum.reduceat(gap, starts), 360.0)
    return out


def plate_thickness(
    cartilage: np.ndarray,
    bone: np.ndarray,
    affine: np.ndarray,
    label: int,
    max_mm: float = 10.0,
    smooth_mm: float = 1.0,
    fcl_radius_mm: float = 6.0,
) -> SurfaceThickness:
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
    if not np.any(cartilage > 0.5):
        return _empty_surface(label)
    box = _crop(cartilage > 0.5, _margin(spacing, smooth_mm, max_mm))
    return _measure_plate(
        cartilage[box], bone[box], affine, np.array([s.start for s in box]), label, max_mm, smooth_mm, fcl_radius_mm
    )


def _empty_surface(label: int) -> SurfaceThickness:
    """A plate with no bone-surface points (nothing above the 0.5 occupancy level)."""
    z3, z = np.zeros((0, 3)), np.zeros(0)
    return SurfaceThickness(label, z3, z3, z3, z, z, z.astype(bool), z, z.astype(bool), np.empty(0, dtype=object))


def _measure_plate(
    cartilage: np.ndarray,
    bone: np.ndarray,
    affine: np.ndarray,
    origin: np.ndarray,
    label: int,
    max_mm: float,
    smooth_mm: float,
    fcl_radius_mm: float,
    workers: int = 1,
) -> SurfaceThickness:
    """:func:`plate_thickness` on a crop whose first voxel is ``origin`` (voxel index) of the scan grid (rays and
    nearest-neighbour queries on ``workers`` threads)."""
    spacing = voxel_spacing(affine)
    c = np.ascontiguousarray(cartilage, dtype=np.float32)
    b = np.ascontiguousarray(bone, dtype=np.float32)
    verts, normals, area = bone_surface(b, spacing, smooth_mm, _surface_region(c, spacing, fcl_radius_mm))
    thickness, covered = ray_thickness(c, verts, normals, spacing, max_mm, workers=workers)
    near = covered | _near_cartilage(c, verts, spacing, fcl_radius_mm, workers)
    verts, normals, area, thickness, covered = verts[near], normals[near], area[near], thickness[near], covered[near]
    cp = np.full(len(verts), np.nan)
    if covered.any():
        inner = _grow(_crop(c > 0, np.zeros(3, dtype=int)), np.full(3, 2), c.shape)  # articular surface lies here
        shift = np.array([s.start for s in inner]) * spacing
        cp[covered] = closest_point_thickness(c[inner], b[inner], verts[covered] - shift, spacing)
    fcl = full_thickness_loss(verts, normals, covered, fcl_radius_mm, candidates=_judgeable(verts, normals, spacing))
    points = verts + origin * spacing
    world = nib.affines.apply_affine(affine, points / spacing)
    return SurfaceThickness(label, points, world, normals, area, thickness, covered, cp, fcl)


def _surface_region(cartilage: np.ndarray, spacing: np.ndarray, radius_mm: float) -> np.ndarray:
    """Where the bone surface under a plate is needed: voxels within ``radius_mm`` (full-thickness-loss candidates)
    or a ray's start reach (covered points) of any voxel with cartilage occupancy, plus two voxels so every vertex kept
    has all its triangles. A box-shaped (separable, cheap) superset of that ball: on a poor segmentation the bone far
    from any cartilage, which the measurement drops anyway, is never meshed."""
    reach = max(radius_mm, 2.0 * float(spacing.sum())) + 2.0 * float(spacing.max())
    half = np.ceil(reach / spacing).astype(int)
    occupied = (cartilage > 0).view(np.uint8)
    return ndimage.maximum_filter(occupied, size=tuple(2 * half + 1), mode="constant", cval=0).view(bool)


def _judgeable(
    points_mm: np.ndarray, normals: np.ndarray, spacing: np.ndarray, max_component: float = 0.5
) -> np.ndarray:
    """Bone points where full-thickness loss can be judged on a grid with thick slices (spacing > 1.5 x the finest).

    Only points on a slice plane qualify (marching-cubes vertices between two slices interpolate two differently
    placed cartilage layers, so on a slanted surface their rays can miss cartilage that is there), and not on faces
    pointing along the thick axis (the staircase "risers" look like denuded bone).
    """
    thick = spacing > 1.5 * spacing.min()
    if not thick.any():
        return np.ones(len(normals), dtype=bool)
    index = points_mm[:, thick] / spacing[thick]
    on_slice = np.all(np.abs(index - np.rint(index)) < 1e-6, axis=1)
    return on_slice & (np.abs(normals[:, thick]).max(axis=1) < max_component)


def _near_cartilage(
    cartilage: np.ndarray, points_mm: np.ndarray, spacing: np.ndarray, radius_mm: float, workers: int = 1
) -> np.ndarray:
    """True for points within ``radius_mm`` of the centre of a cartilage voxel (candidates for full-thickness loss).

    A k-d tree of the cartilage voxels' boundary answers it: its cost follows the cartilage surface, where a distance
    map of the box followed the (on a poor segmentation, whole-scan) bounding box in time and memory. For a point
    outside the cartilage the nearest cartilage voxel is always a boundary voxel; a point inside counts as near.
    """
    mask = cartilage > 0.5
    if not mask.any() or not len(points_mm):
        return np.zeros(len(points_mm), dtype=bool)
    boundary = mask & ~ndimage.binary_erosion(mask, border_value=0)
    idx = np.clip(np.rint(points_mm / spacing).astype(np.intp), 0, np.array(mask.shape) - 1)
    inside = mask[tuple(idx.T)]
    tree = cKDTree(np.argwhere(boundary) * spacing)
    dist, _ = tree.query(points_mm[~inside], distance_upper_bound=radius_mm, workers=workers)
    out = inside.copy()
    out[~inside] = dist <= radius_mm
    return out


# -------------------------------------------------------------------------------------------------- whole knee
@dataclass
class CartilageMeasurement:
    """All cartilage biomarkers of one knee, plus voxel maps on the scan grid (same voxel order and affine)."""

    side: str
    affine: np.ndarray
    surfaces: dict[int, SurfaceThickness]
    volume_mm3: dict[str, float]
    thickness_map: np.ndarray  # (X, Y, Z) float32, mm at every cartilage voxel, 0 elsewhere
    subregion_map: np.ndarray  # (X, Y, Z) uint8, 0 none, i + 1 = SUBREGIONS[i]

    def subregion_table(self) -> pd.DataFrame:
        """One row per subregion: mean/median/p5 thickness (mm), closest-point mean (mm), FCL and covered area (mm^2), volume."""
        vox = float(np.prod(voxel_spacing(self.affine)))
        codes = self.subregion_map[self.subregion_map > 0]
        counts = np.bincount(codes, minlength=len(SUBREGIONS) + 1)
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
            rows.append(
                {
                    "subregion": name,
                    "thickness_mm_mean": float(np.average(th, weights=area)) if area.sum() > 0 else np.nan,
                    "thickness_mm_median": float(np.median(th)) if len(th) else np.nan,
                    "thickness_mm_p05": float(np.percentile(th, 5)) if len(th) else np.nan,
                    "thickness_cp_mm_mean": float(np.nanmean(cp)) if np.isfinite(cp).any() else np.nan,
                    "fcl_area_mm2": fcl_area,
                    "covered_area_mm2": float(area.sum()),
                    "volume_mm3": float(counts[SUBREGION_INDEX[name]]) * vox,
                }
            )
        return pd.DataFrame(rows)

    def to_row(self) -> dict[str, float]:
        """Flat biomarker columns for the per-knee table (``thickness_mm_mean_<subregion>``, ``volume_mm3_<plate>``, ...)."""
        row = {f"volume_mm3_{name}": value for name, value in self.volume_mm3.items()}
        for rec in self.subregion_table().to_dict("records"):
            name = rec.pop("subregion")
            row.update({f"{key}_{name}": value for key, value in rec.items()})
        return row


#: Per-subregion biomarkers of :meth:`CartilageMeasurement.subregion_table`, in its column order.
SUBREGION_BIOMARKERS = (
    "thickness_mm_mean",
    "thickness_mm_median",
    "thickness_mm_p05",
    "thickness_cp_mm_mean",
    "fcl_area_mm2",
    "covered_area_mm2",
    "volume_mm3",
)


def subregion_frame(row: dict) -> pd.DataFrame:
    """The subregion table (:meth:`CartilageMeasurement.subregion_table`) read back from a per-knee row
    (:meth:`CartilageMeasurement.to_row`), e.g. one stored by ``oa-kit mri segment``; absent columns are NaN."""
    records = [
        {"subregion": name, **{key: float(row.get(f"{key}_{name}", np.nan)) for key in SUBREGION_BIOMARKERS}}
        for name in SUBREGIONS
    ]
    return pd.DataFrame(records)


def measure_cartilage(
    labels: np.ndarray,
    affine: np.ndarray,
    side: str,
    proba: np.ndarray | None = None,
    max_mm: float = 10.0,
    smooth_mm: float = 1.0,
    fcl_radius_mm: float = 6.0,
    workers: int | None = None,
) -> CartilageMeasurement:
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
    workers
        Threads for ray marching and nearest-neighbour queries; default: the process's torch thread count (what
        ``segment_scans`` and the CLI set), so worker processes do not oversubscribe the cores. Results do not
        depend on it.

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
    workers = torch.get_num_threads() if workers is None else max(1, int(workers))
    boxes = ndimage.find_objects(
        np.asarray(labels, dtype=np.intp) if labels.dtype.kind not in "ui" else labels, max_label=len(LABELS) - 1
    )
    surfaces: dict[int, SurfaceThickness] = {}
    for label, bone_label in CARTILAGE_BONE.items():
        box = boxes[label - 1]
        if box is None or boxes[bone_label - 1] is None or np.count_nonzero(labels[box] == label) < 4:
            continue
        # the plate's own crop (cartilage > 0.5, grown by the margin) lies inside this one; cropping first keeps every
        # full-volume operation (dilation, comparisons) off the rest of the scan
        big = _grow(box, _margin(spacing, smooth_mm, max_mm) + 2, labels.shape)
        cart = _occupancy(labels, proba, label, big)
        if not np.any(cart > 0.5):
            surfaces[label] = _empty_surface(label)
            continue
        inner = _crop(cart > 0.5, _margin(spacing, smooth_mm, max_mm))
        origin = np.array([b.start + i.start for b, i in zip(big, inner)])
        bone = _occupancy(labels, proba, bone_label, big)
        surfaces[label] = _measure_plate(
            cart[inner], bone[inner], affine, origin, label, max_mm, smooth_mm, fcl_radius_mm, workers
        )
    _assign_subregions(surfaces, labels, affine, side, boxes)
    thickness_map, subregion_map = _voxel_maps(surfaces, labels, spacing, boxes, workers)
    return CartilageMeasurement(
        side,
        np.asarray(affine, dtype=float),
        surfaces,
        cartilage_volume_mm3(labels, affine, proba),
        thickness_map,
        subregion_map,
    )


def _occupancy(labels: np.ndarray, proba: np.ndarray | None, label: int, box: tuple[slice, ...]) -> np.ndarray:
    """Occupancy of one tissue inside ``box``: its probability near the hard mask (so distant false positives cannot
    add), else the mask."""
    mask = labels[box] == label
    if proba is None:
        return mask.astype(np.float32)
    near = ndimage.binary_dilation(mask, iterations=1)
    return np.where(near, proba[(label, *box)], 0.0).astype(np.float32, copy=False)  # reads only the box


def _offset(box: tuple[slice, ...]) -> np.ndarray:
    """First voxel index of a box."""
    return np.array([s.start for s in box])


def _assign_subregions(
    surfaces: dict[int, SurfaceThickness], labels: np.ndarray, affine: np.ndarray, side: str, boxes: list
) -> None:
    """Set ``subregion`` on every surface: femoral by the fitted condyle geometry, the other plates by label."""
    for label, surf in surfaces.items():
        if label in PLATE_SUBREGION:
            surf.subregion = np.full(len(surf.points_mm), PLATE_SUBREGION[label], dtype=object)
    if 2 in surfaces and len(surfaces[2].points_mm):
        fem = surfaces[2]
        fc_xyz = nib.affines.apply_affine(affine, np.argwhere(labels[boxes[1]] == 2) + _offset(boxes[1]))
        model = FemoralSubregions(side).fit(fc_xyz, fem.world_xyz[fem.covered])
        fem.subregion = model.transform(fem.world_xyz)


def _voxel_maps(
    surfaces: dict[int, SurfaceThickness], labels: np.ndarray, spacing: np.ndarray, boxes: list, workers: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Give each cartilage voxel the thickness and subregion of its nearest covered bone-surface point."""
    thickness = np.zeros(labels.shape, dtype=np.float32)
    subregions = np.zeros(labels.shape, dtype=np.uint8)
    for label, surf in surfaces.items():
        if not surf.covered.any():
            continue
        vox = np.argwhere(labels[boxes[label - 1]] == label) + _offset(boxes[label - 1])
        _, nearest = cKDTree(surf.points_mm[surf.covered]).query(vox * spacing, workers=workers)
        idx = tuple(vox.T)
        thickness[idx] = surf.thickness_mm[surf.covered][nearest]
        names, inverse = np.unique(surf.subregion[surf.covered].astype(str), return_inverse=True)
        codes = np.array([SUBREGION_INDEX.get(n, 0) for n in names], dtype=np.uint8)
        subregions[idx] = codes[inverse.ravel()][nearest]
    return thickness, subregions


def write_map_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write a voxel map (thickness mm, labels, subregions) as NIfTI on the scan's grid: same affine, so it overlays the scan."""

    return write_nifti(path, MRIVolume(np.asarray(data), np.asarray(affine, dtype=float)))
