"""What a person types or uploads, checked at the page boundary: the clinical form's fields (one error line naming
the field), uploads written to a temporary folder that is deleted after use, and the page's query string."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from oa_kit.errors import OAKitError

#: Largest upload accepted per kind (MB); the server's websocket limit (dashboards/voila.json) is above these, so a
#: bigger file reaches the page and is refused with a message instead of silently failing to arrive.
MAX_UPLOAD_MB = {"radiograph": 40, "mri": 150}
#: Most bytes a zipped DICOM series may unpack to.
MAX_UNZIPPED_BYTES = 1 << 30
RADIOGRAPH_SUFFIXES = (".dcm", ".dicom", ".png", ".jpg", ".jpeg")
MRI_SUFFIXES = (".nii", ".nii.gz", ".zip")
#: Prefix of every temporary upload folder (tests look for leftovers by it).
UPLOAD_PREFIX = "oa_kit_upload_"


@dataclass(frozen=True)
class Field:
    """One clinical form field: model column, label, unit, range, required."""

    column: str
    label: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    required: bool = False
    choices: tuple[str, ...] = ()


#: The clinical form, in the column names the progression models read (``oa_kit.cohort.tables``).
CLINICAL_FIELDS: tuple[Field, ...] = (
    Field("age_years", "Age", "years", 18, 100, required=True),
    Field("sex", "Sex", choices=("F", "M"), required=True),
    Field("bmi_kg_m2", "BMI", "kg/m²", 12, 70, required=True),
    Field("injury", "Prior knee injury", choices=("no", "yes")),
    Field("surgery", "Prior knee surgery", choices=("no", "yes")),
    Field("womac_pain", "WOMAC pain", "0–20", 0, 20),
    Field("womac_stiffness", "WOMAC stiffness", "0–8", 0, 8),
    Field("womac_function", "WOMAC function", "0–68", 0, 68),
)
WOMAC_PARTS = ("womac_pain", "womac_stiffness", "womac_function")


def validate_clinical(values: Mapping[str, object]) -> dict:
    """The form's text values as model inputs, or an :class:`OAKitError` naming the first bad field.

    Numbers must parse and lie in the field's range; required fields must be filled; ``yes``/``no`` become 1/0;
    ``womac_total`` is the sum of the three parts when all are given (NaN otherwise: the models handle missing).

    Examples
    --------
    >>> validate_clinical({"age_years": "61", "sex": "F", "bmi_kg_m2": "31.5", "injury": "yes"})["injury"]
    1.0
    >>> validate_clinical({"age_years": "61", "sex": "F", "bmi_kg_m2": "500"})
    Traceback (most recent call last):
    oa_kit.errors.OAKitError: BMI: 500 is out of range; expected 12 to 70 kg/m²
    """
    out: dict[str, object] = {}
    for field in CLINICAL_FIELDS:
        raw = values.get(field.column)
        text = "" if raw is None or (isinstance(raw, float) and math.isnan(raw)) else str(raw).strip()
        if not text:
            if field.required:
                raise OAKitError(f"{field.label}: empty; expected a value (required)")
            out[field.column] = math.nan
            continue
        if field.choices:
            if text not in field.choices:
                raise OAKitError(f"{field.label}: {text!r}; expected one of {', '.join(field.choices)}")
            out[field.column] = float(text == "yes") if field.choices == ("no", "yes") else text
            continue
        try:
            number = float(text.replace(",", "."))
        except ValueError:
            raise OAKitError(f"{field.label}: {text!r} is not a number; expected {field.unit or 'a number'}") from None
        if not math.isfinite(number) or not (field.low <= number <= field.high):
            raise OAKitError(
                f"{field.label}: {text} is out of range; expected {field.low:g} to {field.high:g} {field.unit}".rstrip()
            )
        out[field.column] = number
    parts = [out[c] for c in WOMAC_PARTS]
    out["womac_total"] = math.nan if any(math.isnan(p) for p in parts) else float(sum(parts))
    return out


def form_values(row: Mapping[str, object]) -> dict[str, str]:
    """A knee's table row as the form's text values (the inverse of :func:`validate_clinical`)."""
    out = {}
    for field in CLINICAL_FIELDS:
        value = row.get(field.column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out[field.column] = ""
        elif field.choices == ("no", "yes"):
            out[field.column] = "yes" if float(value) >= 0.5 else "no"
        elif field.choices:
            out[field.column] = str(value)
        else:
            out[field.column] = f"{float(value):g}"
    return out


def _suffix(name: str) -> str:
    """Lower-case suffix, ``.nii.gz`` kept whole."""
    lower = name.lower()
    return ".nii.gz" if lower.endswith(".nii.gz") else Path(lower).suffix


@contextlib.contextmanager
def saved_upload(upload: Mapping, kind: str) -> Iterator[Path]:
    """Write one ipywidgets ``FileUpload`` item (name, content) to a temporary folder, yield its path, delete it.

    ``kind`` is ``radiograph`` (DICOM/PNG/JPEG) or ``mri`` (NIfTI, or a ``.zip`` of one DICOM series, yielded as the
    unpacked folder). The name's type and the size are checked before anything is written.
    """
    name = Path(str(upload.get("name") or "upload")).name
    content = upload.get("content")
    size = len(content) if content is not None else 0
    allowed = RADIOGRAPH_SUFFIXES if kind == "radiograph" else MRI_SUFFIXES
    if _suffix(name) not in allowed:
        raise OAKitError(f"{name}: not a {kind} file; expected one of {', '.join(allowed)}")
    limit_mb = MAX_UPLOAD_MB[kind]
    if size > limit_mb * 1024 * 1024:
        raise OAKitError(f"{name}: {size / 1024 / 1024:.0f} MB; expected a {kind} of at most {limit_mb} MB")
    if size == 0:
        raise OAKitError(f"{name}: empty file; expected a {kind}")
    with tempfile.TemporaryDirectory(prefix=UPLOAD_PREFIX) as folder:
        path = Path(folder) / name
        path.write_bytes(bytes(content))
        if _suffix(name) == ".zip":
            path = _unzip_series(path, Path(folder) / "series")
        yield path


def _unzip_series(archive: Path, target: Path) -> Path:
    """Unpack a zipped DICOM series into ``target`` (no paths outside it, bounded size); returns ``target``."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
                raise OAKitError(f"{archive.name}: unpacks to over {MAX_UNZIPPED_BYTES >> 20} MB; expected one series")
            target.mkdir()
            for i, member in enumerate(members):
                (target / f"{i:05d}.dcm").write_bytes(zf.read(member))  # flat names: no path from the archive
    except zipfile.BadZipFile:
        raise OAKitError(f"{archive.name}: not a readable zip file; expected a zipped DICOM series") from None
    if not members:
        raise OAKitError(f"{archive.name}: empty zip; expected a zipped DICOM series")
    return target


def query_knee(query: str | None = None) -> tuple[str | None, str | None]:
    """``(participant, side)`` from the page's query string (Voila puts it in ``QUERY_STRING``), or Nones."""
    params = parse_qs(query if query is not None else os.environ.get("QUERY_STRING", ""))
    participant = params.get("participant", [None])[0]
    side = params.get("side", [None])[0]
    return participant, side if side in ("R", "L") else None


def knee_link(participant_id: str, side: str, page: str = "knee_view.ipynb") -> str:
    """Relative link from another dashboard to one knee in the knee view."""
    return f"{page}?participant={participant_id}&side={side}"
