"""Per-scan QC flags for a knee segmentation or label map: implausible volumes, missing/disconnected compartments,
cartilage off its bone, laterality, truncated field of view and low model confidence. None of the anchor systems
flags a bad segmentation; oa_kit does, by anatomy (a confidently wrong map fails even when the model is sure)."""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType

import numpy as np
from scipy import ndimage

from oa_kit.features.cartilage import voxel_spacing
from oa_kit.io.labels import CARTILAGE_LABELS, LABEL_IDS, LABELS, anatomy_side

#: Physiological cartilage volume (mL) of an adult knee, as stated in issue #20 ("femoral 4-15 mL, each tibial plate
#: 1-4 mL, patellar 1-6 mL"); docs/REFERENCE.md gives no volume ranges. Real manual maps reach past them (68 Woo OAI
#: knees: femoral 7.5-20.9 mL, tibial plates 0.97-4.4 mL, patellar 0.72-5.5 mL), hence the margin below.
PHYSIOLOGICAL_CARTILAGE_ML = MappingProxyType(
    {
        "femoral_cartilage": (4.0, 15.0),
        "medial_tibial_cartilage": (1.0, 4.0),
        "lateral_tibial_cartilage": (1.0, 4.0),
        "patellar_cartilage": (1.0, 6.0),
    }
)
#: QC limits are the physiological range times these factors (half the low end, 1.75x the high end): femoral
#: 2-26 mL, tibial plates 0.5-7 mL, patellar 0.5-10.5 mL. A map scattering "cartilage" over soft tissue (femoral
#: 92 mL, tibial plates 37-45 mL, patellar 41 mL on a real scan) is far outside.
VOLUME_MARGIN = (0.5, 1.75)
#: Plausible tissue volumes (mm^3) in a DESS field of view; outside -> ``qc_volume_implausible``. Bones are partial
#: volumes inside the field of view and menisci vary widely, so their limits are wide.
PLAUSIBLE_VOLUME_MM3 = MappingProxyType(
    {
        "femur": (15_000.0, 600_000.0),
        "tibia": (10_000.0, 600_000.0),
        "patella": (2_000.0, 60_000.0),
        "medial_meniscus": (200.0, 12_000.0),
        "lateral_meniscus": (200.0, 12_000.0),
        **{
            name: (lo * VOLUME_MARGIN[0] * 1000.0, hi * VOLUME_MARGIN[1] * 1000.0)
            for name, (lo, hi) in PHYSIOLOGICAL_CARTILAGE_ML.items()
        },
    }
)
#: A second connected piece larger than this fraction of the largest makes a tissue "disconnected".
DISCONNECTED_FRACTION = 0.10
#: Mean normalised softmax entropy (0 = certain, 1 = uniform) in cartilage above which confidence is "low".
ENTROPY_THRESHOLD = 0.30
#: Cartilage -> the bone it covers (tibial plates are checked together against the tibia).
CARTILAGE_ON = MappingProxyType({(2,): 1, (4, 5): 3, (7,): 6})
#: A cartilage voxel is "on its bone" within this distance (mm) of it: thicker than any knee cartilage (patellar
#: cartilage, the thickest, stays under ~7 mm) plus a voxel.
ON_BONE_MM = 8.0
#: Grid step (mm, about) of the distance map behind the on-bone check.
ON_BONE_GRID_MM = 1.0
#: Fraction of a cartilage's voxels that must lie on its bone; below -> ``qc_cartilage_off_bone``.
ON_BONE_FRACTION = 0.90

QC_FLAGS = (
    "qc_volume_implausible",
    "qc_missing_compartment",
    "qc_disconnected",
    "qc_cartilage_off_bone",
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
    boxes = ndimage.find_objects(labels if labels.dtype.kind in "iu" else labels.astype(np.int64))
    for label, name in LABELS.items():
        if label == 0 or label > len(boxes) or boxes[label - 1] is None:
            continue
        comp, n = ndimage.label(labels[boxes[label - 1]] == label)
        if n > 1:
            sizes = np.sort(np.bincount(comp.ravel())[1:])[::-1]
            if sizes[1] > DISCONNECTED_FRACTION * sizes[0]:
                out.append(name)
    return out


def on_bone_fractions(labels: np.ndarray, affine: np.ndarray, skip: Iterable[int] = ()) -> dict[str, float]:
    """Fraction of each cartilage's voxels within ``ON_BONE_MM`` of the bone it covers (:data:`CARTILAGE_ON`).

    Cartilage whose bone is in ``skip`` (a convention that does not label it) or absent is not judged. The distance
    map is computed in the cartilage's bounding box grown by ``ON_BONE_MM`` (bone farther out cannot be within reach)
    on a grid of about ``ON_BONE_GRID_MM`` (4x fewer operations on OAI DESS voxels; the distance is then known to
    about a grid step, small next to ``ON_BONE_MM``). Keys: ``femoral_cartilage``, ``tibial_cartilage``,
    ``patellar_cartilage``.
    """
    spacing = voxel_spacing(affine)
    grow = np.ceil(ON_BONE_MM / spacing).astype(int)
    step = np.maximum(np.floor(ON_BONE_GRID_MM / spacing), 1).astype(int)
    out = {}
    for cartilage, bone in CARTILAGE_ON.items():
        cart = np.isin(labels, cartilage)
        if bone in skip or not cart.any() or not (labels == bone).any():
            continue
        idx = np.argwhere(cart)
        lo = np.maximum(idx.min(axis=0) - grow, 0)
        box = tuple(
            slice(int(a), min(int(b) + g + 1, n)) for a, b, g, n in zip(lo, idx.max(axis=0), grow, labels.shape)
        )
        coarse = labels[box][:: step[0], :: step[1], :: step[2]] != bone
        name = _cartilage_name(cartilage)
        if coarse.all():
            out[name] = 0.0
            continue
        distance = ndimage.distance_transform_edt(coarse, sampling=spacing * step)
        out[name] = float(np.mean(distance[tuple(((idx - lo) // step).T)] <= ON_BONE_MM))
    return out


def _cartilage_name(cartilage: tuple[int, ...]) -> str:
    """``femoral_cartilage``, ``tibial_cartilage`` (plates 4 and 5 together) or ``patellar_cartilage``."""
    return "tibial_cartilage" if len(cartilage) > 1 else LABELS[cartilage[0]]


def mean_cartilage_entropy(proba: np.ndarray, labels: np.ndarray) -> float:
    """Mean softmax entropy, normalised to [0, 1] by log(n_classes), over voxels labelled as cartilage."""
    mask = np.isin(labels, CARTILAGE_LABELS)
    if not mask.any():
        return float("nan")
    p = np.clip(proba[:, mask], 1e-8, 1.0)
    return float((-(p * np.log(p)).sum(axis=0) / np.log(proba.shape[0])).mean())


def qc_flags(
    labels: np.ndarray,
    affine: np.ndarray,
    side: str,
    proba: np.ndarray | None = None,
    lacks: Iterable[int | str] = (),
) -> dict[str, object]:
    """QC flags and their evidence for one segmented (or user-labelled) knee.

    Parameters
    ----------
    labels
        Harmonised label map (scan voxel order).
    affine
        Voxel -> RAS mm.
    side
        Declared knee side ``"R"``/``"L"`` (checked against the anatomy, :func:`oa_kit.io.labels.anatomy_side`).
    proba
        Optional (10, X, Y, Z) probabilities for the confidence flag.
    lacks
        Harmonised tissues (ids or names) the label convention never labels
        (:data:`oa_kit.io.labels.LACKS_TISSUES`): not reported missing, not judged.

    Returns
    -------
    dict
        ``qc_*`` booleans (``QC_FLAGS``), ``qc_any``, ``qc_reasons`` (``;``-separated text) and the evidence:
        ``qc_cartilage_entropy``, ``qc_cartilage_on_bone_fraction`` (lowest over the cartilages), ``qc_anatomy_side``
        (``R``/``L``, empty when the anatomy cannot decide) and ``qc_not_labelled`` (``;``-separated tissue names).
    """
    skip = {LABEL_IDS[t] if isinstance(t, str) else int(t) for t in lacks}
    volumes = {n: v for n, v in tissue_volumes_mm3(labels, affine).items() if LABEL_IDS[n] not in skip}
    missing = [n for n, v in volumes.items() if v == 0]
    implausible = [
        n for n, v in volumes.items() if v > 0 and not (PLAUSIBLE_VOLUME_MM3[n][0] <= v <= PLAUSIBLE_VOLUME_MM3[n][1])
    ]
    disconnected = disconnected_tissues(labels)
    on_bone = on_bone_fractions(labels, affine, skip)
    off_bone = [f"{n} {f:.0%} on bone" for n, f in on_bone.items() if f < ON_BONE_FRACTION]
    cart = np.isin(labels, CARTILAGE_LABELS)
    border = [f"axis {a}" for a in range(3) if cart.take(0, axis=a).any() or cart.take(-1, axis=a).any()]
    anatomy, score = anatomy_side(labels, affine)
    laterality = anatomy is not None and anatomy != side
    entropy = mean_cartilage_entropy(proba, labels) if proba is not None else float("nan")
    flags = {
        "qc_volume_implausible": bool(implausible),
        "qc_missing_compartment": bool(missing),
        "qc_disconnected": bool(disconnected),
        "qc_cartilage_off_bone": bool(off_bone),
        "qc_laterality_mismatch": bool(laterality),
        "qc_truncated_fov": bool(border),
        "qc_low_confidence": bool(np.isfinite(entropy) and entropy > ENTROPY_THRESHOLD),
    }
    reasons = [
        f"{flag[3:]}: {', '.join(detail)}"
        for flag, detail in (
            ("qc_volume_implausible", [f"{n} {volumes[n] / 1000:.1f} mL" for n in implausible]),
            ("qc_missing_compartment", missing),
            ("qc_disconnected", disconnected),
            ("qc_cartilage_off_bone", off_bone),
            ("qc_truncated_fov", border),
        )
        if flags[flag]
    ]
    if laterality:
        reasons.append(f"laterality_mismatch: declared {side} but the anatomy says {anatomy} (score {score:+.1f})")
    if flags["qc_low_confidence"]:
        reasons.append(f"low_confidence: cartilage entropy {entropy:.2f} > {ENTROPY_THRESHOLD}")
    return {
        **flags,
        "qc_any": any(flags.values()),
        "qc_reasons": "; ".join(reasons),
        "qc_cartilage_entropy": entropy,
        "qc_cartilage_on_bone_fraction": min(on_bone.values(), default=float("nan")),
        "qc_anatomy_side": anatomy or "",
        "qc_not_labelled": ";".join(LABELS[t] for t in sorted(skip) if t in LABELS and t > 0),
    }
