"""KL-grade evaluation: QWK, accuracy, balanced accuracy, MAE, KL≥2 AUC, ECE, NLL, conformal coverage/set size,
with participant-level bootstrap 95% CIs, a confusion matrix and a reliability table (tidy DataFrames + plotly figures)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score, confusion_matrix, roc_auc_score

from oa_kit.cohort.splits import participant_bootstrap
from oa_kit.errors import OAKitError

GRADES = np.arange(5)


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE: mean |accuracy − confidence| over equal-width confidence bins, weighted by bin size."""
    confidence, correct = proba.max(1), (proba.argmax(1) == y)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        mask = bins == b
        total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def kl_metrics(y: np.ndarray, proba: np.ndarray, sets: np.ndarray | None = None) -> dict[str, float]:
    """Point estimates of every KL metric for true grades y (N,), probabilities (N, 5) and optional sets (N, 5) bool."""
    y, proba = np.asarray(y).astype(int), np.asarray(proba, float)
    pred = proba.argmax(1)
    out = {
        "qwk": cohen_kappa_score(y, pred, weights="quadratic", labels=GRADES),
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": balanced_accuracy_score(y, pred),
        "mae": float(np.abs(pred - y).mean()),
        "auc_kl2": roc_auc_score(y >= 2, proba[:, 2:].sum(1)) if 0 < (y >= 2).sum() < len(y) else np.nan,
        "ece": expected_calibration_error(proba, y),
        "nll": float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1)).mean()),
    }
    if sets is not None:
        sets = np.asarray(sets, bool)
        out["coverage"] = float(sets[np.arange(len(y)), y].mean())
        out["mean_set_size"] = float(sets.sum(1).mean())
    return {k: float(v) for k, v in out.items()}


def bootstrap_metrics(
    y: np.ndarray,
    proba: np.ndarray,
    groups: np.ndarray,
    sets: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Tidy table (metric, estimate, ci_low, ci_high, n) with percentile CIs from resampling participants (``groups``)."""
    y, proba, groups = np.asarray(y).astype(int), np.asarray(proba, float), np.asarray(groups)
    if not len(y) == len(proba) == len(groups):
        raise OAKitError(f"y/proba/groups: lengths {len(y)}/{len(proba)}/{len(groups)}; expected equal lengths")
    estimate = kl_metrics(y, proba, sets)
    draws = pd.DataFrame(
        [
            kl_metrics(y[idx], proba[idx], None if sets is None else sets[idx])
            for idx in participant_bootstrap(groups, n_boot, seed)
        ]
    )
    tail = (1 - level) / 2 * 100
    return pd.DataFrame(
        [
            {
                "metric": name,
                "estimate": value,
                "ci_low": float(np.nanpercentile(draws[name], tail)),
                "ci_high": float(np.nanpercentile(draws[name], 100 - tail)),
                "n": len(y),
            }
            for name, value in estimate.items()
        ]
    )


def confusion_table(y: np.ndarray, pred: np.ndarray) -> pd.DataFrame:
    """Confusion matrix as a DataFrame: rows true KL 0–4, columns predicted KL 0–4 (counts)."""
    matrix = confusion_matrix(y, pred, labels=GRADES)
    return pd.DataFrame(matrix, index=pd.Index(GRADES, name="true_kl"), columns=pd.Index(GRADES, name="predicted_kl"))


def reliability_table(proba: np.ndarray, y: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Top-label reliability: per confidence bin the count, mean confidence and accuracy."""
    confidence, correct = proba.max(1), proba.argmax(1) == y
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    frame = pd.DataFrame({"bin": bins, "confidence": confidence, "correct": correct})
    table = (
        frame.groupby("bin")
        .agg(n=("correct", "size"), confidence=("confidence", "mean"), accuracy=("correct", "mean"))
        .reset_index()
    )
    table["bin_low"], table["bin_high"] = table["bin"] / n_bins, (table["bin"] + 1) / n_bins
    return table.drop(columns="bin")


@dataclass
class KLEvaluation:
    """Result of evaluating a grader: metrics with CIs, confusion matrix, reliability and per-knee predictions."""

    metrics: pd.DataFrame
    confusion: pd.DataFrame
    reliability: pd.DataFrame
    predictions: pd.DataFrame

    def figure(self):
        """Plotly confusion-matrix heatmap (see ``oa_kit.viz.kl`` for more figures)."""
        from oa_kit.viz.kl import confusion_figure

        return confusion_figure(self.confusion)


def evaluate_grader(grader, images: np.ndarray, frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> KLEvaluation:
    """Evaluate a fitted ``KLGrader`` on preprocessed inputs (N, 1, S, S) with a table holding ``kl`` and ``participant_id``."""
    proba = grader.predict_proba(images)
    sets = grader.predict_sets_from_proba(proba)
    y = frame["kl"].to_numpy().astype(int)
    metrics = bootstrap_metrics(y, proba, frame["participant_id"].to_numpy(), sets, n_boot=n_boot, seed=seed)
    predictions = frame.reset_index(drop=True).copy()
    predictions[[f"p{k}" for k in GRADES]] = proba
    predictions["grade"] = proba.argmax(1)
    return KLEvaluation(metrics, confusion_table(y, proba.argmax(1)), reliability_table(proba, y), predictions)


def evaluate_on_chen(
    data_dir: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    split: str = "val",
    n_boot: int = 1000,
    limit: int | None = None,
    seed: int = 0,
) -> KLEvaluation:
    """Evaluate shipped (or given) weights on a Chen split, images read and preprocessed exactly as at inference."""
    from oa_kit.models.kl.data import load_chen_arrays
    from oa_kit.models.kl.predict import KLGrader

    images, frame = load_chen_arrays(data_dir, splits=(split,), limit=limit, progress=False)
    grader = KLGrader.from_pretrained(weights)
    return evaluate_grader(grader, images, frame, n_boot=n_boot, seed=seed)
