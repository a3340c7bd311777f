"""OAI-style ASCII tables of the synthetic cohort: '|' separated, upper-case OAI names and codes, special codes as text.

Files (docs/DESIGN.md "Synthetic cohort on disk", REFERENCE §1.2): ``enrollees``, ``allclinical00``,
``kxr_sq_bu{00,01,03,05,06,08,10}``, ``kxr_qjsw_duryea00`` and ``outcomes99``. Codes: ``SIDE`` 1 right / 2 left,
``P02SEX`` 1 male / 2 female, ``P02RACE`` 0 other / 1 white / 2 black / 3 asian, ``READPRJ`` 15 (primary) with some
duplicate 37/42 rows, special values ``.P`` (knee replacement), ``.T`` (technical problem), ``.A`` (not expected).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from oa_kit.io.atomic import write_text_atomic
from oa_kit.synth.model import VISITS, SimulatedCohort

#: Days per month used to turn event months into OAI ``*DAYS`` columns.
DAYS_PER_MONTH = 365.25 / 12
#: Status word → OAI special code written in place of a value.
SPECIAL_TEXT = {"P": ".P", "T": ".T", "A": ".A"}
#: Medial and lateral fixed locations (x coordinate × 1000) of the Duryea quantitative JSW table.
MEDIAL_JSW_LOCATIONS = (150, 175, 200, 225, 250, 275, 300)
LATERAL_JSW_LOCATIONS = (700, 725, 750, 775, 800, 825, 850, 875, 900)
SIDE_CODE = {"R": 1, "L": 2}
SEX_CODE = {"M": 1, "F": 2}


def format_table(table: pd.DataFrame) -> str:
    """Render a table of strings/numbers as OAI ASCII: header line, '|' separators, '\\n' line ends."""
    lines = ["|".join(table.columns)]
    lines += ["|".join(row) for row in table.astype(str).itertuples(index=False, name=None)]
    return "\n".join(lines) + "\n"


def _fmt(values, decimals: int) -> np.ndarray:
    """Fixed-decimal text for numbers (integers when ``decimals`` is 0)."""
    arr = np.asarray(values, dtype=float)
    return np.array([f"{v:.{decimals}f}" for v in arr], dtype=object)


def enrollees_table(cohort: SimulatedCohort) -> pd.DataFrame:
    """``enrollees``: ID, P02SEX, V00SITE, P02RACE."""
    p = cohort.participants
    return pd.DataFrame(
        {
            "ID": p["ID"],
            "P02SEX": p["sex"].map(SEX_CODE).astype(str),
            "V00SITE": p["site"],
            "P02RACE": p["race"].astype(str),
        }
    )


def allclinical00_table(cohort: SimulatedCohort) -> pd.DataFrame:
    """``allclinical00``: age, BMI and per-side injury, surgery and WOMAC pain/stiffness/function/total."""
    p = cohort.participants
    k = cohort.knees.set_index(["ID", "side"])
    table = pd.DataFrame({"ID": p["ID"], "V00AGE": p["age"].astype(str), "P01BMI": _fmt(p["bmi"], 1)})
    fields = (
        ("P01INJ{s}", "injury", 0),
        ("P01KSURG{s}", "surgery", 0),
        ("V00WOMKP{s}", "womac_pain", 0),
        ("V00WOMSTF{s}", "womac_stiffness", 0),
        ("V00WOMADL{s}", "womac_function", 0),
        ("V00WOMTS{s}", "womac_total", 0),
    )
    for template, column, decimals in fields:
        for side in ("L", "R"):
            values = k.xs(side, level="side").loc[p["ID"], column].to_numpy()
            table[template.format(s=side)] = _fmt(values, decimals)
    return table


def kxr_sq_bu_table(cohort: SimulatedCohort, visit: str) -> pd.DataFrame:
    """``kxr_sq_bu{vv}``: KL, osteophyte and JSN grades per knee reading; special codes replace every grade."""
    r = cohort.readings[cohort.readings["visit"] == visit]
    vv = visit
    table = pd.DataFrame(
        {
            "ID": r["ID"].to_numpy(),
            "SIDE": r["side"].map(SIDE_CODE).astype(str).to_numpy(),
            "READPRJ": r["readprj"].astype(str).to_numpy(),
        }
    )
    columns = (
        (f"{vv}XRKL", "kl", 0),
        (f"{vv}XROSFL", "os_FL", 0),
        (f"{vv}XROSFM", "os_FM", 0),
        (f"{vv}XROSTL", "os_TL", 0),
        (f"{vv}XROSTM", "os_TM", 0),
        (f"{vv}XRJSL", "jsn_lateral", 1),
        (f"{vv}XRJSM", "jsn_medial", 1),
    )
    special = r["status"].map(SPECIAL_TEXT).to_numpy()
    for name, column, decimals in columns:
        text = _fmt(r[column], decimals)
        table[name] = np.where(pd.isna(special), text, special)
    return table


def kxr_qjsw_duryea00_table(cohort: SimulatedCohort, seed: int) -> pd.DataFrame:
    """``kxr_qjsw_duryea00``: minimum medial JSW and fixed-location JSW profiles (mm), beam angle (degrees)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2020]))
    r = cohort.readings
    base = r[(r["visit"] == "V00") & (r["readprj"] == 15)][["ID", "side", "status"]]
    k = base.merge(cohort.knees[["ID", "side", "jsw_medial_mm", "jsw_lateral_mm"]], on=["ID", "side"])
    n = len(k)
    table = pd.DataFrame(
        {"ID": k["ID"].to_numpy(), "SIDE": k["side"].map(SIDE_CODE).astype(str).to_numpy(), "READPRJ": "15"}
    )
    special = k["status"].map(SPECIAL_TEXT).to_numpy()
    centre = rng.normal(0.225, 0.02, n)
    values = {"V00MCMJSW": k["jsw_medial_mm"].to_numpy()}
    for x in MEDIAL_JSW_LOCATIONS:
        bump = 1.5 * ((x / 1000 - centre) / 0.1) ** 2 + np.abs(rng.normal(0, 0.05, n))
        values[f"V00JSW{x}"] = k["jsw_medial_mm"].to_numpy() + bump
    lateral_centre = rng.normal(0.80, 0.02, n)
    for x in LATERAL_JSW_LOCATIONS:
        bump = 1.2 * ((x / 1000 - lateral_centre) / 0.1) ** 2 + np.abs(rng.normal(0, 0.05, n))
        values[f"V00LJSW{x}"] = k["jsw_lateral_mm"].to_numpy() + bump
    for name, vals in values.items():
        table[name] = np.where(pd.isna(special), _fmt(vals, 3), special)
    table["V00BMANG"] = np.where(pd.isna(special), _fmt(rng.normal(10.0, 2.0, n), 1), special)
    return table


def _visit_number(month: float) -> str:
    """OAI visit number (0, 1, 3, 5, 6, 8, 10) of the last imaging visit at or before ``month``."""
    number = ""
    for prefix, visit_month in VISITS:
        if visit_month <= month:
            number = str(int(prefix[1:]))
    return number


def outcomes99_table(cohort: SimulatedCohort) -> pd.DataFrame:
    """``outcomes99``: knee replacements (per side) and deaths, named as in the OAI outcomes file.

    Columns: ``V99E{R,L}KBLRP`` replacement at baseline (0/1), ``V99E{R,L}KRPCF`` 3 = replacement adjudicated and
    confirmed (blank otherwise), ``V99E{R,L}KDAYS`` days from enrolment to replacement, ``V99E{R,L}KVSPR`` closest OAI
    visit before it, ``V99E{R,L}KTLPR`` 1 total / 2 partial; ``V99EDDCF`` death confirmed (1/0), ``V99EDDVSPR`` closest
    OAI visit before death, ``V99RNTCNT`` last OAI visit with contact.
    """
    p = cohort.participants.set_index("ID")
    k = cohort.knees.set_index(["ID", "side"])
    ids = p.index
    table = pd.DataFrame({"ID": ids.to_numpy()})
    rng = np.random.default_rng(np.random.SeedSequence([cohort.seed, 99]))
    for side in ("R", "L"):
        tkr = k.xs(side, level="side").loc[ids, "tkr_month"].to_numpy()
        at_baseline = tkr == 0
        follow_up = np.isfinite(tkr) & ~at_baseline & (tkr <= VISITS[-1][1])
        table[f"V99E{side}KBLRP"] = at_baseline.astype(int).astype(str)
        table[f"V99E{side}KRPCF"] = np.where(follow_up, "3", "")
        table[f"V99E{side}KDAYS"] = np.where(follow_up, _fmt(np.nan_to_num(tkr) * DAYS_PER_MONTH, 0), "")
        table[f"V99E{side}KVSPR"] = np.where(follow_up, [_visit_number(t) if np.isfinite(t) else "" for t in tkr], "")
        table[f"V99E{side}KTLPR"] = np.where(follow_up, np.where(rng.random(len(ids)) < 0.9, "1", "2"), "")
    death = p["death_month"].to_numpy()
    died = np.isfinite(death) & (death <= VISITS[-1][1])
    table["V99EDDCF"] = died.astype(int).astype(str)
    table["V99EDDVSPR"] = np.where(died, [_visit_number(d) if np.isfinite(d) else "" for d in death], "")
    gone = np.fmin(death, p["dropout_month"].to_numpy())
    table["V99RNTCNT"] = [_visit_number(g) if np.isfinite(g) else "10" for g in gone]
    return table


def oai_tables(cohort: SimulatedCohort) -> dict[str, pd.DataFrame]:
    """Every OAI table of the cohort as text DataFrames, keyed by file stem (e.g. ``kxr_sq_bu00``)."""
    tables = {"enrollees": enrollees_table(cohort), "allclinical00": allclinical00_table(cohort)}
    for visit, _ in VISITS:
        tables[f"kxr_sq_bu{visit[1:]}"] = kxr_sq_bu_table(cohort, visit)
    tables["kxr_qjsw_duryea00"] = kxr_qjsw_duryea00_table(cohort, cohort.seed)
    tables["outcomes99"] = outcomes99_table(cohort)
    return tables


def write_oai_tables(cohort: SimulatedCohort, folder: str | os.PathLike) -> dict[str, Path]:
    """Write every OAI table as ``<stem>.txt`` in ``folder`` (atomically); returns stem → path."""
    folder = Path(folder)
    paths = {}
    for stem, table in oai_tables(cohort).items():
        paths[stem] = folder / f"{stem}.txt"
        write_text_atomic(paths[stem], format_table(table))
    return paths
