"""Scan -> knee results: read any supported MRI input, segment, measure cartilage, QC, and write maps and the per-knee table."""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from oa_kit.errors import OAKitError
from oa_kit.features.cartilage import CartilageMeasurement, measure_cartilage, write_map_nifti
from oa_kit.features.mri_qc import QC_FLAGS, qc_flags
from oa_kit.io.atomic import atomic_path, write_text_atomic
from oa_kit.models.mri.inference import MRISegmenter

_NAME = re.compile(r"(?P<pid>[^_/]+)_(?P<side>[RL])_(?P<visit>V\d\d)")
_SIDE_WORDS = {"RIGHT": "R", "LEFT": "L"}


@dataclass
class ScanInput:
    """One input scan as read: image, affine, and what the name/header say about participant, side and visit."""

    path: Path
    image: np.ndarray
    affine: np.ndarray
    participant_id: str
    side: str | None
    visit_month: int


@dataclass
class KneeResult:
    """Everything measured on one knee scan."""

    labels: np.ndarray
    measurement: CartilageMeasurement
    row: dict


def read_scan(path: str | Path) -> ScanInput:
    """Read a DICOM series folder, NIfTI, MHD or SKM-TEA HDF5 scan with its geometry; reject files without orientation."""
    from oa_kit.io import mri

    path = Path(path)
    if path.is_dir():
        vol = mri.read_dicom_series(path)
    elif path.name.endswith((".nii", ".nii.gz")):
        hdr = nib.load(str(path)).header
        if int(hdr["sform_code"]) == 0 and int(hdr["qform_code"]) == 0:
            raise OAKitError(f"{path}: NIfTI has no orientation (qform_code = sform_code = 0); expected a scanner affine")
        vol = mri.read_nifti(path)
    elif path.suffix == ".mhd":
        vol = mri.read_mhd(path)
    elif path.suffix in (".h5", ".hdf5"):
        vol = mri.read_skmtea_h5(path)["echo1"]
    elif not path.exists():
        raise OAKitError(f"{path}: not found; expected a DICOM folder, .nii(.gz), .mhd or .h5 file")
    else:
        raise OAKitError(f"{path}: unsupported file type; expected a DICOM series folder, .nii(.gz), .mhd or .h5")
    if vol.array.ndim != 3:
        raise OAKitError(f"{path}: image has shape {vol.array.shape}; expected one 3-D volume")
    return ScanInput(path, np.asarray(vol.array, dtype=np.float32), vol.affine, *_identity(path, vol.metadata))


def _identity(path: Path, metadata) -> tuple[str, str | None, int]:
    """Participant id, side and visit month from a ``{ID}_{R|L}_V00`` name or DICOM laterality/description."""
    from oa_kit.io.oai import VISIT_MONTHS

    stem = path.name.split(".")[0]
    m = _NAME.search(stem)
    if m:
        return m["pid"], m["side"], int(VISIT_MONTHS.get(m["visit"], 0))
    side = None
    lat = str(metadata.get("laterality", "")).upper()
    desc = str(metadata.get("series_description", "")).upper()
    if lat in ("R", "L"):
        side = lat
    else:
        side = next((v for k, v in _SIDE_WORDS.items() if k in desc), None)
    return stem, side, 0


def analyse_knee(scan: ScanInput, segmenter: MRISegmenter, side: str) -> KneeResult:
    """Segment one scan and measure it: biomarkers, QC flags and embedding in one tidy row."""
    seg = segmenter.segment(scan.image, scan.affine, side)
    measurement = measure_cartilage(seg.labels, scan.affine, side, proba=seg.proba)
    row = {"participant_id": scan.participant_id, "side": side, "visit_month": scan.visit_month,
           "source_file": str(scan.path)}
    row.update(measurement.to_row())
    row.update(qc_flags(seg.labels, scan.affine, side, seg.proba))
    row.update({f"mri_emb_{i:03d}": float(v) for i, v in enumerate(seg.embedding)})
    return KneeResult(seg.labels, measurement, row)


def segment_scans(inputs: Iterable[str | Path], out: str | Path, side: str | None = None,
                  weights: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Segment scans and write, under ``out``: ``labels/*.nii.gz``, ``thickness/*.nii.gz`` (same affine as each input),
    ``mri_biomarkers.parquet`` (one row per knee) and ``qc_summary.csv``/``.json``.

    Parameters
    ----------
    inputs
        DICOM series folders, NIfTI, MHD or SKM-TEA HDF5 files.
    side
        Knee side for inputs whose name/header does not say it.
    weights
        Segmenter ``.safetensors``; default the shipped weights (trained on synthetic phantoms only).
    """
    out = Path(out)
    segmenter = MRISegmenter.from_pretrained(weights)
    rows = []
    for path in tqdm(list(inputs), desc="segmenting", disable=not progress):
        scan = read_scan(path)
        knee_side = scan.side or side
        if knee_side is None:
            raise OAKitError(f"{path}: knee side not in the file name or header; expected --side R or --side L")
        result = analyse_knee(scan, segmenter, knee_side)
        stem = f"{scan.participant_id}_{knee_side}_{scan.visit_month:03d}"
        write_map_nifti(out / "labels" / f"{stem}_labels.nii.gz", result.labels, scan.affine)
        write_map_nifti(out / "thickness" / f"{stem}_thickness.nii.gz", result.measurement.thickness_map, scan.affine)
        rows.append(result.row)
    table = pd.DataFrame(rows)
    with atomic_path(out / "mri_biomarkers.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    qc = table[["participant_id", "side", "visit_month", "source_file", *QC_FLAGS, "qc_any", "qc_cartilage_entropy", "qc_reasons"]]
    with atomic_path(out / "qc_summary.csv") as tmp:
        qc.to_csv(tmp, index=False)
    summary = {"n_knees": len(table), "n_flagged": int(qc["qc_any"].sum()),
               "flag_counts": {f: int(qc[f].sum()) for f in QC_FLAGS},
               "note": "segmenter trained on synthetic phantoms only; retrain/fine-tune before trusting real-scan numbers"}
    write_text_atomic(out / "qc_summary.json", json.dumps(summary, indent=2) + "\n")
    return table
