"""Model card (Mitchell et al. 2019) with a TRIPOD+AI checklist (Collins et al., BMJ 2024), generated from a run.

``model_card_markdown(evaluation, command)`` returns the card as Markdown (``oa_kit.workflows.progression.write_evaluation``
writes it with the tables and figures). Every number in the card comes from the
:class:`~oa_kit.evaluation.report.ProgressionEvaluation` passed in; the card repeats the provenance statement.
"""

from __future__ import annotations

import datetime as _dt

import pandas as pd

from oa_kit import __version__
from oa_kit.evaluation.report import ProgressionEvaluation
from oa_kit.features.schema import MRI_MODEL_COLUMN
from oa_kit.models.mri.inference import shipped_name

#: TRIPOD+AI items (Collins et al., BMJ 2024) and where this card or oa_kit addresses them.
TRIPOD_AI_ITEMS: tuple[tuple[str, str, str], ...] = (
    ("1", "Title: identify development/evaluation of a prediction model, population, outcome", "Model details"),
    ("3c", "Known health inequalities between groups (fairness)", "Subgroups; Limitations"),
    ("4", "Objectives, incl. development and/or evaluation", "Intended use"),
    ("5a", "Data sources", "Data"),
    ("6a-b", "Setting and eligibility criteria of participants", "Data"),
    ("7", "Data preparation and quality checks", "Data; Features"),
    ("8a", "Outcome definition and time horizon", "Data (label definition, horizon)"),
    ("9a", "Predictors: choice, definition, measurement", "Features"),
    ("10", "Sample size", "Data (knees, participants, events)"),
    ("11", "Handling of missing data", "Features"),
    ("12a", "How data were used: development vs evaluation (grouped CV, site-held-out)", "Validation"),
    ("12b", "Predictor handling (encoding, PCA of embeddings inside folds)", "Features"),
    ("12c", "Model type, building, hyper-parameter tuning (nested CV)", "Model details"),
    ("12e", "Performance measures: discrimination AND calibration, with CIs", "Metrics; Calibration"),
    ("13", "Class imbalance handling and recalibration", "Model details; Calibration"),
    ("14", "Fairness approach", "Subgroups"),
    ("15", "Model output (risk by horizon) and thresholds", "Decision curve"),
    ("18", "Open science: code and data availability", "Reproduce"),
    ("20a", "Participant flow, numbers with outcome", "Data"),
    ("21", "Number of participants and events in each analysis", "Data; Metrics"),
    ("22", "Full model specification / access", "Model details; Reproduce"),
    ("23a", "Performance estimates with confidence intervals", "Metrics"),
    ("23b", "Heterogeneity of performance across subgroups and sites", "Subgroups; Site-held-out"),
    ("26", "Limitations (non-representative data, synthetic data)", "Limitations"),
    ("27", "Usability and intended use in care", "Intended use"),
)


def _fmt_ci(row: pd.Series) -> str:
    """``0.781 (0.745–0.812)``, or a note when undefined."""
    if pd.isna(row["estimate"]):
        return row.get("note", "") or "undefined"
    return f"{row['estimate']:.3f} ({row['ci_low']:.3f}–{row['ci_high']:.3f})"


def _markdown(table: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """Small Markdown table writer (no tabulate dependency)."""
    cols = list(table.columns)

    def cell(v):
        if isinstance(v, float):
            return "" if pd.isna(v) else format(v, floatfmt)
        return str(v)

    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def _metric_table(metrics: pd.DataFrame, key: str) -> pd.DataFrame:
    """Wide table: one row per ``key`` value, one column per metric, cells 'estimate (CI)'."""
    wide = metrics.assign(value=metrics.apply(_fmt_ci, axis=1)).pivot_table(
        index=key, columns="metric", values="value", aggfunc="first", sort=False
    )
    counts = metrics.drop_duplicates(key).set_index(key)[["n", "n_events"]]
    return wide.join(counts).reset_index()[
        [key, "n", "n_events", *[m for m in ("auc", "ap", "brier", "ece") if m in wide.columns]]
    ]


def model_card_markdown(evaluation: ProgressionEvaluation, command: str | None = None) -> str:
    """The model card text for one horizon's evaluation."""
    e = evaluation
    prov = e.provenance
    fams = {name: len(cols) for name, cols in e.feature_sets.items()}
    main_cols = e.feature_sets.get(e.main_model, [])
    lines = [
        f"# Model card: knee OA progression within {e.horizon_months} months ({e.main_model} model)",
        "",
        f"> **{prov.get('statement', '')}**",
        "",
        "## Model details",
        f"- oa_kit {__version__}; generated {_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
        f"- Main model `{e.main_model}`: LightGBM binary classifier on the `{e.main_model}` feature set "
        f"(class weights balanced; {e.settings.get('n_configurations', '?')}-configuration search in an inner "
        f"{e.settings.get('n_inner_splits', '?')}-fold participant-grouped CV; "
        f"{e.settings.get('calibration')} calibration fitted on inner out-of-fold scores).",
        "- Baselines fitted and evaluated identically: "
        + ", ".join(f"`{k}` ({v} raw columns)" for k, v in fams.items())
        + ".",
        f"- Training data provenance: data = {prov.get('data')}, cohort = {prov.get('cohort') or 'not stated'}.",
        *_kl_sentence(prov.get("kl_weights_sha256")),
        *_mri_sentence(prov.get(MRI_MODEL_COLUMN)),
        "",
        "## Intended use",
        "- Research and teaching: comparing image-derived and clinical predictors of radiographic progression, "
        "and demonstrating calibrated, explained risk models.",
        "- **Not** for diagnosis, treatment decisions or any clinical use. " + _data_sentence(prov.get("data")),
        "",
        "## Data",
        _cohort_sentence(e.cohort),
        f"- Outcome: radiographic progression (oa_kit default definition, `oa_kit.cohort.labels`) within "
        f"{e.horizon_months} months of baseline; knees with missing follow-up are excluded with reason codes, "
        "never labelled.",
        "",
        "## Features",
        f"- Main model raw columns ({len(main_cols)}): "
        + ", ".join(f"`{c}`" for c in main_cols[:40])
        + (" …" if len(main_cols) > 40 else ""),
        "- Families: clinical (age, sex, BMI, injury, surgery, WOMAC, site), radiograph (KL, JSN/JSW, measured "
        "marginal osteophyte lengths and spur areas, KL-CNN probabilities, KL-CNN embedding PCs), MRI (regional "
        "thickness/volume, MRI embedding PCs). Embeddings are reduced by PCA fitted inside each training fold only.",
        "- LightGBM sets: compact derived features replace the raw JSW profile, the measured osteophyte sizes and the "
        "regional MRI measurements — JSW residual from its expected value given sex and JSN grade per compartment and "
        "the smaller of the two, osteophyte size beyond its OARSI grade averaged over the margins, and weight-bearing "
        "cartilage thickness loss relative to sex-specific medians — all fitted inside each training fold and "
        "monotone-constrained to their known risk direction; 3 PCs per embedding.",
        "- Missing values: LightGBM handles NaN natively; logistic baselines impute training medians.",
        "",
        "## Validation",
        _validation_sentence(e),
        f"- 95% CIs: participant-level bootstrap, {e.settings.get('n_resamples')} resamples, seed "
        f"{e.settings.get('seed')}.",
        "",
        "## Metrics (out of sample"
        + (", on the withheld test table)" if "train_knees" in e.cohort else ", pooled over folds)"),
        _markdown(_metric_table(e.metrics, "model")),
        "",
        f"### DeLong test against the `{e.reference_model}` baseline"
        + (" (no clinical columns: models without clinical factors)" if e.reference_model != "clinical" else ""),
        _markdown(e.delong[["model", "reference", "auc_1", "auc_2", "difference", "ci_low", "ci_high", "p_value"]])
        if len(e.delong)
        else "(no comparison)",
        "",
    ]
    if e.oracle is not None:
        lines += [
            "### Oracle comparison (synthetic data only)",
            f"The oracle is the generator's true probability; `share_of_gain` = (AUC − AUC_{e.reference_model}) / "
            f"(AUC_oracle − AUC_{e.reference_model})."
            + (
                " `latent_reference` is the same out-of-fold logistic procedure on clinical factors + KL + the "
                "generator's true image-only latents (cartilage, osteophyte, joint-space): the ceiling for any "
                "image model on this sample; its gap to the oracle is the finite-sample cost."
                if "latent_reference" in set(e.oracle["model"])
                else ""
            )
            + _oracle_knees(e),
            _markdown(e.oracle),
            "",
        ]
    lines += [
        "## Calibration (main model, quantile bins)",
        _markdown(e.calibration),
        "",
        "## Subgroups (main model)",
        _markdown(_metric_table(e.subgroups, "subgroup")),
        "",
    ]
    if e.site_metrics is not None:
        lines += [
            "## Site-held-out validation (train on other sites, test on one)",
            _markdown(_metric_table(e.site_metrics, "subgroup")),
            "",
        ]
    lines += [
        "## Decision curve (main model)",
        _markdown(e.decision_curve, ".4f"),
        "",
        "## Limitations",
        "- "
        + (
            "Trained and evaluated on **synthetic** data: effect sizes are illustrative and every number "
            "describes the generator, not knee OA in people."
            if prov.get("data") == "synthetic"
            else "Performance on other cohorts, scanners and populations is unknown until validated externally."
        ),
        "- Internal (cross-validated) and site-held-out figures are not comparable to external validation.",
        "- Subgroups with few events have wide intervals; small subgroups (<10 knees) are not reported.",
        "- ECE bootstrap intervals are biased upward (ECE is positive by construction).",
        "",
        "## TRIPOD+AI checklist",
        _markdown(pd.DataFrame(TRIPOD_AI_ITEMS, columns=["item", "topic", "section"])),
        "",
        "## Reproduce",
        f"`{command}`" if command else "`oa-kit progression evaluate --features FEATURES --labels LABELS --out DIR`",
        "",
    ]
    return "\n".join(lines)


def _kl_sentence(sha: str | None) -> list[str]:
    """The KL-CNN behind the KL features, if any (a one-item list, or none)."""
    if sha is None:
        return []
    if sha == "out-of-fold":
        return [
            "- KL-CNN features: out-of-fold predictions of per-fold CNNs (no single network reproduces them; grade "
            "new radiographs with a CNN fitted on all training knees)."
        ]
    return [f"- KL-CNN features from the network with weights sha256 `{sha}` (`oa-kit kl predict`)."]


def _mri_sentence(sha: str | None) -> list[str]:
    """The MRI segmenter behind the MRI embedding features, if any (a one-item list, or none)."""
    if sha is None:
        return []
    name = shipped_name(sha)
    which = f"the shipped `{name}` weights" if name else "weights not shipped with oa_kit"
    return [f"- MRI features from the segmenter with weights sha256 `{sha}` ({which}; `oa-kit mri segment`)."]


def _data_sentence(data: str | None) -> str:
    """What the training data means for the numbers, by provenance."""
    if data == "synthetic":
        return "A model trained on synthetic data says nothing about real patients."
    if data == "real":
        return (
            "Trained on real participants' data: its figures hold for cohorts like the training cohort, and only "
            "once validated externally for others."
        )
    return "The provenance of the training data was not stated; treat every figure as unverified."


def _cohort_sentence(cohort: dict) -> str:
    """Knees, participants and events evaluated (and trained on, for a withheld test table)."""
    text = (
        f"- Knees evaluated: {cohort['knees']}; participants: {cohort['participants']}; progression events: "
        f"{cohort['events']} ({cohort['events'] / max(cohort['knees'], 1):.1%})."
    )
    if "train_knees" in cohort:
        text += (
            f" Trained on a separate table: {cohort['train_knees']} knees, {cohort['train_participants']} "
            f"participants, {cohort['train_events']} events."
        )
    return text


def _validation_sentence(e: ProgressionEvaluation) -> str:
    """How the figures were obtained: cross-validation or a withheld test table."""
    if e.settings.get("validation") == "held-out test table":
        return (
            "- Fitted once on the training table (participant-grouped inner CV for tuning and calibration) and "
            "scored on a withheld table whose participants it never saw (checked)."
        )
    return (
        f"- {e.settings.get('n_splits')}-fold participant-grouped, outcome-stratified cross-validation (both knees of a "
        "participant always in the same fold); all tuning and calibration inside each training fold (nested)."
    )


def _oracle_knees(e) -> str:
    """Sentence on how many labelled knees the oracle comparison covers (those with a true probability)."""
    compared, labelled = int(e.oracle["knees"].iloc[0]), int(e.cohort["knees"])
    if compared == labelled:
        return ""
    return (
        f" Compared on the {compared} of {labelled} labelled knees that have a true probability; the other "
        f"{labelled - compared} are truly KL 4 at baseline but were graded lower by the readers, so they are "
        "labelled while the generator gives them no probability."
    )
