"""``oa-kit progression fit|evaluate|predict|explain`` on CSV/parquet tables, and its one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_progression_fixtures import make_knee_table

import oa_kit.cli
from oa_kit.api import fit_progression, knee_risk
from oa_kit.cli import main
from oa_kit.workflows.progression import read_features


@pytest.fixture(autouse=True)
def only_progression_subcommand(monkeypatch):
    """Build the real ``oa-kit`` parser with just this subcommand (other subcommands import torch: slow)."""
    monkeypatch.setattr(oa_kit.cli, "SUBCOMMAND_MODULES", ("oa_kit.cli.progression",))


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("progression_cli")
    X, y, p = make_knee_table(60, seed=0)
    clinical_cols = [
        "participant_id",
        "side",
        "site",
        "sex",
        "age",
        "bmi",
        "injury",
        "surgery",
        "womac_pain",
        "kl",
        "jsw_medial_mm",
    ]
    X[clinical_cols].assign(visit_month=0).to_csv(folder / "clinical.csv", index=False)
    X[["participant_id", "side"] + [c for c in X.columns if c.startswith(("kl_p", "kl_emb"))]].rename(
        columns={f"kl_p{k}": f"p{k}" for k in range(5)}
    ).to_parquet(folder / "kl.parquet")
    X[["participant_id", "side"] + [c for c in X.columns if c.startswith(("mri_", "thickness", "volume"))]].to_parquet(
        folder / "mri.parquet"
    )
    labels = pd.concat([X[["participant_id", "side"]].assign(horizon_months=h, label=y) for h in (12, 24)])
    labels.to_parquet(folder / "labels.parquet")
    X[["participant_id", "side"]].assign(p_progress_24=p).rename(columns={"participant_id": "ID"}).to_parquet(
        folder / "truth.parquet"
    )
    return folder


def _inputs(folder):
    return [
        "--features",
        str(folder / "clinical.csv"),
        "--radiograph",
        str(folder / "kl.parquet"),
        "--mri",
        str(folder / "mri.parquet"),
    ]


def test_fit_predict_explain(tables, tmp_path, capsys):
    assert (
        main(
            [
                "progression",
                "fit",
                *_inputs(tables),
                "--labels",
                str(tables / "labels.parquet"),
                "--horizons",
                "12",
                "24",
                "--out",
                str(tmp_path / "models"),
                "--data",
                "synthetic",
                "--search",
                "quick",
            ]
        )
        == 0
    )
    assert (tmp_path / "models" / "h12" / "model.txt").exists() and (
        tmp_path / "models" / "h24" / "checksums.json"
    ).exists()
    assert (
        main(
            [
                "progression",
                "predict",
                *_inputs(tables),
                "--model",
                str(tmp_path / "models"),
                "--out",
                str(tmp_path / "risk.csv"),
            ]
        )
        == 0
    )
    risk = pd.read_csv(tmp_path / "risk.csv")
    assert len(risk) == 2 * 120 and set(risk["horizon_months"]) == {12, 24}
    assert (risk["provenance"] == "trained on synthetic data — not a clinical estimate").all()
    assert risk[["risk_low", "risk_high"]].isna().all().all()  # fitted without --bootstrap: no interval
    assert (
        main(
            [
                "progression",
                "explain",
                *_inputs(tables),
                "--model",
                str(tmp_path / "models" / "h24"),
                "--out",
                str(tmp_path / "explain"),
            ]
        )
        == 0
    )
    text = pd.read_csv(tmp_path / "explain" / "explanations_h24.csv")
    assert text["explanation"].str.contains("the risk").all() and text["by_family"].str.contains("log-odds").all()
    grouped = pd.read_csv(tmp_path / "explain" / "shap_grouped_h24.csv")
    assert (
        grouped[["clinical", "radiograph", "mri", "base_value"]].sum(axis=1) - grouped["raw_output"]
    ).abs().max() < 1e-6
    assert (tmp_path / "explain" / "waterfall_first_knee_h24.html").exists()
    assert "not a clinical estimate" in capsys.readouterr().out


def test_evaluate_writes_cards_and_headline(tables, tmp_path, capsys):
    assert (
        main(
            [
                "progression",
                "evaluate",
                *_inputs(tables),
                "--labels",
                str(tables / "labels.parquet"),
                "--horizons",
                "24",
                "--out",
                str(tmp_path / "report"),
                "--n-splits",
                "3",
                "--n-resamples",
                "100",
                "--no-site-held-out",
                "--oracle",
                str(tables / "truth.parquet"),
                "--data",
                "synthetic",
                "--search",
                "quick",
                "--fit-final",
                "--bootstrap",
                "4",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "fused" in out and "oracle_auc" in out
    assert (tmp_path / "report" / "models" / "h24" / "model.txt").exists()
    assert len(list((tmp_path / "report" / "models" / "h24").glob("bootstrap_*.txt"))) == 4  # the final model only
    text = pd.read_csv(tmp_path / "report" / "explain" / "explanations_h24.csv")
    assert (text["risk_low"] <= text["risk_high"]).all() and text["risk_low"].notna().all()
    head = pd.read_csv(tmp_path / "report" / "headline.csv")
    # oracle row from the truth table; no latent reference: this truth table has no image latents
    assert list(head["model"]) == [
        "clinical",
        "kl",
        "kl_ordinal",
        "clinical_kl",
        "clinical_radiograph",
        "fused",
        "oracle",
    ]
    assert (tmp_path / "report" / "model_card_h24.md").exists()


def test_evaluate_in_worker_processes_gives_the_same_tables(tables, tmp_path):
    from oa_kit.api import QUICK_GRID
    from oa_kit.workflows.progression import progression_report, read_features

    args = [
        "--labels",
        str(tables / "labels.parquet"),
        "--horizons",
        "12",
        "24",
        "--n-splits",
        "3",
        "--n-resamples",
        "50",
        "--no-site-held-out",
        "--search",
        "quick",
        "--data",
        "synthetic",
    ]
    assert (
        main(["progression", "evaluate", *_inputs(tables), *args, "--out", str(tmp_path / "two"), "--jobs", "2"]) == 0
    )
    parsed = oa_kit.cli.build_parser().parse_args(["progression", "evaluate", *_inputs(tables), *args, "--out", "x"])
    serial = progression_report(
        read_features(parsed.features, parsed.radiograph, parsed.mri, parsed.visit_month),
        pd.read_parquet(tables / "labels.parquet"),
        tmp_path / "one",
        horizons=(12, 24),
        provenance=None,
        n_splits=3,
        n_resamples=50,
        site_held_out=False,
        fit_final=False,
        lightgbm_grid=QUICK_GRID,
        progress=False,
        n_jobs=1,
    )
    two = pd.read_csv(tmp_path / "two" / "headline.csv")
    pd.testing.assert_frame_equal(two.drop(columns="provenance"), serial.drop(columns="provenance"), check_dtype=False)
    assert sorted(p.name for p in (tmp_path / "two").glob("model_card_h*.md")) == [
        "model_card_h12.md",
        "model_card_h24.md",
    ]


def test_card_command_is_copy_pasteable(tables, tmp_path, monkeypatch):
    args = [
        "progression",
        "evaluate",
        *_inputs(tables),
        "--labels",
        str(tables / "labels.parquet"),
        "--horizons",
        "24",
        "--out",
        str(tmp_path / "r"),
        "--n-splits",
        "3",
        "--n-resamples",
        "20",
        "--no-site-held-out",
        "--search",
        "quick",
        "--data",
        "synthetic",
        "--cohort",
        "synthetic cohort (60 knees), seed 0",
    ]
    monkeypatch.setattr("sys.argv", ["/usr/bin/oa-kit", *args])
    assert main(args) == 0
    assert "--cohort 'synthetic cohort (60 knees), seed 0'" in (tmp_path / "r" / "model_card_h24.md").read_text()


def test_bad_inputs_are_one_line_errors(tables, tmp_path, capsys):
    labels = pd.read_parquet(tables / "labels.parquet")
    labels.drop(columns="label").to_csv(tmp_path / "nolabel.csv", index=False)
    assert (
        main(
            [
                "progression",
                "fit",
                *_inputs(tables),
                "--labels",
                str(tmp_path / "nolabel.csv"),
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 2
    )
    assert "labels.label: column missing" in capsys.readouterr().err
    extra = pd.concat(
        [labels, pd.DataFrame({"participant_id": ["999"], "side": ["R"], "horizon_months": [12], "label": [1]})]
    )
    extra.to_csv(tmp_path / "extra.csv", index=False)
    assert (
        main(
            [
                "progression",
                "fit",
                *_inputs(tables),
                "--labels",
                str(tmp_path / "extra.csv"),
                "--horizons",
                "12",
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 2
    )
    assert "no row for labelled knee 999/R" in capsys.readouterr().err
    assert (
        main(
            [
                "progression",
                "fit",
                *_inputs(tables),
                "--labels",
                str(tables / "labels.parquet"),
                "--horizons",
                "36",
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 2
    )
    assert "no rows for horizon 36" in capsys.readouterr().err
    assert (
        main(
            [
                "progression",
                "predict",
                "--features",
                str(tmp_path / "missing.csv"),
                "--model",
                str(tmp_path),
                "--out",
                str(tmp_path / "r.csv"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "missing.csv: file not found" in err and len(err.strip().splitlines()) == 1


def test_a_failed_evaluate_leaves_its_out_folder_as_it_was(tables, tmp_path, capsys):
    """Horizon 24 is evaluated, then horizon 36 (no labels) fails: nothing of the run reaches OUT, which keeps the
    file it held, and no temporary folder is left beside it."""
    out = tmp_path / "report"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["--labels", str(tables / "labels.parquet"), "--horizons", "24", "36", "--n-splits", "3"]
    args += ["--n-resamples", "20", "--no-site-held-out", "--search", "quick", "--out", str(out)]
    assert main(["progression", "evaluate", *_inputs(tables), *args]) == 2
    assert "no rows for horizon 36" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def _fit_args(tables, out, *extra):
    return ["progression", "fit", *_inputs(tables), "--labels", str(tables / "labels.parquet"), "--horizons", "24",
            "--out", str(out), "--data", "synthetic", "--search", "quick", *extra]  # fmt: skip


def test_bootstrap_fit_predict_round_trip(tables, tmp_path):
    """`fit --bootstrap 8` saves 8 refits; `predict` writes their 95% interval, equal to the API's on the same fit."""
    assert main(_fit_args(tables, tmp_path / "models", "--bootstrap", "8")) == 0
    assert len(list((tmp_path / "models" / "h24").glob("bootstrap_*.txt"))) == 8
    out = tmp_path / "risk.parquet"
    assert (
        main(["progression", "predict", *_inputs(tables), "--model", str(tmp_path / "models"), "--out", str(out)]) == 0
    )
    risk = pd.read_parquet(out)
    assert list(risk.columns[risk.columns.get_loc("risk") :][:3]) == ["risk", "risk_low", "risk_high"]
    assert (risk["risk_low"] <= risk["risk_high"]).all() and risk[["risk_low", "risk_high"]].stack().between(0, 1).all()
    features = read_features(tables / "clinical.csv", tables / "kl.parquet", tables / "mri.parquet")
    labels = pd.read_parquet(tables / "labels.parquet")
    models = fit_progression(features, labels, (24,), data="synthetic", quick=True, n_bootstrap=8)
    same = models.predict(features)
    assert np.allclose(
        same[["risk", "risk_low", "risk_high"]], risk[["risk", "risk_low", "risk_high"]], rtol=0, atol=1e-12
    )
    assert models.to_frame()["n_bootstrap"].tolist() == [8]


def test_knee_risk_carries_the_interval_and_draws_it(tables):
    features = read_features(tables / "clinical.csv", tables / "kl.parquet", tables / "mri.parquet")
    labels = pd.read_parquet(tables / "labels.parquet")
    booted = fit_progression(features, labels, (12, 24), data="synthetic", quick=True, n_bootstrap=6)
    knee = features.iloc[0].to_dict()
    table = knee_risk(booted, knee).to_frame()
    assert (table["risk_low"] <= table["risk_high"]).all() and table["risk_high"].le(1).all()
    figure = knee_risk(booted, knee).figure()
    assert len(figure.data) == 2 and np.allclose(
        np.asarray(figure.data[1].error_y.array) * 2, table["risk_high"] - table["risk_low"]
    )
    plain = fit_progression(features, labels, (24,), data="synthetic", quick=True)
    assert knee_risk(plain, knee).to_frame()[["risk_low", "risk_high"]].isna().all().all()
    assert len(knee_risk(plain, knee).figure().data) == 1


def test_bootstrap_option_errors(tables, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(_fit_args(tables, tmp_path / "m", "--bootstrap", "-1"))
    assert "--bootstrap" in capsys.readouterr().err
    args = ["progression", "evaluate", *_inputs(tables), "--labels", str(tables / "labels.parquet"), "--out",
            str(tmp_path / "report"), "--bootstrap", "5"]  # fmt: skip
    assert main(args) == 2
    assert "--bootstrap: 5 refits without --fit-final; expected --fit-final" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()
