"""The segmentation network: a small MONAI U-Net and the mapping from its output channels to harmonised labels."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import torch
from monai.networks.nets import UNet

#: Network output channel -> harmonised label id (oa_kit.io.labels.LABELS). Medial/lateral tibial cartilage (4/5)
#: and menisci (8/9) are one channel each: a sagittal slice cannot tell medial from lateral, so the split is made
#: afterwards from the position along LR (see ``oa_kit.models.mri.transforms.split_medial_lateral``).
NETWORK_CLASSES = MappingProxyType({0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 7, 7: 8})
N_NETWORK_CLASSES = len(NETWORK_CLASSES)
#: Default architecture (kept small so CPU segmentation + biomarkers stays well under 10 s per volume).
DEFAULT_CHANNELS = (8, 16, 32, 64)
DEFAULT_STRIDES = (2, 2, 2)


def build_unet(
    spatial_dims: int = 2,
    channels: tuple[int, ...] = DEFAULT_CHANNELS,
    strides: tuple[int, ...] = DEFAULT_STRIDES,
    num_res_units: int = 1,
    in_channels: int = 1,
) -> UNet:
    """Build the MONAI U-Net (input (B, in_channels, H, W[, D]) -> logits (B, N_NETWORK_CLASSES, H, W[, D]))."""
    return UNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=N_NETWORK_CLASSES,
        channels=tuple(channels),
        strides=tuple(strides),
        num_res_units=num_res_units,
    )


def expand_input_channels(
    state: dict[str, torch.Tensor], target: dict[str, torch.Tensor], centre: int
) -> dict[str, torch.Tensor]:
    """Widen one-input-channel weights (a 2D model) to a network with more input channels (2.5D) that starts equal.

    Every tensor of ``state`` that reads the image (the first convolution and, with residual units, its input
    projection) has shape (out, 1, ...) where ``target`` has (out, C, ...): it becomes zeros with the old kernel at
    input channel ``centre``, so the widened network computes exactly what the 2D one did on its centre channel.
    Other tensors are kept as they are (``load_state_dict`` checks them).
    """
    out = dict(state)
    for key, value in state.items():
        want = target.get(key)
        if want is None or want.shape == value.shape:
            continue
        if (
            value.ndim < 2
            or value.shape[1] != 1
            or value.shape[:1] + value.shape[2:] != want.shape[:1] + want.shape[2:]
        ):
            continue
        wide = torch.zeros(want.shape, dtype=value.dtype)
        wide[:, centre] = value[:, 0]
        out[key] = wide
    return out


def bottleneck_module(net: UNet) -> torch.nn.Module:
    """Return the innermost (bottleneck) block of a MONAI U-Net; its output has ``channels[-1]`` features."""
    block = net.model
    while isinstance(block, torch.nn.Sequential) and len(block) == 3 and hasattr(block[1], "submodule"):
        block = block[1].submodule
    return block


def network_to_harmonised(labels: np.ndarray) -> np.ndarray:
    """Map network class indices to harmonised label ids (merged channels map to the medial id)."""
    lut = np.array([NETWORK_CLASSES[i] for i in range(N_NETWORK_CLASSES)], dtype=np.uint8)
    return lut[labels]


def harmonised_to_network(labels: np.ndarray) -> np.ndarray:
    """Map harmonised label ids (0-9) to network classes, merging medial/lateral tibial cartilage and menisci."""
    lut = np.zeros(10, dtype=np.int64)
    for channel, label in NETWORK_CLASSES.items():
        lut[label] = channel
    lut[5] = lut[4]
    lut[9] = lut[8]
    return lut[np.asarray(labels, dtype=np.int64)]
