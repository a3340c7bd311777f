"""One horizon's full progression evaluation: baselines and fused model on identical participant-grouped folds,
site-held-out validation, metrics with CIs, DeLong, calibration, decision curve, subgroups, oracle comparison.
On synthetic cohorts the headline runs clinical → image models → latent reference → oracle
(see :mod:`oa_kit.evaluation.oracle`).

``evaluate_progression`` returns a :class:`ProgressionEvaluation` (tables + ``figures()``), which
:mod:`oa_kit.evaluation.model_card` turns into a model card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from oa_kit.errors import OAKitError
from oa_kit.evaluation.oracle import LATENT_COLUMNS, LATENT_REFERENCE, oracle_comparison
from oa_kit.evaluation.subgroups import subgroup_metrics
from oa_kit.evaluation.validation import (
    compare_to_reference,
    cross_validate,
    predict_splits,
    site_held_out_validate,
    summarize,
)
from oa_kit.metrics import calibration_curve, net_benefit
from oa_kit.progression.baselines import baseline_models, feature_sets, reference_model
from oa_kit.progression.model import ProgressionModel, make_provenance, resolve_groups

#: Thresholds (risk) at which the card tabulates net benefit.
CARD_THRESHOLDS: tuple[float, ...] = (0.05, 0.10, 0.15, 0.20, 0.30, 0.40, 0.50)


@dataclass
class ProgressionEvaluation:
    """Everything measured for one horizon; tables are tidy DataFrames, figures come from :meth:`figures`."""

    horizon_months: int
    main_model: str
    reference_model: str
    predictions: pd.DataFrame
    metrics: pd.DataFrame
    delong: pd.DataFrame
    subgroups: pd.DataFrame
    calibration: pd.DataFrame
    decision_curve: pd.DataFrame
    site_metrics: pd.DataFrame | None
    oracle: pd.DataFrame | None
    feature_sets: dict[str, list[str]]
    cohort: dict[str, int]
    provenance: dict
    settings: dict = field(default_factory=dict)

    def headline(self) -> pd.DataFrame:
        """AUC (95% CI) and ECE per model, plus oracle gap where known — the table ``make demo`` prints.

        With an oracle, the latent reference (if evaluated) follows the models and an ``oracle`` row closes the
        table, so it reads clinical → image models → latent ceiling → oracle.
        """
        auc = self.metrics[self.metrics.metric == "auc"].set_index("model")
        ece = self.metrics[self.metrics.metric == "ece"].set_index("model")["estimate"]
        out = pd.DataFrame(
            {
                "horizon_months": self.horizon_months,
                "auc": auc["estimate"],
                "auc_ci_low": auc["ci_low"],
                "auc_ci_high": auc["ci_high"],
                "ece": ece,
            }
        )
        if self.oracle is not None:
            o = self.oracle.set_index("model")
            oracle_row = pd.DataFrame(
                {
                    "horizon_months": self.horizon_months,
                    "auc": o.loc["oracle", "auc"],
                    "auc_ci_low": o.loc["oracle", "ci_low"],
                    "auc_ci_high": o.loc["oracle", "ci_high"],
                    "ece": o.loc["oracle", "ece"],
                },
                index=pd.Index(["oracle"], name="model"),
            )
            out = pd.concat([out, oracle_row])
            out["oracle_auc"] = float(o.loc["oracle", "auc"])
            out["gap_to_oracle"] = o["gap_to_oracle"]
            out["share_of_gain"] = o["share_of_gain"]
        out["provenance"] = self.provenance.get("statement", "")
        return out.rename_axis("model").reset_index()


#: Families of the generator's true image latents (the cartilage latent is what MRI shows, the others radiographs).
LATENT_FAMILIES = {c: "mri" if "cartilage" in c else "radiograph" for c in LATENT_COLUMNS}
#: KL grade as a category (indicator per grade) for the latent reference only.
LATENT_KL_LEVEL = "kl_level_latent_reference"


def latent_reference_model(
    table: pd.DataFrame,
    latents: pd.DataFrame,
    horizon_months: int,
    seed: int = 0,
    calibration: str = "sigmoid",
    n_inner_splits: int = 5,
) -> tuple[pd.DataFrame, ProgressionModel]:
    """The table with the true latents appended and the unfitted latent reference model.

    Logistic regression on clinical + KL + latents (clinical + latents when there is no KL column), KL entering both
    linearly and as indicators per grade (``kl_level``), since the generator's KL effect is not linear in the grade.
    """
    if len(latents) != len(table) or list(latents.columns) != list(LATENT_COLUMNS):
        raise OAKitError(
            f"latents: {len(latents)} rows with columns {list(latents.columns)}; expected {len(table)} "
            f"rows of {list(LATENT_COLUMNS)}"
        )
    clash = {*LATENT_COLUMNS, LATENT_KL_LEVEL} & set(table.columns)
    if clash:
        raise OAKitError(f"{sorted(clash)[0]}: truth latent already in the feature table; expected it only in truth")
    sets = feature_sets(table)
    extra = latents.set_axis(table.index)
    base = list(sets.get("clinical", []))
    if "kl" in sets:
        kl = sets["kl"][0]
        extra.insert(0, LATENT_KL_LEVEL, table[kl].map(lambda v: f"KL{int(v)}" if pd.notna(v) else None))
        base += [kl, LATENT_KL_LEVEL]
    model = ProgressionModel(
        horizon_months=horizon_months,
        estimator="logistic",
        columns=[*base, *LATENT_COLUMNS],
        calibration=calibration,
        n_inner_splits=n_inner_splits,
        seed=seed,
        families=LATENT_FAMILIES,
    )
    return pd.concat([table, extra], axis=1), model


def evaluate_progression(
    table: pd.DataFrame,
    y: Sequence[int],
    horizon_months: int,
    oracle_risk: Sequence[float] | None = None,
    groups: Sequence | None = None,
    n_splits: int = 5,
    n_resamples: int = 1000,
    seed: int = 0,
    site_held_out: bool = True,
    provenance: Mapping[str, str] | None = None,
    include: Sequence[str] | None = None,
    lightgbm_grid: Sequence[Mapping] | None = None,
    calibration: str = "sigmoid",
    latents: pd.DataFrame | None = None,
    progress: bool = False,
    test_table: pd.DataFrame | None = None,
    test_y: Sequence[int] | None = None,
) -> ProgressionEvaluation:
    """Evaluate the fused model and every baseline out of sample for one horizon: by participant-grouped
    cross-validation of ``table``, or — with ``test_table`` — fitted on ``table`` and scored on a withheld table.

    Parameters
    ----------
    table : DataFrame
        Joined per-knee table (clinical + KL-CNN + MRI), one row per labelled knee.
    y : array-like of 0/1
        Progression by ``horizon_months``, aligned with ``table``.
    horizon_months : int
        The horizon.
    oracle_risk : array-like, optional
        True event probability per row (synthetic cohorts only) for the oracle comparison.
    groups : array-like, optional
        Participant ids (default ``table['participant_id']``).
    n_splits : int
        Outer participant-grouped folds.
    n_resamples : int
        Participant bootstrap resamples for every CI (≥ 1000 for reports).
    seed : int
        Seed for folds, models and bootstrap.
    site_held_out : bool
        Also run leave-one-site-out validation of the main model (needs a ``site`` column).
    provenance : mapping, optional
        From :func:`oa_kit.progression.make_provenance`; shown on every figure and table.
    include : sequence of str, optional
        Subset of baseline feature sets (default: every available one).
    lightgbm_grid : sequence of dict, optional
        Override of the LightGBM search grid (smaller for quick runs).
    calibration : str
        Calibration method of every model.
    latents : DataFrame, optional
        The generator's true image latents per row (:func:`oa_kit.evaluation.oracle.truth_latents`; synthetic
        cohorts only): adds the ``latent_reference`` model (clinical + KL + latents, logistic, same folds), the
        ceiling for any image model on this sample. The latents are features of no other model.
    progress : bool
        tqdm bars.
    test_table, test_y : DataFrame, array-like, optional
        A withheld table and its outcomes: every model is fitted once on ``table`` (with its nested tuning and
        calibration) and predicts these knees; no participant may be in both (checked). ``oracle_risk`` then
        belongs to the test rows; no latent reference and no site-held-out validation in this mode.

    Returns
    -------
    ProgressionEvaluation
    """
    table = table.reset_index(drop=True)
    y = np.asarray(y).astype(int)
    n_train = len(table)
    if test_table is not None:
        if test_y is None or len(test_y) != len(test_table):
            raise OAKitError("test_y: one outcome per test_table row expected; got none or a different length")
        table = pd.concat([table, test_table.reset_index(drop=True)], ignore_index=True)
        y = np.concatenate([y, np.asarray(test_y).astype(int)])
        pad = np.full(n_train, np.nan)
        oracle_risk = None if oracle_risk is None else np.concatenate([pad, np.asarray(oracle_risk, dtype=float)])
        latents, site_held_out = None, False
    groups = resolve_groups(table, groups)
    provenance = dict(provenance) if provenance is not None else make_provenance()
    models = baseline_models(
        table.iloc[:n_train], horizon_months, seed, calibration, include=include, lightgbm_grid=lightgbm_grid
    )
    reference = reference_model(models)
    main = "fused" if "fused" in models else list(models)[-1]
    evaluated = table
    if latents is not None:
        evaluated, models[LATENT_REFERENCE] = latent_reference_model(table, latents, horizon_months, seed, calibration)
    if test_table is None:
        predictions = cross_validate(models, evaluated, y, groups, n_splits, seed, provenance, progress)
    else:
        split = {"held_out": (np.arange(n_train), np.arange(n_train, len(table)))}
        predictions = predict_splits(models, evaluated, y, split, groups, provenance, progress)
    metrics = summarize(predictions, n_resamples, seed)
    main_pred = predictions[predictions.model == main]
    sub_table = table.iloc[main_pred["row"].to_numpy()]
    subgroups = subgroup_metrics(
        main_pred["label"], main_pred["risk"], main_pred["participant_id"], sub_table, n_resamples, seed
    )
    site_metrics = None
    if site_held_out and "site" in table.columns and table["site"].nunique() > 1:
        site_pred = site_held_out_validate(
            {main: models[main]}, table, y, groups, provenance=provenance, progress=progress
        )
        site_metrics = summarize(site_pred, n_resamples, seed, by_split=True, split_label="held_out_site")
    oracle = None
    if oracle_risk is not None:
        oracle = oracle_comparison(predictions, np.asarray(oracle_risk, dtype=float), reference, n_resamples, seed)
    return ProgressionEvaluation(
        horizon_months=int(horizon_months),
        main_model=main,
        reference_model=reference,
        predictions=predictions,
        metrics=metrics,
        delong=compare_to_reference(predictions, reference),
        subgroups=subgroups,
        calibration=calibration_curve(main_pred["label"], main_pred["risk"]),
        decision_curve=net_benefit(main_pred["label"], main_pred["risk"], np.asarray(CARD_THRESHOLDS)),
        site_metrics=site_metrics,
        oracle=oracle,
        feature_sets={
            **feature_sets(table),
            **{n: list(m.columns) for n, m in models.items() if n == LATENT_REFERENCE},
        },
        cohort=_cohort_counts(y, groups, n_train if test_table is not None else None),
        provenance=provenance,
        settings={
            "n_splits": n_splits,
            "n_resamples": n_resamples,
            "seed": seed,
            "calibration": calibration,
            "site_held_out": bool(site_metrics is not None),
            "validation": "held-out test table" if test_table is not None else "cross-validation",
            "n_configurations": len(models[main].search_grid()),
            "n_inner_splits": models[main].n_inner_splits,
        },
    )


def _cohort_counts(y: np.ndarray, groups: np.ndarray, n_train: int | None) -> dict[str, int]:
    """Knees, participants and events evaluated (the test rows only when a withheld table was scored)."""
    if n_train is None:
        return {"knees": len(y), "participants": len(np.unique(groups)), "events": int(y.sum())}
    test_y, test_groups = y[n_train:], groups[n_train:]
    return {
        "knees": len(test_y),
        "participants": len(np.unique(test_groups)),
        "events": int(test_y.sum()),
        "train_knees": int(n_train),
        "train_participants": len(np.unique(groups[:n_train])),
        "train_events": int(y[:n_train].sum()),
    }
