"""Knee-level progression labels per horizon, with a reason code for every excluded knee and a cohort-flow table.

Two definitions (docs: REFERENCE §3.1/§3.2), both without the published bugs:

``tiulpin2019``
    Baseline KL ≤ 3 and no baseline replacement. Progressor by horizon H: a follow-up reading (months ≤ H) with KL
    above baseline, ignoring increases that land on KL 1 (0→1), or a *recorded* knee replacement (``.P`` reading or a
    replacement table) by H. A missing reading is never progression. Non-progressors must have a valid reading at
    the horizon visit. Every follow-up visit is used (48 m included).
``panfilov2025``
    KL 0 and 1 merged; baseline KL ≤ 3, no baseline replacement. Knees whose (merged) KL drops below baseline inside
    the window are excluded; label 1 when it rises inside the window; label 0 when read at the window end with the
    same grade. Replacement readings are dropped (a replacement inside the window excludes the knee) unless
    ``replacement_as_progression=True``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from oa_kit.errors import OAKitError
from oa_kit.horizons import OAI_HORIZONS_MONTHS

if TYPE_CHECKING:
    import plotly.graph_objects as go

DEFINITIONS = ("tiulpin2019", "panfilov2025")

#: Reason code → (number, explanation). Numbers are stable; a knee gets the first reason that applies.
REASON_CODES = MappingProxyType(
    {
        "not_present_at_baseline": (0, "no baseline KL reading for this knee (absent, blank or not expected)"),
        "baseline_replacement": (1, "knee already replaced at baseline"),
        "technical_read": (2, "the reading needed (baseline or horizon visit) had a technical problem (.T)"),
        "baseline_kl4": (3, "baseline KL 4: no higher grade to progress to"),
        "decreasing_kl": (4, "KL fell below baseline inside the window (panfilov2025)"),
        "replacement_in_window": (5, "knee replaced inside the window and replacement is not counted as progression"),
        "death_before_horizon": (6, "participant died before the horizon without progression"),
        "insufficient_followups": (7, "no valid follow-up reading inside the window (panfilov2025)"),
        "missing_follow_up": (8, "no progression seen and no valid reading at the horizon visit"),
    }
)
READING_COLUMNS = ("participant_id", "side", "visit_month", "kl", "kl_status")
KL_STATUSES = ("ok", "replacement", "technical", "not_expected", "missing")
#: Columns of ``ProgressionLabels.labels`` and ``.exclusions``: column → (meaning, units / encoding).
LABELS_DICTIONARY = {
    "participant_id": ("participant identifier", "string"),
    "side": ("knee", '"R" / "L"'),
    "horizon_months": ("prediction horizon: progression counted at visits up to this month", "months"),
    "label": ("progression by the horizon under the chosen definition", "1 progressor, 0 non-progressor"),
    "baseline_kl": ("baseline KL grade (NaN when there was no valid baseline reading)", "grade 0-4"),
    "event_month": ("first visit (or replacement month) with progression over all follow-up; NaN if none", "months"),
    "months_to_event_or_censoring": (
        "event_month if event, else the last valid reading before any uncounted replacement",
        "months",
    ),
    "event": ("progression observed at any time in follow-up (for survival models)", "0/1"),
}
EXCLUSIONS_DICTIONARY = {
    "participant_id": ("participant identifier", "string"),
    "side": ("knee", '"R" / "L"'),
    "horizon_months": ("horizon the knee is excluded from", "months"),
    "reason_code": ("first exclusion reason that applies (see REASON_CODES for the order)", " | ".join(REASON_CODES)),
    "reason": ("plain-language explanation of reason_code", "text"),
    "baseline_kl": ("baseline KL grade (NaN when there was no valid baseline reading)", "grade 0-4"),
}
LABEL_COLUMNS = tuple(LABELS_DICTIONARY)
EXCLUSION_COLUMNS = tuple(EXCLUSIONS_DICTIONARY)


@dataclasses.dataclass(frozen=True)
class ProgressionLabels:
    """Labels per (knee, horizon), the exclusions with reasons, and the settings that produced them.

    ``labels`` columns: participant_id, side, horizon_months, label (0/1), baseline_kl, event_month (first
    progression over all follow-up, NaN if none), months_to_event_or_censoring, event (0/1, over all follow-up).
    ``exclusions`` columns: participant_id, side, horizon_months, reason_code, reason, baseline_kl.
    """

    labels: pd.DataFrame
    exclusions: pd.DataFrame
    definition: str
    horizons_months: tuple[int, ...]

    def flow(self) -> pd.DataFrame:
        """Cohort-flow counts per horizon: all knees, each exclusion reason, included, progressors, non-progressors."""
        rows = []
        for horizon in self.horizons_months:
            lab = self.labels[self.labels["horizon_months"] == horizon]
            exc = self.exclusions[self.exclusions["horizon_months"] == horizon]
            rows.append(_flow_row(horizon, "knees", "", pd.concat([lab, exc])))
            for code in REASON_CODES:
                rows.append(_flow_row(horizon, "excluded", code, exc[exc["reason_code"] == code]))
            rows.append(_flow_row(horizon, "included", "", lab))
            rows.append(_flow_row(horizon, "progressor", "", lab[lab["label"] == 1]))
            rows.append(_flow_row(horizon, "non_progressor", "", lab[lab["label"] == 0]))
        return pd.DataFrame(rows, columns=["horizon_months", "stage", "reason_code", "n_knees", "n_participants"])

    def summary_table(self) -> pd.DataFrame:
        """Knee counts: rows = included / progressors / non-progressors / each exclusion reason, columns = horizons."""
        flow = self.flow()
        flow = flow.assign(row=flow["stage"].where(flow["reason_code"].eq(""), "excluded: " + flow["reason_code"]))
        table = flow.pivot_table(index="row", columns="horizon_months", values="n_knees", aggfunc="sum", sort=False)
        unused = table.index.str.startswith("excluded: ") & table.sum(axis=1).eq(0)
        table = table[~unused].astype(int)
        table.columns = [f"{h} m" for h in table.columns]
        table.index.name = None
        return table

    def summary_text(self) -> str:
        """The summary table as plain text (what ``oa-kit labels`` and ``make demo`` print)."""
        return "Knees per horizon and exclusion reason:\n" + self.summary_table().to_string()

    def figure(self) -> go.Figure:
        """Plotly bar chart of included knees and exclusions per horizon (stacked)."""

        flow = self.flow()
        fig = go.Figure()
        for stage, code in [("progressor", ""), ("non_progressor", "")] + [("excluded", c) for c in REASON_CODES]:
            part = flow[(flow["stage"] == stage) & (flow["reason_code"] == code)]
            fig.add_bar(x=part["horizon_months"], y=part["n_knees"], name=code or stage)
        fig.update_layout(
            barmode="stack",
            xaxis_title="horizon (months)",
            yaxis_title="knees",
            title=f"Cohort flow ({self.definition})",
        )
        return fig


def _flow_row(horizon: int, stage: str, code: str, part: pd.DataFrame) -> tuple:
    """One flow row: counts of knees and of distinct participants."""
    return horizon, stage, code, len(part), part["participant_id"].nunique() if len(part) else 0


@dataclasses.dataclass
class _Knee:
    """Everything the rules need about one knee, in plain Python for speed."""

    participant_id: str
    side: str
    visits: dict[int, tuple[float, str]]
    replacement_month: float
    death_month: float


def build_progression_labels(
    readings: pd.DataFrame,
    horizons_months: Iterable[int] = OAI_HORIZONS_MONTHS,
    definition: str = "tiulpin2019",
    deaths: pd.DataFrame | None = None,
    replacements: pd.DataFrame | None = None,
    replacement_as_progression: bool | None = None,
) -> ProgressionLabels:
    """Build binary progression labels per horizon with an auditable exclusion table.

    Parameters
    ----------
    readings : pandas.DataFrame
        Tidy long readings (``oa_kit.cohort.tables``): participant_id, side, visit_month, kl, kl_status.
    horizons_months : iterable of int
        Horizons; each must be a visit month present in ``readings`` (OAI 12/24/36/48/72/96, MOST 15/30/60/84).
    definition : {"tiulpin2019", "panfilov2025"}
        Label definition (see module docstring).
    deaths : pandas.DataFrame, optional
        participant_id, death_month (months since baseline; death counts before horizon H when death_month < H).
    replacements : pandas.DataFrame, optional
        participant_id, side, replacement_month (recorded knee replacements; ``.P`` readings count too).
    replacement_as_progression : bool, optional
        Count a recorded replacement as progression; default True for tiulpin2019, False for panfilov2025.

    Returns
    -------
    ProgressionLabels
        ``.labels``, ``.exclusions`` and ``.flow()``.

    Examples
    --------
    >>> r = pd.DataFrame({"participant_id": ["1", "1"], "side": ["R", "R"], "visit_month": [0, 12],
    ...                   "kl": [1.0, 2.0], "kl_status": ["ok", "ok"]})
    >>> build_progression_labels(r, [12]).labels["label"].tolist()
    [1]
    """
    if definition not in DEFINITIONS:
        raise OAKitError(f"definition: {definition!r}; expected one of {', '.join(DEFINITIONS)}")
    horizons = _check_horizons(readings, horizons_months)
    if replacement_as_progression is None:
        replacement_as_progression = definition == "tiulpin2019"
    knees = _collect_knees(readings, deaths, replacements)
    labels, exclusions = [], []
    for knee in knees:
        event_month, censor_month = _time_to_event(knee, definition, replacement_as_progression)
        for horizon in horizons:
            outcome = _label_knee(knee, horizon, definition, replacement_as_progression)
            base = knee.visits.get(0, (np.nan, "missing"))[0]
            if isinstance(outcome, str):
                exclusions.append((knee.participant_id, knee.side, horizon, outcome, REASON_CODES[outcome][1], base))
            else:
                event = int(not np.isnan(event_month))
                labels.append(
                    (
                        knee.participant_id,
                        knee.side,
                        horizon,
                        outcome,
                        base,
                        event_month,
                        event_month if event else censor_month,
                        event,
                    )
                )
    return ProgressionLabels(
        labels=_frame(labels, LABEL_COLUMNS, {"label": "int64", "event": "int64", "horizon_months": "int64"}),
        exclusions=_frame(exclusions, EXCLUSION_COLUMNS, {"horizon_months": "int64"}),
        definition=definition,
        horizons_months=horizons,
    )


def _frame(rows: list[tuple], columns: tuple[str, ...], dtypes: dict[str, str]) -> pd.DataFrame:
    """Rows → DataFrame with fixed columns and integer dtypes (also when empty)."""
    frame = pd.DataFrame(rows, columns=list(columns))
    for column, dtype in dtypes.items():
        frame[column] = frame[column].astype(dtype)
    for column in ("participant_id", "side"):
        frame[column] = frame[column].astype(str)
    return frame


def _check_horizons(readings: pd.DataFrame, horizons_months: Iterable[int]) -> tuple[int, ...]:
    """Validate the readings table and return the horizons as sorted unique ints."""
    for column in READING_COLUMNS:
        if column not in readings.columns:
            raise OAKitError(f"readings: missing column {column}; expected {', '.join(READING_COLUMNS)}")
    bad = ~readings["kl_status"].isin(KL_STATUSES)
    if bad.any():
        raise OAKitError(
            f"readings: kl_status {readings['kl_status'][bad].iloc[0]!r}; expected one of {', '.join(KL_STATUSES)}"
        )
    dup = readings.duplicated(["participant_id", "side", "visit_month"])
    if dup.any():
        row = readings[dup].iloc[0]
        raise OAKitError(
            f"readings: knee {row['participant_id']}/{row['side']} has two rows at month "
            f"{row['visit_month']}; expected one row per (participant_id, side, visit_month)"
        )
    horizons = tuple(sorted({int(h) for h in horizons_months}))
    months = set(pd.to_numeric(readings["visit_month"]).astype(int))
    for horizon in horizons:
        if horizon <= 0 or horizon not in months:
            raise OAKitError(f"horizons_months: {horizon} has no readings; expected visit months from {sorted(months)}")
    return horizons


def _collect_knees(
    readings: pd.DataFrame, deaths: pd.DataFrame | None, replacements: pd.DataFrame | None
) -> list[_Knee]:
    """Group readings per knee and attach replacement and death months."""
    rep = _replacement_months(replacements)
    death = _death_months(deaths)
    knees = []
    ordered = readings.sort_values(["participant_id", "side", "visit_month"], kind="stable")
    columns = [ordered[c].tolist() for c in ("participant_id", "side", "visit_month", "kl", "kl_status")]
    current: _Knee | None = None
    for pid, side, month, kl, status in zip(*columns):
        pid, side = str(pid), str(side)
        if current is None or (current.participant_id, current.side) != (pid, side):
            current = _Knee(pid, side, {}, rep.get((pid, side), np.inf), death.get(pid, np.inf))
            knees.append(current)
        current.visits[int(month)] = (float(kl) if kl is not None and not pd.isna(kl) else np.nan, str(status))
    for knee in knees:
        recorded = [m for m, (_, s) in knee.visits.items() if s == "replacement"]
        if recorded:
            knee.replacement_month = min(knee.replacement_month, min(recorded))
    return knees


def _replacement_months(replacements: pd.DataFrame | None) -> dict[tuple[str, str], float]:
    """(participant_id, side) → earliest recorded replacement month."""
    if replacements is None or replacements.empty:
        return {}
    for column in ("participant_id", "side", "replacement_month"):
        if column not in replacements.columns:
            raise OAKitError(f"replacements: missing column {column}; expected participant_id, side, replacement_month")
    months = (
        replacements.assign(participant_id=replacements["participant_id"].astype(str))
        .groupby(["participant_id", "side"])["replacement_month"]
        .min()
    )
    return {key: float(value) for key, value in months.items() if pd.notna(value)}


def _death_months(deaths: pd.DataFrame | None) -> dict[str, float]:
    """participant_id → death month."""
    if deaths is None or deaths.empty:
        return {}
    for column in ("participant_id", "death_month"):
        if column not in deaths.columns:
            raise OAKitError(f"deaths: missing column {column}; expected participant_id, death_month")
    months = (
        deaths.assign(participant_id=deaths["participant_id"].astype(str))
        .groupby("participant_id")["death_month"]
        .min()
    )
    return {key: float(value) for key, value in months.items() if pd.notna(value)}


def _grade(kl: float, definition: str) -> float:
    """KL on the definition's scale: panfilov2025 merges 0 and 1."""
    return max(kl, 1.0) if definition == "panfilov2025" else kl


def _increases(base: float, kl: float, definition: str) -> bool:
    """Whether a follow-up KL counts as progression from ``base`` (tiulpin2019 ignores landing on KL 1)."""
    if definition == "tiulpin2019":
        return kl > base and kl != 1.0
    return _grade(kl, definition) > _grade(base, definition)


def _baseline_exclusion(knee: _Knee) -> str | None:
    """Reason a knee cannot enter any horizon, from its baseline reading (None when it can)."""
    kl, status = knee.visits.get(0, (np.nan, "missing"))
    if status == "replacement" or knee.replacement_month <= 0:
        return "baseline_replacement"
    if status in ("missing", "not_expected"):
        return "not_present_at_baseline"
    if status == "technical":
        return "technical_read"
    if kl >= 4:
        return "baseline_kl4"
    return None


def _label_knee(knee: _Knee, horizon: int, definition: str, replacement_counts: bool) -> int | str:
    """Label 0/1 for one knee at one horizon, or the reason code that excludes it."""
    reason = _baseline_exclusion(knee)
    if reason:
        return reason
    base = knee.visits[0][0]
    window = [(m, kl) for m, (kl, s) in sorted(knee.visits.items()) if 0 < m <= horizon and s == "ok"]
    if definition == "panfilov2025" and any(_grade(kl, definition) < _grade(base, definition) for _, kl in window):
        return "decreasing_kl"
    rising = [m for m, kl in window if _increases(base, kl, definition)]
    first_rise = rising[0] if rising else np.inf
    if first_rise <= horizon and first_rise < knee.replacement_month:
        return 1
    if knee.replacement_month <= horizon:
        return 1 if replacement_counts else "replacement_in_window"
    kl_h, status_h = knee.visits.get(horizon, (np.nan, "missing"))
    if status_h == "ok":
        return 0
    if knee.death_month < horizon:
        return "death_before_horizon"
    if status_h == "technical":
        return "technical_read"
    if definition == "panfilov2025" and not window:
        return "insufficient_followups"
    return "missing_follow_up"


def _time_to_event(knee: _Knee, definition: str, replacement_counts: bool) -> tuple[float, float]:
    """(first progression month over all follow-up or NaN, censoring month = last valid reading before replacement)."""
    if _baseline_exclusion(knee):
        return np.nan, np.nan
    base = knee.visits[0][0]
    valid = [
        (m, kl) for m, (kl, s) in sorted(knee.visits.items()) if m > 0 and s == "ok" and m < knee.replacement_month
    ]
    rises = [m for m, kl in valid if _increases(base, kl, definition)]
    event = float(rises[0]) if rises else np.nan
    if replacement_counts and np.isfinite(knee.replacement_month) and not (event <= knee.replacement_month):
        event = float(knee.replacement_month)
    censor = float(max([0] + [m for m, _ in valid]))
    if not replacement_counts and np.isfinite(knee.replacement_month):
        censor = min(censor, float(knee.replacement_month))
    return event, censor
