"""Subgroup metrics (sex, age band, BMI band, baseline KL, site) with participant-level bootstrap CIs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from oa_kit.metrics import bootstrap_metrics

#: Age bands (years) and BMI bands (kg/m²): (label, low inclusive, high exclusive).
AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<55", 0, 55),
    ("55-64", 55, 65),
    ("65-74", 65, 75),
    ("75+", 75, np.inf),
)
BMI_BANDS: tuple[tuple[str, float, float], ...] = (("<25", 0, 25), ("25-29.9", 25, 30), ("30+", 30, np.inf))
_SOURCES = {
    "sex": ("sex",),
    "age_band": ("age", "age_years"),
    "bmi_band": ("bmi", "bmi_kg_m2"),
    "baseline_kl": ("kl", "baseline_kl", "kl_grade"),
    "site": ("site",),
}


def _band(values: pd.Series, bands: Sequence[tuple[str, float, float]]) -> pd.Series:
    """Label each value with its band; NaN stays missing."""
    out = pd.Series(pd.NA, index=values.index, dtype="string")
    for label, lo, hi in bands:
        out[(values >= lo) & (values < hi)] = label
    return out


def subgroup_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Subgroup label per knee: sex, age_band, bmi_band, baseline_kl, site (those whose source column exists)."""
    out = {}
    for name, candidates in _SOURCES.items():
        source = next((c for c in candidates if c in table.columns), None)
        if source is None:
            continue
        values = table[source]
        if name == "age_band":
            out[name] = _band(pd.to_numeric(values), AGE_BANDS)
        elif name == "bmi_band":
            out[name] = _band(pd.to_numeric(values), BMI_BANDS)
        elif name == "baseline_kl":
            out[name] = pd.to_numeric(values).astype("Int64").astype("string")
        else:
            out[name] = values.astype("string")
    return pd.DataFrame(out, index=table.index)


def subgroup_metrics(
    y: Sequence[int],
    p: Sequence[float],
    groups: Sequence,
    table: pd.DataFrame,
    n_resamples: int = 1000,
    seed: int = 0,
    min_knees: int = 10,
) -> pd.DataFrame:
    """AUC/AP/Brier/ECE with CIs per subgroup level (``subgroup`` column like ``sex=F``).

    Levels with fewer than ``min_knees`` knees are skipped; single-class levels report NaN AUC/AP with a note.
    """
    y, p, groups = np.asarray(y), np.asarray(p), np.asarray(groups)
    labels = subgroup_columns(table.reset_index(drop=True))
    rows = [bootstrap_metrics(y, p, groups, n_resamples, seed, subgroup="all")]
    for column in labels.columns:
        present = set(labels[column].dropna().unique())
        order = {"age_band": [b[0] for b in AGE_BANDS], "bmi_band": [b[0] for b in BMI_BANDS]}.get(column)
        for level in [lv for lv in order if lv in present] if order else sorted(present):
            mask = (labels[column] == level).fillna(False).to_numpy()
            if mask.sum() < min_knees:
                continue
            rows.append(
                bootstrap_metrics(y[mask], p[mask], groups[mask], n_resamples, seed, subgroup=f"{column}={level}")
            )
    return pd.concat(rows, ignore_index=True)
