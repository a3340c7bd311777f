"""The demo's steps on the tiny synthetic cohort: each is one oa_kit call, and they join into one feature table."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import oa_kit.cli
import oa_kit.cli.demo
from oa_kit.cli import main
from oa_kit.features import family_of
from oa_kit.workflows import demo


def test_mri_substudy_is_seeded_and_keeps_both_knees(tiny_cohort):
    a = demo.mri_substudy(tiny_cohort, 3, seed=1)
    assert a == demo.mri_substudy(tiny_cohort, 3, seed=1)
    participants = {p.name.split("_")[0] for p in a}
    assert len(participants) == 3
    all_scans = demo.mri_substudy(tiny_cohort, None, seed=1)
    for pid in participants:
        assert [p for p in a if p.name.startswith(pid)] == [p for p in all_scans if p.name.startswith(pid)]


@pytest.mark.slow
def test_demo_steps_join_into_one_feature_table(tiny_cohort, tmp_path):
    tables, labels = demo.cohort_labels(tiny_cohort, tmp_path / "labels")
    assert (tmp_path / "labels" / "labels.parquet").exists()
    baseline = tables.readings[(tables.readings["visit_month"] == 0) & (tables.readings["kl_status"] == "ok")]
    kl, metrics = demo.cohort_kl_features(
        tiny_cohort, baseline, tmp_path / "kl", seed=0, n_splits=2, epochs=1, progress=False
    )
    assert set(metrics["metric"]) >= {"qwk", "accuracy"}
    assert len(kl) == len(baseline)
    scans = demo.mri_substudy(tiny_cohort, 1, seed=0)
    mri = demo.cohort_mri_features(scans, tmp_path / "mri", progress=False)
    assert len(mri) == len(scans) >= 1
    features = demo.cohort_feature_table(tables, kl, mri)
    assert len(features) == len(tables.clinical)
    families = {family_of(c) for c in features.columns if c.startswith(("kl_p", "mri_emb", "age"))}
    assert families == {"clinical", "radiograph", "mri"}
    # measured marginal osteophyte lengths travel with the KL-CNN features, in the radiograph family
    osteophyte = [f"osteophyte_mm_{site}" for site in ("fm", "fl", "tm", "tl")]
    assert set(osteophyte) <= set(features.columns) and {family_of(c) for c in osteophyte} == {"radiograph"}
    lengths = kl[osteophyte].to_numpy()
    assert np.isnan(lengths).mean() < 0.5 and np.nanmax(lengths) > 1.0  # the tiny cohort's KL3-4 knees have spurs
    # knees outside the MRI substudy carry no MRI features rather than made-up ones
    assert features["mri_emb_000"].isna().sum() == len(features) - len(scans)


def test_demo_cli_refuses_to_overwrite_results(tmp_path):
    (tmp_path / "progression").mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "oa_kit", "demo", "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "--overwrite" in out.stderr


def test_demo_cli_fits_bootstrap_refits_by_default(tmp_path, monkeypatch):
    """`oa-kit demo` passes DEMO_BOOTSTRAP refits to the final models unless --bootstrap says otherwise."""
    calls = []
    monkeypatch.setattr(oa_kit.cli, "SUBCOMMAND_MODULES", ("oa_kit.cli.demo",))
    monkeypatch.setattr(oa_kit.cli.demo, "run_demo", lambda out, **kwargs: calls.append(kwargs))
    assert main(["demo", "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["demo", "--out", str(tmp_path / "b"), "--quiet", "--bootstrap", "0"]) == 0
    assert [c["n_bootstrap"] for c in calls] == [demo.DEMO_BOOTSTRAP, 0] and demo.DEMO_BOOTSTRAP > 0
