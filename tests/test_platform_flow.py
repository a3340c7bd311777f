"""The platform end to end from the command line, no glue code: radiographs -> `kl predict` -> `labels` ->
`progression fit` -> `progression predict`, with the one KL output table read as it is."""

from __future__ import annotations

import pandas as pd
import pytest

from oa_kit.cli import main
from oa_kit.models.kl.predict import KL_TABLE_COLUMNS
from oa_kit.progression.persist import load_model


@pytest.mark.slow
def test_kl_predict_table_feeds_progression_fit_and_predict(small_cohort, tmp_path, capsys):
    kl = tmp_path / "kl.parquet"
    assert main(["kl", "predict", str(small_cohort / "xray"), "--out", str(kl)]) == 0
    table = pd.read_parquet(kl)
    assert list(table.columns[: len(KL_TABLE_COLUMNS)]) == list(KL_TABLE_COLUMNS)
    assert table.filter(like="kl_emb_").shape == (60, 256) and table["kl_grade_set"].ne("").all()
    assert main(["labels", "--tables", str(small_cohort), "--out", str(tmp_path / "labels")]) == 0
    inputs = ["--features", str(tmp_path / "labels" / "clinical.parquet"), "--radiograph", str(kl)]
    fit = ["progression", "fit", *inputs, "--labels", str(tmp_path / "labels" / "labels.parquet"), "--horizons", "24"]
    assert main([*fit, "--search", "quick", "--data", "synthetic", "--out", str(tmp_path / "models")]) == 0
    model = load_model(tmp_path / "models" / "h24")
    families = set(model.feature_families_.values())
    assert families == {"clinical", "radiograph"}
    assert not [f for f in model.feature_names_ if f.startswith(("kl_grade", "kl_qa", "source"))]
    risk = tmp_path / "risk.csv"
    assert main(["progression", "predict", *inputs, "--model", str(tmp_path / "models"), "--out", str(risk)]) == 0
    risks = pd.read_csv(risk, dtype={"participant_id": str})
    assert len(risks) == 60 and risks["risk"].between(0, 1).all()
    assert risks["provenance"].str.contains("synthetic").all()
    capsys.readouterr()
