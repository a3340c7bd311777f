"""``oa-kit progression fit|evaluate|predict|explain`` on per-knee feature tables and label tables (parquet/CSV).

Feature tables are keyed by participant_id and side (``--features`` clinical/joined table, optional ``--radiograph``
KL-CNN and ``--mri`` tables joined per knee at baseline); labels come from ``oa-kit labels``
(participant_id, side, horizon_months, label). Models are written as ``OUT/h{H}/`` folders (LightGBM text + JSON +
sha256); every prediction carries the provenance statement of the training data.
"""

from __future__ import annotations

import argparse
import shlex
import sys

import pandas as pd

from oa_kit.api import QUICK_GRID, fit_progression, load_progression
from oa_kit.horizons import MODEL_HORIZONS_MONTHS
from oa_kit.io.tables import read_table, write_table
from oa_kit.progression.model import make_provenance
from oa_kit.workflows.progression import (
    explain_models,
    progression_report,
    read_features,
)


def _provenance(args: argparse.Namespace) -> dict:
    """Provenance record from --data / --cohort."""
    return make_provenance(args.data, args.cohort or "")


def _add_inputs(p: argparse.ArgumentParser, labels: bool) -> None:
    """Common input options."""
    p.add_argument("--features", required=True, help="per-knee clinical (or already joined) table, parquet/CSV")
    p.add_argument("--radiograph", help="KL-CNN output table (kl_p0..4 or p0..4, kl_emb_*)")
    p.add_argument("--mri", help="MRI biomarker table (thickness/volume, mri_emb_*)")
    p.add_argument("--visit-month", type=int, default=0, help="visit of the features (months, default 0)")
    if labels:
        p.add_argument("--labels", required=True, help="labels table: participant_id, side, horizon_months, label")
        p.add_argument("--horizons", type=int, nargs="+", default=list(MODEL_HORIZONS_MONTHS), help="months")
        p.add_argument(
            "--data",
            choices=("synthetic", "real", "unknown"),
            default="unknown",
            help="provenance of the training data",
        )
        p.add_argument("--cohort", help="cohort name recorded in provenance (e.g. 'oa_kit synthetic demo seed 0')")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--calibration", choices=("sigmoid", "isotonic", "none"), default="sigmoid")
        p.add_argument(
            "--search",
            choices=("default", "quick"),
            default="default",
            help="LightGBM search: the 4-configuration grid, or one configuration for smoke runs",
        )


def register(subparsers) -> None:
    """Add the ``progression`` subcommand with fit / evaluate / predict / explain."""
    parser = subparsers.add_parser(
        "progression", help="progression models: fit, evaluate, predict, explain", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = sub.add_parser("fit", help="fit one calibrated LightGBM model per horizon")
    _add_inputs(fit, labels=True)
    fit.add_argument("--out", required=True, help="output folder (h{H}/ per horizon)")
    fit.add_argument("--overwrite", action="store_true")
    ev = sub.add_parser("evaluate", help="out-of-sample evaluation of the fused model and baselines + model cards")
    _add_inputs(ev, labels=True)
    ev.add_argument("--out", required=True, help="report folder (cards, CSV tables, HTML figures)")
    ev.add_argument(
        "--oracle",
        help="synthetic truth table with p_progress_{H} per knee (truth/knees.parquet); "
        "its image_*_z latents add the latent reference row",
    )
    ev.add_argument("--n-splits", type=int, default=5)
    ev.add_argument("--n-resamples", type=int, default=1000)
    ev.add_argument("--no-site-held-out", action="store_true")
    ev.add_argument(
        "--fit-final",
        action="store_true",
        help="also fit, save (OUT/models/h{H}) and explain (OUT/explain) the final model per horizon",
    )
    ev.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes, one horizon each (-1: one per core); same tables for any value",
    )
    pr = sub.add_parser("predict", help="risk per knee and horizon, with provenance")
    _add_inputs(pr, labels=False)
    pr.add_argument("--model", required=True, help="folder from `progression fit` (or one h{H}/ model folder)")
    pr.add_argument("--out", required=True, help="output table (.csv or .parquet)")
    ex = sub.add_parser("explain", help="SHAP values, grouped by family, plain-language text and figures")
    _add_inputs(ex, labels=False)
    ex.add_argument("--model", required=True, help="folder from `progression fit` (or one h{H}/ model folder)")
    ex.add_argument("--out", required=True, help="output folder")
    ex.add_argument("--top-k", type=int, default=3)
    parser.set_defaults(func=handle)


def _features(args: argparse.Namespace) -> pd.DataFrame:
    """The per-knee table from --features and the optional --radiograph / --mri tables."""
    return read_features(args.features, args.radiograph, args.mri, visit_month=args.visit_month)


def do_fit(args: argparse.Namespace) -> int:
    """Fit and save one model per horizon."""
    models = fit_progression(
        _features(args),
        read_table(args.labels),
        args.horizons,
        data=args.data,
        cohort=args.cohort or "",
        seed=args.seed,
        calibration=args.calibration,
        quick=args.search == "quick",
    )
    for h, m in models.models.items():
        print(
            f"h{h}: {m.n_train_} knees, {m.n_events_} events; inner-CV AUC {m.cv_results_['inner_auc'].max():.3f} "
            "(tuning estimate, optimistic; use `evaluate` for out-of-sample figures)"
        )
    models.save(args.out, overwrite=args.overwrite)
    print(f"models written to {args.out} — {models.provenance}")
    return 0


def do_evaluate(args: argparse.Namespace) -> int:
    """Evaluate out of sample per horizon and write model cards (and, with --fit-final, models + explanations)."""
    command = "oa-kit " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("oa-kit") else None
    table = progression_report(
        _features(args),
        read_table(args.labels),
        args.out,
        args.horizons,
        truth=read_table(args.oracle) if args.oracle else None,
        provenance=_provenance(args),
        n_splits=args.n_splits,
        n_resamples=args.n_resamples,
        seed=args.seed,
        site_held_out=not args.no_site_held_out,
        fit_final=args.fit_final,
        lightgbm_grid=QUICK_GRID if args.search == "quick" else None,
        calibration=args.calibration,
        command=command,
        progress=False,
        n_jobs=args.jobs,
    )
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.drop(columns="provenance").round(3).to_string(index=False))
    print(table["provenance"].iloc[0])
    return 0


def do_predict(args: argparse.Namespace) -> int:
    """Risk per knee and horizon with provenance."""
    features = _features(args)
    table = load_progression(args.model).predict(features)
    write_table(table, args.out)
    print(f"{len(table)} risks ({features.shape[0]} knees) written to {args.out} — {table['provenance'].iloc[0]}")
    return 0


def do_explain(args: argparse.Namespace) -> int:
    """SHAP tables, grouped values, plain-language text and figures per horizon."""
    models = load_progression(args.model)
    for h, text in explain_models(models, _features(args), args.out, args.top_k).items():
        print(f"h{h}: {text['explanation'].iloc[0]} ({text['by_family'].iloc[0]})")
    print(f"explanations written to {args.out} — {models.provenance}")
    return 0


def handle(args: argparse.Namespace) -> int:
    """Dispatch the progression action; returns an exit code."""
    return {"fit": do_fit, "evaluate": do_evaluate, "predict": do_predict, "explain": do_explain}[args.action](args)
