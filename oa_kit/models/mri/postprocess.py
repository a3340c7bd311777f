"""Anatomical clean-up of a predicted knee label map, before anything is measured.

A slice-wise network labels each sagittal slice on its own, so on a real scan it also marks pieces of fat, muscle or
skin edge as bone or cartilage wherever their intensity resembles marrow or cartilage (fat is as bright as marrow in
many contrasts). Two rules of anatomy remove them, as nnU-Net's "largest component" post-processing does:

1. each bone (femur, tibia, patella) is one connected piece: its largest 3D connected component is kept
   (MONAI's :class:`~monai.transforms.KeepLargestConnectedComponent`);
2. cartilage lies on its own bone: a connected piece of cartilage is kept only if it comes within
   :data:`TOUCH_MM` of that bone, and no cartilage voxel lies farther than :data:`MAX_CARTILAGE_DISTANCE_MM` from it.

Menisci and background are left as they are. On a segmentation that is already anatomical the clean-up changes
nothing but isolated specks.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import KeepLargestConnectedComponent
from scipy import ndimage

from oa_kit.io.labels import BONE_LABELS

#: Each cartilage label and the bone it lies on (harmonised ids of ``oa_kit.io.labels.LABELS``).
CARTILAGE_BONE: dict[int, int] = {2: 1, 4: 3, 5: 3, 7: 6}
#: Farthest any cartilage voxel may lie from its bone (mm): above the thickest knee cartilage (~5–6 mm, patella).
MAX_CARTILAGE_DISTANCE_MM = 7.0
#: A connected piece of cartilage is kept only if some voxel of it comes this close to its bone (mm).
TOUCH_MM = 2.0


def voxel_spacing_mm(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size (mm) along each array axis, from a 4x4 voxel -> RAS matrix."""
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine, dtype=float)[:3, :3], axis=0))


def keep_largest_bones(labels: np.ndarray) -> np.ndarray:
    """A copy of ``labels`` with only the largest 3D connected piece of each bone (face-connected, as QC's
    ``disconnected`` check counts pieces); other pieces become background."""
    keep = KeepLargestConnectedComponent(
        applied_labels=list(BONE_LABELS), is_onehot=False, independent=True, connectivity=1
    )
    cleaned = keep(torch.as_tensor(labels[None].astype(np.int16)))
    return np.asarray(cleaned[0], dtype=labels.dtype)


def distance_to_mask_mm(mask: np.ndarray, spacing_mm: tuple[float, float, float], reach_mm: float) -> np.ndarray:
    """Distance (mm) of every voxel to ``mask``, exact up to ``reach_mm`` (computed in the mask's box widened by
    that much, to keep real-size volumes cheap) and ``inf`` beyond the box or when the mask is empty."""
    distance = np.full(mask.shape, np.inf, dtype=np.float32)
    if not mask.any():
        return distance
    margin = [int(np.ceil(reach_mm / s)) + 1 for s in spacing_mm]
    where = np.nonzero(mask)
    box = tuple(
        slice(max(int(w.min()) - m, 0), min(int(w.max()) + m + 1, n))
        for w, m, n in zip(where, margin, mask.shape, strict=True)
    )
    distance[box] = ndimage.distance_transform_edt(~mask[box], sampling=spacing_mm)
    return distance


def keep_cartilage_on_bone(
    labels: np.ndarray,
    spacing_mm: tuple[float, float, float],
    max_distance_mm: float = MAX_CARTILAGE_DISTANCE_MM,
    touch_mm: float = TOUCH_MM,
) -> np.ndarray:
    """A copy of ``labels`` keeping only cartilage within ``max_distance_mm`` of its bone, in connected pieces that
    come within ``touch_mm`` of it; the rest becomes background."""
    out = labels.copy()
    for bone in BONE_LABELS:
        cartilages = [c for c, b in CARTILAGE_BONE.items() if b == bone and (out == c).any()]
        if not cartilages:
            continue
        distance = distance_to_mask_mm(out == bone, spacing_mm, max_distance_mm)
        for cartilage in cartilages:
            mask = out == cartilage
            near = mask & (distance <= max_distance_mm)
            pieces, n = ndimage.label(near, structure=np.ones((3, 3, 3), dtype=bool))
            closest = ndimage.minimum(distance, pieces, index=np.arange(1, n + 1)) if n else np.zeros(0)
            kept = np.isin(pieces, 1 + np.flatnonzero(np.asarray(closest) <= touch_mm))
            out[mask & ~kept] = 0
    return out


def clean_labels(labels: np.ndarray, spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Anatomical clean-up (see the module docstring): one piece per bone, cartilage only on its own bone."""
    return keep_cartilage_on_bone(keep_largest_bones(labels), spacing_mm)
