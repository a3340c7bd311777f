"""MOST table readers: ``mostv01235xray``, ``mostv{v}enroll``, ``mostoutcomes`` → the same tidy tables as the OAI readers.

MOST quirks handled here (REFERENCE §1.3): visits V0/V1/V2/V3/V5 = 0/15/30/60/84 months; KL code 9 = missing;
KL 8 is a replacement only at or after the knee's recorded replacement visit (``V99E{L,R}KRINDEX``), otherwise an
unreadable film (``technical``); KL 1.9 is read as KL 1 (as OAProgression does; configurable), the raw code kept in
``kl_raw``; a visit whose ``V{v}PA`` flag says no PA radiograph was taken gets ``kl_status = "missing"``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from oa_kit.errors import OAKitError
from oa_kit.io.oai import (
    cell_location,
    check_ranges,
    drop_duplicate_rows,
    find_table,
    read_oai_table,
    require_columns,
    require_numeric,
    status_summary,
    value_status,
)

#: MOST visit index → months since baseline (radiograph visits).
MOST_VISIT_MONTHS = MappingProxyType({0: 0, 1: 15, 2: 30, 3: 60, 5: 84})
KL_MISSING_CODE = 9.0
KL_SPECIAL_CODE = 8.0


def read_most_outcomes(
    folder: str | os.PathLike, visit_months: dict[int, int] | MappingProxyType = MOST_VISIT_MONTHS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read ``mostoutcomes``: knee replacements and deaths by visit index, converted to months.

    ``V99E{L,R}KRINDEX`` = visit index at which the replacement was recorded → replacement_month = that visit's
    month. ``V99EDINDEX`` = visit index at which death was recorded (the participant missed that visit) →
    death_month = the month of the previous radiograph visit (last visit alive), so "death_month < H" reads
    "could not attend the horizon visit". Blank, NaN, 0 or negative indices mean no event.

    Returns
    -------
    (replacements, deaths)
        participant_id, side, replacement_month; participant_id, death_month.
    """
    path = find_table(folder, "mostoutcomes")
    table = read_oai_table(path)
    require_columns(table, ["MOSTID", "V99EDINDEX", "V99ELKRINDEX", "V99ERKRINDEX"], path)
    require_numeric(table, ["V99EDINDEX", "V99ELKRINDEX", "V99ERKRINDEX"])
    table = _one_row_per_id(table)
    ids = table["MOSTID"].astype(str)
    rows = []
    for side in ("R", "L"):
        column = f"V99E{side}KRINDEX"
        month = _index_to_month(table[column], visit_months, path, column)
        rows.append(pd.DataFrame({"participant_id": ids, "side": side, "replacement_month": month})[month.notna()])
    replacements = pd.concat(rows, ignore_index=True)
    index = _index_to_month(table["V99EDINDEX"], visit_months, path, "V99EDINDEX", as_index=True)
    ordered = sorted(visit_months)
    previous = {v: visit_months[ordered[max(ordered.index(v) - 1, 0)]] for v in ordered}
    death_month = index.map(previous).astype("float64")
    deaths = pd.DataFrame({"participant_id": ids, "death_month": death_month})[death_month.notna()]
    return replacements.reset_index(drop=True), deaths.reset_index(drop=True)


def _index_to_month(values: pd.Series, visit_months, path: Path, column: str, as_index: bool = False) -> pd.Series:
    """Visit index → month (or the index itself with ``as_index``); no event → NaN; unknown index → error."""
    index = pd.to_numeric(values, errors="coerce")
    index = index.where(index > 0)
    unknown = index.notna() & ~index.isin(list(visit_months))
    if unknown.any():
        row = unknown[unknown].index[0]
        where = cell_location(values.to_frame().__finalize__(values), row) if values.attrs else str(path)
        raise OAKitError(
            f"{where}: column {column}: visit index {index[row]:g}; "
            f"expected one of {sorted(visit_months)} (pass visit_months for others)"
        )
    return index if as_index else index.map(dict(visit_months)).astype("float64")


def _one_row_per_id(table: pd.DataFrame) -> pd.DataFrame:
    """Rows with a MOSTID, identical duplicates dropped; a MOSTID with two different rows raises (file and line)."""
    return drop_duplicate_rows(table[table["MOSTID"].ne("")], ["MOSTID"], "participant")


def read_most_readings(
    folder: str | os.PathLike,
    kl_1_9_as: float = 1.0,
    visit_months: dict[int, int] | MappingProxyType = MOST_VISIT_MONTHS,
) -> pd.DataFrame:
    """Read ``mostv01235xray`` (+ ``mostoutcomes`` and ``mostv{v}enroll`` when present) into the tidy long table.

    Parameters
    ----------
    folder : path-like
        Folder with the MOST files (.sas7bdat, .txt or .csv).
    kl_1_9_as : float
        KL grade given to the MOST code 1.9 (default 1, as in OAProgression).
    visit_months : mapping
        Visit index → months.

    Returns
    -------
    pandas.DataFrame
        participant_id, side, visit_month, kl, kl_status, kl_raw, jsn_medial, jsn_lateral, osteophytes,
        osteophyte_fm/fl/tm/tl, readprj (NA: MOST has one central reading).
    """
    folder = Path(folder)
    path = find_table(folder, "mostv01235xray")
    table = read_oai_table(path)
    require_columns(table, ["MOSTID", "V0XRKL", "V0XLKL"], path)
    require_numeric(table, [c for c in table.columns if re.fullmatch(r"V\dX[LR](KL|JS[LM]|OS[FT][LM])", c)])
    table = _one_row_per_id(table)
    replaced = {}
    if find_table(folder, "mostoutcomes", required=False) is not None:
        reps, _ = read_most_outcomes(folder, visit_months)
        replaced = {
            (p, s): m for p, s, m in reps[["participant_id", "side", "replacement_month"]].itertuples(index=False)
        }
    frames = []
    for visit, month in visit_months.items():
        pa_taken = _pa_taken(folder, visit, table["MOSTID"])
        for side in ("R", "L"):
            if f"V{visit}X{side}KL" in table.columns:
                frames.append(_most_visit_side(table, path, visit, month, side, kl_1_9_as, replaced, pa_taken))
    readings = pd.concat(frames, ignore_index=True)
    if readings.empty:
        raise OAKitError(f"{path}: no participant rows (header only?); expected one row per MOSTID")
    return readings.sort_values(["participant_id", "side", "visit_month"], kind="stable").reset_index(drop=True)


def _pa_taken(folder: Path, visit: int, ids: pd.Series) -> pd.Series:
    """Per participant of ``ids``: False where ``mostv{v}enroll`` says no PA radiograph was taken (True otherwise)."""
    path = find_table(folder, f"mostv{visit}enroll", required=False)
    if path is None:
        return pd.Series(True, index=ids.index)
    enroll = read_oai_table(path)
    column = f"V{visit}PA"
    if column not in enroll.columns or "MOSTID" not in enroll.columns:
        return pd.Series(True, index=ids.index)
    require_numeric(enroll, [column])
    enroll = _one_row_per_id(enroll)
    taken = dict(zip(enroll["MOSTID"].astype(str), pd.to_numeric(enroll[column], errors="coerce").eq(1)))
    return ids.astype(str).map(lambda i: taken.get(i, False)).astype(bool)


def _most_visit_side(
    table: pd.DataFrame,
    path: Path,
    visit: int,
    month: int,
    side: str,
    kl_1_9_as: float,
    replaced: dict,
    pa_taken: pd.Series,
) -> pd.DataFrame:
    """Tidy rows for one MOST visit and side."""
    column = f"V{visit}X{side}KL"
    raw = pd.to_numeric(table[column], errors="coerce")
    status = value_status(table, column).astype(object).copy()
    ids = table["MOSTID"].astype(str)
    rep_month = ids.map(lambda i: replaced.get((i, side), np.inf)).astype(float)
    kl = raw.copy()
    is_ok = status.eq("ok")
    status[is_ok & raw.eq(KL_MISSING_CODE)] = "missing"
    eight = is_ok & raw.eq(KL_SPECIAL_CODE)
    status[eight & (rep_month <= month)] = "replacement"
    status[eight & (rep_month > month)] = "technical"
    kl[is_ok & np.isclose(raw, 1.9)] = kl_1_9_as
    status[~pa_taken & status.eq("ok")] = "missing"
    valid = status.eq("ok")
    bad = valid & ~kl.isin([0, 1, 2, 3, 4])
    if bad.any():
        row = bad[bad].index[0]
        raise OAKitError(
            f"{cell_location(table, row, column)}: KL value {raw[row]:g}; expected 0-4, 1.9, 8 or 9 (MOST codes)"
        )
    kl = kl.where(valid)

    def part(suffix: str) -> pd.Series:
        name = f"V{visit}X{side}{suffix}"
        values = (
            pd.to_numeric(table[name], errors="coerce")
            if name in table.columns
            else pd.Series(np.nan, index=table.index)
        )
        return values.where(valid).astype("float64")

    tidy = pd.DataFrame(
        {
            "participant_id": ids,
            "side": side,
            "visit_month": month,
            "kl": kl.astype("float64"),
            "kl_status": status.astype(str),
            "kl_raw": raw.astype("float64"),
            "jsn_medial": part("JSM"),
            "jsn_lateral": part("JSL"),
            "osteophyte_fm": part("OSFM"),
            "osteophyte_fl": part("OSFL"),
            "osteophyte_tm": part("OSTM"),
            "osteophyte_tl": part("OSTL"),
        }
    )
    tidy["osteophytes"] = tidy[["osteophyte_fm", "osteophyte_fl", "osteophyte_tm", "osteophyte_tl"]].max(
        axis=1, skipna=False
    )
    tidy["readprj"] = pd.array([pd.NA] * len(tidy), dtype="Int64")
    order = [
        "participant_id",
        "side",
        "visit_month",
        "kl",
        "kl_status",
        "kl_raw",
        "jsn_medial",
        "jsn_lateral",
        "osteophytes",
        "osteophyte_fm",
        "osteophyte_fl",
        "osteophyte_tm",
        "osteophyte_tl",
        "readprj",
    ]
    return tidy.loc[tidy["participant_id"].ne(""), order]


#: Required baseline clinical columns in ``mostv0enroll``.
ENROLL_COLUMNS = ("MOSTID", "AGE", "SEX", "V0BMI", "V0LAL", "V0LAR", "V0SURGL", "V0SURGR", "V0WOTOTL", "V0WOTOTR")


def read_most_clinical_baseline(folder: str | os.PathLike) -> pd.DataFrame:
    """Per-knee baseline clinical table from ``mostv0enroll`` in the OAI layout (see ``oa_kit.cohort.tables``).

    ``SEX`` 1/2 → "M"/"F"; injury = ``V0LA{L,R}``; surgery = ``V0SURG{L,R}``; womac_total = ``V0WOTOT{L,R}``.
    This file has no site, race or WOMAC subscales: those columns are NaN for every MOST knee (not collected here);
    ``clinical_status`` names the fields that were blank or special codes.
    """
    path = find_table(folder, "mostv0enroll")
    table = read_oai_table(path)
    require_columns(table, ENROLL_COLUMNS, path)
    require_numeric(table, ENROLL_COLUMNS[1:])
    check_ranges(table, ENROLL_COLUMNS)
    table = _one_row_per_id(table)
    if table.empty:
        raise OAKitError(f"{path}: no participant rows (header only?); expected one row per MOSTID")
    rows = []
    for side in ("R", "L"):
        fields = {
            "age_years": "AGE",
            "sex": "SEX",
            "bmi_kg_m2": "V0BMI",
            "injury": f"V0LA{side}",
            "surgery": f"V0SURG{side}",
            "womac_total": f"V0WOTOT{side}",
        }
        knee = pd.DataFrame(
            {
                "participant_id": table["MOSTID"].astype(str),
                "side": side,
                "age_years": table["AGE"],
                "sex": table["SEX"].map({1.0: "M", 2.0: "F"}),
                "bmi_kg_m2": table["V0BMI"],
                "site": np.nan,
                "race": np.nan,
                "injury": table[f"V0LA{side}"],
                "surgery": table[f"V0SURG{side}"],
                "womac_pain": np.nan,
                "womac_stiffness": np.nan,
                "womac_function": np.nan,
                "womac_total": table[f"V0WOTOT{side}"],
            }
        )
        knee["clinical_status"] = status_summary(table, fields)
        rows.append(knee)
    return (
        pd.concat(rows, ignore_index=True).sort_values(["participant_id", "side"], kind="stable").reset_index(drop=True)
    )
