"""KL-grade CNN training: ``KLTrainer`` (AdamW + warm-up cosine, AMP on CUDA, EMA, class weighting, per-epoch checkpoints,
resume, early stopping on validation QWK) and ``train_kl`` for a Chen folder or pack."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from sklearn.metrics import cohen_kappa_score
from tqdm.auto import tqdm

from oa_kit.errors import OAKitError
from oa_kit.io.atomic import atomic_path, write_text_atomic
from oa_kit.io.tables import write_csv
from oa_kit.models.kl.data import load_training_data
from oa_kit.models.kl.losses import class_weights, logits_to_proba, make_loss, n_outputs_for
from oa_kit.models.kl.network import KLNet
from oa_kit.models.kl.transforms import kl_augment

WEIGHTS_FORMAT = "oa_kit.kl/1"


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available else CPU; otherwise the named device (error if CUDA is asked for but absent)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise OAKitError(f"device: {device!r} is not a torch device; expected cpu, cuda, cuda:N or auto") from None
    if parsed.type == "cuda" and (not torch.cuda.is_available() or (parsed.index or 0) >= torch.cuda.device_count()):
        raise OAKitError(
            f"device: {device!r} requested but that CUDA device is not available; expected 'cpu' or 'auto'"
        )
    if parsed.type not in ("cpu", "cuda"):
        raise OAKitError(f"device: {device!r} is not supported; expected cpu, cuda, cuda:N or auto")
    return parsed


def model_metadata(model: KLNet, loss: str, input_size: int, extra: dict | None = None) -> dict[str, str]:
    """String metadata stored in a weights file: enough to rebuild the network and read its outputs."""
    widths = [m[0].conv1.out_channels for m in model.stages]
    blocks = [len(m) for m in model.stages]
    meta = {
        "format": WEIGHTS_FORMAT,
        "loss": loss,
        "n_outputs": str(model.n_outputs),
        "widths": json.dumps(widths),
        "blocks": json.dumps(blocks),
        "input_size": str(input_size),
        "embedding_dim": str(model.embedding_dim),
    }
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    return meta


def build_model(meta: dict[str, str]) -> KLNet:
    """Rebuild a ``KLNet`` from weights-file metadata."""
    return KLNet(
        n_outputs=int(meta["n_outputs"]),
        widths=tuple(json.loads(meta["widths"])),
        blocks=tuple(json.loads(meta["blocks"])),
    )


def save_weights(path: str | os.PathLike, model: KLNet, meta: dict[str, str]) -> None:
    """Write model weights (fp32, CPU) as safetensors atomically."""
    state = {
        k: v.detach().float().cpu().contiguous() if v.is_floating_point() else v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
    }
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)


class KLTrainer:
    """Train a ``KLNet`` on preprocessed uint8 knee images (sklearn-style: ``fit`` returns self).

    Parameters
    ----------
    loss : {"ce", "sord", "corn"}
        Training loss (plain CE with label smoothing, soft-ordinal CE, or CORN).
    epochs : int
        Maximum epochs of the warm-up + cosine schedule.
    batch_size, lr, weight_decay : training hyper-parameters (AdamW).
    warmup_epochs : float
        Linear learning-rate warm-up length.
    class_weight_power : float
        Class weights ∝ frequency^−power (0 = none; handles the KL4 rarity without balanced sampling).
    ema_decay : float
        Exponential moving average of weights used for validation and export (0 disables).
    aug_strength : float
        Multiplies every augmentation range (0 = no augmentation, 1 = the standard ranges).
    dropout : float
        Dropout before the classifier.
    patience : int
        Early stopping: stop after this many epochs without a better validation QWK.
    max_minutes : float or None
        Wall-clock budget for the epochs. After epoch 2 the schedule length ``epochs_`` is shortened so the
        cosine schedule ends inside the budget (hardware-dependent; recorded in the history), and training
        stops after the epoch that crosses it (the best checkpoint is kept).
    seed : int
        Seeds initialisation, batch order and augmentation.
    device : str
        ``auto``, ``cpu`` or ``cuda``; bf16 autocast is used on CUDA.
    out_dir : path or None
        Where ``checkpoint.safetensors``/``checkpoint.json`` (every epoch), ``best.safetensors`` and ``history.csv`` go.
    resume : bool
        Continue from ``out_dir``'s checkpoint when present.
    init_weights : path or None
        Start from these KL weights (e.g. the shipped ``kl_weights.safetensors``) to fine-tune; same loss type required.
    progress : bool
        Show tqdm bars.

    Attributes
    ----------
    model_ : KLNet  (the best-QWK weights, EMA if enabled, on CPU)
    history_ : pandas.DataFrame  (epoch, train_loss, val_nll, val_qwk, val_acc, lr, seconds)
    best_qwk_, best_epoch_ : best validation QWK and its epoch
    """

    def __init__(
        self,
        loss: str = "sord",
        epochs: int = 60,
        batch_size: int = 128,
        lr: float = 2e-3,
        weight_decay: float = 0.05,
        warmup_epochs: float = 3.0,
        class_weight_power: float = 0.3,
        ema_decay: float = 0.998,
        aug_strength: float = 1.0,
        dropout: float = 0.2,
        patience: int = 25,
        max_minutes: float | None = None,
        seed: int = 0,
        device: str = "auto",
        out_dir: str | os.PathLike | None = None,
        resume: bool = True,
        init_weights: str | os.PathLike | None = None,
        progress: bool = True,
    ) -> None:
        self.loss = loss
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.class_weight_power = class_weight_power
        self.ema_decay = ema_decay
        self.aug_strength = aug_strength
        self.dropout = dropout
        self.patience = patience
        self.max_minutes = max_minutes
        self.seed = seed
        self.device = device
        self.out_dir = out_dir
        self.resume = resume
        self.init_weights = init_weights
        self.progress = progress

    # ------------------------------------------------------------------ public
    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray) -> KLTrainer:
        """Train on uint8 images X (N, H, W) with grades y; validate every epoch on (X_val, y_val)."""
        X, y, X_val, y_val = _check_xy(X, y, "X"), np.asarray(y), _check_xy(X_val, y_val, "X_val"), np.asarray(y_val)
        device = resolve_device(self.device)
        torch.manual_seed(self.seed)
        self._setup(X.shape[-1], torch.as_tensor(y, dtype=torch.long), device)
        train_x = torch.as_tensor(X).unsqueeze(1).to(device)
        train_y = torch.as_tensor(y, dtype=torch.long).to(device)
        val_x = torch.as_tensor(X_val).unsqueeze(1).to(device)
        steps_per_epoch = max(len(X) // self.batch_size, 1)
        self._maybe_resume()
        started = time.perf_counter()
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        epoch = self.start_epoch_
        while epoch < self.epochs_:
            t0 = time.perf_counter()
            train_loss = self._train_epoch(epoch, train_x, train_y, steps_per_epoch, device)
            val_logits = self._logits(self._eval_model(), val_x, device)
            row = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                **_val_metrics(val_logits, y_val, self.loss),
                "lr": self._lr_at(self.step_, steps_per_epoch),
                "seconds": time.perf_counter() - t0,
                "schedule_epochs": self.epochs_,
            }
            self.history_.append(row)
            improved = row["val_qwk"] > self.best_qwk_
            if improved:
                self.best_qwk_, self.best_epoch_, self.stale_ = row["val_qwk"], epoch + 1, 0
                self.best_state_ = {k: v.detach().cpu().clone() for k, v in self._eval_model().state_dict().items()}
            else:
                self.stale_ += 1
            self._checkpoint(epoch + 1, improved)
            if self.progress:
                tqdm.write(
                    f"[{self.loss} s{self.seed}] epoch {epoch + 1}: loss {train_loss:.4f} "
                    f"val QWK {row['val_qwk']:.4f} acc {row['val_acc']:.4f} ({row['seconds']:.1f}s)"
                )
            if self.stale_ >= self.patience:
                break
            if self.max_minutes is not None:
                elapsed = time.perf_counter() - started
                if elapsed > 60 * self.max_minutes:
                    break
                if epoch == self.start_epoch_ + 1:
                    fits = int(0.95 * (60 * self.max_minutes - elapsed) / max(row["seconds"], 1e-3))
                    self.epochs_ = max(min(self.epochs_, epoch + 1 + fits), epoch + 2)
            epoch += 1
        self.model_ = self._net.cpu()
        self.model_.load_state_dict(self.best_state_)
        self.model_.eval()
        self.history_ = pd.DataFrame(self.history_)
        return self

    # ------------------------------------------------------------------ internals
    def _setup(self, size: int, labels: torch.Tensor, device: torch.device) -> None:
        """Create network, EMA copy, optimizer, loss and augmentation."""
        self.input_size_ = size
        self._net = (
            KLNet(n_outputs=n_outputs_for(self.loss), dropout=self.dropout)
            .to(device)
            .to(memory_format=torch.channels_last)
        )
        if self.init_weights is not None:
            self._net.load_state_dict(_load_init(self.init_weights, self.loss))
        self._ema = None
        if self.ema_decay > 0:
            self._ema = torch.optim.swa_utils.AveragedModel(
                self._net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(self.ema_decay), use_buffers=True
            )
        decay = [p for n, p in self._net.named_parameters() if p.ndim > 1]
        no_decay = [p for n, p in self._net.named_parameters() if p.ndim <= 1]
        self._opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
        )
        weight = class_weights(labels, power=self.class_weight_power) if self.class_weight_power else None
        self._criterion = make_loss(self.loss, weight).to(device)
        self._augment = kl_augment(self.seed, self.aug_strength)
        self._gen = torch.Generator().manual_seed(self.seed)
        self.history_, self.best_qwk_, self.best_epoch_, self.stale_ = [], -math.inf, 0, 0
        self.start_epoch_, self.step_, self.best_state_, self.epochs_ = 0, 0, None, self.epochs

    def _eval_model(self) -> torch.nn.Module:
        """The EMA network when enabled, else the raw one."""
        return self._ema.module if self._ema is not None else self._net

    def _lr_at(self, step: int, steps_per_epoch: int) -> float:
        """Linear warm-up then cosine decay to 1% of ``lr`` (a pure function of the step, so resume is exact)."""
        warm = self.warmup_epochs * steps_per_epoch
        total = self.epochs_ * steps_per_epoch
        if step < warm:
            return self.lr * (step + 1) / warm
        frac = min((step - warm) / max(total - warm, 1), 1.0)
        return self.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))

    def _train_epoch(self, epoch: int, x: torch.Tensor, y: torch.Tensor, steps: int, device: torch.device) -> float:
        """One pass over a seeded permutation; returns the mean training loss."""
        self._net.train()
        order = torch.randperm(len(x), generator=self._gen)[: steps * self.batch_size].view(steps, -1)
        use_amp = device.type == "cuda"
        total = torch.zeros((), device=device)
        for batch in tqdm(order, desc=f"epoch {epoch + 1}", leave=False, disable=not self.progress):
            batch = batch.to(device)
            images = self._augment(x[batch].float().div_(255.0)).contiguous(memory_format=torch.channels_last)
            for group in self._opt.param_groups:
                group["lr"] = self._lr_at(self.step_, steps)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = self._net(images)
            loss = self._criterion(logits.float(), y[batch])
            self._opt.zero_grad(set_to_none=True)
            loss.backward()
            self._opt.step()
            if self._ema is not None:
                self._ema.update_parameters(self._net)
            self.step_ += 1
            total += loss.detach()
        return float(total) / steps

    @torch.no_grad()
    def _logits(self, model: torch.nn.Module, x: torch.Tensor, device: torch.device) -> np.ndarray:
        """Logits for uint8 images (N, 1, H, W) in batches, eval mode."""
        model.eval()
        outs = []
        for start in range(0, len(x), 256):
            images = x[start : start + 256].float().div_(255.0).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                outs.append(model(images).float().cpu())
        return torch.cat(outs).numpy()

    def _checkpoint(self, epoch: int, improved: bool) -> None:
        """Write checkpoint.safetensors + checkpoint.json (every epoch) and best.safetensors (when improved)."""
        if self.out_dir is None:
            return
        out = Path(self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self._net.state_dict().items()}
        if self._ema is not None:
            tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in self._ema.state_dict().items()})
        opt_state = self._opt.state_dict()
        for index, state in opt_state["state"].items():
            tensors.update(
                {f"opt.{index}.{k}": torch.as_tensor(v).detach().cpu().contiguous() for k, v in state.items()}
            )
        tensors["best_state_flag"] = torch.tensor([1 if self.best_state_ is not None else 0])
        tensors.update({f"best.{k}": v.contiguous() for k, v in (self.best_state_ or {}).items()})
        with atomic_path(out / "checkpoint.safetensors") as tmp:
            save_file(tensors, str(tmp))
        info = {
            "epoch": epoch,
            "step": self.step_,
            "schedule_epochs": self.epochs_,
            "best_qwk": self.best_qwk_,
            "best_epoch": self.best_epoch_,
            "stale": self.stale_,
            "rng": self._gen.get_state().tolist(),
            "history": self.history_,
            "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in opt_state["param_groups"]],
            "params": self.get_params(),
        }
        write_text_atomic(out / "checkpoint.json", json.dumps(info))
        write_csv(pd.DataFrame(self.history_), out / "history.csv")
        if improved:
            meta = model_metadata(
                self._net,
                self.loss,
                self.input_size_,
                {
                    "epoch": epoch,
                    "val_qwk": f"{self.best_qwk_:.4f}",
                    "seed": self.seed,
                    "params": json.dumps(self.get_params()),
                },
            )
            save_weights(out / "best.safetensors", self._eval_model(), meta)

    def _maybe_resume(self) -> None:
        """Restore model, EMA, optimizer, RNG and bookkeeping from ``out_dir`` when ``resume`` and a checkpoint exist."""
        if not self.resume or self.out_dir is None or not (Path(self.out_dir) / "checkpoint.json").exists():
            return
        out = Path(self.out_dir)
        info = json.loads((out / "checkpoint.json").read_text())
        tensors = load_file(str(out / "checkpoint.safetensors"))
        device = next(self._net.parameters()).device
        self._net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        if self._ema is not None:
            self._ema.load_state_dict({k[4:]: v.to(device) for k, v in tensors.items() if k.startswith("ema.")})
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        groups = [
            dict(g, params=[p for p in self._opt.state_dict()["param_groups"][i]["params"]])
            for i, g in enumerate(info["param_groups"])
        ]
        self._opt.load_state_dict({"state": state, "param_groups": groups})
        if int(tensors["best_state_flag"][0]):
            self.best_state_ = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        self._gen.set_state(torch.tensor(info["rng"], dtype=torch.uint8))
        self.start_epoch_, self.step_, self.epochs_ = info["epoch"], info["step"], info["schedule_epochs"]
        self.best_qwk_, self.best_epoch_, self.stale_ = info["best_qwk"], info["best_epoch"], info["stale"]
        self.history_ = info["history"]

    def get_params(self) -> dict:
        """Constructor parameters (sklearn convention), JSON-friendly."""
        names = [
            "loss",
            "epochs",
            "batch_size",
            "lr",
            "weight_decay",
            "warmup_epochs",
            "class_weight_power",
            "ema_decay",
            "aug_strength",
            "dropout",
            "patience",
            "max_minutes",
            "seed",
            "device",
        ]
        return {n: getattr(self, n) for n in names}


def _load_init(path: str | os.PathLike, loss: str) -> dict[str, torch.Tensor]:
    """Network tensors of a KL weights file for fine-tuning (checks the loss type matches)."""

    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata() or {}
        if meta.get("loss") != loss:
            raise OAKitError(f"{path}: weights trained with loss {meta.get('loss')!r}; expected {loss!r} to fine-tune")
        return {k: handle.get_tensor(k) for k in handle.keys() if not k.startswith("ood.")}


def _val_metrics(logits: np.ndarray, y: np.ndarray, loss: str) -> dict[str, float]:
    """Validation NLL, QWK and accuracy of argmax grades."""
    proba = logits_to_proba(torch.as_tensor(logits), loss).numpy()
    pred = proba.argmax(1)
    nll = float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-7, 1)).mean())
    return {
        "val_nll": nll,
        "val_qwk": float(cohen_kappa_score(y, pred, weights="quadratic")),
        "val_acc": float((pred == y).mean()),
    }


def _check_xy(X: np.ndarray, y: np.ndarray, name: str) -> np.ndarray:
    """Validate uint8 image stacks (N, H, W) with matching 0–4 labels."""
    X = np.asarray(X)
    if X.ndim != 3 or X.dtype != np.uint8 or X.shape[1] != X.shape[2]:
        raise OAKitError(f"{name}: shape {X.shape} dtype {X.dtype}; expected uint8 (N, S, S) preprocessed images")
    y = np.asarray(y)
    if len(y) != len(X) or (len(y) and (y.min() < 0 or y.max() > 4)):
        raise OAKitError(
            f"{name}: {len(y)} labels for {len(X)} images or grades outside 0–4; expected one grade 0..4 per image"
        )
    return X


def train_kl(source: str | os.PathLike, out_dir: str | os.PathLike, limit: int | None = None, **params) -> KLTrainer:
    """Train on a Chen folder or ``.npz`` pack (train split; val split for early stopping) and write ``out_dir``.

    ``params`` go to :class:`KLTrainer`. ``limit`` keeps the first N images per split (smoke runs).
    """
    images, frame = load_training_data(source, limit=limit, progress=params.get("progress", True))
    train, val = (frame["split"] == "train").to_numpy(), (frame["split"] == "val").to_numpy()
    if not train.any() or not val.any():
        raise OAKitError(
            f"{source}: needs both train and val images; found {int(train.sum())} train, {int(val.sum())} val"
        )
    trainer = KLTrainer(out_dir=out_dir, **params)
    return trainer.fit(images[train], frame["kl"].to_numpy()[train], images[val], frame["kl"].to_numpy()[val])
