"""Progression models: LightGBM per horizon, baselines, calibration, persistence."""

from __future__ import annotations

from oa_kit.progression.baselines import baseline_models, feature_sets
from oa_kit.progression.calibration import ProbabilityCalibrator
from oa_kit.progression.model import (
    SYNTHETIC_STATEMENT,
    ProgressionModel,
    make_provenance,
)
from oa_kit.progression.persist import load_model, save_model
from oa_kit.progression.pipeline import explain_model, progression_report

__all__ = [
    "SYNTHETIC_STATEMENT",
    "ProbabilityCalibrator",
    "ProgressionModel",
    "baseline_models",
    "explain_model",
    "feature_sets",
    "load_model",
    "make_provenance",
    "progression_report",
    "save_model",
]
