"""SHAP explanations of LightGBM progression models, in log-odds, with per-family (grouped) sums.

``shap.TreeExplainer`` on the model's booster explains the *uncalibrated* log-odds (``decision_function``): SHAP values
plus the base value add up exactly to that raw output. The calibrated risk is a monotone map of it (Platt: a
logistic of a linear function), so signs and rankings of contributions carry over. Features are the model's
assembled float matrix (nullable dtypes are cast to float, REFERENCE §6.4). Grouped SHAP sums the values of each
feature family (clinical / radiograph / MRI) so a clinician sees three numbers instead of dozens of components.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shap

from oa_kit.errors import OAKitError
from oa_kit.features.schema import FEATURE_FAMILIES


@dataclass
class ShapResult:
    """SHAP values of a set of knees.

    Attributes
    ----------
    values : DataFrame
        (n, f) contributions in log-odds, columns = model features.
    base_values : ndarray
        (n,) expected raw output.
    data : DataFrame
        (n, f) feature values the model saw.
    families : dict
        Feature → family.
    keys : DataFrame
        participant_id / side per row (empty columns if absent).
    """

    values: pd.DataFrame
    base_values: np.ndarray
    data: pd.DataFrame
    families: dict[str, str]
    keys: pd.DataFrame

    def raw_output(self) -> np.ndarray:
        """Sum of contributions and base value: the model's log-odds."""
        return self.values.sum(axis=1).to_numpy() + self.base_values


def _booster(model: object):
    """The LightGBM booster of a fitted ProgressionModel (SHAP TreeExplainer needs trees)."""
    booster = getattr(model, "booster_", None)
    if booster is None:
        raise OAKitError(
            "model: not a fitted LightGBM ProgressionModel; expected estimator='lightgbm' "
            "(logistic baselines are explained by their coefficients)"
        )
    return booster


def model_features(model: object, X: pd.DataFrame) -> pd.DataFrame:
    """The model's float feature matrix for a raw per-knee table."""
    features = model.transform_features(X)
    return features.astype(float)


def shap_values(model: object, X: pd.DataFrame) -> ShapResult:
    """SHAP values (log-odds) of a fitted LightGBM :class:`~oa_kit.progression.ProgressionModel` on raw rows ``X``."""
    booster = _booster(model)
    features = model_features(model, X)
    explanation = shap.TreeExplainer(booster)(features)
    values = np.asarray(explanation.values, dtype=float)
    if values.ndim != 2:
        raise OAKitError(f"shap: unexpected value shape {values.shape}; expected (knees, features) for a binary model")
    keys = X[[c for c in ("participant_id", "side") if c in X.columns]].reset_index(drop=True)
    return ShapResult(
        pd.DataFrame(values, columns=features.columns),
        np.asarray(explanation.base_values, float).ravel(),
        features.reset_index(drop=True),
        dict(model.feature_families_),
        keys,
    )


def lightgbm_contributions(model: object, X: pd.DataFrame) -> pd.DataFrame:
    """LightGBM's own TreeSHAP (``pred_contrib=True``): (n, f + 1), last column ``expected_value`` — a cross-check."""
    booster = _booster(model)
    features = model_features(model, X)
    contrib = booster.predict(features, pred_contrib=True)
    return pd.DataFrame(contrib, columns=[*features.columns, "expected_value"])


def global_importance(result: ShapResult) -> pd.DataFrame:
    """Mean |SHAP| per feature with its family, largest first."""
    imp = result.values.abs().mean(axis=0)
    return pd.DataFrame(
        {
            "feature": imp.index,
            "family": [result.families.get(f, "clinical") for f in imp.index],
            "mean_abs_shap": imp.to_numpy(),
        }
    ).sort_values("mean_abs_shap", ascending=False, ignore_index=True)


def grouped_shap(result: ShapResult, families: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per-knee SHAP summed per family (columns clinical, radiograph, mri) plus ``base_value`` and ``raw_output``.

    clinical + radiograph + mri + base_value == raw_output (the model's log-odds) for every knee.
    """
    families = dict(families or result.families)
    out = pd.DataFrame(index=result.values.index)
    for family in FEATURE_FAMILIES:
        cols = [f for f in result.values.columns if families.get(f, "clinical") == family]
        out[family] = result.values[cols].sum(axis=1) if cols else 0.0
    out["base_value"] = result.base_values
    out["raw_output"] = result.raw_output()
    return pd.concat([result.keys, out], axis=1)


def interaction_values(
    model: object, X: pd.DataFrame, features: Sequence[str] | None = None, max_rows: int = 300
) -> pd.DataFrame:
    """Mean |SHAP interaction| between pairs of features (default: the clinical family), long format.

    Each pair's value is the mean over knees of |φ_ab + φ_ba| (log-odds); main effects (diagonal) are left out.

    Interaction values cost O(f²) per knee, so at most ``max_rows`` knees (the first ones) are explained.
    """
    booster = _booster(model)
    data = model_features(model, X).iloc[:max_rows]
    names = (
        list(features)
        if features is not None
        else [f for f, fam in model.feature_families_.items() if fam == "clinical"]
    )
    missing = [f for f in names if f not in data.columns]
    if missing:
        raise OAKitError(f"features: {missing[0]!r} is not a model feature; expected names from feature_names_")
    inter = shap.TreeExplainer(booster).shap_interaction_values(data)
    inter = np.asarray(inter[1] if isinstance(inter, list) else inter)
    idx = [data.columns.get_loc(f) for f in names]
    sub = inter[:, idx][:, :, idx]
    mean_abs = np.abs(sub + sub.transpose(0, 2, 1)).mean(axis=0)  # total pairwise effect phi_ab + phi_ba
    rows = [
        {"feature_a": a, "feature_b": b, "mean_abs_interaction": float(mean_abs[i, j])}
        for i, a in enumerate(names)
        for j, b in enumerate(names)
        if j > i
    ]
    return pd.DataFrame(rows).sort_values("mean_abs_interaction", ascending=False, ignore_index=True)


def waterfall_data(result: ShapResult, index: int, top_k: int = 10) -> pd.DataFrame:
    """One knee's largest contributions (feature, value, shap), the rest summed as "other features"."""
    if not 0 <= index < len(result.values):
        raise OAKitError(f"index: {index}; expected 0..{len(result.values) - 1}")
    row = result.values.iloc[index]
    order = row.abs().sort_values(ascending=False).index
    top, rest = list(order[:top_k]), list(order[top_k:])
    table = pd.DataFrame(
        {
            "feature": top,
            "value": result.data.iloc[index][top].to_numpy(),
            "shap": row[top].to_numpy(),
            "family": [result.families.get(f, "clinical") for f in top],
        }
    )
    if rest:
        table.loc[len(table)] = {
            "feature": f"{len(rest)} other features",
            "value": np.nan,
            "shap": float(row[rest].sum()),
            "family": "mixed",
        }
    return table


def beeswarm_data(result: ShapResult, top_k: int = 15) -> pd.DataFrame:
    """Long table for a beeswarm: feature, shap, value and value scaled to [0, 1] within feature (colour)."""
    features = global_importance(result)["feature"].head(top_k).tolist()
    pieces = []
    for f in features:
        v = result.data[f]
        span = v.max() - v.min()
        pieces.append(
            pd.DataFrame(
                {
                    "feature": f,
                    "shap": result.values[f].to_numpy(),
                    "value": v.to_numpy(),
                    "value_scaled": ((v - v.min()) / span if span > 0 else v * 0 + 0.5).to_numpy(),
                }
            )
        )
    return pd.concat(pieces, ignore_index=True)


def dependence_data(result: ShapResult, feature: str, color_by: str | None = None) -> pd.DataFrame:
    """Feature value vs its SHAP value (and a second feature's value for colour)."""
    if feature not in result.values.columns:
        raise OAKitError(f"feature: {feature!r} is not a model feature; expected one of the model's features")
    out = pd.DataFrame({"value": result.data[feature], "shap": result.values[feature]})
    if color_by is not None:
        out["color"] = result.data[color_by]
    return out
