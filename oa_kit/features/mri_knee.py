"""One knee measured, from a scan (segmented here) or a label map the user has: cartilage biomarkers, QC flags, the
knee side and where it came from, and the segmenter embedding, in one tidy row."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from oa_kit.errors import OAKitError
from oa_kit.features.cartilage import CARTILAGE_BONE, CartilageMeasurement, measure_cartilage
from oa_kit.features.mri_qc import qc_flags
from oa_kit.features.schema import MRI_MODEL_COLUMN
from oa_kit.hugepages import small_pages
from oa_kit.io.labels import (
    COMBINED_TIBIAL,
    LABELS,
    LACKS_TISSUES,
    SIDE_SCORE_MARGIN,
    anatomy_side,
    to_harmonised,
)
from oa_kit.io.scans import ScanInput, declared_side
from oa_kit.models.mri.inference import ClassProbabilities, MRISegmenter, Segmentation

#: Segmentation labels swapped when a provisional right-knee split turns out to be a left knee (medial <-> lateral).
_SWAP_SIDES = np.array([0, 1, 2, 3, 5, 4, 6, 7, 9, 8], dtype=np.uint8)


@dataclass
class KneeResult:
    """Everything measured on one knee: harmonised labels, cartilage measurement and the per-knee row."""

    labels: np.ndarray
    measurement: CartilageMeasurement
    row: dict


def side_from_anatomy(labels: np.ndarray, affine: np.ndarray, name: object) -> str:
    """Knee side of a harmonised label map from its anatomy (:func:`oa_kit.io.labels.anatomy_side`); an error naming
    ``name`` when the anatomy cannot decide (bones or tibial cartilage missing, or a score too close to 0)."""
    side, score = anatomy_side(labels, affine)
    if side is None:
        raise OAKitError(
            f"{name}: knee side not in the file name or header, and the anatomy cannot decide it (side score "
            f"{score:+.2f}, |score| < {SIDE_SCORE_MARGIN}); expected side R or L (--side)"
        )
    return side


@small_pages()
def measure_knee(
    labels: np.ndarray,
    affine: np.ndarray,
    side: str,
    identity: Mapping[str, object],
    proba: np.ndarray | None = None,
    embedding: np.ndarray | None = None,
    embed_dim: int = 0,
    lacks: Iterable[int] = (),
    embedded_by: str | None = None,
) -> KneeResult:
    """Measure one knee's harmonised label map: biomarkers, QC flags and embedding in one row.

    ``identity`` leads the row (participant_id, visit_month, source_file, source_labels, qc_side_source);
    ``qc_usable`` is False when any QC check failed (the knee's biomarkers should not be used). Without an
    ``embedding`` (no image) the ``embed_dim`` columns ``mri_emb_*`` are NaN, not invented; ``lacks`` are the
    tissues the label convention never labels (QC skips them and records them in ``qc_not_labelled``);
    ``embedded_by`` (the sha256 of the weights that made ``embedding``) goes to :data:`MRI_MODEL_COLUMN`.
    """
    _check_measurable(labels, identity.get("source_file", "labels"))
    measurement = measure_cartilage(labels, affine, side, proba=proba)
    row = {"participant_id": identity.get("participant_id"), "side": side, **identity}
    row.update(measurement.to_row())
    qc = qc_flags(labels, affine, side, proba, lacks=lacks)
    row.update(qc, qc_usable=not qc["qc_any"])
    values = np.full(embed_dim, np.nan) if embedding is None else np.asarray(embedding, dtype=float)
    row[MRI_MODEL_COLUMN] = embedded_by if embedding is not None else None
    row.update({f"mri_emb_{i:03d}": float(v) for i, v in enumerate(values)})
    return KneeResult(labels, measurement, row)


def _check_measurable(labels: np.ndarray, name: object) -> None:
    """Thickness is measured from each cartilage's bone: a map where no cartilage has its bone (e.g. SKM-TEA masks,
    which label no bones, or a segmentation that found none) is an error naming ``name``, not a row of nothing."""
    counts = np.bincount(np.asarray(labels).ravel().astype(np.intp), minlength=len(LABELS))
    if not any(counts[c] >= 4 and counts[b] > 0 for c, b in CARTILAGE_BONE.items()):
        raise OAKitError(
            f"{name}: no cartilage lies on a labelled bone (femur {counts[1]}, tibia {counts[3]}, patella "
            f"{counts[6]} voxels); expected a map labelling the bones under the cartilage to measure its thickness"
        )


def _swap_sides(seg: Segmentation) -> Segmentation:
    """The same segmentation with medial and lateral compartments renamed (a left knee split as if right)."""
    proba = ClassProbabilities(seg.proba.channels, ~seg.proba.lateral)
    return Segmentation(labels=_SWAP_SIDES[seg.labels], proba=proba, embedding=seg.embedding)


def analyse_knee(scan: ScanInput, segmenter: MRISegmenter, side: str | None = None) -> KneeResult:
    """Segment one scan and measure it (:func:`measure_knee`).

    The side is the file name's or header's, else ``side``; when neither says it the scan is segmented as a right
    knee, the side is read from the segmentation's anatomy (:func:`side_from_anatomy`: the network sees sagittal
    slices, so only the medial/lateral naming depends on the side) and the compartments are renamed for a left knee.
    ``qc_side_source`` records which (``file name``, ``header``, ``argument`` or ``anatomy``).
    """
    knee_side, source = declared_side(scan.side, scan.side_source, side, scan.path)
    if knee_side is None:
        seg = segmenter.segment(scan.image, scan.affine, "R")
        knee_side, source = side_from_anatomy(seg.labels, scan.affine, scan.path), "anatomy"
        seg = _swap_sides(seg) if knee_side == "L" else seg
    else:
        seg = segmenter.segment(scan.image, scan.affine, knee_side)
    identity = {
        "participant_id": scan.participant_id,
        "visit_month": scan.visit_month,
        "source_file": str(scan.path),
        "source_labels": "segmenter",
        "qc_side_source": source,
    }
    return measure_knee(
        seg.labels, scan.affine, knee_side, identity, seg.proba, seg.embedding, embedded_by=segmenter.weights_sha256
    )


def harmonise_labels(
    raw: np.ndarray, affine: np.ndarray, convention: str, side: str | None, name: object
) -> tuple[np.ndarray, str]:
    """A user's label map in the harmonised convention, with its knee side (``side``, else from the anatomy).

    Conventions with one tibial cartilage label (OAI-ZIB, Woo) are split as a right knee first; the anatomy cue
    reads both plates as one mask, so the split is redone only when the knee turns out to be a left one.
    """
    if side is not None:
        return to_harmonised(raw, convention, side=side, affine=affine), side
    harm = to_harmonised(raw, convention, side="R", affine=affine)
    inferred = side_from_anatomy(harm, affine, name)
    if inferred == "L" and convention in COMBINED_TIBIAL:
        harm = to_harmonised(raw, convention, side="L", affine=affine)
    return harm, inferred


def lacked_tissues(convention: str) -> tuple[int, ...]:
    """Harmonised tissues a convention never labels (:data:`oa_kit.io.labels.LACKS_TISSUES`)."""
    return tuple(LACKS_TISSUES[convention])
