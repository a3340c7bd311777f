"""The feature schema: what each column of a per-knee table is — a key, a feature of one family, or not a feature.

One explicit catalogue, so that text columns (a conformal set, QA flags, file paths) never become features and a
column nobody declared is named in an error instead of silently counting as clinical. Families:

- ``clinical``: the tidy clinical columns of :mod:`oa_kit.cohort.tables` (age, sex, BMI, site, injury, surgery,
  WOMAC) and their common short names (``age``, ``bmi``, ``koos_*``, ...);
- ``radiograph``: readings (KL, JSN, osteophyte grades, JSW) and KL-CNN outputs (``kl_p*``, ``kl_emb_*``), measured
  osteophytes, anything prefixed ``xr_``;
- ``mri``: cartilage biomarkers (thickness, volume, area, FCL), ``mri_emb_*``, anything prefixed ``mri_``.

Not features: keys (participant_id, side, visit_month), outcomes and labels, generator truth, bookkeeping and text
columns (:data:`NOT_FEATURE_COLUMNS`, prefixes and suffixes below), ``race``. Declare any other column with
``families={"my_column": "clinical"}`` (or leave it out of the table).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from oa_kit.cohort.tables import CLINICAL_COLUMNS
from oa_kit.errors import OAKitError

#: The three feature families used for grouped explanations.
FEATURE_FAMILIES: tuple[str, ...] = ("clinical", "radiograph", "mri")
#: Columns identifying a knee (never features).
KEY_COLUMNS: tuple[str, ...] = ("participant_id", "side")
#: Columns never used as features: keys, outcomes, bookkeeping, text output of the KL model, ``race``.
NOT_FEATURE_COLUMNS: frozenset[str] = frozenset(
    {
        "participant_id",
        "side",
        "visit_month",
        "id",
        "label",
        "horizon_months",
        "event",
        "event_month",
        "months_to_event_or_censoring",
        "reason",
        "reason_code",
        "race",
        "fold",
        "provenance",
        "death_month",
        "kl_grade",
        "kl_grade_set",
        "kl_qa_flags",
        "grade",
        "grade_set",
        "qa_flags",
        "embedding_path",
        "model",
        "kl_weights_sha256",
        "mri_weights_sha256",
    }
)
#: Column naming the MRI segmenter weights (sha256) that made a row's ``mri_emb_*`` embedding.
MRI_MODEL_COLUMN = "mri_weights_sha256"
NOT_FEATURE_PREFIXES: tuple[str, ...] = (
    "p_progress",
    "latent",
    "progression_rate",
    "kl_true",
    "readprj",
    "path",
    "oof_",
    "risk",
    "n_readings",
    "image_",
    "event_month",
    "kl_increment",
    "tkr_",
    "unmeasured",
    "log_rate",
    "eligible",
    "grade_quantile",
    "qc_",
    "source",
)
#: Column-name endings never used as features (status/bookkeeping text such as ``clinical_status``).
NOT_FEATURE_SUFFIXES: tuple[str, ...] = ("_status", "_path", "_month", "_file", "_reasons")

_CLINICAL_EXACT = frozenset(CLINICAL_COLUMNS) | {
    "age",
    "bmi",
    "female",
    "height_cm",
    "weight_kg",
    "womac",
}
_CLINICAL_PREFIXES = ("womac_", "koos_", "injury", "surgery", "pain_", "kp_", "wp_", "age_", "bmi_")
_RADIOGRAPH_EXACT = frozenset({"kl", "baseline_kl", "osteophytes"})
_RADIOGRAPH_PREFIXES = (
    "kl_",
    "xr_",
    "jsw",
    "jsn",
    "osteophyte",
    "ost_",
    "os_",
    "osf",
    "sclerosis",
    "mcmjsw",
    "bmang",
    "beam_angle",
    "varus",
)
_MRI_PREFIXES = ("mri_", "thickness", "volume", "fcl", "cartilage", "covered_area", "t2_", "menisc")


def is_feature_column(column: str) -> bool:
    """Whether a column may be a feature at all (not a key, outcome, truth, bookkeeping or text output column)."""
    name = str(column).lower()
    return (
        name not in NOT_FEATURE_COLUMNS
        and not name.startswith(NOT_FEATURE_PREFIXES)
        and not name.endswith(NOT_FEATURE_SUFFIXES)
    )


def known_family(column: str) -> str | None:
    """Family of a column name in the catalogue, or None when the catalogue does not know it."""
    name = str(column).lower()
    if name in _RADIOGRAPH_EXACT or name.startswith(_RADIOGRAPH_PREFIXES):
        return "radiograph"
    if name.startswith(_MRI_PREFIXES) or "thickness" in name or "_mm3" in name or "_mm2" in name:
        return "mri"
    if name in _CLINICAL_EXACT or name.startswith(_CLINICAL_PREFIXES):
        return "clinical"
    return None


def family_of(column: str, families: Mapping[str, str] | None = None) -> str:
    """Feature family of a column: ``families[column]`` when given, else the catalogue's; unknown names are an error."""
    family = dict(families or {}).get(column) or known_family(column)
    if family is None:
        raise OAKitError(
            f"{column}: column not in the feature schema (oa_kit.features.schema); expected a known clinical, "
            f"radiograph or MRI column, or declare it, e.g. families={{'{column}': 'clinical'}}, or drop it"
        )
    if family not in FEATURE_FAMILIES:
        raise OAKitError(f"families[{column!r}]: {family!r}; expected one of {FEATURE_FAMILIES}")
    return family


def feature_columns(columns: Iterable[str], families: Mapping[str, str] | None = None) -> list[str]:
    """The columns that are features, in order; a column neither known nor declared in ``families`` is an error."""
    chosen = [c for c in columns if is_feature_column(c) or c in dict(families or {})]
    for column in chosen:
        family_of(column, families)
    return chosen


def keep_families(table: pd.DataFrame, keep: Iterable[str], families: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``table`` without the feature columns of families not in ``keep`` (keys and non-feature columns stay)."""
    keep = set(keep)
    unknown = keep - set(FEATURE_FAMILIES)
    if unknown:
        raise OAKitError(f"families: {sorted(unknown)[0]!r}; expected some of {FEATURE_FAMILIES}")
    drop = [c for c in feature_columns(table.columns, families) if family_of(c, families) not in keep]
    return table.drop(columns=drop)
