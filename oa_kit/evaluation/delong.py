"""DeLong test for two correlated ROC AUCs, with the fast midrank algorithm of Sun & Xu (2014).

DeLong, DeLong & Clarke-Pearson (1988) estimate the covariance of paired AUCs from the structural components
V10 (per positive) and V01 (per negative); Sun & Xu compute them in O(n log n) with midranks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from oa_kit.errors import OAKitError
from oa_kit.metrics import check_binary


def _midrank(x: np.ndarray) -> np.ndarray:
    """Midranks (1-based, ties share the mean rank) of a 1-D array."""
    return stats.rankdata(x, method="average")


def delong_covariance(y: Sequence, scores: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their DeLong covariance matrix (k, k) for ``k`` score vectors on the same knees."""
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    y = np.asarray(y, dtype=float).ravel()
    check_binary(y, np.zeros_like(y), name="delong")
    if scores.shape[1] != len(y) or not np.isfinite(scores).all():
        raise OAKitError(f"delong: scores must be finite with one value per label ({len(y)}); got shape {scores.shape}")
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    tx = np.apply_along_axis(_midrank, 1, pos)
    ty = np.apply_along_axis(_midrank, 1, neg)
    tz = np.apply_along_axis(_midrank, 1, np.concatenate([pos, neg], axis=1))
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v10 = (tz[:, :m] - tx) / n  # per positive: share of negatives ranked below
    v01 = 1.0 - (tz[:, m:] - ty) / m  # per negative: share of positives ranked above
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


def delong_test(y: Sequence, p1: Sequence, p2: Sequence, ci: float = 0.95) -> pd.DataFrame:
    """Two-sided DeLong test of AUC(p1) = AUC(p2) on the same knees.

    Returns
    -------
    DataFrame
        One row: auc_1, auc_2, difference, se, ci_low, ci_high (of the difference), z, p_value.
    """
    aucs, cov = delong_covariance(y, [p1, p2])
    diff = aucs[0] - aucs[1]
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    if var <= 0:
        if abs(diff) > 0:
            raise OAKitError("delong: zero variance with different AUCs; expected non-degenerate scores")
        z, pval, se = 0.0, 1.0, 0.0
    else:
        se = float(np.sqrt(var))
        z = float(diff / se)
        pval = float(2 * stats.norm.sf(abs(z)))
    q = stats.norm.ppf(0.5 + ci / 2)
    return pd.DataFrame(
        [
            {
                "auc_1": float(aucs[0]),
                "auc_2": float(aucs[1]),
                "difference": float(diff),
                "se": se,
                "ci_low": float(diff - q * se),
                "ci_high": float(diff + q * se),
                "z": z,
                "p_value": pval,
            }
        ]
    )
