"""Per-scan QC flags for a knee segmentation: implausible volumes, missing/disconnected compartments, laterality,
truncated field of view and low model confidence. None of the anchor systems flags a bad segmentation; oa_kit does."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
from scipy import ndimage

from oa_kit.features.cartilage import voxel_spacing
from oa_kit.features.subregions import fit_circle
from oa_kit.io.labels import CARTILAGE_LABELS, LABELS
from oa_kit.models.mri.transforms import split_position

#: Plausible tissue volumes (mm^3) of an adult knee in a DESS field of view; outside -> ``qc_volume_implausible``.
#: Wide on purpose (cartilage loss and small knees are real); bones are partial volumes inside the field of view.
PLAUSIBLE_VOLUME_MM3 = MappingProxyType(
    {
        "femur": (15_000.0, 600_000.0),
        "femoral_cartilage": (1_500.0, 40_000.0),
        "tibia": (10_000.0, 600_000.0),
        "medial_tibial_cartilage": (200.0, 8_000.0),
        "lateral_tibial_cartilage": (200.0, 8_000.0),
        "patella": (2_000.0, 60_000.0),
        "patellar_cartilage": (300.0, 12_000.0),
        "medial_meniscus": (200.0, 12_000.0),
        "lateral_meniscus": (200.0, 12_000.0),
    }
)
#: A second connected piece larger than this fraction of the largest makes a tissue "disconnected".
DISCONNECTED_FRACTION = 0.10
#: Mean normalised softmax entropy (0 = certain, 1 = uniform) in cartilage above which confidence is "low".
ENTROPY_THRESHOLD = 0.30

QC_FLAGS = (
    "qc_volume_implausible",
    "qc_missing_compartment",
    "qc_disconnected",
    "qc_laterality_mismatch",
    "qc_truncated_fov",
    "qc_low_confidence",
)


def tissue_volumes_mm3(labels: np.ndarray, affine: np.ndarray) -> dict[str, float]:
    """Volume (mm^3) of every harmonised tissue from a label map."""
    vox = float(np.prod(voxel_spacing(affine)))
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=len(LABELS))
    return {name: float(counts[i]) * vox for i, name in LABELS.items() if i > 0}


def disconnected_tissues(labels: np.ndarray) -> list[str]:
    """Tissues whose second-largest connected piece exceeds ``DISCONNECTED_FRACTION`` of the largest.

    Each tissue is labelled inside its own bounding box (every piece of it lies there), which keeps this cheap on
    OAI-sized volumes.
    """
    out = []
    boxes = ndimage.find_objects(labels.astype(np.int64, copy=False))
    for label, name in LABELS.items():
        if label == 0 or label > len(boxes) or boxes[label - 1] is None:
            continue
        comp, n = ndimage.label(labels[boxes[label - 1]] == label)
        if n > 1:
            sizes = np.sort(np.bincount(comp.ravel())[1:])[::-1]
            if sizes[1] > DISCONNECTED_FRACTION * sizes[0]:
                out.append(name)
    return out


def anatomical_medial_sign(labels: np.ndarray, affine: np.ndarray) -> int:
    """Which world-x direction the anatomy puts the medial compartment: -1 (-x), +1 (+x) or 0 (undecided).

    Two label-independent cues vote: the medial tibial plateau has the larger cartilage footprint, and the medial
    femoral condyle has the larger radius (circle fitted to the femoral bone-cartilage interface per compartment).
    Tibial cartilage is taken as one mask (4 or 5) and split at its emptiest LR position, so a segmenter that names
    the plates by position cannot make the check circular.
    """
    votes = []
    xyz_tc = _world(np.isin(labels, (4, 5)), affine)
    if len(xyz_tc) > 20:
        votes.append(_larger_side(xyz_tc, lambda pts: _footprint_mm2(pts)))
    fem = _world(_interface(labels == 1, labels == 2), affine)
    if len(fem) > 20:
        votes.append(_larger_side(fem, lambda pts: fit_circle(pts[:, 1], pts[:, 2])[2] if len(pts) > 10 else 0.0))
    total = int(np.sign(sum(votes)))
    return total if len(votes) and all(v == total for v in votes if v) else 0


def _world(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World (RAS mm) coordinates of the voxels of ``mask``."""
    idx = np.argwhere(mask)
    return idx @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3] if len(idx) else np.zeros((0, 3))


def _interface(bone: np.ndarray, cartilage: np.ndarray) -> np.ndarray:
    """Bone voxels touching cartilage."""
    return bone & ndimage.binary_dilation(cartilage)


def _footprint_mm2(points: np.ndarray, cell_mm: float = 1.0) -> float:
    """Area (mm^2) of the x-y projection of points on a ``cell_mm`` grid."""
    return float(len(np.unique(np.floor(points[:, :2] / cell_mm).astype(np.int64), axis=0))) * cell_mm**2


def _larger_side(points: np.ndarray, size) -> int:
    """-1 if the -x cluster (split at the emptiest x between them) is larger by ``size``, +1 if the +x one, 0 if equal."""
    x = points[:, 0]
    edges = np.arange(x.min(), x.max() + 1.0, 1.0)
    if len(edges) < 3:
        return 0
    hist, _ = np.histogram(x, bins=edges)
    cut = edges[int(round(split_position(hist[:, None])))] + 0.5  # centre of the emptiest 1 mm bin
    low, high = size(points[x < cut]), size(points[x >= cut])
    if max(low, high) == 0 or abs(low - high) < 0.02 * max(low, high):
        return 0
    return -1 if low > high else 1


def mean_cartilage_entropy(proba: np.ndarray, labels: np.ndarray) -> float:
    """Mean softmax entropy, normalised to [0, 1] by log(n_classes), over voxels labelled as cartilage."""
    mask = np.isin(labels, CARTILAGE_LABELS)
    if not mask.any():
        return float("nan")
    p = np.clip(proba[:, mask], 1e-8, 1.0)
    return float((-(p * np.log(p)).sum(axis=0) / np.log(proba.shape[0])).mean())


def qc_flags(labels: np.ndarray, affine: np.ndarray, side: str, proba: np.ndarray | None = None) -> dict[str, object]:
    """QC flags and their evidence for one segmented knee.

    Parameters
    ----------
    labels
        Harmonised label map (scan voxel order).
    affine
        Voxel -> RAS mm.
    side
        Declared knee side ``"R"``/``"L"`` (checked against the anatomy).
    proba
        Optional (10, X, Y, Z) probabilities for the confidence flag.

    Returns
    -------
    dict
        ``qc_*`` booleans (``QC_FLAGS``), ``qc_any``, ``qc_reasons`` (``;``-separated text) and
        ``qc_cartilage_entropy``.
    """
    volumes = tissue_volumes_mm3(labels, affine)
    reasons = []
    missing = [n for n, v in volumes.items() if v == 0]
    implausible = [
        n for n, v in volumes.items() if v > 0 and not (PLAUSIBLE_VOLUME_MM3[n][0] <= v <= PLAUSIBLE_VOLUME_MM3[n][1])
    ]
    disconnected = disconnected_tissues(labels)
    cart = np.isin(labels, CARTILAGE_LABELS)
    border = [f"axis {a}" for a in range(3) if cart.take(0, axis=a).any() or cart.take(-1, axis=a).any()]
    medial_sign = anatomical_medial_sign(labels, affine)
    expected = -1 if side == "R" else 1
    laterality = medial_sign != 0 and medial_sign != expected
    entropy = mean_cartilage_entropy(proba, labels) if proba is not None else float("nan")
    flags = {
        "qc_volume_implausible": bool(implausible),
        "qc_missing_compartment": bool(missing),
        "qc_disconnected": bool(disconnected),
        "qc_laterality_mismatch": bool(laterality),
        "qc_truncated_fov": bool(border),
        "qc_low_confidence": bool(np.isfinite(entropy) and entropy > ENTROPY_THRESHOLD),
    }
    for flag, detail in (
        ("qc_volume_implausible", implausible),
        ("qc_missing_compartment", missing),
        ("qc_disconnected", disconnected),
        ("qc_truncated_fov", border),
    ):
        if flags[flag]:
            reasons.append(f"{flag[3:]}: {', '.join(detail)}")
    if laterality:
        reasons.append(
            f"laterality_mismatch: declared {side} but the medial compartment lies toward "
            f"{'-x' if medial_sign < 0 else '+x'}"
        )
    if flags["qc_low_confidence"]:
        reasons.append(f"low_confidence: cartilage entropy {entropy:.2f} > {ENTROPY_THRESHOLD}")
    return {**flags, "qc_any": any(flags.values()), "qc_reasons": "; ".join(reasons), "qc_cartilage_entropy": entropy}
