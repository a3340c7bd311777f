"""Plain-language explanations of one knee's risk from its SHAP values (for the dashboard and reports).

Example: "BMI 34 raised the risk; no prior injury lowered it; the MRI image features raised it."
One-hot and embedding features are merged first (``site_*`` → study site, ``sex_*`` → sex, ``kl_emb_pc*`` →
radiograph image features, ``mri_emb_pc*`` → MRI image features, ``kl_p*`` → KL-CNN grade probabilities).
"""

from __future__ import annotations

import math
import re

import pandas as pd

#: Display name and value format of known numeric features.
NUMERIC_LABELS: dict[str, tuple[str, str]] = {
    "age": ("age", "{:.0f}"),
    "age_years": ("age", "{:.0f}"),
    "bmi": ("BMI", "{:.0f}"),
    "bmi_kg_m2": ("BMI", "{:.0f}"),
    "kl": ("KL grade", "{:.0f}"),
    "baseline_kl": ("KL grade", "{:.0f}"),
    "womac_pain": ("WOMAC pain", "{:.0f}"),
    "womac_stiffness": ("WOMAC stiffness", "{:.0f}"),
    "womac_function": ("WOMAC function", "{:.0f}"),
    "womac_total": ("WOMAC total", "{:.0f}"),
    "jsw_medial_mm": ("medial joint space {} mm", "{:.1f}"),
    "jsw_lateral_mm": ("lateral joint space {} mm", "{:.1f}"),
}
#: Wording of binary features: (when 1, when 0).
BINARY_LABELS: dict[str, tuple[str, str]] = {
    "injury": ("prior knee injury", "no prior injury"),
    "surgery": ("prior knee surgery", "no prior knee surgery"),
}
_GROUPS = (
    (re.compile(r"^kl_emb_pc\d+$"), "the radiograph image features"),
    (re.compile(r"^mri_emb_pc\d+$"), "the MRI image features"),
    (re.compile(r"^kl_p\d$"), "the KL-CNN grade probabilities"),
)
FAMILY_LABELS = {"clinical": "clinical factors", "radiograph": "radiograph findings", "mri": "MRI cartilage"}


def _group_name(feature: str) -> str | None:
    """Phrase for features that are read as one group (embeddings, KL-CNN probabilities, site, sex)."""
    for pattern, phrase in _GROUPS:
        if pattern.match(feature):
            return phrase
    if feature.startswith("site_"):
        return "site"
    if feature.startswith("sex_"):
        return "sex"
    return None


def describe_feature(feature: str, value: float) -> str:
    """Short phrase for a feature and its value, e.g. ``BMI 34``, ``no prior injury``, ``thickness_mm_x 1.9``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"missing {feature.replace('_', ' ')}"
    if feature in BINARY_LABELS:
        return BINARY_LABELS[feature][0 if value >= 0.5 else 1]
    if feature in NUMERIC_LABELS:
        label, fmt = NUMERIC_LABELS[feature]
        text = fmt.format(value)
        return label.format(text) if "{}" in label else f"{label} {text}"
    derived = _describe_derived(feature, value)
    if derived:
        return derived
    if "thickness" in feature:
        region = feature.split("thickness_mm_")[-1].replace("_", " ")
        return f"{region} cartilage thickness {value:.1f} mm"
    match = re.search(r"osteophyte_(mm|area_mm2)_([FT])([ML])$", feature, flags=re.IGNORECASE)
    if match:
        bone = {"F": "femoral", "T": "tibial"}[match.group(2).upper()]
        side = {"M": "medial", "L": "lateral"}[match.group(3).upper()]
        return (
            f"{bone} {side} osteophyte {value:.1f} mm"
            if match.group(1) == "mm"
            else f"{bone} {side} osteophyte area {value:.1f} mm²"
        )
    match = re.match(r"jsw_(medial|lateral)(?:_x(\d+))?_mm$", feature)
    if match:
        where = f" at x={int(match.group(2)) / 1000:.3f}" if match.group(2) else ""
        return f"{match.group(1)} joint space{where} {value:.1f} mm"
    if feature.endswith("_mm"):
        return f"{feature[:-3].replace('_', ' ')} {value:.1f} mm"
    return f"{feature.replace('_', ' ')} {value:.3g}"


def _describe_derived(feature: str, value: float) -> str | None:
    """Phrase for the derived summaries of ``oa_kit.features.assemble.DerivedFeatures``, or None for other features."""
    if feature == "osteophyte_resid_z":
        return f"osteophytes {'large' if value >= 0 else 'small'} for their grade ({value:+.1f} SD)"
    match = re.fullmatch(r"jsw_(medial|lateral|min)_resid_z", feature)
    if match:
        where = "narrowest" if match.group(1) == "min" else match.group(1)
        return f"{where} joint space {'wider' if value >= 0 else 'narrower'} than expected for sex and JSN ({value:+.1f} SD)"
    match = re.fullmatch(r"thickness_loss_(medial|lateral|max)", feature)
    if match:
        where = "weight-bearing" if match.group(1) == "max" else f"{match.group(1)} weight-bearing"
        return f"{where} cartilage {abs(value):.0%} {'thinner' if value >= 0 else 'thicker'} than typical for sex"
    return None


def _merged_contributions(shap_row: pd.Series, value_row: pd.Series) -> list[tuple[str, float]]:
    """(phrase, contribution) after merging grouped features."""
    merged: dict[str, float] = {}
    phrases: dict[str, str] = {}
    for feature, contribution in shap_row.items():
        group = _group_name(feature)
        if group == "site":
            active = [f for f in shap_row.index if f.startswith("site_") and value_row.get(f, 0) >= 0.5]
            phrase = f"study site {active[0][5:]}" if active else "study site"
        elif group == "sex":
            level = feature[4:]
            phrase = f"{'female' if level.upper().startswith('F') == (value_row[feature] >= 0.5) else 'male'} sex"
        else:
            phrase = group or describe_feature(feature, float(value_row[feature]))
        key = group or feature
        merged[key] = merged.get(key, 0.0) + float(contribution)
        phrases[key] = phrase
    return [(phrases[k], v) for k, v in merged.items()]


def explain_text(shap_row: pd.Series, value_row: pd.Series, top_k: int = 3, min_abs: float = 0.05) -> str:
    """One sentence naming the ``top_k`` largest contributions and their direction.

    Parameters
    ----------
    shap_row : Series
        SHAP values (log-odds) of one knee, indexed by feature.
    value_row : Series
        The same knee's feature values.
    top_k : int
        Number of contributions named.
    min_abs : float
        Contributions smaller than this (log-odds) are not named.

    Returns
    -------
    str
        e.g. "BMI 34 raised the risk; no prior injury lowered it."
    """
    items = sorted(_merged_contributions(shap_row, value_row), key=lambda kv: -abs(kv[1]))
    items = [(p, v) for p, v in items if abs(v) >= min_abs][:top_k]
    if not items:
        return "No single factor changed the risk much from the average."
    parts = []
    for i, (phrase, value) in enumerate(items):
        verb = "raised" if value > 0 else "lowered"
        parts.append(f"{phrase} {verb} the risk" if i == 0 else f"{phrase} {verb} it")
    sentence = "; ".join(parts)
    return sentence[0].upper() + sentence[1:] + "."


def family_text(grouped_row: pd.Series) -> str:
    """Per-family contributions as text, e.g. "radiograph findings +0.80, MRI cartilage +0.50, clinical factors +0.30"."""
    items = [(FAMILY_LABELS[f], float(grouped_row[f])) for f in FAMILY_LABELS if f in grouped_row.index]
    items.sort(key=lambda kv: -abs(kv[1]))
    return ", ".join(f"{name} {value:+.2f}" for name, value in items) + " (log-odds)"
