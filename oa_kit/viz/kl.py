"""Plotly figures for the KL CNN: Grad-CAM overlay, grade probabilities, confusion matrix, reliability diagram."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go


def gradcam_figure(image: np.ndarray, cam: np.ndarray, title: str = "Grad-CAM", opacity: float = 0.45) -> go.Figure:
    """Overlay a Grad-CAM map (H, W) in [0, 1] on its input ROI (H, W) or (1, H, W); both share the pixel grid."""
    image, cam = np.squeeze(np.asarray(image)), np.squeeze(np.asarray(cam))
    if image.shape != cam.shape:
        raise ValueError(f"cam: shape {cam.shape}; expected the image shape {image.shape}")
    fig = go.Figure()
    fig.add_trace(go.Heatmap(z=image, colorscale="Gray", showscale=False, hoverinfo="skip"))
    fig.add_trace(
        go.Heatmap(
            z=cam,
            colorscale="Jet",
            opacity=opacity,
            zmin=0,
            zmax=1,
            colorbar={"title": "Grad-CAM"},
            hovertemplate="row %{y}, col %{x}: %{z:.2f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(title=title, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def probability_figure(
    proba: np.ndarray, grade_set: str | None = None, title: str = "KL grade probabilities"
) -> go.Figure:
    """Bar chart of the five calibrated grade probabilities; grades in the conformal set are highlighted."""
    proba = np.asarray(proba, float).ravel()
    members = {int(g) for g in grade_set.split(",") if g} if grade_set else set()
    colours = ["#d62728" if k in members else "#7f7f7f" for k in range(len(proba))]
    fig = go.Figure(go.Bar(x=[f"KL{k}" for k in range(len(proba))], y=proba, marker_color=colours))
    fig.update_layout(title=title, yaxis={"range": [0, 1], "title": "probability"})
    return fig


def confusion_figure(confusion: pd.DataFrame, title: str = "Confusion matrix (rows: true KL)") -> go.Figure:
    """Heatmap of a confusion table (rows true grade, columns predicted grade) with counts printed."""
    fig = go.Figure(
        go.Heatmap(
            z=confusion.to_numpy(),
            x=[f"KL{c}" for c in confusion.columns],
            y=[f"KL{r}" for r in confusion.index],
            colorscale="Blues",
            text=confusion.to_numpy(),
            texttemplate="%{text}",
        )
    )
    fig.update_yaxes(autorange="reversed", title="true")
    fig.update_xaxes(title="predicted")
    fig.update_layout(title=title)
    return fig


def reliability_figure(reliability: pd.DataFrame, title: str = "Reliability (top-label)") -> go.Figure:
    """Reliability diagram from ``oa_kit.models.kl.evaluate.reliability_table``."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "grey"}, name="ideal"))
    fig.add_trace(
        go.Scatter(
            x=reliability["confidence"],
            y=reliability["accuracy"],
            mode="lines+markers",
            text=reliability["n"],
            name="model",
            hovertemplate="conf %{x:.2f}, acc %{y:.2f}, n=%{text}",
        )
    )
    fig.update_layout(
        title=title, xaxis={"title": "confidence", "range": [0, 1]}, yaxis={"title": "accuracy", "range": [0, 1]}
    )
    return fig
