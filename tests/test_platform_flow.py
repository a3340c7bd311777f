"""The platform end to end from the command line, no glue code: radiographs -> `kl predict` -> `labels` ->
`progression fit` -> `progression predict`, with the one KL output table read as it is."""

from __future__ import annotations

import pandas as pd
import pytest

from oa_kit.api import analyse_mri, grade_knees, knee_risk, load_progression
from oa_kit.cli import main
from oa_kit.errors import OAKitError
from oa_kit.evaluation.model_card import _mri_sentence
from oa_kit.features.schema import MRI_MODEL_COLUMN
from oa_kit.models.kl.predict import KL_TABLE_COLUMNS
from oa_kit.models.mri.inference import MRISegmenter
from oa_kit.progression.persist import load_model


@pytest.mark.slow
def test_kl_predict_table_feeds_progression_fit_and_predict(small_cohort, tmp_path, capsys):
    kl = tmp_path / "kl.parquet"
    assert main(["kl", "predict", str(small_cohort / "xray"), "--out", str(kl)]) == 0
    table = pd.read_parquet(kl)
    assert list(table.columns[: len(KL_TABLE_COLUMNS)]) == list(KL_TABLE_COLUMNS)
    assert table.filter(like="kl_emb_").shape == (60, 256) and table["kl_grade_set"].ne("").all()
    assert main(["labels", "--tables", str(small_cohort), "--out", str(tmp_path / "labels")]) == 0
    inputs = ["--features", str(tmp_path / "labels" / "baseline_features.parquet"), "--radiograph", str(kl)]
    fit = ["progression", "fit", *inputs, "--labels", str(tmp_path / "labels" / "labels.parquet"), "--horizons", "24"]
    assert main([*fit, "--search", "quick", "--data", "synthetic", "--out", str(tmp_path / "models")]) == 0
    model = load_model(tmp_path / "models" / "h24")
    families = set(model.feature_families_.values())
    assert families == {"clinical", "radiograph"}
    assert not [f for f in model.feature_names_ if f.startswith(("kl_grade", "kl_qa", "source"))]
    loaded = load_progression(tmp_path / "models")
    assert loaded.kl_model == table["kl_weights_sha256"].iloc[0] == loaded.kl_grader().info_["sha256"]
    graded = grade_knees([small_cohort / "xray" / sorted(p.name for p in (small_cohort / "xray").iterdir())[0]])
    knee = pd.read_parquet(tmp_path / "labels" / "baseline_features.parquet").iloc[0].to_dict()
    assert knee_risk(loaded, knee, kl=graded).to_frame()["risk"].between(0, 1).all()
    graded.table["kl_weights_sha256"] = "0" * 64  # KL results of another CNN
    with pytest.raises(OAKitError, match="expected .*the CNN these models were trained with"):
        knee_risk(loaded, knee, kl=graded)
    risk = tmp_path / "risk.csv"
    assert main(["progression", "predict", *inputs, "--model", str(tmp_path / "models"), "--out", str(risk)]) == 0
    risks = pd.read_csv(risk, dtype={"participant_id": str})
    assert len(risks) == 60 and risks["risk"].between(0, 1).all()
    assert risks["provenance"].str.contains("synthetic").all()
    capsys.readouterr()


@pytest.mark.slow
def test_real_mode_fit_on_one_half_score_the_other(small_cohort, tmp_path, capsys):
    """The real-data workflow with the small cohort's tables treated as real: kl predict -> labels -> split by
    participant -> fit on one half -> predict and score the other half, and a withheld-table report whose card
    says real data; also without clinical columns (never a dummy column)."""
    kl, labels = tmp_path / "kl.parquet", tmp_path / "labels"
    assert main(["kl", "predict", str(small_cohort / "xray"), "--out", str(kl)]) == 0
    assert main(["labels", "--tables", str(small_cohort), "--out", str(labels)]) == 0
    train, test = tmp_path / "train.parquet", tmp_path / "test.csv"
    split = ["split", str(labels / "labels.parquet"), "--train", str(train), "--test", str(test), "--seed", "1"]
    assert main(split) == 0
    assert not set(pd.read_parquet(train)["participant_id"]) & set(pd.read_csv(test, dtype=str)["participant_id"])
    inputs = ["--features", str(labels / "baseline_features.parquet"), "--radiograph", str(kl)]
    real = ["--data", "real", "--cohort", "tiny OAI-format cohort", "--horizons", "24"]
    fit = ["progression", "fit", *inputs, "--labels", str(train), *real, "--search", "quick"]
    assert main([*fit, "--out", str(tmp_path / "models")]) == 0
    risks = tmp_path / "risks.parquet"
    predict = ["progression", "predict", *inputs, "--model", str(tmp_path / "models"), "--out", str(risks)]
    assert main(predict) == 0
    scores = tmp_path / "scores.csv"
    assert main(["progression", "score", "--risks", str(risks), "--labels", str(test), "--out", str(scores)]) == 0
    table = pd.read_csv(scores)
    assert set(table["metric"]) >= {"auc", "ap", "brier", "ece"} and (table["n"] < 60).all()
    assert pd.read_parquet(risks)["provenance"].str.contains("real").all()
    withheld = ["--test-features", str(labels / "baseline_features.parquet"), "--test-radiograph", str(kl)]
    evaluate = ["progression", "evaluate", *inputs, "--labels", str(train), *withheld, "--test-labels", str(test)]
    args = [*real, "--search", "quick", "--n-resamples", "50"]
    assert main([*evaluate, *args, "--out", str(tmp_path / "report")]) == 0
    card = (tmp_path / "report" / "model_card_h24.md").read_text()
    assert "synthetic" not in card.split("## Data")[0].lower() and "real participants" in card
    assert "withheld table" in card and "Trained on a separate table" in card
    assert "KL-CNN features from the network with weights sha256" in card
    images_only = [*evaluate, *args, "--feature-families", "radiograph", "--out", str(tmp_path / "images_only")]
    assert main(images_only) == 0
    head = pd.read_csv(tmp_path / "images_only" / "headline.csv")
    assert list(head["model"]) == ["kl", "kl_ordinal", "radiograph"]
    assert "DeLong test against the `kl` baseline" in (tmp_path / "images_only" / "model_card_h24.md").read_text()
    capsys.readouterr()


@pytest.mark.slow
def test_models_keep_to_the_mri_segmenter_their_features_came_from(small_cohort, tmp_path, capsys):
    """`mri segment --weights real` -> `progression fit --mri`: the table names its segmenter, the models record it
    and hand it back, and an MRI result of the other shipped weights is refused (their embeddings differ in meaning
    and length); two segmenters in one table are refused at fit time."""
    scans = sorted((small_cohort / "mri").glob("*_DESS.nii.gz"))[:16]
    mri = tmp_path / "mri"
    assert main(["mri", "segment", *map(str, scans), "--weights", "real", "--out", str(mri), "--no-progress"]) == 0
    table = pd.read_parquet(mri / "mri_biomarkers.parquet")
    real = MRISegmenter.from_pretrained("real")
    assert table[MRI_MODEL_COLUMN].eq(real.weights_sha256).all() and table.filter(like="mri_emb_").shape[1] == 128
    assert main(["labels", "--tables", str(small_cohort), "--out", str(tmp_path / "labels")]) == 0
    features = ["--features", str(tmp_path / "labels" / "baseline_features.parquet")]
    fit = ["progression", "fit", *features, "--labels", str(tmp_path / "labels" / "labels.parquet"), "--horizons", "24"]
    models = tmp_path / "models"
    assert main([*fit, "--mri", str(mri / "mri_biomarkers.parquet"), "--search", "quick", "--out", str(models)]) == 0
    loaded = load_progression(models)
    assert loaded.mri_model == real.weights_sha256 and loaded.mri_segmenter().channels == real.channels
    card = _mri_sentence(loaded.mri_model)[0]  # the model card's line on the MRI features
    assert f"weights sha256 `{real.weights_sha256}` (the shipped `real` weights" in card
    assert "not shipped" in _mri_sentence("0" * 64)[0] and _mri_sentence(None) == []
    participant, side = scans[0].name.split("_")[:2]
    baseline = pd.read_parquet(tmp_path / "labels" / "baseline_features.parquet")
    knee = baseline[(baseline["participant_id"] == participant) & (baseline["side"] == side)].iloc[0].to_dict()
    same = analyse_mri(scans[0], segmenter=loaded.mri_segmenter())
    assert knee_risk(loaded, knee, mri=same).to_frame()["risk"].between(0, 1).all()
    with pytest.raises(OAKitError, match="expected .*the segmenter these models were trained with"):
        knee_risk(loaded, knee, mri=analyse_mri(scans[0]))  # the default (synthetic) weights
    mixed = mri / "mixed.parquet"
    usable = table.index[table["qc_usable"]]  # a knee that failed QC contributes no MRI features
    table.loc[usable[0], MRI_MODEL_COLUMN] = MRISegmenter.from_pretrained().weights_sha256
    table.to_parquet(mixed)
    capsys.readouterr()
    assert main([*fit, "--mri", str(mixed), "--search", "quick", "--out", str(tmp_path / "mixed_models")]) != 0
    assert "2 different MRI segmenters in one table" in capsys.readouterr().err
    assert not (tmp_path / "mixed_models").exists()
