"""SynthSeg-style training of the MRI segmenter: random-contrast images drawn from knee label maps (Billot et al., 2023).

A training sample is made from a label map alone: every tissue (and every background structure or random background
blob) gets an intensity drawn at random per sample (a Gaussian per label), then slice thickness, resolution, bias
field, noise, Gibbs ringing, gamma and histogram shifts are randomised, so the network never depends on one contrast
(real water-excited DESS has dark marrow, the phantoms bright marrow). Inputs follow ``MRISegmenter`` exactly:
canonical right-knee RAS, 0.5 mm in-plane, intensities scaled by percentiles to [0, 1], 2.5D context channels
``context_mm`` either side along LR, so the trained weights load with :meth:`MRISegmenter.from_pretrained` unchanged.

Every draw takes a ``numpy.random.Generator``; the same seed gives the same image.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from monai.transforms import (
    RandAdjustContrast,
    RandAffined,
    RandBiasField,
    RandGaussianNoise,
    RandGaussianSmooth,
    RandGibbsNoise,
    RandHistogramShift,
)
from scipy import ndimage
from tqdm.auto import tqdm

from oa_kit.errors import OAKitError
from oa_kit.io.atomic import atomic_path, write_text_atomic
from oa_kit.io.labels import (
    BONE_LABELS,
    CARTILAGE_LABELS,
    COMBINED_TIBIAL,
    LACKS_TISSUES,
    N_LABELS,
    infer_knee_side,
    subclass_map,
    to_harmonised,
)
from oa_kit.io.mri import read_nifti
from oa_kit.io.nrrd import read_nrrd
from oa_kit.io.tables import write_csv
from oa_kit.models.mri.inference import MRISegmenter
from oa_kit.models.mri.network import N_NETWORK_CLASSES, harmonised_to_network
from oa_kit.models.mri.train import (
    ContactWeightedDiceCE,
    SegmentationCase,
    TrainResult,
    _load_checkpoint,
    _metadata,
    _pad_to,
    _save_checkpoint,
    augment,
    load_initial_weights,
    render_phantom_cases,
    save_weights,
    stack_cases,
)
from oa_kit.models.mri.transforms import (
    CONTEXT_OFFSETS,
    MODEL_SPACING_MM,
    inplane_size,
    resample_slices,
    scale_intensity,
    to_canonical,
)

#: Generation classes after the harmonised labels 0-9: bone cortex (a shell inside each bone), then source
#: subclasses (background structures, lesions), then random background blobs.
CORTEX_CLASS = N_LABELS
FIRST_SUBCLASS = N_LABELS + 1
#: Generation-label value budget (uint8 maps).
MAX_GEN_CLASSES = 256
#: Generation class of the air around the label map (harmonised background; near-black with noise, as outside a leg).
AIR_CLASS = MAX_GEN_CLASSES - 1
#: Mean and standard deviation ranges of air on the [0, 1] scale, before noise and bias.
AIR_MEAN = (0.0, 0.05)
AIR_STD = (0.0, 0.02)


# ------------------------------------------------------------------------------------------------- label maps
@dataclass
class LabelMapCase:
    """One knee label map prepared for generation: canonical right-knee RAS (LR, AP, SI) at the model's in-plane spacing.

    ``gen`` holds generation classes (uint8): harmonised ids 0-9, :data:`CORTEX_CLASS` is added on the fly, source
    subclasses from :data:`FIRST_SUBCLASS`; ``target_lut`` maps each generation class to its harmonised label.
    """

    case_id: str
    group: str
    source: str
    gen: np.ndarray  # (LR, AP, SI) uint8
    target_lut: np.ndarray  # (MAX_GEN_CLASSES,) uint8: generation class -> harmonised label
    lr_step_mm: float
    lacks: tuple[int, ...] = ()  # harmonised labels this source never labels (their loss is marginalised)
    foreground_slices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def target(self) -> np.ndarray:
        """Harmonised labels (LR, AP, SI) uint8."""
        return self.target_lut[self.gen]


def prepare_label_map(
    labels: np.ndarray,
    affine: np.ndarray,
    side: str,
    case_id: str,
    source: str = "synthetic",
    subclasses: np.ndarray | None = None,
    group: str = "",
    spacing_mm: float = MODEL_SPACING_MM,
    margin_mm: float = 10.0,
) -> LabelMapCase:
    """Reorient a harmonised label map (+ optional source subclasses) to canonical right-knee RAS at ``spacing_mm``.

    Parameters
    ----------
    labels
        Harmonised labels (X, Y, Z) in the file's voxel order.
    affine
        4x4 voxel -> RAS mm.
    side
        ``"R"`` or ``"L"`` (left knees are mirrored, as ``MRISegmenter`` does).
    case_id, group
        Names; ``group`` is the participant (held-out splits are by participant).
    source
        Label convention (:data:`oa_kit.io.labels.LACKS_TISSUES` says which tissues it never labels).
    subclasses
        Source values to keep apart (``oa_kit.io.labels.subclass_map``), 0 elsewhere: each gets its own intensity.
    spacing_mm
        In-plane (AP, SI) spacing, mm (nearest-neighbour resampling).
    margin_mm
        Background kept around the labelled tissues (AP, SI), mm; the rest is cropped away.

    Returns
    -------
    LabelMapCase
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.size == 0 or labels.max() >= N_LABELS:
        raise OAKitError(f"{case_id}: labels shape {labels.shape}, max {labels.max()}; expected harmonised 3D labels")
    gen = labels.astype(np.int32)
    lut = np.zeros(MAX_GEN_CLASSES, dtype=np.uint8)
    lut[:N_LABELS] = np.arange(N_LABELS)
    if subclasses is not None:
        values = [int(v) for v in np.unique(subclasses) if v != 0]
        if FIRST_SUBCLASS + len(values) > MAX_GEN_CLASSES // 2:
            raise OAKitError(f"{case_id}: {len(values)} subclasses; expected at most {MAX_GEN_CLASSES // 2 - 11}")
        for i, value in enumerate(values):
            where = subclasses == value
            lut[FIRST_SUBCLASS + i] = int(np.bincount(labels[where].ravel()).argmax())  # harmonised label it lies in
            gen[where] = FIRST_SUBCLASS + i
    canon, view = to_canonical(gen.astype(np.uint8), affine, side)
    size = inplane_size(canon.shape[1:], view.spacing_mm[1:], spacing_mm)
    resampled = resample_slices(torch.from_numpy(canon.astype(np.float32))[:, None], size, mode="nearest")
    gen = resampled[:, 0].numpy().astype(np.uint8)
    tissue = lut[gen] > 0
    if not tissue.any():
        raise OAKitError(f"{case_id}: no labelled tissue; expected a knee label map")
    keep = int(round(margin_mm / spacing_mm))
    box = []
    for axis in (1, 2):
        hit = np.flatnonzero(tissue.any(axis=tuple(a for a in (0, 1, 2) if a != axis)))
        box.append(slice(max(0, hit[0] - keep), hit[-1] + keep + 1))
    gen = np.ascontiguousarray(gen[:, box[0], box[1]])
    fg = np.flatnonzero((lut[gen] > 0).any(axis=(1, 2)))
    return LabelMapCase(
        case_id=case_id,
        group=group or case_id,
        source=source,
        gen=gen,
        target_lut=lut,
        lr_step_mm=float(view.spacing_mm[0]),
        lacks=tuple(LACKS_TISSUES.get(source, ())),
        foreground_slices=fg,
    )


# ---------------------------------------------------------------------------------------------- transforms
#: A generation step: takes the sample dict and the sample's Generator, returns the (updated) dict.
Step = Callable[[dict, np.random.Generator], dict]


def _seed(rng: np.random.Generator) -> int:
    """A 31-bit seed drawn from ``rng`` (for MONAI's RandomState-based transforms)."""
    return int(rng.integers(2**31 - 1))


class AddCortex:
    """Give the outer ``width`` voxels of each bone (in-plane) their own generation class: cortical bone is dark."""

    def __init__(self, width: tuple[int, int] = (1, 3)) -> None:
        self.width = width

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """``sample["gen"]`` (S, H, W) uint8 gets :data:`CORTEX_CLASS` on the bones' in-plane rim."""
        gen, lut = sample["gen"], sample["lut"]
        bone = np.isin(lut[gen], BONE_LABELS)
        if bone.any():
            width = int(rng.integers(self.width[0], self.width[1] + 1))
            inner = ndimage.binary_erosion(bone, structure=_inplane_cross(), iterations=width)
            gen = gen.copy()
            gen[bone & ~inner] = CORTEX_CLASS
        sample["gen"] = gen
        return sample


def _inplane_cross() -> np.ndarray:
    """3x3x3 structuring element connecting in-plane neighbours only (slices stay independent)."""
    s = np.zeros((3, 3, 3), dtype=bool)
    s[1] = ndimage.generate_binary_structure(2, 1)
    return s


class SplitBackground:
    """Split plain background (class 0) into 1-``max_classes`` random smooth blobs, each a generation class of its own.

    Label maps without muscle/fat labels would otherwise give the whole background one intensity; blobs of
    ``blob_mm`` (mm) scale teach the network that background is textured and of any brightness.
    """

    def __init__(self, max_classes: int = 8, blob_mm: tuple[float, float] = (8.0, 40.0)) -> None:
        self.max_classes = max_classes
        self.blob_mm = blob_mm

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Background voxels of ``sample["gen"]`` get classes ``FIRST_SUBCLASS + 100 + k``."""
        gen = sample["gen"]
        k = int(rng.integers(1, self.max_classes + 1))
        if k > 1:
            s, h, w = gen.shape
            step = float(rng.uniform(*self.blob_mm)) / MODEL_SPACING_MM
            lr_step = float(rng.uniform(*self.blob_mm)) / sample["lr_step_mm"]
            low = [max(2, int(np.ceil(n / step))) for n in (h, w)]
            fields = torch.from_numpy(rng.standard_normal((1, k, max(2, int(np.ceil(s / lr_step))), *low)))
            half = (s, (h + 1) // 2, (w + 1) // 2)  # blobs are smooth: argmax at half resolution, then repeat
            blobs = F.interpolate(fields.float(), size=half, mode="trilinear", align_corners=False)[0]
            classes = blobs.argmax(dim=0).numpy().astype(np.uint8).repeat(2, axis=1).repeat(2, axis=2)[:, :h, :w]
            gen = np.where(gen == 0, FIRST_SUBCLASS + 100 + classes, gen).astype(np.uint8)
        sample["gen"] = gen
        return sample


#: Intensity priors (mean ranges, [0, 1]) of a water-excited DESS / PD-like image, used with probability ``prior_prob``.
DESS_PRIOR = {"bone": (0.05, 0.3), "cortex": (0.0, 0.08), "cartilage": (0.45, 0.8), "meniscus": (0.0, 0.12)}


class RandomGMMIntensities:
    """Draw an image from generation labels: each class a Gaussian with random mean and std (SynthSeg's GMM).

    Means are uniform on ``mean_range``, standard deviations on ``std_range`` (image units, [0, 1] scale); with
    probability ``prior_prob`` bone, cortex, cartilage and menisci take DESS-like means instead
    (:data:`DESS_PRIOR`), the rest staying random. ``sample["means"]`` records the drawn means per class.
    """

    def __init__(
        self,
        mean_range: tuple[float, float] = (0.0, 1.0),
        std_range: tuple[float, float] = (0.0, 0.08),
        prior_prob: float = 0.3,
    ) -> None:
        self.mean_range = mean_range
        self.std_range = std_range
        self.prior_prob = prior_prob

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Sets ``sample["image"]`` (S, H, W) float32 from ``sample["gen"]``."""
        gen, lut = sample["gen"], sample["lut"]
        means = rng.uniform(*self.mean_range, MAX_GEN_CLASSES).astype(np.float32)
        stds = rng.uniform(*self.std_range, MAX_GEN_CLASSES).astype(np.float32)
        if rng.random() < self.prior_prob:
            harm = lut.astype(np.int64)
            groups = {
                "bone": np.isin(harm, BONE_LABELS) & (np.arange(MAX_GEN_CLASSES) < FIRST_SUBCLASS),
                "cartilage": np.isin(harm, CARTILAGE_LABELS),
                "meniscus": np.isin(harm, (8, 9)),
            }
            for name, rows in groups.items():
                means[rows] = rng.uniform(*DESS_PRIOR[name], int(rows.sum()))
            means[CORTEX_CLASS] = rng.uniform(*DESS_PRIOR["cortex"])
        means[AIR_CLASS], stds[AIR_CLASS] = rng.uniform(*AIR_MEAN), rng.uniform(*AIR_STD)
        noise = rng.standard_normal(gen.shape, dtype=np.float32)
        sample["image"] = means[gen] + stds[gen] * noise
        sample["means"] = means
        return sample


class MonaiIntensity:
    """Apply a MONAI random intensity transform to ``sample["image"]`` (K, H, W), reseeded from the sample's Generator.

    The K acquired slices are passed as channels of one 2D image, so every slice gets the same random draw
    (one bias field, one gamma, one blur width per sample), as one scan would.
    """

    def __init__(self, transform) -> None:
        self.transform = transform

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Reseed the transform, apply it, store the float32 result."""
        self.transform.set_random_state(seed=_seed(rng))
        out = self.transform(torch.as_tensor(sample["image"], dtype=torch.float32))
        sample["image"] = np.asarray(torch.as_tensor(out), dtype=np.float32)
        return sample


class PercentileScale:
    """Scale to [0, 1] by the image's 1st/99th percentiles, clipped: what ``MRISegmenter`` does to a scan."""

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """In place on ``sample["image"]`` (rng unused: deterministic)."""
        image = sample["image"]
        lo, hi = np.percentile(image, (1.0, 99.0))
        sample["image"] = scale_intensity(image, float(lo), float(hi))
        return sample


class Compose:
    """Run generation steps in order, all drawing from one Generator (MONAI's ``Compose`` for :data:`Step`s)."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """The sample after every step."""
        for step in self.steps:
            sample = step(sample, rng)
        return sample


def default_label_steps() -> Compose:
    """Label-map steps before intensities: bone cortex shell, background split into random blobs."""
    return Compose([AddCortex(), SplitBackground()])


def default_intensity_steps() -> Compose:
    """Intensity steps after slice-thickness averaging: resolution blur, bias field, noise, ringing, scale, gamma, shift."""
    return Compose(
        [
            MonaiIntensity(RandGaussianSmooth(sigma_x=(0.0, 0.01), sigma_y=(0.0, 1.2), sigma_z=(0.0, 1.2), prob=0.7)),
            MonaiIntensity(RandBiasField(degree=3, coeff_range=(0.0, 0.15), prob=0.9)),
            MonaiIntensity(RandGaussianNoise(prob=0.9, std=0.06, sample_std=True)),
            MonaiIntensity(RandGibbsNoise(prob=0.2, alpha=(0.0, 0.6))),
            PercentileScale(),
            MonaiIntensity(RandAdjustContrast(prob=0.8, gamma=(0.5, 2.0))),
            MonaiIntensity(RandHistogramShift(num_control_points=(4, 10), prob=0.3)),
            PercentileScale(),
        ]
    )


# ------------------------------------------------------------------------------------------------ sampling
@dataclass(frozen=True)
class SynthConfig:
    """Generation settings: slice thickness (mm) and its probability, crop size (network voxels), spatial ranges."""

    context_mm: float = 2.0
    crop: tuple[int, int] = (160, 160)
    thin_mm: tuple[float, float] = (0.5, 1.2)
    thick_mm: tuple[float, float] = (1.5, 4.0)
    thick_prob: float = 0.35
    rotate_deg: float = 15.0
    scale: float = 0.15
    foreground_prob: float = 0.9
    air_prob: float = 0.15


def _acquisition(
    n_fine: int, centre: int, step_mm: float, thickness_mm: float, context_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Fine slices to read, the (K, S) averaging weights making K acquired slices of ``thickness_mm`` spaced by it,
    the fractional acquired-slice positions of the context channels, and the centre's acquired index.

    Acquired slice k covers [x_k - t/2, x_k + t/2] around x_k = x_centre + k t (box profile, partial volume);
    a thickness below the fine step reads the nearest fine slice.
    """
    half = int(np.ceil(context_mm / thickness_mm)) if context_mm > 0 else 0
    ks = np.arange(-half, half + 1)
    x_fine = np.arange(n_fine) * step_mm
    x0 = centre * step_mm
    rows, needed = [], set()
    for k in ks:
        xk = x0 + k * thickness_mm
        inside = np.flatnonzero(np.abs(x_fine - xk) <= thickness_mm / 2.0 + 1e-6)
        if inside.size == 0:
            inside = np.array([int(np.clip(round(xk / step_mm), 0, n_fine - 1))])
        rows.append(inside)
        needed.update(inside.tolist())
    fine = np.array(sorted(needed))
    weights = np.zeros((len(ks), len(fine)), dtype=np.float32)
    for r, inside in enumerate(rows):
        weights[r, np.searchsorted(fine, inside)] = 1.0 / len(inside)
    positions = np.clip(half + np.asarray(CONTEXT_OFFSETS) * (context_mm / thickness_mm), 0, len(ks) - 1)
    return fine, weights, positions, half


def _crop_box(
    target: np.ndarray, size: tuple[int, int], rng: np.random.Generator, foreground_prob: float
) -> tuple[slice, slice]:
    """In-plane crop window of ``size`` around a random tissue pixel (or anywhere), clamped to the slice."""
    h, w = target.shape
    fg = np.argwhere(target > 0)
    if fg.size and rng.random() < foreground_prob:
        cy, cx = fg[int(rng.integers(len(fg)))]
    else:
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0 = int(np.clip(cy - size[0] // 2, 0, max(0, h - size[0])))
    x0 = int(np.clip(cx - size[1] // 2, 0, max(0, w - size[1])))
    return slice(y0, y0 + size[0]), slice(x0, x0 + size[1])


def _place_offset(
    shape: tuple[int, int], size: tuple[int, int], rng: np.random.Generator, air_prob: float
) -> tuple[int, int]:
    """Where the read window's top-left corner lands in a ``size`` canvas of air: (0, 0) usually; with ``air_prob`` a
    random shift leaving 30-100% of the canvas as air, so the network also sees windows that are mostly outside the
    leg (as sliding-window inference does at the edges of a real field of view)."""
    if rng.random() >= air_prob:
        return 0, 0
    return tuple(int(rng.integers(-int(0.7 * n), int(0.7 * c) + 1)) for n, c in zip(shape, size))


def _place(array: np.ndarray, size: tuple[int, int], offset: tuple[int, int], fill: int) -> np.ndarray:
    """``array`` (..., H, W) pasted at ``offset`` into a ``size`` canvas filled with ``fill`` (parts outside dropped)."""
    out = np.full((*array.shape[:-2], *size), fill, dtype=array.dtype)
    src, dst = [], []
    for o, n, c in zip(offset, array.shape[-2:], size):
        lo, hi = max(o, 0), min(o + n, c)
        src.append(slice(lo - o, max(hi - o, lo - o)))
        dst.append(slice(lo, max(hi, lo)))
    out[(..., *dst)] = array[(..., *src)]
    return out


def _pad(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Zero-pad the last two axes at the end up to ``size``."""
    pad = [(0, 0)] * (array.ndim - 2) + [(0, max(0, size[0] - array.shape[-2])), (0, max(0, size[1] - array.shape[-1]))]
    return np.pad(array, pad)


class SynthSampler:
    """Draw 2.5D training samples (image (C, H, W), network target (1, H, W)) from label maps with random contrast.

    Parameters
    ----------
    cases
        Prepared label maps (:func:`prepare_label_map`).
    weights
        Sampling weight per case (normalised); default uniform.
    config
        :class:`SynthConfig`.
    label_steps, intensity_steps
        :class:`Compose` of generation steps (defaults: :func:`default_label_steps`, :func:`default_intensity_steps`).
    """

    def __init__(
        self,
        cases: Sequence[LabelMapCase],
        weights: Sequence[float] | None = None,
        config: SynthConfig | None = None,
        label_steps: Compose | None = None,
        intensity_steps: Compose | None = None,
    ) -> None:
        if not cases:
            raise OAKitError("cases: no label maps; expected at least one LabelMapCase")
        self.cases = list(cases)
        w = np.ones(len(cases)) if weights is None else np.asarray(weights, dtype=float)
        self.weights = w / w.sum()
        self.config = config or SynthConfig()
        self.label_steps = label_steps or default_label_steps()
        self.intensity_steps = intensity_steps or default_intensity_steps()
        self.intensities = RandomGMMIntensities()
        crop = self.config.crop
        margin = int(np.ceil(max(crop) * (self.config.scale + 0.2)))
        self.read_size = (crop[0] + margin, crop[1] + margin)
        self.spatial = RandAffined(
            keys=("image", "label"),
            prob=0.8,
            rotate_range=np.deg2rad(self.config.rotate_deg),
            scale_range=(self.config.scale, self.config.scale),
            mode=("bilinear", "nearest"),
            padding_mode="zeros",
        )

    @property
    def in_channels(self) -> int:
        """3 for 2.5D (``context_mm > 0``), 1 for 2D."""
        return len(CONTEXT_OFFSETS) if self.config.context_mm > 0 else 1

    def sample(self, seed: int | np.random.Generator, case_index: int | None = None) -> dict:
        """One sample: ``image`` (C, H, W) float32 in [0, 1], ``target`` (1, H, W) int64 network classes, ``lacks``
        (network classes this case cannot label), ``case_id``, ``thickness_mm``, ``means``."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        cfg = self.config
        idx = int(rng.choice(len(self.cases), p=self.weights)) if case_index is None else case_index
        case = self.cases[idx]
        pool = case.foreground_slices if case.foreground_slices.size else np.arange(case.gen.shape[0])
        centre = int(pool[int(rng.integers(len(pool)))])
        thick = rng.random() < cfg.thick_prob
        thickness = max(case.lr_step_mm, float(rng.uniform(*(cfg.thick_mm if thick else cfg.thin_mm))))
        fine, weights, positions, half = _acquisition(
            case.gen.shape[0], centre, case.lr_step_mm, thickness, cfg.context_mm
        )
        box = _crop_box(case.target_lut[case.gen[centre]], self.read_size, rng, cfg.foreground_prob)
        window = case.gen[fine][:, box[0], box[1]]
        offset = _place_offset(window.shape[1:], self.read_size, rng, cfg.air_prob)
        gen = _place(window, self.read_size, offset, AIR_CLASS)
        centre_target = case.target_lut[_place(case.gen[centre][box[0], box[1]], self.read_size, offset, AIR_CLASS)]
        data = {"gen": gen, "lut": case.target_lut, "lr_step_mm": case.lr_step_mm}
        data = self.intensity_steps(self._acquire(self.label_steps(data, rng), rng, weights), rng)
        acquired = data["image"]
        lo = np.floor(positions).astype(int)
        hi = np.minimum(lo + 1, len(acquired) - 1)
        frac = (positions - lo).astype(np.float32)[:, None, None]
        image = acquired[lo] + frac * (acquired[hi] - acquired[lo])
        if cfg.context_mm <= 0:
            image = acquired[half][None]
        target = harmonised_to_network(centre_target)[None]
        size = self.read_size
        image, target = _pad(image, size), _pad(target, size)
        self.spatial.set_random_state(seed=_seed(rng))
        moved = self.spatial({"image": torch.from_numpy(image), "label": torch.from_numpy(target.astype(np.float32))})
        y0 = (size[0] - cfg.crop[0]) // 2
        x0 = (size[1] - cfg.crop[1]) // 2
        crop = (slice(None), slice(y0, y0 + cfg.crop[0]), slice(x0, x0 + cfg.crop[1]))
        return {
            "image": np.asarray(moved["image"], dtype=np.float32)[crop],
            "target": np.rint(np.asarray(moved["label"])[crop]).astype(np.int64),
            "lacks": tuple(sorted({int(harmonised_to_network(np.array(t))) for t in case.lacks})),
            "case_id": case.case_id,
            "thickness_mm": thickness,
            "means": data["means"],
        }

    def _acquire(self, data: dict, rng: np.random.Generator, weights: np.ndarray) -> dict:
        """Draw the fine image (GMM) and average it into acquired slices (partial volume over the thickness)."""
        data = self.intensities(data, rng)
        fine = data["image"]
        data["image"] = np.tensordot(weights, fine, axes=(1, 0)).astype(np.float32)
        data["fine_gen"] = data["gen"]
        return data

    def batch(self, seed: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``size`` samples from ``seed``: images (B, C, H, W), targets (B, 1, H, W), lacks mask (B, N_NETWORK_CLASSES) bool."""
        seeds = np.random.SeedSequence(seed).spawn(size)
        samples = [self.sample(np.random.default_rng(s)) for s in seeds]
        lacks = torch.zeros(size, N_NETWORK_CLASSES, dtype=torch.bool)
        for i, s in enumerate(samples):
            lacks[i, list(s["lacks"])] = True
        images = torch.from_numpy(np.stack([s["image"] for s in samples]))
        targets = torch.from_numpy(np.stack([s["target"] for s in samples]))
        return images, targets, lacks


# ------------------------------------------------------------------------------------------- rendered images
def random_crop(
    images: torch.Tensor, targets: torch.Tensor, crop: tuple[int, int], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One random ``crop`` window per slice of (B, C, H, W) images and their targets (zero-padded where smaller)."""
    size = (max(crop[0], images.shape[-2]), max(crop[1], images.shape[-1]))
    images, targets = _pad_to(images, size), _pad_to(targets, size)
    ys = torch.randint(0, size[0] - crop[0] + 1, (len(images),), generator=generator).tolist()
    xs = torch.randint(0, size[1] - crop[1] + 1, (len(images),), generator=generator).tolist()
    window = [(slice(None), slice(y, y + crop[0]), slice(x, x + crop[1])) for y, x in zip(ys, xs)]
    return (
        torch.stack([images[i][w] for i, w in enumerate(window)]),
        torch.stack([targets[i][w] for i, w in enumerate(window)]),
    )


class ImageSlices:
    """Sagittal slices of rendered scans with their labels (e.g. phantoms at their own contrast), mixed into the
    label-map samples of :func:`train_synthseg` so the network keeps what it does on those scans.

    Parameters
    ----------
    cases
        Scans with harmonised labels (:class:`~oa_kit.models.mri.train.SegmentationCase`).
    segmenter
        Input conventions (spacing, 2.5D context), as for training.
    crop
        Training window (network voxels), the label-map samples' size.
    """

    def __init__(
        self, cases: Sequence[SegmentationCase], segmenter: MRISegmenter, crop: tuple[int, int], progress: bool = True
    ) -> None:
        self.images, self.targets = stack_cases(cases, segmenter, progress)
        self.crop = crop

    def batch(self, seed: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``size`` random slices from ``seed``: random window, intensity augmentation; lacks nothing (fully labelled)."""
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randint(0, len(self.images), (size,), generator=gen)
        images, targets = random_crop(self.images[idx].float(), self.targets[idx].long(), self.crop, gen)
        return augment(images, gen), targets, torch.zeros(size, N_NETWORK_CLASSES, dtype=torch.bool)

    def validation(self, batch_size: int = 16) -> list[tuple]:
        """All slices whole (padded to a multiple of 16 voxels), unaugmented, in fixed batches for :func:`synthetic_dice`."""
        size = tuple(int(np.ceil(n / 16) * 16) for n in self.images.shape[-2:])
        out = []
        for i in range(0, len(self.images), batch_size):
            images = _pad_to(self.images[i : i + batch_size].float(), size)
            targets = _pad_to(self.targets[i : i + batch_size].long(), size)
            out.append((images, targets, torch.zeros(len(images), N_NETWORK_CLASSES, dtype=torch.bool)))
        return out


# ------------------------------------------------------------------------------------------------------ loss
def marginalise_missing(logits: torch.Tensor, lacks: torch.Tensor) -> torch.Tensor:
    """Logits (B, C, H, W) for partially labelled samples: classes a sample's source never labels are merged into
    background (its logit becomes logsumexp of background and them; theirs a large negative), the marginal loss for
    missing labels, so e.g. Woo maps (no menisci) do not teach that menisci are background."""
    if not lacks.any():
        return logits
    missing = lacks[:, :, None, None].expand_as(logits)
    extra = torch.logsumexp(logits.masked_fill(~missing, -1e4), dim=1)  # about -1e4 where a sample lacks nothing
    out = logits.masked_fill(missing, -1e4)
    return torch.cat([torch.logaddexp(logits[:, :1], extra[:, None]), out[:, 1:]], dim=1)


# -------------------------------------------------------------------------------------------------- training
def validation_batches(sampler: SynthSampler, n: int, seed: int, batch_size: int = 16) -> list[tuple]:
    """Fixed validation batches (same seed, same images) of ``n`` samples."""
    return [sampler.batch(seed + i, min(batch_size, n - i)) for i in range(0, n, batch_size)]


def synthetic_dice(net: torch.nn.Module, batches: Sequence[tuple]) -> dict[str, float]:
    """Dice per network cartilage class (femoral, tibial, patellar) and their mean on fixed synthetic batches."""
    names = {2: "femoral_cartilage", 4: "tibial_cartilage", 6: "patellar_cartilage", 1: "femur", 3: "tibia"}
    inter = dict.fromkeys(names, 0.0)
    total = dict.fromkeys(names, 0.0)
    net.eval()
    with torch.inference_mode():
        for images, targets, _ in batches:
            pred = net(images).argmax(dim=1)
            for c in names:
                a, b = pred == c, targets[:, 0] == c
                inter[c] += float((a & b).sum())
                total[c] += float(a.sum() + b.sum())
    out = {names[c]: 2 * inter[c] / total[c] if total[c] else float("nan") for c in names}
    out["cartilage_mean"] = float(np.nanmean([out[names[c]] for c in (2, 4, 6)]))
    return out


def train_synthseg(
    train_cases: Sequence[LabelMapCase],
    val_cases: Sequence[LabelMapCase],
    out: str | Path,
    epochs: int = 200,
    steps_per_epoch: int = 100,
    batch_size: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
    weights: Sequence[float] | None = None,
    config: SynthConfig | None = None,
    init_weights: str | Path | None = None,
    segmenter: MRISegmenter | None = None,
    contact_weight: float = 0.0,
    max_minutes: float | None = None,
    resume: bool = True,
    n_val: int = 64,
    image_cases: Sequence[SegmentationCase] = (),
    val_image_cases: Sequence[SegmentationCase] = (),
    image_share: float = 0.25,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train the segmenter on random-contrast images drawn from label maps; checkpoint every epoch, resume, budget.

    Parameters
    ----------
    train_cases, val_cases
        Prepared label maps; validation uses fixed random-contrast samples of ``val_cases`` (held-out knees).
    out
        Run folder: ``checkpoint.safetensors/json`` (every epoch, for resume), ``history.csv``, and the weights
        ``mri_synthseg.safetensors`` + ``.json`` (best validation epoch) that ``MRISegmenter.from_pretrained`` loads.
    epochs, steps_per_epoch, batch_size, lr
        Adam with cosine decay over ``epochs * steps_per_epoch`` steps.
    seed
        Seeds the weight init and every sample (sample seeds derive from seed, epoch, step: a resumed run draws the
        same images).
    weights
        Sampling weight per training case (e.g. to balance sources); default uniform.
    config
        :class:`SynthConfig`; its ``context_mm`` must equal the segmenter's.
    init_weights
        Start from these ``.safetensors`` weights (e.g. the shipped ``mri_segmenter.safetensors``).
    segmenter
        Architecture and input conventions (default: ``MRISegmenter(context_mm=config.context_mm)``).
    contact_weight
        > 0 uses :class:`~oa_kit.models.mri.train.ContactWeightedDiceCE`, else MONAI ``DiceCELoss``.
    max_minutes
        Wall-clock budget: no new epoch starts once it is spent (the run resumes from its checkpoint).
    resume
        Continue from ``out/checkpoint.*`` when present.
    n_val
        Validation samples.
    image_cases, val_image_cases, image_share
        Rendered scans (e.g. phantoms at their own contrasts) whose slices make ``image_share`` of every batch
        (:class:`ImageSlices`); the best epoch is then the one with the best mean of the label-map and the
        ``val_image_cases`` cartilage Dice, so the weights hold both.

    Returns
    -------
    TrainResult
        Network with the best validation weights, metadata, history.
    """
    config = config or SynthConfig()
    segmenter = segmenter or MRISegmenter(context_mm=config.context_mm)
    if segmenter.context_mm != config.context_mm:
        raise OAKitError(
            f"config.context_mm: {config.context_mm}; expected the segmenter's context_mm {segmenter.context_mm}"
        )
    started = time.monotonic()
    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = segmenter._build()
    if init_weights is not None:
        load_initial_weights(net, init_weights)
    sampler = SynthSampler(train_cases, weights, config)
    rendered = ImageSlices(image_cases, segmenter, config.crop, progress) if image_cases else None
    n_image = int(round(image_share * batch_size)) if rendered else 0
    if rendered and not 0 < n_image < batch_size:
        raise OAKitError(
            f"image_share: {image_share} makes {n_image} of {batch_size} samples; expected at least one of each kind"
        )
    val_rendered = (
        ImageSlices(val_image_cases, segmenter, config.crop, progress).validation() if val_image_cases else []
    )
    val = validation_batches(SynthSampler(val_cases, None, config), n_val, seed=10_000 + seed) if val_cases else []
    loss_fn = (
        ContactWeightedDiceCE(contact_weight) if contact_weight > 0 else DiceCELoss(to_onehot_y=True, softmax=True)
    )
    optim = torch.optim.Adam(net.parameters(), lr=lr)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: 0.5 * (1 + np.cos(np.pi * min(s / total, 1.0))) + 0.02)
    start, history, best = 0, [], -float("inf")
    if resume and (run / "checkpoint.json").exists():
        state = _load_checkpoint(run, net, optim)
        start, history, best = state["epoch"], state["history"], state["best_score"]
        for _ in range(start * steps_per_epoch):
            sched.step()
    meta = {
        **_metadata(segmenter),
        "seed": seed,
        "training": "synthseg (random-contrast images from label maps)",
        "train_cases": [c.case_id for c in train_cases],
        "val_cases": [c.case_id for c in val_cases],
        "init_weights": Path(init_weights).name if init_weights else None,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.__dict__.items()},
        "image_cases": [c.case_id for c in image_cases],
        "val_image_cases": [c.case_id for c in val_image_cases],
        "image_share": image_share if rendered else 0.0,
    }
    for epoch in range(start, epochs):
        if max_minutes is not None and (time.monotonic() - started) / 60.0 >= max_minutes:
            break
        net.train()
        losses = []
        for step in tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress):
            step_seed = seed * 1_000_003 + epoch * steps_per_epoch + step
            images, targets, lacks = sampler.batch(step_seed, batch_size - n_image)
            if rendered:
                more = rendered.batch(step_seed, n_image)
                images, targets, lacks = (torch.cat(pair) for pair in zip((images, targets, lacks), more))
            optim.zero_grad()
            loss = loss_fn(marginalise_missing(net(images), lacks), targets)
            loss.backward()
            optim.step()
            sched.step()
            losses.append(float(loss.detach()))
        scores = synthetic_dice(net, val) if val else {"cartilage_mean": -float(np.mean(losses))}
        score = scores["cartilage_mean"]
        if val_rendered:
            scores.update({f"image_{k}": v for k, v in synthetic_dice(net, val_rendered).items()})
            score = 0.5 * (score + scores["image_cartilage_mean"])
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), **scores, "time": time.time()})
        if score > best:
            best = score
            result = TrainResult(
                net=net, metadata={**meta, "epoch": epoch + 1, "val_synthetic": scores}, history=history
            )
            save_weights(result, run / "mri_synthseg.safetensors")
        _save_checkpoint(
            run,
            net,
            optim,
            {
                "epoch": epoch + 1,
                "history": history,
                "best_score": best,
                "seed": seed,
                "context_mm": segmenter.context_mm,
            },
        )
        write_csv(pd.DataFrame(history), run / "history.csv")
        if log:
            log(
                f"{time.strftime('%H:%M:%S')} epoch {epoch + 1}/{epochs} loss {losses and np.mean(losses):.4f} "
                f"val {json.dumps({k: round(v, 4) for k, v in scores.items()})}"
            )
    return TrainResult(net=net.eval(), metadata=meta, history=history)


# ------------------------------------------------------------------------------------------------ data sources
def read_label_map(path: str | Path, source: str, group: str = "", side: str = "auto") -> LabelMapCase:
    """Read one label map file (NIfTI or NRRD) of convention ``source`` and prepare it (:func:`prepare_label_map`).

    ``side="auto"`` infers the knee side from the anatomy (:func:`oa_kit.io.labels.infer_knee_side`).
    """

    path = Path(path)
    volume = read_nrrd(path) if path.suffix in (".nrrd", ".nhdr") else read_nifti(path)
    raw = np.asarray(volume.array)
    harm = to_harmonised(raw, source, side="R" if side == "auto" else side, affine=volume.affine)
    if side == "auto":
        side = infer_knee_side(harm == 1, harm == 3, np.isin(harm, (4, 5)), harm == 6, volume.affine)
        if side == "L" and source in COMBINED_TIBIAL:
            harm = to_harmonised(raw, source, side=side, affine=volume.affine)
    name = path.name.split(".")[0]
    return prepare_label_map(
        harm, volume.affine, side, name, source=source, subclasses=subclass_map(raw, source), group=group or name
    )


def woo_label_maps(folder: str | Path, progress: bool = True) -> list[LabelMapCase]:
    """The Anomaly-aware OAI maps (``OAI_AKOA/*.nii.gz``, ``OAI_ZIB-UQ/*.nii.gz``), grouped by participant id."""
    files = sorted(Path(folder).rglob("*.nii.gz"))
    if not files:
        raise OAKitError(f"{folder}: no .nii.gz label maps; expected the Anomaly-Aware-3D-Segmentation snapshot")
    return [
        read_label_map(f, "woo", group=f.name.split("_")[0]) for f in tqdm(files, desc="woo maps", disable=not progress)
    ]


def shared_label_maps(folder: str | Path) -> list[LabelMapCase]:
    """The pymskt DESS knee and the SPL atlas from ``knee-mri-labels/`` (training sources; CartiMorph is for checking)."""
    folder = Path(folder)
    return [
        read_label_map(folder / "pymskt" / "SAG_3D_DESS_RIGHT_bones_cart_men_fib-label.nrrd", "pymskt", "pymskt"),
        read_label_map(folder / "spl-knee-atlas" / "seg.nrrd", "spl", "spl"),
    ]


def phantom_label_maps(n_participants: int, seed: int = 0, progress: bool = True) -> list[LabelMapCase]:
    """Label maps of synthetic phantoms (both knees of ``n_participants``), their images discarded."""

    cases = render_phantom_cases(n_participants, seed=seed, progress=progress)
    return [prepare_label_map(c.labels, c.affine, c.side, c.case_id, "synthetic", group=c.group) for c in cases]


def split_holdout(
    cases: Sequence[LabelMapCase], n_holdout: int, seed: int = 0
) -> tuple[list[LabelMapCase], list[LabelMapCase]]:
    """Hold out every map of ``n_holdout`` random participants (groups): (train, held-out)."""
    groups = sorted({c.group for c in cases})
    held = set(np.random.default_rng(seed).permutation(groups)[:n_holdout].tolist())
    return [c for c in cases if c.group not in held], [c for c in cases if c.group in held]


def save_label_maps(folder: str | Path, cases: Sequence[LabelMapCase]) -> None:
    """Store prepared label maps as ``.npz`` (arrays) + ``.json`` (fields), atomically; no pickle."""

    folder = Path(folder)
    for c in cases:
        with atomic_path(folder / f"{c.case_id}.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, gen=c.gen, target_lut=c.target_lut, foreground_slices=c.foreground_slices)
        fields = {"case_id": c.case_id, "group": c.group, "source": c.source, "lr_step_mm": c.lr_step_mm}
        write_text_atomic(folder / f"{c.case_id}.json", json.dumps({**fields, "lacks": list(c.lacks)}))


def load_label_maps(folder: str | Path) -> list[LabelMapCase]:
    """Read label maps stored by :func:`save_label_maps` (sorted by case id)."""
    cases = []
    for meta_path in sorted(Path(folder).glob("*.json")):
        meta = json.loads(meta_path.read_text())
        with np.load(meta_path.with_suffix(".npz"), allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("gen", "target_lut", "foreground_slices")}
        cases.append(LabelMapCase(**{**meta, "lacks": tuple(meta["lacks"])}, **arrays))
    return cases


def cached_label_maps(folder: Path, build: Callable[[], list[LabelMapCase]]) -> list[LabelMapCase]:
    """Prepared maps from ``folder`` when complete (``done`` marker), else built and stored there."""
    if (folder / "done").exists():
        return load_label_maps(folder)
    cases = build()
    save_label_maps(folder, cases)
    write_text_atomic(folder / "done", "")
    return cases
