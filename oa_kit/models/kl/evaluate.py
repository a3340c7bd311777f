"""KL-grade evaluation: QWK, accuracy, balanced accuracy, MAE, KL≥2 AUC, ECE, NLL, conformal coverage/set size,
with participant-level bootstrap 95% CIs, a confusion matrix and a reliability table (tidy DataFrames + plotly figures)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from oa_kit.metrics import GRADES, kl_bootstrap_metrics
from oa_kit.models.kl.data import load_chen_arrays
from oa_kit.models.kl.predict import KLGrader


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


def evaluate_grader(grader, images: np.ndarray, frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> KLEvaluation:
    """Evaluate a fitted ``KLGrader`` on preprocessed inputs (N, 1, S, S) with a table holding ``kl`` and ``participant_id``."""
    proba = grader.predict_proba(images)
    sets = grader.predict_sets_from_proba(proba)
    y = frame["kl"].to_numpy().astype(int)
    metrics = kl_bootstrap_metrics(y, proba, frame["participant_id"].to_numpy(), sets, n_resamples=n_boot, seed=seed)
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
    images, frame = load_chen_arrays(data_dir, splits=(split,), limit=limit, progress=False)
    grader = KLGrader.from_pretrained(weights)
    return evaluate_grader(grader, images, frame, n_boot=n_boot, seed=seed)
