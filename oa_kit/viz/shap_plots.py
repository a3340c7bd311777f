"""Plotly SHAP figures (shap's own plots are matplotlib): importance bar, grouped-family bar, beeswarm, waterfall,
dependence. Inputs are :class:`oa_kit.explain.ShapResult` and the tables derived from it; values are log-odds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from oa_kit.explain.attributions import ShapResult, beeswarm_data, dependence_data, global_importance, waterfall_data

FAMILY_COLOURS = {"clinical": "#1f77b4", "radiograph": "#ff7f0e", "mri": "#2ca02c", "mixed": "#7f7f7f"}


def _title(text: str, note: str | None) -> dict:
    """Title with an optional provenance subtitle."""
    return {"text": f"{text}<br><sup>{note}</sup>" if note else text}


def importance_figure(result: ShapResult, top_k: int = 20, note: str | None = None) -> go.Figure:
    """Mean |SHAP| per feature, coloured by family."""
    imp = global_importance(result).head(top_k).iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=imp["mean_abs_shap"],
            y=imp["feature"],
            orientation="h",
            marker_color=[FAMILY_COLOURS.get(f, "#7f7f7f") for f in imp["family"]],
        )
    )
    fig.update_layout(title=_title("Global importance (mean |SHAP|, log-odds)", note), template="plotly_white")
    return fig


def grouped_figure(grouped: pd.DataFrame, index: int | None = None, note: str | None = None) -> go.Figure:
    """Per-family contributions: one knee (``index``) or the mean |value| over knees."""
    fams = [f for f in ("clinical", "radiograph", "mri") if f in grouped.columns]
    values = grouped[fams].iloc[index] if index is not None else grouped[fams].abs().mean()
    fig = go.Figure(go.Bar(x=fams, y=values.to_numpy(), marker_color=[FAMILY_COLOURS[f] for f in fams]))
    title = "Contribution by feature family (log-odds)" if index is not None else "Mean |contribution| by family"
    fig.update_layout(title=_title(title, note), template="plotly_white")
    return fig


def beeswarm_figure(result: ShapResult, top_k: int = 15, seed: int = 0, note: str | None = None) -> go.Figure:
    """Beeswarm-style scatter: SHAP value per knee and feature, colour = feature value (low → high)."""

    data = beeswarm_data(result, top_k)
    order = list(dict.fromkeys(data["feature"]))[::-1]
    pos = data["feature"].map({f: i for i, f in enumerate(order)}).to_numpy(dtype=float)
    jitter = np.random.default_rng(seed).uniform(-0.3, 0.3, len(data))
    fig = go.Figure(
        go.Scattergl(
            x=data["shap"],
            y=pos + jitter,
            mode="markers",
            marker={
                "color": data["value_scaled"],
                "colorscale": "RdBu_r",
                "size": 4,
                "showscale": True,
                "colorbar": {"title": "feature value", "tickvals": [0, 1], "ticktext": ["low", "high"]},
            },
            text=data["feature"],
            hovertemplate="%{text}: SHAP %{x:.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(tickvals=list(range(len(order))), ticktext=order)
    fig.update_layout(
        title=_title("SHAP values per knee (log-odds)", note), xaxis_title="SHAP value", template="plotly_white"
    )
    return fig


def waterfall_figure(result: ShapResult, index: int, top_k: int = 10, note: str | None = None) -> go.Figure:
    """``go.Waterfall`` from the base value to one knee's log-odds."""
    data = waterfall_data(result, index, top_k)
    labels = [f"{f} = {v:.3g}" if pd.notna(v) else f for f, v in zip(data["feature"], data["value"])]
    base = float(result.base_values[index])
    fig = go.Figure(
        go.Waterfall(
            orientation="h",
            measure=["absolute", *["relative"] * len(data), "total"],
            y=["base value", *labels, "model output"],
            x=[base, *data["shap"].tolist(), 0.0],
            base=0,
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=_title("Why this knee's risk (log-odds)", note), template="plotly_white")
    return fig


def dependence_figure(
    result: ShapResult, feature: str, color_by: str | None = None, note: str | None = None
) -> go.Figure:
    """Feature value vs its SHAP value, optionally coloured by another feature."""
    data = dependence_data(result, feature, color_by)
    marker = {"size": 5}
    if color_by is not None:
        marker.update(color=data["color"], colorscale="Viridis", showscale=True, colorbar={"title": color_by})
    fig = go.Figure(go.Scatter(x=data["value"], y=data["shap"], mode="markers", marker=marker))
    fig.update_layout(
        title=_title(f"SHAP dependence: {feature}", note),
        xaxis_title=feature,
        yaxis_title="SHAP value (log-odds)",
        template="plotly_white",
    )
    return fig
