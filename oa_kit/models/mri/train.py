"""Training the MRI segmenter: slice sampling, augmentation, DiceCE training loop with checkpoints/resume, phantom cases."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.losses import DiceCELoss, DiceLoss
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from oa_kit.errors import OAKitError
from oa_kit.io.artifacts import sha256_file
from oa_kit.io.atomic import atomic_path, write_text_atomic
from oa_kit.io.labels import SUBREGIONS
from oa_kit.io.tables import write_csv
from oa_kit.models.mri.network import N_NETWORK_CLASSES, expand_input_channels, harmonised_to_network
from oa_kit.models.mri.transforms import CONTEXT_CENTRE, check_volume, resample_slices, to_canonical
from oa_kit.synth.mri import DEFAULT_CONTRAST, DEFAULT_GEOMETRY, SITE_MRI, render_knee_mri

#: Tissues scored by :func:`oa_kit.evaluation.segmentation.evaluate_segmenter` (harmonised ids).
EVAL_LABELS = (1, 2, 3, 4, 5, 6, 7, 8, 9)


@dataclass
class SegmentationCase:
    """One training/evaluation scan: image and harmonised labels in the file's voxel order, its affine and knee side."""

    case_id: str
    image: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    side: str
    group: str = ""  # participant id, for participant-level splits


@dataclass
class TrainResult:
    """What :func:`train_segmenter` returns: the trained network, its metadata and the per-epoch history."""

    net: torch.nn.Module
    metadata: dict
    history: list[dict] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ data preparation
def case_slices(case: SegmentationCase, segmenter) -> tuple[torch.Tensor, torch.Tensor]:
    """Sagittal training slices of one case: images (X, in_channels, H, W) float32 (2.5D: each slice with its
    neighbours ``segmenter.context_mm`` either side) and network-class targets (X, 1, H, W) int64."""
    check_volume(case.image, case.affine, name=case.case_id)
    if case.labels.shape != case.image.shape:
        raise OAKitError(
            f"{case.case_id}: labels shape {case.labels.shape} != image shape {case.image.shape}; expected equal"
        )
    canon, view = to_canonical(np.asarray(case.image, dtype=np.float32), case.affine, case.side)
    lab, _ = to_canonical(np.asarray(case.labels), case.affine, case.side)
    images = segmenter.network_slices(canon, view.spacing_mm)
    target = torch.from_numpy(harmonised_to_network(lab).astype(np.float32))[:, None]
    target = resample_slices(target, tuple(images.shape[-2:]), mode="nearest").long()
    return images, target


def stack_cases(
    cases: Sequence[SegmentationCase], segmenter, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate the slices of all cases that contain any labelled tissue (background-only slices add little)."""
    images, targets = [], []
    for case in tqdm(cases, desc="preparing slices", disable=not progress):
        img, tgt = case_slices(case, segmenter)
        keep = tgt.flatten(1).amax(dim=1) > 0
        images.append(img[keep].to(torch.float16))
        targets.append(tgt[keep].to(torch.uint8))
    if not images:
        raise OAKitError("training data: no cases; expected at least one image/label pair")
    shapes = {tuple(i.shape[-2:]) for i in images}
    if len(shapes) > 1:
        size = max(shapes)
        images = [_pad_to(i, size) for i in images]
        targets = [_pad_to(t, size) for t in targets]
    return torch.cat(images), torch.cat(targets)


def _pad_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-pad (B, C, H, W) slices at the end of H and W up to ``size``."""
    return torch.nn.functional.pad(x, (0, size[1] - x.shape[-1], 0, size[0] - x.shape[-2]))


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random intensity changes (gamma, gain/offset, noise) so the model does not learn one site's contrast."""
    b = images.shape[0]
    gamma = torch.exp(torch.empty(b, 1, 1, 1).uniform_(-0.4, 0.4, generator=generator))
    gain = torch.empty(b, 1, 1, 1).uniform_(0.8, 1.2, generator=generator)
    offset = torch.empty(b, 1, 1, 1).uniform_(-0.1, 0.1, generator=generator)
    noise = torch.randn(images.shape, generator=generator) * torch.empty(b, 1, 1, 1).uniform_(
        0.0, 0.05, generator=generator
    )
    return images.clamp(0, 1) ** gamma * gain + offset + noise


# ----------------------------------------------------------------------------------------------------- loss
#: Network classes of the cartilage plates (femoral, tibial, patellar) whose mutual contacts the contact weight targets.
CARTILAGE_CHANNELS = (2, 4, 6)


def cartilage_contacts(targets: torch.Tensor) -> torch.Tensor:
    """Pixels (B, 1, H, W) of a cartilage class with a different cartilage class among their 8 neighbours.

    Where femoral and tibial cartilage touch, the boundary between them is the least visible edge in the image
    (a sub-voxel fluid film at most), yet it decides both plates' thickness; these are the pixels that carry it.
    """
    hot = [(targets == c).float() for c in CARTILAGE_CHANNELS]
    near = [torch.nn.functional.max_pool2d(h, 3, stride=1, padding=1) for h in hot]
    contact = torch.zeros_like(hot[0])
    for i, h in enumerate(hot):
        others = torch.stack([n for j, n in enumerate(near) if j != i]).amax(dim=0)
        contact = torch.maximum(contact, h * others)
    return contact


class ContactWeightedDiceCE(torch.nn.Module):
    """Dice + cross-entropy whose cross-entropy term weighs cartilage-cartilage contact pixels ``1 + contact_weight``.

    The touching-objects weight map of the original U-Net paper (Ronneberger et al., 2015), restricted to the contact
    between cartilage plates; ``contact_weight=0`` is MONAI's ``DiceCELoss(to_onehot_y=True, softmax=True)``.
    """

    def __init__(self, contact_weight: float = 0.0) -> None:
        super().__init__()
        self.contact_weight = contact_weight
        self.dice = DiceLoss(to_onehot_y=True, softmax=True)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss of (B, C, H, W) logits against (B, 1, H, W) integer targets."""
        weight = 1.0 + self.contact_weight * cartilage_contacts(targets)[:, 0]
        ce = torch.nn.functional.cross_entropy(logits, targets[:, 0], reduction="none")
        return self.dice(logits, targets) + (weight * ce).sum() / weight.sum()


# ----------------------------------------------------------------------------------------------- checkpoints
def _save_checkpoint(out: Path, net: torch.nn.Module, optim: torch.optim.Optimizer, state: dict) -> None:
    """Write the model + optimizer tensors (safetensors) and loop state (JSON) atomically; no pickle."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in net.state_dict().items()}
    for i, pstate in optim.state_dict()["state"].items():
        for key, value in pstate.items():
            tensors[f"optim.{i}.{key}"] = torch.as_tensor(value).detach().contiguous().clone()
    with atomic_path(out / "checkpoint.safetensors") as tmp:
        save_file(tensors, str(tmp))
    write_text_atomic(out / "checkpoint.json", json.dumps(state, indent=2))


def _load_checkpoint(out: Path, net: torch.nn.Module, optim: torch.optim.Optimizer) -> dict:
    """Restore model/optimizer tensors and return the saved loop state."""
    tensors = load_file(str(out / "checkpoint.safetensors"))
    net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optim_state = optim.state_dict()
    states: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            states.setdefault(int(idx), {})[name] = value
    optim_state["state"] = states
    optim.load_state_dict(optim_state)
    return json.loads((out / "checkpoint.json").read_text())


# ------------------------------------------------------------------------------------------------- training
def train_segmenter(
    train_cases: Sequence[SegmentationCase],
    val_cases: Sequence[SegmentationCase],
    out: str | Path | None,
    segmenter,
    epochs: int = 30,
    seed: int = 0,
    batch_size: int = 16,
    lr: float = 2e-3,
    steps_per_epoch: int | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    contact_weight: float = 0.0,
    init_weights: str | Path | None = None,
) -> TrainResult:
    """Train the U-Net with DiceCE loss on sagittal slices; checkpoint every epoch, resume, keep the best validation Dice.

    Parameters
    ----------
    train_cases, val_cases
        Scans with harmonised labels; validation picks the best epoch (mean cartilage Dice).
    out
        Run folder: ``checkpoint.safetensors/json`` every epoch, ``best.safetensors`` + ``history.csv``; None = no files.
    segmenter
        The :class:`oa_kit.models.mri.inference.MRISegmenter` whose settings (architecture, 2.5D context,
        preprocessing) define the network and its input slices.
    epochs, batch_size, lr, steps_per_epoch
        Optimisation settings (Adam, cosine learning-rate decay).
    seed
        Seeds weight init, slice order and augmentation (resumed runs reproduce the same batches).
    resume
        Continue from ``out/checkpoint.*`` if present.
    contact_weight
        Extra cross-entropy weight on pixels where two cartilage plates touch (:class:`ContactWeightedDiceCE`);
        0 trains with plain DiceCE.
    init_weights
        Start from these ``.safetensors`` weights (fine-tuning; same architecture) instead of a random init.
        One-channel (2D) weights also start a 2.5D network (``segmenter.context_mm > 0``): their kernels go to the
        centre channel and the neighbour channels start at zero, so training starts from exactly the 2D model.

    Returns
    -------
    TrainResult
        Network with the best validation weights (last epoch when there is no validation set), metadata, history.
    """
    torch.manual_seed(seed)
    net = segmenter._build()
    if init_weights is not None:
        load_initial_weights(net, init_weights)
    images, targets = stack_cases(train_cases, segmenter, progress)
    loss_fn = (
        ContactWeightedDiceCE(contact_weight) if contact_weight > 0 else DiceCELoss(to_onehot_y=True, softmax=True)
    )
    optim = torch.optim.Adam(net.parameters(), lr=lr)
    steps = steps_per_epoch or max(1, len(images) // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: 0.5 * (1 + np.cos(np.pi * min(s / (epochs * steps), 1.0))) + 0.02
    )
    run = Path(out) if out is not None else None
    start, history, best = 0, [], {"score": -float("inf"), "state": None}
    if resume and run is not None and (run / "checkpoint.json").exists():
        state = _load_checkpoint(run, net, optim)
        start, history, best["score"] = state["epoch"], state["history"], state["best_score"]
        for _ in range(start * steps):
            sched.step()
        if (run / "best.safetensors").exists():
            best["state"] = load_file(str(run / "best.safetensors"))
    for epoch in range(start, epochs):
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        net.train()
        order = torch.randint(0, len(images), (steps, batch_size), generator=gen)
        losses = []
        for idx in tqdm(order, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False):
            x = augment(images[idx].float(), gen)
            optim.zero_grad()
            loss = loss_fn(net(x), targets[idx].long())
            loss.backward()
            optim.step()
            sched.step()
            losses.append(float(loss.detach()))
        net.eval()
        segmenter.net_ = net
        score = _validation_score(segmenter, val_cases) if val_cases else -float(np.mean(losses))
        history.append(
            {"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_cartilage_dice": score, "time": time.time()}
        )
        if score > best["score"]:
            best = {"score": score, "state": {k: v.detach().clone() for k, v in net.state_dict().items()}}
            if run is not None:
                with atomic_path(run / "best.safetensors") as tmp:
                    save_file(best["state"], str(tmp))
        if log:
            log(
                f"{time.strftime('%H:%M:%S')} epoch {epoch + 1}/{epochs} loss {history[-1]['loss']:.4f} val_cartilage_dice {score:.4f}"
            )
        if run is not None:
            _save_checkpoint(
                run,
                net,
                optim,
                {
                    "epoch": epoch + 1,
                    "history": history,
                    "best_score": best["score"],
                    "seed": seed,
                    "context_mm": segmenter.context_mm,
                },
            )
            write_csv(pd.DataFrame(history), run / "history.csv")
    if best["state"] is not None:
        net.load_state_dict(best["state"])
    metadata = {
        **_metadata(segmenter),
        "seed": seed,
        "epochs": epochs,
        "n_train_cases": len(train_cases),
        "n_val_cases": len(val_cases),
        "best_val_cartilage_dice": best["score"],
        "contact_weight": contact_weight,
        "init_weights": Path(init_weights).name if init_weights else None,
    }
    return TrainResult(net=net.eval(), metadata=metadata, history=history)


def load_initial_weights(net: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load fine-tuning start weights into ``net``: same architecture, or 2D (one input channel) weights widened to a
    2.5D network with zero neighbour kernels (:func:`~oa_kit.models.mri.network.expand_input_channels`)."""
    try:
        state = expand_input_channels(load_file(str(path)), net.state_dict(), CONTEXT_CENTRE)
        net.load_state_dict(state)
    except (RuntimeError, OSError) as exc:
        raise OAKitError(
            f"{path}: cannot start from these weights ({exc.__class__.__name__}); "
            "expected a .safetensors file of the same architecture (or its 2D version)"
        ) from exc
    return net


def _metadata(segmenter) -> dict:
    """Architecture and preprocessing entries of the weights JSON (what :meth:`MRISegmenter.from_pretrained` reads)."""
    return {
        "architecture": {
            "spatial_dims": 2,
            "channels": list(segmenter.channels),
            "strides": list(segmenter.strides),
            "num_res_units": segmenter.num_res_units,
            "out_channels": N_NETWORK_CLASSES,
            "in_channels": segmenter.in_channels,
        },
        "spacing_mm": segmenter.spacing_mm,
        "roi_size": list(segmenter.roi_size),
        "context_mm": segmenter.context_mm,
    }


def _validation_score(segmenter, cases: Sequence[SegmentationCase]) -> float:
    """Mean Dice over femoral, tibial (medial+lateral) and patellar cartilage on validation cases."""
    scores = []
    for case in cases:
        pred = segmenter.predict(case.image, case.affine, case.side)
        for label in (2, 4, 5, 7):
            a, b = pred == label, case.labels == label
            denom = a.sum() + b.sum()
            if denom:
                scores.append(2.0 * np.logical_and(a, b).sum() / denom)
    return float(np.mean(scores)) if scores else 0.0


def save_weights(result: TrainResult, path: str | Path, extra: dict | None = None) -> Path:
    """Write trained weights (safetensors) and JSON metadata with the file's sha256 beside it; returns the weights path."""

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in result.net.state_dict().items()}, str(tmp))
    meta = dict(result.metadata, **(extra or {}), sha256=sha256_file(path), weights_file=path.name)
    write_text_atomic(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    return path


# --------------------------------------------------------------------------------------------- synthetic phantoms
def render_phantom_cases(
    n_participants: int,
    seed: int = 0,
    geometry=None,
    progress: bool = True,
    thickness_range_mm: tuple[float, float] = (0.8, 3.2),
    only_groups: set[str] | None = None,
    contrast: str = DEFAULT_CONTRAST,
) -> list[SegmentationCase]:
    """Render both knees of ``n_participants`` synthetic participants (random regional thickness and site A-E)
    with tissue ``contrast`` (a key of :data:`oa_kit.synth.mri.TISSUE_CONTRASTS`).

    Each case keeps its participant id in ``group`` so splits never put one participant's knees on both sides.
    ``only_groups`` renders just those participants (the random draws of the others are replayed, not rendered),
    so a run's test set can be re-created exactly without rendering its training set.
    """

    geometry = geometry or DEFAULT_GEOMETRY
    rng = np.random.default_rng(seed)
    sites = sorted(SITE_MRI)
    cases = []
    for p in tqdm(range(n_participants), desc="rendering phantoms", disable=not progress):
        pid = f"SYN{seed:03d}{p:04d}"
        for side in ("R", "L"):
            thickness = {s: float(rng.uniform(*thickness_range_mm)) for s in SUBREGIONS}
            site = SITE_MRI[sites[int(rng.integers(len(sites)))]]
            knee_seed = int(rng.integers(2**31))
            if only_groups is not None and pid not in only_groups:
                continue
            r = render_knee_mri(side, thickness, geometry, site, seed=knee_seed, contrast=contrast)
            case = SegmentationCase(f"{pid}_{side}", r.image, r.labels, r.affine, side, group=pid)
            case.true_thickness_mm = dict(r.true_thickness_mm)  # type: ignore[attr-defined]
            case.true_thickness_all_mm = dict(r.true_thickness_all_mm)  # type: ignore[attr-defined]
            cases.append(case)
    return cases


def split_by_group(
    cases: Sequence[SegmentationCase], fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), seed: int = 0
) -> tuple[list[SegmentationCase], list[SegmentationCase], list[SegmentationCase]]:
    """Train/validation/test split by participant (``group``), so no participant spans two sets."""
    groups = sorted({c.group or c.case_id for c in cases})
    order = np.random.default_rng(seed).permutation(len(groups))
    n_train = int(round(fractions[0] * len(groups)))
    n_val = int(round(fractions[1] * len(groups)))
    assign = {}
    for rank, gi in enumerate(order):
        assign[groups[gi]] = 0 if rank < n_train else 1 if rank < n_train + n_val else 2
    parts: tuple[list, list, list] = ([], [], [])
    for c in cases:
        parts[assign[c.group or c.case_id]].append(c)
    return parts
