"""The synthetic OAI-like cohort generator with known ground truth (writes real file formats).

``generate_cohort(preset, out, seed)`` writes OAI tables, DICOM radiographs, NIfTI MRI and truth tables;
``simulate_cohort(preset, seed)`` returns the tables in memory. The disease model is documented in
``oa_kit.synth.model`` and ``data_cards/synthetic_oai.md``. Synthetic data: not real patients.
"""

import importlib

from oa_kit.synth.generate import generate_cohort, read_manifest, simulate_cohort
from oa_kit.synth.model import VISITS, DiseaseModel, SimulatedCohort
from oa_kit.synth.presets import PRESETS, CohortPreset, get_preset

_ORACLE = ("oracle_auc", "oracle_table", "reference_labels")


def __getattr__(name: str):
    """Import the oracle helpers lazily (keeps ``python -m oa_kit.synth.oracle`` free of double-import warnings)."""
    if name in _ORACLE:
        return getattr(importlib.import_module("oa_kit.synth.oracle"), name)
    raise AttributeError(f"module 'oa_kit.synth' has no attribute {name!r}")


__all__ = [
    "generate_cohort",
    "simulate_cohort",
    "read_manifest",
    "DiseaseModel",
    "SimulatedCohort",
    "VISITS",
    "oracle_auc",
    "oracle_table",
    "reference_labels",
    "PRESETS",
    "CohortPreset",
    "get_preset",
]
