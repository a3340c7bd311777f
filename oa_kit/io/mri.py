"""MRI readers and writers (NIfTI, DICOM series, MHD/RAW, SKM-TEA and IWOAI HDF5, MRNet) with RAS geometry.

Every reader returns an :class:`MRIVolume`: the array in the file's voxel order plus a voxel → RAS (mm) affine.
Use :func:`reorient` / :func:`to_canonical` to get RAS-ordered arrays, and :func:`mirror_to_right` to present a
left knee as a right knee before a model sees it. Label maps are read as stored; convert them with
:func:`oa_kit.io.labels.to_harmonised`.

Hostile sizes are refused from the header, before any voxel is read or decompressed (:mod:`oa_kit.io.limits`):
at most ``MAX_VOXELS`` voxels and ``MAX_BYTES`` decoded bytes per volume (a compressed ``.zraw`` may not inflate
beyond the size its header declares), and at least ``MIN_VOXELS_PER_AXIS`` voxels along each axis (anything
smaller cannot be a knee); the environment variables ``OA_KIT_MAX_VOXELS``, ``OA_KIT_MAX_BYTES`` and
``OA_KIT_MIN_VOXELS_PER_AXIS`` override them. Every bad file raises one-line :class:`OAKitError`, so a batch
can catch it per scan and carry on.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from oa_kit.errors import OAKitError
from oa_kit.io.atomic import atomic_path, write_bytes_atomic, write_text_atomic
from oa_kit.io.limits import check_count, limit

__all__ = [
    "MRIVolume",
    "axis_codes_affine",
    "from_canonical",
    "mirror_to_right",
    "read_dicom_echoes",
    "read_dicom_series",
    "read_iwoai",
    "read_mhd",
    "read_mhd_pair",
    "read_mrnet_case",
    "read_mrnet_labels",
    "read_nifti",
    "read_skmtea_h5",
    "reorient",
    "to_canonical",
    "write_dicom_series",
    "write_mhd",
    "write_nifti",
]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def check_volume_size(name: str | os.PathLike, shape: Sequence[int], itemsize: int, minimum: bool = True) -> None:
    """Refuse a volume, from its header ``shape`` and bytes per voxel, before it is read: too big or too small.

    Parameters
    ----------
    name : str or PathLike
        The file (or field) named in the error.
    shape : sequence of int
        Array shape (3 spatial axes, optionally trailing channels).
    itemsize : int
        Bytes per voxel once decoded.
    minimum : bool
        Also require ``MIN_VOXELS_PER_AXIS`` (False for a mask whose grid is then compared with its image's).

    Raises
    ------
    OAKitError
        A non-positive dimension, more than ``MAX_VOXELS`` voxels or ``MAX_BYTES`` bytes, or fewer than
        ``MIN_VOXELS_PER_AXIS`` voxels along a spatial axis (limits from :mod:`oa_kit.io.limits`).
    """
    dims = [int(d) for d in shape]
    if any(d <= 0 for d in dims):
        raise OAKitError(f"{name}: shape {tuple(dims)} has an empty axis; expected a positive size along every axis")
    count = 1
    for d in dims:
        count *= d
    check_count(str(name), count, "MAX_VOXELS", "voxels")
    check_count(str(name), count * int(itemsize), "MAX_BYTES", "bytes of voxel data")
    least = limit("MIN_VOXELS_PER_AXIS")
    if minimum and len(dims) >= 3 and min(dims[:3]) < least:
        size = " x ".join(str(d) for d in dims[:3])
        raise OAKitError(
            f"{name}: volume is {size} voxels, too small to be a knee scan; expected a 3D volume with at least "
            f"{least} voxels along each axis (OA_KIT_MIN_VOXELS_PER_AXIS)"
        )


@dataclass(frozen=True)
class MRIVolume:
    """A volume in its file's voxel order with a voxel → RAS+ (mm) ``affine``, its ``source`` file and ``metadata``.

    ``array`` is 3-D (or 4-D with trailing channels, e.g. one-hot masks); ``spacing_mm`` and ``orientation``
    (nibabel axis codes such as ``("R", "A", "S")``) are derived from the affine.
    """

    array: np.ndarray
    affine: np.ndarray
    source: Path | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = self.source or "volume"
        if self.array.ndim not in (3, 4):
            raise OAKitError(
                f"{name}: array has {self.array.ndim} dimensions {self.array.shape}; expected a 3-D volume"
            )
        aff = np.asarray(self.affine, dtype=np.float64)
        if aff.shape != (4, 4) or not np.all(np.isfinite(aff)) or abs(np.linalg.det(aff[:3, :3])) < 1e-9:
            raise OAKitError(f"{name}: affine is not an invertible finite 4x4 matrix; expected voxel → RAS mm")
        object.__setattr__(self, "affine", aff)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size (mm) along the three array axes."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def orientation(self) -> tuple[str, str, str]:
        """Closest RAS axis codes of the three array axes (e.g. ``("R", "A", "S")``)."""
        return tuple(nib.aff2axcodes(self.affine))

    @property
    def shape(self) -> tuple[int, ...]:
        """Array shape."""
        return tuple(self.array.shape)


# --------------------------------------------------------------------------------------------------------------------
# Orientation helpers
# --------------------------------------------------------------------------------------------------------------------
def _nib_codes(codes: Sequence[str]) -> tuple[str, str, str]:
    """Normalise axis codes to nibabel's (direction each axis points to); DOSMA two-letter codes such as
    ``("SI", "AP", "LR")`` (superior → inferior, ...) become ``("I", "P", "R")``."""
    out = tuple(str(c)[-1].upper() for c in codes)
    if len(out) != 3 or sorted({"L": "R", "P": "A", "I": "S"}.get(c, c) for c in out) != ["A", "R", "S"]:
        raise OAKitError(
            f"orientation: {tuple(codes)} is not three distinct anatomical axes; expected e.g. ('R','A','S')"
        )
    return out


def axis_codes_affine(codes: Sequence[str], spacing_mm: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """Affine for axes pointing along ``codes`` (e.g. ``"IPR"`` or DOSMA ``("SI", "AP", "LR")``) with the volume
    centre at the RAS origin."""
    ornt = nib.orientations.axcodes2ornt(_nib_codes(codes))
    aff = np.eye(4)
    aff[:3, :3] = 0.0
    for axis, (world, sign) in enumerate(ornt):
        aff[int(world), axis] = sign * float(spacing_mm[axis])
    centre = (np.asarray(shape[:3], dtype=float) - 1.0) / 2.0
    aff[:3, 3] = -aff[:3, :3] @ centre
    return aff


def reorient(volume: MRIVolume, codes: Sequence[str] = ("R", "A", "S")) -> MRIVolume:
    """Permute/flip the array so its axes point along ``codes``; the affine is updated so world positions are kept."""
    start = nib.orientations.io_orientation(volume.affine)
    end = nib.orientations.axcodes2ornt(_nib_codes(codes))
    transform = nib.orientations.ornt_transform(start, end)
    array = nib.orientations.apply_orientation(volume.array, transform)
    affine = volume.affine @ nib.orientations.inv_ornt_aff(transform, volume.array.shape[:3])
    return replace(volume, array=np.ascontiguousarray(array), affine=affine)


def to_canonical(volume: MRIVolume) -> MRIVolume:
    """Reorient to canonical RAS voxel order (as ``nibabel.as_closest_canonical``)."""
    return reorient(volume, ("R", "A", "S"))


def from_canonical(volume: MRIVolume, like: MRIVolume) -> MRIVolume:
    """Reorient a (canonical) volume back to the voxel order of ``like``."""
    return reorient(volume, like.orientation)


def mirror_to_right(volume: MRIVolume, side: str) -> MRIVolume:
    """Mirror a left knee along world x (the array axis closest to LR) so it looks like a right knee.

    The affine is kept, so the mirrored content sits in the same field of view; ``metadata["mirrored"]`` records it.
    Right knees are returned unchanged (with ``mirrored`` False).
    """
    if side not in ("R", "L"):
        raise OAKitError(f"side: got {side!r}; expected 'R' or 'L'")
    meta = {**volume.metadata, "side": side, "mirrored": side == "L"}
    if side == "R":
        return replace(volume, metadata=meta)
    lr_axis = int(np.argmax(np.abs(volume.affine[0, :3])))
    return replace(volume, array=np.ascontiguousarray(np.flip(volume.array, axis=lr_axis)), metadata=meta)


# --------------------------------------------------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------------------------------------------------
def read_nifti(path: str | os.PathLike) -> MRIVolume:
    """Read a NIfTI-1/2 file (``.nii`` or ``.nii.gz``); the array keeps its stored dtype (scaled data → float32)."""
    path = Path(path)
    if not path.is_file():
        raise OAKitError(f"{path}: file not found; expected a NIfTI file")
    if path.stat().st_size == 0:
        raise OAKitError(f"{path}: file is empty (0 bytes); expected a NIfTI image (.nii/.nii.gz)")
    try:
        img = nib.load(str(path))  # header only: the voxels are read below, once the size is known to be sane
        shape, stored = tuple(int(d) for d in img.shape), np.dtype(img.get_data_dtype())
        scaled = not (_unit(getattr(img.dataobj, "slope", 1.0), 1.0) and _unit(getattr(img.dataobj, "inter", 0.0), 0.0))
    except Exception as exc:  # nibabel raises many types for corrupt/truncated files
        raise OAKitError(f"{path}: cannot read as NIfTI ({_short(exc)}); expected a valid .nii/.nii.gz") from None
    if len(shape) < 3:
        raise OAKitError(f"{path}: image is {len(shape)}-D {shape}; expected a 3-D volume")
    if len(shape) > 4:
        raise OAKitError(f"{path}: image is {len(shape)}-D {shape}; expected a 3-D volume (or 4-D channels)")
    check_volume_size(path, shape, 8 if scaled else stored.itemsize)
    try:
        array = np.asarray(img.dataobj)  # stored dtype unless scl_slope/scl_inter rescale it
        if array.dtype == np.float64 and stored != np.float64:
            array = array.astype(np.float32)
        affine = img.affine
        codes = {"qform_code": int(img.header["qform_code"]), "sform_code": int(img.header["sform_code"])}
    except Exception as exc:
        raise OAKitError(
            f"{path}: voxel data cannot be read ({_short(exc)}); expected a complete .nii/.nii.gz (truncated?)"
        ) from None
    if array.dtype.kind not in "biuf":
        raise OAKitError(f"{path}: voxel type {array.dtype}; expected integer or real voxels")
    meta = {"format": "nifti", **codes, **_parse_descrip(img.header.get("descrip", b""))}
    return MRIVolume(array=array, affine=affine, source=path, metadata=meta)


def _unit(value: object, neutral: float) -> bool:
    """True when a NIfTI scale factor is absent/NaN or equals its neutral value (no rescaling)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return True
    return not np.isfinite(number) or number == neutral


def _short(exc: BaseException) -> str:
    """``Type: first line`` of an exception, trimmed, for one-line errors."""
    text = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


#: Metadata keys kept in the NIfTI ``descrip`` header field (80 bytes) as ``oa_kit key=value ...``.
DESCRIP_KEYS = ("side", "participant_id", "visit_month")


def _descrip(metadata: Mapping[str, Any], path: Path) -> bytes:
    """``descrip`` header text recording laterality, participant and visit (when known)."""
    parts = [f"{k}={metadata[k]}" for k in DESCRIP_KEYS if k in metadata]
    text = " ".join(["oa_kit", *parts]) if parts else ""
    if len(text) > 79 or any(" " in str(metadata[k]) for k in DESCRIP_KEYS if k in metadata):
        raise OAKitError(f"{path}: metadata {parts} too long or has spaces; expected short IDs for the NIfTI descrip")
    return text.encode("ascii")


def _parse_descrip(raw) -> dict[str, Any]:
    """Metadata written by :func:`_descrip` (other descrip text is ignored)."""
    text = np.asarray(raw).tobytes().decode("ascii", "replace").strip("\x00 ")
    if not text.startswith("oa_kit"):
        return {}
    out: dict[str, Any] = {}
    for token in text.split()[1:]:
        key, _, value = token.partition("=")
        if key in DESCRIP_KEYS:
            out[key] = int(value) if key == "visit_month" and value.isdigit() else value
    return out


def write_nifti(path: str | os.PathLike, volume: MRIVolume) -> Path:
    """Write ``volume`` as NIfTI-1 atomically (qform = sform = affine, units mm); ``.nii.gz`` is gzipped with mtime 0
    so identical volumes give byte-identical files."""
    path = Path(path)
    array = np.asarray(volume.array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype in (np.int64, np.uint64):  # NIfTI readers handle 64-bit integers poorly
        if array.size and (array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max):
            raise OAKitError(f"{path}: integer values exceed int32; expected values that fit a NIfTI int32")
        array = array.astype(np.int32)
    img = nib.Nifti1Image(array, volume.affine)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = _descrip(volume.metadata, path)
    img.set_qform(volume.affine, code=1)
    img.set_sform(volume.affine, code=1)
    data = img.to_bytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    elif not path.name.endswith(".nii"):
        raise OAKitError(f"{path}: unknown NIfTI extension; expected .nii or .nii.gz")
    write_bytes_atomic(path, data)
    return path


# --------------------------------------------------------------------------------------------------------------------
# DICOM series
# --------------------------------------------------------------------------------------------------------------------
def _dicom_files(folder: Path) -> list[Path]:
    """All regular files under ``folder`` (DICOM series often have no extension); DICOMDIR is skipped."""
    if not folder.is_dir():
        raise OAKitError(f"{folder}: not a folder; expected a folder of DICOM slices")
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.name.upper() != "DICOMDIR" and not p.name.startswith(".")
    )
    if not files:
        raise OAKitError(f"{folder}: no files; expected DICOM slices")
    check_count(str(folder), sum(p.stat().st_size for p in files), "MAX_BYTES", "bytes of files")
    return files


def _read_slice(path: Path):
    """Read one DICOM slice header and pixels, checking it is an MR image with geometry."""

    try:
        ds = pydicom.dcmread(str(path))
        for _ in ds.iterall():  # pydicom decodes elements lazily: a corrupt one fails here, not on first use
            pass
        modality = str(getattr(ds, "Modality", ""))
    except Exception as exc:
        raise OAKitError(f"{path}: not a readable DICOM file ({_short(exc)}); expected a DICOM MR slice") from None
    if modality != "MR":
        raise OAKitError(f"{path}: Modality is {modality or 'missing'!r}; expected 'MR'")
    for tag, n in (("ImageOrientationPatient", 6), ("ImagePositionPatient", 3), ("PixelSpacing", 2)):
        try:
            values = [float(v) for v in getattr(ds, tag)]
        except Exception:  # absent, not a list, or text that is not a number
            values = []
        if len(values) != n or not np.all(np.isfinite(values)) or (tag == "PixelSpacing" and min(values) <= 0):
            raise OAKitError(f"{path}: {tag} missing or malformed; expected {n} finite numbers in every MR slice")
    try:
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        rows, cols = int(ds.Rows), int(ds.Columns)
        _echo_key(ds), _rescale(ds)
    except Exception as exc:
        raise OAKitError(
            f"{path}: malformed header value ({_short(exc)}); expected numeric NumberOfFrames, Rows, Columns, "
            "EchoNumbers, EchoTime, RescaleSlope and RescaleIntercept"
        ) from None
    if frames > 1:
        raise OAKitError(f"{path}: enhanced multi-frame DICOM; expected one slice per file")
    if "PixelData" not in ds:
        raise OAKitError(f"{path}: no PixelData; expected an image slice")
    if rows <= 0 or cols <= 0:
        raise OAKitError(f"{path}: Rows x Columns is {rows} x {cols}; expected a positive image size")
    return ds


def _rescale(ds) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept) of a slice, defaults 1 and 0; must be finite."""
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    inter = float(getattr(ds, "RescaleIntercept", 0) or 0)
    if not (np.isfinite(slope) and np.isfinite(inter)):
        raise ValueError(f"RescaleSlope/Intercept {slope}/{inter} not finite")
    return slope, inter


def _echo_key(ds) -> tuple[float, float]:
    """Sort key of a slice's echo: (EchoNumbers, EchoTime), missing values as 0."""

    number = getattr(ds, "EchoNumbers", None)
    if isinstance(number, MultiValue):
        number = number[0] if len(number) else None
    return float(number or 0), float(getattr(ds, "EchoTime", 0) or 0)


def read_dicom_echoes(folder: str | os.PathLike, series_uid: str | None = None) -> list[MRIVolume]:
    """Read a DICOM MR series folder into one volume per echo (sorted by EchoNumbers, then EchoTime).

    Slices are sorted by ImagePositionPatient projected on the slice normal; the affine comes from
    ImageOrientationPatient, ImagePositionPatient and PixelSpacing, converted from DICOM LPS to RAS. The array
    axes are (column, row, slice). Inconsistent slice spacing, mixed orientations, non-MR files or missing
    geometry raise :class:`OAKitError`.
    """
    folder = Path(folder)
    slices = [(_read_slice(p), p) for p in _dicom_files(folder)]
    uids = sorted({str(getattr(ds, "SeriesInstanceUID", "")) for ds, _ in slices})
    if series_uid is not None:
        slices = [(ds, p) for ds, p in slices if str(getattr(ds, "SeriesInstanceUID", "")) == series_uid]
        if not slices:
            raise OAKitError(f"{folder}: no slice with SeriesInstanceUID {series_uid}; expected one of {uids}")
    elif len(uids) > 1:
        raise OAKitError(f"{folder}: {len(uids)} series mixed ({', '.join(uids)}); expected one, or pass series_uid")
    echoes: dict[tuple[float, float], list] = {}
    for ds, p in slices:
        echoes.setdefault(_echo_key(ds), []).append((ds, p))
    return [_stack_echo(folder, key, items) for key, items in sorted(echoes.items())]


def read_dicom_series(folder: str | os.PathLike, echo: int = 1, series_uid: str | None = None) -> MRIVolume:
    """Read one echo (1-based position in echo order) of a DICOM MR series folder; see :func:`read_dicom_echoes`."""
    volumes = read_dicom_echoes(folder, series_uid=series_uid)
    if not 1 <= echo <= len(volumes):
        raise OAKitError(
            f"{folder}: echo {echo} requested but the series has {len(volumes)}; expected 1..{len(volumes)}"
        )
    return volumes[echo - 1]


def _stack_echo(folder: Path, key: tuple[float, float], items: list) -> MRIVolume:
    """Sort one echo's slices along the normal, check geometry and stack them with their affine."""
    iops = np.array([[float(v) for v in ds.ImageOrientationPatient] for ds, _ in items])
    if np.max(np.abs(iops - iops[0])) > 1e-4:
        raise OAKitError(f"{folder}: ImageOrientationPatient differs between slices; expected one orientation")
    row_dir, col_dir = iops[0, :3], iops[0, 3:]
    normal = np.cross(row_dir, col_dir)
    if abs(np.linalg.norm(normal) - 1.0) > 1e-3:
        raise OAKitError(
            f"{folder}: ImageOrientationPatient is not two orthonormal vectors; expected direction cosines"
        )
    pos = np.array([[float(v) for v in ds.ImagePositionPatient] for ds, _ in items])
    dist = pos @ normal
    order = np.argsort(dist, kind="stable")
    items, pos, dist = [items[i] for i in order], pos[order], dist[order]
    if len(items) > 1:
        gaps = np.diff(dist)
        if np.min(gaps) < 1e-3:
            dup = items[int(np.argmin(gaps))][1].name
            raise OAKitError(f"{folder}: two slices at the same position ({dup}); expected one slice per position")
        if np.max(gaps) - np.min(gaps) > max(0.01, 0.01 * np.mean(gaps)):
            raise OAKitError(
                f"{folder}: inconsistent slice spacing {np.min(gaps):.3f}–{np.max(gaps):.3f} mm; "
                "expected equally spaced slices (missing slice?)"
            )
        slice_step = float(np.mean(gaps))
    else:
        only = items[0][0]
        slice_step = float(getattr(only, "SpacingBetweenSlices", None) or getattr(only, "SliceThickness", 1.0))
    spacing = [float(v) for v in items[0][0].PixelSpacing]
    sizes = {(int(ds.Columns), int(ds.Rows)) for ds, _ in items}
    if len(sizes) > 1:
        raise OAKitError(f"{folder}: slices have different sizes {sorted(sizes)}; expected one matrix size")
    check_volume_size(folder, (*sizes.pop(), len(items)), 4)  # uint16/int16 stored, float32 once rescaled
    planes = []
    for ds, p in items:
        try:
            px = ds.pixel_array
        except Exception as exc:
            raise OAKitError(f"{p}: pixel data cannot be decoded ({_short(exc)}); expected a complete slice") from None
        if px.ndim != 2:
            raise OAKitError(f"{p}: pixel array shape {px.shape}; expected a 2-D grayscale slice")
        slope, inter = _rescale(ds)
        planes.append(px.T if (slope, inter) == (1.0, 0.0) else (px.T * slope + inter).astype(np.float32))
    shapes = {pl.shape for pl in planes}
    if len(shapes) > 1:
        raise OAKitError(f"{folder}: slices have different sizes {sorted(shapes)}; expected one matrix size")
    lps = np.eye(4)
    lps[:3, 0] = row_dir * spacing[1]  # array axis 0 = DICOM column index (along the row direction)
    lps[:3, 1] = col_dir * spacing[0]  # array axis 1 = DICOM row index
    lps[:3, 2] = normal * slice_step
    lps[:3, 3] = pos[0]
    first = items[0][0]
    meta = {
        "format": "dicom",
        "echo_number": int(key[0]),
        "echo_time_ms": key[1],
        "n_slices": len(items),
        "series_description": str(getattr(first, "SeriesDescription", "")),
        "series_uid": str(getattr(first, "SeriesInstanceUID", "")),
        "patient_id": str(getattr(first, "PatientID", "")),
        "laterality": str(getattr(first, "Laterality", "") or getattr(first, "ImageLaterality", "")),
    }
    return MRIVolume(array=np.stack(planes, axis=-1), affine=_LPS_TO_RAS @ lps, source=folder, metadata=meta)


def write_dicom_series(
    folder: str | os.PathLike,
    volume: MRIVolume,
    *,
    series_description: str = "oa_kit",
    patient_id: str = "ANON",
    echo_time_ms: float | None = None,
    echo_number: int | None = None,
    series_uid: str | None = None,
    file_prefix: str = "IM",
) -> list[Path]:
    """Write a 3-D volume as an MR DICOM series (one uint16/int16 file per slice along array axis 2), atomically
    per file; geometry (IOP/IPP/PixelSpacing) is derived from the affine so :func:`read_dicom_series` reads it back."""

    arr = np.asarray(volume.array)
    if arr.ndim != 3:
        raise OAKitError(f"volume: shape {arr.shape}; expected a 3-D volume to write as DICOM")
    if not np.issubdtype(arr.dtype, np.integer):
        raise OAKitError(f"volume: dtype {arr.dtype}; expected integer voxels for DICOM (round first)")
    signed = arr.min() < 0
    arr = arr.astype(np.int16 if signed else np.uint16)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ volume.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    row_dir, col_dir, normal = (lps[:3, i] / spacing[i] for i in range(3))
    if np.dot(np.cross(row_dir, col_dir), normal) < 0.999:
        raise OAKitError("volume: affine is left-handed or sheared; expected slice axis = row × column direction")
    series_uid = series_uid or generate_uid()
    study_uid, frame_uid = generate_uid(), generate_uid()
    paths = []
    for k in range(arr.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.SeriesDescription = "MR", patient_id, series_description
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_dir, *col_dir)]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in lps[:3, 3] + k * lps[:3, 2]]
        ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]
        ds.SliceThickness = f"{spacing[2]:.6f}"
        if echo_time_ms is not None:
            ds.EchoTime = f"{echo_time_ms:.4f}"
        if echo_number is not None:
            ds.EchoNumbers = int(echo_number)
        plane = np.ascontiguousarray(arr[:, :, k].T)
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, int(signed)
        ds.PixelData = plane.tobytes()
        path = Path(folder) / f"{file_prefix}{k + 1:04d}.dcm"
        with atomic_path(path) as tmp:
            ds.save_as(str(tmp), enforce_file_format=True)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------------------------------
# MetaImage (.mhd + .raw)
# --------------------------------------------------------------------------------------------------------------------
_MET_TYPES = MappingProxyType(
    {
        "MET_UCHAR": np.uint8,
        "MET_CHAR": np.int8,
        "MET_USHORT": np.uint16,
        "MET_SHORT": np.int16,
        "MET_UINT": np.uint32,
        "MET_INT": np.int32,
        "MET_ULONG": np.uint64,
        "MET_LONG": np.int64,
        "MET_ULONG_LONG": np.uint64,
        "MET_LONG_LONG": np.int64,
        "MET_FLOAT": np.float32,
        "MET_DOUBLE": np.float64,
    }
)
_MET_NAMES = MappingProxyType({np.dtype(v).str[1:]: k for k, v in reversed(list(_MET_TYPES.items()))})


#: Bytes of a MetaImage file searched for the header (``LOCAL`` data starts right after it).
_MHD_HEADER_BYTES = 65536


def _parse_mhd_header(path: Path) -> dict[str, str]:
    """``key = value`` lines of a MetaImage header (keys as written)."""
    with open(path, "rb") as handle:
        text = handle.read(_MHD_HEADER_BYTES).decode("latin-1")  # LOCAL files carry binary voxels after the header
    header: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            header[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":
                break
    return header


def _floats(path: Path, header: Mapping[str, str], key: str, n: int, default: Sequence[float] | None) -> np.ndarray:
    """Parse ``n`` floats from header ``key`` (or return ``default``)."""
    if key not in header:
        if default is None:
            raise OAKitError(f"{path}: {key} missing; expected it in the MetaImage header")
        return np.asarray(default, dtype=float)
    try:
        values = np.array([float(v) for v in header[key].split()])
    except ValueError:
        raise OAKitError(f"{path}: {key} = {header[key]!r}; expected {n} numbers") from None
    if values.size != n or not np.all(np.isfinite(values)):
        raise OAKitError(f"{path}: {key} = {header[key]!r}; expected {n} finite numbers")
    return values


def read_mhd(path: str | os.PathLike) -> MRIVolume:
    """Read a MetaImage ``.mhd`` (+ ``.raw``/``.zraw``, or ``LOCAL`` data) with its geometry (LPS → RAS affine).

    Parses NDims, DimSize, ElementType, ElementSpacing, Offset/Origin/Position, TransformMatrix/Rotation/
    Orientation, ElementByteOrderMSB/BinaryDataByteOrderMSB, CompressedData, HeaderSize and ElementDataFile.
    """
    path = Path(path)
    if not path.is_file():
        raise OAKitError(f"{path}: file not found; expected a MetaImage .mhd header")
    h = _parse_mhd_header(path)
    try:
        ndims = int(h.get("NDims", "0"))
    except ValueError:
        raise OAKitError(f"{path}: NDims = {h.get('NDims')!r}; expected 3") from None
    if ndims != 3:
        raise OAKitError(f"{path}: NDims = {h.get('NDims', 'missing')}; expected a 3-D image (NDims = 3)")
    etype = h.get("ElementType", "")
    if etype not in _MET_TYPES:
        raise OAKitError(f"{path}: ElementType {etype or 'missing'!r}; expected one of {sorted(_MET_TYPES)}")
    sizes = _floats(path, h, "DimSize", 3, None)
    if not all(v == int(v) and v > 0 for v in sizes):
        raise OAKitError(f"{path}: DimSize = {h['DimSize']!r}; expected three positive whole numbers")
    dims = [int(v) for v in sizes]
    msb = (h.get("ElementByteOrderMSB") or h.get("BinaryDataByteOrderMSB") or "False").lower() == "true"
    dtype = np.dtype(_MET_TYPES[etype]).newbyteorder(">" if msb else "<")
    check_volume_size(path, dims, dtype.itemsize)
    spacing = _floats(path, h, "ElementSpacing", 3, h.get("ElementSize", "1 1 1").split())
    if not np.all(spacing > 0):
        raise OAKitError(f"{path}: ElementSpacing = {h.get('ElementSpacing')!r}; expected three positive mm values")
    offset_key = next((k for k in ("Offset", "Origin", "Position") if k in h), "Offset")
    offset = _floats(path, h, offset_key, 3, (0.0, 0.0, 0.0))
    rot_key = next((k for k in ("TransformMatrix", "Rotation", "Orientation") if k in h), "TransformMatrix")
    rotation = _floats(path, h, rot_key, 9, np.eye(3).ravel()).reshape(3, 3)  # row i = direction of axis i
    raw = _mhd_data(path, h, dims[0] * dims[1] * dims[2] * dtype.itemsize, f"DimSize {tuple(dims)} of {etype}")
    array = np.frombuffer(raw, dtype=dtype).reshape(dims[::-1]).transpose(2, 1, 0)
    array = np.ascontiguousarray(array.astype(dtype.newbyteorder("=")))
    lps = np.eye(4)
    lps[:3, :3] = rotation.T * spacing[None, :]
    lps[:3, 3] = offset
    return MRIVolume(
        array=array, affine=_LPS_TO_RAS @ lps, source=path, metadata={"format": "mhd", "element_type": etype}
    )


def _mhd_data(path: Path, h: Mapping[str, str], expected: int, what: str) -> bytes:
    """The ``expected`` raw voxel bytes of a MetaImage (separate file or LOCAL), read and decompressed with bounds.

    File sizes are checked before reading and a ``.zraw`` is inflated to at most ``expected`` bytes, so neither a
    huge data file nor a decompression bomb is ever loaded whole.
    """
    data_path, start = _mhd_data_file(path, h)
    try:
        header_size = int(h.get("HeaderSize", "0") or 0)
    except ValueError:
        raise OAKitError(f"{path}: HeaderSize = {h['HeaderSize']!r}; expected a whole number of bytes or -1") from None
    size = data_path.stat().st_size
    compressed = h.get("CompressedData", "False").lower() == "true"
    if header_size == -1 and not compressed:
        start = max(size - expected, start)  # ITK: the voxels are the last bytes of the file
    elif header_size < 0:
        raise OAKitError(f"{path}: HeaderSize = {header_size}; expected a whole number of bytes or -1")
    else:
        start += header_size
    available = max(size - start, 0)
    if not compressed:
        if available != expected:
            raise OAKitError(
                f"{path}: data has {available} bytes; expected {expected} for {what} (truncated or wrong header?)"
            )
        with open(data_path, "rb") as handle:
            handle.seek(start)
            return handle.read(expected)
    check_count(f"{path}: compressed data", available, "MAX_BYTES", "bytes")
    with open(data_path, "rb") as handle:
        handle.seek(start)
        blob = handle.read()
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(blob, expected + 1)
    except zlib.error as exc:
        raise OAKitError(f"{path}: compressed data is corrupt ({exc}); expected zlib data") from None
    if len(data) > expected or inflater.unconsumed_tail:
        raise OAKitError(
            f"{path}: compressed data inflates beyond the {expected} bytes of {what} (decompression stopped); "
            "expected exactly the voxels the header declares"
        )
    if len(data) != expected:
        raise OAKitError(
            f"{path}: compressed data inflates to {len(data)} bytes; expected {expected} for {what} "
            "(truncated or wrong header?)"
        )
    return data


def _mhd_data_file(path: Path, h: Mapping[str, str]) -> tuple[Path, int]:
    """(file holding the voxels, offset of the bytes after the header): ``LOCAL`` or a file beside the header."""
    data_file = h.get("ElementDataFile")
    if not data_file:
        raise OAKitError(f"{path}: ElementDataFile missing; expected it as the last header line")
    if data_file == "LOCAL":
        with open(path, "rb") as handle:
            head = handle.read(_MHD_HEADER_BYTES)
        marker = head.find(b"ElementDataFile")
        end = head.find(b"\n", marker)
        if marker < 0 or end < 0:
            raise OAKitError(f"{path}: ElementDataFile = LOCAL without a line end; expected voxels after the header")
        return path, end + 1
    relative = Path(data_file)
    if relative.is_absolute() or ".." in relative.parts:
        raise OAKitError(
            f"{path}: ElementDataFile {data_file!r} points outside the header's folder; expected a file beside it"
        )
    data_path = path.parent / relative
    if not data_path.is_file():
        raise OAKitError(f"{path}: ElementDataFile {data_file!r} not found beside it; expected the .raw file")
    return data_path, 0


def write_mhd(path: str | os.PathLike, volume: MRIVolume, compress: bool = False) -> Path:
    """Write a 3-D volume as ``.mhd`` + ``.raw`` (or ``.zraw`` when ``compress``), geometry in LPS, atomically."""
    path = Path(path)
    if path.suffix != ".mhd":
        raise OAKitError(f"{path}: expected a .mhd file name")
    arr = np.asarray(volume.array)
    if arr.ndim != 3:
        raise OAKitError(f"volume: shape {arr.shape}; expected a 3-D volume for MetaImage")
    key = arr.dtype.str[1:]
    if key not in _MET_NAMES:
        raise OAKitError(f"volume: dtype {arr.dtype}; expected one of {sorted(_MET_NAMES)}")
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ volume.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    rotation = (lps[:3, :3] / spacing[None, :]).T
    data = np.ascontiguousarray(arr.transpose(2, 1, 0)).astype(arr.dtype.newbyteorder("<")).tobytes()
    if compress:
        data = zlib.compress(data)
    raw_name = path.with_suffix(".zraw" if compress else ".raw").name
    fmt = " ".join
    header = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        f"CompressedData = {compress}",
        f"TransformMatrix = {fmt(f'{v:.10g}' for v in rotation.ravel())}",
        f"Offset = {fmt(f'{v:.10g}' for v in lps[:3, 3])}",
        "CenterOfRotation = 0 0 0",
        "AnatomicalOrientation = RAI",
        f"ElementSpacing = {fmt(f'{v:.10g}' for v in spacing)}",
        f"DimSize = {fmt(str(n) for n in arr.shape)}",
        f"ElementType = {_MET_NAMES[key]}",
        f"ElementDataFile = {raw_name}",
    ]
    write_bytes_atomic(path.parent / raw_name, data)
    write_text_atomic(path, "\n".join(header) + "\n")
    return path


def read_mhd_pair(
    image: str | os.PathLike, mask: str | os.PathLike, atol_mm: float = 1e-3
) -> tuple[MRIVolume, MRIVolume]:
    """Read an OAI-ZIB image/mask pair, applying the OAI-ZIB fix: when the mask's geometry disagrees with the
    image's (the published masks' headers are corrupt), the image affine is copied into the mask and
    ``metadata["geometry_from_image"]`` is set. Different voxel grids (DimSize) raise :class:`OAKitError`."""
    img, msk = read_mhd(image), read_mhd(mask)
    if img.shape != msk.shape:
        raise OAKitError(f"{mask}: mask shape {msk.shape} differs from image shape {img.shape}; expected the same grid")
    fixed = not np.allclose(img.affine, msk.affine, atol=atol_mm)
    meta = {**msk.metadata, "geometry_from_image": fixed}
    return img, replace(msk, affine=img.affine.copy() if fixed else msk.affine, metadata=meta)


# --------------------------------------------------------------------------------------------------------------------
# HDF5: SKM-TEA and IWOAI
# --------------------------------------------------------------------------------------------------------------------
#: SKM-TEA DICOM-track arrays are (SI, AP, LR): axes toward inferior, posterior, right; 0.3125 x 0.3125 x 0.8 mm.
SKMTEA_ORIENTATION = ("I", "P", "R")
SKMTEA_SPACING_MM = (0.3125, 0.3125, 0.8)
#: IWOAI HDF5 stores no geometry; OAI DESS sagittal, assumed (SI, AP, LR) like SKM-TEA, 0.3646 x 0.3646 x 0.7 mm.
IWOAI_ORIENTATION = ("I", "P", "R")
IWOAI_SPACING_MM = (0.3646, 0.3646, 0.7)


def _open_h5(path: Path):
    """Open an HDF5 file read-only, turning failures into one-line errors."""

    if not path.is_file():
        raise OAKitError(f"{path}: file not found; expected an HDF5 file")
    try:
        return h5py.File(path, "r")
    except Exception as exc:
        raise OAKitError(f"{path}: not a readable HDF5 file ({type(exc).__name__}); expected HDF5") from exc


@contextlib.contextmanager
def _h5_errors(path: Path) -> Iterator[None]:
    """Turn any HDF5 library failure inside the block (corrupt B-trees, heaps, links) into one line."""
    try:
        yield
    except OAKitError:
        raise
    except Exception as exc:
        raise OAKitError(f"{path}: corrupt HDF5 structure ({_short(exc)}); expected a readable HDF5 file") from None


def _h5_array(path: Path, f, key: str, ndim: int, channels: int | None = None) -> np.ndarray:
    """Dataset ``key`` of an open HDF5 file, checked (type, shape, size) before it is read; masks (``channels``)
    skip the knee-size minimum because their grid is compared with the image's."""
    if key not in f:
        raise OAKitError(f"{path}: dataset {key!r} missing (has {sorted(f.keys())}); expected {key!r}")
    dataset = f[key]
    dtype = getattr(dataset, "dtype", None)  # an h5py Group has no dtype
    if dtype is None or dtype.kind not in "biuf":
        kind = "a group" if dtype is None else f"of type {dtype}"
        raise OAKitError(f"{path}: {key!r} is {kind}; expected a numeric array dataset")
    shape = tuple(int(d) for d in dataset.shape)
    if len(shape) != ndim or (channels is not None and shape[-1] != channels):
        want = f"{ndim}-D" + (f" with {channels} channels last" if channels else "")
        raise OAKitError(f"{path}: dataset {key!r} has shape {shape}; expected {want}")
    check_volume_size(f"{path}: dataset {key!r}", shape, dtype.itemsize, minimum=channels is None)
    try:
        return np.asarray(dataset[()])
    except Exception as exc:
        raise OAKitError(f"{path}: dataset {key!r} cannot be read ({_short(exc)}); expected complete data") from None


def read_skmtea_h5(
    path: str | os.PathLike,
    spacing_mm: Sequence[float] = SKMTEA_SPACING_MM,
    orientation: Sequence[str] = SKMTEA_ORIENTATION,
) -> dict[str, MRIVolume]:
    """Read a SKM-TEA DICOM-track HDF5 scan: ``{"echo1", "echo2", "seg"}`` volumes.

    ``seg`` keeps the 6 one-hot channels (X, Y, Z, 6) in SKM-TEA order (patellar, femoral, medial tibial, lateral
    tibial cartilage, medial, lateral meniscus); convert with ``to_harmonised(seg.array, "skmtea")``. The HDF5 file
    stores no affine: one is built from ``orientation`` (default (SI, AP, LR); some scans are (SI, AP, RL) — pass
    the scan's orientation from the dataset metadata) and ``spacing_mm``, centred at the origin.
    """
    path = Path(path)
    with _open_h5(path) as f, _h5_errors(path):
        echo1 = _h5_array(path, f, "echo1", 3)
        echo2 = _h5_array(path, f, "echo2", 3)
        seg = _h5_array(path, f, "seg", 4, channels=6) if "seg" in f else None
    if echo1.shape != echo2.shape or (seg is not None and seg.shape[:3] != echo1.shape):
        raise OAKitError(
            f"{path}: echo1 {echo1.shape}, echo2 {echo2.shape}, seg "
            f"{None if seg is None else seg.shape} disagree; expected one grid"
        )
    affine = axis_codes_affine(orientation, spacing_mm, echo1.shape)
    meta = {"format": "skmtea_h5", "geometry": "assumed from SKM-TEA orientation (SI, AP, LR) and spacing"}
    out = {
        "echo1": MRIVolume(echo1, affine, path, {**meta, "echo": 1}),
        "echo2": MRIVolume(echo2, affine, path, {**meta, "echo": 2}),
    }
    if seg is not None:
        out["seg"] = MRIVolume(seg, affine, path, {**meta, "labels": "skmtea_onehot"})
    return out


def read_iwoai(
    image: str | os.PathLike, seg: str | os.PathLike | None = None, spacing_mm: Sequence[float] = IWOAI_SPACING_MM
) -> tuple[MRIVolume, MRIVolume | None]:
    """Read an IWOAI 2019 ``.im`` (HDF5 key ``data``, 3-D) and optional ``.seg`` (key ``data``, 6 one-hot channels).

    The files store no geometry; the affine assumes OAI sagittal DESS (SI, AP, LR) at ``spacing_mm`` (documented
    assumption). Convert the mask with ``to_harmonised(seg.array, "iwoai")``.
    """
    image = Path(image)
    with _open_h5(image) as f, _h5_errors(image):
        im = _h5_array(image, f, "data", 3)
    affine = axis_codes_affine(IWOAI_ORIENTATION, spacing_mm, im.shape)
    meta = {"format": "iwoai_h5", "geometry": "assumed (SI, AP, LR) OAI DESS spacing"}
    vol = MRIVolume(im, affine, image, meta)
    if seg is None:
        return vol, None
    seg = Path(seg)
    with _open_h5(seg) as f, _h5_errors(seg):
        mask = _h5_array(seg, f, "data", 4, channels=6)
    if mask.shape[:3] != im.shape:
        raise OAKitError(
            f"{seg}: mask shape {mask.shape[:3]} differs from image shape {im.shape}; expected the same grid"
        )
    return vol, MRIVolume(mask, affine, seg, {**meta, "labels": "iwoai_onehot"})


# --------------------------------------------------------------------------------------------------------------------
# MRNet
# --------------------------------------------------------------------------------------------------------------------
def read_mrnet_case(path: str | os.PathLike) -> MRIVolume:
    """Read one MRNet ``NNNN.npy`` stack (S, 256, 256) uint8. MRNet stores no spacing or orientation, so the affine
    is the identity (1 mm voxels) and ``metadata["geometry"]`` says it is unknown. Loaded without pickle."""
    path = Path(path)
    if not path.is_file():
        raise OAKitError(f"{path}: file not found; expected an MRNet .npy stack")
    try:
        with open(path, "rb") as handle:  # the header first: shape and type are checked before any voxel is read
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(handle)
    except Exception as exc:
        raise OAKitError(f"{path}: cannot read as .npy ({_short(exc)}); expected a (S, 256, 256) array") from None
    if len(shape) != 3:
        raise OAKitError(f"{path}: array shape {tuple(shape)}; expected a 3-D (slices, 256, 256) stack")
    if dtype.kind not in "biuf":
        raise OAKitError(f"{path}: array type {dtype}; expected numeric voxels (uint8)")
    check_volume_size(path, shape, dtype.itemsize)
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise OAKitError(f"{path}: cannot read as .npy ({_short(exc)}); expected a (S, 256, 256) array") from None
    view = path.parent.name if path.parent.name in ("axial", "coronal", "sagittal") else ""
    meta = {
        "format": "mrnet",
        "geometry": "unknown (MRNet has no spacing/orientation)",
        "plane": view,
        "case": path.stem,
    }
    return MRIVolume(arr, np.eye(4), path, meta)


def read_mrnet_labels(root: str | os.PathLike, split: str) -> pd.DataFrame:
    """Read MRNet ``{split}-{abnormal,acl,meniscus}.csv`` (no header) into one table: ``case`` (zero-padded str),
    ``abnormal``, ``acl``, ``meniscus`` (0/1 int)."""
    root = Path(root)
    if split not in ("train", "valid"):
        raise OAKitError(f"split: got {split!r}; expected 'train' or 'valid'")
    table = None
    for task in ("abnormal", "acl", "meniscus"):
        path = root / f"{split}-{task}.csv"
        if not path.is_file():
            raise OAKitError(f"{path}: file not found; expected MRNet label CSV {split}-{task}.csv")
        try:
            df = pd.read_csv(path, header=None, names=["case", task], dtype={0: str, 1: str})
        except Exception as exc:
            raise OAKitError(
                f"{path}: cannot parse ({type(exc).__name__}); expected 'case,label' rows without header"
            ) from exc
        if df.shape[1] != 2 or df["case"].isna().any() or not df["case"].str.fullmatch(r"\d+").all():
            raise OAKitError(f"{path}: case column has non-numeric values; expected zero-padded case ids")
        if not df[task].isin(["0", "1"]).all():
            bad = sorted(set(df.loc[~df[task].isin(["0", "1"]), task].astype(str)))[:5]
            raise OAKitError(f"{path}: label values {bad}; expected 0 or 1")
        df["case"] = df["case"].str.zfill(4)
        df[task] = df[task].astype(int)
        if df["case"].duplicated().any():
            raise OAKitError(f"{path}: duplicate case ids; expected one row per case")
        table = df if table is None else table.merge(df, on="case", how="outer", validate="one_to_one")
    if table[["abnormal", "acl", "meniscus"]].isna().any().any():
        raise OAKitError(f"{root}: the three {split} label files list different cases; expected the same cases")
    return table.astype({"abnormal": int, "acl": int, "meniscus": int}).sort_values("case").reset_index(drop=True)
