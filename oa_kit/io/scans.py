"""One MRI scan or label map from any supported input (DICOM series folder, NIfTI, MHD, SKM-TEA HDF5, NRRD) with its
geometry and what its name or header says about participant, side and visit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oa_kit.errors import OAKitError
from oa_kit.io import mri
from oa_kit.io.nrrd import read_nrrd
from oa_kit.io.oai import VISIT_MONTHS

_NAME = re.compile(r"(?P<pid>[^_/]+)_(?P<side>[RL])_(?P<visit>V\d\d)")
_SIDE_WORDS = {"RIGHT": "R", "LEFT": "L"}
#: Where a knee's side came from, in order of precedence (``anatomy``: inferred from the segmentation/label map).
SIDE_SOURCES = ("file name", "header", "argument", "anatomy")


@dataclass
class ScanInput:
    """One input scan as read: image, affine, and what the name/header say about participant, side and visit."""

    path: Path
    image: np.ndarray
    affine: np.ndarray
    participant_id: str
    side: str | None
    visit_month: int
    side_source: str | None = None  # "file name" or "header" when ``side`` was read from the input, else None


@dataclass
class LabelMapInput:
    """One label map file as read: values as stored (any convention), affine, and the name/header identity."""

    path: Path
    labels: np.ndarray
    affine: np.ndarray
    participant_id: str
    side: str | None
    visit_month: int
    side_source: str | None = None


def _read_volume(path: Path, what: str) -> mri.MRIVolume:
    """Read a NIfTI (oriented), MHD or NRRD volume; DICOM folders and HDF5 only for scans (``what == "scan"``)."""
    if path.is_dir() and what == "scan":
        return mri.read_dicom_series(path)
    if path.name.endswith((".nii", ".nii.gz")):
        vol = mri.read_nifti(path)
        if vol.metadata.get("sform_code") == 0 and vol.metadata.get("qform_code") == 0:
            raise OAKitError(
                f"{path}: NIfTI has no orientation (qform_code = sform_code = 0); expected a scanner affine"
            )
        return vol
    if path.suffix == ".mhd":
        return mri.read_mhd(path)
    if path.suffix in (".h5", ".hdf5") and what == "scan":
        return mri.read_skmtea_h5(path)["echo1"]
    if path.suffix in (".nrrd", ".nhdr") and what == "label map":
        return read_nrrd(path)
    kinds = "a DICOM folder, .nii(.gz), .mhd or .h5 file" if what == "scan" else "a .nii(.gz), .nrrd or .mhd file"
    if not path.exists():
        raise OAKitError(f"{path}: not found; expected {kinds}")
    raise OAKitError(f"{path}: unsupported file type for a {what}; expected {kinds}")


def read_scan(path: str | Path) -> ScanInput:
    """Read a DICOM series folder, NIfTI, MHD or SKM-TEA HDF5 scan with its geometry; reject files without orientation."""
    path = Path(path)
    vol = _read_volume(path, "scan")
    if vol.array.ndim != 3:
        raise OAKitError(f"{path}: image has shape {vol.array.shape}; expected one 3-D volume")
    pid, side, visit, source = _identity(path, vol.metadata)
    return ScanInput(path, np.asarray(vol.array, dtype=np.float32), vol.affine, pid, side, visit, source)


def read_label_file(path: str | Path) -> LabelMapInput:
    """Read a label map (NIfTI, NRRD or MHD; values as stored, any convention) with its geometry and identity."""
    path = Path(path)
    vol = _read_volume(path, "label map")
    if vol.array.ndim != 3:
        raise OAKitError(f"{path}: label map has shape {vol.array.shape}; expected one 3-D volume")
    pid, side, visit, source = _identity(path, vol.metadata)
    return LabelMapInput(path, np.asarray(vol.array), np.asarray(vol.affine, dtype=float), pid, side, visit, source)


def declared_side(found: str | None, found_source: str | None, argument: str | None, name: object) -> tuple:
    """The knee side an input declares and where it came from: file name or header, else the ``side`` argument.

    Returns (side, source) with source in :data:`SIDE_SOURCES`, or (None, None) when neither says it (the caller
    then infers it from the anatomy). An argument contradicting the file name or header is an error, not overridden.
    """
    if argument is not None and argument not in ("R", "L"):
        raise OAKitError(f"side: got {argument!r}; expected 'R' or 'L'")
    if found is not None:
        if argument is not None and argument != found:
            raise OAKitError(
                f"{name}: side {argument} given but the {found_source} says {found}; expected them to agree"
            )
        return found, found_source
    return (argument, "argument") if argument is not None else (None, None)


def side_in_name(path: str | Path) -> tuple[str | None, str | None]:
    """The side a ``{ID}_{R|L}_V00`` file name gives, as (side, ``"file name"``), else (None, None); read before
    the input itself, so a contradicting ``--side`` is refused before a whole series is read."""
    side = _identity(Path(path), {})[1]
    return (side, "file name") if side else (None, None)


def _identity(path: Path, metadata) -> tuple[str, str | None, int, str | None]:
    """Participant id, side, visit month and where the side came from (``file name``/``header``/None), from a
    ``{ID}_{R|L}_V00`` name or DICOM laterality/description."""
    stem = path.name.split(".")[0]
    m = _NAME.search(stem)
    if m:
        return m["pid"], m["side"], int(VISIT_MONTHS.get(m["visit"], 0)), "file name"
    lat = str(metadata.get("laterality", "")).upper()
    desc = str(metadata.get("series_description", "")).upper()
    side = lat if lat in ("R", "L") else next((v for k, v in _SIDE_WORDS.items() if k in desc), None)
    return stem, side, 0, "header" if side else None
