"""Explanations: SHAP (grouped by feature family), Grad-CAM, plain-language text.

Names are imported on first use (PEP 562), so ``oa_kit.explain.gradcam`` does not pay for importing shap.
"""

from __future__ import annotations

import importlib

_SOURCES = {
    "ShapResult": "attributions",
    "beeswarm_data": "attributions",
    "dependence_data": "attributions",
    "global_importance": "attributions",
    "grouped_shap": "attributions",
    "interaction_values": "attributions",
    "lightgbm_contributions": "attributions",
    "shap_values": "attributions",
    "waterfall_data": "attributions",
    "describe_feature": "text",
    "explain_text": "text",
    "family_text": "text",
}
__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    """Import ``name`` from its submodule the first time it is asked for."""
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)
