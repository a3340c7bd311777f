"""Helpers of the notebook series and its workshop: data preparation, per-mode settings, small cohort summaries, and
the checkers of the workshop's exercises (each says whether a learner's answer is right, and why).

The notebooks (``notebooks/src/*.py``) call the public API (:mod:`oa_kit.api`) and these helpers, one or two calls
per cell, so everything they compute is tested here. Numbers on the synthetic cohort are synthetic.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from oa_kit.api import Cohort, KneeGrades, ProgressionReport, fit_progression
from oa_kit.cohort.labels import REASON_CODES
from oa_kit.errors import OAKitError
from oa_kit.imaging.localize import knee_rois
from oa_kit.io.radiograph import read_radiograph
from oa_kit.metrics import calibration_curve, expected_calibration_error, kl_metrics, roc_auc
from oa_kit.synth.generate import generate_cohort

#: Environment variable choosing the notebook mode.
MODE_VARIABLE = "OA_KIT_NOTEBOOK_MODE"
#: Environment variable naming the folder of the prepared workshop data.
DATA_VARIABLE = "OA_KIT_WORKSHOP_DATA"
#: Environment variable naming the Chen 2018 KL dataset's ``val`` split.
CHEN_VARIABLE = "OA_KIT_CHEN_VAL"
#: Seed of every workshop cohort.
SEED = 0

#: What each mode runs: ``smoke`` (CI, the workshop: minutes on 2 cores) and ``full`` (users: larger samples);
#: ``n_bootstrap`` is passed to ``fit_progression`` where a notebook shows a knee's risk interval.
SETTINGS: dict[str, dict[str, int]] = {
    "smoke": {
        "n_participants": 600,  # the ``workshop`` synthetic preset: tables only
        "n_imaged": 3,  # participants rendered with radiographs and MRI
        "n_splits": 3,
        "n_resamples": 200,
        "chen_per_grade": 8,
        "n_bootstrap": 20,  # refits per horizon for knee risk intervals: ~2 s with quick=True on ~850 knees
    },
    "full": {
        "n_participants": 2000,
        "n_imaged": 8,
        "n_splits": 5,
        "n_resamples": 1000,
        "chen_per_grade": 40,
        "n_bootstrap": 50,  # ~5 s per horizon with quick=True on ~850 knees (2 cores)
    },
}


def notebook_mode(default: str = "full") -> str:
    """The mode named by ``$OA_KIT_NOTEBOOK_MODE`` (``smoke`` or ``full``; ``default`` when unset)."""
    mode = os.environ.get(MODE_VARIABLE, default).strip().lower()
    if mode not in SETTINGS:
        raise OAKitError(f"{MODE_VARIABLE}={mode!r}; expected one of {', '.join(SETTINGS)}")
    return mode


@dataclass(frozen=True)
class WorkshopData:
    """The folders a notebook reads: a tables-only cohort and a small cohort with images."""

    cohort: Path
    imaged: Path


def prepare_data(mode: str, folder: str | os.PathLike | None = None) -> WorkshopData:
    """Generate (or reuse, when already complete) the synthetic cohorts of ``mode`` under ``folder``.

    ``folder`` defaults to ``$OA_KIT_WORKSHOP_DATA`` or ``data`` (relative to the notebook). Both cohorts are
    deterministic (seed 0): the tables-only ``workshop`` preset and a few imaged participants of the ``tiny`` preset.
    """
    settings = SETTINGS[mode]
    root = Path(folder or os.environ.get(DATA_VARIABLE, "data"))
    root.mkdir(parents=True, exist_ok=True)
    cohort = generate_cohort(
        "workshop",
        root / f"{mode}_cohort",
        SEED,
        images=False,
        progress=False,
        n_participants=settings["n_participants"],
        resume=True,
    )
    imaged = generate_cohort(
        "tiny",
        root / f"{mode}_imaged",
        SEED,
        images=True,
        progress=False,
        n_participants=settings["n_imaged"],
        resume=True,
    )
    return WorkshopData(cohort, imaged)


def chen_folder() -> Path | None:
    """The Chen 2018 ``val`` folder: ``$OA_KIT_CHEN_VAL`` when set, else ``../shared/data/knee-kl-chen2018/val``
    beside the repository; None when it is absent (the real-radiograph notebook then skips)."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "knee-kl-chen2018" / "val"
    candidate = Path(os.environ.get(CHEN_VARIABLE) or shared)
    return candidate if all((candidate / str(g)).is_dir() for g in range(5)) else None


# ------------------------------------------------------------------------------------------------- summaries
def kl_transitions(readings: pd.DataFrame, start_month: int = 0, end_month: int = 24) -> pd.DataFrame:
    """Knees per KL grade at ``start_month`` (rows) and ``end_month`` (columns), knees read at both visits."""
    wide = readings.pivot_table(index=["participant_id", "side"], columns="visit_month", values="kl", aggfunc="first")
    both = wide[[start_month, end_month]].dropna().astype(int)
    table = pd.crosstab(both[start_month], both[end_month])
    table.index.name, table.columns.name = f"KL at {start_month} m", f"KL at {end_month} m"
    return table


def progression_rates(labels: pd.DataFrame, by: str | None = "baseline_kl") -> pd.DataFrame:
    """Share of labelled knees that progress, per horizon (rows) and ``by`` group (columns; None: overall)."""
    keys = ["horizon_months"] + ([by] if by else [])
    rates = labels.groupby(keys)["label"].mean().round(3)
    return rates.unstack(by) if by else rates.to_frame("progression_rate")


def exclusion_reasons(labels: Cohort | pd.DataFrame) -> pd.DataFrame:
    """Exclusions per reason and horizon, with the plain-language reason (from the label builder)."""
    exclusions = labels.labels.exclusions if isinstance(labels, Cohort) else labels
    table = exclusions.pivot_table(
        index="reason_code", columns="horizon_months", values="side", aggfunc="count", fill_value=0
    )
    table.columns = [f"{h} m" for h in table.columns]
    reason = {code: text for code, (_, text) in REASON_CODES.items()}
    return table.assign(reason=table.index.map(reason))


def reason_table() -> pd.DataFrame:
    """Every exclusion reason of the label builder, in the order it is applied, with what it means."""
    rows = [{"reason_code": code, "order": order, "meaning": text} for code, (order, text) in REASON_CODES.items()]
    return pd.DataFrame(rows).sort_values("order").set_index("reason_code")


def missingness(table: pd.DataFrame) -> pd.Series:
    """Share of missing values per column, columns with any missing value only, largest first."""
    share = table.isna().mean().round(3)
    share = share[share > 0]
    order = sorted(share.index, key=lambda column: (-share[column], column))
    return share[order]


@dataclass(frozen=True)
class Split:
    """Per-knee features and labels split by participant (both knees of a person on the same side)."""

    train: pd.DataFrame
    test: pd.DataFrame
    train_labels: pd.DataFrame
    test_labels: pd.DataFrame


def split_participants(
    features: pd.DataFrame, labels: pd.DataFrame, test_fraction: float = 0.3, seed: int = SEED
) -> Split:
    """Split features and labels into train and test by participant (a seeded draw of ``test_fraction``)."""
    people = np.sort(features["participant_id"].astype(str).unique())
    rng = np.random.default_rng(seed)
    test = set(rng.choice(people, size=round(len(people) * test_fraction), replace=False))
    held = features["participant_id"].astype(str).isin(test)
    held_labels = labels["participant_id"].astype(str).isin(test)
    return Split(
        features[~held].reset_index(drop=True),
        features[held].reset_index(drop=True),
        labels[~held_labels].reset_index(drop=True),
        labels[held_labels].reset_index(drop=True),
    )


def with_labels(features: pd.DataFrame, labels: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """``features`` rows with a label at ``horizon`` (inner join on the knee), the ``label`` column added."""
    lab = labels[labels["horizon_months"] == horizon][["participant_id", "side", "label"]]
    return features.merge(lab, on=["participant_id", "side"], how="inner")


def kl_trajectory(cohort: Cohort, participant_id: str) -> pd.DataFrame:
    """One participant's KL grade per visit (rows: visit month, columns: knee side)."""
    readings = cohort.tables.readings
    mine = readings[readings["participant_id"].astype(str) == str(participant_id)]
    if mine.empty:
        raise OAKitError(f"participant_id {participant_id!r}: not in the cohort's readings")
    return mine.pivot_table(index="visit_month", columns="side", values="kl", aggfunc="first")


def radiograph_figure(path: str | os.PathLike, max_pixels: int = 400) -> go.Figure:
    """A PA radiograph with the knee ROIs the KL model crops (boxes labelled by side), at true aspect ratio,
    shown at most ``max_pixels`` pixels along its longer side (the ROIs are found at full resolution)."""
    radiograph = read_radiograph(path)
    step = max(1, int(np.ceil(max(radiograph.pixels.shape) / max_pixels)))  # keeps stored notebooks small
    rows, cols = (np.arange(0, n, step) for n in radiograph.pixels.shape)
    image = radiograph.pixels[::step, ::step].round(3)
    fig = go.Figure(go.Heatmap(z=image, x=cols, y=rows, colorscale="gray", showscale=False))
    for roi in knee_rois(radiograph):
        r0, c0, r1, c1 = roi.box_px
        fig.add_shape(type="rect", x0=c0, x1=c1, y0=r0, y1=r1, line={"color": "orange", "width": 2})
        fig.add_annotation(x=c0, y=r0, text=f"ROI {roi.side}", showarrow=False, font={"color": "orange"}, yshift=10)
    fig.update_yaxes(scaleanchor="x", autorange="reversed")
    fig.update_layout(title=f"{Path(path).name} — knee ROIs", height=500)
    return fig


def learning_curve(
    features: pd.DataFrame, labels: pd.DataFrame, horizon: int, sizes: Sequence[int], seed: int = SEED
) -> pd.DataFrame:
    """Held-out AUC and ECE of a quick model fitted on the first ``n`` training participants (a seeded order) for
    each ``n`` in ``sizes``; the test participants (30%) are the same for every size."""
    split = split_participants(features, labels, 0.3, seed)
    test = with_labels(split.test, split.test_labels, horizon)
    people = np.random.default_rng(seed).permutation(np.sort(split.train["participant_id"].astype(str).unique()))
    rows = []
    for n in sizes:
        chosen = set(people[: int(n)])
        keep = split.train["participant_id"].astype(str).isin(chosen)
        keep_labels = split.train_labels["participant_id"].astype(str).isin(chosen)
        models = fit_progression(
            split.train[keep], split.train_labels[keep_labels], (horizon,), data="synthetic", seed=seed, quick=True
        )
        risk = models.predict(test)["risk"].to_numpy()
        rows.append(
            {
                "n_participants": len(chosen),
                "auc": round(roc_auc(test["label"], risk), 3),
                "ece": round(expected_calibration_error(test["label"], risk), 3),
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- real knees
def chen_sample(folder: str | os.PathLike, per_grade: int) -> pd.DataFrame:
    """The first ``per_grade`` knees of each KL grade in a Chen-layout folder, sorted by file name (a fixed rule).

    Columns: ``path``, ``kl_true``.
    """
    folder = Path(folder)
    rows = [
        {"path": str(path), "kl_true": grade}
        for grade in range(5)
        for path in sorted((folder / str(grade)).glob("*.png"))[:per_grade]
    ]
    if not rows:
        raise OAKitError(f"{folder}: no PNG files under 0/..4/; expected the Chen 2018 layout")
    return pd.DataFrame(rows)


def kl_sample_metrics(grades_table: pd.DataFrame, kl_true: Sequence[int]) -> dict[str, float]:
    """KL metrics (QWK, accuracy, MAE, ECE, conformal coverage and set size) of a graded sample, rounded to 3."""
    proba = grades_table[[f"kl_p{g}" for g in range(5)]].to_numpy(float)
    sets = np.array([[str(g) in str(s).split(",") for g in range(5)] for s in grades_table["kl_grade_set"]])
    return {k: round(v, 3) for k, v in kl_metrics(np.asarray(kl_true), proba, sets).items()}


def kl_confusion(grades_table: pd.DataFrame, kl_true: Sequence[int]) -> pd.DataFrame:
    """Confusion table: true KL (rows) by predicted KL (columns, the argmax of the probabilities)."""
    pred = grades_table[[f"kl_p{g}" for g in range(5)]].to_numpy(float).argmax(1)
    table = pd.crosstab(pd.Series(np.asarray(kl_true), name="true KL"), pd.Series(pred, name="predicted KL"))
    return table.reindex(index=range(5), columns=range(5), fill_value=0)


def kl_per_grade(grades_table: pd.DataFrame, kl_true: Sequence[int]) -> pd.DataFrame:
    """Per true KL grade: knees, accuracy of the most likely grade, conformal coverage and mean set size."""
    pred = grades_table[[f"kl_p{g}" for g in range(5)]].to_numpy(float).argmax(1)
    sets = [str(s).split(",") for s in grades_table["kl_grade_set"]]
    frame = pd.DataFrame(
        {
            "kl_true": np.asarray(kl_true),
            "correct": pred == np.asarray(kl_true),
            "covered": [str(t) in s for t, s in zip(kl_true, sets)],
            "set_size": [len(s) for s in sets],
        }
    )
    table = frame.groupby("kl_true").agg(
        knees=("correct", "size"),
        accuracy=("correct", "mean"),
        coverage=("covered", "mean"),
        set_size=("set_size", "mean"),
    )
    return table.round(2)


def kl_calibration(grades_table: pd.DataFrame, kl_true: Sequence[int], n_bins: int = 5) -> pd.DataFrame:
    """Reliability of P(KL ≥ 2): mean predicted probability against the observed share per quantile bin."""
    p = grades_table[[f"kl_p{g}" for g in range(2, 5)]].to_numpy(float).sum(1)
    return calibration_curve(np.asarray(kl_true) >= 2, p, n_bins=n_bins).round(3)


def gradcam_gallery(grades: KneeGrades, indices: Sequence[int], titles: Sequence[str]) -> go.Figure:
    """Grad-CAM overlays of several knees side by side (model input in grey, map in colour, equal aspect)."""
    fig = make_subplots(rows=1, cols=len(indices), subplot_titles=list(titles), horizontal_spacing=0.01)
    for col, i in enumerate(indices, start=1):
        fig.add_heatmap(z=grades.inputs[i, 0].round(3), colorscale="gray", showscale=False, row=1, col=col)
        cam = grades.cams[i] if grades.cams is not None else np.zeros(grades.inputs.shape[-2:])
        fig.add_heatmap(z=cam.round(3), colorscale="Jet", opacity=0.4, showscale=False, row=1, col=col)
        axis = "" if col == 1 else str(col)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{axis}", showticklabels=False, row=1, col=col)
        fig.update_xaxes(showticklabels=False, row=1, col=col)
    fig.update_layout(title=f"Grad-CAM — {grades.model}", height=320)
    return fig


# ------------------------------------------------------------------------------------------------- exercises
#: The leaky column that :func:`leaky_features` adds (what the "find the leakage" exercise asks for).
LEAKY_COLUMN = "xr_jsn_medial_change"


def leaky_features(cohort: Cohort, horizon: int = 24) -> pd.DataFrame:
    """The cohort's baseline features plus one column that looks like a radiograph feature but is measured at the
    horizon visit (medial joint-space narrowing grade at ``horizon`` minus baseline): the "find the leakage"
    exercise."""
    readings = cohort.tables.readings
    jsn = readings.pivot_table(
        index=["participant_id", "side"], columns="visit_month", values="jsn_medial", aggfunc="first"
    )
    loss = (jsn[horizon] - jsn[0]).rename(LEAKY_COLUMN).reset_index()
    return cohort.features().merge(loss, on=["participant_id", "side"], how="left")


@dataclass(frozen=True)
class Check:
    """A checker's verdict: ``passed`` and a message for the learner."""

    passed: bool
    message: str

    def __repr__(self) -> str:
        return ("✔ " if self.passed else "✘ ") + self.message

    def __bool__(self) -> bool:
        return self.passed


def check_leakage(answer: str | Sequence[str]) -> Check:
    """Exercise "find the leakage": ``answer`` names the leaking column."""
    named = {answer} if isinstance(answer, str) else set(answer)
    if named == {LEAKY_COLUMN}:
        return Check(True, f"{LEAKY_COLUMN} is measured at the horizon visit: it uses the outcome's future.")
    if LEAKY_COLUMN in named:
        return Check(False, f"{LEAKY_COLUMN} leaks, but {sorted(named - {LEAKY_COLUMN})} are baseline features.")
    return Check(False, f"{sorted(named)} are known at baseline; look for a column that needs a later visit.")


def _auc(report: ProgressionReport, model: str) -> float:
    headline = report.to_frame().set_index("model")
    if model not in headline.index:
        raise OAKitError(f"report: no model {model!r}; expected one of {', '.join(headline.index)}")
    return float(headline.loc[model, "auc"])


def check_clinical_gap(answer: float, report: ProgressionReport) -> Check:
    """Exercise "why is the clinical-only model worse": ``answer`` is AUC(clinical_kl) − AUC(clinical) in
    ``report``, to 0.01."""
    gap = _auc(report, "clinical_kl") - _auc(report, "clinical")
    if abs(float(answer) - gap) <= 0.01:
        return Check(True, f"adding KL raises the AUC by {gap:.2f}: the radiograph carries what the clinic does not.")
    return Check(False, f"{float(answer):.3f} is not AUC(clinical_kl) − AUC(clinical) in this report.")


def check_calibration(answer: Sequence[float], y: Sequence[int], uncalibrated: Sequence[float]) -> Check:
    """Exercise "calibrate it": ``answer`` holds calibrated risks of the test knees ``y``; their expected
    calibration error must be below the uncalibrated model's and below 0.05."""
    answer = np.asarray(answer, float)
    if answer.shape != np.asarray(y).shape:
        return Check(False, f"{answer.shape[0]} risks for {len(y)} test knees; expected one risk per test knee.")
    before, after = expected_calibration_error(y, uncalibrated), expected_calibration_error(y, answer)
    if after < before and after < 0.05:
        return Check(True, f"ECE {before:.3f} → {after:.3f} on the test knees.")
    return Check(False, f"ECE {before:.3f} → {after:.3f}; expected below both {before:.3f} and 0.05.")


def check_kl1(answer: int, labels: pd.DataFrame, horizon: int = 24) -> Check:
    """Exercise "is KL 1 a grade?": ``answer`` is the grade (0 or 2) whose progression rate at ``horizon`` is
    closer to KL 1's in ``labels``."""
    rates = progression_rates(labels).loc[horizon]
    closer = 0 if abs(rates[1] - rates[0]) < abs(rates[1] - rates[2]) else 2
    rounded = {g: round(float(rates[g]), 2) for g in (0, 1, 2)}
    if int(answer) == closer:
        return Check(True, f"KL 1 progresses like KL {closer} here (rates {rounded}).")
    return Check(False, f"compare the rates again: {rounded}.")


#: Exercise name → checker.
CHECKERS = {
    "leakage": check_leakage,
    "clinical_gap": check_clinical_gap,
    "calibrate": check_calibration,
    "kl1": check_kl1,
}


def check(exercise: str, answer, **context) -> Check:
    """Check a learner's ``answer`` to ``exercise`` (one of :data:`CHECKERS`); ``context`` holds the data it needs."""
    if exercise not in CHECKERS:
        raise OAKitError(f"exercise {exercise!r}: unknown; expected one of {', '.join(CHECKERS)}")
    return CHECKERS[exercise](answer, **context)
