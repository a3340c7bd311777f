"""Explanations: SHAP (grouped by feature family), Grad-CAM, plain-language text."""
from __future__ import annotations

from oa_kit.explain.attributions import (
    ShapResult,
    beeswarm_data,
    dependence_data,
    global_importance,
    grouped_shap,
    interaction_values,
    lightgbm_contributions,
    shap_values,
    waterfall_data,
)
from oa_kit.explain.text import describe_feature, explain_text, family_text

__all__ = [
    "ShapResult", "beeswarm_data", "dependence_data", "describe_feature", "explain_text", "family_text",
    "global_importance", "grouped_shap", "interaction_values", "lightgbm_contributions", "shap_values",
    "waterfall_data",
]
