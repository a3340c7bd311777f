"""``KLGrader``: inference with the KL CNN — calibrated probabilities, grades, conformal sets, embeddings, QA flags —
plus :func:`load_knees` (DICOM / PNG / JPEG files and Chen-layout folders) and :func:`grade_knee_records`, which
turn files into the one KL output table (one row per knee)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn.covariance import LedoitWolf

from oa_kit.cohort.splits import participant_kfold
from oa_kit.errors import OAKitError
from oa_kit.imaging.localize import knee_rois
from oa_kit.imaging.preprocess import KL_INPUT_SIZE, check_roi, kl_input
from oa_kit.io.artifacts import check_settings, sha256_file, verified_sidecar
from oa_kit.io.atomic import atomic_path, write_text_atomic
from oa_kit.io.chen import is_chen_layout, read_chen
from oa_kit.io.radiograph import read_radiograph
from oa_kit.models.kl.calibration import TemperatureScaler
from oa_kit.models.kl.conformal import APSConformal, set_labels
from oa_kit.models.kl.data import chen_input, read_gray
from oa_kit.models.kl.losses import logits_to_proba
from oa_kit.models.kl.network import KLNet, fuse_for_inference
from oa_kit.models.kl.train import build_model
from oa_kit.models.kl.transforms import tta_views

#: Shipped weights (safetensors) and their JSON sidecar (sha256, calibration, conformal and OOD settings).
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
SHIPPED_WEIGHTS = WEIGHTS_DIR / "kl_weights.safetensors"
#: sha256 of the shipped weights and sidecar, pinned in code: a shipped file edited in place is refused
#: (tests/test_kl_model.py checks the pins against the files; `oa-kit kl calibrate` users update them here).
SHIPPED_SHA256 = {
    "kl_weights.safetensors": "6c022ae76d6689c91fc50583193773d696bcd17a52498a8d17ae29968941c0ed",
    "kl_weights.json": "1a4f863b4051b472ef475adf733a6b9c3d2713ffe94dd50faa6f48be832403c1",
}
#: Numeric sidecar settings and their valid ranges (exclusive): a temperature of -1 would flip every grade.
SIDECAR_FIELDS = {
    "tta": (int, 0, 65),
    "temperature": (float, 0.0, 100.0),
    "alpha": (float, 0.0, 1.0),
    "qhat": (float, 0.0, 2.0),
    "n_calibration": (int, 0, 10**9),
    "ood_quantile": (float, 0.0, 1.0),
    "ood_threshold": (float, 0.0, 1e6),
}
#: The KL output table (``oa-kit kl predict``, :func:`oa_kit.api.grade_knees`), one row per knee: these columns, then
#: the ``kl_emb_000``... embedding. ``oa-kit progression --radiograph`` reads it as it is: the probabilities and the
#: embedding are features; ``source``, ``kl_grade`` (the argmax of the probabilities), the conformal set and the QA
#: flags are not (``oa_kit.features.schema``).
KL_PROBA_COLUMNS = tuple(f"kl_p{k}" for k in range(5))
KL_TABLE_COLUMNS = ("participant_id", "side", "source", *KL_PROBA_COLUMNS, "kl_grade", "kl_grade_set", "kl_qa_flags")
KL_EMBEDDING_PREFIX = "kl_emb_"
#: QA flags this module adds (upstream reader/localiser flags are passed through).
KL_QA_FLAGS = ("blank_image", "out_of_distribution", "uncertain_grade", "unknown_side")
#: Cross-fitting folds for the OOD threshold (:meth:`KLGrader.fit`).
OOD_FOLDS = 5
#: How the shipped OOD score is computed (recorded in the sidecar and the model card).
OOD_METHOD = (
    "multi-layer Mahalanobis: per network stage, the channel means and standard deviations of its feature maps; "
    "Ledoit-Wolf Gaussian per stage fitted on the calibration knees; each stage's distance divided by its 99th "
    "percentile over cross-fitted (participant-grouped, out-of-fold) calibration knees; score = the largest ratio"
)
_CHEN_NAME = re.compile(r"^(?P<pid>\d+)(?P<side>[LR])\.(png|jpe?g)$", re.IGNORECASE)


def load_network(path: str | os.PathLike, device: str = "cpu") -> tuple[KLNet, dict[str, str], dict[str, torch.Tensor]]:
    """Load a ``KLNet`` (eval mode) from a KL weights file (``best.safetensors`` or shipped weights), no checksum check.

    Returns the network, the file's metadata (``loss``, ``widths``, ...) and the non-network tensors (``ood.*``).
    Raises ``OAKitError`` naming the file when it is missing, unreadable or not KL weights.
    """
    path = Path(path)
    if not path.exists():
        raise OAKitError(
            f"{path}: KL weights file missing; expected the shipped oa_kit/weights/kl_weights.safetensors "
            "or a best.safetensors from `oa-kit kl train`"
        )
    try:
        with safe_open(str(path), "pt") as handle:
            meta = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise OAKitError(f"{path}: not a readable safetensors file ({exc}); expected KL weights") from exc
    if meta.get("format") != "oa_kit.kl/1":
        raise OAKitError(f"{path}: metadata format {meta.get('format')!r}; expected 'oa_kit.kl/1'")
    model = build_model(meta)
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("ood.")})
    return model.to(device).eval(), meta, {k: v for k, v in tensors.items() if k.startswith("ood.")}


class KLGrader:
    """KL-grade CNN wrapper (sklearn-style): ``fit`` calibrates on validation data, the ``predict*`` methods never refit.

    Parameters
    ----------
    weights : path
        A ``best.safetensors`` from ``oa-kit kl train`` (network weights + metadata).
    tta : int
        Test-time views averaged at the logit level (1 = none; see ``transforms.tta_views``).
    alpha : float
        Conformal miscoverage (0.1 → sets with ≥ 90% marginal coverage).
    ood_quantile : float
        Knees whose OOD score (:data:`OOD_METHOD`) exceeds this conformal quantile of the cross-fitted (out-of-fold)
        scores of the calibration knees are flagged ``out_of_distribution``: 1 − ``ood_quantile`` is the false-flag
        rate for knees exchangeable with the calibration knees (0.995 → at most 0.5%).
    device : str
        Torch device for inference.
    batch_size : int
        Knees per forward pass.
    fuse : bool
        Predict with ``network.fuse_for_inference`` (BatchNorm folded into the convolutions, channels-last): the same
        probabilities up to float rounding (max |Δp| < 1e-6) for about 1.5× less CPU time.

    Attributes
    ----------
    model_ (the network as trained), inference_model_ (what predicts: fused or ``model_``), loss_, temperature_,
    conformal_ (APSConformal), ood_stats_ (per stage: mean, precision, scale), ood_threshold_ (on the OOD score),
    ood_summary_ (after ``fit``: cross-fitted and in-sample flag rates on the calibration knees)
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        tta: int = 1,
        alpha: float = 0.1,
        ood_quantile: float = 0.995,
        device: str = "cpu",
        batch_size: int = 32,
        fuse: bool = True,
    ) -> None:
        self.weights = weights
        self.tta = tta
        self.alpha = alpha
        self.ood_quantile = ood_quantile
        self.device = device
        self.batch_size = batch_size
        self.fuse = fuse

    # ------------------------------------------------------------------ loading / saving
    def _load_network(self) -> None:
        """Load ``weights`` into ``model_`` (and OOD statistics when the file carries them)."""
        path = Path(self.weights) if self.weights is not None else SHIPPED_WEIGHTS
        self.model_, self.meta_, extra = load_network(path, self.device)
        self.inference_model_ = fuse_for_inference(self.model_) if self.fuse else self.model_
        self.loss_ = self.meta_["loss"]
        self.input_size_ = int(self.meta_.get("input_size", KL_INPUT_SIZE))
        self.ood_stats_ = [
            (
                extra[f"ood.layer{i}.mean"].numpy(),
                extra[f"ood.layer{i}.precision"].numpy(),
                float(extra[f"ood.layer{i}.scale"].reshape(-1)[0]),
            )
            for i in range(len(self.model_.stages))
            if f"ood.layer{i}.mean" in extra
        ]
        if not self.ood_stats_ and "ood.mean" in extra:  # weights calibrated before the multi-layer score
            self.ood_mean_, self.ood_precision_ = extra["ood.mean"].numpy(), extra["ood.precision"].numpy()

    @classmethod
    def from_pretrained(
        cls, weights: str | os.PathLike | None = None, device: str = "cpu", fuse: bool = True
    ) -> KLGrader:
        """Load calibrated weights (default: the shipped model) after checking the sha256 in the JSON sidecar.

        Raises ``OAKitError`` naming the file when the weights or sidecar are missing or the checksum differs.
        No network access. ``fuse=False`` predicts with the network exactly as trained (see the class docstring).
        """
        path = Path(weights) if weights is not None else SHIPPED_WEIGHTS
        pinned = SHIPPED_SHA256 if path.resolve() == SHIPPED_WEIGHTS.resolve() else None
        info = verified_sidecar(path, "KL weights", pinned)
        check_settings(info, SIDECAR_FIELDS, path.with_suffix(".json"))
        grader = cls(
            weights=path,
            tta=info["tta"],
            alpha=info["alpha"],
            ood_quantile=info["ood_quantile"],
            device=device,
            fuse=fuse,
        )
        grader._load_network()
        grader.temperature_ = float(info["temperature"])
        grader.conformal_ = APSConformal(alpha=info["alpha"])
        grader.conformal_.qhat_, grader.conformal_.n_calibration_ = float(info["qhat"]), int(info["n_calibration"])
        grader.ood_threshold_ = float(info["ood_threshold"])
        grader.info_ = info
        return grader

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> Path:
        """Write calibrated weights (network + OOD statistics) and the JSON sidecar with their sha256."""
        self._check_fitted()
        path = Path(path)
        tensors = {
            k: v.detach().cpu().float().contiguous() if v.is_floating_point() else v.detach().cpu().contiguous()
            for k, v in self.model_.state_dict().items()
        }
        for i, (mean, precision, scale) in enumerate(self.ood_stats_):
            tensors[f"ood.layer{i}.mean"] = torch.as_tensor(mean, dtype=torch.float32)
            tensors[f"ood.layer{i}.precision"] = torch.as_tensor(precision, dtype=torch.float32)
            tensors[f"ood.layer{i}.scale"] = torch.tensor([scale], dtype=torch.float32)
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=self.meta_)
        info = {
            "file": path.name,
            "sha256": sha256_file(path),
            "loss": self.loss_,
            "input_size": self.input_size_,
            "embedding_dim": self.model_.embedding_dim,
            "tta": self.tta,
            "temperature": self.temperature_,
            "alpha": self.alpha,
            "qhat": self.conformal_.qhat_,
            "n_calibration": self.conformal_.n_calibration_,
            "ood_quantile": self.ood_quantile,
            "ood_threshold": self.ood_threshold_,
            "ood_method": OOD_METHOD,
            **({"ood": self.ood_summary_} if hasattr(self, "ood_summary_") else {}),
            **(extra or {}),
        }
        write_text_atomic(path.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
        return path

    # ------------------------------------------------------------------ calibration
    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None, seed: int = 0) -> KLGrader:
        """Calibrate on validation inputs X (N, 1, S, S) and grades y: temperature, conformal sets, OOD statistics.

        The OOD threshold is chosen on cross-fitted scores: the knees are split into :data:`OOD_FOLDS`
        participant-grouped folds (``groups``: participant id per knee; default each knee its own participant), each
        fold is scored by Gaussians fitted on the other folds (as a new knee would be), and the threshold is the
        conformal ``ood_quantile`` of those out-of-fold scores. The stored Gaussians are then fitted on all knees.
        """
        self._load_network()
        y = np.asarray(y).astype(np.int64)
        logits, _, features = self._forward(X)
        self.temperature_ = TemperatureScaler(self.loss_).fit(logits, y).temperature_
        proba = logits_to_proba(torch.as_tensor(logits), self.loss_, self.temperature_).numpy()
        self.conformal_ = APSConformal(alpha=self.alpha).fit(proba, y)
        self._fit_ood(
            features, np.arange(len(y)).astype(str) if groups is None else np.asarray(groups).astype(str), seed
        )
        return self

    def _fit_ood(self, features: list[np.ndarray], groups: np.ndarray, seed: int) -> None:
        """Per-stage Gaussians, out-of-fold scales and the conformal threshold (see :meth:`fit`)."""
        n = len(groups)
        if not 0 < self.ood_quantile < 1:
            raise OAKitError(f"ood_quantile: {self.ood_quantile}; expected a quantile in (0, 1), e.g. 0.995")
        if n < 2:
            raise OAKitError(f"calibration knees: {n}; expected at least 2 knees")
        if len(np.unique(groups)) < 2:  # one participant (tiny smoke runs): folds of single knees
            groups = np.arange(n).astype(str)
        n_folds = min(OOD_FOLDS, len(np.unique(groups)))
        folds = participant_kfold(pd.DataFrame({"participant_id": groups}), n_splits=n_folds, seed=seed)
        oof = np.empty((len(features), n))
        self.ood_stats_ = []
        for i, feats in enumerate(features):
            for train_idx, test_idx in folds:
                lw = LedoitWolf().fit(feats[train_idx])
                oof[i, test_idx] = mahalanobis(feats[test_idx], lw.location_, lw.precision_)
            scale = float(np.quantile(oof[i], 0.99))
            lw = LedoitWolf().fit(feats)
            self.ood_stats_.append((lw.location_.astype(np.float32), lw.precision_.astype(np.float32), scale))
        oof_score = (oof / np.array([s[2] for s in self.ood_stats_])[:, None]).max(0)
        rank = min(int(np.ceil((n + 1) * self.ood_quantile)), n)
        self.ood_threshold_ = float(np.sort(oof_score)[rank - 1])
        self.ood_summary_ = {
            "n_calibration": n,
            "n_folds": n_folds,
            "seed": seed,
            "false_flag_target": round(1 - self.ood_quantile, 6),
            "cross_fitted_flag_rate": float((oof_score > self.ood_threshold_).mean()),
            "in_sample_flag_rate": float((self._ood_from_features(features) > self.ood_threshold_).mean()),
        }

    # ------------------------------------------------------------------ inference
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated grade probabilities (N, 5) for preprocessed inputs (N, 1, S, S) in [0, 1] or uint8 (N, S, S)."""
        return self.predict_proba_and_embed(X)[0]

    def predict_proba_and_embed(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities (N, 5) and embeddings (N, embedding_dim) from one pass (what :func:`grade_knee_records` needs)."""
        proba, embeddings, _ = self.predict_proba_embed_ood(X)
        return proba, embeddings

    def predict_proba_embed_ood(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Calibrated probabilities (N, 5), embeddings (N, D) and OOD scores (N,) from one pass (flagged above
        ``ood_threshold_``)."""
        self._check_fitted()
        logits, embeddings, features = self._forward(X)
        proba = logits_to_proba(torch.as_tensor(logits), self.loss_, self.temperature_).numpy()
        return proba, embeddings, self._ood_from_features(features, embeddings)

    def ood_score(self, X: np.ndarray) -> np.ndarray:
        """OOD score per knee (:data:`OOD_METHOD`); knees above ``ood_threshold_`` are flagged ``out_of_distribution``."""
        self._check_fitted()
        _, embeddings, features = self._forward(X, tta=1)
        return self._ood_from_features(features, embeddings)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable KL grade per knee (N,)."""
        return self.predict_proba(X).argmax(1)

    def predict_sets(self, X: np.ndarray) -> np.ndarray:
        """Conformal prediction sets as boolean membership (N, 5)."""
        return self.predict_sets_from_proba(self.predict_proba(X))

    def predict_sets_from_proba(self, proba: np.ndarray) -> np.ndarray:
        """Conformal sets (N, 5) from already computed calibrated probabilities."""
        self._check_fitted()
        return self.conformal_.predict_sets(proba)

    def embed(self, X: np.ndarray) -> np.ndarray:
        """Penultimate embeddings (N, embedding_dim) — the features exported to the progression models (no TTA)."""
        self._check_fitted()
        return self._forward(X, tta=1)[1]

    def input_tensor(self, X: np.ndarray) -> torch.Tensor:
        """Validated inputs as a float tensor (N, 1, S, S) on the grader's device (what the network is given)."""
        self._check_fitted()
        return _as_input(X, self.input_size_).to(self.device)

    def qa_flags(
        self, X: np.ndarray, proba: np.ndarray | None = None, ood: np.ndarray | None = None
    ) -> list[tuple[str, ...]]:
        """Per-knee QA flags: ``blank_image`` (no contrast), ``out_of_distribution`` (OOD score above
        ``ood_threshold_``: features far from the calibration knees), ``uncertain_grade`` (conformal set spans ≥ 3
        grades). ``proba`` and ``ood`` (scores) are computed when not given."""
        x = _as_input(X, self.input_size_).numpy()
        if proba is None or ood is None:
            proba, _, ood = self.predict_proba_embed_ood(x)
        blank = x.reshape(len(x), -1).std(1) < 0.02
        far = np.asarray(ood) > self.ood_threshold_
        wide = self.predict_sets_from_proba(proba).sum(1) >= 3
        return [
            tuple(name for name, hit in (("blank_image", b), ("out_of_distribution", f), ("uncertain_grade", w)) if hit)
            for b, f, w in zip(blank, far, wide)
        ]

    # ------------------------------------------------------------------ internals
    def _forward(self, X: np.ndarray, tta: int | None = None) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Raw logits (TTA-averaged), view-0 embeddings and view-0 OOD features (per stage: channel means and
        standard deviations) for all inputs, in batches."""
        x = _as_input(X, self.input_size_)
        views = self.tta if tta is None else tta
        if int(views) < 1:
            raise OAKitError(f"tta: {views}; expected test-time views >= 1 (1 = no augmentation)")
        model = self.inference_model_
        logits, embeddings, features = [], [], []
        with torch.inference_mode():
            for start in range(0, len(x), self.batch_size):
                batch = x[start : start + self.batch_size].to(self.device)
                outs = []
                for i, view in enumerate(tta_views(batch, views)):
                    hidden, stats = model.stem(view.contiguous(memory_format=torch.channels_last)), []
                    for stage in model.stages:
                        hidden = stage(hidden)
                        stats.append(torch.cat([hidden.mean((2, 3)), hidden.std((2, 3))], 1).cpu())
                    emb = model.pool(hidden).flatten(1)  # what KLNet.embed computes
                    outs.append(model.head(emb))
                    if i == 0:
                        embeddings.append(emb.cpu())
                        features.append(stats)
                logits.append(torch.stack(outs).mean(0).cpu())
        layers = [torch.cat([f[i] for f in features]).numpy() for i in range(len(features[0]))] if features else []
        return torch.cat(logits).numpy(), torch.cat(embeddings).numpy(), layers

    def _ood_from_features(self, features: list[np.ndarray], embeddings: np.ndarray | None = None) -> np.ndarray:
        """OOD score from per-stage features (or, for weights calibrated before the multi-layer score, the embedding
        Mahalanobis distance)."""
        if self.ood_stats_:
            return np.max(
                [
                    mahalanobis(f, mean, precision) / scale
                    for f, (mean, precision, scale) in zip(features, self.ood_stats_)
                ],
                axis=0,
            )
        return mahalanobis(embeddings, self.ood_mean_, self.ood_precision_)

    def _check_fitted(self) -> None:
        """Raise unless calibrated (``fit`` or ``from_pretrained``)."""
        if not hasattr(self, "temperature_"):
            raise OAKitError("KLGrader: not calibrated; expected KLGrader.from_pretrained() or fit(X_val, y_val) first")


def mahalanobis(x: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Mahalanobis distance of each row of x to a Gaussian (mean, precision)."""
    diff = np.asarray(x, np.float64) - mean
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", diff, precision, diff), 0))


def _as_input(X: np.ndarray, size: int) -> torch.Tensor:
    """Validate preprocessed inputs: float (N, 1, S, S) in [0, 1] or uint8 (N, S, S) → float tensor (N, 1, S, S)."""
    array = np.asarray(X)
    if array.dtype == np.uint8 and array.ndim == 3:
        array = array[:, None].astype(np.float32) / 255.0
    if array.ndim != 4 or array.shape[1:] != (1, size, size):
        raise OAKitError(
            f"X: shape {array.shape}; expected preprocessed inputs (N, 1, {size}, {size}) from "
            "oa_kit.imaging.preprocess.kl_input"
        )
    return torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32))


# ---------------------------------------------------------------------- files → table
def load_knees(path: Path, side: str | None, clahe: str) -> list[dict]:
    """Knee records from one DICOM/PNG/JPEG file or a folder (Chen layout ``{split}/{0..4}/``, grade folders ``{0..4}/``
    without a split level, or plain): ``id``, ``side``, ``source``, ``input`` (the model input (1, S, S), or None
    when no knee was found), ``flags`` (QA) and, for Chen and grade folders, ``kl_label`` (the folder's grade).
    ``clahe``: ``auto`` skips CLAHE for Chen-layout and grade folders (read as the CLAHE-enhanced Chen copy) and
    applies it to DICOM/PNG/JPEG inputs; ``yes``/``no`` force it (``yes`` for grade folders of original images)."""
    if clahe not in ("auto", "yes", "no"):
        raise OAKitError(f"clahe: {clahe!r}; expected auto, yes or no")
    if path.is_dir():
        if is_chen_layout(path):
            return chen_knee_records(read_chen(path), side, clahe)
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".dcm"))
        if not files:
            raise OAKitError(
                f"{path}: folder has no .png/.jpg/.dcm files and is not in the Chen layout; expected images, "
                "{split}/{0..4}/ or {0..4}/ grade folders"
            )
        return [knee for file in files for knee in load_knees(file, side, clahe)]
    if not path.exists():
        raise OAKitError(f"{path}: input file not found; expected a DICOM, PNG or JPEG file or a Chen-layout folder")
    with open(path, "rb") as handle:
        head = handle.read(132)
    if head[128:132] == b"DICM" or path.suffix.lower() in (".dcm", ".dicom"):
        return _knees_from_dicom(path, side, clahe != "no")
    match = _CHEN_NAME.match(path.name)
    knee_side = side or (match["side"].upper() if match else "")
    knee_id = match["pid"] if match else path.stem
    flags = () if knee_side else ("unknown_side",)
    return [
        {
            "id": knee_id,
            "side": knee_side,
            "source": str(path),
            "input": _plain_input(path, knee_side, clahe != "no"),
            "flags": flags,
        }
    ]


def chen_knee_records(frame: pd.DataFrame, side: str | None, clahe: str) -> list[dict]:
    """Knee records (as :func:`load_knees`) for rows of :func:`oa_kit.io.chen.read_chen`, with ``kl_label`` and
    ``split``; ``side`` fills in images whose name has none (else they are flagged ``unknown_side``)."""
    records = []
    for r in frame.itertuples():
        knee_side = r.side or side or ""
        records.append(
            {
                "id": r.participant_id,
                "side": knee_side,
                "source": r.path,
                "kl_label": r.kl,
                "split": r.split,
                "input": chen_input(r.path, knee_side)
                if clahe != "yes"
                else _plain_input(Path(r.path), knee_side, True),
                "flags": () if knee_side else ("unknown_side",),
            }
        )
    return records


def _plain_input(path: Path, side: str, clahe: bool) -> np.ndarray:
    """Model input from a PNG/JPEG single-knee crop (8/16-bit; left knees mirrored)."""

    image = check_roi(read_gray(path), name=str(path))
    if side == "L":
        image = image[:, ::-1]
    return kl_input(image, clahe=clahe)


def _knees_from_dicom(path: Path, side: str | None, clahe: bool) -> list[dict]:
    """Knee records from a DICOM radiograph (bilateral or single knee) via the shared reader and localiser."""

    radiograph = read_radiograph(path)
    rois = knee_rois(radiograph, side=side)
    patient = str(radiograph.meta.get("patient_id", "") or path.stem)
    if not rois:
        return [
            {
                "id": patient,
                "side": "",
                "source": str(path),
                "input": None,
                "flags": tuple(dict.fromkeys(tuple(radiograph.qa_flags) + tuple(rois.qa_flags))),
            }
        ]
    return [
        {
            "id": patient,
            "side": roi.side,
            "source": str(path),
            "input": kl_input(roi.pixels, clahe=clahe),
            "flags": tuple(dict.fromkeys(tuple(roi.qa_flags) + tuple(rois.qa_flags))),
        }
        for roi in rois
    ]


def grade_knee_records(grader: KLGrader, knees: list[dict]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Grade knee records from :func:`load_knees`; returns the KL table (:data:`KL_TABLE_COLUMNS` then the
    ``kl_emb_*`` embedding), the model inputs (N, 1, S, S) and the embeddings (N, D) (NaN where no knee was found).

    ``kl_grade`` is <NA> and the conformal set all grades where the image is unusable (``blank_image``) or no knee
    was found. A knee flagged ``out_of_distribution`` keeps its probabilities, grade and set: the flag in
    ``kl_qa_flags`` (";"-joined) marks the grade as one to check.
    """
    size, dim = grader.input_size_, grader.model_.embedding_dim
    rows = [i for i, k in enumerate(knees) if k["input"] is not None]
    x = np.full((len(knees), 1, size, size), np.nan, dtype=np.float32)
    proba = np.full((len(knees), 5), np.nan)
    emb = np.full((len(knees), dim), np.nan, dtype=np.float32)
    flags = [list(k["flags"]) for k in knees]
    grade = pd.array([pd.NA] * len(knees), dtype="Int64")
    grade_set = ["0,1,2,3,4"] * len(knees)
    if rows:
        x[rows] = np.stack([knees[i]["input"] for i in rows])
        proba[rows], emb[rows], ood = grader.predict_proba_embed_ood(x[rows])
        sets = set_labels(grader.predict_sets_from_proba(proba[rows]))
        for row, extra, label in zip(rows, grader.qa_flags(x[rows], proba[rows], ood), sets, strict=True):
            flags[row] += [f for f in extra if f not in flags[row]]
            if "blank_image" not in flags[row]:
                grade[row], grade_set[row] = int(np.argmax(proba[row])), label
    table = pd.DataFrame(
        {
            "participant_id": [str(k["id"]) for k in knees],
            "side": [k["side"] for k in knees],
            "source": [k["source"] for k in knees],
            **{name: proba[:, k] for k, name in enumerate(KL_PROBA_COLUMNS)},
            "kl_grade": grade,
            "kl_grade_set": grade_set,
            "kl_qa_flags": [";".join(f) for f in flags],
        }
    )
    embedding = pd.DataFrame(emb, columns=[f"{KL_EMBEDDING_PREFIX}{i:03d}" for i in range(dim)])
    return pd.concat([table, embedding], axis=1), x, emb
