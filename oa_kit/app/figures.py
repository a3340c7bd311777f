"""Dashboard figures (plotly) built from API results and the tables of :mod:`oa_kit.app.risk`; each names its model
and training data in the title."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

KL_COLOURS = ["#1a9850", "#91cf60", "#fee08b", "#fc8d59", "#d73027"]


def _title(text: str, note: str | None) -> dict:
    return {"text": f"{text}<br><sup>{note}</sup>" if note else text, "font": {"size": 14}}


def probability_waterfall(contributions: pd.DataFrame, horizon: int, note: str | None = None) -> go.Figure:
    """Waterfall in percentage points of risk: base rate, one bar per group, the knee's risk (``risk.py`` table)."""
    steps = contributions.iloc[1:-1]
    base, risk = contributions.iloc[0], contributions.iloc[-1]
    fig = go.Figure(
        go.Waterfall(
            orientation="h",
            measure=["absolute", *["relative"] * len(steps), "total"],
            y=["base rate", *steps["group"], f"risk at {horizon} months"],
            x=[100 * base["probability"], *(100 * steps["probability"]).tolist(), 0.0],
            text=[
                f"{100 * base['probability']:.1f}%",
                *[f"{100 * v:+.1f}" for v in steps["probability"]],
                f"{100 * risk['probability']:.1f}%",
            ],
            textposition="outside",
            customdata=[base["log_odds"], *steps["log_odds"], risk["log_odds"]],
            hovertemplate="%{y}: %{x:.1f} percentage points (log-odds %{customdata:+.2f})<extra></extra>",
            decreasing={"marker": {"color": "#1a9850"}},
            increasing={"marker": {"color": "#d73027"}},
            totals={"marker": {"color": "#4c78a8"}},
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="risk (%), SHAP log-odds converted along the path from the base rate", rangemode="tozero")
    fig.update_layout(
        title=_title(f"Why this knee's {horizon}-month risk (percentage points)", note),
        template="plotly_white",
        height=360,
        margin={"l": 10, "r": 30, "t": 60, "b": 40},
    )
    return fig


def risk_figure(table: pd.DataFrame, note: str | None = None) -> go.Figure:
    """Risk per horizon (bars) with the model's 95% bootstrap interval of this knee's risk as error bars
    (``risk_low``/``risk_high``; absent when NaN) and, beside each bar, a calibration check: the progression rate
    observed among the held-out knees with the nearest predicted risk, with its 95% confidence interval
    (``ci_low``/``ci_high``)."""
    positions = np.arange(len(table), dtype=float)
    risk = 100 * table["risk"]
    nan = pd.Series(float("nan"), index=table.index)
    low, high = 100 * table.get("risk_low", nan), 100 * table.get("risk_high", nan)
    bar = go.Bar(
        x=positions,
        y=risk,
        width=0.45,
        text=[f"{r:.0f}%" for r in risk],
        textposition="inside",
        marker_color="#4c78a8",
        name="risk" + (" (bar: 95% bootstrap interval)" if low.notna().any() else ""),
    )
    if low.notna().any():
        bar.error_y = {
            "type": "data",
            "array": (high - risk).clip(lower=0).fillna(0),
            "arrayminus": (risk - low).clip(lower=0).fillna(0),
            "visible": True,
            "color": "#1f3b57",
            "thickness": 2,
        }
    fig = go.Figure(bar)
    known = table["ci_low"].notna().to_numpy()
    if known.any():
        centre = 100 * (table["ci_low"] + table["ci_high"]) / 2
        fig.add_trace(
            go.Scatter(
                x=positions[known] + 0.35,
                y=centre[known],
                mode="markers",
                marker={"symbol": "line-ew-open", "size": 14, "color": "#555"},
                error_y={
                    "type": "data",
                    "array": (100 * table["ci_high"] - centre)[known],
                    "arrayminus": (centre - 100 * table["ci_low"])[known],
                    "visible": True,
                    "color": "#888",
                },
                name="calibration check (observed rate, 95% CI)",
            )
        )
    fig.update_layout(
        title=_title("Progression risk per horizon", note),
        xaxis={"tickvals": positions, "ticktext": [f"{h} months" for h in table["horizon_months"]]},
        yaxis={"range": [0, 100], "title": "risk (%)"},
        template="plotly_white",
        height=320,
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 10, "r": 10, "t": 60, "b": 40},
    )
    return fig


def distribution_figure(table: pd.DataFrame, column: str, title: str, note: str | None = None) -> go.Figure:
    """Histogram of one column (numeric) or bar of counts (categorical) of the filtered knees."""
    values = table[column].dropna()
    if values.empty or not pd.api.types.is_numeric_dtype(values):
        counts = values.astype(str).value_counts().sort_index()
        fig = go.Figure(go.Bar(x=counts.index.tolist(), y=counts.to_numpy()))
    else:
        fig = go.Figure(go.Histogram(x=values, nbinsx=20))
    fig.update_layout(
        title=_title(title, note), template="plotly_white", height=260, margin={"l": 10, "r": 10, "t": 50, "b": 30}
    )
    return fig


def kl_trajectory_figure(readings: pd.DataFrame, note: str | None = None, max_knees: int = 200) -> go.Figure:
    """KL grade over visits: one thin line per knee (first ``max_knees``) and the mean per visit."""
    fig = go.Figure()
    keys = readings[["participant_id", "side"]].drop_duplicates().head(max_knees)
    subset = readings.merge(keys, on=["participant_id", "side"])
    for (pid, side), knee in subset.groupby(["participant_id", "side"], sort=False):
        knee = knee.sort_values("visit_month")
        jitter = (hash((pid, side)) % 100 - 50) / 500
        fig.add_trace(
            go.Scatter(
                x=knee["visit_month"],
                y=knee["kl"] + jitter,
                mode="lines",
                line={"width": 1, "color": "rgba(76,120,168,0.25)"},
                hoverinfo="skip",
                showlegend=False,
            )
        )
    mean = readings.groupby("visit_month")["kl"].mean()
    fig.add_trace(go.Scatter(x=mean.index, y=mean.to_numpy(), mode="lines+markers", name="mean KL", line={"width": 3}))
    fig.update_layout(
        title=_title("KL grade trajectories", note),
        xaxis_title="visit (months)",
        yaxis={"title": "KL grade", "range": [-0.3, 4.3]},
        template="plotly_white",
        height=300,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
    )
    return fig


def risk_distribution_figure(risk: pd.DataFrame, note: str | None = None) -> go.Figure:
    """Histogram of predicted risk per horizon (long table: horizon_months, risk)."""
    fig = go.Figure()
    for h, part in risk.groupby("horizon_months"):
        fig.add_trace(go.Histogram(x=100 * part["risk"], name=f"{h} months", opacity=0.6, nbinsx=20))
    fig.update_layout(
        barmode="overlay",
        title=_title("Predicted progression risk", note),
        xaxis_title="risk (%)",
        template="plotly_white",
        height=280,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
    )
    return fig


def empty_figure(text: str) -> go.Figure:
    """A blank figure carrying a message (a page keeps its layout when a part is missing)."""
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(template="plotly_white", height=200, xaxis_visible=False, yaxis_visible=False)
    return fig


def finite(values) -> np.ndarray:
    """Finite entries of an array-like."""
    array = np.asarray(values, float)
    return array[np.isfinite(array)]
