"""The latent disease model of the synthetic OAI-like cohort: participants, knees, KL paths, readings, outcomes.

Everything here is tables in memory (no files); ``oa_kit.synth.tables`` turns them into OAI ASCII files.
All numbers are illustrative, not estimates from real patients.

Generating model (per participant *i*, knee *k*; *Z* are independent standard normals)
-----------------------------------------------------------------------------------
Participant: site ~ Cat(A–E), female ~ Bernoulli(0.58), age ~ N(61, 9) truncated to [45, 79] and rounded,
BMI ~ N(28.5, 4.8) truncated to [18, 48] (0.1 kg/m²), race ~ Cat(white 0.80, black 0.16, asian 0.01, other 0.03),
a shared knee-disease frailty ``u_i ~ N(0, 1)`` (Latin-hypercube stratified) and a pain sensitivity ``v_i ~ N(0, 1)``.

Knee: injury ~ Bernoulli(0.20), surgery ~ Bernoulli(0.05 + 0.30·injury), dominant compartment medial w.p. 0.75.

Latent severity (drives the baseline KL grade; correlated within participant through ``u_i``)::

    s = 0.045·(age − 61) + 0.05·(BMI − 28.5) + 0.25·female + 0.50·injury + 0.30·surgery + 0.80·u_i + 0.60·Z_s
    KL0 = #{c ∈ SEVERITY_CUTS : s > c}                       (cuts give ≈ 38/18/26/14/4 % for KL 0–4;
                                                               the tiny preset uses severity ranks: 20 % each)

WOMAC (observed; pain 0–20, stiffness 0–8, function 0–68)::

    pain = clip(round(1 + 1.5·KL0 + 0.8·female + 0.08·(BMI − 28.5) + 0.6·injury + 1.2·v_i + 2.5·Z_p), 0, 20)
    stiffness = clip(round(0.35·pain + 0.8·Z), 0, 8);  function = clip(round(3.2·pain + 5·Z), 0, 68)

Image-only latents (independent of KL and of every clinical variable): cartilage thinning ``c``,
osteophyte size beyond grade ``o``, joint-space narrowing beyond grade ``j``, each N(0, 1); an unmeasured knee term ``e ~ N(0, 0.15²)``.

Progression rate (KL increments per year, a Poisson process with constant knee rate)::

    log λ = log λ0 + β_age·(age − 61)/10 + β_bmi·(BMI − 28.5)/5 + β_f·female + β_inj·injury + β_surg·surgery
            + β_pain·pain/5 + β_KL[KL0] + γ_c·c + γ_o·o + γ_j·j + e

Knee replacement (TKR) hazards per year: ``μ3 = μ3_0·exp(0.08·(pain − 8))`` while at KL3, ``μ4`` at KL4, 0 below KL3.
The KL path is capped at 4; a knee whose true baseline KL is 4 has its replacement at baseline with probability 0.10.

Progression event (Tiulpin 2019): KL above baseline ignoring increases that land on KL1, or TKR. Hence, with t in years,
the TRUE probability of the event by t is closed form:

    KL0 = 0:      P = 1 − exp(−λt)·(1 + λt)          (two increments needed: 0→1 is ignored)
    KL0 ∈ {1, 2}: P = 1 − exp(−λt)                    (no TKR below KL3)
    KL0 = 3:      P = 1 − exp(−(λ + μ3)·t)            (increment or TKR, whichever first)
    KL0 = 4 or replaced at baseline: not eligible (NaN)

Structure consistent with KL: OARSI JSN and osteophyte grades are drawn once per knee as uniform quantiles ``q``
and mapped through KL-specific cumulative tables (stochastically ordered, so grades never fall as KL rises).
Minimum JSW (mm) = sex-specific normal + N(0, 0.3²) − 1.3·JSN(compartment) − 0.5·j·[dominant compartment];
osteophyte length (mm) = min((0.5 + OSTEOPHYTE_BASE_MM[grade])·exp(0.35·o), 12);
regional cartilage thickness (mm) = normal(region)·sex factor·(1 − loss), with loss in the dominant compartment's
central femoral and tibial regions = 0.07·KL + 0.09·c (half of that anteriorly/posteriorly; 0.02·KL + 0.03·c elsewhere).

Observation: visits 0/12/24/36/48/72/96 months; death hazard 0.004·exp(0.08·(age − 61)) per year; permanent dropout
0.015 per year; sporadic missed visits 5 %; readings ``.P`` from the first visit after a TKR; ``.T`` (technical) 1.5 %;
``.A`` (not read at 72/96 months) 3 %; misreads ±1 grade 3 %; duplicate READPRJ 37/42 rows 6 % that disagree slightly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from oa_kit.horizons import OAI_HORIZONS_MONTHS
from oa_kit.io.labels import SUBREGIONS

#: OAI visit prefixes and months used by the synthetic cohort (KL readings at each).
VISITS: tuple[tuple[str, int], ...] = (
    ("V00", 0),
    ("V01", 12),
    ("V03", 24),
    ("V05", 36),
    ("V06", 48),
    ("V08", 72),
    ("V10", 96),
)
#: Horizons (months) at which each knee's true progression probability is stored.
#: The image-only latents (truth ``knees.parquet`` columns): cartilage thinning c, osteophyte size o, extra narrowing j.
IMAGE_LATENTS: tuple[str, ...] = ("image_cartilage_z", "image_osteophyte_z", "image_jsw_z")
#: Paths are simulated to this month; later increments and replacements are not recorded.
FOLLOW_UP_MONTHS = 120
SITES: tuple[str, ...] = ("A", "B", "C", "D", "E")
SIDES: tuple[str, ...] = ("R", "L")
#: Cut points on the latent severity giving the baseline KL grade.
SEVERITY_CUTS: tuple[float, ...] = (0.05, 0.55, 1.45, 2.35)
#: Osteophyte length (mm) for OARSI grades 0–3 before the image-only size factor.
OSTEOPHYTE_BASE_MM: tuple[float, ...] = (0.0, 1.5, 3.5, 6.5)
#: Normal cartilage thickness (mm) per subregion for a male knee.
NORMAL_THICKNESS_MM: dict[str, float] = {
    "femoral_medial_anterior": 2.0,
    "femoral_medial_central": 2.3,
    "femoral_medial_posterior": 2.0,
    "femoral_lateral_anterior": 2.0,
    "femoral_lateral_central": 2.2,
    "femoral_lateral_posterior": 2.0,
    "tibial_medial": 1.9,
    "tibial_lateral": 2.3,
    "patellar": 2.5,
}
# Cumulative probabilities of grades 0..3 given KL 0..4 (rows), stochastically ordered in KL.
_JSN_DOMINANT = np.array(
    [[1, 1, 1, 1], [0.85, 1, 1, 1], [0.25, 0.85, 1, 1], [0, 0.3, 0.85, 1], [0, 0, 0.25, 1]], dtype=float
)
_JSN_OTHER = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [0.9, 1, 1, 1], [0.7, 0.95, 1, 1], [0.5, 0.85, 1, 1]], dtype=float)
_OST_DOMINANT = np.array(
    [[0.97, 1, 1, 1], [0.45, 1, 1, 1], [0.1, 0.75, 1, 1], [0, 0.35, 0.85, 1], [0, 0.1, 0.5, 1]], dtype=float
)
_OST_OTHER = np.array(
    [[1, 1, 1, 1], [0.8, 1, 1, 1], [0.5, 0.95, 1, 1], [0.2, 0.75, 1, 1], [0.05, 0.4, 0.85, 1]], dtype=float
)
OSTEOPHYTE_SITES: tuple[str, ...] = ("FM", "FL", "TM", "TL")


@dataclass(frozen=True)
class DiseaseModel:
    """Coefficients of the latent disease model (log KL-increment rate per year; see the module docstring)."""

    log_rate0: float = float(np.log(0.025))
    age_per_decade: float = 0.25
    bmi_per_5: float = 0.20
    female: float = 0.25
    injury: float = 0.35
    surgery: float = 0.25
    pain_per_5: float = 0.15
    kl: tuple[float, ...] = (0.0, 0.35, 0.6, 0.7, 0.7)
    cartilage: float = 0.65
    osteophyte: float = 0.55
    jsw: float = 0.55
    unmeasured_sd: float = 0.15
    tkr_rate_kl3: float = 0.02
    tkr_rate_kl4: float = 0.06
    baseline_tkr_prob_kl4: float = 0.10
    death_rate: float = 0.004
    dropout_rate: float = 0.015
    missed_visit_prob: float = 0.05
    technical_prob: float = 0.015
    not_expected_prob: float = 0.03
    misread_prob: float = 0.03
    duplicate_read_prob: float = 0.06


@dataclass
class SimulatedCohort:
    """The in-memory synthetic cohort: truth tables and observed readings (no files).

    Attributes
    ----------
    participants : DataFrame, one row per participant (``ID``, site, sex, age, bmi, race, death_month, ...).
    knees : DataFrame, one row per knee (``ID``, side, clinical inputs, latents, rate, grades, JSW, thickness, p_progress_*).
    readings : DataFrame, one row per KL reading (``ID``, side, visit, visit_month, readprj, status, kl, grades).
    seed : int, the seed that produced it.
    """

    participants: pd.DataFrame
    knees: pd.DataFrame
    readings: pd.DataFrame
    seed: int
    model: DiseaseModel = dataclasses.field(default_factory=DiseaseModel)


def progression_probability(
    kl0: np.ndarray, rate_per_year: np.ndarray, tkr_rate_kl3: np.ndarray, months: float
) -> np.ndarray:
    """Closed-form true probability of the progression event by ``months`` (NaN where baseline KL is 4)."""
    t = months / 12.0
    lam = np.asarray(rate_per_year, dtype=float)
    kl0 = np.asarray(kl0)
    p = np.full(lam.shape, np.nan)
    p = np.where(kl0 == 0, 1.0 - np.exp(-lam * t) * (1.0 + lam * t), p)
    p = np.where((kl0 == 1) | (kl0 == 2), 1.0 - np.exp(-lam * t), p)
    p = np.where(kl0 == 3, 1.0 - np.exp(-(lam + np.asarray(tkr_rate_kl3)) * t), p)
    return p


def _truncnorm(rng: np.random.Generator, mean: float, sd: float, low: float, high: float, n: int) -> np.ndarray:
    """Draw ``n`` values from N(mean, sd²) truncated to [low, high]."""
    a, b = (low - mean) / sd, (high - mean) / sd
    return stats.truncnorm.rvs(a, b, loc=mean, scale=sd, size=n, random_state=rng)


def _stratified_normal(rng: np.random.Generator, n: int) -> np.ndarray:
    """Latin-hypercube standard normals: one draw per n-quantile stratum, shuffled (spreads small cohorts)."""
    u = (rng.permutation(n) + rng.random(n)) / n
    return stats.norm.ppf(u)


def simulate_participants(n: int, rng: np.random.Generator, model: DiseaseModel) -> pd.DataFrame:
    """Draw participant-level variables (demographics, frailty, death, dropout, enrolment day)."""
    ids = np.sort(rng.choice(999_999, size=n, replace=False) + 9_000_001).astype(str)
    female = rng.random(n) < 0.58
    age = np.round(_truncnorm(rng, 61, 9, 45, 79.49, n)).astype(int)
    bmi = np.round(_truncnorm(rng, 28.5, 4.8, 18, 48, n), 1)
    death_years = rng.exponential(1.0 / (model.death_rate * np.exp(0.08 * (age - 61))))
    dropout_years = rng.exponential(1.0 / model.dropout_rate, n)
    return pd.DataFrame(
        {
            "ID": ids,
            "site": np.array(SITES)[rng.choice(5, size=n, p=[0.20, 0.22, 0.20, 0.18, 0.20])],
            "sex": np.where(female, "F", "M"),
            "age": age,
            "bmi": bmi,
            "race": rng.choice([1, 2, 3, 0], size=n, p=[0.80, 0.16, 0.01, 0.03]),
            "frailty": _stratified_normal(rng, n),
            "pain_sensitivity": rng.standard_normal(n),
            "death_month": np.where(death_years * 12 <= 108, np.round(death_years * 12, 1), np.nan),
            "dropout_month": np.where(dropout_years * 12 <= 108, np.round(dropout_years * 12, 1), np.nan),
            "enrolment_day": rng.integers(0, 820, n),
        }
    )


def _grade(table: np.ndarray, kl: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Map quantiles ``q`` through the cumulative grade table row of each KL (monotone in KL for fixed q)."""
    cum = table[np.clip(kl, 0, 4)]
    return (q[:, None] >= cum).sum(axis=1).clip(0, 3)


def structure_grades(kl: np.ndarray, medial_dominant: np.ndarray, quantiles: np.ndarray) -> dict[str, np.ndarray]:
    """OARSI JSN (medial/lateral) and osteophyte grades (FM, FL, TM, TL) consistent with ``kl``.

    ``quantiles`` has shape (n, 6): JSN dominant, JSN other, osteophyte F-dominant, F-other, T-dominant, T-other.
    """
    kl = np.asarray(kl, dtype=int)
    dom = medial_dominant.astype(bool)
    jsn_dom = _grade(_JSN_DOMINANT, kl, quantiles[:, 0])
    jsn_oth = _grade(_JSN_OTHER, kl, quantiles[:, 1])
    f_dom, f_oth = _grade(_OST_DOMINANT, kl, quantiles[:, 2]), _grade(_OST_OTHER, kl, quantiles[:, 3])
    t_dom, t_oth = _grade(_OST_DOMINANT, kl, quantiles[:, 4]), _grade(_OST_OTHER, kl, quantiles[:, 5])
    return {
        "jsn_medial": np.where(dom, jsn_dom, jsn_oth),
        "jsn_lateral": np.where(dom, jsn_oth, jsn_dom),
        "os_FM": np.where(dom, f_dom, f_oth),
        "os_FL": np.where(dom, f_oth, f_dom),
        "os_TM": np.where(dom, t_dom, t_oth),
        "os_TL": np.where(dom, t_oth, t_dom),
    }


def _knee_frame(participants: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Two rows per participant (R then L) carrying the participant columns and knee-level clinical draws."""
    n = len(participants)
    knees = participants.loc[np.repeat(np.arange(n), 2)].reset_index(drop=True)
    knees.insert(1, "side", np.tile(SIDES, n))
    m = len(knees)
    knees["injury"] = (rng.random(m) < 0.20).astype(int)
    knees["surgery"] = (rng.random(m) < 0.05 + 0.30 * knees["injury"]).astype(int)
    knees["medial_dominant"] = rng.random(m) < 0.75
    return knees


def _baseline_state(knees: pd.DataFrame, rng: np.random.Generator, balanced_kl: bool = False) -> pd.DataFrame:
    """Latent severity, baseline KL and WOMAC scores (``balanced_kl``: KL from severity ranks, equal counts per grade)."""
    m = len(knees)
    female = (knees["sex"] == "F").to_numpy(float)
    sev = (
        0.045 * (knees["age"] - 61)
        + 0.05 * (knees["bmi"] - 28.5)
        + 0.25 * female
        + 0.5 * knees["injury"]
        + 0.3 * knees["surgery"]
        + 0.8 * knees["frailty"]
        + 0.6 * rng.standard_normal(m)
    ).to_numpy()
    kl0 = np.searchsorted(np.array(SEVERITY_CUTS), sev, side="left")
    if balanced_kl:
        kl0 = (np.argsort(np.argsort(sev, kind="stable"), kind="stable") * 5) // m
    pain = np.clip(
        np.round(
            1
            + 1.5 * kl0
            + 0.8 * female
            + 0.08 * (knees["bmi"] - 28.5)
            + 0.6 * knees["injury"]
            + 1.2 * knees["pain_sensitivity"]
            + 2.5 * rng.standard_normal(m)
        ),
        0,
        20,
    ).astype(int)
    stiff = np.clip(np.round(0.35 * pain + 0.8 * rng.standard_normal(m)), 0, 8).astype(int)
    func = np.clip(np.round(3.2 * pain + 5.0 * rng.standard_normal(m)), 0, 68).astype(int)
    knees["latent_severity"] = sev
    knees["kl_baseline_true"] = kl0
    knees["womac_pain"], knees["womac_stiffness"], knees["womac_function"] = pain, stiff, func
    knees["womac_total"] = pain + stiff + func
    return knees


def _rates(knees: pd.DataFrame, rng: np.random.Generator, model: DiseaseModel) -> pd.DataFrame:
    """Image-only latents, the KL-increment rate λ and TKR hazards (per year)."""
    m = len(knees)
    for name in IMAGE_LATENTS:
        knees[name] = rng.standard_normal(m)
    knees["unmeasured_log_rate"] = model.unmeasured_sd * rng.standard_normal(m)
    female = (knees["sex"] == "F").to_numpy(float)
    clinical = (
        model.age_per_decade * (knees["age"] - 61) / 10
        + model.bmi_per_5 * (knees["bmi"] - 28.5) / 5
        + model.female * female
        + model.injury * knees["injury"]
        + model.surgery * knees["surgery"]
        + model.pain_per_5 * knees["womac_pain"] / 5
        + np.asarray(model.kl)[knees["kl_baseline_true"]]
    )
    image = (
        model.cartilage * knees["image_cartilage_z"]
        + model.osteophyte * knees["image_osteophyte_z"]
        + model.jsw * knees["image_jsw_z"]
    )
    knees["log_rate_clinical"] = clinical.to_numpy()
    knees["log_rate_image"] = image.to_numpy()
    knees["progression_rate_per_year"] = np.exp(model.log_rate0 + clinical + image + knees["unmeasured_log_rate"])
    knees["tkr_rate_kl3_per_year"] = model.tkr_rate_kl3 * np.exp(0.08 * (knees["womac_pain"] - 8))
    knees["tkr_rate_kl4_per_year"] = model.tkr_rate_kl4
    return knees


def _kl_paths(knees: pd.DataFrame, rng: np.random.Generator, model: DiseaseModel) -> pd.DataFrame:
    """Simulate each knee's KL increment times and TKR month exactly (competing exponentials)."""
    m = len(knees)
    lam = knees["progression_rate_per_year"].to_numpy() / 12.0
    mu3 = knees["tkr_rate_kl3_per_year"].to_numpy() / 12.0
    mu4 = knees["tkr_rate_kl4_per_year"].to_numpy() / 12.0
    kl = knees["kl_baseline_true"].to_numpy().copy()
    t = np.zeros(m)
    tkr = np.full(m, np.nan)
    tkr[(kl == 4) & (rng.random(m) < model.baseline_tkr_prob_kl4)] = 0.0
    increments = np.full((m, 4), np.nan)
    for _ in range(6):
        active = np.isnan(tkr) & (t <= FOLLOW_UP_MONTHS)
        total = np.where(kl < 3, lam, np.where(kl == 3, lam + mu3, mu4))
        wait = rng.exponential(1.0, m) / total
        is_tkr = (kl == 4) | ((kl == 3) & (rng.random(m) < mu3 / (lam + mu3)))
        t = np.where(active, t + wait, t)
        tkr = np.where(active & is_tkr, t, tkr)
        grow = active & ~is_tkr
        idx = kl - knees["kl_baseline_true"].to_numpy()
        rows = np.flatnonzero(grow & (idx < 4))
        increments[rows, idx[rows]] = t[rows]
        kl = np.where(grow, np.minimum(kl + 1, 4), kl)
    tkr[tkr > FOLLOW_UP_MONTHS] = np.nan
    increments[increments > FOLLOW_UP_MONTHS] = np.nan
    knees["tkr_month"] = np.round(tkr, 2)
    for i in range(4):
        knees[f"kl_increment_{i + 1}_month"] = increments[:, i]
    kl0 = knees["kl_baseline_true"].to_numpy()
    first, second = increments[:, 0], increments[:, 1]
    event = np.where(kl0 == 0, second, np.fmin(first, tkr))
    knees["eligible"] = (kl0 <= 3) & ~(tkr == 0)
    knees["event_month_true"] = np.where(knees["eligible"], event, np.nan)
    return knees


def true_kl_at(knees: pd.DataFrame, month: float) -> np.ndarray:
    """True KL grade of every knee at ``month`` (baseline KL plus increments before it, capped at 4)."""
    inc = knees[[f"kl_increment_{i}_month" for i in range(1, 5)]].to_numpy()
    return np.minimum(knees["kl_baseline_true"].to_numpy() + (inc <= month).sum(axis=1), 4)


def _structure(knees: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Baseline OARSI grades, JSW (mm), osteophyte lengths (mm), sclerosis, deformity and cartilage targets."""
    m = len(knees)
    q = rng.random((m, 6))
    knees[[f"grade_quantile_{i}" for i in range(6)]] = q
    kl0 = knees["kl_baseline_true"].to_numpy()
    dom = knees["medial_dominant"].to_numpy()
    grades = structure_grades(kl0, dom, q)
    for key, val in grades.items():
        knees[key] = val
    female = (knees["sex"] == "F").to_numpy()
    j = knees["image_jsw_z"].to_numpy()
    normal_med = np.where(female, 4.6, 5.3) + 0.3 * rng.standard_normal(m)
    normal_lat = np.where(female, 6.0, 6.7) + 0.3 * rng.standard_normal(m)
    knees["jsw_medial_mm"] = np.clip(normal_med - 1.3 * grades["jsn_medial"] - 0.5 * j * dom, 0.0, None).round(2)
    knees["jsw_lateral_mm"] = np.clip(normal_lat - 1.3 * grades["jsn_lateral"] - 0.5 * j * ~dom, 0.0, None).round(2)
    size = np.exp(0.35 * knees["image_osteophyte_z"].to_numpy())
    for site in OSTEOPHYTE_SITES:
        knees[f"osteophyte_mm_{site}"] = np.minimum(
            (0.5 + np.asarray(OSTEOPHYTE_BASE_MM)[grades[f"os_{site}"]]) * size, 12.0
        ).round(2)
    jsn_dom = np.where(dom, grades["jsn_medial"], grades["jsn_lateral"])
    knees["sclerosis"] = np.clip(0.1 * kl0 + 0.05 * jsn_dom + 0.05 * rng.standard_normal(m), 0, 1).round(3)
    sign = np.where(dom, 1.0, -1.0)
    knees["varus_deg"] = (sign * (0.6 * jsn_dom + 5.0 * (kl0 == 4)) + 1.5 * rng.standard_normal(m)).round(2)
    return _thickness_targets(knees, rng)


def _thickness_targets(knees: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Target mean cartilage thickness (mm) per subregion with KL- and latent-driven regional thinning."""
    m = len(knees)
    kl0 = knees["kl_baseline_true"].to_numpy()
    c = knees["image_cartilage_z"].to_numpy()
    dom = knees["medial_dominant"].to_numpy()
    scale = np.where(knees["sex"] == "F", 0.92, 1.0) * (1 + 0.05 * rng.standard_normal(m))
    main_loss = 0.07 * kl0 + 0.09 * c
    minor_loss = 0.02 * kl0 + 0.03 * c
    for region in SUBREGIONS:
        if region == "patellar":
            loss = minor_loss
        else:
            in_medial = "medial" in region
            in_dom = np.where(dom, in_medial, not in_medial)
            weight = 1.0 if region.endswith("central") or region.startswith("tibial") else 0.5
            loss = np.where(in_dom, weight * main_loss, minor_loss)
        knees[f"thickness_mm_{region}"] = (
            NORMAL_THICKNESS_MM[region] * scale * (1 - np.clip(loss, -0.15, 0.85))
        ).round(3)
    return knees


def simulate_knees(
    participants: pd.DataFrame, rng: np.random.Generator, model: DiseaseModel, balanced_kl: bool = False
) -> pd.DataFrame:
    """Knee-level truth: clinical inputs, latents, rates, KL paths, structure and true probabilities."""
    knees = _knee_frame(participants, rng)
    knees = _baseline_state(knees, rng, balanced_kl)
    knees = _rates(knees, rng, model)
    knees = _kl_paths(knees, rng, model)
    knees = _structure(knees, rng)
    for months in VISITS:
        knees[f"kl_true_{months[0]}"] = true_kl_at(knees, months[1])
    for h in OAI_HORIZONS_MONTHS:
        knees[f"p_progress_{h}"] = np.where(
            knees["eligible"],
            progression_probability(
                knees["kl_baseline_true"], knees["progression_rate_per_year"], knees["tkr_rate_kl3_per_year"], h
            ),
            np.nan,
        )
    return knees


def _attendance(participants: pd.DataFrame, rng: np.random.Generator, model: DiseaseModel) -> np.ndarray:
    """Boolean (participants × visits): visit attended (alive, not dropped out, not sporadically missed)."""
    months = np.array([m for _, m in VISITS], dtype=float)
    gone = np.fmin(participants["death_month"].to_numpy(), participants["dropout_month"].to_numpy())
    present = ~(months[None, :] >= gone[:, None])
    missed = rng.random(present.shape) < model.missed_visit_prob
    missed[:, 0] = False
    return present & ~missed


def simulate_readings(
    participants: pd.DataFrame, knees: pd.DataFrame, rng: np.random.Generator, model: DiseaseModel
) -> pd.DataFrame:
    """Observed KL/OARSI readings per attended knee-visit with special codes, misreads and duplicate READPRJ rows."""
    attend = np.repeat(_attendance(participants, rng, model), 2, axis=0)
    frames = []
    q = knees[[f"grade_quantile_{i}" for i in range(6)]].to_numpy()
    dom = knees["medial_dominant"].to_numpy()
    for v, (visit, month) in enumerate(VISITS):
        m = len(knees)
        true_kl = knees[f"kl_true_{visit}"].to_numpy()
        misread = (rng.random(m) < model.misread_prob) * rng.choice([-1, 1], m)
        kl = np.clip(true_kl + misread, 0, 4)
        tkr = knees["tkr_month"].to_numpy()
        status = np.full(m, "ok", dtype=object)
        status[rng.random(m) < model.technical_prob] = "T"
        if month >= 72:
            status[rng.random(m) < model.not_expected_prob] = "A"
        status[tkr <= month] = "P"
        frame = pd.DataFrame(
            {
                "ID": knees["ID"],
                "side": knees["side"],
                "visit": visit,
                "visit_month": month,
                "readprj": 15,
                "status": status,
                "kl": kl,
            }
        )
        for key, val in structure_grades(kl, dom, q).items():
            frame[key] = val.astype(float)
        frames.append(frame[attend[:, v]])
    readings = pd.concat(frames, ignore_index=True)
    return _add_duplicate_reads(readings, rng, model)


def _add_duplicate_reads(readings: pd.DataFrame, rng: np.random.Generator, model: DiseaseModel) -> pd.DataFrame:
    """Second readings (READPRJ 37 or 42) for some knee-visits, disagreeing slightly with the primary one."""
    pick = (rng.random(len(readings)) < model.duplicate_read_prob) & (readings["status"] == "ok").to_numpy()
    dup = readings[pick].copy()
    n = len(dup)
    dup["readprj"] = rng.choice([37, 42], n)
    shift = (rng.random(n) < 0.4) * rng.choice([-1, 1], n)
    dup["kl"] = np.clip(dup["kl"] + shift, 0, 4)
    for col in ("jsn_medial", "jsn_lateral"):
        dup[col] = np.clip(dup[col] + (rng.random(n) < 0.3) * rng.choice([-0.5, 0.5], n), 0, 3)
    out = pd.concat([readings, dup], ignore_index=True)
    order = {v: i for i, (v, _) in enumerate(VISITS)}
    out["_v"] = out["visit"].map(order)
    out["_s"] = out["side"].map({"R": 1, "L": 2})
    return (
        out.sort_values(["_v", "ID", "_s", "readprj"], kind="stable").drop(columns=["_v", "_s"]).reset_index(drop=True)
    )


def baseline_reading(knees: pd.DataFrame, readings: pd.DataFrame) -> np.ndarray:
    """Observed baseline KL per knee (primary READPRJ 15 reading; NaN for ``.P``/``.T``), aligned with ``knees``."""
    base = readings[(readings["visit_month"] == 0) & (readings["readprj"] == 15) & (readings["status"] == "ok")]
    kl = base.set_index(["ID", "side"])["kl"].astype(float)
    return kl.reindex(pd.MultiIndex.from_frame(knees[["ID", "side"]])).to_numpy()


def simulate(
    n_participants: int, seed: int, model: DiseaseModel | None = None, balanced_kl: bool = False
) -> SimulatedCohort:
    """Simulate the whole cohort in memory (deterministic by ``seed``; independent streams per stage).

    ``balanced_kl`` replaces the severity cut points by severity ranks so every KL grade gets an equal share of
    knees (used by the ``tiny`` preset so that small test cohorts contain KL 0–4).
    """
    model = model or DiseaseModel()
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]
    participants = simulate_participants(n_participants, streams[0], model)
    knees = simulate_knees(participants, streams[1], model, balanced_kl)
    readings = simulate_readings(participants, knees, streams[2], model)
    knees["kl_baseline_read"] = baseline_reading(knees, readings)
    return SimulatedCohort(participants=participants, knees=knees, readings=readings, seed=seed, model=model)
