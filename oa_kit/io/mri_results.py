"""A segmented knee's results in an output folder (``oa-kit mri segment``, ``make demo``'s ``mri/``): where its
record lies, what it must match to still be valid, and reading it back.

Each input gets ``knees/<name>-<hash of its path>.json``, written last and atomically after its label and thickness
NIfTIs: ``{"key": ..., "outputs": [...], "row": {...}}``. The key holds the input's path relative to the output
folder, its size and modification time, the ``side`` argument, the weights' sha256 and the oa_kit version, so a
result is reused (a resumed batch, a dashboard opening a knee) only for the same input, settings and code, and still
is after a data folder holding both inputs and results is moved or copied with its timestamps (``mv``, ``cp -a``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from oa_kit import __version__


def relative_source(out: str | Path, path: str | Path) -> str:
    """The input's path relative to the output folder (both resolved): what names it in a record, so results survive
    a move of the folder that holds both."""
    return os.path.relpath(Path(path).resolve(), Path(out).resolve())


def scan_record_path(out: str | Path, path: str | Path) -> Path:
    """Where one input's finished result is recorded: ``out/knees/<name>-<hash of its path relative to out>.json``."""
    digest = hashlib.sha1(relative_source(out, path).encode("utf-8")).hexdigest()[:10]
    return Path(out) / "knees" / f"{Path(path).name.split('.')[0]}-{digest}.json"


def source_stamp(path: Path) -> dict[str, int]:
    """Size and modification time of an input file (of every file in a DICOM folder): a changed input is redone."""
    files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
    stats = [f.stat() for f in files]
    return {
        "n_files": len(stats),
        "bytes": sum(s.st_size for s in stats),
        "mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
    }


def record_key(out: str | Path, path: Path, side: str | None, weights_sha256: str) -> dict[str, object]:
    """What a finished result in ``out`` must match to be reused: the input (path relative to ``out``, size, mtime),
    the ``side`` argument, the weights and the oa_kit version (whose biomarker columns it holds)."""
    return {
        "source_file": relative_source(out, path),
        "source": source_stamp(path) if path.exists() else None,
        "side_argument": side,
        "weights_sha256": weights_sha256,
        "oa_kit_version": __version__,
    }


def finished_record(out: str | Path, path: str | Path, key: dict[str, object]) -> dict | None:
    """The record of an input already done with the same ``key`` (its outputs present, as paths joined to ``out``),
    else None: no record, an unreadable one, another key or a missing output."""
    out, record_path = Path(out), scan_record_path(out, path)
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("outputs"), list) or "row" not in record:
        return None
    outputs = [out / str(name) for name in record["outputs"]]
    if record.get("key") != key or not outputs or not all(o.is_file() for o in outputs):
        return None
    return {**record, "outputs": outputs}
