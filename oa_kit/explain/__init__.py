"""Explanations: SHAP (grouped by feature family), Grad-CAM, plain-language text."""
