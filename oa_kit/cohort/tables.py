"""The tidy long readings table, the wide baseline clinical table, their data dictionary, and one loader for both cohorts."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pandas as pd

from oa_kit.cohort.labels import EXCLUSIONS_DICTIONARY, LABELS_DICTIONARY
from oa_kit.errors import OAKitError
from oa_kit.io import most, oai

#: Tidy long readings: one row per (participant_id, side, visit_month). column → (meaning, units / encoding).
READINGS_DICTIONARY = {
    "participant_id": ("participant identifier (OAI ID / MOST MOSTID)", "string"),
    "side": ("knee", '"R" right, "L" left (OAI SIDE 1 = right, 2 = left)'),
    "visit_month": ("months since baseline (OAI V00 0 … V10 96; MOST V0 0, V1 15, V2 30, V3 60, V5 84)", "months"),
    "kl": ("Kellgren-Lawrence grade; NaN exactly when kl_status is not 'ok'", "grade 0-4"),
    "kl_status": (
        "why kl is or is not a grade",
        "ok | replacement (.P / MOST 8 at or after the replacement visit) | "
        "technical (.T / MOST 8 otherwise) | not_expected (.A) | missing (blank, '.', MOST 9, no PA film)",
    ),
    "jsn_medial": ("medial joint-space narrowing (OARSI)", "grade 0-3"),
    "jsn_lateral": ("lateral joint-space narrowing (OARSI)", "grade 0-3"),
    "osteophytes": ("worst marginal osteophyte grade of the four sites (max of osteophyte_fm/fl/tm/tl)", "grade 0-3"),
    "osteophyte_fm": ("femoral medial osteophyte (OARSI)", "grade 0-3"),
    "osteophyte_fl": ("femoral lateral osteophyte (OARSI)", "grade 0-3"),
    "osteophyte_tm": ("tibial medial osteophyte (OARSI)", "grade 0-3"),
    "osteophyte_tl": ("tibial lateral osteophyte (OARSI)", "grade 0-3"),
    "jsw_medial_mm": (
        "minimum medial joint-space width (OAI kxr_qjsw_duryea V{vv}MCMJSW); NaN where not measured",
        "mm",
    ),
    "readprj": ("OAI reading project (READPRJ) whose row was used; NA for MOST", "integer code (15, 37, 42, ...)"),
}
#: Wide baseline clinical table: one row per (participant_id, side).
CLINICAL_DICTIONARY = {
    "participant_id": ("participant identifier", "string"),
    "side": ("knee", '"R" / "L"'),
    "age_years": ("age at baseline (OAI V00AGE, MOST AGE)", "years"),
    "sex": (
        "sex (OAI P02SEX, MOST SEX: 1 = male, 2 = female)",
        '"M" male, "F" female (not OAProgression\'s 2 - P02SEX)',
    ),
    "bmi_kg_m2": ("body-mass index at baseline (OAI P01BMI, MOST V0BMI)", "kg/m^2"),
    "site": ("recruitment site (OAI V00SITE); NaN for MOST", "A-E"),
    "race": ("race code (OAI P02RACE); NaN for MOST", "0 other non-white, 1 white, 2 black, 3 Asian (OAI codes)"),
    "injury": ("knee injury ever, this knee (OAI P01INJ{L,R}, MOST V0LA{L,R})", "0 no, 1 yes"),
    "surgery": ("knee surgery ever, this knee (OAI P01KSURG{L,R}, MOST V0SURG{L,R})", "0 no, 1 yes"),
    "womac_pain": ("WOMAC pain, this knee (OAI V00WOMKP{L,R}); NaN for MOST", "score 0-20"),
    "womac_stiffness": ("WOMAC stiffness, this knee (OAI V00WOMSTF{L,R}); NaN for MOST", "score 0-8"),
    "womac_function": ("WOMAC physical function, this knee (OAI V00WOMADL{L,R}); NaN for MOST", "score 0-68"),
    "womac_total": ("WOMAC total, this knee (OAI V00WOMTS{L,R}, MOST V0WOTOT{L,R})", "score 0-96"),
    "clinical_status": ("fields that were blank or a special code", '"ok" or "field=status;..."'),
}
READINGS_COLUMNS = tuple(READINGS_DICTIONARY)
CLINICAL_COLUMNS = tuple(CLINICAL_DICTIONARY)
SOURCES = ("oai", "most")


def data_dictionary(table: str = "readings") -> pd.DataFrame:
    """The data dictionary of the ``readings``, ``clinical``, ``labels`` or ``exclusions`` table.

    Returns a DataFrame with columns ``column``, ``meaning``, ``units`` (units or encoding).
    """

    dictionaries = {
        "readings": READINGS_DICTIONARY,
        "clinical": CLINICAL_DICTIONARY,
        "labels": LABELS_DICTIONARY,
        "exclusions": EXCLUSIONS_DICTIONARY,
    }
    if table not in dictionaries:
        raise OAKitError(f"table: {table!r}; expected one of {', '.join(dictionaries)}")
    rows = [(column, meaning, units) for column, (meaning, units) in dictionaries[table].items()]
    return pd.DataFrame(rows, columns=["column", "meaning", "units"])


@dataclasses.dataclass(frozen=True)
class CohortTables:
    """Everything the label builder and feature code need from one cohort's official files."""

    source: str
    readings: pd.DataFrame
    clinical: pd.DataFrame
    replacements: pd.DataFrame
    deaths: pd.DataFrame


def merge_jsw(readings: pd.DataFrame, jsw: pd.DataFrame) -> pd.DataFrame:
    """Add ``jsw_medial_mm`` (and the fixed-location JSW columns) to the readings, matched on knee and visit."""
    keys = ["participant_id", "side", "visit_month"]
    extra = [c for c in jsw.columns if c.startswith("jsw_") or c == "beam_angle_deg"]
    merged = readings.drop(columns=[c for c in extra if c in readings.columns]).merge(
        jsw[keys + extra], on=keys, how="left", validate="one_to_one"
    )
    return merged


def tidy_readings(readings: pd.DataFrame) -> pd.DataFrame:
    """Put the readings in the documented column order (extra columns after) and check keys and types."""
    missing = [c for c in READINGS_COLUMNS if c not in readings.columns]
    frame = readings.copy()
    for column in missing:
        if column in ("jsw_medial_mm",):
            frame[column] = float("nan")
        elif column == "readprj":
            frame[column] = pd.array([pd.NA] * len(frame), dtype="Int64")
        else:
            raise OAKitError(f"readings: missing column {column}; expected {', '.join(READINGS_COLUMNS)}")
    frame["participant_id"] = frame["participant_id"].astype(str)
    frame["visit_month"] = frame["visit_month"].astype("int64")
    if not frame["side"].isin(["R", "L"]).all():
        raise OAKitError("readings: column side has values other than 'R'/'L'; expected R or L")
    if frame.duplicated(["participant_id", "side", "visit_month"]).any():
        raise OAKitError("readings: duplicate (participant_id, side, visit_month) rows; expected one per knee-visit")
    extra = [c for c in frame.columns if c not in READINGS_COLUMNS]
    return frame[list(READINGS_COLUMNS) + extra].reset_index(drop=True)


def baseline_knee_table(tables: CohortTables) -> pd.DataFrame:
    """One row per knee: the baseline clinical table plus the baseline (month 0) readings, prefixed ``baseline_``.

    Knees without a baseline reading keep NaN grades with ``baseline_kl_status = "missing"`` (never silently).
    """
    keys = ["participant_id", "side"]
    base = tables.readings[tables.readings["visit_month"] == 0]
    columns = ["kl", "kl_status", "jsn_medial", "jsn_lateral", "osteophytes", "jsw_medial_mm", "readprj"]
    base = base[keys + columns].rename(columns={c: f"baseline_{c}" for c in columns})
    merged = tables.clinical.merge(base, on=keys, how="left", validate="one_to_one")
    merged["baseline_kl_status"] = merged["baseline_kl_status"].fillna("missing").astype(str)
    return merged


def resolve_oai_folder(folder: str | os.PathLike) -> Path:
    """Accept either the OAI tables folder or a synthetic cohort root holding ``OAI/``."""
    folder = Path(folder)
    if (folder / "OAI").is_dir():
        return folder / "OAI"
    return folder


def load_oai_tables(folder: str | os.PathLike, readprj_priority=oai.READPRJ_PRIORITY) -> CohortTables:
    """Read the OAI KL, JSW (when present), clinical and outcomes (when present) files into :class:`CohortTables`."""
    folder = resolve_oai_folder(folder)
    readings = oai.read_kl_readings(folder, readprj_priority=readprj_priority)
    if any(oai.find_table(folder, f"kxr_qjsw_duryea{p[1:]}", required=False) for p in oai.VISIT_MONTHS):
        readings = merge_jsw(readings, oai.read_jsw(folder, readprj_priority=readprj_priority))
    clinical = oai.read_clinical_baseline(folder)
    if oai.find_table(folder, "outcomes99", required=False) is not None:
        replacements, deaths = oai.read_outcomes(folder)
    else:
        replacements, deaths = _empty_replacements(), _empty_deaths()
    return CohortTables("oai", tidy_readings(readings), clinical, replacements, deaths)


def load_most_tables(folder: str | os.PathLike, kl_1_9_as: float = 1.0) -> CohortTables:
    """Read the MOST x-ray, enrolment and outcomes files into :class:`CohortTables`."""
    folder = Path(folder)
    readings = most.read_most_readings(folder, kl_1_9_as=kl_1_9_as)
    clinical = most.read_most_clinical_baseline(folder)
    if oai.find_table(folder, "mostoutcomes", required=False) is not None:
        replacements, deaths = most.read_most_outcomes(folder)
    else:
        replacements, deaths = _empty_replacements(), _empty_deaths()
    return CohortTables("most", tidy_readings(readings), clinical, replacements, deaths)


def load_tables(folder: str | os.PathLike, source: str = "oai") -> CohortTables:
    """Load one cohort's tables: ``source`` is "oai" or "most"."""
    if source == "oai":
        return load_oai_tables(folder)
    if source == "most":
        return load_most_tables(folder)
    raise OAKitError(f"source: {source!r}; expected one of {', '.join(SOURCES)}")


def _empty_replacements() -> pd.DataFrame:
    """An empty replacements table with the right columns."""
    return pd.DataFrame(
        {
            "participant_id": pd.Series(dtype=str),
            "side": pd.Series(dtype=str),
            "replacement_month": pd.Series(dtype="float64"),
        }
    )


def _empty_deaths() -> pd.DataFrame:
    """An empty deaths table with the right columns."""
    return pd.DataFrame({"participant_id": pd.Series(dtype=str), "death_month": pd.Series(dtype="float64")})
