"""Model card for the shipped KL CNN, generated from a validation evaluation (``oa_kit/weights/kl_model_card.md``),
and ``ship_weights`` which calibrates trained weights on Chen val, saves them with their sha256 and writes the card."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from sklearn.covariance import LedoitWolf
from sklearn.metrics import cohen_kappa_score

from oa_kit.cohort.splits import participant_kfold
from oa_kit.errors import OAKitError
from oa_kit.io.artifacts import verified_sidecar
from oa_kit.io.atomic import write_text_atomic
from oa_kit.io.chen import read_chen
from oa_kit.metrics import top_label_ece
from oa_kit.models.kl.data import load_chen_arrays
from oa_kit.models.kl.evaluate import KLEvaluation, evaluate_grader
from oa_kit.models.kl.losses import logits_to_proba
from oa_kit.models.kl.predict import OOD_FOLDS, SHIPPED_WEIGHTS, KLGrader, mahalanobis

#: The test re-grades every CHECK_EVERY-th val knee and compares its QWK with the card.
CHECK_EVERY = 4
METRIC_NAMES = {
    "qwk": "Quadratic weighted kappa",
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "mae": "Mean absolute grade error",
    "auc_kl2": "AUC for KL ≥ 2",
    "ece": "ECE (top-label, 15 bins)",
    "nll": "Negative log-likelihood",
    "coverage": "Conformal coverage",
    "mean_set_size": "Mean conformal set size",
}

RETRAIN = """\
```bash
# 1. pack the Chen train/val images (preprocessed to 160 px, left knees mirrored) into one file (~48 MiB)
oa-kit kl pack ../shared/data/knee-kl-chen2018 --out .pack/chen160.npz --size 160 --quality 85
# 2. train (the shipped run: one NVIDIA H100, ~6 min; the same command runs with --device cpu, much slower)
oa-kit kl train .pack/chen160.npz --out runs/kl --loss {loss} --lr {lr} --weight-decay {weight_decay} \\
    --aug-strength {aug_strength} --dropout {dropout} --epochs {epochs} --patience {patience} --max-minutes {max_minutes} \\
    --seed {seed} --device cuda
# 3. calibrate on val (temperature, conformal, OOD), save with sha256, evaluate with bootstrap CIs, write this card
oa-kit kl calibrate runs/kl/best.safetensors ../shared/data/knee-kl-chen2018 --out oa_kit/weights/kl_weights.safetensors \\
    --ood-quantile 0.995
# the shipped OOD threshold was recalibrated this way (no retraining; temperature and conformal sets kept):
oa-kit kl calibrate oa_kit/weights/kl_weights.safetensors ../shared/data/knee-kl-chen2018 --ood-only --ood-quantile 0.995
```"""


def _fmt(value: float, metric: str) -> str:
    """Format one metric value (percent for proportions shown as such)."""
    if metric in ("accuracy", "balanced_accuracy", "coverage"):
        return f"{100 * value:.1f}%"
    return f"{value:.3f}"


def metrics_markdown(metrics: pd.DataFrame) -> str:
    """Markdown table of metric, estimate and 95% CI."""
    lines = ["| Metric | Estimate | 95% CI (participant bootstrap) |", "|---|---|---|"]
    for row in metrics.itertuples():
        lines.append(
            f"| {METRIC_NAMES.get(row.metric, row.metric)} | {_fmt(row.estimate, row.metric)} | "
            f"{_fmt(row.ci_low, row.metric)} – {_fmt(row.ci_high, row.metric)} |"
        )
    return "\n".join(lines)


def table_markdown(frame: pd.DataFrame) -> str:
    """A plain Markdown table of a DataFrame (floats to 4 decimals)."""
    if frame.empty:
        return "(no comparison recorded)"
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|---" * len(frame.columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def confusion_markdown(confusion: pd.DataFrame) -> str:
    """Markdown confusion matrix with per-grade recall."""
    header = "| true \\ predicted | " + " | ".join(f"KL{c}" for c in confusion.columns) + " | recall |"
    lines = [header, "|---" * (len(confusion.columns) + 2) + "|"]
    for grade, row in confusion.iterrows():
        recall = row[grade] / max(row.sum(), 1)
        lines.append(f"| KL{grade} | " + " | ".join(str(int(v)) for v in row) + f" | {100 * recall:.0f}% |")
    return "\n".join(lines)


def render_model_card(evaluation: KLEvaluation, info: dict, comparison: pd.DataFrame, calibration: dict) -> str:
    """The model card text (Markdown with YAML front matter) from an evaluation, the weights sidecar and the loss comparison."""
    est = evaluation.metrics.set_index("metric")["estimate"]
    train = info.get("training", {})
    comp = table_markdown(comparison)
    return f"""---
license: apache-2.0
library_name: oa_kit
tags: [knee, osteoarthritis, radiograph, kellgren-lawrence, ordinal-classification]
datasets: [chen2018-knee-kl-clahe]
metrics: [quadratic_weighted_kappa, accuracy, balanced_accuracy, mae, roc_auc, ece]
model-index:
  - name: oa_kit KLNet ({info["loss"]})
    results:
      - task: {{type: image-classification, name: KL grade}}
        dataset: {{name: Chen 2018 knee KL (CLAHE copy), split: val}}
        metrics:
          - {{type: quadratic_weighted_kappa, value: {est["qwk"]:.4f}}}
          - {{type: accuracy, value: {est["accuracy"]:.4f}}}
---

# oa_kit KL-grade CNN (KLNet) — model card

*Generated by `oa_kit.models.kl.card` from an evaluation run; do not edit by hand.*

## Intended use
Research and teaching: grading knee radiographs on the Kellgren–Lawrence scale, exploring uncertainty (conformal sets),
saliency (Grad-CAM) and exporting image embeddings to progression models. **Not for diagnosis or any clinical decision.**
Not validated on any external cohort.

## Training data and licence
- Chen P. *Knee Osteoarthritis Severity Grading Dataset*, Mendeley Data V1 (2018), doi:10.17632/56rmx5bjcr.1, **CC BY 4.0**.
  Chen P, Gao L, Shi X, Allen K, Yang L. Comput Med Imaging Graph 2019;75:84–92.
- The copy used is a **derivative**: intensities were CLAHE-enhanced by a third party (GitHub Rohan-145/KneeOA_Analysis,
  `ClaheDataset224/`); crops, names, splits and labels are Chen's.
- The radiographs come from the Osteoarthritis Initiative (OAI), a public-private partnership; baseline (00-month) central KL readings.
- Train split: 5,778 knees (2,889 participants); validation split: 826 knees (413 participants). The official test split is not
  available here, so **all numbers below are on val**, which was also used for early stopping, model selection, temperature,
  conformal and OOD calibration: they are optimistic and not comparable with published test-split results.

## Architecture and preprocessing
- `KLNet`: residual CNN in plain torch, stages of widths {info.get("widths", "[32, 64, 128, 256]")}, 2 basic blocks each, stem stride 4,
  global average pooling → **{info["embedding_dim"]}-d embedding** (exported per knee) → dropout → linear head
  ({"5 softmax logits" if info["loss"] != "corn" else "4 CORN logits"}). {info.get("n_parameters", "")} parameters, trained from scratch (no pretrained weights exist for it).
- Input: `oa_kit.imaging.preprocess.kl_input`: square ROI → {info["input_size"]}×{info["input_size"]} px (anti-aliased bilinear), clip to the
  0.5–99.5th intensity percentiles → [0, 1], then CLAHE for sources that are not already CLAHE-enhanced (DICOM/PNG inputs; the
  Chen copy is not re-enhanced). Left knees are mirrored to right orientation. Size chosen to keep CPU inference ≤ 10 ms/knee
  (measured in `benchmarks/kl_speed.py`).
- Loss: **{info["loss"]}** ({"soft ordinal labels, SORD" if info["loss"] == "sord" else info["loss"]}); class weights ∝ frequency^−0.3;
  AdamW, warm-up + cosine schedule, bf16 autocast on CUDA, EMA of weights (0.998), augmentation: rotation, scale, translation,
  gamma/contrast/brightness, Gaussian noise (no flips). Early stopping on val QWK.
- Test-time augmentation: {info["tta"]} view(s) averaged at the logit level.

### Loss comparison
Validation QWK/accuracy of each training run at its best epoch, as logged during training (EMA weights, argmax, no TTA,
bf16 on the GPU, val images from the JPEG pack, so slightly different from the evaluation below). The shipped weights are
the run with the best val QWK. Same-setting pairs: run 1 SORD {_pair(comparison, "gpu1/sord")} vs CE {_pair(comparison, "gpu1/ce")}
vs CORN {_pair(comparison, "gpu1/corn")}; run 2 SORD {_pair(comparison, "gpu2/b")} vs CE {_pair(comparison, "gpu2/d")}; the
seed-to-seed spread (runs b and e) is as large as the loss differences, so the ordinal losses are not clearly better here.

{comp}

## Validation metrics (n = {int(evaluation.metrics["n"].iloc[0])} knees)
{metrics_markdown(evaluation.metrics)}

Targets set for this model: QWK ≥ 0.88 and accuracy ≥ 72%. **{_targets(est)}**
Check subset (every {info["check_subset"]["every"]}th val knee in `read_chen` order, n = {info["check_subset"]["n"]}, recomputed by
`tests/test_kl_predict.py`): QWK {info["check_subset"]["qwk"]:.4f}.

### Confusion matrix (val)
{confusion_markdown(evaluation.confusion)}

## Calibration and uncertainty
- Temperature scaling on val: T = {info["temperature"]:.3f}; NLL {calibration["nll_before"]:.3f} → {calibration["nll_after"]:.3f},
  ECE {calibration["ece_before"]:.3f} → {calibration["ece_after"]:.3f}.
- Conformal prediction sets (APS, split conformal on val, alpha = {info["alpha"]}, contiguous grade ranges): stated coverage
  ≥ {100 * (1 - info["alpha"]):.0f}% for knees exchangeable with the calibration set; observed on val (the calibration set itself)
  {_fmt(est["coverage"], "coverage")}, mean set size {est["mean_set_size"]:.2f}.
{_ood_markdown(info)}

## Known failure modes
- KL1 is the main error (recall in the table above): KL1 is a doubtful grade and its single OAI reading is noisy.
- Trained only on OAI baseline crops at Chen's (unknown, ~joint-centred) scale; DICOM ROIs from `knee_rois` (140 mm) are
  resampled to the same pixel size but the field of view may differ; the CLAHE re-enhancement of new inputs only approximates
  the third-party enhancement. Expect lower accuracy on other cohorts, scanners, or non-standard views.
- Implants, casts, lateral views, children's knees and non-knee images are outside its scope; the OOD flag catches gross
  mismatches only.
- From-scratch training on 5.8k knees overfits after ~70 epochs; results vary by about ±0.01 QWK between seeds.

## Notes from the training runs
{_notes(info)}

## How to retrain
{RETRAIN.format(**train)}

## Files
- `kl_weights.safetensors` (sha256 `{info["sha256"]}`), checked at load; `kl_weights.json` holds the calibration.
"""


def _ood_markdown(info: dict) -> str:
    """The card's bullets on the out-of-distribution flag: method, threshold, how chosen, flag rates."""
    ood = info.get("ood")
    if not ood:
        return (
            f"- Out-of-distribution flag: embedding Mahalanobis distance above {info['ood_threshold']:.3f} (the "
            f"{100 * info['ood_quantile']:.1f}th percentile of the val embeddings), and `blank_image` for inputs "
            "without contrast."
        )
    lines = [
        f"- Out-of-distribution flag (`out_of_distribution`): OOD score > **{info['ood_threshold']:.4f}**. Score: "
        f"{info['ood_method']}.",
        f"- How the threshold was chosen: the {ood['n_calibration']} val knees were split into {ood['n_folds']} "
        f"participant-grouped folds (seed {ood['seed']}); each fold was scored by Gaussians fitted on the other folds, "
        f"as a new knee would be; the threshold is the conformal {100 * info['ood_quantile']:.1f}% quantile of those "
        f"out-of-fold scores, so the stated false-flag rate for real knees like Chen's is "
        f"**≤ {100 * ood['false_flag_target']:.1f}%**.",
        f"- Real knees flagged: val out-of-fold {100 * ood['cross_fitted_flag_rate']:.2f}% "
        f"({round(ood['cross_fitted_flag_rate'] * ood['n_calibration'])} of {ood['n_calibration']}), val in-sample "
        f"{100 * ood['in_sample_flag_rate']:.2f}%"
        + (
            f", train split {100 * ood['train_flag_rate']:.2f}% ({ood['train_flagged']} of {ood['n_train']}; "
            "knees the network was trained on)"
            if "train_flag_rate" in ood
            else ""
        )
        + ".",
    ]
    if "previous" in ood:
        prev = ood["previous"]
        lines.append(
            f"- Replaces: {prev['method']}, threshold {prev['threshold']:.3f}, which flagged "
            f"{100 * prev['cross_fitted_flag_rate']:.1f}% of val knees out of fold (its in-sample percentile "
            "underestimated the distance of new knees) and missed photo-like images."
            if "cross_fitted_flag_rate" in prev
            else f"- Replaces: {prev['method']}, threshold {prev['threshold']:.3f}."
        )
    lines.append(
        "- Blank, noise, text, photo-like and hand/chest-like synthetic images are flagged (`tests/test_kl_real_data.py`); "
        "`blank_image` (no contrast) gets no grade, `out_of_distribution` knees keep probabilities and a grade, "
        "marked by the flag."
    )
    return "\n".join(lines)


def _notes(info: dict) -> str:
    """Bullet list of free-text findings stored in the sidecar under ``notes`` (or a placeholder line)."""
    notes = info.get("notes") or ["No additional notes recorded for this run."]
    return "\n".join(f"- {note}" for note in notes)


def _pair(comparison: pd.DataFrame, run: str) -> str:
    """``QWK x`` of one run in the comparison table (or "n/a")."""
    if comparison is None or comparison.empty or run not in set(comparison["run"]):
        return "n/a"
    return f"{float(comparison.set_index('run').loc[run, 'val_qwk']):.3f}"


def _targets(est: pd.Series) -> str:
    """Plain statement of whether the QWK/accuracy targets were met."""
    qwk_ok, acc_ok = est["qwk"] >= 0.88, est["accuracy"] >= 0.72
    if qwk_ok and acc_ok:
        return "Both targets met on val."
    missed = [name for name, ok in (("QWK", qwk_ok), ("accuracy", acc_ok)) if not ok]
    return f"Not met: {' and '.join(missed)} below target (from-scratch CNN at 160 px, no pretrained weights)."


def _previous_ood(previous: dict, grader: KLGrader, features: list, frame: pd.DataFrame, seed: int) -> dict:
    """The OOD setting being replaced: method, threshold and, for the old embedding score, its out-of-fold flag rate
    on the same val knees (Gaussian fitted on the other participant-grouped folds, as for the new score)."""
    method = previous.get("ood_method", "embedding Mahalanobis distance, in-sample 99.5th percentile of the val knees")
    record = {"method": method, "threshold": float(previous["ood_threshold"])}
    if "ood_method" in previous:
        return record
    embeddings = features[-1][:, : grader.model_.embedding_dim]  # stage-4 channel means = the embedding
    folds = participant_kfold(frame, n_splits=OOD_FOLDS, seed=seed)
    oof = np.empty(len(frame))
    for train_idx, test_idx in folds:
        lw = LedoitWolf().fit(embeddings[train_idx])
        oof[test_idx] = mahalanobis(embeddings[test_idx], lw.location_, lw.precision_)
    record["cross_fitted_flag_rate"] = float((oof > record["threshold"]).mean())
    return record


def ship_weights(
    best: str | os.PathLike,
    data_dir: str | os.PathLike,
    out: str | os.PathLike = SHIPPED_WEIGHTS,
    tta: int = 1,
    alpha: float = 0.1,
    n_boot: int = 1000,
    comparison: pd.DataFrame | None = None,
    training: dict | None = None,
    notes: list[str] | None = None,
    seed: int = 0,
    ood_quantile: float = 0.995,
    train_check: bool = True,
    ood_only: bool = False,
) -> KLEvaluation:
    """Calibrate ``best`` on the Chen val split, save weights + sidecar to ``out``, evaluate the saved file, write the card.

    The network is not changed. When ``best`` already has a verified sidecar (e.g. the shipped weights), its training
    records (``training``, ``loss_comparison``, ``notes``, ``source_weights``) are kept unless given, and its OOD
    threshold is recorded as the one replaced. ``train_check`` also counts the train-split knees flagged
    ``out_of_distribution`` (when ``data_dir`` has a train split). ``ood_only`` recalibrates only the OOD statistics
    of already calibrated weights: temperature, conformal sets, TTA and alpha are kept from their sidecar.
    """
    previous = verified_sidecar(best, "KL weights") if Path(best).with_suffix(".json").exists() else {}
    if ood_only and not previous:
        raise OAKitError(f"{best}: no calibration sidecar; expected calibrated weights for --ood-only")
    if ood_only:
        tta, alpha = int(previous["tta"]), float(previous["alpha"])
    images, frame = load_chen_arrays(data_dir, splits=("val",), progress=False)
    y = frame["kl"].to_numpy()
    grader = KLGrader(weights=best, tta=tta, alpha=alpha, ood_quantile=ood_quantile).fit(
        images, y, groups=frame["participant_id"].to_numpy(), seed=seed
    )
    if ood_only:
        grader.temperature_ = float(previous["temperature"])
        grader.conformal_.qhat_ = float(previous["qhat"])
        grader.conformal_.n_calibration_ = int(previous["n_calibration"])
    logits, _, features = grader._forward(images)
    if previous:
        grader.ood_summary_["previous"] = _previous_ood(previous, grader, features, frame, seed)
    if train_check and "train" in set(read_chen(data_dir)["split"]):
        train_images, _ = load_chen_arrays(data_dir, splits=("train",), progress=False)
        flagged = int((grader.ood_score(train_images) > grader.ood_threshold_).sum())
        grader.ood_summary_.update(
            n_train=len(train_images), train_flagged=flagged, train_flag_rate=flagged / len(train_images)
        )
    before = logits_to_proba(torch.as_tensor(logits), grader.loss_).numpy()
    after = logits_to_proba(torch.as_tensor(logits), grader.loss_, grader.temperature_).numpy()
    nll = lambda p: float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())  # noqa: E731
    calibration = (
        previous["calibration"]
        if ood_only
        else {
            "nll_before": nll(before),
            "nll_after": nll(after),
            "ece_before": top_label_ece(y, before),
            "ece_after": top_label_ece(y, after),
        }
    )
    with safe_open(str(best), "pt") as handle:
        meta = handle.metadata()
    if training is None and previous.get("training"):
        training = previous["training"]
    if training is None and "params" in meta:
        training = json.loads(meta["params"])
    if comparison is None and previous.get("loss_comparison"):
        comparison = pd.DataFrame(previous["loss_comparison"])
    notes = notes if notes is not None else previous.get("notes")
    extra = {
        "widths": json.loads(meta["widths"]),
        "n_parameters": int(sum(p.numel() for p in grader.model_.parameters())),
        "training": training or {},
        "calibration": calibration,
        "source_weights": previous.get("source_weights", Path(best).name),
        "loss_comparison": [] if comparison is None else comparison.to_dict("records"),
        "notes": notes or [],
    }
    path = grader.save(out, extra=extra)
    shipped = KLGrader.from_pretrained(path)
    evaluation = evaluate_grader(shipped, images, frame, n_boot=n_boot, seed=seed)
    subset = evaluation.predictions.iloc[::CHECK_EVERY]
    check = {
        "every": CHECK_EVERY,
        "n": len(subset),
        "qwk": float(cohen_kappa_score(subset["kl"], subset["grade"], weights="quadratic", labels=range(5))),
    }
    info = json.loads(Path(path).with_suffix(".json").read_text())
    info["check_subset"] = check
    write_text_atomic(Path(path).with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    shipped.info_ = info
    table = comparison if comparison is not None else pd.DataFrame()
    card = render_model_card(evaluation, shipped.info_, table, calibration)
    write_text_atomic(Path(path).with_name("kl_model_card.md"), card)
    return evaluation
