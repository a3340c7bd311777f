"""``MRISegmenter``: the sklearn-style wrapper around the U-Net (load shipped weights, predict labels/probabilities, embed)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from safetensors.torch import load_file

from oa_kit.errors import OAKitError
from oa_kit.io.artifacts import verified_sidecar
from oa_kit.models.mri.network import (DEFAULT_CHANNELS, DEFAULT_STRIDES, NETWORK_CLASSES, N_NETWORK_CLASSES,
                                       bottleneck_module, build_unet)
from oa_kit.models.mri.transforms import (MODEL_SPACING_MM, check_volume, from_canonical, inplane_size,
                                          normalise_intensity, resample_slices, split_position, to_canonical)

#: Folder holding the shipped weights (``mri_segmenter.safetensors`` + ``mri_segmenter.json``).
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "mri_segmenter.safetensors"
N_HARMONISED = 10



@dataclass
class Segmentation:
    """One scan's segmentation in the file's voxel order: harmonised labels, class probabilities, knee embedding."""

    labels: np.ndarray        # (X, Y, Z) uint8, harmonised ids
    proba: np.ndarray         # (10, X, Y, Z) float32, harmonised class probabilities
    embedding: np.ndarray     # (embed_dim,) float32, mean-pooled bottleneck features


class MRISegmenter:
    """Knee MRI segmenter: 2D sagittal-slice MONAI U-Net applied with sliding-window inference.

    Parameters
    ----------
    channels, strides, num_res_units
        U-Net architecture (MONAI ``UNet`` arguments).
    spacing_mm
        In-plane (AP, SI) spacing the network works at; slices are resampled to it and back.
    roi_size
        Sliding-window size (AP, SI) in network voxels.
    sw_batch_size
        Windows per forward pass.
    weights_path
        Where :meth:`fit` stores, or :meth:`from_pretrained` loaded, the weights (informational).

    Examples
    --------
    >>> seg = MRISegmenter.from_pretrained()                      # doctest: +SKIP
    >>> labels = seg.predict(volume, affine, side="R")             # doctest: +SKIP
    """

    def __init__(self, channels: tuple[int, ...] = DEFAULT_CHANNELS, strides: tuple[int, ...] = DEFAULT_STRIDES,
                 num_res_units: int = 1, spacing_mm: float = MODEL_SPACING_MM, roi_size: tuple[int, int] = (128, 128),
                 sw_batch_size: int = 16, weights_path: str | None = None) -> None:
        self.channels = channels
        self.strides = strides
        self.num_res_units = num_res_units
        self.spacing_mm = spacing_mm
        self.roi_size = roi_size
        self.sw_batch_size = sw_batch_size
        self.weights_path = weights_path

    @property
    def embed_dim(self) -> int:
        """Length of :meth:`embed` vectors: the bottleneck channel count (``channels[-1]``)."""
        return int(self.channels[-1])

    # ----------------------------------------------------------------------------------------- loading / fitting
    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> "MRISegmenter":
        """Load weights (``.safetensors``) and their JSON metadata, verifying the sha256 recorded in the JSON.

        Parameters
        ----------
        path
            The ``.safetensors`` file; its metadata is the ``.json`` beside it. Default: the shipped weights.

        Returns
        -------
        MRISegmenter
            Ready to predict (``net_`` and ``metadata_`` set).
        """
        weights = Path(path) if path is not None else DEFAULT_WEIGHTS
        meta = verified_sidecar(weights, "MRI segmenter weights")
        arch = meta.get("architecture", {})
        model = cls(channels=tuple(arch.get("channels", DEFAULT_CHANNELS)), strides=tuple(arch.get("strides", DEFAULT_STRIDES)),
                    num_res_units=int(arch.get("num_res_units", 1)), spacing_mm=float(meta.get("spacing_mm", MODEL_SPACING_MM)),
                    roi_size=tuple(meta.get("roi_size", (128, 128))), weights_path=str(weights))
        net = model._build()
        try:
            net.load_state_dict(load_file(str(weights)))
        except RuntimeError as exc:
            raise OAKitError(f"{weights}: tensors do not match the architecture in {weights.with_suffix('.json').name}; expected matching files") from exc
        model.net_ = net.eval()
        model.metadata_ = meta
        return model

    def _build(self) -> torch.nn.Module:
        """Construct the untrained network for this configuration."""
        return build_unet(2, self.channels, self.strides, self.num_res_units)

    def fit(self, volumes: list[np.ndarray], labels: list[np.ndarray], affines: list[np.ndarray], sides: list[str],
            epochs: int = 10, seed: int = 0, out: str | Path | None = None, progress: bool = True) -> "MRISegmenter":
        """Train on in-memory volumes with harmonised labels (see ``oa_kit.models.mri.train.train_segmenter``); returns self."""
        from oa_kit.models.mri.train import SegmentationCase, train_segmenter

        cases = [SegmentationCase(f"case{i}", v, lab, a, s) for i, (v, lab, a, s) in enumerate(zip(volumes, labels, affines, sides))]
        result = train_segmenter(cases, [], out=out, epochs=epochs, seed=seed, progress=progress, segmenter=self)
        self.net_ = result.net.eval()
        self.metadata_ = result.metadata
        return self

    def _check_fitted(self) -> torch.nn.Module:
        """Return the trained network or raise a clear error."""
        net = getattr(self, "net_", None)
        if net is None:
            raise OAKitError("MRISegmenter: not fitted; expected MRISegmenter.from_pretrained() or fit() first")
        return net

    # ----------------------------------------------------------------------------------------------- inference
    def network_slices(self, volume: np.ndarray, spacing_mm: tuple[float, float, float]) -> torch.Tensor:
        """Turn a canonical right-oriented volume into normalised sagittal slices (X, 1, H, W) at the model spacing."""
        norm = normalise_intensity(volume)
        slices = torch.from_numpy(norm)[:, None]
        size = inplane_size(norm.shape[1:], spacing_mm[1:], self.spacing_mm)
        return resample_slices(slices, size)

    @torch.no_grad()
    def _canonical_proba(self, canon: np.ndarray, spacing_mm: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
        """Network-class probabilities (X, C, Y, Z) on the canonical grid and the pooled bottleneck embedding."""
        net = self._check_fitted()
        pooled: list[torch.Tensor] = []
        hook = bottleneck_module(net).register_forward_hook(lambda _m, _i, out: pooled.append(out.mean(dim=(2, 3))))
        try:
            slices = self.network_slices(canon, spacing_mm)
            logits = sliding_window_inference(slices, roi_size=self.roi_size, sw_batch_size=self.sw_batch_size,
                                              predictor=net, overlap=0.25, mode="gaussian")
        finally:
            hook.remove()
        logits = resample_slices(logits, tuple(canon.shape[1:]))
        proba = torch.softmax(logits, dim=1).numpy().astype(np.float32)
        embedding = torch.cat(pooled).mean(dim=0).numpy().astype(np.float32)
        return proba, embedding

    def segment(self, volume: np.ndarray, affine: np.ndarray, side: str) -> Segmentation:
        """Segment one scan: labels, harmonised probabilities and embedding, all in the file's voxel order.

        Parameters
        ----------
        volume
            3D image in the file's voxel order.
        affine
            4x4 voxel -> RAS mm matrix.
        side
            ``"R"`` or ``"L"``; left knees are mirrored to right orientation for the network and back afterwards.
        """
        check_volume(volume, affine)
        canon, view = to_canonical(np.asarray(volume, dtype=np.float32), affine, side)
        net_proba, embedding = self._canonical_proba(canon, view.spacing_mm)
        proba = _harmonised_proba(net_proba)
        labels = proba.argmax(axis=0).astype(np.uint8)
        proba_back = np.moveaxis(from_canonical(np.moveaxis(proba, 0, -1), view), -1, 0)
        return Segmentation(labels=from_canonical(labels, view), proba=np.ascontiguousarray(proba_back), embedding=embedding)

    def predict_proba(self, volume: np.ndarray, affine: np.ndarray, side: str) -> np.ndarray:
        """Harmonised class probabilities (10, X, Y, Z), float32, in the file's voxel order."""
        return self.segment(volume, affine, side).proba

    def predict(self, volume: np.ndarray, affine: np.ndarray, side: str) -> np.ndarray:
        """Harmonised label map (X, Y, Z), uint8, in the file's voxel order (ids as ``oa_kit.io.labels.LABELS``)."""
        return self.segment(volume, affine, side).labels

    def embed(self, volume: np.ndarray, affine: np.ndarray, side: str) -> np.ndarray:
        """Knee embedding: bottleneck features mean-pooled over all windows, shape (``embed_dim``,) float32."""
        return self.segment(volume, affine, side).embedding


def _harmonised_proba(net_proba: np.ndarray) -> np.ndarray:
    """Expand network-class probabilities (X, C, Y, Z) of a right-oriented volume to the 10 harmonised classes (10, X, Y, Z).

    Merged tibial-cartilage and meniscus probabilities go to the medial (low LR index) or lateral id by the
    compartment boundary found on the predicted tibial cartilage (emptiest LR slice between the plates).
    """
    out = np.zeros((N_HARMONISED, net_proba.shape[0], *net_proba.shape[2:]), dtype=np.float32)
    for channel in range(N_NETWORK_CLASSES):
        out[NETWORK_CLASSES[channel]] = net_proba[:, channel]
    hard = net_proba.argmax(axis=1)
    reference = hard == 4 if np.any(hard == 4) else hard == 7
    lateral = np.arange(out.shape[1]) > split_position(reference)
    for medial_id, lateral_id in ((4, 5), (8, 9)):
        out[lateral_id, lateral] = out[medial_id, lateral]
        out[medial_id, lateral] = 0.0
    return out
