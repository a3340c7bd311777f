"""The one CSV writer (atomic, spreadsheet-safe) and its matching reader.

Text cells that a spreadsheet would run as a formula (leading ``=``, ``+``, ``-``, ``@``, tab or carriage return,
OWASP "CSV injection") are written with a ``'`` in front, which spreadsheets show as plain text; a text cell that
already starts with ``'`` gets one more so that :func:`read_csv` can undo the escaping exactly. Numbers are never
escaped (``-1.5`` in a float column stays a number). Participant IDs, file names and DICOM PatientIDs all come from
users' files, so every CSV oa_kit writes should go through :func:`write_csv`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from oa_kit.errors import OAKitError
from oa_kit.io.atomic import atomic_path, check_writable_parent, write_bytes_atomic

__all__ = [
    "FORMULA_LEADS",
    "TABLE_SUFFIXES",
    "escape_cell",
    "read_csv",
    "read_table",
    "unescape_cell",
    "write_csv",
    "write_table",
]

#: First characters that make a spreadsheet treat a cell as a formula (plus the escape character itself).
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r", "'")


def escape_cell(text: str) -> str:
    """``text`` with a leading ``'`` when it starts like a formula (or with ``'``)."""
    return "'" + text if text.startswith(FORMULA_LEADS) else text


def unescape_cell(text: str) -> str:
    """Undo :func:`escape_cell` (drop one leading ``'``)."""
    return text[1:] if text.startswith("'") else text


def _text_columns(table: pd.DataFrame) -> list:
    """Columns that may hold text (object, string or category dtype)."""
    return [
        c
        for c in table.columns
        if pd.api.types.is_object_dtype(table[c])
        or pd.api.types.is_string_dtype(table[c])
        or isinstance(table[c].dtype, pd.CategoricalDtype)
    ]


def _map_text(series: pd.Series, func) -> pd.Series:
    """Apply ``func`` to the ``str`` values of ``series`` (others, e.g. NaN, unchanged)."""
    values = series.astype(object)
    return values.map(lambda v: func(v) if isinstance(v, str) else v)


def write_csv(table: pd.DataFrame, path: str | os.PathLike, *, index: bool = False) -> Path:
    """Write ``table`` as UTF-8 CSV atomically, escaping formula-leading text cells and column names.

    Parameters
    ----------
    table : pandas.DataFrame
        The table; text cells starting with ``= + - @``, tab, CR or ``'`` are prefixed with ``'``.
    path : path-like
        Output file (written to a temporary sibling, then renamed: never half-written).
    index : bool
        Write the index as the first column (default False).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    if not isinstance(table, pd.DataFrame):
        raise OAKitError(f"{path}: got {type(table).__name__} to write; expected a pandas DataFrame")
    frame = table.reset_index() if index else table.copy()
    for column in _text_columns(frame):
        frame[column] = _map_text(frame[column], escape_cell)
    frame.columns = [escape_cell(str(c)) for c in frame.columns]
    # CRLF line ends (RFC 4180): the csv writer then quotes every cell holding a CR or LF, so a stray CR inside an ID
    # cannot split a row for another reader (with "\n" ends a lone CR went out unquoted)
    write_bytes_atomic(path, frame.to_csv(index=False, lineterminator="\r\n").encode("utf-8"))
    return path


def read_csv(path: str | os.PathLike, **kwargs) -> pd.DataFrame:
    """Read a CSV written by :func:`write_csv`, undoing its escaping (one-line ``OAKitError`` on a bad file).

    Parameters
    ----------
    path : path-like
        The CSV file (UTF-8).
    **kwargs
        Passed to :func:`pandas.read_csv` (e.g. ``dtype={"participant_id": str}``).

    Returns
    -------
    pandas.DataFrame
        The table with text cells and column names as they were before escaping.
    """
    path = Path(path)
    if not path.is_file():
        raise OAKitError(f"{path}: file not found; expected a CSV file")
    try:
        table = pd.read_csv(path, encoding="utf-8", **kwargs)
    except pd.errors.EmptyDataError:
        raise OAKitError(f"{path}: file is empty; expected a CSV with a header line") from None
    except UnicodeDecodeError as exc:
        raise OAKitError(f"{path}: byte {exc.start} is not UTF-8; expected a UTF-8 CSV file") from None
    except (pd.errors.ParserError, ValueError) as exc:
        message = " ".join(str(exc).split())[:160]
        raise OAKitError(f"{path}: cannot parse as CSV ({message}); expected a comma-separated table") from None
    for column in _text_columns(table):
        dtype = table[column].dtype
        table[column] = _map_text(table[column], unescape_cell).astype(dtype)
    table.columns = [unescape_cell(c) if isinstance(c, str) else c for c in table.columns]
    return table


#: Per-knee table files oa_kit reads and writes, by suffix.
TABLE_SUFFIXES = (".parquet", ".csv")


def check_table_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it can be written as a table: a table suffix, not a folder, in a writable location
    (checked before any work is done, so a bad ``--out`` never costs a run); else a clear error."""
    path = Path(path)
    if path.is_dir():
        raise OAKitError(f"{path}: is a folder; expected a .parquet or .csv file name")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise OAKitError(f"{path}: unsupported table suffix {path.suffix!r}; expected .parquet or .csv")
    return check_writable_parent(path, None)


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table as parquet or (spreadsheet-safe) CSV by suffix, atomically; returns the path."""
    path = check_table_path(path)
    if path.suffix.lower() == ".csv":
        return write_csv(table, path)
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)
    return path


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a per-knee parquet or CSV table; ``ID``/``id`` become ``participant_id`` and participant ids are text."""
    path = Path(path)
    if not path.is_file():
        raise OAKitError(f"{path}: file not found; expected a .parquet or .csv table")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            table = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise OAKitError(
                f"{path}: cannot read as parquet ({type(exc).__name__}); expected a parquet table"
            ) from None
    elif suffix in (".csv", ".txt"):
        table = read_csv(path, dtype={"participant_id": str, "ID": str, "id": str})
    else:
        raise OAKitError(f"{path}: unknown extension {path.suffix!r}; expected .parquet or .csv")
    for alias in ("ID", "id"):
        if "participant_id" not in table.columns and alias in table.columns:
            table = table.rename(columns={alias: "participant_id"})
    if "participant_id" in table.columns:
        table["participant_id"] = table["participant_id"].astype(str)
    return table
