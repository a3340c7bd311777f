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

__all__ = [
    "SYNTHETIC_STATEMENT",
    "ProbabilityCalibrator",
    "ProgressionModel",
    "baseline_models",
    "feature_sets",
    "load_model",
    "make_provenance",
    "save_model",
]
