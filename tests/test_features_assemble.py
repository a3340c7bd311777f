"""Feature assembly: families, in-fold embedding PCA, bad inputs, out-of-fold image features."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from test_progression_fixtures import make_knee_table

from oa_kit.errors import OAKitError
from oa_kit.features import EmbeddingPCA, FeatureAssembler, family_of, join_knee_tables, out_of_fold_predictions
from oa_kit.features.assemble import DerivedFeatures
from oa_kit.features.schema import feature_columns


def test_families_cover_every_output_feature():
    X, _, _ = make_knee_table(40, seed=0)
    asm = FeatureAssembler(n_components=3).fit(X)
    out = asm.transform(X)
    assert list(out.columns) == asm.feature_names_out_
    assert set(asm.feature_families_) == set(out.columns)
    assert asm.feature_families_["bmi"] == "clinical"
    assert asm.feature_families_["kl"] == "radiograph"
    assert asm.feature_families_["kl_p3"] == "radiograph"
    assert asm.feature_families_["kl_emb_pc01"] == "radiograph"
    assert asm.feature_families_["mri_emb_pc03"] == "mri"
    assert asm.feature_families_["thickness_mm_tibial_medial"] == "mri"
    assert asm.feature_families_["site_B"] == "clinical"
    assert not any(c.startswith(("kl_emb_0", "mri_emb_0")) for c in out.columns)  # raw embeddings replaced
    assert "participant_id" not in out.columns and "race" not in out.columns
    assert out.dtypes.map(lambda d: d == np.dtype(float)).all()
    assert family_of("jsn_medial") == "radiograph" and family_of("womac_pain") == "clinical"


def test_embedding_pca_is_fitted_on_training_rows_only():
    X, _, _ = make_knee_table(60, seed=1)
    train, test = X.iloc[:60], X.iloc[60:]
    pca = EmbeddingPCA(n_components=2).fit(train)
    cols = [c for c in X.columns if c.startswith("kl_emb_")]
    assert np.allclose(pca.blocks_["kl_emb_"]["mean"], train[cols].mean().to_numpy())
    assert not np.allclose(pca.blocks_["kl_emb_"]["mean"], X[cols].mean().to_numpy())
    # transforming the held-out rows does not change the fitted state
    before = np.asarray(pca.blocks_["kl_emb_"]["components"]).copy()
    pca.transform(test)
    assert np.array_equal(before, np.asarray(pca.blocks_["kl_emb_"]["components"]))


def test_incomplete_embedding_gives_missing_components():
    X, _, _ = make_knee_table(30, seed=2)
    X.loc[3, "mri_emb_004"] = np.nan
    out = FeatureAssembler(n_components=2).fit(X).transform(X)
    assert out.loc[3, ["mri_emb_pc01", "mri_emb_pc02"]].isna().all()
    assert out.loc[4, ["mri_emb_pc01", "mri_emb_pc02"]].notna().all()


def test_missing_required_column_names_it():
    X, _, _ = make_knee_table(30, seed=3)
    asm = FeatureAssembler().fit(X)
    with pytest.raises(OAKitError, match="bmi: feature column missing"):
        asm.transform(X.drop(columns="bmi"))
    with pytest.raises(OAKitError, match="womac_total: feature column missing"):
        FeatureAssembler(columns=["age", "womac_total"]).fit(X)


def test_nan_heavy_rows_error_or_kept():
    X, _, _ = make_knee_table(30, seed=4)
    X.loc[5, [c for c in X.columns if c not in ("participant_id", "side", "age")]] = np.nan
    with pytest.raises(OAKitError, match=r"knee 9000002/L: .* of features missing"):
        FeatureAssembler().fit(X)
    out = FeatureAssembler(on_nan_heavy="keep").fit(X).transform(X)
    assert out.loc[5].isna().mean() > 0.5 and out.loc[6].notna().all()


def test_constant_features_are_dropped_with_warning_and_all_constant_is_an_error():
    X, _, _ = make_knee_table(30, seed=5)
    X["surgery"] = 0
    with pytest.warns(UserWarning, match="constant"):
        asm = FeatureAssembler().fit(X)
    assert asm.dropped_constant_ == ["surgery"] and "surgery" not in asm.feature_names_out_
    const = pd.DataFrame({"participant_id": ["1", "2", "3"], "side": ["R"] * 3, "age": [60.0] * 3})
    with pytest.raises(OAKitError, match="all 1 features are constant"):
        FeatureAssembler().fit(const)


def test_text_columns_encode_with_fit_levels_and_non_numbers_fail():
    X, _, _ = make_knee_table(30, seed=6)
    asm = FeatureAssembler(columns=["age", "sex", "site"]).fit(X)
    assert "sex_M" in asm.feature_names_out_ and "sex_F" not in asm.feature_names_out_
    new = X.head(2).assign(site="Z")
    assert (asm.transform(new)[[c for c in asm.feature_names_out_ if c.startswith("site_")]] == 0).all().all()
    with pytest.raises(OAKitError, match="bmi: non-numeric"):
        FeatureAssembler(columns=["age", "bmi"]).fit(X).transform(X.assign(bmi="heavy"))
    with pytest.raises(OAKitError, match="participant_code: 30 text levels"):
        FeatureAssembler(columns=["age", "participant_code"]).fit(X.assign(participant_code=X["participant_id"]))


def test_round_trip_of_assembler_state_is_json_and_identical():
    import json

    X, _, _ = make_knee_table(30, seed=7)
    asm = FeatureAssembler(n_components=2).fit(X)
    again = FeatureAssembler.from_dict(json.loads(json.dumps(asm.to_dict())))
    pd.testing.assert_frame_equal(asm.transform(X), again.transform(X))


def test_join_knee_tables_renames_and_validates():
    clinical = pd.DataFrame({"ID": [1, 1, 2], "side": ["R", "L", "R"], "age": [60, 60, 70], "visit_month": 0})
    kl = pd.DataFrame({"participant_id": ["1", "2"], "side": ["R", "R"], "p0": [0.5, 0.1], "p1": [0.5, 0.9]})
    joined = join_knee_tables(clinical, radiograph=kl)
    assert {"kl_p0", "kl_p1", "participant_id"} <= set(joined.columns)
    assert joined["kl_p0"].isna().sum() == 1  # knee 1/L has no radiograph row
    with pytest.raises(OAKitError, match="appears twice"):
        join_knee_tables(pd.concat([clinical, clinical]))
    with pytest.raises(OAKitError, match="side: value 'X'"):
        join_knee_tables(clinical.assign(side="X"))
    with pytest.raises(OAKitError, match="clinical.side: column missing"):
        join_knee_tables(clinical.drop(columns="side"))


def test_mri_biomarkers_of_a_knee_that_failed_qc_are_not_used():
    clinical = pd.DataFrame({"participant_id": ["1", "1", "2"], "side": ["R", "L", "R"], "age": [60, 60, 70]})
    mri = pd.DataFrame(
        {
            "participant_id": ["1", "1", "2"],
            "side": ["R", "L", "R"],
            "thickness_mm_mean_femoral_medial_central": [2.1, 9.5, 1.8],
            "mri_emb_000": [0.3, 0.7, 0.1],
            "qc_usable": [True, False, True],
            "qc_reasons": ["", "volume_implausible: femoral_cartilage", ""],
        }
    )
    joined = join_knee_tables(clinical, mri=mri).set_index(["participant_id", "side"])
    failed = joined.loc[("1", "L")]
    assert np.isnan(failed["thickness_mm_mean_femoral_medial_central"]) and np.isnan(failed["mri_emb_000"])
    assert joined.loc[("1", "R"), "thickness_mm_mean_femoral_medial_central"] == 2.1
    assert failed["age"] == 60  # the knee stays, without its MRI


def test_out_of_fold_predictions_never_use_a_model_trained_on_the_knee():
    X, _, _ = make_knee_table(25, seed=8)
    seen: list[tuple[set, set]] = []

    def fit_predict(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
        seen.append((set(train["participant_id"]), set(test["participant_id"])))
        memory = dict(zip(train["participant_id"] + train["side"], train["bmi"]))
        return pd.DataFrame({"kl_p0": [memory.get(k, -1.0) for k in test["participant_id"] + test["side"]]})

    oof = out_of_fold_predictions(fit_predict, X, n_splits=5, seed=0)
    assert list(oof.index) == list(X.index)
    assert (oof["kl_p0"] == -1.0).all()  # a memorising model never saw the knee it predicts
    assert all(not (tr & te) for tr, te in seen)
    assert sorted(oof["oof_fold"].unique()) == [0, 1, 2, 3, 4]
    both = oof.groupby(X["participant_id"])["oof_fold"].nunique()
    assert (both == 1).all()  # both knees of a participant in one fold


def test_synthetic_cohort_tables_assemble_end_to_end(tmp_path):
    """OAI-style files written by the synthetic generator → cohort tables → labels → joined, assembled features."""
    from oa_kit.cohort.labels import build_progression_labels
    from oa_kit.cohort.tables import load_oai_tables
    from oa_kit.features import reading_features
    from oa_kit.progression.training_data import labelled_rows
    from oa_kit.synth import generate_cohort

    folder = generate_cohort(preset="tiny", out=tmp_path / "tiny", seed=0, images=False, progress=False)
    tables = load_oai_tables(folder)
    readings = reading_features(tables.readings)
    assert {"participant_id", "side", "kl"} <= set(readings.columns)
    assert not any(c.endswith(("_status", "readprj")) for c in readings.columns)
    joined = join_knee_tables(tables.clinical, readings)
    labels = build_progression_labels(tables.readings, (24,), deaths=tables.deaths, replacements=tables.replacements)
    X, y = labelled_rows(joined, labels.labels, 24)
    assert len(X) == len(y) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tiny cohort: some constant columns
        asm = FeatureAssembler(on_nan_heavy="keep").fit(X)
    fam = asm.feature_families_
    assert fam.get("kl") == "radiograph" and "race" not in fam and "clinical_status" not in fam
    assert any(v == "clinical" for v in fam.values())
    assert asm.transform(X).shape == (len(X), len(asm.feature_names_out_))


def test_image_table_columns_keep_their_family_through_the_join():
    clinical = pd.DataFrame({"participant_id": ["1", "2"], "side": ["R", "R"], "age": [60, 70]})
    mri = pd.DataFrame(
        {
            "participant_id": ["1", "2"],
            "side": ["R", "R"],
            "covered_area_mm2_patellar": [100.0, 90.0],
            "signal_ratio": [1.0, 1.1],
            "thickness_mm_mean_patellar": [2.0, 1.9],
            "qc_cartilage_entropy": [0.1, 0.2],
            "source_file": ["a.nii.gz", "b.nii.gz"],
        }
    )
    xr = pd.DataFrame({"participant_id": ["1", "2"], "side": ["R", "R"], "p0": [0.9, 0.1], "sharpness": [3.0, 4.0]})
    joined = join_knee_tables(clinical, radiograph=xr, mri=mri)
    assert {
        "mri_signal_ratio",
        "thickness_mm_mean_patellar",
        "covered_area_mm2_patellar",
        "xr_sharpness",
        "kl_p0",
    } <= set(joined.columns)
    asm = FeatureAssembler().fit(joined)
    assert asm.feature_families_["mri_signal_ratio"] == "mri" and asm.feature_families_["xr_sharpness"] == "radiograph"
    assert asm.feature_families_["covered_area_mm2_patellar"] == "mri"
    assert not any(c.startswith(("qc_", "source", "mri_qc", "mri_source")) for c in asm.feature_names_out_)


def _knee_measurements(n: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-knee readings shaped like the demo feature table: sex, JSN, Duryea JSW profile, segmented thickness.

    JSW (mm) = 5.2 − 0.6·female − 1.3·JSN + noise, with 0.5·z extra narrowing in one knee in two; thickness falls
    with z. Returns the table and z.
    """
    rng = np.random.default_rng(seed)
    female = rng.integers(0, 2, n)
    jsn_m, jsn_l = rng.integers(0, 3, n), rng.integers(0, 2, n)
    z = rng.normal(size=n)
    medial = 5.2 - 0.6 * female - 1.3 * jsn_m - 0.5 * z * (np.arange(n) % 2 == 0) + rng.normal(0, 0.1, n)
    table = pd.DataFrame(
        {
            "participant_id": [f"p{i // 2}" for i in range(n)],
            "side": np.tile(["R", "L"], n // 2),
            "sex": np.where(female == 1, "F", "M"),
            "age": rng.uniform(45, 79, n),
            "kl": jsn_m,
            "jsn_medial": jsn_m,
            "jsn_lateral": jsn_l,
            "jsw_medial_mm": medial,
        }
    )
    for x in (700, 800, 900):
        table[f"jsw_lateral_x{x}_mm"] = 6.0 - 0.6 * female - 1.3 * jsn_l + rng.normal(0, 0.2, n) + x / 1000
    for region in ("femoral_medial_central", "tibial_medial", "femoral_lateral_central", "tibial_lateral", "patellar"):
        table[f"thickness_mm_mean_{region}"] = (2.3 - 0.3 * female) * (1 - 0.09 * z) + rng.normal(0, 0.02, n)
        table[f"volume_mm3_{region}"] = 900 * table[f"thickness_mm_mean_{region}"]
    return table, z


def test_derived_features_are_fitted_on_training_rows_only():
    table, z = _knee_measurements()
    train, test = table.iloc[:120], table.iloc[120:].copy()
    derived = DerivedFeatures().fit(train)
    female = train["sex"] == "F"
    med = derived.thickness_medians_["thickness_mm_mean_tibial_medial"]
    assert med["female"] == pytest.approx(train.loc[female, "thickness_mm_mean_tibial_medial"].median())
    assert med["male"] == pytest.approx(train.loc[~female, "thickness_mm_mean_tibial_medial"].median())
    coef = derived.jsw_fits_["medial"]["coef"]
    assert coef[1] == pytest.approx(-0.6, abs=0.15) and coef[2] == pytest.approx(-1.3, abs=0.1)
    before = derived.transform(test)
    test["thickness_mm_mean_tibial_medial"] *= 10  # test rows never move the fitted references
    assert DerivedFeatures().fit(train).to_dict() == derived.to_dict()
    assert (derived.transform(test)["thickness_loss_medial"] < before["thickness_loss_medial"]).all()
    out = derived.transform(table)
    assert list(out.columns) == [
        "jsw_medial_resid_z",
        "jsw_lateral_resid_z",
        "jsw_min_resid_z",
        "thickness_loss_medial",
        "thickness_loss_lateral",
        "thickness_loss_max",
    ]
    assert np.corrcoef(out["jsw_medial_resid_z"][::2], z[::2])[0, 1] < -0.9  # narrowing beyond the grade
    assert np.corrcoef(out["thickness_loss_medial"], z)[0, 1] > 0.9
    assert (out["jsw_min_resid_z"] <= out[["jsw_medial_resid_z", "jsw_lateral_resid_z"]].min(axis=1) + 1e-12).all()


def test_osteophyte_size_beyond_grade_tracks_the_size_factor_and_is_fitted_on_training_rows():
    rng = np.random.default_rng(4)
    n = 300
    table, _ = _knee_measurements(n, seed=4)
    o = rng.standard_normal(n)  # knee-level spur size factor beyond the grades
    for k, margin in enumerate(("fm", "fl", "tm", "tl")):
        grade = rng.integers(0, 4, n) if k else np.minimum(rng.integers(0, 5, n), 3)
        table[f"osteophyte_{margin}"] = grade.astype(float)
        area = (2.0 + 6.0 * grade) * np.exp(0.35 * o + rng.normal(0, 0.1, n))
        table[f"osteophyte_area_mm2_{margin}"] = area
        table[f"osteophyte_mm_{margin}"] = np.sqrt(area)
    table.loc[5, "osteophyte_area_mm2_fm"] = np.nan  # one margin unmeasured: the others still count
    table.loc[6, [f"osteophyte_{m}" for m in ("fm", "fl", "tm", "tl")]] = np.nan  # never graded: no value
    train, test = table.iloc[:200], table.iloc[200:].copy()
    derived = DerivedFeatures().fit(train)
    assert set(derived.osteophyte_fits_) == {f"osteophyte_area_mm2_{m}" for m in ("fm", "fl", "tm", "tl")}
    out = derived.transform(table)["osteophyte_resid_z"]
    assert np.corrcoef(out.drop(index=6), np.delete(o, 6))[0, 1] > 0.95
    assert np.isfinite(out[5]) and np.isnan(out[6])
    test["osteophyte_area_mm2_tm"] *= 100  # test rows never move the fitted references
    assert DerivedFeatures().fit(train).to_dict() == derived.to_dict()
    assert (
        derived.transform(test)["osteophyte_resid_z"] > derived.transform(table.iloc[200:])["osteophyte_resid_z"]
    ).all()
    asm = FeatureAssembler(derived="replace", n_components=2).fit(train)
    assert (
        "osteophyte_resid_z" in asm.feature_names_out_ and asm.feature_families_["osteophyte_resid_z"] == "radiograph"
    )
    assert not any(c.startswith(("osteophyte_mm_", "osteophyte_area_mm2_")) for c in asm.feature_names_out_)
    assert "osteophyte_fm" in asm.feature_names_out_  # the grades themselves stay
    with pytest.raises(OAKitError, match="osteophyte_area_mm2_tl"):
        derived.transform(table.drop(columns="osteophyte_area_mm2_tl"))


def test_derived_replace_keeps_summaries_drops_raw_inputs_and_round_trips():
    import json

    table, _ = _knee_measurements(120, seed=1)
    table.loc[3, ["jsw_medial_mm", "thickness_mm_mean_tibial_medial"]] = np.nan
    asm = FeatureAssembler(derived="replace", n_components=2).fit(table)
    names = asm.feature_names_out_
    assert "jsw_min_resid_z" in names and "thickness_loss_max" in names
    assert not any(n.startswith(("jsw_lateral_x", "thickness_mm", "volume_mm3")) or n == "jsw_medial_mm" for n in names)
    assert asm.feature_families_["jsw_min_resid_z"] == "radiograph"
    assert asm.feature_families_["thickness_loss_medial"] == "mri"
    out = asm.transform(table)
    assert np.isnan(out.loc[3, "jsw_medial_resid_z"]) and np.isfinite(out.loc[3, "jsw_min_resid_z"])
    again = FeatureAssembler.from_dict(json.loads(json.dumps(asm.to_dict())))
    pd.testing.assert_frame_equal(out, again.transform(table))
    added = FeatureAssembler(derived="add", n_components=2).fit(table).feature_names_out_
    assert set(names) < set(added) and "jsw_lateral_x800_mm" in added
    with pytest.raises(OAKitError, match="derived"):
        FeatureAssembler(derived="yes").fit(table)


def test_truth_columns_of_a_synthetic_cohort_never_become_features():
    """Generator truth joined onto a feature table by mistake is still never a default feature."""
    X, _, _ = make_knee_table(20, seed=0)
    truth = X[["participant_id", "side"]].assign(
        image_cartilage_z=0.1,
        image_osteophyte_z=0.2,
        image_jsw_z=0.3,
        p_progress_24=0.4,
        latent_severity=1.0,
        progression_rate_per_year=0.1,
        kl_true_V00=2,
        unmeasured_log_rate=0.0,
        log_rate_image=0.0,
        event_month_true=12.0,
        tkr_month=np.nan,
        kl_increment_1_month=6.0,
        eligible=True,
    )
    columns = feature_columns(X.merge(truth, on=["participant_id", "side"]).columns)
    assert not set(truth.columns) & set(columns)
    asm = FeatureAssembler(n_components=2, derived="replace").fit(X.merge(truth, on=["participant_id", "side"]))
    assert not any(name.startswith(tuple(truth.columns)) for name in asm.feature_names_out_)
