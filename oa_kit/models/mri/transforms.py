"""MRI preprocessing for the segmenter: canonical orientation, left->right mirroring, robust intensity scaling, resampling."""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from oa_kit.errors import OAKitError

#: In-plane (AP, SI) spacing the network works at, mm.
MODEL_SPACING_MM = 0.5


@dataclass(frozen=True)
class CanonicalView:
    """How a scan was turned into the network's canonical right-knee RAS grid, so it can be undone exactly."""

    ornt: np.ndarray  # nibabel orientation of the file's voxel axes (file -> RAS)
    mirrored: bool  # True for a left knee (flipped along LR after reorientation)
    spacing_mm: tuple[float, float, float]  # voxel size along (LR, AP, SI) of the canonical grid


def check_volume(volume: np.ndarray, affine: np.ndarray, name: str = "volume") -> None:
    """Reject inputs no thickness could be trusted on: not 3D, no orientation, non-finite, extreme anisotropy."""
    if volume.ndim != 3 or min(volume.shape) < 2:
        raise OAKitError(
            f"{name}: image has shape {tuple(volume.shape)}; expected a 3D volume with >= 2 voxels per axis"
        )
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise OAKitError(f"{name}: affine is missing or not a finite 4x4 matrix; expected voxel->RAS mm orientation")
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if np.any(zooms <= 1e-6) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise OAKitError(
            f"{name}: affine is singular (voxel sizes {np.round(zooms, 4).tolist()}); expected a valid orientation"
        )
    if np.allclose(affine, np.eye(4)) and volume.shape[0] > 1:
        raise OAKitError(
            f"{name}: affine is the identity (orientation and spacing missing); expected a scanner orientation"
        )
    if zooms.max() / zooms.min() > 10.0:
        raise OAKitError(
            f"{name}: voxel sizes {np.round(zooms, 3).tolist()} mm are anisotropic beyond 10:1; "
            "expected a 3D sequence (e.g. DESS) with slice thickness <= 10x in-plane spacing"
        )
    if not np.all(np.isfinite(volume)):
        raise OAKitError(f"{name}: image contains NaN or infinite values; expected finite intensities")


def to_canonical(volume: np.ndarray, affine: np.ndarray, side: str) -> tuple[np.ndarray, CanonicalView]:
    """Reorient ``volume`` to RAS voxel order (LR, AP, SI) and mirror a left knee to right orientation."""
    if side not in ("R", "L"):
        raise OAKitError(f"side: got {side!r}; expected 'R' or 'L'")
    ornt = nib.orientations.io_orientation(np.asarray(affine, dtype=float))
    canon = nib.orientations.apply_orientation(np.asarray(volume), ornt)
    zooms = np.sqrt((np.asarray(affine, dtype=float)[:3, :3] ** 2).sum(axis=0))
    spacing = tuple(float(zooms[int(ax)]) for ax in np.argsort(ornt[:, 0]))
    if side == "L":
        canon = canon[::-1]
    return np.ascontiguousarray(canon), CanonicalView(ornt=ornt, mirrored=side == "L", spacing_mm=spacing)


def from_canonical(array: np.ndarray, view: CanonicalView) -> np.ndarray:
    """Undo :func:`to_canonical` on the first three axes of ``array`` (extra trailing axes, e.g. classes, are kept)."""
    out = array[::-1] if view.mirrored else array
    back = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt(("R", "A", "S")), view.ornt)
    return np.ascontiguousarray(nib.orientations.apply_orientation(out, back))


def normalise_intensity(volume: np.ndarray, lower: float = 1.0, upper: float = 99.0) -> np.ndarray:
    """Scale intensities so the volume's ``lower``/``upper`` percentiles map to 0/1 (clipped): removes site gain/contrast.

    The same two steps (:func:`percentile_range`, :func:`scale_intensity`) let inference normalise a volume slab by
    slab with the whole volume's percentiles.
    """
    return scale_intensity(volume, *percentile_range(volume, lower, upper))


def percentile_range(volume: np.ndarray, lower: float = 1.0, upper: float = 99.0) -> tuple[float, float]:
    """The ``lower``/``upper`` intensity percentiles that :func:`normalise_intensity` maps to 0/1 (linear interpolation)."""
    lo, hi = np.percentile(volume, (lower, upper))
    return float(lo), float(hi)


def scale_intensity(chunk: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``lo``/``hi`` to 0/1 and clip, in float32: :func:`normalise_intensity` applied to part of a volume."""
    scaled = np.array(chunk, dtype=np.float32, order="C")
    scaled -= lo
    if hi > lo:
        scaled /= hi - lo
    return np.clip(scaled, 0.0, 1.0, out=scaled)


#: Order of the 2.5D input channels: the volume at x - context_mm, the slice itself (x), the volume at x + context_mm.
CONTEXT_OFFSETS = (-1.0, 0.0, 1.0)
#: Index of the slice itself among the 2.5D input channels (where 2D weights go when a 2.5D network starts from them).
CONTEXT_CENTRE = CONTEXT_OFFSETS.index(0.0)


def context_positions(
    n_slices: int, step_mm: float, context_mm: float, start: int = 0, stop: int | None = None
) -> np.ndarray:
    """Fractional LR slice indices (B, 3) of slices ``start:stop`` and of the points ``context_mm`` (mm) either side.

    Positions are in mm along LR (slice ``i`` lies at ``i * step_mm``), so a context means the same physical
    distance on a 2 mm and a 0.7 mm grid; points outside the volume are clamped to its first/last slice.
    """
    if step_mm <= 0 or context_mm < 0:
        raise OAKitError(f"context: step {step_mm} mm, context {context_mm} mm; expected step > 0 and context >= 0")
    index = np.arange(start, n_slices if stop is None else min(stop, n_slices), dtype=float)
    shift = np.asarray(CONTEXT_OFFSETS) * (context_mm / step_mm)
    return np.clip(index[:, None] + shift[None, :], 0.0, n_slices - 1.0)


def context_stack(
    volume: np.ndarray,
    step_mm: float,
    context_mm: float,
    start: int = 0,
    stop: int | None = None,
    intensity: tuple[float, float] | None = None,
) -> np.ndarray:
    """2.5D network input (B, 3, AP, SI) float32 of canonical slices ``start:stop`` of a (LR, AP, SI) volume.

    Channels are the volume at x - ``context_mm``, the slice itself and at x + ``context_mm`` (x: the slice's LR
    position in mm), linearly interpolated between the two nearest slices and clamped at the volume's edges. Only
    the source slices needed are read, and scaled by :func:`scale_intensity` with ``intensity`` (the whole
    volume's percentiles) when given, so inference can work slab by slab on a view without copying the volume.
    """
    pos = context_positions(volume.shape[0], step_mm, context_mm, start, stop)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, volume.shape[0] - 1)
    weight = (pos - lo).astype(np.float32)[..., None, None]
    needed = np.unique(np.concatenate([lo.ravel(), hi.ravel()]))
    source = np.asarray(volume[needed], dtype=np.float32)
    if intensity is not None:
        source = scale_intensity(source, *intensity)
    below, above = source[np.searchsorted(needed, lo)], source[np.searchsorted(needed, hi)]
    return below + weight * (above - below)


def inplane_size(
    shape: tuple[int, int], spacing_mm: tuple[float, float], target_mm: float = MODEL_SPACING_MM
) -> tuple[int, int]:
    """Slice size (AP, SI) after resampling a sagittal slice of ``shape`` voxels at ``spacing_mm`` to ``target_mm``."""
    return tuple(max(8, int(round(n * s / target_mm))) for n, s in zip(shape, spacing_mm))  # type: ignore[return-value]


def resample_slices(slices: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resample a stack of 2D slices (B, C, H, W) to ``size`` (H', W'); a no-op when the size already matches.

    ``mode="nearest"`` (for label maps) takes the source pixel under each output pixel's centre (torch's
    ``nearest-exact``); torch's plain ``nearest`` indexes by the output pixel's corner, which shifts labels by up to
    one source pixel against the bilinearly resampled image.
    """
    if tuple(slices.shape[-2:]) == tuple(size):
        return slices
    if mode == "nearest":
        return F.interpolate(slices, size=size, mode="nearest-exact")
    return F.interpolate(slices, size=size, mode=mode, align_corners=False)


def split_position(mask: np.ndarray) -> float:
    """LR index that separates the medial and lateral compartments of a (LR, AP, SI) mask: the emptiest slice between them."""
    profile = mask.reshape(mask.shape[0], -1).sum(axis=1).astype(float)
    total = profile.sum()
    if total == 0:
        return (mask.shape[0] - 1) / 2.0
    cum = np.cumsum(profile) / total
    lo, hi = int(np.searchsorted(cum, 0.2)), int(np.searchsorted(cum, 0.8))
    if hi <= lo:
        return float(np.average(np.arange(mask.shape[0]), weights=profile))
    window = profile[lo : hi + 1]
    minima = np.flatnonzero(window == window.min()) + lo
    return float(minima.mean())


def split_medial_lateral(labels: np.ndarray) -> np.ndarray:
    """Split merged tibial cartilage (4) and meniscus (8) of a right-oriented (LR, AP, SI) label map into medial/lateral.

    In RAS right-knee orientation the medial compartment lies toward -x (low LR index); the boundary is the emptiest
    LR slice of the tibial cartilage (falling back to the menisci, then the volume centre).
    """
    out = labels.copy()
    reference = labels == 4 if np.any(labels == 4) else labels == 8
    cut = split_position(reference)
    lateral = np.arange(labels.shape[0])[:, None, None] > cut
    out[(labels == 4) & lateral] = 5
    out[(labels == 8) & lateral] = 9
    return out
