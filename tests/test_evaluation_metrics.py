"""Metrics with participant bootstrap CIs, DeLong, decision curve, calibration curve, subgroups, oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from oa_kit.errors import OAKitError
from oa_kit.evaluation import (
    average_precision,
    bootstrap_metrics,
    brier_score,
    calibration_curve,
    delong_covariance,
    delong_test,
    expected_calibration_error,
    net_benefit,
    oracle_comparison,
    roc_auc,
    subgroup_metrics,
)


def _scores(n=400, seed=0, ties=True):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.25 * y + rng.random(n) * 0.75, 0, 1)
    return y, (np.round(p, 2) if ties else p), np.arange(n) // 2


def test_point_estimates_match_scikit_learn_with_ties():
    y, p, _ = _scores()
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert average_precision(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)


def test_ece_hand_example():
    # bin [0.1, 0.2): predicted 0.1 twice, observed 1 of 2 → gap |0.5-0.1|·2; bin [0.9, 1]: 0.9 vs 1 → 0.1·2
    y, p = [0, 1, 1, 1], [0.1, 0.1, 0.9, 0.9]
    assert expected_calibration_error(y, p) == pytest.approx((0.4 * 2 + 0.1 * 2) / 4)


def test_bootstrap_reproduces_by_seed_and_contains_estimate():
    y, p, g = _scores(seed=1)
    a = bootstrap_metrics(y, p, g, n_resamples=1000, seed=7)
    b = bootstrap_metrics(y, p, g, n_resamples=1000, seed=7)
    c = bootstrap_metrics(y, p, g, n_resamples=1000, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["ci_low"], c["ci_low"])
    assert list(a["metric"]) == ["auc", "ap", "brier", "ece"]
    assert set(a.columns) >= {"metric", "estimate", "ci_low", "ci_high", "subgroup"}
    auc = a[a.metric == "auc"].iloc[0]
    assert auc.ci_low < auc.estimate < auc.ci_high and auc.n_resamples == 1000 and auc.n_participants == 200


def test_bootstrap_resamples_participants_not_knees():
    # two knees per participant with identical scores/labels: participant resampling keeps pairs together,
    # so the CI is as wide as with one knee each (knee resampling would understate it)
    y, p, _ = _scores(n=200, seed=2, ties=False)
    pairs = bootstrap_metrics(np.repeat(y, 2), np.repeat(p, 2), np.repeat(np.arange(200), 2), 2000, seed=0)
    single = bootstrap_metrics(y, p, np.arange(200), 2000, seed=0)
    width = lambda t: float((t.ci_high - t.ci_low)[t.metric == "auc"].iloc[0])  # noqa: E731
    assert width(pairs) == pytest.approx(width(single), rel=0.15)


def test_single_class_is_never_a_silent_auc():
    with pytest.raises(OAKitError, match="only class 0 present"):
        roc_auc([0, 0, 0], [0.1, 0.2, 0.3])
    table = bootstrap_metrics([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], [1, 1, 2, 2], n_resamples=50)
    auc = table[table.metric == "auc"].iloc[0]
    assert np.isnan(auc.estimate) and "single class" in auc.note
    assert table[table.metric == "brier"]["estimate"].notna().all()
    with pytest.raises(OAKitError, match="probabilities in"):
        brier_score([0, 1], [0.5, 1.5])
    with pytest.raises(OAKitError, match="labels must be 0/1"):
        brier_score([0, 2], [0.5, 0.5])


def test_delong_hand_example_and_brute_force():
    # positives 0.9, 0.4; negatives 0.5, 0.1: AUC 0.75; V10 = (1, .5), V01 = (.5, 1) → var = .125/2 + .125/2
    aucs, cov = delong_covariance([1, 1, 0, 0], [[0.9, 0.4, 0.5, 0.1]])
    assert aucs[0] == pytest.approx(0.75) and cov[0, 0] == pytest.approx(0.125)
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 120)
    s1 = np.round(y + rng.normal(0, 1.2, 120), 1)
    s2 = np.round(y + rng.normal(0, 1.6, 120), 1)
    aucs, cov = delong_covariance(y, [s1, s2])
    psi = lambda s: (s[y == 1][:, None] > s[y == 0][None, :]) + 0.5 * (s[y == 1][:, None] == s[y == 0][None, :])  # noqa: E731
    v10 = np.stack([psi(s).mean(axis=1) for s in (s1, s2)])
    v01 = np.stack([psi(s).mean(axis=0) for s in (s1, s2)])
    brute = np.cov(v10) / v10.shape[1] + np.cov(v01) / v01.shape[1]
    assert np.allclose(cov, brute) and np.allclose(aucs, [roc_auc_score(y, s1), roc_auc_score(y, s2)])
    test = delong_test(y, s1, s2).iloc[0]
    z = (aucs[0] - aucs[1]) / np.sqrt(brute[0, 0] + brute[1, 1] - 2 * brute[0, 1])
    assert test.z == pytest.approx(z) and 0 < test.p_value < 1
    assert delong_test(y, s1, s1).iloc[0].p_value == 1.0


def test_net_benefit_hand_example_and_calibration_curve():
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.3, 0.6, 0.1, 0.2])
    nb = net_benefit(y, p, [0.25, 0.5]).set_index("threshold")
    # t=0.25: treat 0.9, 0.3, 0.6 → TP 2, FP 1 → 2/5 − 1/5·(1/3)
    assert nb.loc[0.25, "net_benefit"] == pytest.approx(0.4 - 0.2 / 3)
    assert nb.loc[0.5, "net_benefit"] == pytest.approx(0.2 - 0.2)
    assert nb.loc[0.5, "treat_all"] == pytest.approx(0.4 - 0.6)
    curve = calibration_curve(*_scores()[:2], n_bins=5)
    assert curve["n"].sum() == 400 and (curve["observed_low"] <= curve["observed"]).all()
    with pytest.raises(OAKitError, match="thresholds"):
        net_benefit(y, p, [0.0])


def test_subgroup_metrics_levels_and_single_class_note():
    y, p, g = _scores(n=200, seed=4)
    table = pd.DataFrame(
        {
            "sex": np.where(g % 2, "F", "M"),
            "age": 50 + (g % 30),
            "bmi": 22 + (g % 12),
            "kl": g % 4,
            "site": np.array(list("ABCDE"))[g % 5],
        }
    )
    y = y.copy()
    y[table.site.to_numpy() == "E"] = 0  # site E: no events
    out = subgroup_metrics(y, p, g, table, n_resamples=200)
    groups = set(out.subgroup)
    assert {"all", "sex=F", "sex=M", "age_band=<55", "bmi_band=30+", "baseline_kl=0", "site=A"} <= groups
    e = out[(out.subgroup == "site=E") & (out.metric == "auc")].iloc[0]
    assert np.isnan(e.estimate) and "single class" in e.note


def test_oracle_comparison_share_of_gain():
    rng = np.random.default_rng(5)
    n = 3000
    truth = 1 / (1 + np.exp(-rng.normal(-1, 1.5, n)))
    y = rng.binomial(1, truth)
    noise = rng.normal(0, 1, n)
    logit = np.log(truth / (1 - truth))
    preds = pd.concat(
        [
            pd.DataFrame(
                {
                    "model": m,
                    "row": np.arange(n),
                    "participant_id": np.arange(n) // 2,
                    "label": y,
                    "risk": 1 / (1 + np.exp(-(logit + s * noise))),
                }
            )
            for m, s in (("clinical", 3.0), ("fused", 0.5))
        ]
    )
    out = oracle_comparison(preds, truth, "clinical", n_resamples=200).set_index("model")
    oracle, clin, fused = (out.loc[m, "auc"] for m in ("oracle", "clinical", "fused"))
    assert oracle == pytest.approx(roc_auc_score(y, truth))
    assert out.loc["fused", "share_of_gain"] == pytest.approx((fused - clin) / (oracle - clin))
    assert out.loc["clinical", "share_of_gain"] == 0 and out.loc["fused", "gap_to_oracle"] == pytest.approx(
        oracle - fused
    )
    with pytest.raises(OAKitError, match="clinical: model 'lr'"):
        oracle_comparison(preds, truth, "lr")


def test_oracle_comparison_leaves_out_knees_without_a_true_probability():
    # a knee truly KL 4 at baseline but graded KL 3 by the readers is labelled, yet the generator holds no probability
    rng = np.random.default_rng(6)
    n = 400
    truth = rng.uniform(0.05, 0.9, n)
    y = rng.binomial(1, truth)
    risk = np.clip(truth + rng.normal(0, 0.2, n), 0.01, 0.99)
    preds = pd.DataFrame(
        {"model": "clinical", "row": np.arange(n), "participant_id": np.arange(n), "label": y, "risk": risk}
    )
    undefined = truth.copy()
    undefined[:7] = np.nan
    out = oracle_comparison(preds, undefined, "clinical", n_resamples=50).set_index("model")
    assert (out["knees"] == n - 7).all()
    assert out.loc["clinical", "auc"] == pytest.approx(roc_auc_score(y[7:], risk[7:]))
    assert out.loc["oracle", "auc"] == pytest.approx(roc_auc_score(y[7:], truth[7:]))
    with pytest.raises(OAKitError, match="oracle: no evaluated knee"):
        oracle_comparison(preds, np.full(n, np.nan), "clinical", n_resamples=50)


def test_oracle_column_is_nan_only_where_the_generator_has_no_probability():
    from oa_kit.evaluation.oracle import oracle_column

    truth = pd.DataFrame(
        {"ID": ["9000001", "9000001", "9000002"], "side": ["R", "L", "R"], "p_progress_24": [0.2, np.nan, 0.4]}
    )
    X = pd.DataFrame({"participant_id": ["9000001", "9000001", "9000002"], "side": ["R", "L", "R"]})
    out = oracle_column(X, truth, 24)
    assert out.iloc[0] == 0.2 and np.isnan(out.iloc[1]) and out.iloc[2] == 0.4
    with pytest.raises(OAKitError, match="1 labelled knees are not in the truth table"):
        oracle_column(pd.DataFrame({"participant_id": ["9000003"], "side": ["R"]}), truth, 24)
