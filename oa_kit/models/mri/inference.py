"""``MRISegmenter``: the sklearn-style wrapper around the U-Net (load shipped weights, predict labels/probabilities, embed)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import nibabel as nib
import numpy as np
import torch
from monai.inferers import sliding_window_inference
from safetensors.torch import load_file

from oa_kit.errors import OAKitError
from oa_kit.hugepages import small_pages
from oa_kit.io.artifacts import verified_sidecar
from oa_kit.models.mri.network import (
    DEFAULT_CHANNELS,
    DEFAULT_STRIDES,
    N_NETWORK_CLASSES,
    NETWORK_CLASSES,
    bottleneck_module,
    build_unet,
)
from oa_kit.models.mri.postprocess import clean_labels, voxel_spacing_mm
from oa_kit.models.mri.train import (
    SegmentationCase,
    TrainResult,
    _metadata,
    save_weights,
    train_segmenter,
)
from oa_kit.models.mri.transforms import (
    CONTEXT_OFFSETS,
    MODEL_SPACING_MM,
    CanonicalView,
    check_volume,
    context_stack,
    inplane_size,
    percentile_range,
    resample_slices,
    scale_intensity,
    split_position,
)

#: Folder holding the shipped weights (``.safetensors`` + their ``.json`` sidecars).
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
#: The shipped weights by name. ``synthetic`` (the default): trained on the synthetic cohort's phantoms, the best
#: on them (cartilage Dice 0.96-0.97) and unusable on real contrasts. ``real``: contrast-agnostic (SynthSeg-style
#: training on real OAI label maps), for real scans; meets the real-contrast template targets, 0.77-0.88 on the
#: phantoms. The model card has both sets of figures.
SHIPPED_WEIGHTS = MappingProxyType(
    {
        "synthetic": WEIGHTS_DIR / "mri_segmenter.safetensors",
        "real": WEIGHTS_DIR / "mri_segmenter_real.safetensors",
    }
)
DEFAULT_WEIGHTS = SHIPPED_WEIGHTS["synthetic"]
#: sha256 of the shipped weights and sidecars, pinned in code (a shipped file edited in place is refused).
SHIPPED_SHA256 = {
    "mri_segmenter.safetensors": "d74f10800467cdabc45c099a4944880fb78be53ba96e57fd753ec3a156f60c7d",
    "mri_segmenter.json": "538d670620fedafee255f7000959f8a60b4f6b025707648579e9e68d6ac26f27",
    "mri_segmenter_real.safetensors": "dfcd75a45cca6c6ebc2cd4ddb8e6a01caf5f48e1c0a27ed22c433a75a730c29b",
    "mri_segmenter_real.json": "f35972d6b28d67fafc478ff7d264382ce42c22a36521f530dfbed4e64e296ea9",
}
N_HARMONISED = 10
#: Sidecar settings :meth:`MRISegmenter.from_pretrained` reads: dotted key -> (type, low, high, length), bounds
#: inclusive; length None for one number, 0 for a non-empty list, n for a list of exactly n numbers.
SIDECAR_FIELDS = MappingProxyType(
    {
        "architecture.spatial_dims": (int, 2, 2, None),
        "architecture.channels": (int, 1, 4096, 0),
        "architecture.strides": (int, 1, 8, 0),
        "architecture.num_res_units": (int, 0, 16, None),
        "architecture.out_channels": (int, N_NETWORK_CLASSES, N_NETWORK_CLASSES, None),
        "spacing_mm": (float, 0.05, 5.0, None),
        "roi_size": (int, 8, 4096, 2),
    }
)
#: Settings that files written before the 2.5D option lack: checked the same way when present, else these defaults
#: (a one-channel 2D model).
SIDECAR_OPTIONAL = MappingProxyType(
    {"context_mm": ((float, 0.0, 50.0, None), 0.0), "architecture.in_channels": ((int, 1, 3, None), None)}
)
#: Network class -> harmonised id, as a lookup table (merged channels map to the medial id).
_NETWORK_TO_HARMONISED = np.array([NETWORK_CLASSES[c] for c in range(N_NETWORK_CLASSES)], dtype=np.uint8)


# ----------------------------------------------------------------------------------------------- probabilities
#: Harmonised label id -> network channel (medial/lateral tibial cartilage and menisci share one channel each).
HARMONISED_CHANNEL = MappingProxyType({**{label: channel for channel, label in NETWORK_CLASSES.items()}, 5: 4, 9: 7})
#: Harmonised ids that exist only on the medial (low LR index) or lateral side of the compartment split.
MEDIAL_IDS, LATERAL_IDS = (4, 8), (5, 9)


class ClassProbabilities:
    """Harmonised class probabilities (10, X, Y, Z) of one scan, stored compactly and read one class at a time.

    Behaves like the float32 array for reading (``shape``, ``proba[k]``, ``proba[:, mask]``, ``np.asarray(proba)``)
    but keeps only the network's 8 channels as float16 in the file's voxel order plus a boolean medial/lateral
    split (17 instead of 40 bytes per voxel: 0.37 GiB instead of 0.88 GiB at OAI DESS geometry). float16 keeps
    3 significant digits over the whole [6e-8, 1] range, far below the segmentation's own uncertainty, and every
    read returns float32 so sums do not overflow.
    """

    ndim = 4
    dtype = np.dtype(np.float32)

    def __init__(self, channels: list[np.ndarray], lateral: np.ndarray) -> None:
        self.channels = channels  # N_NETWORK_CLASSES arrays (X, Y, Z) float16, file voxel order
        self.lateral = lateral  # (X, Y, Z) bool: voxel lies on the lateral side of the compartment split

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(10, X, Y, Z), as the dense array would have."""
        return (N_HARMONISED, *self.channels[0].shape)

    def __len__(self) -> int:
        """Number of harmonised classes (10)."""
        return N_HARMONISED

    def channel(self, label: int, region: tuple = ()) -> np.ndarray:
        """Probability of harmonised class ``label`` as a new float32 array: every voxel, or only ``region`` (an index
        into (X, Y, Z), e.g. a crop box of slices, which converts just that part)."""
        if not 0 <= int(label) < N_HARMONISED:
            raise OAKitError(f"label: got {label}; expected a harmonised id 0-{N_HARMONISED - 1}")
        half = self.channels[HARMONISED_CHANNEL[int(label)]][region]
        out = torch.from_numpy(np.ascontiguousarray(half)).float().numpy() if half.ndim else np.float32(half)
        if label in MEDIAL_IDS + LATERAL_IDS:
            keep = self.lateral[region] if label in LATERAL_IDS else ~self.lateral[region]
            out = np.where(keep, out, np.float32(0.0))
        return out

    def at(self, mask: np.ndarray) -> np.ndarray:
        """All 10 class probabilities at the voxels of a boolean ``mask`` (X, Y, Z): (10, n) float32, as ``a[:, mask]``."""
        values = np.stack([c[mask] for c in self.channels]).astype(np.float32)
        lateral = self.lateral[mask]
        out = np.stack([values[HARMONISED_CHANNEL[label]] for label in range(N_HARMONISED)])
        for label in MEDIAL_IDS:
            out[label, lateral] = 0.0
        for label in LATERAL_IDS:
            out[label, ~lateral] = 0.0
        return out

    def __getitem__(self, key):
        """NumPy-style reading; class-by-class where possible so the dense 10-class map is never built."""
        if isinstance(key, (int, np.integer)):
            return self.channel(_class_index(key))
        if isinstance(key, tuple) and key and isinstance(key[0], (int, np.integer)):
            return self.channel(_class_index(key[0]), key[1:])
        if (
            isinstance(key, tuple)
            and len(key) == 2
            and key[0] == slice(None)
            and isinstance(key[1], np.ndarray)
            and key[1].dtype == bool
            and key[1].shape == self.shape[1:]
        ):
            return self.at(key[1])
        if isinstance(key, tuple) and key and key[0] == slice(None):
            return np.stack([self.channel(label)[key[1:]] for label in range(N_HARMONISED)])
        return np.asarray(self)[key]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The dense (10, X, Y, Z) float32 array (memory: 10 x 4 bytes per voxel)."""
        dense = np.stack([self.channel(label) for label in range(N_HARMONISED)])
        return dense if dtype is None else dense.astype(dtype)


def _class_index(key: int) -> int:
    """A class index as NumPy reads it: negative counts from the end; out of range is an IndexError."""
    if not -N_HARMONISED <= int(key) < N_HARMONISED:
        raise IndexError(f"class index {key} is out of bounds for {N_HARMONISED} harmonised classes")
    return int(key) % N_HARMONISED


@dataclass
class Segmentation:
    """One scan's segmentation in the file's voxel order: harmonised labels, class probabilities, knee embedding."""

    labels: np.ndarray  # (X, Y, Z) uint8, harmonised ids
    proba: ClassProbabilities  # reads like a (10, X, Y, Z) float32 array of harmonised class probabilities
    embedding: np.ndarray  # (embed_dim,) float32, mean-pooled bottleneck features


def first_argmax(proba: torch.Tensor) -> torch.Tensor:
    """Class index (B, H, W) uint8 of the largest of (B, C, H, W) probabilities, the first on ties (as ``argmax``).

    One comparison per class over contiguous planes: about 3x faster on CPU than ``argmax`` over the strided class
    axis (and 10x than NumPy's), which was a fifth of the segmentation time at OAI DESS size.
    """
    best = proba[:, 0].clone()
    index = torch.zeros(best.shape, dtype=torch.uint8)
    for c in range(1, proba.shape[1]):
        index.masked_fill_(proba[:, c] > best, c)
        torch.maximum(best, proba[:, c], out=best)
    return index


# ---------------------------------------------------------------------------------------------------- geometry
def canonical_geometry(affine: np.ndarray, side: str) -> CanonicalView:
    """How :func:`~oa_kit.models.mri.transforms.to_canonical` would reorient a scan, without copying its voxels."""
    if side not in ("R", "L"):
        raise OAKitError(f"side: got {side!r}; expected 'R' or 'L'")
    affine = np.asarray(affine, dtype=float)
    ornt = nib.orientations.io_orientation(affine)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    spacing = tuple(float(zooms[int(ax)]) for ax in np.argsort(ornt[:, 0]))
    return CanonicalView(ornt=ornt, mirrored=side == "L", spacing_mm=spacing)


def canonical_view(array: np.ndarray, view: CanonicalView) -> np.ndarray:
    """A (writable) view of a file-order 3D array in canonical right-knee RAS order (LR, AP, SI): no copy."""
    canon = nib.orientations.apply_orientation(array, view.ornt)
    return canon[::-1] if view.mirrored else canon


class MRISegmenter:
    """Knee MRI segmenter: 2D (or 2.5D) sagittal-slice MONAI U-Net applied with sliding-window inference.

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
    slice_batch
        Sagittal slices resampled, segmented and resampled back together: bounds the working memory
        (about ``slice_batch`` x 20 MB at OAI DESS geometry) without changing any result.
    weights_path
        Where :meth:`fit` stores, or :meth:`from_pretrained` loaded, the weights (informational).
    context_mm
        0 (default): 2D, the network sees one sagittal slice. > 0: 2.5D, it also sees the volume ``context_mm`` mm
        either side along LR (linear interpolation between slices, clamped at the edges) as two more input
        channels, e.g. where the fluid film between touching cartilage plates is thinner than one slice.
    overlap
        Sliding-window overlap fraction.
    clean
        Anatomical clean-up of the labels (:mod:`oa_kit.models.mri.postprocess`): the largest piece of each bone, and
        only cartilage lying on its own bone (the probabilities are left as the network gave them).

    Examples
    --------
    >>> seg = MRISegmenter.from_pretrained()                      # doctest: +SKIP
    >>> labels = seg.predict(volume, affine, side="R")             # doctest: +SKIP
    """

    def __init__(
        self,
        channels: tuple[int, ...] = DEFAULT_CHANNELS,
        strides: tuple[int, ...] = DEFAULT_STRIDES,
        num_res_units: int = 1,
        spacing_mm: float = MODEL_SPACING_MM,
        roi_size: tuple[int, int] = (128, 128),
        sw_batch_size: int = 16,
        slice_batch: int = 16,
        weights_path: str | None = None,
        context_mm: float = 0.0,
        overlap: float = 0.25,
        clean: bool = True,
    ) -> None:
        self.channels = channels
        self.strides = strides
        self.num_res_units = num_res_units
        self.spacing_mm = spacing_mm
        self.roi_size = roi_size
        self.sw_batch_size = sw_batch_size
        self.slice_batch = slice_batch
        self.weights_path = weights_path
        self.context_mm = context_mm
        self.overlap = overlap
        self.clean = clean

    @property
    def embed_dim(self) -> int:
        """Length of :meth:`embed` vectors: the bottleneck channel count (``channels[-1]``)."""
        return int(self.channels[-1])

    @property
    def weights_sha256(self) -> str:
        """sha256 of the weights file this segmenter was loaded from or saved to ("unsaved" for one in memory): what
        its embeddings are tied to."""
        return str(getattr(self, "metadata_", {}).get("sha256", "unsaved"))

    @property
    def in_channels(self) -> int:
        """Network input channels: 1 for 2D (``context_mm == 0``), 3 for 2.5D (the slice and its two neighbours)."""
        return len(CONTEXT_OFFSETS) if self.context_mm > 0 else 1

    # ----------------------------------------------------------------------------------------- loading / fitting
    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> MRISegmenter:
        """Load weights (``.safetensors``) and their JSON metadata, verifying the sha256 recorded in the JSON.

        Parameters
        ----------
        path
            A shipped name, ``"synthetic"`` (the default) or ``"real"`` (contrast-agnostic, for real scans; see
            :data:`SHIPPED_WEIGHTS`), or a ``.safetensors`` file whose metadata is the ``.json`` beside it.

        Returns
        -------
        MRISegmenter
            Ready to predict (``net_`` and ``metadata_`` set).
        """
        weights = weights_file(path)
        meta = weights_metadata(weights)
        settings = sidecar_settings(meta, weights.with_suffix(".json"))
        model = cls(
            channels=tuple(settings["architecture.channels"]),
            strides=tuple(settings["architecture.strides"]),
            num_res_units=settings["architecture.num_res_units"],
            spacing_mm=settings["spacing_mm"],
            roi_size=tuple(settings["roi_size"]),
            weights_path=str(weights),
            context_mm=settings["context_mm"],
        )
        declared = settings["architecture.in_channels"]
        if declared is not None and declared != model.in_channels:
            raise OAKitError(
                f"{weights.with_suffix('.json')}: architecture.in_channels {declared} does not fit "
                f"context_mm {model.context_mm}; expected {model.in_channels}"
            )
        net = model._build()
        try:
            net.load_state_dict(load_file(str(weights)))
        except RuntimeError as exc:
            raise OAKitError(
                f"{weights}: tensors do not match the architecture in {weights.with_suffix('.json').name}; expected matching files"
            ) from exc
        model.net_ = net.eval()
        model.metadata_ = meta
        return model

    def _build(self) -> torch.nn.Module:
        """Construct the untrained network for this configuration."""
        return build_unet(2, self.channels, self.strides, self.num_res_units, in_channels=self.in_channels)

    def fit(
        self,
        volumes: list[np.ndarray],
        labels: list[np.ndarray],
        affines: list[np.ndarray],
        sides: list[str],
        epochs: int = 10,
        seed: int = 0,
        out: str | Path | None = None,
        progress: bool = True,
    ) -> MRISegmenter:
        """Train on in-memory volumes with harmonised labels (see ``oa_kit.models.mri.train.train_segmenter``); returns self."""

        cases = [
            SegmentationCase(f"case{i}", v, lab, a, s)
            for i, (v, lab, a, s) in enumerate(zip(volumes, labels, affines, sides))
        ]
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
        """Turn a canonical right-oriented volume into normalised sagittal network inputs (X, in_channels, H, W)
        at the model spacing (2.5D: each slice with the volume ``context_mm`` either side, see :meth:`input_slices`)."""
        return self.input_slices(volume, 0, volume.shape[0], percentile_range(volume), spacing_mm)

    def input_slices(
        self,
        canon: np.ndarray,
        start: int,
        stop: int,
        intensity: tuple[float, float],
        spacing_mm: tuple[float, float, float],
    ) -> torch.Tensor:
        """Network input (B, in_channels, H, W) of canonical slices ``start:stop`` of a (LR, AP, SI) volume.

        Intensities are scaled with the whole volume's percentiles ``intensity``, then resampled in-plane to the
        model spacing; for 2.5D the neighbour channels are sampled ``context_mm`` either side along LR
        (:func:`~oa_kit.models.mri.transforms.context_stack`).
        """
        if self.context_mm > 0:
            stack = context_stack(canon, spacing_mm[0], self.context_mm, start, stop, intensity=intensity)
            slices = torch.from_numpy(stack)
        else:
            slices = torch.from_numpy(scale_intensity(canon[start:stop], *intensity))[:, None]
        size = inplane_size(canon.shape[1:], spacing_mm[1:], self.spacing_mm)
        return resample_slices(slices, size)

    def _slice_proba(
        self,
        net: torch.nn.Module,
        canon: np.ndarray,
        part: slice,
        intensity: tuple[float, float],
        spacing_mm: tuple[float, float, float],
    ) -> torch.Tensor:
        """Network-class probabilities (B, C, AP, SI) float32 of the canonical sagittal slices ``canon[part]``.

        Slices are normalised, resampled in-plane to the model spacing (:meth:`input_slices`), segmented (one
        forward pass per ``sw_batch_size`` slices when a slice is exactly the ROI size, sliding windows with
        Gaussian blending otherwise) and the logits resampled back to the scan grid before the softmax.
        """
        slices = self.input_slices(canon, part.start, min(part.stop, canon.shape[0]), intensity, spacing_mm)
        if tuple(slices.shape[-2:]) == tuple(self.roi_size):
            logits = torch.cat(
                [net(slices[i : i + self.sw_batch_size]) for i in range(0, len(slices), self.sw_batch_size)]
            )
        else:
            logits = sliding_window_inference(
                slices,
                roi_size=self.roi_size,
                sw_batch_size=self.sw_batch_size,
                predictor=net,
                overlap=self.overlap,
                mode="gaussian",
            )
        logits = resample_slices(logits, tuple(canon.shape[1:]))
        return torch.softmax(logits, dim=1)

    @torch.inference_mode()
    @small_pages()
    def segment(self, volume: np.ndarray, affine: np.ndarray, side: str) -> Segmentation:
        """Segment one scan: labels, harmonised probabilities and embedding, all in the file's voxel order.

        Slices go through the network ``slice_batch`` at a time and their results are written straight into
        file-order outputs through canonical views, so memory stays bounded (float16 probabilities, no dense
        10-class map, one float32 copy of the input in canonical order) and the labels equal a whole-volume pass.

        Parameters
        ----------
        volume
            3D image in the file's voxel order.
        affine
            4x4 voxel -> RAS mm matrix.
        side
            ``"R"`` or ``"L"``; left knees are mirrored to right orientation for the network and back afterwards.

        Returns
        -------
        Segmentation
            ``labels`` (X, Y, Z) uint8, ``proba`` (reads as (10, X, Y, Z) float32), ``embedding`` (``embed_dim``,).
        """
        check_volume(volume, affine)
        net = self._check_fitted()
        image = np.asarray(volume, dtype=np.float32)
        view = canonical_geometry(affine, side)
        # one contiguous copy of the input in canonical order: NIfTI volumes come in Fortran order, and gathering
        # their LR slices through the view costs several times the copy (real-size scans: 4.5 s against 0.2 s)
        canon = np.ascontiguousarray(canonical_view(image, view))
        intensity = percentile_range(image)
        labels = np.zeros(image.shape, dtype=np.uint8)
        channels = [np.zeros(image.shape, dtype=np.float16) for _ in range(N_NETWORK_CLASSES)]
        canon_labels, canon_channels = canonical_view(labels, view), [canonical_view(c, view) for c in channels]
        profile = np.zeros((canon.shape[0], 2))  # per LR slice: voxels of tibial cartilage, of meniscus
        pooled: list[torch.Tensor] = []
        hook = bottleneck_module(net).register_forward_hook(lambda _m, _i, out: pooled.append(out.mean(dim=(2, 3))))
        try:
            for start in range(0, canon.shape[0], self.slice_batch):
                part = slice(start, start + self.slice_batch)
                proba = self._slice_proba(net, canon, part, intensity, view.spacing_mm)
                hard = first_argmax(proba).numpy()
                half = proba.to(torch.float16).numpy()  # torch casts tiny values ~10x faster than NumPy
                for c, target in enumerate(canon_channels):
                    target[part] = half[:, c]
                canon_labels[part] = _NETWORK_TO_HARMONISED[hard]
                profile[part] = np.stack([(hard == 4).sum(axis=(1, 2)), (hard == 7).sum(axis=(1, 2))], axis=1)
        finally:
            hook.remove()
        lateral = np.zeros(image.shape, dtype=bool)
        reference = profile[:, 0] if profile[:, 0].any() else profile[:, 1]
        canonical_view(lateral, view)[np.arange(canon.shape[0]) > split_position(reference[:, None])] = True
        for medial_id, lateral_id in zip(MEDIAL_IDS, LATERAL_IDS):
            labels[(labels == medial_id) & lateral] = lateral_id
        if self.clean:
            labels = clean_labels(labels, voxel_spacing_mm(affine))
        embedding = torch.cat(pooled).mean(dim=0).numpy().astype(np.float32)
        return Segmentation(labels=labels, proba=ClassProbabilities(channels, lateral), embedding=embedding)

    def predict_proba(self, volume: np.ndarray, affine: np.ndarray, side: str) -> np.ndarray:
        """Harmonised class probabilities (10, X, Y, Z), dense float32, in the file's voxel order."""
        return np.asarray(self.segment(volume, affine, side).proba)

    def predict(self, volume: np.ndarray, affine: np.ndarray, side: str) -> np.ndarray:
        """Harmonised label map (X, Y, Z), uint8, in the file's voxel order (ids as ``oa_kit.io.labels.LABELS``)."""
        return self.segment(volume, affine, side).labels

    def embed(self, volume: np.ndarray, affine: np.ndarray, side: str) -> np.ndarray:
        """Knee embedding: bottleneck features mean-pooled over all windows, shape (``embed_dim``,) float32."""
        return self.segment(volume, affine, side).embedding


# ------------------------------------------------------------------------------------------------------ sidecar
def weights_file(weights: str | Path | None) -> Path:
    """The ``.safetensors`` file a weights argument means: None -> the default shipped weights, a name of
    :data:`SHIPPED_WEIGHTS` (``synthetic``, ``real``) -> that file, anything else -> a path."""
    if weights is None:
        return DEFAULT_WEIGHTS
    if str(weights) in SHIPPED_WEIGHTS:
        return SHIPPED_WEIGHTS[str(weights)]
    if Path(weights).suffix != ".safetensors" and not Path(weights).exists():
        raise OAKitError(
            f"weights: {str(weights)!r} is no file; expected a shipped name ({', '.join(SHIPPED_WEIGHTS)}) or a "
            ".safetensors file"
        )
    return Path(weights)


def shipped_name(sha256: str) -> str | None:
    """The :data:`SHIPPED_WEIGHTS` name of the shipped weights with this sha256, else None."""
    return next((n for n, p in SHIPPED_WEIGHTS.items() if SHIPPED_SHA256.get(p.name) == sha256), None)


def weights_metadata(weights: str | Path | None = None) -> dict:
    """The sidecar of ``weights`` (sha256, training data, settings), verified against its file (and, for shipped
    weights, against the hashes pinned in oa_kit) without building the network: what a result read back from disk
    needs to name and check its segmenter."""
    path = weights_file(weights)
    shipped = {p.resolve() for p in SHIPPED_WEIGHTS.values()}
    return verified_sidecar(path, "MRI segmenter weights", SHIPPED_SHA256 if path.resolve() in shipped else None)


def sidecar_settings(meta: dict, source: Path) -> dict:
    """The settings of an MRI weights sidecar, typed and range-checked (:data:`SIDECAR_FIELDS`, optional ones with
    their defaults); a missing key, a wrong type or an out-of-range value is one line naming ``source`` and the key."""
    out = {key: _sidecar_value(meta, key, spec, source) for key, spec in SIDECAR_FIELDS.items()}
    for key, (spec, default) in SIDECAR_OPTIONAL.items():
        present = _lookup(meta, key, source) is not _MISSING
        out[key] = _sidecar_value(meta, key, spec, source) if present else default
    channels, strides = out["architecture.channels"], out["architecture.strides"]
    if len(strides) != len(channels) - 1:
        raise OAKitError(
            f"{source}: architecture.strides has {len(strides)} entries for {len(channels)} channels; "
            f"expected {len(channels) - 1} (one per down-sampling step)"
        )
    factor = int(np.prod(strides))
    if any(size % factor for size in out["roi_size"]):
        raise OAKitError(
            f"{source}: roi_size = {out['roi_size']!r}; expected multiples of {factor} (the product of the strides)"
        )
    return out


_MISSING = object()


def _lookup(meta: dict, key: str, source: Path) -> object:
    """The value at a dotted ``key`` of the sidecar, or ``_MISSING``; a non-object on the way is an error."""
    value: object = meta
    for i, part in enumerate(key.split(".")):
        if not isinstance(value, dict):
            parent = ".".join(key.split(".")[:i])
            raise OAKitError(f"{source}: {parent} = {value!r}; expected a JSON object")
        value = value.get(part, _MISSING)
    return value


def _sidecar_value(meta: dict, key: str, spec: tuple, source: Path) -> object:
    """One checked sidecar setting: a number of ``kind`` in [low, high], or a list of them (``length``)."""
    kind, low, high, length = spec
    value = _lookup(meta, key, source)
    what = f"a {kind.__name__} in [{low}, {high}]"
    if length is not None:
        what = f"a list of {length or 'one or more'} {kind.__name__}s in [{low}, {high}]"
    if value is _MISSING:
        raise OAKitError(f"{source}: {key} missing; expected {what}")
    items = value if length is not None and isinstance(value, list) else [value]
    ok = (length is None or (isinstance(value, list) and len(value) == (length or len(value)) and value)) and all(
        _is_number(v, kind) and low <= v <= high for v in items
    )
    if not ok:
        raise OAKitError(f"{source}: {key} = {value!r}; expected {what}")
    return [kind(v) for v in items] if length is not None else kind(value)


def _is_number(value: object, kind: type) -> bool:
    """True for a finite JSON number of ``kind`` (an int may stand for a float, a whole float for an int; no bools)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not np.isfinite(value):
        return False
    return kind is float or isinstance(value, int) or value.is_integer()


def export_best(run: str | Path, path: str | Path, segmenter=None, extra: dict | None = None) -> Path:
    """Package a run folder's best-validation checkpoint (``best.safetensors``) as shippable weights + JSON (sha256).

    For runs stopped before their last epoch: the history and checkpoint state are recorded in the metadata.
    """
    run = Path(run)
    if not (run / "best.safetensors").exists() or not (run / "checkpoint.json").exists():
        raise OAKitError(f"{run}: no best.safetensors/checkpoint.json; expected a run folder from 'oa-kit mri train'")
    state = json.loads((run / "checkpoint.json").read_text())
    tensors = load_file(str(run / "best.safetensors"))
    segmenter = segmenter or MRISegmenter(
        channels=_channels_from_state(tensors), context_mm=float(state.get("context_mm", 0.0))
    )
    segmenter.strides = (2,) * (len(segmenter.channels) - 1)
    net = segmenter._build()
    net.load_state_dict(tensors)
    best_epoch = max(state["history"], key=lambda h: h["val_cartilage_dice"])["epoch"]
    metadata = {
        **_metadata(segmenter),
        "seed": state.get("seed"),
        "epochs_completed": state["epoch"],
        "best_epoch": best_epoch,
        "best_val_cartilage_dice": state["best_score"],
        "history": state["history"],
    }
    return save_weights(TrainResult(net=net, metadata=metadata, history=state["history"]), path, extra)


def _channels_from_state(tensors: dict) -> tuple[int, ...]:
    """Recover U-Net channel widths from a MONAI UNet state dict (the output width of each encoder block)."""
    channels, prefix = [], "model.0"
    depth = 0
    while f"{prefix}.conv.unit0.conv.weight" in tensors:
        channels.append(int(tensors[f"{prefix}.conv.unit0.conv.weight"].shape[0]))
        depth += 1
        prefix = "model" + ".1.submodule" * depth + ".0"
    bottom = "model" + ".1.submodule" * depth + ".conv.unit0.conv.weight"
    if bottom in tensors:
        channels.append(int(tensors[bottom].shape[0]))
    return tuple(channels)
