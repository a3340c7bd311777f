"""Post-hoc temperature scaling (Guo et al. 2017) of KL-grade logits, fitted on validation by minimising the NLL."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from oa_kit.errors import OAKitError
from oa_kit.models.kl.losses import logits_to_proba


class TemperatureScaler:
    """Divide logits by one temperature T > 0 chosen to minimise the validation negative log-likelihood.

    Parameters
    ----------
    loss : {"ce", "sord", "corn"}
        How logits map to probabilities (softmax, or CORN's cumulative product).
    bounds : (float, float)
        Search interval for T.

    Attributes
    ----------
    temperature_ : float
    nll_before_, nll_after_ : float   validation NLL at T = 1 and at ``temperature_``
    """

    def __init__(self, loss: str = "sord", bounds: tuple[float, float] = (0.05, 20.0)) -> None:
        self.loss = loss
        self.bounds = bounds

    def fit(self, logits: np.ndarray, y: np.ndarray) -> TemperatureScaler:
        """Fit T on logits (N, K) and true grades y (N,)."""
        logits, y = _check(logits, y)
        result = minimize_scalar(
            lambda t: self._nll(logits, y, t), bounds=self.bounds, method="bounded", options={"xatol": 1e-4}
        )
        self.temperature_ = float(result.x)
        self.nll_before_, self.nll_after_ = self._nll(logits, y, 1.0), self._nll(logits, y, self.temperature_)
        return self

    def predict_proba(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated grade probabilities (N, 5)."""
        if not hasattr(self, "temperature_"):
            raise OAKitError("TemperatureScaler: not fitted; expected fit(logits, y) first")
        return logits_to_proba(torch.as_tensor(np.asarray(logits, np.float32)), self.loss, self.temperature_).numpy()

    def _nll(self, logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
        """Mean negative log-likelihood of the true grades at ``temperature``."""
        proba = logits_to_proba(torch.as_tensor(logits), self.loss, temperature).numpy()
        return float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def _check(logits: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate (N, K) logits against N integer grades."""
    logits, y = np.asarray(logits, np.float32), np.asarray(y).astype(np.int64)
    if logits.ndim != 2 or len(logits) != len(y) or len(y) == 0:
        raise OAKitError(f"logits: shape {logits.shape} with {len(y)} labels; expected (N, K) logits and N grades")
    return logits, y
