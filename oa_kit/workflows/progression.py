"""Progression jobs that write files: fit and save one model per horizon, predict and explain with saved models, and
the whole evaluation step in one call (``make demo``, ``oa-kit progression evaluate``): evaluate every horizon out of
sample, write model cards and figures, fit the final per-horizon models and explain them.

Output folder layout::

    OUT/model_card_h{H}.md, *_h{H}.csv, *_h{H}.html   evaluation (oa_kit.evaluation.model_card)
    OUT/headline.csv                                  AUC (95% CI) per model and horizon; on synthetic cohorts also
                                                      the latent reference and the oracle (gap, share of gain)
    OUT/models/h{H}/                                  final models (LightGBM text + JSON + sha256)   [fit_final]
    OUT/explain/explanations_h{H}.csv, shap_grouped_h{H}.csv, *.html                           [fit_final]
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from plotly.offline import get_plotlyjs
from tqdm.auto import tqdm

from oa_kit.api import ProgressionModels, kl_model_of, mri_model_of, risk_table
from oa_kit.errors import OAKitError
from oa_kit.evaluation.model_card import model_card_markdown
from oa_kit.evaluation.oracle import oracle_column, truth_latents
from oa_kit.evaluation.report import ProgressionEvaluation, evaluate_progression
from oa_kit.explain import explain_text, family_text, global_importance, grouped_shap, shap_values
from oa_kit.features.assemble import join_knee_tables
from oa_kit.features.schema import KEY_COLUMNS
from oa_kit.horizons import MODEL_HORIZONS_MONTHS
from oa_kit.io.artifacts import CHECKSUM_FILE
from oa_kit.io.atomic import replace_dir, write_text_atomic
from oa_kit.io.tables import read_table, write_csv
from oa_kit.metrics import bootstrap_metrics
from oa_kit.parallel import ordered_map
from oa_kit.progression.baselines import baseline_models
from oa_kit.progression.model import ProgressionModel, make_provenance
from oa_kit.progression.persist import save_model
from oa_kit.progression.training_data import labelled_rows
from oa_kit.viz import shap_plots
from oa_kit.viz.progression import evaluation_figures


def write_evaluation(
    evaluation: ProgressionEvaluation, out_dir: str | os.PathLike, command: str | None = None
) -> dict[str, Path]:
    """Write the card, tables (CSV) and figures (HTML) of one horizon into ``out_dir``; returns written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    h = evaluation.horizon_months
    written: dict[str, Path] = {}
    card = out / f"model_card_h{h}.md"
    write_text_atomic(card, model_card_markdown(evaluation, command))
    written["card"] = card
    tables = {
        "metrics": evaluation.metrics,
        "delong": evaluation.delong,
        "subgroups": evaluation.subgroups,
        "calibration": evaluation.calibration,
        "decision_curve": evaluation.decision_curve,
        "predictions": evaluation.predictions,
        "headline": evaluation.headline(),
        "site_metrics": evaluation.site_metrics,
        "oracle": evaluation.oracle,
    }
    for name, table in tables.items():
        if table is not None:
            path = out / f"{name}_h{h}.csv"
            write_csv(table, path)
            written[name] = path
    if not (out / "plotly.min.js").exists():
        write_text_atomic(out / "plotly.min.js", get_plotlyjs())
    for name, fig in evaluation_figures(evaluation).items():
        path = out / f"{name}_h{h}.html"
        write_text_atomic(path, fig.to_html(include_plotlyjs="directory", full_html=True))
        written[f"figure_{name}"] = path
    return written


def explain_model(model: ProgressionModel, X: pd.DataFrame, out: str | os.PathLike, top_k: int = 3) -> pd.DataFrame:
    """Write SHAP tables, grouped values, plain-language text and figures of one model; returns the text table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    h = int(model.horizon_months)
    result = shap_values(model, X)
    grouped = grouped_shap(result)
    text = risk_table(model, X).assign(
        explanation=[explain_text(result.values.iloc[i], result.data.iloc[i], top_k) for i in range(len(X))],
        by_family=[family_text(grouped.iloc[i]) for i in range(len(X))],
    )
    tables = {
        f"shap_h{h}.csv": pd.concat([result.keys, result.values], axis=1),
        f"shap_grouped_h{h}.csv": grouped,
        f"importance_h{h}.csv": global_importance(result),
        f"explanations_h{h}.csv": text,
    }
    for name, table in tables.items():
        write_csv(table, out / name)
    note = model.provenance_["statement"]
    figures = {
        "importance": shap_plots.importance_figure(result, note=note),
        "beeswarm": shap_plots.beeswarm_figure(result, note=note),
        "families": shap_plots.grouped_figure(grouped, note=note),
        "waterfall_first_knee": shap_plots.waterfall_figure(result, 0, note=note),
    }
    for name, fig in figures.items():
        write_text_atomic(out / f"{name}_h{h}.html", fig.to_html(include_plotlyjs="directory"))
    if not (out / "plotly.min.js").exists():
        write_text_atomic(out / "plotly.min.js", get_plotlyjs())
    return text


def progression_report(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    out: str | os.PathLike,
    horizons: Sequence[int] = MODEL_HORIZONS_MONTHS,
    truth: pd.DataFrame | None = None,
    provenance: Mapping[str, str] | None = None,
    n_splits: int = 5,
    n_resamples: int = 1000,
    seed: int = 0,
    site_held_out: bool = True,
    fit_final: bool = True,
    n_bootstrap: int = 0,
    lightgbm_grid: Sequence[Mapping] | None = None,
    calibration: str = "sigmoid",
    command: str | None = None,
    latent_reference: bool = True,
    progress: bool = True,
    n_jobs: int = 1,
    test_features: pd.DataFrame | None = None,
    test_labels: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Evaluate, card, fit and explain every horizon; returns the headline table (also written as headline.csv).

    With ``test_features`` and ``test_labels`` every model is fitted on ``features``/``labels`` and scored on that
    withheld table (its participants must not be in the training table) instead of cross-validated; ``truth`` then
    belongs to the test knees.

    Parameters
    ----------
    features : DataFrame
        Joined per-knee table (:func:`oa_kit.features.join_knee_tables`).
    labels : DataFrame
        participant_id, side, horizon_months, label (``oa_kit.cohort.labels``).
    out : path
        Output folder (created; files inside are replaced). The report is built in a hidden sibling and moved in
        once every horizon is done, so a failed or interrupted run changes nothing in ``out``.
    horizons : sequence of int
        Horizons in months.
    truth : DataFrame, optional
        Synthetic truth knees table with ``p_progress_{H}`` for the oracle comparison (and ``image_*_z`` for the
        latent reference).
    provenance : mapping, optional
        :func:`make_provenance` record; shown with every number.
    n_splits, n_resamples, seed, site_held_out, lightgbm_grid, calibration
        Passed to :func:`oa_kit.evaluation.report.evaluate_progression`.
    fit_final : bool
        Also fit the final model per horizon on all labelled knees, save it and explain it.
    n_bootstrap : int
        Participant-level bootstrap refits of each final model (its 95% risk interval per knee; 0: none). Only the
        final model refits; the cross-validated ones do not.
    command : str, optional
        The command that reproduces the run (written in the cards).
    latent_reference : bool
        With a truth table holding the image latents, also evaluate the latent reference (clinical + KL + true
        latents, :mod:`oa_kit.evaluation.oracle`): the ceiling for any image model on this sample.
    progress : bool
        tqdm bar over horizons.
    n_jobs : int
        Worker processes, one horizon each (``-1``: one per core); the tables are the same for any value, since
        every horizon is computed from its own seeded folds. Each horizon runs single-threaded, so on a 2-core
        machine ``n_jobs=2`` roughly halves the wall time of the four demo horizons.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    provenance = {
        **(dict(provenance) if provenance is not None else make_provenance()),
        **kl_model_of(features),
        **mri_model_of(features),
    }
    settings = {
        "truth": truth,
        "provenance": provenance,
        "n_splits": n_splits,
        "n_resamples": n_resamples,
        "seed": seed,
        "site_held_out": site_held_out,
        "fit_final": fit_final,
        "n_bootstrap": n_bootstrap,
        "lightgbm_grid": lightgbm_grid,
        "calibration": calibration,
        "command": command,
        "latent_reference": latent_reference,
        "test_features": test_features,
        "test_labels": test_labels,
    }
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:  # built beside OUT and moved in at the end: an error or interruption leaves OUT as it was
        tasks = [(features, labels, h, build, settings) for h in horizons]
        with tqdm(total=len(tasks), disable=not progress, desc="progression horizons") as bar:
            headlines = ordered_map(report_horizon, tasks, n_jobs, on_done=bar.update)
        table = pd.concat(headlines, ignore_index=True)
        write_csv(table, build / "headline.csv")
        publish(build, out)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return table


def publish(build: Path, out: Path) -> None:
    """Move a finished report from ``build`` into ``out``: files replace their namesakes, a model folder (one with
    ``checksums.json``) replaces its namesake whole, other folders are merged the same way."""
    out.mkdir(parents=True, exist_ok=True)
    for item in sorted(build.iterdir()):
        target = out / item.name
        if item.is_dir() and (item / CHECKSUM_FILE).exists():
            replace_dir(item, target)
        elif item.is_dir():
            publish(item, target)
        else:
            os.replace(item, target)


def report_horizon(features: pd.DataFrame, labels: pd.DataFrame, h: int, out: Path, settings: Mapping) -> pd.DataFrame:
    """Evaluate, card, fit and explain one horizon into ``out``; returns its headline (a task of :func:`progression_report`)."""
    truth, provenance, seed = settings["truth"], settings["provenance"], settings["seed"]
    X, y = labelled_rows(features, labels, h)
    test_X, test_y = None, None
    if settings.get("test_features") is not None:
        test_X, test_y = labelled_rows(settings["test_features"], settings["test_labels"], h)
    scored = X if test_X is None else test_X
    oracle = oracle_column(scored, truth, h).to_numpy() if truth is not None else None
    latents = truth_latents(X, truth) if truth is not None and settings["latent_reference"] else None
    ev = evaluate_progression(
        X,
        y,
        h,
        oracle_risk=oracle,
        n_splits=settings["n_splits"],
        n_resamples=settings["n_resamples"],
        seed=seed,
        site_held_out=settings["site_held_out"],
        provenance=provenance,
        lightgbm_grid=settings["lightgbm_grid"],
        calibration=settings["calibration"],
        latents=latents,
        test_table=test_X,
        test_y=test_y,
    )
    write_evaluation(ev, out, settings["command"])
    headline = ev.headline()
    if settings["fit_final"]:
        model = baseline_models(
            X, h, seed, settings["calibration"], include=[ev.main_model], lightgbm_grid=settings["lightgbm_grid"]
        )[ev.main_model].set_params(n_bootstrap=settings.get("n_bootstrap", 0))
        model.fit(X, y, provenance=provenance)
        main = headline.set_index("model").loc[ev.main_model]
        save_model(
            model,
            out / "models" / f"h{h}",
            overwrite=True,
            metrics={
                "cv_auc": main["auc"],
                "cv_auc_ci": [main["auc_ci_low"], main["auc_ci_high"]],
                "cv_ece": main["ece"],
                "n_splits": settings["n_splits"],
                "n_resamples": settings["n_resamples"],
            },
        )
        explain_model(model, X, out / "explain")
    return headline


def read_features(
    features: str | os.PathLike,
    radiograph: str | os.PathLike | None = None,
    mri: str | os.PathLike | None = None,
    visit_month: int | None = 0,
) -> pd.DataFrame:
    """Read the clinical/joined table and join the optional KL-CNN and MRI tables per knee (at ``visit_month``)."""
    return join_knee_tables(
        read_table(features),
        read_table(radiograph) if radiograph else None,
        read_table(mri) if mri else None,
        visit_month=visit_month,
    )


def explain_models(
    models: ProgressionModels, features: pd.DataFrame, out: str | os.PathLike, top_k: int = 3
) -> dict[int, pd.DataFrame]:
    """:func:`explain_model` for every horizon into ``out``; returns ``{horizon: plain-language table}``."""
    return {h: explain_model(model, features, out, top_k) for h, model in models.models.items()}


def score_predictions(
    risks: pd.DataFrame, labels: pd.DataFrame, n_resamples: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Score a ``progression predict`` table against labels: AUC, AP, Brier and ECE with participant-bootstrap 95%
    CIs per model and horizon (knees without a label at a horizon are left out and counted)."""
    for name, table, needed in (("risks", risks, ("risk", "horizon_months")), ("labels", labels, ("label",))):
        for column in (*KEY_COLUMNS, "horizon_months", *needed):
            if column not in table.columns:
                raise OAKitError(
                    f"{name}.{column}: column missing; expected the output of `oa-kit progression "
                    f"{'predict' if name == 'risks' else 'labels'}`"
                )
    keys = [*KEY_COLUMNS, "horizon_months"]
    joined = risks.assign(participant_id=risks["participant_id"].astype(str)).merge(
        labels.assign(participant_id=labels["participant_id"].astype(str))[[*keys, "label"]], on=keys, how="inner"
    )
    if joined.empty:
        raise OAKitError("labels: no labelled knee matches the risk table; expected the same participants and horizons")
    group_by = ["horizon_months", "model"] if "model" in joined.columns else ["horizon_months"]
    scored = risks.groupby(group_by).size()
    tables = []
    for key, part in joined.groupby(group_by, sort=True):
        table = bootstrap_metrics(part["label"], part["risk"], part["participant_id"], n_resamples, seed)
        names = dict(zip(group_by, key if isinstance(key, tuple) else (key,), strict=True))
        tables.append(table.assign(**names, unlabelled=int(scored[key] - len(part))))
    return pd.concat(tables, ignore_index=True)
