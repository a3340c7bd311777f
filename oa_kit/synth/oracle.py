"""Oracle (Bayes-optimal) AUC of the synthetic cohort and the clinical-only gap the data card reports.

The generator stores each knee's true probability of progression by each horizon (``p_progress_{h}``), so the best
AUC any model can reach on observed labels is the AUC of that probability. ``oracle_table`` compares it with
participant-grouped cross-validated logistic regressions on clinical factors, clinical + KL, and clinical + KL + the
true image-only latents. Run ``python -m oa_kit.synth.oracle --preset demo --seed 0`` for the data-card figures
(synthetic data: the numbers describe the generator, not real patients).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from oa_kit.errors import OAKitError
from oa_kit.horizons import OAI_HORIZONS_MONTHS
from oa_kit.synth.generate import simulate_cohort
from oa_kit.synth.model import IMAGE_LATENTS, VISITS, SimulatedCohort

#: Clinical predictors (per knee) used by the clinical-only baseline, as in the OAProgression baselines.
CLINICAL_FEATURES: tuple[str, ...] = (
    "age",
    "female",
    "bmi",
    "injury",
    "surgery",
    "womac_pain",
    "womac_stiffness",
    "womac_function",
)


def reference_labels(cohort: SimulatedCohort, horizon_months: int) -> pd.DataFrame:
    """Observed Tiulpin-2019 labels from the primary (READPRJ 15) readings: a small reference labeller for oracle figures.

    A knee is eligible if its baseline reading is a KL 0–3 grade. Label 1: a follow-up reading within the horizon
    above the baseline KL that does not land on KL1, or a ``.P`` (replacement) reading. Label 0: no such reading and a
    valid KL reading at the horizon visit. Other knees (lost, dead, ``.T``/``.A`` at the horizon) are left out.
    The full labeller with reason codes is ``oa_kit.cohort.labels``.
    """
    months = dict(VISITS)
    if horizon_months not in months.values() or horizon_months == 0:
        raise OAKitError(
            f"horizon_months: {horizon_months} is not a follow-up visit; expected one of {OAI_HORIZONS_MONTHS}"
        )
    r = cohort.readings[cohort.readings["readprj"] == 15]
    base = r[(r["visit_month"] == 0) & (r["status"] == "ok") & (r["kl"] <= 3)][["ID", "side", "kl"]]
    base = base.rename(columns={"kl": "kl_baseline"})
    fu = r[(r["visit_month"] > 0) & (r["visit_month"] <= horizon_months)].merge(base, on=["ID", "side"])
    up = (fu["status"] == "ok") & (fu["kl"] > fu["kl_baseline"]) & (fu["kl"] != 1)
    event = (up | (fu["status"] == "P")).groupby([fu["ID"], fu["side"]]).any().rename("event")
    at_h = fu[(fu["visit_month"] == horizon_months) & (fu["status"] == "ok")][["ID", "side"]].assign(present=True)
    out = base.merge(event.reset_index(), on=["ID", "side"], how="left").merge(at_h, on=["ID", "side"], how="left")
    out["event"] = out["event"].astype("boolean").fillna(False).astype(bool)
    out["present"] = out["present"].astype("boolean").fillna(False).astype(bool)
    out = out[out["event"] | out["present"]]
    return pd.DataFrame(
        {
            "ID": out["ID"],
            "side": out["side"],
            "horizon_months": horizon_months,
            "kl_baseline": out["kl_baseline"].astype(int),
            "label": out["event"].astype(int),
        }
    ).reset_index(drop=True)


def oracle_auc(knees: pd.DataFrame, labels: pd.DataFrame, horizon_months: int) -> float:
    """ROC AUC of the true progression probability against observed 0/1 labels (the best reachable AUC).

    ``labels`` needs ``ID`` (or ``participant_id``), ``side`` and ``label``; ``knees`` is the truth table. Knees whose
    true baseline makes them ineligible (true KL4 or replaced at baseline: NaN probability) are left out.
    """
    merged = _with_truth(knees, labels, horizon_months)
    return float(roc_auc_score(merged["label"], merged[f"p_progress_{horizon_months}"]))


def _with_truth(knees: pd.DataFrame, labels: pd.DataFrame, horizon_months: int) -> pd.DataFrame:
    """Join labels onto the truth table by participant and side; checks both classes are present."""
    labels = labels.rename(columns={"participant_id": "ID"})
    for col in ("ID", "side", "label"):
        if col not in labels.columns:
            raise OAKitError(f"labels: missing column {col!r}; expected ID/participant_id, side, label")
    column = f"p_progress_{horizon_months}"
    if column not in knees.columns:
        raise OAKitError(f"knees: no column {column!r}; expected a horizon in {OAI_HORIZONS_MONTHS}")
    keep = ["ID", "side"] + [c for c in labels.columns if c not in knees.columns]
    merged = labels[keep].astype({"ID": str}).merge(knees, on=["ID", "side"], how="inner")
    merged = merged[merged[column].notna()]
    if merged["label"].nunique() < 2:
        raise OAKitError(
            f"labels: horizon {horizon_months} months has a single class after joining the truth; expected 0 and 1"
        )
    return merged


def design_matrix(frame: pd.DataFrame, features: Sequence[str], with_kl: bool) -> np.ndarray:
    """Numeric design matrix: chosen features plus optional one-hot observed baseline KL (0–3)."""
    cols = [
        frame["sex"].eq("F").astype(float).to_numpy() if f == "female" else frame[f].to_numpy(float) for f in features
    ]
    if with_kl:
        cols += [(frame["kl_baseline"] == k).to_numpy(float) for k in (1, 2, 3)]
    return np.column_stack(cols)


def cv_auc(frame: pd.DataFrame, features: Sequence[str], with_kl: bool, seed: int, n_splits: int = 5) -> float:
    """Participant-grouped cross-validated AUC of a logistic regression (every prediction out of sample)."""
    X = design_matrix(frame, features, with_kl)
    y = frame["label"].to_numpy()
    groups = frame["ID"].to_numpy()
    cv = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    proba = cross_val_predict(model, X, y, groups=groups, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, proba))


def oracle_table(
    cohort: SimulatedCohort, horizons_months: Sequence[int] = OAI_HORIZONS_MONTHS, seed: int = 0
) -> pd.DataFrame:
    """Tidy table (horizon_months, model, auc, gap_to_oracle, n_knees, n_events) of oracle vs logistic baselines.

    Models: ``oracle`` (true probability), ``clinical`` (age, sex, BMI, injury, surgery, WOMAC), ``clinical+KL``,
    ``clinical+KL+image_latents`` (adds the true image-only latents). All baselines are 5-fold participant-grouped CV.
    """
    rows = []
    for h in horizons_months:
        labels = reference_labels(cohort, h)
        frame = _with_truth(cohort.knees, labels, h)
        n, events = len(frame), int(frame["label"].sum())
        oracle = float(roc_auc_score(frame["label"], frame[f"p_progress_{h}"]))
        aucs = {
            "oracle": oracle,
            "clinical": cv_auc(frame, CLINICAL_FEATURES, False, seed),
            "clinical+KL": cv_auc(frame, CLINICAL_FEATURES, True, seed),
            "clinical+KL+image_latents": cv_auc(frame, CLINICAL_FEATURES + IMAGE_LATENTS, True, seed),
        }
        rows += [
            {
                "horizon_months": h,
                "model": name,
                "auc": auc,
                "gap_to_oracle": oracle - auc,
                "n_knees": n,
                "n_events": events,
            }
            for name, auc in aucs.items()
        ]
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the oracle table for a preset and seed (the data card's figures)."""

    parser = argparse.ArgumentParser(prog="python -m oa_kit.synth.oracle", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-participants", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        cohort = simulate_cohort(args.preset, args.seed, n_participants=args.n_participants)
    except OAKitError as exc:
        print(f"oracle: error: {exc}", file=sys.stderr)
        return 2
    table = oracle_table(cohort, seed=args.seed)
    wide = table.pivot(index="horizon_months", columns="model", values="auc")
    counts = table.groupby("horizon_months")[["n_knees", "n_events"]].first()
    print(f"Synthetic cohort (preset {args.preset}, seed {args.seed}; synthetic data, not real patients)")
    print(pd.concat([counts, wide.round(3)], axis=1).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
