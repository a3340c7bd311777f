"""One MRI scan from any supported input (DICOM series folder, NIfTI, MHD, SKM-TEA HDF5) with its geometry and what
its name or header says about participant, side and visit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oa_kit.errors import OAKitError
from oa_kit.io import mri
from oa_kit.io.oai import VISIT_MONTHS

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


def read_scan(path: str | Path) -> ScanInput:
    """Read a DICOM series folder, NIfTI, MHD or SKM-TEA HDF5 scan with its geometry; reject files without orientation."""
    path = Path(path)
    if path.is_dir():
        vol = mri.read_dicom_series(path)
    elif path.name.endswith((".nii", ".nii.gz")):
        vol = mri.read_nifti(path)
        if vol.metadata.get("sform_code") == 0 and vol.metadata.get("qform_code") == 0:
            raise OAKitError(
                f"{path}: NIfTI has no orientation (qform_code = sform_code = 0); expected a scanner affine"
            )
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
