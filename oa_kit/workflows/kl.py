"""KL jobs that write files: grade every knee in radiograph files or folders into the one KL output table."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from oa_kit.api import grade_knees
from oa_kit.io.tables import check_table_path, write_table
from oa_kit.models.kl.predict import KLGrader


def predict_to_table(
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    side: str | None = None,
    tta: int | None = None,
    clahe: str = "auto",
    device: str = "cpu",
) -> pd.DataFrame:
    """Grade every knee in DICOM/PNG/JPEG files or folders and write the KL table to ``out`` (.parquet or .csv).

    The table is :class:`oa_kit.api.KneeGrades`'s, embeddings included (``kl_emb_*``), so
    ``oa-kit progression fit --radiograph OUT`` reads it as it is. ``out`` is checked before any work; the file
    appears whole or not at all.
    """
    out = check_table_path(out)
    grader = KLGrader.from_pretrained(weights, device=device)
    if tta is not None:
        grader.tta = tta
    table = grade_knees(list(inputs), side=side, clahe=clahe, gradcam=False, grader=grader).to_frame(embeddings=True)
    write_table(table, out)
    return table
