"""Evaluation: metrics with bootstrap CIs, DeLong, decision curves, subgroups, model cards."""

from __future__ import annotations

from oa_kit.evaluation.delong import delong_covariance, delong_test
from oa_kit.evaluation.model_card import model_card_markdown
from oa_kit.evaluation.oracle import oracle_comparison
from oa_kit.evaluation.report import ProgressionEvaluation, evaluate_progression
from oa_kit.evaluation.subgroups import subgroup_columns, subgroup_metrics
from oa_kit.evaluation.validation import (
    compare_to_reference,
    cross_validate,
    grouped_folds,
    predict_splits,
    site_held_out_validate,
    summarize,
)
from oa_kit.metrics import (
    average_precision,
    bootstrap_metrics,
    brier_score,
    calibration_curve,
    expected_calibration_error,
    net_benefit,
    roc_auc,
)

__all__ = [
    "ProgressionEvaluation",
    "evaluate_progression",
    "model_card_markdown",
    "average_precision",
    "bootstrap_metrics",
    "brier_score",
    "calibration_curve",
    "compare_to_reference",
    "cross_validate",
    "delong_covariance",
    "delong_test",
    "expected_calibration_error",
    "grouped_folds",
    "net_benefit",
    "oracle_comparison",
    "predict_splits",
    "roc_auc",
    "site_held_out_validate",
    "subgroup_columns",
    "subgroup_metrics",
    "summarize",
]
