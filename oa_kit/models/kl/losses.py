"""KL-grade losses: plain cross-entropy, SORD soft-ordinal cross-entropy and CORN conditional ordinal loss, plus logits → probabilities."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from oa_kit.errors import OAKitError

N_GRADES = 5
#: Loss names accepted by :func:`make_loss`; ``corn`` needs 4 logits, the others 5.
LOSSES = ("ce", "sord", "corn")


def n_outputs_for(loss: str, n_classes: int = N_GRADES) -> int:
    """Number of network logits the named loss expects."""
    _check_loss(loss)
    return n_classes - 1 if loss == "corn" else n_classes


class CrossEntropy(nn.Module):
    """Cross-entropy with optional class weights and label smoothing; logits (B, K), target (B,) int."""

    def __init__(self, weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean (weighted) cross-entropy."""
        return F.cross_entropy(logits.float(), target, weight=self.weight, label_smoothing=self.label_smoothing)


class SORDLoss(nn.Module):
    """Soft ordinal labels (Díaz & Marathe, CVPR 2019): the target is softmax(−scale·|k − y|²) over grades k.

    A wrong grade next to the truth costs less than one far away, so the loss is ordinal while the head stays a softmax.
    """

    def __init__(self, n_classes: int = N_GRADES, scale: float = 2.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        grades = torch.arange(n_classes, dtype=torch.float32)
        self.register_buffer("soft", torch.softmax(-scale * (grades[None] - grades[:, None]) ** 2, dim=1))
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean KL-divergence-equivalent soft-label cross-entropy, optionally weighted by the true grade."""
        per_sample = -(self.soft[target] * F.log_softmax(logits.float(), dim=1)).sum(1)
        if self.weight is None:
            return per_sample.mean()
        w = self.weight[target]
        return (per_sample * w).sum() / w.sum()


class CORNLoss(nn.Module):
    """CORN (Shi, Cao & Raschka 2023): K−1 conditional binary tasks P(y > k | y > k−1); logits (B, K−1)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Sum of the conditional binary cross-entropies over the rows eligible for each task, divided by their count."""
        logits = logits.float()
        total, count = logits.new_zeros(()), 0
        for k in range(logits.shape[1]):
            eligible = target >= k  # task k is conditioned on y > k-1
            if eligible.any():
                labels = (target[eligible] > k).float()
                total = total + F.binary_cross_entropy_with_logits(logits[eligible, k], labels, reduction="sum")
                count += int(eligible.sum())
        return total / max(count, 1)


def make_loss(loss: str, class_weight: torch.Tensor | None = None) -> nn.Module:
    """Build the named loss (``ce``, ``sord`` or ``corn``); class weights apply to ``ce`` and ``sord``."""
    _check_loss(loss)
    if loss == "ce":
        return CrossEntropy(weight=class_weight, label_smoothing=0.05)
    if loss == "sord":
        return SORDLoss(weight=class_weight)
    return CORNLoss()


def logits_to_proba(logits: torch.Tensor, loss: str, temperature: float = 1.0) -> torch.Tensor:
    """Grade probabilities (B, 5) from logits, after dividing by ``temperature`` (post-hoc calibration)."""
    _check_loss(loss)
    scaled = logits.float() / temperature
    if loss != "corn":
        return torch.softmax(scaled, dim=1)
    above = torch.cumprod(torch.sigmoid(scaled), dim=1)  # P(y > k), k = 0..K-2
    ones = torch.ones_like(above[:, :1])
    upper = torch.cat([ones, above], dim=1)
    lower = torch.cat([above, torch.zeros_like(ones)], dim=1)
    return (upper - lower).clamp_min(1e-7)


def class_weights(labels: torch.Tensor, n_classes: int = N_GRADES, power: float = 0.5) -> torch.Tensor:
    """Per-grade weights ∝ frequency^−power, normalised to mean 1 over samples (power 0 = unweighted)."""
    counts = torch.bincount(labels, minlength=n_classes).float().clamp_min(1)
    weight = counts ** (-power)
    return weight / (weight[labels].mean())


def _check_loss(loss: str) -> None:
    """Reject unknown loss names."""
    if loss not in LOSSES:
        raise OAKitError(f"loss: {loss!r} unknown; expected one of {', '.join(LOSSES)}")
