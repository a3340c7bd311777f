"""Grad-CAM heatmaps for the KL CNN via captum ``LayerGradCam``, upsampled to and aligned with the input ROI."""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from oa_kit.models.kl.losses import logits_to_proba


class _LogProba(nn.Module):
    """Wrap a KL network so its output is log grade probabilities (B, 5) for every loss type."""

    def __init__(self, model: nn.Module, loss: str, temperature: float = 1.0) -> None:
        super().__init__()
        self.model, self.loss, self.temperature = model, loss, temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) → (B, 5) log-probabilities."""
        return torch.log(logits_to_proba(self.model(x), self.loss, self.temperature).clamp_min(1e-12))


def grad_cam(
    model: nn.Module,
    x: torch.Tensor | np.ndarray,
    target: int | np.ndarray | None = None,
    loss: str = "sord",
    layer: nn.Module | None = None,
) -> np.ndarray:
    """Grad-CAM of the log-probability of ``target`` grades (default: each image's predicted grade).

    Parameters
    ----------
    model : torch.nn.Module
        A ``KLNet`` (its last stage ``model.stages[-1]`` is the default layer).
    x : (B, 1, H, W) array or tensor
        Preprocessed model inputs in [0, 1].
    target : int or (B,) array, optional
        Grade(s) to explain.
    loss : str
        Output type of ``model`` (``ce``/``sord`` softmax or ``corn``).
    layer : torch.nn.Module, optional
        Convolutional layer to attribute at.

    Returns
    -------
    numpy.ndarray
        (B, H, W) float32 heatmaps, ReLU-ed, bilinearly upsampled to the input grid and scaled to [0, 1] per image
        (all-zero where the gradient evidence is nil). Pixel (i, j) of a map refers to pixel (i, j) of the input.
    """
    inputs = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not torch.is_tensor(x) else x.float()
    if inputs.ndim != 4 or inputs.shape[1] != 1:
        raise ValueError(f"x: shape {tuple(inputs.shape)}; expected (B, 1, H, W)")
    was_training = model.training
    model.eval()
    wrapped = _LogProba(model, loss)
    if target is None:
        with torch.no_grad():
            target = wrapped(inputs).argmax(1)
    target = torch.as_tensor(np.broadcast_to(np.asarray(target), (len(inputs),)).copy(), dtype=torch.long)
    cam = LayerGradCam(wrapped, layer if layer is not None else model.stages[-1])
    attribution = cam.attribute(inputs.requires_grad_(True), target=target, relu_attributions=True)
    upsampled = LayerAttribution.interpolate(
        attribution.detach(), tuple(inputs.shape[-2:]), interpolate_mode="bilinear"
    )
    maps = upsampled[:, 0].clamp_min(0).numpy()
    peak = maps.reshape(len(maps), -1).max(1).reshape(-1, 1, 1)
    model.train(was_training)
    return np.where(peak > 0, maps / np.where(peak > 0, peak, 1), 0.0).astype(np.float32)


def grader_gradcam(grader, X: np.ndarray, target: int | np.ndarray | None = None) -> np.ndarray:
    """Grad-CAM maps (N, S, S) in [0, 1] of a calibrated :class:`oa_kit.models.kl.predict.KLGrader` for its
    preprocessed inputs X (N, 1, S, S), aligned pixel-for-pixel with them (default target: the predicted grade)."""
    return grad_cam(grader.inference_model_, grader.input_tensor(X), target=target, loss=grader.loss_)
