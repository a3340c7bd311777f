"""Temperature scaling, conformal sets, evaluation metrics with bootstrap CIs, and the KL plotly figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oa_kit.errors import OAKitError
from oa_kit.metrics import kl_bootstrap_metrics, kl_metrics, top_label_ece
from oa_kit.models.kl.calibration import TemperatureScaler
from oa_kit.models.kl.conformal import APSConformal, set_labels
from oa_kit.models.kl.evaluate import confusion_table, reliability_table


def _synthetic(n: int, seed: int, sharpen: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is the true label distribution (times ``sharpen``), labels drawn from it."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(0, 4, n)
    logits = -((np.arange(5)[None] - centre[:, None]) ** 2) / 1.5
    proba = torch.softmax(torch.as_tensor(logits), 1).numpy()
    y = np.array([rng.choice(5, p=p) for p in proba])
    return (logits * sharpen).astype(np.float32), y


def test_temperature_scaling_fixes_overconfidence():
    logits, y = _synthetic(3000, seed=0, sharpen=3.0)  # 3× too confident
    scaler = TemperatureScaler(loss="ce").fit(logits, y)
    assert scaler.temperature_ == pytest.approx(3.0, rel=0.15)
    before = torch.softmax(torch.as_tensor(logits), 1).numpy()
    after = scaler.predict_proba(logits)
    assert scaler.nll_after_ < scaler.nll_before_
    assert top_label_ece(y, after) < top_label_ece(y, before)
    with pytest.raises(OAKitError, match="not fitted"):
        TemperatureScaler().predict_proba(logits)


def test_corn_temperature_and_shape_errors():
    logits = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    y = np.random.default_rng(2).integers(0, 5, 50)
    scaler = TemperatureScaler(loss="corn").fit(logits, y)
    assert np.allclose(scaler.predict_proba(logits).sum(1), 1, atol=1e-5)
    with pytest.raises(OAKitError, match="expected"):
        TemperatureScaler().fit(logits[:, :, None], y)


def test_conformal_coverage_on_fresh_data():
    logits, y = _synthetic(2000, seed=3)
    proba = torch.softmax(torch.as_tensor(logits), 1).numpy()
    conformal = APSConformal(alpha=0.1).fit(proba[:1000], y[:1000])
    sets = conformal.predict_sets(proba[1000:])
    coverage = sets[np.arange(1000), y[1000:]].mean()
    assert 0.87 <= coverage <= 0.99
    assert 1.0 < sets.sum(1).mean() < 5.0
    # contiguous ranges, always containing the top grade
    for row in sets:
        members = np.flatnonzero(row)
        assert np.array_equal(members, np.arange(members[0], members[-1] + 1))
    assert sets[np.arange(1000), proba[1000:].argmax(1)].all()
    assert set_labels(np.array([[False, False, True, True, False]])) == ["2,3"]
    tight = APSConformal(alpha=0.5).fit(proba[:1000], y[:1000]).predict_sets(proba[1000:])
    assert tight.sum(1).mean() < sets.sum(1).mean()


def test_metrics_and_bootstrap():
    logits, y = _synthetic(400, seed=4, sharpen=2.0)
    proba = torch.softmax(torch.as_tensor(logits), 1).numpy()
    perfect = np.eye(5)[y]
    assert kl_metrics(y, perfect)["qwk"] == pytest.approx(1.0) and kl_metrics(y, perfect)["mae"] == 0
    groups = np.repeat(np.arange(200), 2)
    table = kl_bootstrap_metrics(y, proba, groups, sets=proba > 0.1, n_resamples=50, seed=0)
    assert {"qwk", "accuracy", "balanced_accuracy", "mae", "auc_kl2", "ece", "nll", "coverage", "mean_set_size"} == set(
        table["metric"]
    )
    assert (table["ci_low"] <= table["estimate"] + 1e-9).all() and (table["estimate"] <= table["ci_high"] + 1e-9).all()
    assert confusion_table(y, proba.argmax(1)).to_numpy().sum() == 400
    assert reliability_table(proba, y)["n"].sum() == 400
    with pytest.raises(OAKitError, match="lengths"):
        kl_bootstrap_metrics(y, proba, groups[:10])


def test_figures():
    from oa_kit.viz.kl import confusion_figure, gradcam_figure, probability_figure, reliability_figure

    logits, y = _synthetic(100, seed=5)
    proba = torch.softmax(torch.as_tensor(logits), 1).numpy()
    assert (
        len(
            gradcam_figure(np.random.default_rng(0).random((1, 32, 32)), np.random.default_rng(1).random((32, 32))).data
        )
        == 2
    )
    assert probability_figure(proba[0], "1,2").data[0].marker.color[1] == "#d62728"
    assert confusion_figure(confusion_table(y, proba.argmax(1))).data[0].z.shape == (5, 5)
    assert len(reliability_figure(reliability_table(proba, y)).data) == 2
    with pytest.raises(ValueError, match="shape"):
        gradcam_figure(np.zeros((32, 32)), np.zeros((16, 16)))
