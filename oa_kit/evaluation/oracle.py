"""Comparison with the oracle on synthetic data: the generator's true probabilities bound what any model can reach.

For each model: AUC gap to the oracle (oracle AUC − model AUC) and the share of the oracle's gain over the
clinical-only reference that the model captures, (AUC_model − AUC_clinical) / (AUC_oracle − AUC_clinical).

Between the image models and the oracle sits the **latent reference** (``latent_reference``): the same
out-of-fold procedure as the ``clinical_kl`` baseline (logistic regression, nested participant-grouped CV,
calibration inside CV) fitted on clinical factors + KL + the generator's *true* image-only latents
(``image_cartilage_z``, ``image_osteophyte_z``, ``image_jsw_z``). It is the ceiling for any image model on this
sample: an image model that recovered the latents perfectly would score about this, and the remaining gap to the
oracle is the cost of estimating the risk model from a finite sample. Synthetic cohorts only (it needs the truth
table); the latents are never features of any other model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from oa_kit.errors import OAKitError
from oa_kit.features.schema import KEY_COLUMNS
from oa_kit.metrics import bootstrap_metrics, check_binary
from oa_kit.synth.model import IMAGE_LATENTS

#: The generator's true image-only latents (synthetic truth ``knees.parquet``) used by the latent reference only.
LATENT_COLUMNS: tuple[str, ...] = IMAGE_LATENTS
#: Name of the latent reference model in every table.
LATENT_REFERENCE = "latent_reference"


def truth_latents(X: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame | None:
    """The true image latents for each row of ``X`` (keys participant_id, side), or None if ``truth`` lacks them.

    Parameters
    ----------
    X : DataFrame
        Evaluated per-knee rows with ``participant_id`` and ``side``.
    truth : DataFrame
        Synthetic truth knees table (``ID`` or ``participant_id``, ``side``, ``image_*_z``).

    Returns
    -------
    DataFrame or None
        :data:`LATENT_COLUMNS` aligned with ``X``'s rows (index reset); None when any latent column is absent.
    """
    if not set(LATENT_COLUMNS) <= set(truth.columns):
        return None
    truth = truth.rename(columns={"ID": "participant_id"}) if "participant_id" not in truth.columns else truth
    for key in ("participant_id", "side"):
        if key not in X.columns or key not in truth.columns:
            raise OAKitError(f"truth.{key}: column missing; expected knees keyed by participant_id and side")
    truth = truth.assign(participant_id=truth["participant_id"].astype(str))
    keys = X[["participant_id", "side"]].astype({"participant_id": str}).reset_index(drop=True)
    out = keys.merge(
        truth[["participant_id", "side", *LATENT_COLUMNS]],
        on=["participant_id", "side"],
        how="left",
        validate="many_to_one",
    )
    if out[list(LATENT_COLUMNS)].isna().any().any():
        raise OAKitError(
            f"truth: {int(out[list(LATENT_COLUMNS)].isna().any(axis=1).sum())} evaluated knees lack "
            "image latents; expected every knee in the synthetic truth table"
        )
    return out[list(LATENT_COLUMNS)]


def oracle_comparison(
    predictions: pd.DataFrame, oracle_risk: Sequence[float], clinical: str, n_resamples: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Each model's pooled out-of-sample AUC against the oracle on the same knees.

    Parameters
    ----------
    predictions : DataFrame
        Long out-of-sample table (model, row, participant_id, label, risk) from ``oa_kit.evaluation.validation``.
    oracle_risk : array-like
        True probability of the event by the horizon for every row of the evaluated table (indexed by ``row``); NaN
        where the generator has none (a knee truly KL 4 at baseline that the readers graded lower, so it is labelled
        but cannot progress in the generator). Every model is compared with the oracle on the knees where it is
        defined; ``knees`` in the result says how many.
    clinical : str
        Name of the clinical-only reference model.
    n_resamples, seed : int
        Bootstrap for the AUC CIs.

    Returns
    -------
    DataFrame
        model, auc, ci_low, ci_high, ece, oracle_auc, gap_to_oracle, share_of_gain (NaN for the oracle itself),
        knees (compared); rows in prediction order (clinical → image models → latent reference) with the oracle last.
    """
    oracle_risk = np.asarray(oracle_risk, dtype=float)
    models = list(predictions["model"].unique())
    if clinical not in models:
        raise OAKitError(f"clinical: model {clinical!r} not in predictions; expected one of {models}")
    first = predictions[predictions["model"] == models[0]]
    first = first[np.isfinite(oracle_risk[first["row"].to_numpy()])]
    if first.empty:
        raise OAKitError("oracle: no evaluated knee has a true probability; expected the synthetic truth for them")
    rows_idx = first["row"].to_numpy()
    y, truth = check_binary(first["label"], oracle_risk[rows_idx], name="oracle")
    oracle = bootstrap_metrics(y, truth, first["participant_id"], n_resamples, seed)
    oracle = oracle.set_index("metric")
    oracle_auc = float(oracle.loc["auc", "estimate"])
    aucs, eces = {}, {}
    for name in models:
        part = predictions[predictions["model"] == name].set_index("row").loc[rows_idx]
        table = bootstrap_metrics(part["label"], part["risk"], part["participant_id"], n_resamples, seed)
        aucs[name] = table.set_index("metric").loc["auc"]
        eces[name] = float(table.set_index("metric").loc["ece", "estimate"])
    out = []
    gain = oracle_auc - aucs[clinical]["estimate"]
    for name, row in aucs.items():
        out.append(
            {
                "model": name,
                "auc": row["estimate"],
                "ci_low": row["ci_low"],
                "ci_high": row["ci_high"],
                "ece": eces[name],
                "oracle_auc": oracle_auc,
                "gap_to_oracle": oracle_auc - row["estimate"],
                "share_of_gain": (row["estimate"] - aucs[clinical]["estimate"]) / gain if gain > 0 else np.nan,
            }
        )
    out.append(
        {
            "model": "oracle",
            "auc": oracle_auc,
            "ci_low": float(oracle.loc["auc", "ci_low"]),
            "ci_high": float(oracle.loc["auc", "ci_high"]),
            "ece": float(oracle.loc["ece", "estimate"]),
            "oracle_auc": oracle_auc,
            "gap_to_oracle": 0.0,
            "share_of_gain": np.nan,
        }
    )
    return pd.DataFrame(out).assign(knees=len(rows_idx))


def oracle_column(X: pd.DataFrame, truth: pd.DataFrame, horizon: int) -> pd.Series:
    """The generator's true probability ``p_progress_{H}`` for each row of ``X`` (synthetic cohorts only).

    NaN for a knee the generator holds no probability for (truly KL 4 at baseline, but graded lower by the readers
    and so labelled); :func:`oa_kit.evaluation.oracle_comparison` leaves those out. A knee missing from ``truth``
    is an error.
    """
    col = f"p_progress_{horizon}"
    truth = truth.rename(columns={"ID": "participant_id"}) if "participant_id" not in truth.columns else truth
    if col not in truth.columns:
        raise OAKitError(f"oracle: column {col} missing; expected the synthetic truth knees table")
    truth = truth.assign(participant_id=truth["participant_id"].astype(str), _in_truth=True)
    out = X[list(KEY_COLUMNS)].merge(truth[[*KEY_COLUMNS, col, "_in_truth"]], on=list(KEY_COLUMNS), how="left")
    missing = out["_in_truth"].isna()
    if missing.any():
        raise OAKitError(f"oracle: {int(missing.sum())} labelled knees are not in the truth table; expected every knee")
    return out[col]
