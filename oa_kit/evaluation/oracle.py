"""Comparison with the oracle on synthetic data: the generator's true probabilities bound what any model can reach.

For each model: AUC gap to the oracle (oracle AUC − model AUC) and the share of the oracle's gain over the
clinical-only reference that the model captures, (AUC_model − AUC_clinical) / (AUC_oracle − AUC_clinical).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from oa_kit.errors import OAKitError
from oa_kit.evaluation.metrics import bootstrap_metrics, check_binary


def oracle_comparison(predictions: pd.DataFrame, oracle_risk: Sequence[float], clinical: str,
                      n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Each model's pooled out-of-sample AUC against the oracle on the same knees.

    Parameters
    ----------
    predictions : DataFrame
        Long out-of-sample table (model, row, participant_id, label, risk) from ``oa_kit.evaluation.validation``.
    oracle_risk : array-like
        True probability of the event by the horizon for every row of the evaluated table (indexed by ``row``).
    clinical : str
        Name of the clinical-only reference model.
    n_resamples, seed : int
        Bootstrap for the AUC CIs.

    Returns
    -------
    DataFrame
        model, auc, ci_low, ci_high, oracle_auc, gap_to_oracle, share_of_gain (NaN for the oracle itself).
    """
    oracle_risk = np.asarray(oracle_risk, dtype=float)
    models = list(predictions["model"].unique())
    if clinical not in models:
        raise OAKitError(f"clinical: model {clinical!r} not in predictions; expected one of {models}")
    first = predictions[predictions["model"] == models[0]]
    rows_idx = first["row"].to_numpy()
    y, truth = check_binary(first["label"], oracle_risk[rows_idx], name="oracle")
    oracle = bootstrap_metrics(y, truth, first["participant_id"], n_resamples, seed)
    oracle_auc = float(oracle.loc[oracle.metric == "auc", "estimate"].iloc[0])
    aucs = {}
    for name in models:
        part = predictions[predictions["model"] == name].set_index("row").loc[rows_idx]
        table = bootstrap_metrics(part["label"], part["risk"], part["participant_id"], n_resamples, seed)
        aucs[name] = table[table.metric == "auc"].iloc[0]
    out = [{"model": "oracle", "auc": oracle_auc, "ci_low": float(oracle.loc[0, "ci_low"]),
            "ci_high": float(oracle.loc[0, "ci_high"]), "oracle_auc": oracle_auc, "gap_to_oracle": 0.0,
            "share_of_gain": np.nan}]
    gain = oracle_auc - aucs[clinical]["estimate"]
    for name, row in aucs.items():
        out.append({"model": name, "auc": row["estimate"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
                    "oracle_auc": oracle_auc, "gap_to_oracle": oracle_auc - row["estimate"],
                    "share_of_gain": (row["estimate"] - aucs[clinical]["estimate"]) / gain if gain > 0 else np.nan})
    return pd.DataFrame(out)
