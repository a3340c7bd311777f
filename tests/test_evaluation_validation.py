"""Out-of-sample validation: grouped folds, baselines evaluated out of sample, site-held-out, report and model card."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_progression_fixtures import make_knee_table

from oa_kit.errors import OAKitError
from oa_kit.evaluation import cross_validate, grouped_folds, roc_auc, site_held_out_validate, summarize
from oa_kit.evaluation.oracle import LATENT_COLUMNS, truth_latents
from oa_kit.evaluation.report import evaluate_progression
from oa_kit.progression import ProgressionModel, feature_sets, make_provenance
from oa_kit.progression.baselines import baseline_models, reference_model
from oa_kit.workflows.progression import write_evaluation

GRID = [{"num_leaves": 8, "n_estimators": 80, "learning_rate": 0.05, "min_child_samples": 5}]


def test_grouped_folds_never_share_a_participant():
    X, y, _ = make_knee_table(60, seed=0)
    folds = grouped_folds(X, y, n_splits=5, seed=3)
    pid = X["participant_id"].to_numpy()
    seen = np.concatenate([test for _, test in folds])
    assert sorted(seen) == list(range(len(X)))
    for train, test in folds:
        assert not set(pid[train]) & set(pid[test])
        assert 0 < y[test].mean() < 1


def test_feature_sets_follow_families():
    X, _, _ = make_knee_table(10, seed=0)
    sets = feature_sets(X)
    assert list(sets) == ["clinical", "kl", "kl_ordinal", "clinical_kl", "clinical_radiograph", "fused"]
    assert "kl" not in sets["clinical"] and sets["kl"] == ["kl"]
    assert "mri_emb_000" in sets["fused"] and "mri_emb_000" not in sets["clinical_radiograph"]
    assert "kl_emb_000" in sets["clinical_radiograph"]
    no_mri = X[[c for c in X.columns if not c.startswith(("mri_", "thickness", "volume"))]]
    assert "fused" not in feature_sets(no_mri)
    images_only = X.drop(columns=sets["clinical"])
    assert list(feature_sets(images_only)) == ["kl", "kl_ordinal", "radiograph", "fused"]
    assert reference_model(feature_sets(images_only)) == "kl" and reference_model(sets) == "clinical"


def test_kl_enters_the_logistic_baselines_as_categories():
    """Risk not monotone in KL (KL 2 below KL 1, as in OAI): the categorical KL baseline fits it, the ordinal cannot."""
    rng = np.random.default_rng(0)
    kl = rng.integers(0, 4, 2000)
    y = rng.binomial(1, np.array([0.10, 0.30, 0.12, 0.40])[kl])
    X = pd.DataFrame({"participant_id": [str(i) for i in range(2000)], "side": "R", "kl": kl})
    models = baseline_models(X, 48, include=["kl", "kl_ordinal"])
    assert models["kl"].categorical == ("kl",) and models["kl_ordinal"].categorical == ()
    auc = {n: roc_auc(y, m.fit(X, y).predict_proba(X)[:, 1]) for n, m in models.items()}
    assert auc["kl"] > auc["kl_ordinal"] + 0.05


def test_baselines_are_evaluated_out_of_sample_on_label_noise():
    """Pure-noise labels: in-sample AUC is optimistic, out-of-sample AUC stays near chance."""
    X, _, _ = make_knee_table(80, seed=1)
    y = np.random.default_rng(0).binomial(1, 0.35, len(X))
    models = {
        "clinical": ProgressionModel(estimator="logistic", columns=feature_sets(X)["clinical"], seed=0),
        "fused": ProgressionModel(param_grid=GRID, seed=0),
    }
    in_sample = roc_auc(y, models["fused"].fit(X, y).predict_proba(X)[:, 1])
    preds = cross_validate(models, X, y, n_splits=3, seed=0)
    assert in_sample > 0.7
    for name, part in preds.groupby("model"):
        assert abs(roc_auc(part["label"], part["risk"]) - 0.5) < 0.12, name
        assert sorted(part["row"]) == list(range(len(X)))  # every knee predicted once, out of fold
    table = summarize(preds, n_resamples=300)
    auc = table[(table.model == "fused") & (table.metric == "auc")].iloc[0]
    assert auc.ci_low < 0.5 < auc.ci_high


def test_predictions_come_from_models_without_the_participant():
    X, y, _ = make_knee_table(50, seed=2)
    preds = cross_validate({"kl": ProgressionModel(estimator="logistic", columns=["kl"])}, X, y, n_splits=5)
    folds = {s: set(part["participant_id"]) for s, part in preds.groupby("split")}
    assert sum(len(v) for v in folds.values()) == len(set().union(*folds.values())) == 50


def test_site_held_out_trains_on_other_sites():
    X, y, _ = make_knee_table(80, seed=3)
    preds = site_held_out_validate({"kl": ProgressionModel(estimator="logistic", columns=["kl", "age"])}, X, y)
    assert set(preds["split"]) == set(X["site"])
    site_of = dict(zip(X["participant_id"], X["site"]))
    assert all(site_of[p] == s for p, s in zip(preds["participant_id"], preds["split"]))
    with pytest.raises(OAKitError, match="site: column missing"):
        site_held_out_validate({}, X.drop(columns="site"), y)


def test_single_class_training_split_is_an_error():
    X, _, _ = make_knee_table(40, seed=4)
    y = (X["site"] == "A").astype(int).to_numpy()  # events only at site A: training without A has one class
    with pytest.raises(OAKitError, match="single class"):
        site_held_out_validate({"kl": ProgressionModel(estimator="logistic", columns=["kl"])}, X, y)


def test_report_and_model_card(tmp_path):
    X, y, p = make_knee_table(70, seed=5)
    p = np.asarray(p, dtype=float).copy()
    p[:2] = np.nan  # labelled knees the generator holds no probability for (true KL 4)
    ev = evaluate_progression(
        X,
        y,
        24,
        oracle_risk=p,
        n_splits=3,
        n_resamples=200,
        seed=0,
        provenance=make_provenance("synthetic", "test fixture"),
        lightgbm_grid=GRID,
        include=["clinical", "kl", "fused"],
    )
    head = ev.headline()
    assert list(head["model"]) == ["clinical", "kl", "fused", "oracle"]
    assert {"auc", "auc_ci_low", "auc_ci_high", "ece", "oracle_auc", "share_of_gain"} <= set(head.columns)
    assert (head["provenance"] == "trained on synthetic data — not a clinical estimate").all()
    assert ev.site_metrics is not None and set(ev.delong["model"]) == {"kl", "fused"}
    written = write_evaluation(ev, tmp_path)
    card = written["card"].read_text()
    for section in (
        "## Intended use",
        "## Data",
        "## Features",
        "## Metrics",
        "## Calibration",
        "## Subgroups",
        "## Decision curve",
        "## Limitations",
        "## TRIPOD+AI checklist",
        "not a clinical estimate",
        "Oracle comparison",
        "Site-held-out",
    ):
        assert section in card, section
    assert f"Compared on the {len(y) - 2} of {len(y)} labelled knees" in card
    fused_auc = head.set_index("model").loc["fused", "auc"]
    assert f"{fused_auc:.3f}" in card
    assert f"{len(GRID)}-configuration search in an inner 5-fold" in card  # the card states the search it ran
    assert (tmp_path / "plotly.min.js").exists() and written["figure_calibration"].read_text().count("plotly") > 0
    assert pd.read_csv(written["metrics"]).shape[0] == 12


def test_grouped_folds_property():
    """Any participant layout (1–2 knees each, any labels): folds partition the knees and never share a participant."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=15, deadline=None)
    @given(st.lists(st.tuples(st.integers(1, 2), st.integers(0, 1)), min_size=12, max_size=40), st.integers(0, 99))
    def check(participants, seed):
        pid = [str(i) for i, (k, _) in enumerate(participants) for _ in range(k)]
        y = np.array([lab for k, lab in participants for _ in range(k)])
        if min(y.sum(), len(y) - y.sum()) < 3:
            return
        X = pd.DataFrame({"participant_id": pid})
        folds = grouped_folds(X, y, n_splits=3, seed=seed)
        ids = np.asarray(pid)
        assert sorted(np.concatenate([t for _, t in folds])) == list(range(len(pid)))
        for train, test in folds:
            assert not set(ids[train]) & set(ids[test])

    check()


def _truth(X, z):
    """A synthetic-truth-like knees table (ID, side, image latents) for the rows of ``X``."""
    return (
        X[["participant_id", "side"]]
        .rename(columns={"participant_id": "ID"})
        .assign(image_cartilage_z=z[0], image_osteophyte_z=z[1], image_jsw_z=z[2])
    )


def test_latent_reference_only_with_truth_and_latents_feed_no_other_model(tmp_path):
    X, y, p = make_knee_table(60, seed=6)
    rng = np.random.default_rng(0)
    logit = np.log(p / (1 - p))
    z = np.vstack([logit - logit.mean() + rng.normal(0, 0.3, len(X)), rng.normal(size=(2, len(X)))])
    truth = _truth(X, z).sample(frac=1.0, random_state=0)  # any row order
    latents = truth_latents(X, truth)
    assert list(latents.columns) == list(LATENT_COLUMNS) and np.allclose(latents["image_cartilage_z"], z[0])
    kw = dict(n_splits=3, n_resamples=50, seed=0, site_held_out=False, include=["clinical", "kl"])
    ev = evaluate_progression(X, y, 24, oracle_risk=p, latents=latents, **kw)
    head = ev.headline()
    assert list(head["model"]) == ["clinical", "kl", "latent_reference", "oracle"]
    auc = head.set_index("model")["auc"]
    assert auc["latent_reference"] > auc["kl"]  # the latents carry the risk here
    for name, cols in ev.feature_sets.items():
        assert bool(set(cols) & set(LATENT_COLUMNS)) == (name == "latent_reference")
    assert "latent_reference" in write_evaluation(ev, tmp_path)["card"].read_text()
    plain = evaluate_progression(X, y, 24, oracle_risk=p, **kw)
    assert "latent_reference" not in set(plain.headline()["model"]) and "latent_reference" not in plain.feature_sets
    pd.testing.assert_frame_equal(
        plain.predictions, ev.predictions[ev.predictions.model != "latent_reference"].reset_index(drop=True)
    )  # other models unchanged by the reference


def test_truth_latents_absent_or_incomplete():
    X, _, _ = make_knee_table(10, seed=0)
    z = np.zeros((3, len(X)))
    assert truth_latents(X, _truth(X, z).drop(columns="image_jsw_z")) is None
    with pytest.raises(OAKitError, match="lack image latents"):
        truth_latents(X, _truth(X, z).iloc[2:])
    with pytest.raises(OAKitError, match="already in the feature table"):
        evaluate_progression(
            X.assign(image_jsw_z=0.0),
            np.arange(len(X)) % 2,
            24,
            latents=truth_latents(X, _truth(X, z)),
            include=["clinical"],
            site_held_out=False,
        )


def test_nested_cross_validation_reproduces_by_seed():
    X, y, _ = make_knee_table(50, seed=8)
    models = {
        "fused": ProgressionModel(
            columns=["age", "bmi", "kl", "jsw_medial_mm", "thickness_mm_tibial_medial"],
            param_grid=GRID[:1],
            derived="replace",
            monotone=True,
        )
    }
    first, again = (cross_validate(models, X, y, n_splits=3, seed=4) for _ in range(2))
    pd.testing.assert_frame_equal(first, again)
    assert not cross_validate(models, X, y, n_splits=3, seed=5)["risk"].equals(first["risk"])
