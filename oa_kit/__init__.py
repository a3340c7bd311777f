"""oa_kit: knee osteoarthritis prediction — KL-grade CNN, MRI cartilage biomarkers, progression models with SHAP."""

__version__ = "0.1.0"
