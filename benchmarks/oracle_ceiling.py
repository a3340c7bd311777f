"""How close can any model get to the oracle, by cohort size? The progression targets of the synthetic cohort
(fused AUC >= oracle - 0.02, >= 80% of the oracle's gain over clinical-only) against the same out-of-fold procedure
fed the generator's TRUE image latents (``latent_reference``), on 500 participants and on the full preset's 4,000.

Only the cohort's tables are generated (no images, a few seconds), so the image models (KL-CNN, MRI) are not run:
the models are ``clinical``, ``clinical_kl`` (readers' KL) and ``latent_reference`` (clinical + KL + true latents),
each evaluated with :func:`oa_kit.evaluation.evaluate_progression` (participant-grouped 5-fold CV, calibration inside
CV) and compared with the oracle on the same knees. Printed per size and horizon: AUC, gap to the oracle and share of
the oracle's gain. **Synthetic data only: illustrative figures, not clinical estimates.**

Usage: ``OMP_NUM_THREADS=1 python benchmarks/oracle_ceiling.py [--out DIR] [--n-resamples 200]`` (about 6 min).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from oa_kit.evaluation.oracle import oracle_column, truth_latents
from oa_kit.evaluation.report import evaluate_progression
from oa_kit.progression.model import make_provenance
from oa_kit.progression.training_data import labelled_rows
from oa_kit.synth import generate_cohort
from oa_kit.workflows.demo import cohort_feature_table, cohort_labels

HORIZONS = (12, 24, 36, 48)
SIZES = (500, 4000)


def oracle_table(
    features: pd.DataFrame, labels: pd.DataFrame, truth: pd.DataFrame, horizon: int, n_resamples: int, seed: int
) -> pd.DataFrame:
    """Oracle comparison of clinical, clinical_kl and latent_reference at one horizon."""
    X, y = labelled_rows(features, labels, horizon)
    X = X.reset_index(drop=True)
    provenance = make_provenance("synthetic", cohort=f"oa_kit synthetic full cohort (tables only), seed {seed}")
    ev = evaluate_progression(
        X,
        y,
        horizon,
        oracle_risk=oracle_column(X, truth, horizon).to_numpy(),
        n_splits=5,
        n_resamples=n_resamples,
        seed=seed,
        site_held_out=False,
        provenance=provenance,
        include=["clinical", "clinical_kl"],
        latents=truth_latents(X, truth),
    )
    return ev.oracle


def main() -> None:
    """Generate the full preset's tables and print the oracle comparison for each size and horizon."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the cohort tables (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-resamples", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        generate_cohort(preset="full", out=root / "cohort", seed=args.seed, images=False, progress=False)
        tables, labels = cohort_labels(root / "cohort", root / "labels")
        features = cohort_feature_table(tables, None, None)
        truth = pd.read_parquet(root / "cohort" / "truth" / "knees.parquet")
    ids = sorted(features["participant_id"].astype(str).unique())
    rows = []
    for size in SIZES:
        keep = set(ids[:size])
        f = features[features["participant_id"].astype(str).isin(keep)]
        lab = labels.labels[labels.labels["participant_id"].astype(str).isin(keep)]
        for h in HORIZONS:
            table = oracle_table(f, lab, truth, h, args.n_resamples, args.seed)
            rows.append(table.assign(participants=size, horizon_months=h))
            print(
                f"{size} participants, {h} months: " + ", ".join(f"{r.model} {r.auc:.3f}" for r in table.itertuples()),
                flush=True,
            )
    out = pd.concat(rows)
    out = out[out["model"] != "oracle"].pivot_table(
        index=["participants", "horizon_months"], columns="model", values=["gap_to_oracle", "share_of_gain"]
    )
    print("\nGap to the oracle (AUC) and share of its gain over clinical-only (synthetic data):")
    print(out.round(3).to_string())


if __name__ == "__main__":
    main()
