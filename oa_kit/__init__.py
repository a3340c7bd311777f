"""oa_kit: knee osteoarthritis prediction — KL-grade CNN, MRI cartilage biomarkers, progression models with SHAP.

The public API (:mod:`oa_kit.api`) is available from the package itself, imported on first use so that
``import oa_kit.io.oai`` stays light::

    import oa_kit
    grades = oa_kit.grade_knees(["knee.dcm"])
"""

import importlib

__version__ = "0.1.0"

#: Names re-exported from :mod:`oa_kit.api`.
API = (
    "Cohort",
    "KneeGrades",
    "KneeRisk",
    "MRIAnalysis",
    "ProgressionModels",
    "ProgressionReport",
    "analyse_mri",
    "evaluate_progression",
    "fit_progression",
    "grade_knees",
    "knee_risk",
    "load_progression",
    "measure_labels",
    "open_cohort",
    "read_mri_result",
    "read_report",
)
__all__ = ["__version__", *API]


def __getattr__(name: str):
    """Import ``name`` from :mod:`oa_kit.api` the first time it is asked for (PEP 562)."""
    if name in API:
        return getattr(importlib.import_module("oa_kit.api"), name)
    raise AttributeError(f"module 'oa_kit' has no attribute {name!r}")
