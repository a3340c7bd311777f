"""Plotly figures for progression models: ROC, calibration curve, decision curve, AUC forest, subgroup AUCs.

Each function takes the tidy tables from :mod:`oa_kit.evaluation` and returns a ``plotly.graph_objects.Figure``.
``note`` (e.g. the provenance statement "trained on synthetic data — not a clinical estimate") is shown under the title.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sklearn.metrics import roc_curve

from oa_kit.metrics import calibration_curve, net_benefit


def _title(text: str, note: str | None) -> dict:
    """Title with an optional provenance subtitle."""
    return {"text": f"{text}<br><sup>{note}</sup>" if note else text}


def roc_figure(predictions: pd.DataFrame, note: str | None = None) -> go.Figure:
    """ROC curves of every model in a long out-of-sample table (model, label, risk)."""
    fig = go.Figure()
    for name, part in predictions.groupby("model", sort=False):
        fpr, tpr, _ = roc_curve(part["label"], part["risk"])
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=str(name)))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "grey"}))
    fig.update_layout(
        title=_title("ROC (out of sample)", note),
        xaxis_title="1 − specificity",
        yaxis_title="sensitivity",
        template="plotly_white",
    )
    return fig


def calibration_figure(predictions: pd.DataFrame, n_bins: int = 10, note: str | None = None) -> go.Figure:
    """Observed vs predicted risk per quantile bin (with Wilson 95% CIs) for every model."""
    fig = go.Figure()
    for name, part in predictions.groupby("model", sort=False):
        curve = calibration_curve(part["label"], part["risk"], n_bins=n_bins)
        fig.add_trace(
            go.Scatter(
                x=curve["mean_predicted"],
                y=curve["observed"],
                mode="lines+markers",
                name=str(name),
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": curve["observed_high"] - curve["observed"],
                    "arrayminus": curve["observed"] - curve["observed_low"],
                },
            )
        )
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot", "color": "grey"}))
    fig.update_layout(
        title=_title("Calibration (out of sample)", note),
        xaxis_title="predicted risk",
        yaxis_title="observed event rate",
        template="plotly_white",
    )
    return fig


def decision_curve_figure(
    predictions: pd.DataFrame, thresholds: np.ndarray | None = None, note: str | None = None
) -> go.Figure:
    """Net benefit vs risk threshold for each model, treat-all and treat-none."""
    fig = go.Figure()
    curve = None
    for name, part in predictions.groupby("model", sort=False):
        curve = net_benefit(part["label"], part["risk"], thresholds)
        fig.add_trace(go.Scatter(x=curve["threshold"], y=curve["net_benefit"], mode="lines", name=str(name)))
    if curve is not None:
        fig.add_trace(
            go.Scatter(
                x=curve["threshold"],
                y=curve["treat_all"],
                mode="lines",
                name="treat all",
                line={"dash": "dash", "color": "grey"},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=curve["threshold"],
                y=curve["treat_none"],
                mode="lines",
                name="treat none",
                line={"dash": "dot", "color": "black"},
            )
        )
        top = max(float(curve["treat_all"].max()), 0.05)
        fig.update_yaxes(range=[-0.05, top * 1.1])
    fig.update_layout(
        title=_title("Decision curve", note),
        xaxis_title="risk threshold",
        yaxis_title="net benefit",
        template="plotly_white",
    )
    return fig


def auc_forest_figure(table: pd.DataFrame, oracle_auc: float | None = None, note: str | None = None) -> go.Figure:
    """AUC with 95% CI per model (rows of a tidy metrics table with metric == 'auc'), optional oracle line."""
    auc = table[table["metric"] == "auc"] if "metric" in table.columns else table
    label = auc["model"] if "model" in auc.columns else auc["subgroup"]
    fig = go.Figure(
        go.Scatter(
            x=auc["estimate"],
            y=label,
            mode="markers",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": auc["ci_high"] - auc["estimate"],
                "arrayminus": auc["estimate"] - auc["ci_low"],
            },
            name="AUC (95% CI)",
        )
    )
    if oracle_auc is not None:
        fig.add_vline(x=oracle_auc, line_dash="dash", annotation_text=f"oracle {oracle_auc:.3f}")
    fig.update_layout(
        title=_title("AUC with participant-bootstrap 95% CI", note), xaxis_title="AUC", template="plotly_white"
    )
    return fig


def subgroup_figure(table: pd.DataFrame, note: str | None = None) -> go.Figure:
    """AUC with 95% CI per subgroup level (the tidy table of :func:`oa_kit.evaluation.subgroup_metrics`)."""
    return auc_forest_figure(
        table.drop(columns=[c for c in ("model",) if c in table.columns]), None, note
    ).update_layout(title=_title("AUC by subgroup", note))


def evaluation_figures(evaluation) -> dict[str, go.Figure]:
    """Plotly figures of a :class:`oa_kit.evaluation.report.ProgressionEvaluation`: ROC, calibration, decision curve,
    AUC forest, subgroup AUCs (main model)."""
    note = evaluation.provenance.get("statement")
    main = evaluation.predictions[evaluation.predictions.model == evaluation.main_model]
    oracle_auc = None
    if evaluation.oracle is not None:
        oracle_auc = float(evaluation.oracle.loc[evaluation.oracle.model == "oracle", "auc"].iloc[0])
    return {
        "roc": roc_figure(evaluation.predictions, note),
        "calibration": calibration_figure(evaluation.predictions, note=note),
        "decision_curve": decision_curve_figure(main, note=note),
        "auc_forest": auc_forest_figure(evaluation.metrics, oracle_auc, note),
        "subgroups": subgroup_figure(evaluation.subgroups, note),
    }
