"""KLNet: a small residual CNN (plain torch) mapping a (B, 1, 160, 160) knee ROI to KL-grade logits and a 256-d embedding,
and `fuse_for_inference`, its faster inference copy (BatchNorm folded into the convolutions)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.ao.quantization import fuse_modules

#: Dimension of the penultimate embedding (global-average-pooled last stage) exported for the progression models.
EMBEDDING_DIM = 256


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or 1×1 strided) shortcut, as in ResNet-18."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU()
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → (B, C_out, H/stride, W/stride)."""
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class KLNet(nn.Module):
    """Residual CNN for KL grading, sized for CPU inference (≈0.3 GFLOP per 160 px knee).

    Parameters
    ----------
    n_outputs : int
        Logits per knee: 5 for softmax losses (``ce``, ``sord``), 4 for ``corn``.
    widths : tuple of int
        Channels of the four stages; ``widths[-1]`` is the embedding dimension.
    blocks : tuple of int
        Residual blocks per stage.
    dropout : float
        Dropout before the classifier.

    Shapes: input (B, 1, H, W) float in [0, 1]; ``forward`` → (B, n_outputs); ``embed`` → (B, widths[-1]).
    The Grad-CAM target layer is ``stages[-1]`` (stride 32: 5×5 maps at 160 px).
    """

    def __init__(
        self,
        n_outputs: int = 5,
        widths: tuple[int, ...] = (32, 64, 128, EMBEDDING_DIM),
        blocks: tuple[int, ...] = (2, 2, 2, 2),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.n_outputs = n_outputs
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, 2, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
            nn.Conv2d(widths[0], widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        stages, channels = [], widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks)):
            layers = [BasicBlock(channels, width, stride=1 if index == 0 else 2)]
            layers += [BasicBlock(width, width) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, n_outputs))
        self.embedding_dim = channels

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) → penultimate embedding (B, embedding_dim)."""
        return self.pool(self.stages(self.stem(x))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) → logits (B, n_outputs)."""
        return self.head(self.embed(x))


def fuse_for_inference(model: KLNet, channels_last: bool = True) -> KLNet:
    """Inference copy of a ``KLNet``: every BatchNorm folded into its convolution, channels-last memory, no weight gradients.

    Same outputs as ``model.eval()`` up to float rounding (max |Δp| ~1e-7), about 1.5× less CPU time; the module structure
    (``stem``, ``stages``, ``pool``, ``head``, ``embed``) is kept, so Grad-CAM can still hook ``stages[-1]``. The copy holds
    no BatchNorm statistics, so it cannot be trained or saved as KL weights; keep ``model`` for that.
    """
    names = [["stem.0", "stem.1"], ["stem.3", "stem.4"]]
    for name, module in model.named_modules():
        if isinstance(module, BasicBlock):
            names += [[f"{name}.conv1", f"{name}.bn1"], [f"{name}.conv2", f"{name}.bn2"]]
            if isinstance(module.shortcut, nn.Sequential):
                names.append([f"{name}.shortcut.0", f"{name}.shortcut.1"])
    fused = fuse_modules(copy.deepcopy(model).eval(), names, inplace=True)
    fused.requires_grad_(False)
    return fused.to(memory_format=torch.channels_last) if channels_last else fused
