"""Judging an MRI segmenter: Dice and surface distance per tissue, and cartilage-thickness error against known truth.

Lives above ``features`` because the thickness check measures the segmenter's output with
:func:`oa_kit.features.cartilage.measure_cartilage`, the same method users get.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from monai.metrics import DiceMetric, SurfaceDistanceMetric
from tqdm.auto import tqdm

from oa_kit.features.cartilage import measure_cartilage
from oa_kit.io.labels import LABELS
from oa_kit.models.mri.train import EVAL_LABELS, SegmentationCase


def evaluate_segmenter(
    segmenter, cases: Sequence[SegmentationCase], n_boot: int = 1000, seed: int = 0, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-tissue Dice and ASSD (mm) with participant-level bootstrap 95% CIs (MONAI metrics).

    Returns
    -------
    summary, per_case
        ``summary``: one row per tissue (tissue, metric, estimate, ci_low, ci_high, n); ``per_case``: raw values.
    """
    rows = []
    for case in tqdm(cases, desc="evaluating", disable=not progress):
        pred = segmenter.predict(case.image, case.affine, case.side)
        spacing = tuple(float(s) for s in np.sqrt((np.asarray(case.affine)[:3, :3] ** 2).sum(axis=0)))
        rows.extend(_case_metrics(case, pred, spacing))
    per_case = pd.DataFrame(rows)
    rng = np.random.default_rng(seed)
    summary = []
    for (tissue, metric), grp in per_case.groupby(["tissue", "metric"], sort=False):
        values = grp.groupby("group")["value"].mean().to_numpy()
        summary.append({"tissue": tissue, "metric": metric, **_mean_with_ci(values, rng, n_boot)})
    return pd.DataFrame(summary), per_case


def _case_metrics(case: SegmentationCase, pred: np.ndarray, spacing: tuple[float, float, float]) -> list[dict]:
    """Dice and average symmetric surface distance per tissue for one case."""
    p = torch.from_numpy(np.stack([pred == k for k in EVAL_LABELS]))[None].float()
    t = torch.from_numpy(np.stack([case.labels == k for k in EVAL_LABELS]))[None].float()
    dice = DiceMetric(include_background=True, reduction="none")(p, t)[0].numpy()
    assd = SurfaceDistanceMetric(include_background=True, symmetric=True, reduction="none")(p, t, spacing=spacing)[
        0
    ].numpy()
    out = []
    for i, label in enumerate(EVAL_LABELS):
        out.append(
            {
                "case_id": case.case_id,
                "group": case.group or case.case_id,
                "tissue": LABELS[label],
                "metric": "dice",
                "value": float(dice[i]),
            }
        )
        out.append(
            {
                "case_id": case.case_id,
                "group": case.group or case.case_id,
                "tissue": LABELS[label],
                "metric": "assd_mm",
                "value": float(assd[i]),
            }
        )
    return out


def evaluate_thickness(
    segmenter, cases: Sequence[SegmentationCase], n_boot: int = 1000, seed: int = 0, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean-thickness error (mm) per subregion against the phantoms' analytic truth, with bootstrap 95% CIs.

    Measured twice per case: on the segmenter's output (labels + probabilities, the full pipeline) and on the
    true label map (the thickness method alone). Cases need a ``true_thickness_mm`` attribute (synthetic phantoms);
    with ``true_thickness_all_mm`` (the whole footprint, rim tapering to 0 mm) its error is reported too
    (``mae_all_mm``), for reference: no voxel-based method resolves that rim.

    Returns
    -------
    summary, per_case
        ``summary``: subregion, source, metric (``mae_mm``, ``bias_mm``[, ``mae_all_mm``]), estimate, ci_low, ci_high, n.
    """
    rows = []
    for case in tqdm(cases, desc="thickness", disable=not progress):
        seg = segmenter.segment(case.image, case.affine, case.side)
        for source, meas in (
            ("segmenter", measure_cartilage(seg.labels, case.affine, case.side, proba=seg.proba)),
            ("true_labels", measure_cartilage(case.labels, case.affine, case.side)),
        ):
            table = meas.subregion_table().set_index("subregion")
            full = getattr(case, "true_thickness_all_mm", {})
            for name, truth in case.true_thickness_mm.items():  # type: ignore[attr-defined]
                rows.append(
                    {
                        "case_id": case.case_id,
                        "group": case.group,
                        "source": source,
                        "subregion": name,
                        "measured_mm": float(table.loc[name, "thickness_mm_mean"]),
                        "true_mm": float(truth),
                        "true_all_mm": float(full.get(name, np.nan)),
                    }
                )
    per_case = pd.DataFrame(rows)
    per_case["error_mm"] = per_case["measured_mm"] - per_case["true_mm"]
    per_case["error_all_mm"] = per_case["measured_mm"] - per_case["true_all_mm"]
    rng = np.random.default_rng(seed)
    summary = []
    for (source, name), grp in per_case.groupby(["source", "subregion"], sort=False):
        err = grp.groupby("group")["error_mm"].apply(lambda e: e.abs().mean()).to_numpy()
        bias = grp.groupby("group")["error_mm"].mean().to_numpy()
        err_all = grp.groupby("group")["error_all_mm"].apply(lambda e: e.abs().mean()).to_numpy()
        metrics = [("mae_mm", err), ("bias_mm", bias)] + (
            [("mae_all_mm", err_all)] if np.isfinite(err_all).any() else []
        )
        for metric, values in metrics:
            summary.append(
                {"subregion": name, "source": source, "metric": metric, **_mean_with_ci(values, rng, n_boot)}
            )
    return pd.DataFrame(summary), per_case


def _mean_with_ci(values: np.ndarray, rng: np.random.Generator, n_boot: int) -> dict[str, float]:
    """Mean of the finite per-participant ``values`` with a percentile 95% CI from ``n_boot`` resamples of them."""
    values = values[np.isfinite(values)]
    boots = [rng.choice(values, size=len(values)).mean() for _ in range(n_boot)] if len(values) else [np.nan]
    return {
        "estimate": float(np.mean(values)) if len(values) else np.nan,
        "ci_low": float(np.percentile(boots, 2.5)),
        "ci_high": float(np.percentile(boots, 97.5)),
        "n": int(len(values)),
    }
