"""Plotly figures (the only plotting library oa_kit uses).

Modules: ``progression`` (ROC, calibration, decision curve, AUC-with-CI forest, subgroup table figures),
``shap_plots`` (importance bar, grouped-family bar, beeswarm, waterfall, dependence), ``kl`` (Grad-CAM overlays) and
``thickness`` (cartilage thickness maps). Import the module you need, e.g. ``from oa_kit.viz import progression``.
"""
