"""Cohort jobs that write files: progression labels, exclusions and cohort flow from OAI/MOST tables."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from oa_kit.cohort.labels import ProgressionLabels
from oa_kit.cohort.splits import participant_holdout
from oa_kit.features.assemble import baseline_features
from oa_kit.io.tables import check_table_path, read_table, write_csv, write_table

#: Files :func:`write_labels` writes.
OUTPUT_FILES = (
    "labels.parquet",
    "exclusions.parquet",
    "flow.csv",
    "readings.parquet",
    "clinical.parquet",
    "baseline_features.parquet",
)


def write_labels(
    result: ProgressionLabels, out: Path, readings: pd.DataFrame | None = None, clinical: pd.DataFrame | None = None
) -> None:
    """Write labels/exclusions (parquet), the flow (CSV) and, given the tidy tables, them and the per-knee baseline
    features (clinical + baseline readings: the ``--features`` table of ``oa-kit progression``) as one unit: all are
    built in a temporary folder beside ``out`` and moved in only when every one is written, so an error or Ctrl-C
    midway leaves ``out`` as it was (other files in ``out`` are kept)."""
    out = Path(out)
    both = readings is not None and clinical is not None
    frames = {
        "labels.parquet": result.labels,
        "exclusions.parquet": result.exclusions,
        "readings.parquet": readings,
        "clinical.parquet": clinical,
        "baseline_features.parquet": baseline_features(clinical, readings) if both else None,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", suffix=".part", dir=out.parent) as tmp:
        build = Path(tmp)
        for name, frame in frames.items():
            if frame is not None:
                frame.to_parquet(build / name, index=False)
        write_csv(result.flow(), build / "flow.csv")
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted(build.iterdir()):
            os.replace(path, out / path.name)


def split_table(
    table: str | Path, test_fraction: float, seed: int, out_train: str | Path, out_test: str | Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a per-knee (or knee-horizon) table by participant into a training and a withheld file (parquet/CSV)."""
    out_train, out_test = check_table_path(out_train), check_table_path(out_test)
    frame = read_table(table)
    train, test = participant_holdout(frame, test_fraction, seed)
    write_table(frame.iloc[train], out_train)
    write_table(frame.iloc[test], out_test)
    return frame.iloc[train], frame.iloc[test]
