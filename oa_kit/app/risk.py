"""One knee's risk in the units a person reads: SHAP contributions converted to probability along the path from the
base rate to the shown risk, and a calibration check beside it: the 95% CI of the progression rate observed among
the held-out knees whose out-of-sample risk was nearest (the models give no uncertainty of one knee's risk).

SHAP values of a LightGBM progression model are log-odds of the *uncalibrated* score ``f`` (``base + Σ φ_i = f``);
the shown risk is the calibrated ``g(f)`` (Platt sigmoid or isotonic, :class:`oa_kit.progression.ProgressionModel`).
:func:`probability_contributions` orders the (grouped) contributions by size, walks the path
``s_0 = base, s_j = s_{j-1} + φ_j`` and gives each group ``g(s_j) - g(s_{j-1})``: the steps add up exactly to
``risk - g(base)``, so the waterfall starts at the model's base rate and ends at the risk on the page. A step's size
depends on the order (the calibration is not linear); the order is fixed (largest |log-odds| first) and stated.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from oa_kit.explain.attributions import ShapResult
from oa_kit.io.tables import read_table

#: Features read as one group on the waterfall (pattern, name).
GROUPS = (
    (re.compile(r"^kl_emb_"), "radiograph image features (KL-CNN embedding)"),
    (re.compile(r"^kl_p\d$"), "KL-CNN grade probabilities"),
    (re.compile(r"^mri_emb_"), "MRI image features"),
    (re.compile(r"^thickness_mm_"), "MRI cartilage thickness"),
    (re.compile(r"^(volume_mm3|fcl_area_mm2|covered_area_mm2)_"), "MRI cartilage volume and loss"),
    (re.compile(r"^site"), "study site"),
    (re.compile(r"^sex"), "sex"),
    (re.compile(r"^womac_"), "WOMAC"),
)
LABELS = {"age_years": "age", "bmi_kg_m2": "BMI", "injury": "prior injury", "surgery": "prior surgery"}
#: Models in a report's predictions table that are not the fitted model (reference rows).
REFERENCE_MODELS = ("oracle", "latent_reference")


def group_of(feature: str) -> str:
    """The waterfall group of a model feature."""
    for pattern, name in GROUPS:
        if pattern.match(feature):
            return name
    return LABELS.get(feature, feature.replace("_", " "))


def probability_contributions(
    result: ShapResult, index: int, to_probability: Callable[[np.ndarray], np.ndarray], top_k: int = 7
) -> pd.DataFrame:
    """Grouped contributions of knee ``index`` in log-odds and in probability, in path order.

    Returns a table with ``group``, ``log_odds``, ``probability`` (the step), ``cumulative`` (risk after the step);
    the first row is ``base rate`` (its ``probability`` the base rate itself) and the last ``risk`` (the total).
    Groups beyond ``top_k`` are summed into ``other factors``.
    """
    values = result.values.iloc[index]
    grouped = values.groupby([group_of(f) for f in values.index]).sum()
    grouped = grouped.reindex(grouped.abs().sort_values(ascending=False).index)
    if len(grouped) > top_k:
        grouped = pd.concat([grouped.iloc[:top_k], pd.Series({"other factors": grouped.iloc[top_k:].sum()})])
    base = float(result.base_values[index])
    path = base + np.concatenate([[0.0], np.cumsum(grouped.to_numpy())])
    probability = np.clip(to_probability(path), 0.0, 1.0)
    rows = [{"group": "base rate", "log_odds": base, "probability": probability[0], "cumulative": probability[0]}]
    for i, (name, value) in enumerate(grouped.items(), start=1):
        step = probability[i] - probability[i - 1]
        rows.append({"group": name, "log_odds": float(value), "probability": step, "cumulative": probability[i]})
    rows.append({"group": "risk", "log_odds": path[-1], "probability": probability[-1], "cumulative": probability[-1]})
    return pd.DataFrame(rows)


@functools.cache
def main_predictions(report_dir: Path, horizon: int) -> pd.DataFrame | None:
    """Out-of-sample predictions of the report's main model at ``horizon`` (``fused``, else the last model that is
    not a reference row), or None when the folder has no ``predictions_h{H}.csv``; read once per kernel."""
    path = Path(report_dir) / f"predictions_h{horizon}.csv"
    if not path.is_file():
        return None
    table = read_table(path)
    models = [m for m in dict.fromkeys(table["model"]) if m not in REFERENCE_MODELS]
    if not models:
        return None
    main = "fused" if "fused" in models else models[-1]
    return table[table["model"] == main]


def calibration_interval(predictions: pd.DataFrame | None, risk: float, share: float = 0.2, minimum: int = 20):
    """95% Wilson interval of the observed progression rate among out-of-sample knees scored like this one.

    The knees are the ``max(minimum, share * n)`` knees of the report's predictions whose out-of-sample risk is
    nearest ``risk``. Returns ``(low, high, n)``, or ``(nan, nan, 0)`` without predictions.
    """
    if predictions is None or predictions.empty:
        return math.nan, math.nan, 0
    k = min(len(predictions), max(minimum, int(share * len(predictions))))
    nearest = predictions.iloc[np.argsort(np.abs(predictions["risk"].to_numpy(float) - risk))[:k]]
    events = float(nearest["label"].sum())
    z = 1.959963984540054
    p = events / k
    centre = (p + z * z / (2 * k)) / (1 + z * z / k)
    half = z * math.sqrt(p * (1 - p) / k + z * z / (4 * k * k)) / (1 + z * z / k)
    return max(0.0, centre - half), min(1.0, centre + half), k
