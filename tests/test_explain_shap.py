"""SHAP explanations: additivity, grouped additivity, LightGBM cross-check, interactions, text and plotly figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from test_progression_fixtures import make_knee_table

from oa_kit.errors import OAKitError
from oa_kit.explain import (
    beeswarm_data,
    dependence_data,
    describe_feature,
    explain_text,
    family_text,
    global_importance,
    grouped_shap,
    interaction_values,
    lightgbm_contributions,
    shap_values,
    waterfall_data,
)
from oa_kit.progression import ProgressionModel, load_model, save_model
from oa_kit.viz import progression as vp
from oa_kit.viz import shap_plots

GRID = [{"num_leaves": 8, "n_estimators": 60, "learning_rate": 0.1, "min_child_samples": 5}]


@pytest.fixture(scope="module")
def model_and_data():
    X, y, _ = make_knee_table(80, seed=0)
    return ProgressionModel(param_grid=GRID).fit(X, y), X.head(60)


@pytest.fixture(scope="module")
def result(model_and_data):
    model, X = model_and_data
    return shap_values(model, X)


def test_shap_additivity_to_raw_log_odds(model_and_data, result):
    model, X = model_and_data
    assert result.values.shape == (len(X), len(model.feature_names_))
    np.testing.assert_allclose(result.raw_output(), model.decision_function(X), atol=1e-6)


def test_grouped_shap_adds_up_per_family(model_and_data, result):
    model, X = model_and_data
    grouped = grouped_shap(result)
    total = grouped[["clinical", "radiograph", "mri"]].sum(axis=1) + grouped["base_value"]
    np.testing.assert_allclose(total, model.decision_function(X), atol=1e-6)
    np.testing.assert_allclose(grouped["raw_output"], model.decision_function(X), atol=1e-6)
    mri = [f for f, fam in model.feature_families_.items() if fam == "mri"]
    np.testing.assert_allclose(grouped["mri"], result.values[mri].sum(axis=1))
    assert list(grouped.columns[:2]) == ["participant_id", "side"]


def test_cross_check_with_lightgbm_pred_contrib(model_and_data, result):
    model, X = model_and_data
    contrib = lightgbm_contributions(model, X)
    np.testing.assert_allclose(contrib.drop(columns="expected_value").to_numpy(), result.values.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(contrib["expected_value"], result.base_values, atol=1e-6)


def test_explanations_survive_save_and_load(tmp_path, model_and_data, result):
    model, X = model_and_data
    loaded = load_model(save_model(model, tmp_path / "m"))
    np.testing.assert_allclose(shap_values(loaded, X).values.to_numpy(), result.values.to_numpy())


def test_nullable_dtypes_are_cast_to_float(model_and_data, result):
    model, X = model_and_data
    X2 = X.astype({"injury": "Int64", "kl": "Int64", "surgery": "boolean"})
    np.testing.assert_allclose(shap_values(model, X2).values.to_numpy(), result.values.to_numpy())


def test_importance_interactions_and_plot_data(model_and_data, result):
    model, X = model_and_data
    imp = global_importance(result)
    assert imp["mean_abs_shap"].is_monotonic_decreasing and set(imp["family"]) <= {"clinical", "radiograph", "mri"}
    inter = interaction_values(model, X, max_rows=30)
    clinical = {f for f, fam in model.feature_families_.items() if fam == "clinical"}
    assert set(inter["feature_a"]) | set(inter["feature_b"]) <= clinical
    assert (inter["feature_a"] != inter["feature_b"]).all() and (inter["mean_abs_interaction"] >= 0).all()
    with pytest.raises(OAKitError, match="not a model feature"):
        interaction_values(model, X, features=["shoe_size"])
    wf = waterfall_data(result, 0, top_k=5)
    assert len(wf) == 6 and wf["shap"].sum() == pytest.approx(result.values.iloc[0].sum())
    bee = beeswarm_data(result, top_k=4)
    assert bee["feature"].nunique() == 4 and bee["value_scaled"].between(0, 1).all()
    assert list(dependence_data(result, "bmi", "age").columns) == ["value", "shap", "color"]


def test_logistic_models_are_rejected_for_tree_shap(model_and_data):
    _, X = model_and_data
    X2, y, _ = make_knee_table(40, seed=1)
    lr = ProgressionModel(estimator="logistic", columns=["age", "kl"]).fit(X2, y)
    with pytest.raises(OAKitError, match="not a fitted LightGBM"):
        shap_values(lr, X)


def test_plain_language_text():
    values = pd.Series(
        {
            "bmi": 34.2,
            "injury": 0.0,
            "age": 61.0,
            "site_A": 0.0,
            "site_C": 1.0,
            "sex_M": 0.0,
            "kl_emb_pc01": 1.0,
            "kl_emb_pc02": -2.0,
        }
    )
    shap = pd.Series(
        {
            "bmi": 0.40,
            "injury": -0.20,
            "age": 0.01,
            "site_A": 0.02,
            "site_C": 0.01,
            "sex_M": 0.03,
            "kl_emb_pc01": 0.5,
            "kl_emb_pc02": -0.3,
        }
    )
    assert explain_text(shap, values, top_k=2) == "BMI 34 raised the risk; no prior injury lowered it."
    text = explain_text(shap, values, top_k=5, min_abs=0.02)
    assert "the radiograph image features raised it" in text and "female sex raised it" in text
    assert "Study site C raised the risk" in explain_text(shap.where(shap.index.str.startswith("site"), 0) * 10, values)
    assert explain_text(shap * 0, values) == "No single factor changed the risk much from the average."
    assert describe_feature("injury", 1.0) == "prior knee injury"
    assert describe_feature("jsw_medial_mm", 3.14) == "medial joint space 3.1 mm"
    assert describe_feature("thickness_mm_tibial_medial", 1.87) == "tibial medial cartilage thickness 1.9 mm"
    assert describe_feature("xr_osteophyte_mm_FM", 3.79) == "femoral medial osteophyte 3.8 mm"
    assert describe_feature("osteophyte_area_mm2_tl", 2.34) == "tibial lateral osteophyte area 2.3 mm²"
    assert describe_feature("osteophyte_resid_z", 0.84) == "osteophytes large for their grade (+0.8 SD)"
    assert (
        describe_feature("jsw_medial_resid_z", -1.24)
        == "medial joint space narrower than expected for sex and JSN (-1.2 SD)"
    )
    assert (
        describe_feature("thickness_loss_medial", 0.12)
        == "medial weight-bearing cartilage 12% thinner than typical for sex"
    )
    assert describe_feature("thickness_loss_max", -0.05) == "weight-bearing cartilage 5% thicker than typical for sex"
    assert describe_feature("jsw_lateral_x700_mm", 6.04) == "lateral joint space at x=0.700 6.0 mm"
    fam = family_text(pd.Series({"clinical": 0.3, "radiograph": 0.8, "mri": -0.5}))
    assert fam == "radiograph findings +0.80, MRI cartilage -0.50, clinical factors +0.30 (log-odds)"


def test_plotly_figures(model_and_data, result):
    model, X = model_and_data
    grouped = grouped_shap(result)
    figs = [
        shap_plots.importance_figure(result, note="synthetic"),
        shap_plots.grouped_figure(grouped, 0),
        shap_plots.beeswarm_figure(result),
        shap_plots.waterfall_figure(result, 1),
        shap_plots.dependence_figure(result, "age", "bmi"),
    ]
    assert all(isinstance(f, go.Figure) for f in figs)
    assert isinstance(figs[3].data[0], go.Waterfall)
    assert "synthetic" in figs[0].layout.title.text
    preds = pd.DataFrame(
        {"model": "fused", "label": make_knee_table(80, seed=0)[1][:60], "risk": model.predict_proba(X)[:, 1]}
    )
    for fig in (vp.roc_figure(preds), vp.calibration_figure(preds), vp.decision_curve_figure(preds)):
        assert isinstance(fig, go.Figure) and len(fig.data) >= 2
