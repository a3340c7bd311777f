"""Metrics with participant-level bootstrap CIs, as tidy DataFrames: the one place oa_kit defines a metric.

Arguments always come in the order (truth, prediction[, groups]), as in scikit-learn. Binary progression metrics
(:func:`roc_auc`, :func:`average_precision`, :func:`brier_score`, :func:`expected_calibration_error`,
:func:`bootstrap_metrics`, calibration and decision curves) and KL-grade metrics (:func:`kl_metrics`,
:func:`top_label_ece`, :func:`kl_bootstrap_metrics`) live side by side; both resample whole participants.

Every metric is computed on resampling weights so that 1000+ bootstrap resamples cost one matrix product:
a resample draws participants with replacement and gives each knee the count of its participant
(both knees of a participant move together). Point estimates equal scikit-learn's (weights all one).
A metric that is undefined (AUC/AP with a single class) is never returned silently: the estimate functions raise
:class:`~oa_kit.errors.OAKitError`, and tables report NaN with a ``note``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score, roc_auc_score

from oa_kit.errors import OAKitError

#: KL grades.
GRADES = np.arange(5)

#: Metrics reported by :func:`bootstrap_metrics`.
METRICS: tuple[str, ...] = ("auc", "ap", "brier", "ece")
_CHUNK = 250


def check_binary(
    y: Sequence, p: Sequence, name: str = "y", require_both: bool = True, scores: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels (0/1) and probabilities ([0, 1]; any finite score if ``scores``), same length; returns floats."""
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    if y.shape != p.shape:
        raise OAKitError(f"{name}: {len(y)} labels but {len(p)} predictions; expected equal lengths")
    if len(y) == 0:
        raise OAKitError(f"{name}: no rows; expected labelled predictions")
    if not np.isin(y, (0.0, 1.0)).all():
        raise OAKitError(f"{name}: labels must be 0/1; found {np.unique(y[~np.isin(y, (0.0, 1.0))])[:3]}")
    if not np.isfinite(p).all() or (not scores and ((p < 0).any() or (p > 1).any())):
        raise OAKitError(f"{name}: predictions must be finite{'' if scores else ' probabilities in [0, 1]'}")
    if require_both and len(np.unique(y)) < 2:
        raise OAKitError(f"{name}: only class {int(y[0])} present ({len(y)} rows); expected both classes for AUC/AP")
    return y, p


def _tie_matrix(p: np.ndarray) -> sparse.csr_matrix:
    """Sparse (n, K) indicator of each row's rank among the K distinct predicted values (ascending)."""
    _, inv = np.unique(p, return_inverse=True)
    return sparse.csr_matrix((np.ones(len(p)), (np.arange(len(p)), inv)), shape=(len(p), inv.max() + 1))


def _weighted_metrics(y: np.ndarray, p: np.ndarray, W: np.ndarray, n_bins: int) -> dict[str, np.ndarray]:
    """AUC, AP, Brier and ECE for each row of weights ``W`` (B, n); NaN where a class has zero weight."""
    M = _tie_matrix(p)
    P = np.asarray((M.T @ (W * y).T).T)  # (B, K) positive weight per distinct score
    N = np.asarray((M.T @ (W * (1 - y)).T).T)
    w1, w0 = P.sum(axis=1), N.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        below = np.cumsum(N, axis=1) - N
        auc = (P * (below + 0.5 * N)).sum(axis=1) / (w1 * w0)
        Pd, Nd = P[:, ::-1], N[:, ::-1]
        tp, fp = np.cumsum(Pd, axis=1), np.cumsum(Nd, axis=1)
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        ap = (Pd * precision).sum(axis=1) / w1
        total = W.sum(axis=1)
        brier = W @ (p - y) ** 2 / total
        bins = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
        B = sparse.csr_matrix((np.ones(len(p)), (np.arange(len(p)), bins)), shape=(len(p), n_bins))
        gap = np.asarray((B.T @ (W * (y - p)).T).T)
        ece = np.abs(gap).sum(axis=1) / total
    auc[(w1 == 0) | (w0 == 0)] = np.nan
    ap[w1 == 0] = np.nan
    return {"auc": auc, "ap": ap, "brier": brier, "ece": ece}


def roc_auc(y: Sequence, p: Sequence) -> float:
    """Area under the ROC curve of any finite scores (ties count one half); raises on a single class."""
    y, p = check_binary(y, p, scores=True)
    return float(_weighted_metrics(y, p, np.ones((1, len(y))), 10)["auc"][0])


def average_precision(y: Sequence, p: Sequence) -> float:
    """Average precision (step-wise area under the precision–recall curve, as scikit-learn)."""
    y, p = check_binary(y, p)
    return float(_weighted_metrics(y, p, np.ones((1, len(y))), 10)["ap"][0])


def brier_score(y: Sequence, p: Sequence) -> float:
    """Mean squared difference between predicted probability and outcome."""
    y, p = check_binary(y, p, require_both=False)
    return float(np.mean((p - y) ** 2))


def expected_calibration_error(y: Sequence, p: Sequence, n_bins: int = 10) -> float:
    """ECE: size-weighted mean |observed − predicted| over ``n_bins`` equal-width probability bins."""
    y, p = check_binary(y, p, require_both=False)
    return float(_weighted_metrics(y, p, np.ones((1, len(y))), n_bins)["ece"][0])


def participant_weights(groups: Sequence, n_resamples: int, seed: int) -> np.ndarray:
    """Bootstrap weights (n_resamples, n_rows): each row's participant drawn with replacement, count per resample."""
    codes, uniques = pd.factorize(pd.Series(np.asarray(groups)).astype(str))
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(uniques), np.full(len(uniques), 1.0 / len(uniques)), size=n_resamples)
    return counts[:, codes].astype(float)


def bootstrap_metrics(
    y: Sequence,
    p: Sequence,
    groups: Sequence,
    n_resamples: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    n_bins: int = 10,
    subgroup: str = "all",
) -> pd.DataFrame:
    """Point estimates and participant-level bootstrap percentile CIs of AUC, AP, Brier and ECE.

    Parameters
    ----------
    y, p : array-like
        Outcomes (0/1) and predicted probabilities, one per knee.
    groups : array-like
        Participant id per knee; resampling draws participants.
    n_resamples : int
        Bootstrap resamples (≥ 1000 recommended).
    seed : int
        Seed; the same seed gives identical intervals.
    ci : float
        Interval coverage.
    n_bins : int
        ECE bins.
    subgroup : str
        Label written in the ``subgroup`` column.

    Returns
    -------
    DataFrame
        Columns metric, estimate, ci_low, ci_high, subgroup, n, n_events, n_participants, n_resamples, note.
        With a single class AUC/AP are NaN and ``note`` says why (never a silent value).
    """
    y, p = check_binary(y, p, require_both=False)
    groups = np.asarray(groups)
    if len(groups) != len(y):
        raise OAKitError(f"groups: {len(groups)} ids for {len(y)} rows; expected one participant id per row")
    if n_resamples < 1:
        raise OAKitError(f"n_resamples: {n_resamples}; expected a positive integer")
    point = _weighted_metrics(y, p, np.ones((1, len(y))), n_bins)
    W = participant_weights(groups, n_resamples, seed)
    draws = {
        m: np.concatenate(
            [_weighted_metrics(y, p, W[i : i + _CHUNK], n_bins)[m] for i in range(0, n_resamples, _CHUNK)]
        )
        for m in METRICS
    }
    single = len(np.unique(y)) < 2
    rows = []
    alpha = (1 - ci) / 2
    for m in METRICS:
        undefined = single and m in ("auc", "ap")
        finite = draws[m][np.isfinite(draws[m])]
        lo, hi = np.quantile(finite, [alpha, 1 - alpha]) if len(finite) and not undefined else (np.nan, np.nan)
        note = (
            "single class: undefined"
            if undefined
            else (f"{n_resamples - len(finite)} resamples had one class" if len(finite) < n_resamples else "")
        )
        rows.append(
            {
                "metric": m,
                "estimate": np.nan if undefined else float(point[m][0]),
                "ci_low": float(lo),
                "ci_high": float(hi),
                "subgroup": subgroup,
                "n": len(y),
                "n_events": int(y.sum()),
                "n_participants": len(np.unique(groups.astype(str))),
                "n_resamples": n_resamples,
                "note": note,
            }
        )
    return pd.DataFrame(rows)


def calibration_curve(y: Sequence, p: Sequence, n_bins: int = 10, strategy: str = "quantile") -> pd.DataFrame:
    """Observed event rate vs mean predicted risk per bin (``quantile`` or ``uniform`` bins), with Wilson 95% CIs."""
    y, p = check_binary(y, p, require_both=False)
    if strategy == "quantile":
        edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
    elif strategy == "uniform":
        edges = np.linspace(0, 1, n_bins + 1)
    else:
        raise OAKitError(f"strategy: {strategy!r}; expected 'quantile' or 'uniform'")
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    rows = []
    for b in np.unique(idx):
        mask = idx == b
        n, k = int(mask.sum()), float(y[mask].sum())
        lo, hi = _wilson(k, n)
        rows.append(
            {
                "bin": int(b),
                "mean_predicted": float(p[mask].mean()),
                "observed": k / n,
                "observed_low": lo,
                "observed_high": hi,
                "n": n,
            }
        )
    return pd.DataFrame(rows)


def _wilson(k: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval for a proportion ``k / n``."""
    phat = k / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


def net_benefit(y: Sequence, p: Sequence, thresholds: Sequence[float] | None = None) -> pd.DataFrame:
    """Decision-curve analysis: net benefit of the model, treat-all and treat-none per risk threshold.

    Net benefit at threshold t = TP/n − FP/n · t/(1 − t) (Vickers & Elkin 2006).
    """
    y, p = check_binary(y, p, require_both=False)
    thresholds = np.arange(0.01, 0.81, 0.01) if thresholds is None else np.asarray(thresholds, dtype=float)
    if ((thresholds <= 0) | (thresholds >= 1)).any():
        raise OAKitError("thresholds: expected values strictly between 0 and 1")
    n, prevalence = len(y), y.mean()
    odds = thresholds / (1 - thresholds)
    treat = p[None, :] >= thresholds[:, None]
    tp = (treat & (y[None, :] == 1)).sum(axis=1) / n
    fp = (treat & (y[None, :] == 0)).sum(axis=1) / n
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "net_benefit": tp - fp * odds,
            "treat_all": prevalence - (1 - prevalence) * odds,
            "treat_none": 0.0,
        }
    )


# ------------------------------------------------------------------------------------------- KL grades
def participant_bootstrap(groups: Sequence, n_resamples: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Row indices of ``n_resamples`` bootstrap samples that draw whole participants (both knees, all visits) with replacement."""
    codes, uniques = pd.factorize(np.asarray(groups))
    members = [np.flatnonzero(codes == g) for g in range(len(uniques))]
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        yield np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])


def top_label_ece(y: Sequence, proba: np.ndarray, n_bins: int = 15) -> float:
    """Multi-class (KL) top-label ECE: mean |accuracy − confidence| over equal-width confidence bins, weighted by size."""
    y, proba = np.asarray(y).astype(int), np.asarray(proba, float)
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
        "ece": top_label_ece(y, proba),
        "nll": float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1)).mean()),
    }
    if sets is not None:
        sets = np.asarray(sets, bool)
        out["coverage"] = float(sets[np.arange(len(y)), y].mean())
        out["mean_set_size"] = float(sets.sum(1).mean())
    return {k: float(v) for k, v in out.items()}


def kl_bootstrap_metrics(
    y: Sequence,
    proba: np.ndarray,
    groups: Sequence,
    sets: np.ndarray | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> pd.DataFrame:
    """KL metrics (:func:`kl_metrics`) as a tidy table (metric, estimate, ci_low, ci_high, n) with percentile CIs
    from resampling participants (``groups``) with :func:`participant_bootstrap`."""
    y, proba, groups = np.asarray(y).astype(int), np.asarray(proba, float), np.asarray(groups)
    if not len(y) == len(proba) == len(groups):
        raise OAKitError(f"y/proba/groups: lengths {len(y)}/{len(proba)}/{len(groups)}; expected equal lengths")
    estimate = kl_metrics(y, proba, sets)
    draws = pd.DataFrame(
        [
            kl_metrics(y[idx], proba[idx], None if sets is None else sets[idx])
            for idx in participant_bootstrap(groups, n_resamples, seed)
        ]
    )
    tail = (1 - ci) / 2 * 100
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
