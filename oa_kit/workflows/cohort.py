"""Cohort jobs that write files: progression labels, exclusions and cohort flow from OAI/MOST tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from oa_kit.cohort.labels import ProgressionLabels
from oa_kit.io.atomic import atomic_path, write_text_atomic

#: Files :func:`write_labels` writes.
OUTPUT_FILES = ("labels.parquet", "exclusions.parquet", "flow.csv", "readings.parquet", "clinical.parquet")


def write_labels(
    result: ProgressionLabels, out: Path, readings: pd.DataFrame | None = None, clinical: pd.DataFrame | None = None
) -> None:
    """Write labels/exclusions (parquet), the flow (CSV) and optionally the tidy tables, each atomically."""
    out.mkdir(parents=True, exist_ok=True)
    frames = {
        "labels.parquet": result.labels,
        "exclusions.parquet": result.exclusions,
        "readings.parquet": readings,
        "clinical.parquet": clinical,
    }
    for name, frame in frames.items():
        if frame is not None:
            with atomic_path(out / name) as tmp:
                frame.to_parquet(tmp, index=False)
    write_text_atomic(out / "flow.csv", result.flow().to_csv(index=False))
