"""One knee scan measured: segmentation, cartilage biomarkers, QC flags and the segmenter embedding in one tidy row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oa_kit.features.cartilage import CartilageMeasurement, measure_cartilage
from oa_kit.features.mri_qc import qc_flags
from oa_kit.io.scans import ScanInput
from oa_kit.models.mri.inference import MRISegmenter


@dataclass
class KneeResult:
    """Everything measured on one knee scan."""

    labels: np.ndarray
    measurement: CartilageMeasurement
    row: dict


def analyse_knee(scan: ScanInput, segmenter: MRISegmenter, side: str) -> KneeResult:
    """Segment one scan and measure it: biomarkers, QC flags and embedding in one tidy row (``qc_usable`` is False
    when any QC check failed: the knee's biomarkers should not be used)."""
    seg = segmenter.segment(scan.image, scan.affine, side)
    measurement = measure_cartilage(seg.labels, scan.affine, side, proba=seg.proba)
    row = {
        "participant_id": scan.participant_id,
        "side": side,
        "visit_month": scan.visit_month,
        "source_file": str(scan.path),
    }
    row.update(measurement.to_row())
    qc = qc_flags(seg.labels, scan.affine, side, seg.proba)
    row.update(qc, qc_usable=not qc["qc_any"])
    row.update({f"mri_emb_{i:03d}": float(v) for i, v in enumerate(seg.embedding)})
    return KneeResult(seg.labels, measurement, row)
