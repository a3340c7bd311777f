"""Radiograph readers: DICOM (incl. compressed transfer syntaxes), PNG and JPEG into one float32 ``Radiograph``.

Conventions (docs/DESIGN.md, REFERENCE §1.6):

- pixels are float32 ``(rows, cols)`` after the Modality LUT (RescaleSlope/Intercept or LUT sequence) and the
  VOI LUT / window when the file has one; MONOCHROME1 is inverted so that higher always means denser (bone bright)
  (Presentation LUT Shape ``INVERSE`` also inverts a MONOCHROME2 image; with MONOCHROME1 it is the same single
  inversion, as the DX IOD pairs them), about the format's nominal range;
  no 8-bit squashing happens here (normalisation belongs to the model's preprocessing);
- spacing comes from ``ImagerPixelSpacing``, else ``PixelSpacing``, as ``(row, col)`` in mm; when both are absent
  (always the case for PNG/JPEG) ``spacing_mm`` is ``None`` and ``"missing_spacing"`` is in ``qa_flags``;
  it is never guessed (PNG DPI metadata is ignored);
- the format is chosen from the file's content (magic bytes), not its extension;
- colour: a PNG/JPEG/DICOM whose three channels are equal is read as grayscale with QA flag ``"stored_as_rgb"``;
  true colour raises ``OAKitError`` unless ``allow_rgb=True``, which converts with ITU-R 601 luma and flags
  ``"converted_from_rgb"``; multi-frame DICOM always raises.

Every bad input raises :class:`oa_kit.errors.OAKitError` with one line naming the file. Sizes are checked from the
header before any pixel is decoded (:mod:`oa_kit.io.limits`): at most ``MAX_PIXELS`` pixels (env
``OA_KIT_MAX_PIXELS``, default 2^26 = 67 M, over 4x an OAI PA film) and ``MAX_BYTES`` decoded bytes / file bytes
(env ``OA_KIT_MAX_BYTES``); Pillow's own decompression-bomb limit also applies. Palette, grey+alpha and
grey-stored-as-RGB PNGs are converted to luminance (never read as palette indices).
"""

from __future__ import annotations

import os
import re
import types
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.uid import UID, ImplicitVRLittleEndian

from oa_kit.errors import OAKitError
from oa_kit.io.limits import check_count, limit

__all__ = ["Radiograph", "read_radiograph", "read_gray_array", "QA_FLAGS"]

#: Every QA flag the readers can set, with its meaning.
QA_FLAGS: Mapping[str, str] = types.MappingProxyType(
    {
        "missing_spacing": "no ImagerPixelSpacing/PixelSpacing (or not a DICOM): physical scale unknown, never guessed",
        "invalid_spacing": "a spacing attribute was present but not two positive finite numbers; treated as missing",
        "lossy_compressed": "lossy compression (JPEG baseline/extended, lossy JPEG 2000/JPEG-LS, "
        "or LossyImageCompression=01)",
        "stored_as_rgb": "three identical colour channels, read as grayscale",
        "converted_from_rgb": "true colour converted to grayscale (ITU-R 601 luma) because allow_rgb=True",
        "non_pa_view": "DICOM ViewPosition is present and is neither PA nor AP",
    }
)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_LOSSY_SYNTAXES = {
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000 (lossy allowed)
    "1.2.840.10008.1.2.4.203",  # HTJ2K (lossy allowed)
}
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True, eq=False)  # holds an array: identity equality
class Radiograph:
    """A decoded 2-D radiograph in the oa_kit convention (float32, higher = denser).

    Attributes
    ----------
    pixels : numpy.ndarray
        float32 ``(rows, cols)`` after Modality/VOI LUT; MONOCHROME1 inverted (bone bright).
    spacing_mm : tuple of float or None
        ``(row, col)`` pixel spacing in mm, or ``None`` when unknown (then ``"missing_spacing"`` is in ``qa_flags``).
    qa_flags : tuple of str
        Quality flags (keys of :data:`QA_FLAGS`).
    source : str
        The file it was read from.
    meta : Mapping
        Read-only facts: ``format``, ``photometric``, ``transfer_syntax``, ``bits_stored``, ``laterality``,
        ``patient_id``, ``view``, ``spacing_source``, ``modality_lut``, ``voi_lut``, ``inverted``, ...
    """

    pixels: np.ndarray
    spacing_mm: tuple[float, float] | None
    qa_flags: tuple[str, ...]
    source: str
    meta: Mapping[str, object] = field(default_factory=dict)


def read_radiograph(path: str | os.PathLike, *, voi_lut: bool = True, allow_rgb: bool = False) -> Radiograph:
    """Read a DICOM, PNG or JPEG radiograph (format sniffed from content) into a float32 :class:`Radiograph`.

    Parameters
    ----------
    path : str or PathLike
        The image file.
    voi_lut : bool, default True
        Apply the DICOM VOI LUT / window when the file has one (set False to keep the full modality range).
    allow_rgb : bool, default False
        Convert true-colour images to grayscale (QA flag ``"converted_from_rgb"``) instead of raising.

    Returns
    -------
    Radiograph
        Pixels as float32 ``(rows, cols)``, spacing in mm (or ``None``), QA flags and header facts.

    Raises
    ------
    OAKitError
        Missing/unreadable, truncated or corrupt file; non-image DICOM; multi-frame; true colour without
        ``allow_rgb``; unsupported or undecodable transfer syntax.
    """
    path = Path(path)
    head = _head(path)
    try:
        if head.startswith(_PNG_MAGIC) or head.startswith(_JPEG_MAGIC):
            return _read_pillow(path, allow_rgb=allow_rgb)
        return _read_dicom(path, has_preamble=head[128:132] == b"DICM", voi_lut=voi_lut, allow_rgb=allow_rgb)
    except OAKitError:
        raise
    except Exception as exc:  # a malformed header value deep in pydicom/Pillow: still one line, never a traceback
        raise OAKitError(
            f"{path}: malformed or unsupported image ({_short(exc)}); expected a valid DICOM, PNG or JPEG radiograph"
        ) from None


def read_gray_array(path: str | os.PathLike) -> np.ndarray:
    """Pixels of a PNG/JPEG as a 2-D array in its own bit depth (uint8 or uint16), size-checked before decoding.

    Palette, grey+alpha and bilevel images become luminance, grey stored as RGB is reduced to one channel, and a
    true-colour image raises (a radiograph is never colour).

    Parameters
    ----------
    path : str or PathLike
        The PNG or JPEG file.

    Returns
    -------
    numpy.ndarray
        ``(rows, cols)`` uint8/uint16 (or float64 for float/32-bit images outside the uint16 range).

    Raises
    ------
    OAKitError
        Missing, empty, corrupt, too large (``OA_KIT_MAX_PIXELS``) or colour image.
    """
    path = Path(path)
    _head(path)
    try:
        _, _, arr = _decode_pillow(path)
        return _to_gray(arr, path, allow_rgb=False, flags=[]) if arr.ndim == 3 else arr
    except OAKitError:
        raise
    except Exception as exc:
        raise OAKitError(f"{path}: cannot decode image ({_short(exc)}); expected a PNG or JPEG file") from None


def _head(path: Path) -> bytes:
    """First 132 bytes of a file (format sniffing), after checking it exists, is not empty and not too large."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise OAKitError(f"{path}: cannot be read ({exc.strerror or exc}); expected a radiograph file") from None
    if size == 0:
        raise OAKitError(f"{path}: file is empty (0 bytes); expected a DICOM, PNG or JPEG radiograph")
    check_count(str(path), size, "MAX_BYTES", "bytes")
    return head


def _radiograph(
    pixels: np.ndarray, spacing_mm: tuple[float, float] | None, flags: list[str], path: Path, meta: dict
) -> Radiograph:
    """Package decoded pixels as a read-only :class:`Radiograph` (float32, flags de-duplicated in order)."""
    return Radiograph(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        spacing_mm=spacing_mm,
        qa_flags=tuple(dict.fromkeys(flags)),
        source=str(path),
        meta=types.MappingProxyType(meta),
    )


# --------------------------------------------------------------------------- DICOM


def _read_dicom(path: Path, has_preamble: bool, voi_lut: bool, allow_rgb: bool) -> Radiograph:
    """Decode one DICOM file and apply LUTs, photometric inversion and spacing rules."""
    ds = _dcmread(path, has_preamble)
    syntax = _transfer_syntax(ds)
    frames = _header_int(ds, "NumberOfFrames", 1, path)
    if frames > 1:
        raise OAKitError(f"{path}: NumberOfFrames is {frames}; expected a single-frame radiograph")
    _check_dicom_size(ds, path)
    stored = _decode_pixels(ds, path, syntax)
    flags: list[str] = []
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric == "PALETTE COLOR":
        stored = _palette_to_rgb(stored, ds, path, allow_rgb)
    bits_stored = int(ds.get("BitsStored", stored.dtype.itemsize * 8) or 0)
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1 or stored.ndim == 3:
        stored = _to_gray(stored, path, allow_rgb, flags)
        pixels, lut_info = stored.astype(np.float32), {"modality_lut": False, "voi_lut": False, "inverted": False}
    else:
        if stored.ndim != 2:
            raise OAKitError(f"{path}: pixel array has shape {stored.shape}; expected (rows, cols)")
        pixels, lut_info = _apply_luts(stored, ds, photometric, voi_lut)
    spacing, spacing_source = _dicom_spacing(ds, flags)
    meta = _dicom_meta(ds, syntax, flags)
    meta.update(photometric=photometric, bits_stored=bits_stored, spacing_source=spacing_source, **lut_info)
    return _radiograph(pixels, spacing, flags, path, meta)


def _header_int(ds, keyword: str, default: int, path: Path) -> int:
    """An integer header attribute (``default`` when absent/blank), one-line error when it is not a number."""
    try:
        return int(ds.get(keyword, default) or default)
    except (TypeError, ValueError, OverflowError):
        raise OAKitError(f"{path}: {keyword} = {ds.get(keyword)!r}; expected a whole number") from None


def _check_dicom_size(ds, path: Path) -> None:
    """Rows x Columns (x samples x bytes) from the header, checked before the pixel data is decoded."""
    rows, cols = _header_int(ds, "Rows", 0, path), _header_int(ds, "Columns", 0, path)
    if rows <= 0 or cols <= 0:
        raise OAKitError(f"{path}: Rows x Columns is {rows} x {cols}; expected a positive image size")
    samples = max(_header_int(ds, "SamplesPerPixel", 1, path), 1)
    bits = max(_header_int(ds, "BitsAllocated", 16, path), 1)
    check_count(str(path), rows * cols, "MAX_PIXELS", "pixels")
    check_count(str(path), rows * cols * samples * ((bits + 7) // 8), "MAX_BYTES", "bytes of decoded pixels")


def _dicom_meta(ds, syntax, flags: list[str]) -> dict[str, object]:
    """Header facts (syntax, laterality, patient, view) and the lossy/view QA flags they imply."""
    if str(syntax) in _LOSSY_SYNTAXES or str(ds.get("LossyImageCompression", "00")).strip() == "01":
        flags.append("lossy_compressed")
    view = str(ds.get("ViewPosition", "") or "").strip().upper()
    if view and view not in {"PA", "AP"}:
        flags.append("non_pa_view")
    return {
        "format": "dicom",
        "transfer_syntax": syntax.name,
        "transfer_syntax_uid": str(syntax),
        "laterality": _laterality(ds),
        "patient_id": str(ds.get("PatientID", "") or ""),
        "view": view,
        "series_description": str(ds.get("SeriesDescription", "") or ""),
    }


def _dcmread(path: Path, has_preamble: bool):
    """Parse a DICOM header and data set, turning every parser failure into a one-line error."""

    try:
        ds = pydicom.dcmread(path, force=not has_preamble)
    except InvalidDicomError:
        raise OAKitError(f"{path}: not a DICOM, PNG or JPEG file; expected a radiograph") from None
    except Exception as exc:  # truncated/corrupt headers raise many types inside pydicom
        raise OAKitError(
            f"{path}: corrupt or truncated DICOM ({_short(exc)}); expected a readable DICOM file"
        ) from None
    if not has_preamble and not any(k in ds for k in ("SOPClassUID", "PixelData", "Modality")):
        raise OAKitError(f"{path}: not a DICOM, PNG or JPEG file; expected a radiograph")
    if "PixelData" not in ds:
        kind = str(ds.get("Modality", "") or ds.get("SOPClassUID", "") or "unknown")
        raise OAKitError(f"{path}: DICOM has no PixelData (non-image object, {kind}); expected an image DICOM")
    return ds


def _transfer_syntax(ds):
    """The data set's transfer syntax UID (Implicit VR Little Endian when the file meta lacks one)."""

    meta = getattr(ds, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    return UID(uid) if uid else ImplicitVRLittleEndian


def _decode_pixels(ds, path: Path, syntax) -> np.ndarray:
    """Decode PixelData with pydicom's decoders (pylibjpeg for JPEG/JPEG 2000/RLE), with one-line errors."""

    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise OAKitError(
            f"{path}: transfer syntax {syntax.name} ({syntax}) is not supported; expected an "
            "uncompressed, RLE, JPEG, JPEG-LS or JPEG 2000 DICOM"
        ) from None
    if not decoder.is_available:
        raise OAKitError(
            f"{path}: no decoder installed for transfer syntax {syntax.name} ({syntax}); expected "
            "a syntax handled by pylibjpeg (JPEG, JPEG 2000, RLE)"
        )
    try:
        return np.asarray(ds.pixel_array)
    except Exception as exc:  # pydicom raises ValueError/RuntimeError/... for short or corrupt pixel data
        raise OAKitError(
            f"{path}: pixel data cannot be decoded as {syntax.name} ({_short(exc)}); "
            "expected complete, valid pixel data (truncated or corrupt file?)"
        ) from None


def _apply_luts(stored: np.ndarray, ds, photometric: str, voi_lut: bool) -> tuple[np.ndarray, dict]:
    """Apply Modality then VOI LUT and invert MONOCHROME1 (or INVERSE presentation) over the nominal range."""

    has_modality = any(k in ds for k in ("RescaleSlope", "RescaleIntercept", "ModalityLUTSequence"))
    has_voi = voi_lut and any(k in ds for k in ("WindowCenter", "VOILUTSequence"))
    # The nominal stored range travels through the same LUTs, so MONOCHROME1 inverts about the
    # format's range (not the image's own min/max) and images stay comparable.
    bits = int(ds.get("BitsStored", stored.dtype.itemsize * 8) or 16)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    ends = np.array([lo, hi], dtype=stored.dtype if stored.dtype.kind in "iu" else np.int64)

    def luts(arr: np.ndarray) -> np.ndarray:
        out = apply_modality_lut(arr, ds) if has_modality else arr
        out = apply_voi_lut(out, ds) if has_voi else out
        return np.asarray(out, dtype=np.float64)

    pixels, ends_out = luts(stored), luts(ends)
    # MONOCHROME1 shows low values bright. DX objects pair it with Presentation LUT Shape INVERSE (the same single
    # inversion, not a second one); a MONOCHROME2 image with INVERSE is displayed inverted too.
    inverse_lut = str(ds.get("PresentationLUTShape", "") or "").strip().upper() == "INVERSE"
    inverted = photometric == "MONOCHROME1" or inverse_lut
    if inverted:
        pixels = ends_out.min() + ends_out.max() - pixels
    return pixels.astype(np.float32), {"modality_lut": has_modality, "voi_lut": bool(has_voi), "inverted": inverted}


def _palette_to_rgb(stored: np.ndarray, ds, path: Path, allow_rgb: bool) -> np.ndarray:
    """Expand a PALETTE COLOR image through its colour LUT (only with ``allow_rgb``; it is not a radiograph)."""

    if not allow_rgb:
        raise OAKitError(
            f"{path}: PhotometricInterpretation PALETTE COLOR (a colour image); expected a grayscale "
            "radiograph (pass allow_rgb=True to convert with a QA flag)"
        )
    return np.asarray(apply_color_lut(stored, ds))


def _dicom_spacing(ds, flags: list[str]) -> tuple[tuple[float, float] | None, str]:
    """(row, col) spacing in mm from ImagerPixelSpacing, else PixelSpacing; flags when absent or invalid."""
    for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        values = [value] if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") else list(value)
        try:
            pair = tuple(float(v) for v in values)
        except (TypeError, ValueError):
            pair = ()
        if len(pair) == 1:
            pair = (pair[0], pair[0])
        if len(pair) == 2 and all(np.isfinite(v) and v > 0 for v in pair):
            return (pair[0], pair[1]), keyword
        flags.append("invalid_spacing")
    flags.append("missing_spacing")
    return None, "none"


def _laterality(ds) -> str:
    """ImageLaterality (or series Laterality) as 'R'/'L', '' when absent or not a single side."""
    for keyword in ("ImageLaterality", "Laterality"):
        value = str(ds.get(keyword, "") or "").strip().upper()
        if value in {"R", "L"}:
            return value
    return ""


# --------------------------------------------------------------------------- PNG / JPEG


def _read_pillow(path: Path, allow_rgb: bool) -> Radiograph:
    """Read an 8- or 16-bit PNG/JPEG with Pillow; spacing is never taken from DPI metadata."""

    fmt, mode, arr = _decode_pillow(path)
    flags: list[str] = []
    if arr.ndim == 3:
        arr = _to_gray(arr, path, allow_rgb, flags)
    flags.append("missing_spacing")
    bits = 16 if arr.dtype.itemsize >= 2 else 8
    meta = {
        "format": str(fmt).lower(),
        "mode": mode,
        "photometric": "MONOCHROME2",
        "transfer_syntax": "",
        "bits_stored": bits,
        "laterality": "",
        "patient_id": "",
        "view": "",
        "spacing_source": "none",
        "modality_lut": False,
        "voi_lut": False,
        "inverted": False,
    }
    return _radiograph(arr, None, flags, path, meta)


def _decode_pillow(path: Path) -> tuple[str, str, np.ndarray]:
    """(format, mode, pixels) of a PNG/JPEG; the pixel count is checked from the header before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit applies below
            with Image.open(path) as img:
                fmt, mode = img.format, img.mode
                cols, rows = img.size
                if rows <= 0 or cols <= 0:
                    raise OAKitError(f"{path}: image is {cols} x {rows} pixels; expected a positive size")
                check_count(str(path), rows * cols, "MAX_PIXELS", "pixels")
                img.load()
                arr = _pillow_array(img)
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise OAKitError(
            f"{path}: image of {count} exceeds the limit of {limit('MAX_PIXELS'):,} (decompression bomb?); "
            "expected a smaller image (OA_KIT_MAX_PIXELS)"
        ) from None
    except UnidentifiedImageError:
        raise OAKitError(f"{path}: image format not recognised; expected a PNG or JPEG file") from None
    except OAKitError:
        raise
    except Exception as exc:  # OSError, SyntaxError, ValueError, struct.error, ... for corrupt files
        raise OAKitError(
            f"{path}: corrupt or truncated {_fmt_guess(path)} ({_short(exc)}); expected a complete image"
        ) from None
    return str(fmt), str(mode), arr


def _fmt_guess(path: Path) -> str:
    """'PNG' or 'JPEG' from the file's magic bytes (for error messages)."""
    with open(path, "rb") as fh:
        return "PNG" if fh.read(8) == _PNG_MAGIC else "JPEG"


def _pillow_array(img) -> np.ndarray:
    """Pixel array of a Pillow image: uint8/uint16 gray, or (rows, cols, 3) colour; alpha dropped."""
    mode = img.mode
    if mode in {"L", "I;16", "I;16B", "I;16L", "I;16N"}:
        return np.asarray(img)
    if mode in {"I", "F"}:
        arr = np.asarray(img)
        return arr.astype(np.uint16) if arr.min() >= 0 and arr.max() < 65536 else arr.astype(np.float64)
    if mode in {"LA", "La", "1"}:
        return np.asarray(img.convert("L"))
    return np.asarray(img.convert("RGB"))  # palette (through its colour table), RGB(A), CMYK, YCbCr


# --------------------------------------------------------------------------- helpers


def _to_gray(arr: np.ndarray, path: Path, allow_rgb: bool, flags: list[str]) -> np.ndarray:
    """(rows, cols, 3) → (rows, cols): equal channels pass, true colour needs ``allow_rgb``."""
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise OAKitError(f"{path}: pixel array has shape {arr.shape}; expected a grayscale (rows, cols) image")
    rgb = arr[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        flags.append("stored_as_rgb")
        return rgb[..., 0]
    if not allow_rgb:
        raise OAKitError(
            f"{path}: colour (RGB) image; expected a grayscale radiograph "
            "(pass allow_rgb=True to convert with a QA flag)"
        )
    flags.append("converted_from_rgb")
    return rgb.astype(np.float64) @ _LUMA


def _short(exc: BaseException) -> str:
    """First line of an exception message, trimmed, for one-line errors."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]
