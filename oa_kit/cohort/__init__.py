"""Tidy cohort tables, progression labels with reason codes, participant-grouped splits."""

from oa_kit.cohort.labels import (
    DEFINITIONS,
    REASON_CODES,
    ProgressionLabels,
    build_progression_labels,
)
from oa_kit.cohort.splits import leave_one_site_out, participant_kfold, site_held_out
from oa_kit.cohort.tables import (
    CohortTables,
    baseline_knee_table,
    data_dictionary,
    load_most_tables,
    load_oai_tables,
    load_tables,
)

__all__ = [
    "DEFINITIONS",
    "REASON_CODES",
    "ProgressionLabels",
    "build_progression_labels",
    "leave_one_site_out",
    "participant_kfold",
    "site_held_out",
    "CohortTables",
    "baseline_knee_table",
    "data_dictionary",
    "load_most_tables",
    "load_oai_tables",
    "load_tables",
]
