"""ProgressionModel: fitting, calibration, bad labels, provenance, pickle-free persistence with checksums, bootstrap
risk intervals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_progression_fixtures import make_knee_table

from oa_kit.errors import OAKitError
from oa_kit.io.artifacts import write_checksums
from oa_kit.metrics import expected_calibration_error, roc_auc
from oa_kit.progression import (
    SYNTHETIC_STATEMENT,
    ProbabilityCalibrator,
    ProgressionModel,
    load_model,
    make_provenance,
    save_model,
)
from oa_kit.progression.model import participant_draw

SMALL_GRID = [
    {"num_leaves": 4, "n_estimators": 60, "learning_rate": 0.05},
    {"num_leaves": 8, "n_estimators": 40, "learning_rate": 0.05},
]


@pytest.fixture(scope="module")
def data():
    return make_knee_table(150, seed=0), make_knee_table(150, seed=1)


@pytest.fixture(scope="module")
def fitted(data):
    (X, y, _), _ = data
    return ProgressionModel(param_grid=SMALL_GRID, seed=0).fit(X, y, provenance=make_provenance("synthetic", "fixture"))


def test_fit_learns_signal_and_records_search(fitted, data):
    _, (Xt, yt, pt) = data
    risk = fitted.predict_proba(Xt)[:, 1]
    assert roc_auc(yt, risk) > 0.7  # held-out knees, oracle ≈ 0.87
    assert len(fitted.cv_results_) == 2 and set(fitted.best_params_) >= {"num_leaves"}
    assert fitted.classes_.tolist() == [0, 1] and fitted.predict(Xt).shape == (len(Xt),)
    assert len(fitted.data_sha256_) == 64


def test_predictions_carry_provenance(fitted, data):
    _, (Xt, _, _) = data
    out = fitted.predict_risk(Xt)
    assert (out["provenance"] == SYNTHETIC_STATEMENT).all()
    assert out.attrs["provenance"]["data"] == "synthetic"
    assert {"participant_id", "side", "horizon_months", "risk"} <= set(out.columns)
    default = ProgressionModel(estimator="logistic", columns=["age", "bmi", "injury"]).fit(*data[0][:2])
    assert "not recorded" in default.predict_risk(Xt)["provenance"].iloc[0]


def test_horizon_without_events_and_single_class_are_clear_errors(data):
    (X, y, _), _ = data
    with pytest.raises(OAKitError, match="horizon 12 months has no progression events"):
        ProgressionModel(horizon_months=12).fit(X, np.zeros(len(X), int))
    with pytest.raises(OAKitError, match="only progression events"):
        ProgressionModel(horizon_months=12).fit(X, np.ones(len(X), int))
    few = np.zeros(len(X), int)
    few[:2] = 1
    with pytest.raises(OAKitError, match="minority class; expected at least n_splits=3"):
        ProgressionModel().fit(X, few)
    with pytest.raises(OAKitError, match="label: values must be 0 or 1"):
        ProgressionModel().fit(X, np.where(y == 1, 2, 0))


def test_groups_are_required_to_keep_knees_together(data):
    (X, y, _), _ = data
    with pytest.raises(OAKitError, match="groups: not given"):
        ProgressionModel().fit(X.drop(columns="participant_id"), y)


def test_missing_feature_column_at_predict(fitted, data):
    _, (Xt, _, _) = data
    with pytest.raises(OAKitError, match="bmi: feature column missing"):
        fitted.predict_proba(Xt.drop(columns="bmi"))


def test_calibration_improves_ece_on_a_miscalibrated_fixture():
    rng = np.random.default_rng(0)
    true_logit = rng.normal(-1.0, 1.5, 4000)
    y = rng.binomial(1, 1 / (1 + np.exp(-true_logit)))
    score = 2.5 * true_logit + 2.0  # overconfident and shifted: badly calibrated
    raw = 1 / (1 + np.exp(-score))
    train, test = slice(0, 2000), slice(2000, None)
    before = expected_calibration_error(y[test], raw[test])
    for method in ("sigmoid", "isotonic"):
        cal = ProbabilityCalibrator(method).fit(score[train], y[train])
        after = expected_calibration_error(y[test], cal.predict(score[test]))
        assert after < before / 3, (method, before, after)
        again = ProbabilityCalibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
        assert np.array_equal(again.predict(score[test]), cal.predict(score[test]))


def test_model_calibration_beats_uncalibrated_class_weighted_scores(data):
    (X, y, _), (Xt, yt, _) = data
    cols = ["age", "bmi", "injury", "kl", "jsw_medial_mm", "thickness_mm_tibial_medial"]
    raw = ProgressionModel(estimator="logistic", columns=cols, calibration="none").fit(X, y)
    cal = ProgressionModel(estimator="logistic", columns=cols, calibration="sigmoid").fit(X, y)
    # class_weight="balanced" inflates uncalibrated risks (event rate ~26%); calibration restores them
    assert expected_calibration_error(yt, cal.predict_proba(Xt)[:, 1]) < expected_calibration_error(
        yt, raw.predict_proba(Xt)[:, 1]
    )


@pytest.mark.parametrize("estimator", ["lightgbm", "logistic"])
def test_save_load_round_trip_gives_identical_predictions(tmp_path, data, fitted, estimator):
    (X, y, _), (Xt, _, _) = data
    model = (
        fitted
        if estimator == "lightgbm"
        else ProgressionModel(
            estimator="logistic", columns=["age", "sex", "site", "kl", "kl_emb_000"], calibration="isotonic"
        ).fit(X, y)
    )
    folder = save_model(model, tmp_path / "model", metrics={"auc": 0.8})
    loaded = load_model(folder)
    assert np.array_equal(model.predict_proba(Xt), loaded.predict_proba(Xt))
    assert loaded.feature_names_ == model.feature_names_ and loaded.feature_families_ == model.feature_families_
    assert loaded.provenance_ == model.provenance_ and loaded.metrics_ == {"auc": 0.8}
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["horizon_months"] == 24 and meta["data_sha256"] == model.data_sha256_
    assert not list(folder.glob("*.pkl")) and not list(folder.glob("*.joblib"))


def test_checksum_mismatch_and_missing_files_are_errors(tmp_path, fitted):
    folder = save_model(fitted, tmp_path / "model")
    text = (folder / "model.txt").read_text()
    (folder / "model.txt").write_text(text.replace("num_leaves", "num_leaves ", 1))
    with pytest.raises(OAKitError, match=r"model.txt: sha256 \w+… does not match"):
        load_model(folder)
    folder3 = save_model(fitted, tmp_path / "model3")
    listed = json.loads((folder3 / "checksums.json").read_text())
    meta = json.loads((folder3 / "metadata.json").read_text())
    meta["provenance"]["statement"] = "trained on REAL OAI data"  # an edit left out of the checksum list
    (folder3 / "metadata.json").write_text(json.dumps(meta))
    (folder3 / "checksums.json").write_text(json.dumps({"model.txt": listed["model.txt"]}))
    with pytest.raises(OAKitError, match="checksums.json: no entry for metadata.json"):
        load_model(folder3)
    folder2 = save_model(fitted, tmp_path / "model2")
    (folder2 / "checksums.json").unlink()
    with pytest.raises(OAKitError, match="checksums.json: missing"):
        load_model(folder2)
    with pytest.raises(OAKitError, match="not a folder"):
        load_model(tmp_path / "nope")
    with pytest.raises(FileExistsError):
        save_model(fitted, tmp_path / "model2")


def test_unfitted_model_is_an_error(data):
    _, (Xt, _, _) = data
    with pytest.raises(OAKitError, match="not fitted"):
        ProgressionModel().predict_proba(Xt)


def test_derived_features_are_monotone_in_their_known_direction(data):
    """With derived="replace" and monotone=True, a wider medial joint space never raises the risk."""
    (X, y, _), (Xt, _, _) = data
    model = ProgressionModel(param_grid=SMALL_GRID, derived="replace", monotone=True, n_components=3, seed=0).fit(X, y)
    assert "jsw_medial_resid_z" in model.feature_names_ and "jsw_medial_mm" not in model.feature_names_
    knees = Xt.iloc[:20]
    scores = np.column_stack([model.decision_function(knees.assign(jsw_medial_mm=v)) for v in np.linspace(2, 6, 9)])
    assert (np.diff(scores, axis=1) <= 1e-9).all()
    assert model.booster_.dump_model()["monotone_constraints"].count(-1) == 1


def test_save_load_round_trip_with_derived_features(tmp_path, data):
    (X, y, _), (Xt, _, _) = data
    model = ProgressionModel(param_grid=SMALL_GRID[:1], derived="replace", monotone=True, n_components=2).fit(X, y)
    loaded = load_model(save_model(model, tmp_path / "model"))
    assert loaded.derived == "replace" and loaded.monotone
    assert np.array_equal(model.predict_proba(Xt), loaded.predict_proba(Xt))


# -- bootstrap risk intervals -------------------------------------------------------------------------------------
LOGISTIC_COLUMNS = ["age", "bmi", "injury", "kl"]


@pytest.fixture(scope="module")
def booted(data):
    (X, y, _), _ = data
    return ProgressionModel(param_grid=SMALL_GRID[:1], n_bootstrap=20, seed=0).fit(X, y)


def test_interval_shape_bounds_and_seed(booted, data):
    (X, y, _), (Xt, _, _) = data
    interval = booted.predict_interval(Xt)
    assert interval.shape == (len(Xt), 2) and len(booted.bootstrap_) == 20
    assert (interval[:, 0] <= interval[:, 1]).all() and (interval >= 0).all() and (interval <= 1).all()
    assert (interval[:, 1] - interval[:, 0]).mean() > 0.01  # the refits differ
    narrower = booted.predict_interval(Xt, level=0.5)
    assert (narrower[:, 0] >= interval[:, 0]).all() and (narrower[:, 1] <= interval[:, 1]).all()
    again = ProgressionModel(param_grid=SMALL_GRID[:1], n_bootstrap=20, seed=0).fit(X, y)
    assert np.array_equal(again.predict_interval(Xt), interval)
    other = ProgressionModel(param_grid=SMALL_GRID[:1], n_bootstrap=20, seed=1).fit(X, y)
    assert not np.array_equal(other.predict_interval(Xt), interval)
    assert booted.bootstrap_seeds_ == list(range(20))


def test_interval_is_wider_for_a_model_fitted_on_fewer_knees(data):
    (X, y, _), (Xt, _, _) = data
    few = X["participant_id"].isin(X["participant_id"].unique()[:50]).to_numpy()
    widths = {}
    for name, rows in (("few", few), ("all", np.ones(len(X), bool))):
        model = ProgressionModel(estimator="logistic", columns=LOGISTIC_COLUMNS, n_bootstrap=30, seed=0)
        interval = model.fit(X[rows], y[rows]).predict_interval(Xt)
        widths[name] = float((interval[:, 1] - interval[:, 0]).mean())
    assert widths["few"] > 1.3 * widths["all"], widths


def test_bootstrap_draws_never_split_a_participant(data):
    (X, _, _), _ = data
    groups = X["participant_id"].to_numpy()
    rng = np.random.default_rng(0)
    for _ in range(20):
        rows, oob = participant_draw(groups, rng)
        in_bag = set(groups[rows])
        assert in_bag.isdisjoint(groups[oob]) and in_bag | set(groups[oob]) == set(groups)
        times = np.bincount(rows, minlength=len(groups))  # each knee: how often it is in the bag
        per_participant = pd.Series(times).groupby(groups).nunique()
        assert (per_participant == 1).all()  # both knees of a participant drawn equally often
        assert len(rows) == len(groups) * np.mean(times) and 0.2 < oob.mean() < 0.5


def test_bootstrap_refits_use_participant_groups(data):
    """Groups given as one id per knee make the draw knee-level; the fit follows whatever groups says."""
    (X, y, _), (Xt, _, _) = data
    per_participant = ProgressionModel(estimator="logistic", columns=LOGISTIC_COLUMNS, n_bootstrap=5).fit(X, y)
    per_knee = ProgressionModel(estimator="logistic", columns=LOGISTIC_COLUMNS, n_bootstrap=5).fit(
        X, y, groups=np.arange(len(X))
    )
    assert not np.array_equal(per_participant.predict_interval(Xt), per_knee.predict_interval(Xt))


def test_interval_without_bootstrap_and_bad_settings_are_errors(fitted, data):
    (X, y, _), (Xt, _, _) = data
    with pytest.raises(OAKitError, match=r"horizon 24 months\): fitted with n_bootstrap=0; expected"):
        fitted.predict_interval(Xt)
    for bad in (-1, 2.5, True, "5"):
        with pytest.raises(OAKitError, match=r"n_bootstrap: .*; expected a whole number >= 0"):
            ProgressionModel(estimator="logistic", columns=LOGISTIC_COLUMNS, n_bootstrap=bad).fit(X, y)


def test_interval_level_must_be_a_probability(booted, data):
    _, (Xt, _, _) = data
    for bad in (0, 1, 1.5, "0.9"):
        with pytest.raises(OAKitError, match=r"level: .*; expected a number between 0 and 1"):
            booted.predict_interval(Xt, level=bad)


def test_bootstrap_with_single_class_out_of_bag_is_an_error():
    """Events in one participant only: no draw has them both in and out of the bag, so the redraws give up."""
    groups = np.repeat([f"p{i}" for i in range(30)], 2)
    y = (groups == "p0").astype(int)
    with pytest.raises(
        OAKitError, match=r"n_bootstrap: 20 draws of seed 7 left in-bag or out-of-bag knees .*12 months"
    ):
        ProgressionModel(horizon_months=12)._usable_draw(y, groups, 7)
    rows, oob = ProgressionModel()._usable_draw(np.tile([0, 1], 30), groups, 7)
    assert len(rows) == 60 and oob.any()


@pytest.mark.parametrize("estimator", ["lightgbm", "logistic"])
def test_save_load_gives_identical_intervals(tmp_path, data, booted, estimator):
    (X, y, _), (Xt, _, _) = data
    model = booted
    if estimator == "logistic":
        model = ProgressionModel(
            estimator=estimator, columns=LOGISTIC_COLUMNS, calibration="isotonic", n_bootstrap=5
        ).fit(X, y)
    folder = save_model(model, tmp_path / "model")
    loaded = load_model(folder)
    assert np.array_equal(loaded.predict_interval(Xt), model.predict_interval(Xt))
    assert loaded.bootstrap_seeds_ == model.bootstrap_seeds_
    listed = json.loads((folder / "checksums.json").read_text())
    boosters = sorted(p.name for p in folder.glob("bootstrap_*.txt"))
    assert boosters == ([f"bootstrap_{b:03d}.txt" for b in range(20)] if estimator == "lightgbm" else [])
    assert set(boosters) <= set(listed)
    if boosters:  # an edited refit is caught by the checksum list
        (folder / boosters[-1]).write_text((folder / boosters[-1]).read_text().replace("tree", "tree ", 1))
        with pytest.raises(OAKitError, match=r"bootstrap_019.txt: sha256 \w+… does not match"):
            load_model(folder)


def test_folder_saved_without_bootstrap_field_still_loads(tmp_path, fitted, data):
    """Folders written before bootstrap refits existed have no 'bootstrap' field and no n_bootstrap parameter."""
    _, (Xt, _, _) = data
    folder = save_model(fitted, tmp_path / "model")
    meta = json.loads((folder / "metadata.json").read_text())
    del meta["bootstrap"], meta["params"]["n_bootstrap"]
    (folder / "metadata.json").write_text(json.dumps(meta))
    write_checksums(folder, ["model.txt", "metadata.json"])
    loaded = load_model(folder)
    assert loaded.bootstrap_ == [] and np.array_equal(loaded.predict_proba(Xt), fitted.predict_proba(Xt))
    with pytest.raises(OAKitError, match="fitted with n_bootstrap=0"):
        loaded.predict_interval(Xt)
