"""Probability calibration of raw model scores (log-odds): Platt (sigmoid) or isotonic, stored as JSON numbers.

Fitted on out-of-fold scores from the inner participant-grouped CV of :class:`ProgressionModel`, so the calibration
map never sees a knee scored by a model trained on it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from oa_kit.errors import OAKitError

CALIBRATION_METHODS: tuple[str, ...] = ("sigmoid", "isotonic", "none")


class ProbabilityCalibrator(BaseEstimator):
    """Map raw scores (log-odds) to calibrated probabilities.

    Parameters
    ----------
    method : {"sigmoid", "isotonic", "none"}
        Platt scaling (a·score + b through the logistic function; keeps the ranking; a negative slope, i.e.
        out-of-fold scores ranking the wrong way, is replaced by the event rate with a warning), isotonic regression
        (step-wise monotone; can merge scores into ties), or the plain logistic of the score.

    Attributes
    ----------
    slope_, intercept_ : float
        Platt parameters (``sigmoid``).
    x_thresholds_, y_thresholds_ : ndarray
        Isotonic knots (``isotonic``); prediction interpolates linearly between them and clips outside.
    """

    def __init__(self, method: str = "sigmoid") -> None:
        self.method = method

    def fit(self, scores: Sequence[float], y: Sequence[int]) -> ProbabilityCalibrator:
        """Fit the calibration map on (out-of-fold) raw scores and outcomes."""
        if self.method not in CALIBRATION_METHODS:
            raise OAKitError(f"calibration: {self.method!r}; expected one of {CALIBRATION_METHODS}")
        s = np.asarray(scores, dtype=float).ravel()
        y = np.asarray(y, dtype=float).ravel()
        if len(np.unique(y)) < 2:
            raise OAKitError("calibration: outcomes of a single class; expected events and non-events")
        if self.method == "sigmoid":
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(s[:, None], y)
            self.slope_, self.intercept_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])
            if self.slope_ < 0:  # out-of-fold scores rank the wrong way: no usable signal, predict the event rate
                warnings.warn(
                    "calibration: out-of-fold scores anti-correlate with outcomes; predicting the event "
                    "rate for every knee",
                    UserWarning,
                    stacklevel=2,
                )
                rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
                self.slope_, self.intercept_ = 0.0, float(np.log(rate / (1 - rate)))
        elif self.method == "isotonic":
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(s, y)
            self.x_thresholds_, self.y_thresholds_ = iso.X_thresholds_, iso.y_thresholds_
        return self

    def predict(self, scores: Sequence[float]) -> np.ndarray:
        """Calibrated probabilities for raw scores."""
        s = np.asarray(scores, dtype=float).ravel()
        if self.method == "sigmoid":
            return 1.0 / (1.0 + np.exp(-(self.slope_ * s + self.intercept_)))
        if self.method == "isotonic":
            return np.interp(s, self.x_thresholds_, self.y_thresholds_)
        return 1.0 / (1.0 + np.exp(-s))

    def to_dict(self) -> dict:
        """JSON-ready parameters / thresholds."""
        state: dict = {"method": self.method}
        if self.method == "sigmoid":
            state.update(slope=self.slope_, intercept=self.intercept_)
        elif self.method == "isotonic":
            state.update(x_thresholds=self.x_thresholds_.tolist(), y_thresholds=self.y_thresholds_.tolist())
        return state

    @classmethod
    def from_dict(cls, state: dict) -> ProbabilityCalibrator:
        """Rebuild from :meth:`to_dict` output."""
        obj = cls(method=state["method"])
        if obj.method == "sigmoid":
            obj.slope_, obj.intercept_ = float(state["slope"]), float(state["intercept"])
        elif obj.method == "isotonic":
            obj.x_thresholds_ = np.asarray(state["x_thresholds"], dtype=float)
            obj.y_thresholds_ = np.asarray(state["y_thresholds"], dtype=float)
        return obj
