"""Reader for the Chen 2018 KL-grade PNG dataset: layout ``{split}/{0..4}/<OAI ID><L|R>.png`` plus optional manifest.csv,
or grade folders ``{0..4}/<name>.png`` without a split level (split ``""``; each image's KL from its folder)."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from oa_kit.errors import OAKitError

#: Splits that Chen's layout may contain (this repo's shared copy has train and val only).
CHEN_SPLITS = ("train", "val", "test")
_NAME = re.compile(r"^(?P<pid>\d+)(?P<side>[LR])\.png$")
#: Image files read from grade folders without a split level.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GRADE_NAME = re.compile(r"^(?P<pid>\d+)(?P<side>[LR])\.(png|jpe?g)$", re.IGNORECASE)
COLUMNS = ["path", "participant_id", "side", "kl", "split"]


def read_chen(data_dir: str | os.PathLike, splits: tuple[str, ...] | None = None, verify: bool = False) -> pd.DataFrame:
    """Index a Chen-layout folder as one row per knee image.

    Parameters
    ----------
    data_dir : path
        Folder holding ``{split}/{0..4}/<ID><L|R>.png`` and optionally ``manifest.csv``, or grade folders
        ``{0..4}/*.png`` directly (no split level: ``split`` is ``""``; names ``<ID><L|R>.png`` give participant and
        side, any other name is its own participant with side ``""``).
    splits : tuple of str, optional
        Keep only these splits (default: every split present).
    verify : bool
        With a manifest, also check that every listed file exists.

    Returns
    -------
    pandas.DataFrame
        Columns ``path`` (absolute str), ``participant_id`` (str), ``side`` ("L"/"R"), ``kl`` (int 0–4), ``split``.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise OAKitError(f"{root}: not a folder; expected a Chen-layout folder with {{split}}/{{0..4}}/<ID><L|R>.png")
    manifest = root / "manifest.csv"
    if manifest.exists():
        frame = _from_manifest(root, manifest, verify)
    elif _has_split_folders(root):
        frame = _from_layout(root)
    else:
        frame = _from_grade_folders(root)
    if splits is not None:
        frame = frame[frame["split"].isin(splits)]
    if frame.empty:
        raise OAKitError(
            f"{root}: no knee images found for splits {splits}; expected {{split}}/{{0..4}}/<ID><L|R>.png "
            "or {0..4}/<ID><L|R>.png"
        )
    return frame.sort_values(["split", "participant_id", "side"]).reset_index(drop=True)


def _from_manifest(root: Path, manifest: Path, verify: bool) -> pd.DataFrame:
    """Read Chen's manifest.csv (split, kl_grade, path, oai_id, side) into the standard columns."""
    raw = _read_manifest(manifest)
    missing = {"split", "kl_grade", "path", "oai_id", "side"} - set(raw.columns)
    if missing:
        raise OAKitError(f"{manifest}: missing columns {sorted(missing)}; expected split,kl_grade,path,oai_id,side")
    for column in ("split", "path", "oai_id", "side", "kl_grade"):
        blank = raw[column].isna() | raw[column].astype(str).str.strip().eq("")
        if blank.any():
            raise OAKitError(f"{manifest}, line {blank.idxmax() + 2}, column {column}: blank value; expected a value")
    kl = pd.to_numeric(raw["kl_grade"], errors="coerce")
    bad = kl.isna() | ~kl.isin([0, 1, 2, 3, 4])
    if bad.any():
        row = bad.idxmax()
        raise OAKitError(
            f"{manifest}, line {row + 2}, column kl_grade: value {raw['kl_grade'][row]!r} outside 0–4; "
            "expected integers 0..4"
        )
    if not raw["side"].isin(["L", "R"]).all():
        raise OAKitError(f"{manifest}: side values {sorted(set(raw['side']) - {'L', 'R'})}; expected L or R")
    outside = raw["path"].map(lambda p: Path(p).is_absolute() or ".." in Path(p).parts)
    if outside.any():
        row = outside.idxmax()
        raise OAKitError(
            f"{manifest}, line {row + 2}, column path: {raw['path'][row]!r} points outside the dataset folder; "
            "expected a path relative to the folder holding manifest.csv"
        )
    dup = raw["path"].duplicated()
    if dup.any():
        row = dup.idxmax()
        raise OAKitError(
            f"{manifest}, line {row + 2}, column path: {raw['path'][row]!r} listed twice; expected each image once"
        )
    frame = pd.DataFrame(
        {
            "path": [str(root / p) for p in raw["path"]],
            "participant_id": raw["oai_id"].astype(str),
            "side": raw["side"].astype(str),
            "kl": kl.astype(np.int64),
            "split": raw["split"].astype(str),
        }
    )
    if verify:
        absent = [p for p in frame["path"] if not Path(p).exists()]
        if absent:
            raise OAKitError(
                f"{manifest}: {len(absent)} listed files missing, e.g. {absent[0]}; expected every path to exist"
            )
    return frame


def _read_manifest(manifest: Path) -> pd.DataFrame:
    """manifest.csv as text columns, with one-line errors for empty, non-UTF-8 or unparsable files."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # a row longer than the header
            table = pd.read_csv(manifest, dtype=str, keep_default_na=False, encoding="utf-8", index_col=False)
        return table.reset_index(drop=True)
    except pd.errors.EmptyDataError:
        raise OAKitError(f"{manifest}: file is empty; expected a header split,kl_grade,path,oai_id,side") from None
    except UnicodeDecodeError as exc:
        raise OAKitError(f"{manifest}: byte {exc.start} is not UTF-8; expected a UTF-8 CSV file") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError, OSError) as exc:
        message = " ".join(str(exc).split())[:160]
        raise OAKitError(f"{manifest}: cannot parse as CSV ({message}); expected a comma-separated table") from None


def _from_layout(root: Path) -> pd.DataFrame:
    """Walk ``{split}/{grade}/*.png`` when no manifest is present."""
    rows = []
    for split in CHEN_SPLITS:
        for grade in range(5):
            folder = root / split / str(grade)
            if not folder.is_dir():
                continue
            for file in sorted(folder.glob("*.png")):
                match = _NAME.match(file.name)
                if match is None:
                    raise OAKitError(f"{file}: file name not <OAI ID><L|R>.png; expected e.g. 9001695L.png")
                rows.append((str(file), match["pid"], match["side"], grade, split))
    return pd.DataFrame(rows, columns=COLUMNS).astype({"kl": np.int64})


def _from_grade_folders(root: Path) -> pd.DataFrame:
    """Walk ``{grade}/*.png`` (no split level): KL from the folder, split ``""``; a name other than
    ``<ID><L|R>.png`` is its own participant (the file stem) with side ``""``."""
    rows = []
    for grade in range(5):
        folder = root / str(grade)
        if not folder.is_dir():
            continue
        for file in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            match = _GRADE_NAME.match(file.name)
            pid, side = (match["pid"], match["side"].upper()) if match else (file.stem, "")
            rows.append((str(file), pid, side, grade, ""))
    return pd.DataFrame(rows, columns=COLUMNS).astype({"kl": np.int64})


def _has_split_folders(root: Path) -> bool:
    """True when any ``{split}/{0..4}`` sub-folder exists."""
    return any((root / s / str(g)).is_dir() for s in CHEN_SPLITS for g in range(5))


def has_grade_folders(root: Path) -> bool:
    """True when ``root`` holds grade folders ``0``..``4`` (some may be absent) with images and no other folders."""
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return (
        bool(folders)
        and all(p.name in {str(g) for g in range(5)} for p in folders)
        and any(f.suffix.lower() in IMAGE_SUFFIXES for p in folders for f in p.iterdir())
    )


def is_chen_layout(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder with a manifest.csv, any ``{split}/{0..4}`` sub-folder, or only grade folders
    ``{0..4}`` holding images (:func:`read_chen` reads all three)."""
    root = Path(path)
    if not root.is_dir():
        return False
    return (root / "manifest.csv").exists() or _has_split_folders(root) or has_grade_folders(root)
