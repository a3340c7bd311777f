"""Split-conformal prediction sets for KL grades (APS, Romano et al. 2020), calibrated on validation probabilities."""

from __future__ import annotations

import math

import numpy as np

from oa_kit.errors import OAKitError


class APSConformal:
    """Adaptive Prediction Sets with marginal coverage ≥ 1 − ``alpha`` (exchangeable data, non-randomised, conservative).

    Score of (x, y): total probability of the grades ranked at or above y. ``fit`` takes the finite-sample
    ⌈(n + 1)(1 − alpha)⌉/n quantile ``qhat_``; a set holds every grade whose score ≤ ``qhat_``, always the top grade,
    and (``contiguous=True``) any grade between two members, so sets read as grade ranges like {2, 3}.
    Adding grades never lowers coverage, so the guarantee holds.

    Parameters
    ----------
    alpha : float
        Miscoverage level (0.1 → 90% sets).
    contiguous : bool
        Fill gaps so each set is an interval of grades.

    Attributes
    ----------
    qhat_ : float
    n_calibration_ : int
    """

    def __init__(self, alpha: float = 0.1, contiguous: bool = True) -> None:
        self.alpha = alpha
        self.contiguous = contiguous

    def fit(self, proba: np.ndarray, y: np.ndarray) -> APSConformal:
        """Calibrate on probabilities (N, K) and true grades y (N,)."""
        proba, y = _check(proba), np.asarray(y).astype(np.int64)
        if not 0 < self.alpha < 1 or len(y) != len(proba):
            raise OAKitError(
                f"alpha={self.alpha}, {len(y)} labels for {len(proba)} rows; expected 0<alpha<1 and one label per row"
            )
        scores = self._scores(proba)[np.arange(len(y)), y]
        n = len(y)
        level = min(math.ceil((n + 1) * (1 - self.alpha)) / n, 1.0)
        self.qhat_ = float(np.quantile(scores, level, method="higher"))
        self.n_calibration_ = n
        return self

    def predict_sets(self, proba: np.ndarray) -> np.ndarray:
        """Boolean membership (N, K): True where the grade is in the prediction set."""
        if not hasattr(self, "qhat_"):
            raise OAKitError("APSConformal: not fitted; expected fit(proba, y) first")
        proba = _check(proba)
        sets = self._scores(proba) <= self.qhat_ + 1e-9
        sets[np.arange(len(proba)), proba.argmax(1)] = True
        if self.contiguous:
            index = np.arange(proba.shape[1])
            low = np.where(sets, index, proba.shape[1]).min(1, keepdims=True)
            high = np.where(sets, index, -1).max(1, keepdims=True)
            sets = (index >= low) & (index <= high)
        return sets

    @staticmethod
    def _scores(proba: np.ndarray) -> np.ndarray:
        """APS score of every grade: probability mass of the grades ranked at or above it (N, K)."""
        order = np.argsort(-proba, axis=1, kind="stable")
        sorted_cum = np.cumsum(np.take_along_axis(proba, order, axis=1), axis=1)
        scores = np.empty_like(proba)
        np.put_along_axis(scores, order, sorted_cum, axis=1)
        return scores


def set_labels(sets: np.ndarray) -> list[str]:
    """Human-readable sets, e.g. ``"2,3"``, one string per row of a boolean (N, K) membership array."""
    return [",".join(str(k) for k in np.flatnonzero(row)) for row in np.asarray(sets, bool)]


def _check(proba: np.ndarray) -> np.ndarray:
    """Validate a (N, K) probability array."""
    proba = np.asarray(proba, np.float64)
    if proba.ndim != 2 or not np.isfinite(proba).all() or (proba < -1e-6).any():
        raise OAKitError(f"proba: shape {proba.shape}; expected finite non-negative probabilities (N, K)")
    return proba
