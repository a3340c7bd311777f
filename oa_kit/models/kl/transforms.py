"""Batched radiograph augmentations for KL training (torch, run on the training device on whole (B, 1, H, W) batches).

Each transform is a small seeded callable with one job; ``KLAugment`` composes them. They work on batches on the GPU
because the training set lives in device memory (per-sample CPU transforms would starve an accelerator).
No vertical flips; no horizontal flips either, because every knee is already mirrored to right orientation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


class _Seeded:
    """Holds a seed and a lazily created per-device ``torch.Generator``."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def _gen(self, device: torch.device) -> torch.Generator:
        """The generator for ``device`` (created on first use from ``seed``)."""
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def _uniform(self, n: int, low: float, high: float, device: torch.device) -> torch.Tensor:
        """n draws from U(low, high) on ``device``."""
        return low + (high - low) * torch.rand(n, generator=self._gen(device), device=device)


class RandomAffine(_Seeded):
    """Small rotation (±``rotate_deg``), isotropic scale and translation (fraction of the side), border padding."""

    def __init__(
        self, rotate_deg: float = 10.0, scale: tuple[float, float] = (0.9, 1.12), translate: float = 0.06, seed: int = 0
    ) -> None:
        super().__init__(seed)
        self.rotate_deg, self.scale, self.translate = rotate_deg, scale, translate

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → same shape, each image warped by its own random affine."""
        n, dev = x.shape[0], x.device
        angle = self._uniform(n, -self.rotate_deg, self.rotate_deg, dev) * math.pi / 180
        scale = self._uniform(n, *self.scale, dev)
        shift = self._uniform(2 * n, -self.translate, self.translate, dev).view(n, 2) * 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class RandomGammaContrast(_Seeded):
    """Random gamma, contrast about the image mean and brightness shift; output clipped to [0, 1]."""

    def __init__(
        self,
        gamma: tuple[float, float] = (0.75, 1.35),
        contrast: tuple[float, float] = (0.8, 1.2),
        brightness: float = 0.06,
        seed: int = 1,
    ) -> None:
        super().__init__(seed)
        self.gamma, self.contrast, self.brightness = gamma, contrast, brightness

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] → same shape in [0, 1]."""
        n, dev = x.shape[0], x.device
        shape = (n, 1, 1, 1)
        log_gamma = self._uniform(n, math.log(self.gamma[0]), math.log(self.gamma[1]), dev).view(shape)
        x = x.clamp(1e-6, 1.0) ** torch.exp(log_gamma)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * self._uniform(n, *self.contrast, dev).view(shape) + mean
        x = x + self._uniform(n, -self.brightness, self.brightness, dev).view(shape)
        return x.clamp(0.0, 1.0)


class RandomNoise(_Seeded):
    """Additive Gaussian noise with a random SD up to ``max_std`` per image."""

    def __init__(self, max_std: float = 0.03, seed: int = 2) -> None:
        super().__init__(seed)
        self.max_std = max_std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → same shape, clipped to [0, 1]."""
        std = self._uniform(x.shape[0], 0.0, self.max_std, x.device).view(-1, 1, 1, 1).to(x.dtype)
        noise = torch.randn(x.shape, generator=self._gen(x.device), device=x.device, dtype=x.dtype)
        return (x + std * noise).clamp(0.0, 1.0)


class Compose:
    """Apply transforms in order (same semantics as MONAI ``Compose``)."""

    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Run every transform on the batch."""
        for transform in self.transforms:
            x = transform(x)
        return x


def kl_augment(seed: int = 0, strength: float = 1.0) -> Compose:
    """The standard KL training augmentation (affine, gamma/contrast, noise), ranges scaled by ``strength``, seeded from ``seed``."""
    s = strength
    return Compose(
        [
            RandomAffine(rotate_deg=10.0 * s, scale=(1 - 0.1 * s, 1 + 0.12 * s), translate=0.06 * s, seed=seed),
            RandomGammaContrast(
                gamma=(0.75**s, 1.35**s), contrast=(1 - 0.2 * s, 1 + 0.2 * s), brightness=0.06 * s, seed=seed + 1
            ),
            RandomNoise(max_std=0.03 * s, seed=seed + 2),
        ]
    )


def tta_views(x: torch.Tensor, n_views: int) -> list[torch.Tensor]:
    """Deterministic test-time views of a batch: the original plus ``n_views − 1`` small zooms/shifts (no flips)."""
    views = [x]
    settings = [(1.06, 0.0, 0.0), (0.94, 0.0, 0.0), (1.0, 0.03, 0.0), (1.0, -0.03, 0.0), (1.0, 0.0, 0.03)]
    for zoom, dx, dy in settings[: max(n_views - 1, 0)]:
        theta = torch.tensor([[1 / zoom, 0.0, dx * 2], [0.0, 1 / zoom, dy * 2]], dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        views.append(F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False))
    return views
