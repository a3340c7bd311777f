"""OAI table readers: '|'-separated ASCII / CSV / SAS files → tidy per-knee readings, JSW and baseline clinical tables.

Special codes are never turned silently into NaN: every value column that holds one gets a companion
``<COLUMN>_STATUS`` column (``ok``, ``replacement`` for ``.P``, ``technical`` for ``.T``, ``not_expected`` for ``.A``,
``missing`` for blanks and ``.``), and tidy tables carry a ``kl_status`` column.

Hardening (#24): text files must be UTF-8 (ASCII is UTF-8; a BOM is accepted). OAI distributes its ASCII tables as
plain ASCII, so a byte that is not UTF-8 means a damaged or re-encoded file, and is an error naming the file, line
and column rather than a silent U+FFFD that would stop IDs from matching (SAS files keep their latin-1 decoding).
Every cell error names ``<file>, line N, column NAME``: a non-numeric value in a numeric column, a value out of
its plausible range (:data:`VALUE_RANGES`, e.g. age 18-110, BMI 10-80, KL 0-4, event days 0-36525), two files for
one table (``x.txt`` and ``x.csv``), and a conflicting duplicate row (identical duplicate rows are dropped).
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from oa_kit.errors import OAKitError
from oa_kit.io.limits import check_count

#: OAI visit prefix → months since baseline (imaging visits plus the clinical-only V02/V04/V07/V09/V11).
VISIT_MONTHS = MappingProxyType(
    {
        "V00": 0,
        "V01": 12,
        "V02": 18,
        "V03": 24,
        "V04": 30,
        "V05": 36,
        "V06": 48,
        "V07": 60,
        "V08": 72,
        "V09": 84,
        "V10": 96,
        "V11": 108,
    }
)
#: Visits with knee radiograph readings (``kxr_sq_bu{vv}``).
XRAY_VISITS = ("V00", "V01", "V03", "V05", "V06", "V08", "V10")

#: OAI special codes → status word; a bare ``.`` is SAS's "missing form/incomplete workbook".
SPECIAL_CODES = MappingProxyType(
    {
        ".P": "replacement",
        ".T": "technical",
        ".A": "not_expected",
        ".": "missing",
        "": "missing",
    }
)
STATUSES = ("ok", "replacement", "technical", "not_expected", "missing")
STATUS_SUFFIX = "_STATUS"
#: Columns that are identifiers: kept as strings, never parsed as numbers.
ID_COLUMNS = ("ID", "MOSTID", "VERSION")
#: Default READPRJ priority (Boston University central readings: project 15 first, then 37, then 42).
READPRJ_PRIORITY = (15, 37, 42)
TABLE_SUFFIXES = (".txt", ".csv", ".sas7bdat")
DAYS_PER_MONTH = 365.25 / 12

#: Plausible value ranges (inclusive) of OAI/MOST columns, checked wherever the status is ``ok``; a column name
#: pattern (regular expression, full match) → (low, high, what). Special codes are never range-checked.
VALUE_RANGES: Mapping[str, tuple[float, float, str]] = MappingProxyType(
    {
        r"V00AGE|AGE": (18, 110, "age"),
        r"P01BMI|V0BMI": (10, 80, "BMI"),
        r"V\d\dXRKL": (0, 4, "KL"),
        r"V\d\dXRJS[LM]": (0, 3, "JSN grade"),
        r"V\d\dXROS[FT][LM]": (0, 3, "osteophyte grade"),
        r"V\d\dMCMJSW|V\d\dL?JSW\d+": (0, 20, "JSW (mm)"),
        r"P01INJ[LR]|P01KSURG[LR]": (0, 1, "yes/no code"),
        r"P02SEX|SEX": (1, 2, "sex code (1 male, 2 female)"),
        r"V\d\dWOMKP[LR]": (0, 20, "WOMAC pain"),
        r"V\d\dWOMSTF[LR]": (0, 8, "WOMAC stiffness"),
        r"V\d\dWOMADL[LR]": (0, 68, "WOMAC function"),
        r"V\d\dWOMTS[LR]|V0WOTOT[LR]": (0, 96, "WOMAC total"),
        r"V99E[LR]KDAYS|V99EDDDAYS": (0, 36525, "days from enrolment"),
        r"READPRJ": (1, 999, "READPRJ"),
    }
)

#: Columns holding integer codes (a fraction there is an error, not a value).
WHOLE_NUMBER_COLUMNS = frozenset({"READPRJ", "P02SEX", "SEX"})

_LABELLED = re.compile(r"^([^:\s]*):(?:\s|$)")
_SPECIAL = re.compile(r"^\.[A-Za-z]?$")


def read_oai_table(path: str | os.PathLike, special_codes: Mapping[str, str] = SPECIAL_CODES) -> pd.DataFrame:
    """Read one OAI/MOST table, normalising headers and resolving special codes into ``<COL>_STATUS`` columns.

    Parameters
    ----------
    path : path-like
        ``.txt`` ('|', ',' or tab separated, detected from the header), ``.csv`` or ``.sas7bdat``.
    special_codes : mapping
        Special code (upper case, e.g. ``".P"``) → status word; any other ``.X`` code raises.

    Returns
    -------
    pandas.DataFrame
        Upper-case stripped headers; identifier columns as ``str``; numeric columns as ``float64`` (NaN only where
        the companion ``<COL>_STATUS`` column says why); other columns as stripped strings. "1: Right"-style labelled
        values keep their code ("1").
    """
    path = Path(path)
    raw = _read_raw(path)
    raw.columns = _normalise_headers(raw.columns, path)
    blank = np.ones(len(raw), dtype=bool)
    for column in raw.columns:
        blank &= raw[column].map(lambda v: str(v).strip() == "").to_numpy(dtype=bool)
    lines = (raw.index.to_numpy() + 2)[~blank]  # one record per line (OAI has no multi-line fields); header = 1
    raw = raw[~blank].reset_index(drop=True)
    out: dict[str, pd.Series] = {}
    for column in raw.columns:
        values, status = _clean_column(raw[column], column, path, special_codes)
        out[column] = values
        if status is not None:
            out[column + STATUS_SUFFIX] = status
    table = pd.DataFrame(out, index=raw.index)
    table.attrs.update(source=str(path), lines=tuple(int(n) for n in lines), header=tuple(raw.columns))
    return table


def cell_location(table: pd.DataFrame, row: object, column: str | None = None) -> str:
    """``<file>, line N, column NAME`` for row label ``row`` of a table read by :func:`read_oai_table`."""
    parts = [str(table.attrs.get("source", "table"))]
    lines = table.attrs.get("lines")
    if lines is not None and isinstance(row, (int, np.integer)) and 0 <= int(row) < len(lines):
        parts.append(f"line {lines[int(row)]}")
    if column is not None:
        parts.append(f"column {column}")
    return ", ".join(parts)


def require_numeric(table: pd.DataFrame, columns: Iterable[str]) -> None:
    """Raise naming file, line and column at the first value of ``columns`` that is neither a number nor a code."""
    for column in columns:
        if column not in table.columns or table[column].dtype.kind == "f":
            continue
        for row, value in table[column].items():
            text = str(value).strip()
            if text == "" or _SPECIAL.match(text.upper()):
                continue
            try:
                ok = np.isfinite(float(text))
            except ValueError:
                ok = False
            if not ok:
                raise OAKitError(
                    f"{cell_location(table, row, column)}: value {text!r} is not a number; "
                    "expected a number or an OAI special code (.A, .T, .P, blank)"
                )


def check_ranges(table: pd.DataFrame, columns: Iterable[str] | None = None) -> None:
    """Raise naming file, line and column at the first ``ok`` value outside :data:`VALUE_RANGES` (numeric first)."""
    names = [c for c in (table.columns if columns is None else columns) if c in table.columns]
    require_numeric(table, [c for c in names if _value_range(c) is not None])
    for column in names:
        bounds = _value_range(column)
        if bounds is None:
            continue
        low, high, what = bounds
        values = pd.to_numeric(table[column], errors="coerce")
        ok = value_status(table, column).eq("ok") & values.notna()
        fraction = ok & (values != values.round()) if column in WHOLE_NUMBER_COLUMNS else ok & False
        if fraction.any():
            row = fraction[fraction].index[0]
            raise OAKitError(
                f"{cell_location(table, row, column)}: {what} value {show_value(values[row])} is not a whole number; "
                "expected an integer code"
            )
        bad = ok & ~values.between(low, high)
        if bad.any():
            row = bad[bad].index[0]
            raise OAKitError(
                f"{cell_location(table, row, column)}: {what} value {show_value(values[row])} is out of range; "
                f"expected {show_value(float(low))}-{show_value(float(high))} or an OAI special code"
            )


def _value_range(column: str) -> tuple[float, float, str] | None:
    """The plausible range of ``column`` from :data:`VALUE_RANGES` (None when it has none)."""
    for pattern, bounds in VALUE_RANGES.items():
        if re.fullmatch(pattern, column):
            return bounds
    return None


def drop_duplicate_rows(table: pd.DataFrame, keys: Sequence[str], what: str) -> pd.DataFrame:
    """Drop rows identical to an earlier row; raise at the first conflicting row (same ``keys``, other values)."""
    data = [c for c in table.columns if not c.endswith(STATUS_SUFFIX)]
    same = table[data].astype(str).duplicated(keep="first")
    kept = table[~same]
    clash = kept.duplicated(list(keys), keep=False)
    if clash.any():
        first, second = kept[clash].index[:1][0], None
        key = tuple(kept.loc[first, k] for k in keys)
        for row in kept[clash].index[1:]:
            if tuple(kept.loc[row, k] for k in keys) == key:
                second = row
                break
        shown = ", ".join(f"{k} {show_value(v)}" for k, v in zip(keys, key))
        raise OAKitError(
            f"{cell_location(table, second)}: {what} {shown} appears again with different values (first at "
            f"{cell_location(table, first).split(', ')[-1]}); expected one row per {what} (identical copies are dropped)"
        )
    return kept


def _read_raw(path: Path) -> pd.DataFrame:
    """Read a table file as strings (no NA conversion) so every special code is still visible."""
    if not path.is_file():
        raise OAKitError(f"{path}: file not found; expected an OAI/MOST table")
    suffix = path.suffix.lower()
    if suffix == ".sas7bdat":
        return _read_sas_as_text(path)
    if suffix not in (".txt", ".csv"):
        raise OAKitError(f"{path}: unsupported table type {suffix!r}; expected one of {', '.join(TABLE_SUFFIXES)}")
    text = _decode_text(path)
    if not text.strip():
        raise OAKitError(f"{path}: file is empty; expected an OAI table with a header line")
    header = text.split("\n", 1)[0]
    sep = "|" if "|" in header else ("\t" if "\t" in header and suffix == ".txt" else ",")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            table = pd.read_csv(
                io.StringIO(text),
                sep=sep,
                dtype=object,
                keep_default_na=False,
                na_filter=False,
                quotechar='"',
                index_col=False,
                skipinitialspace=True,
                skip_blank_lines=False,
            )
    except pd.errors.EmptyDataError:
        raise OAKitError(f"{path}: file has no header line; expected an OAI table with a header line") from None
    except (pd.errors.ParserError, ValueError) as exc:
        _check_extra_fields(
            path, text, sep, len(next(csv.reader(io.StringIO(header), delimiter=sep, quotechar='"'), []))
        )
        message = " ".join(str(exc).split())[:160]
        raise OAKitError(f"{path}: cannot parse as a {sep!r}-separated table ({message}); expected OAI ASCII") from None
    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
        _check_extra_fields(path, text, sep, len(table.columns))
    return table


def _decode_text(path: Path) -> str:
    """The file as UTF-8 text (BOM dropped); a byte that is not UTF-8 is an error naming line and column."""
    check_count(str(path), path.stat().st_size, "MAX_BYTES", "bytes")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        prefix = data[start : exc.start].decode("utf-8", "replace")
        header = data.split(b"\n", 1)[0].decode("utf-8", "replace")
        sep = "|" if "|" in header else ("\t" if "\t" in header else ",")
        field = prefix.count(sep) + 1
        names = [n.strip().strip('"').upper() for n in header.split(sep)]
        name = names[field - 1] if line > 1 and field <= len(names) and names[field - 1] else str(field)
        raise OAKitError(
            f"{path}, line {line}, column {name}: byte 0x{data[exc.start]:02x} is not UTF-8 text; "
            "expected a UTF-8 (or plain ASCII) OAI table, as OAI distributes them (re-save the file as UTF-8)"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # old Mac line ends count as line ends (as pandas)


def _check_extra_fields(path: Path, text: str, sep: str, n_columns: int) -> None:
    """Rows longer than the header are allowed only when the extra fields are empty (a trailing separator)."""
    try:
        for number, row in enumerate(csv.reader(io.StringIO(text), delimiter=sep, quotechar='"'), start=1):
            if len(row) > n_columns and any(field.strip() for field in row[n_columns:]):
                raise OAKitError(
                    f"{path}, line {number}: {len(row)} fields for {n_columns} columns; "
                    "expected one value per header column"
                )
    except csv.Error:
        return  # the caller reports the parse error


def _read_sas_as_text(path: Path) -> pd.DataFrame:
    """Read a ``.sas7bdat`` file and render it as text (SAS special missing values arrive as NaN → ``missing``)."""
    try:
        frame = pd.read_sas(path, format="sas7bdat", encoding="latin-1")
    except Exception as exc:  # pandas raises several types for corrupt SAS files
        raise OAKitError(f"{path}: cannot read SAS file ({type(exc).__name__}: {exc}); expected .sas7bdat") from None
    text = {}
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series):
            text[column] = series.map(
                lambda v: "" if pd.isna(v) else (str(int(v)) if float(v).is_integer() else repr(float(v)))
            )
        else:
            text[column] = series.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return pd.DataFrame(text, index=frame.index)


def _normalise_headers(columns: Iterable[str], path: Path) -> list[str]:
    """Upper-case, strip whitespace/quotes/BOM from headers; duplicates after normalising are an error."""
    names = [str(c).replace("\ufeff", "").strip().strip('"').strip("'").strip().upper() for c in columns]
    seen: set[str] = set()
    for name in names:
        if not name:
            raise OAKitError(f"{path}: empty column header; expected every column to be named")
        if name in seen:
            raise OAKitError(
                f"{path}: column {name!r} appears twice (headers are case-insensitive); expected unique names"
            )
        seen.add(name)
    return names


def _clean_column(
    raw: pd.Series, column: str, path: Path, special_codes: Mapping[str, str]
) -> tuple[pd.Series, pd.Series | None]:
    """Strip quotes/labels from one column, resolve special codes to a status series, parse numbers.

    Works on the column's distinct values (OAI columns hold few), then maps back: fast on wide tables.
    """
    codes, uniques = pd.factorize(raw.to_numpy(dtype=object), use_na_sentinel=False)
    if column in ID_COLUMNS:
        ids = np.array([re.sub(r"\.0$", "", str(u).strip().strip('"').strip()) for u in uniques], dtype=object)
        return pd.Series(ids[codes], index=raw.index, dtype="str"), None
    texts, statuses = [], []
    for value in uniques:
        text, status = _clean_value(value, special_codes)
        if status is None:
            raise OAKitError(
                f"{path}: column {column}: unknown special code {text!r}; "
                f"expected a value or one of {', '.join(repr(c) for c in special_codes)}"
            )
        texts.append(text)
        statuses.append(status)
    values = _maybe_numeric(texts)[codes]
    series = pd.Series(values, index=raw.index, dtype="float64" if values.dtype.kind == "f" else "str")
    if all(st == "ok" for st in statuses):
        return series, None
    status = np.array(statuses, dtype=object)[codes]
    return series, pd.Series(status, index=raw.index, dtype="str")


def _clean_value(value: object, special_codes: Mapping[str, str]) -> tuple[str, str | None]:
    """One raw cell → (text, status); status None means an unknown special code."""
    text = str(value).strip().strip('"').strip()
    labelled = _LABELLED.match(text)
    if labelled:
        text = labelled.group(1)
    upper = text.upper()
    if upper == "" or _SPECIAL.match(upper):
        return (upper, special_codes[upper]) if upper in special_codes else (text, None)
    return text, "ok"


def _maybe_numeric(texts: list[str]) -> np.ndarray:
    """Float values when every non-blank text is a finite number (blank → NaN), else the texts themselves."""
    numbers = np.full(len(texts), np.nan)
    for i, text in enumerate(texts):
        if text == "" or _SPECIAL.match(text):
            continue
        try:
            number = float(text)
        except ValueError:
            return np.array([t if not (t == "" or _SPECIAL.match(t)) else "" for t in texts], dtype=object)
        if not np.isfinite(number):
            return np.array(texts, dtype=object)
        numbers[i] = number
    return numbers


def show_value(value: object) -> str:
    """A table value as a user would type it in an error message (3.0 → "3", text quoted)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        return f"{float(value):g}"
    return repr(str(value))


def value_status(table: pd.DataFrame, column: str) -> pd.Series:
    """Status of each value of ``column`` (``ok`` everywhere when the table had no special code there)."""
    key = column + STATUS_SUFFIX
    if key in table.columns:
        return table[key]
    return pd.Series(np.where(table[column].isna(), "missing", "ok"), index=table.index)


def require_columns(table: pd.DataFrame, columns: Sequence[str], path: str | os.PathLike) -> None:
    """Raise ``OAKitError`` naming the file and the first missing required column."""
    for column in columns:
        if column not in table.columns:
            raise OAKitError(f"{path}: missing required column {column}; expected columns {', '.join(columns)}")


def find_table(folder: str | os.PathLike, stem: str, required: bool = True) -> Path | None:
    """Find ``stem`` + .txt/.csv/.sas7bdat in ``folder`` (file names compared case-insensitively)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OAKitError(f"{folder}: not a folder; expected the folder holding the OAI tables")
    matches = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES and p.stem.lower() == stem.lower()
    )
    if not matches:
        if required:
            raise OAKitError(f"{folder}: no table {stem}{{{','.join(TABLE_SUFFIXES)}}}; expected the OAI file {stem}")
        return None
    if len(matches) > 1:
        raise OAKitError(
            f"{folder}: two files for one table {stem} ({', '.join(p.name for p in matches)}); "
            "expected exactly one (remove or rename the others)"
        )
    return matches[0]


def visit_prefix(visit: str | int) -> str:
    """Normalise a visit given as prefix ("V03", "v3") or month (24) to the OAI prefix ("V03")."""
    if isinstance(visit, (int, np.integer)):
        for prefix, month in VISIT_MONTHS.items():
            if month == int(visit):
                return prefix
        raise OAKitError(f"visits: month {visit} is not an OAI visit; expected one of {sorted(VISIT_MONTHS.values())}")
    match = re.fullmatch(r"[Vv]?(\d{1,2})", str(visit).strip())
    prefix = f"V{int(match.group(1)):02d}" if match else ""
    if prefix not in VISIT_MONTHS:
        raise OAKitError(f"visits: {visit!r} is not an OAI visit; expected one of {', '.join(VISIT_MONTHS)}")
    return prefix


def parse_side(values: pd.Series, path: str | os.PathLike, column: str = "SIDE") -> pd.Series:
    """Map OAI ``SIDE`` (1 = right, 2 = left; "1: Right" already reduced to 1) to "R"/"L"."""
    mapped = values.map({1.0: "R", 2.0: "L", "1": "R", "2": "L", "R": "R", "L": "L", "RIGHT": "R", "LEFT": "L"})
    bad = mapped.isna()
    if bad.any():
        row = bad[bad].index[0]
        where = cell_location(values.to_frame().__finalize__(values), row) if values.attrs else str(path)
        raise OAKitError(f"{where}: column {column}: value {show_value(values[row])}; expected 1 (right) or 2 (left)")
    return mapped.astype(str)


def choose_by_readprj(
    table: pd.DataFrame, keys: Sequence[str], priority: Sequence[int], valid: pd.Series | None = None
) -> pd.DataFrame:
    """Keep one row per ``keys``: the highest-priority READPRJ among rows with a valid reading, else among all.

    READPRJ values not in ``priority`` rank after those listed, in ascending order, so the choice never depends on
    row order. ``valid`` marks rows whose main reading is usable (default: all rows).
    """
    rank = {int(p): i for i, p in enumerate(priority)}
    readprj = pd.to_numeric(table["READPRJ"], errors="coerce")
    order = pd.DataFrame(
        {
            "invalid": ~(valid if valid is not None else pd.Series(True, index=table.index)).astype(bool),
            "rank": readprj.map(lambda p: rank.get(int(p), len(rank)) if pd.notna(p) else len(rank) + 1),
            "readprj": readprj.fillna(np.inf),
        },
        index=table.index,
    )
    ordered = table.assign(**{f"_{k}": v for k, v in order.items()}).sort_values(
        [*keys, "_invalid", "_rank", "_readprj"], kind="stable"
    )
    chosen = ordered.drop_duplicates(list(keys), keep="first")
    return chosen.drop(columns=[f"_{k}" for k in order.columns])


def _visit_table_path(folder: Path, stem_prefix: str, prefix: str, required: bool) -> Path | None:
    """Path of ``<stem_prefix><vv>`` for one visit (e.g. ``kxr_sq_bu03``)."""
    return find_table(folder, f"{stem_prefix}{prefix[1:]}", required=required)


def _requested_visits(folder: Path, stem_prefix: str, visits: Iterable[str | int] | None) -> list[tuple[str, Path]]:
    """(prefix, path) for each requested visit; with ``visits=None`` every visit file present."""
    if visits is None:
        found = [(p, _visit_table_path(folder, stem_prefix, p, required=False)) for p in VISIT_MONTHS]
        found = [(p, path) for p, path in found if path is not None]
        if not found:
            raise OAKitError(f"{folder}: no {stem_prefix}{{vv}} table; expected e.g. {stem_prefix}00.txt")
        return found
    return [(p, _visit_table_path(folder, stem_prefix, p, required=True)) for p in map(visit_prefix, visits)]


def read_kl_readings(
    folder: str | os.PathLike,
    visits: Iterable[str | int] | None = None,
    readprj_priority: Sequence[int] = READPRJ_PRIORITY,
) -> pd.DataFrame:
    """Read ``kxr_sq_bu{vv}`` files into one row per (participant, side, visit) with the READPRJ used.

    Parameters
    ----------
    folder : path-like
        Folder holding the OAI tables.
    visits : iterable of str or int, optional
        Visit prefixes ("V00") or months (0, 12, ...); default every ``kxr_sq_bu`` file present.
    readprj_priority : sequence of int
        READPRJ order of preference; per knee-visit the first project with a usable KL wins (see
        :func:`choose_by_readprj`).

    Returns
    -------
    pandas.DataFrame
        participant_id, side, visit_month, kl, kl_status, jsn_medial, jsn_lateral, osteophytes (max of the four
        marginal osteophyte grades), osteophyte_fm/fl/tm/tl, readprj, n_readings (rows found for that knee-visit).
    """
    folder = Path(folder)
    frames = [
        _read_sq_visit(path, prefix, readprj_priority)
        for prefix, path in _requested_visits(folder, "kxr_sq_bu", visits)
    ]
    readings = pd.concat(frames, ignore_index=True)
    if readings.empty:
        names = ", ".join(path.name for _, path in _requested_visits(folder, "kxr_sq_bu", visits))
        raise OAKitError(f"{folder}: no KL reading in {names} (header only?); expected one row per knee reading")
    return readings.sort_values(["participant_id", "side", "visit_month"], kind="stable").reset_index(drop=True)


def _read_sq_visit(path: Path, prefix: str, priority: Sequence[int]) -> pd.DataFrame:
    """One ``kxr_sq_bu{vv}`` file → tidy rows for that visit."""
    table = read_oai_table(path)
    kl_col = f"{prefix}XRKL"
    require_columns(table, ["ID", "SIDE", "READPRJ", kl_col], path)
    table = table[table["ID"].ne("")]
    check_ranges(table)
    table = drop_duplicate_rows(table, ["ID", "SIDE", "READPRJ"], "reading (ID, SIDE, READPRJ)")
    side = parse_side(table["SIDE"], path)
    kl_status = value_status(table, kl_col)
    _check_kl(table[kl_col], kl_status, path, kl_col)
    tidy = pd.DataFrame(
        {
            "participant_id": table["ID"].astype(str),
            "side": side,
            "visit_month": VISIT_MONTHS[prefix],
            "kl": table[kl_col].astype("float64"),
            "kl_status": kl_status.astype(str),
            "jsn_medial": _optional(table, f"{prefix}XRJSM"),
            "jsn_lateral": _optional(table, f"{prefix}XRJSL"),
            "osteophyte_fm": _optional(table, f"{prefix}XROSFM"),
            "osteophyte_fl": _optional(table, f"{prefix}XROSFL"),
            "osteophyte_tm": _optional(table, f"{prefix}XROSTM"),
            "osteophyte_tl": _optional(table, f"{prefix}XROSTL"),
            "READPRJ": table["READPRJ"],
        },
        index=table.index,
    )
    valid = tidy["kl_status"].isin(["ok", "replacement"])
    counts = tidy.groupby(["participant_id", "side"])["kl"].transform("size")
    chosen = choose_by_readprj(tidy.assign(n_readings=counts), ["participant_id", "side"], priority, valid)
    chosen = chosen.rename(columns={"READPRJ": "readprj"})
    chosen["readprj"] = pd.to_numeric(chosen["readprj"], errors="coerce").astype("Int64")
    os_cols = ["osteophyte_fm", "osteophyte_fl", "osteophyte_tm", "osteophyte_tl"]
    chosen.insert(7, "osteophytes", chosen[os_cols].max(axis=1, skipna=False))
    return chosen.reset_index(drop=True)


def _optional(table: pd.DataFrame, column: str) -> pd.Series:
    """Numeric values of an optional column (all NaN when the file lacks it)."""
    if column not in table.columns:
        return pd.Series(np.nan, index=table.index, dtype="float64")
    return pd.to_numeric(table[column], errors="coerce").astype("float64")


def _check_kl(kl: pd.Series, status: pd.Series, path: Path, column: str) -> None:
    """KL grades must be 0–4 wherever the status is ``ok``."""
    values = pd.to_numeric(kl, errors="coerce")
    bad = status.eq("ok") & ~values.isin([0, 1, 2, 3, 4])
    if bad.any():
        row = bad[bad].index[0]
        where = cell_location(kl.to_frame().__finalize__(kl), row) if kl.attrs else str(path)
        raise OAKitError(f"{where}: column {column}: KL value {show_value(kl[row])}; expected 0-4 or a special code")


def read_jsw(
    folder: str | os.PathLike,
    visits: Iterable[str | int] | None = None,
    readprj_priority: Sequence[int] = READPRJ_PRIORITY,
) -> pd.DataFrame:
    """Read ``kxr_qjsw_duryea{vv}`` files: minimum medial JSW (mm) and fixed-location JSW per knee-visit.

    Returns participant_id, side, visit_month, jsw_medial_mm (``V{vv}MCMJSW``), jsw_medial_status,
    jsw_medial_x{150..300}_mm / jsw_lateral_x{700..900}_mm for the fixed locations present, beam_angle_deg, readprj.
    """
    folder = Path(folder)
    frames = [
        _read_jsw_visit(path, prefix, readprj_priority)
        for prefix, path in _requested_visits(folder, "kxr_qjsw_duryea", visits)
    ]
    return (
        pd.concat(frames, ignore_index=True)
        .sort_values(["participant_id", "side", "visit_month"], kind="stable")
        .reset_index(drop=True)
    )


def _read_jsw_visit(path: Path, prefix: str, priority: Sequence[int]) -> pd.DataFrame:
    """One ``kxr_qjsw_duryea{vv}`` file → tidy JSW rows for that visit."""
    table = read_oai_table(path)
    mcm = f"{prefix}MCMJSW"
    require_columns(table, ["ID", "SIDE", "READPRJ", mcm], path)
    table = table[table["ID"].ne("")]
    check_ranges(table)
    table = drop_duplicate_rows(table, ["ID", "SIDE", "READPRJ"], "measurement (ID, SIDE, READPRJ)")
    tidy = pd.DataFrame(
        {
            "participant_id": table["ID"].astype(str),
            "side": parse_side(table["SIDE"], path),
            "visit_month": VISIT_MONTHS[prefix],
            "jsw_medial_mm": _optional(table, mcm),
            "jsw_medial_status": value_status(table, mcm).astype(str),
        },
        index=table.index,
    )
    for column in table.columns:
        fixed = re.fullmatch(rf"{prefix}(L?)JSW(\d+)", column)
        if fixed:
            compartment = "lateral" if fixed.group(1) else "medial"
            tidy[f"jsw_{compartment}_x{fixed.group(2)}_mm"] = _optional(table, column)
    tidy["beam_angle_deg"] = _optional(table, f"{prefix}BMANG")
    tidy["READPRJ"] = table["READPRJ"]
    chosen = choose_by_readprj(tidy, ["participant_id", "side"], priority, tidy["jsw_medial_status"].eq("ok"))
    chosen = chosen.rename(columns={"READPRJ": "readprj"})
    chosen["readprj"] = pd.to_numeric(chosen["readprj"], errors="coerce").astype("Int64")
    return chosen.reset_index(drop=True)


#: Required columns of the two baseline clinical files.
ENROLLEES_COLUMNS = ("ID", "P02SEX", "V00SITE", "P02RACE")
ALLCLINICAL00_COLUMNS = (
    "ID",
    "V00AGE",
    "P01BMI",
    "P01INJL",
    "P01INJR",
    "P01KSURGL",
    "P01KSURGR",
    "V00WOMKPL",
    "V00WOMKPR",
    "V00WOMSTFL",
    "V00WOMSTFR",
    "V00WOMADLL",
    "V00WOMADLR",
    "V00WOMTSL",
    "V00WOMTSR",
)
#: Per-side clinical fields: output name → OAI column with ``{s}`` = L/R.
_PER_SIDE = {
    "injury": "P01INJ{s}",
    "surgery": "P01KSURG{s}",
    "womac_pain": "V00WOMKP{s}",
    "womac_stiffness": "V00WOMSTF{s}",
    "womac_function": "V00WOMADL{s}",
    "womac_total": "V00WOMTS{s}",
}


def read_clinical_baseline(folder: str | os.PathLike) -> pd.DataFrame:
    """Merge ``enrollees`` and ``allclinical00`` into one per-knee baseline table (two rows per participant).

    Returns participant_id, side, age_years, sex ("M"/"F" from ``P02SEX`` 1/2), bmi_kg_m2, site (A–E), race
    (``P02RACE`` code), injury, surgery (0/1, knee's own side), womac_pain/stiffness/function/total (knee's own side)
    and clinical_status ("ok", or "field=status;..." naming every field that was a special code or blank).
    """
    folder = Path(folder)
    enr_path, cli_path = find_table(folder, "enrollees"), find_table(folder, "allclinical00")
    enr, cli = read_oai_table(enr_path), read_oai_table(cli_path)
    require_columns(enr, ENROLLEES_COLUMNS, enr_path)
    require_columns(cli, ALLCLINICAL00_COLUMNS, cli_path)
    require_numeric(enr, ["P02SEX", "P02RACE"])
    check_ranges(enr, ["P02SEX"])
    check_ranges(cli, ALLCLINICAL00_COLUMNS)
    enr = _check_unique_ids(enr, enr_path)
    cli = _check_unique_ids(cli, cli_path)
    merged = enr.merge(cli, on="ID", how="inner", suffixes=("", "_CLIN"))
    if merged.empty:
        raise OAKitError(f"{cli_path}: no ID in common with {enr_path.name}; expected the same participants")
    sex = merged["P02SEX"].map({1.0: "M", 2.0: "F"})
    rows = []
    for side in ("R", "L"):
        knee = pd.DataFrame(
            {
                "participant_id": merged["ID"].astype(str),
                "side": side,
                "age_years": merged["V00AGE"],
                "sex": sex,
                "bmi_kg_m2": merged["P01BMI"],
                "site": merged["V00SITE"].astype(str).replace("", np.nan),
                "race": merged["P02RACE"],
            }
        )
        fields = {"age_years": "V00AGE", "sex": "P02SEX", "bmi_kg_m2": "P01BMI", "site": "V00SITE", "race": "P02RACE"}
        for name, template in _PER_SIDE.items():
            knee[name] = pd.to_numeric(merged[template.format(s=side)], errors="coerce")
            fields[name] = template.format(s=side)
        knee["clinical_status"] = status_summary(merged, fields)
        rows.append(knee)
    return (
        pd.concat(rows, ignore_index=True).sort_values(["participant_id", "side"], kind="stable").reset_index(drop=True)
    )


def _check_unique_ids(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Participant-level tables must have one row per ID (identical duplicate rows are dropped)."""
    table = table[table["ID"].ne("")]
    return drop_duplicate_rows(table, ["ID"], "participant")


def status_summary(table: pd.DataFrame, fields: Mapping[str, str]) -> pd.Series:
    """One string per row naming every field (output name → source column) whose value is not ``ok`` ("ok" if none)."""
    parts = []
    for name, column in fields.items():
        status = value_status(table, column)
        if name == "sex":
            status = status.where(~(status.eq("ok") & ~table[column].isin([1.0, 2.0])), "invalid")
        parts.append(np.where(status.eq("ok"), "", name + "=" + status.astype(str)))
    joined = pd.Series([";".join(p for p in row if p) for row in zip(*parts)], index=table.index)
    return joined.replace("", "ok")


def read_outcomes(folder: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read ``outcomes99``: confirmed knee replacements and deaths, in months since baseline.

    Replacements: ``V99E{R,L}KDAYS`` (days from enrolment) where ``V99E{R,L}KRPCF`` (when present) is 3
    ("replacement adjudicated, confirmed"); ``V99E{R,L}KBLRP`` = 1 marks a replacement already present at baseline
    (month 0). Deaths: ``V99EDDDAYS`` (days) when present, else ``V99EDDVSPR`` (last visit before death), gated by
    ``V99EDDCF`` (death confirmed, ≥ 1) when present.

    Returns
    -------
    (replacements, deaths)
        replacements: participant_id, side, replacement_month; deaths: participant_id, death_month.
    """
    path = find_table(folder, "outcomes99")
    table = read_oai_table(path)
    require_columns(table, ["ID", "V99ERKDAYS", "V99ELKDAYS"], path)
    events = [c for c in table.columns if re.fullmatch(r"V99E[LR]K(DAYS|RPCF|BLRP)|V99EDD(DAYS|VSPR|CF)", c)]
    check_ranges(table, events)
    table = _check_unique_ids(table, path)
    rows = []
    for side in ("R", "L"):
        days = pd.to_numeric(table[f"V99E{side}KDAYS"], errors="coerce")
        confirmed = days.notna()
        if f"V99E{side}KRPCF" in table.columns:
            confirmed &= pd.to_numeric(table[f"V99E{side}KRPCF"], errors="coerce").eq(3)
        month = days / DAYS_PER_MONTH
        if f"V99E{side}KBLRP" in table.columns:
            at_baseline = pd.to_numeric(table[f"V99E{side}KBLRP"], errors="coerce").eq(1)
            month = month.where(~at_baseline, 0.0)
            confirmed |= at_baseline
        rows.append(pd.DataFrame({"participant_id": table["ID"], "side": side, "replacement_month": month})[confirmed])
    replacements = pd.concat(rows, ignore_index=True)
    return replacements.reset_index(drop=True), _read_deaths(table, path)


def _read_deaths(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Deaths from the outcomes table (empty when it has no death columns)."""
    if "V99EDDDAYS" in table.columns:
        month = pd.to_numeric(table["V99EDDDAYS"], errors="coerce") / DAYS_PER_MONTH
    elif "V99EDDVSPR" in table.columns:
        index = pd.to_numeric(table["V99EDDVSPR"], errors="coerce")
        by_index = {int(p[1:]): m for p, m in VISIT_MONTHS.items()}
        unknown = index.notna() & ~index.isin(list(by_index))
        if unknown.any():
            row = unknown[unknown].index[0]
            raise OAKitError(
                f"{cell_location(table, row, 'V99EDDVSPR')}: visit {show_value(index[row])}; "
                "expected an OAI visit number 0-11"
            )
        month = index.map(by_index)
    else:
        month = pd.Series(np.nan, index=table.index)
    died = month.notna()
    if "V99EDDCF" in table.columns:
        died &= pd.to_numeric(table["V99EDDCF"], errors="coerce").ge(1)
    return pd.DataFrame({"participant_id": table["ID"], "death_month": month.astype("float64")})[died].reset_index(
        drop=True
    )
