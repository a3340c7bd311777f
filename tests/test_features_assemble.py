"""Feature assembly: families, in-fold embedding PCA, bad inputs, out-of-fold image features."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from test_progression_fixtures import make_knee_table

from oa_kit.errors import OAKitError
from oa_kit.features import FeatureAssembler, EmbeddingPCA, family_of, join_knee_tables, out_of_fold_predictions


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
    assert out.dtypes.map(lambda d: d == float).all()
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
    assert joined["kl_p0"].isna().sum() == 1                           # knee 1/L has no radiograph row
    with pytest.raises(OAKitError, match="appears twice"):
        join_knee_tables(pd.concat([clinical, clinical]))
    with pytest.raises(OAKitError, match="side: value 'X'"):
        join_knee_tables(clinical.assign(side="X"))
    with pytest.raises(OAKitError, match="clinical.side: column missing"):
        join_knee_tables(clinical.drop(columns="side"))


def test_out_of_fold_predictions_never_use_a_model_trained_on_the_knee():
    X, _, _ = make_knee_table(25, seed=8)
    seen: list[tuple[set, set]] = []

    def fit_predict(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
        seen.append((set(train["participant_id"]), set(test["participant_id"])))
        memory = dict(zip(train["participant_id"] + train["side"], train["bmi"]))
        return pd.DataFrame({"kl_p0": [memory.get(k, -1.0) for k in test["participant_id"] + test["side"]]})

    oof = out_of_fold_predictions(fit_predict, X, n_splits=5, seed=0)
    assert list(oof.index) == list(X.index)
    assert (oof["kl_p0"] == -1.0).all()                 # a memorising model never saw the knee it predicts
    assert all(not (tr & te) for tr, te in seen)
    assert sorted(oof["oof_fold"].unique()) == [0, 1, 2, 3, 4]
    both = oof.groupby(X["participant_id"])["oof_fold"].nunique()
    assert (both == 1).all()                            # both knees of a participant in one fold


def test_synthetic_cohort_tables_assemble_end_to_end(tmp_path):
    """OAI-style files written by the synthetic generator → cohort tables → labels → joined, assembled features."""
    from oa_kit.cohort.labels import build_progression_labels
    from oa_kit.cohort.tables import load_oai_tables
    from oa_kit.features import reading_features
    from oa_kit.progression.pipeline import labelled_rows
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
        warnings.simplefilter("ignore", UserWarning)              # tiny cohort: some constant columns
        asm = FeatureAssembler(on_nan_heavy="keep").fit(X)
    fam = asm.feature_families_
    assert fam.get("kl") == "radiograph" and "race" not in fam and "clinical_status" not in fam
    assert any(v == "clinical" for v in fam.values())
    assert asm.transform(X).shape == (len(X), len(asm.feature_names_out_))


def test_image_table_columns_keep_their_family_through_the_join():
    clinical = pd.DataFrame({"participant_id": ["1", "2"], "side": ["R", "R"], "age": [60, 70]})
    mri = pd.DataFrame({"participant_id": ["1", "2"], "side": ["R", "R"], "covered_area_mm2_patellar": [100.0, 90.0],
                        "signal_ratio": [1.0, 1.1], "thickness_mm_mean_patellar": [2.0, 1.9],
                        "qc_cartilage_entropy": [0.1, 0.2], "source_file": ["a.nii.gz", "b.nii.gz"]})
    xr = pd.DataFrame({"participant_id": ["1", "2"], "side": ["R", "R"], "p0": [0.9, 0.1], "sharpness": [3.0, 4.0]})
    joined = join_knee_tables(clinical, radiograph=xr, mri=mri)
    assert {"mri_signal_ratio", "thickness_mm_mean_patellar", "covered_area_mm2_patellar", "xr_sharpness",
            "kl_p0"} <= set(joined.columns)
    asm = FeatureAssembler().fit(joined)
    assert asm.feature_families_["mri_signal_ratio"] == "mri" and asm.feature_families_["xr_sharpness"] == "radiograph"
    assert asm.feature_families_["covered_area_mm2_patellar"] == "mri"
    assert not any(c.startswith(("qc_", "source", "mri_qc", "mri_source")) for c in asm.feature_names_out_)
