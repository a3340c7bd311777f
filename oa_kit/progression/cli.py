"""``oa-kit progression fit|evaluate|predict|explain`` on per-knee feature tables and label tables (parquet/CSV).

Feature tables are keyed by participant_id and side (``--features`` clinical/joined table, optional ``--radiograph``
KL-CNN and ``--mri`` tables joined per knee at baseline); labels come from ``oa-kit labels``
(participant_id, side, horizon_months, label). Models are written as ``OUT/h{H}/`` folders (LightGBM text + JSON +
sha256); every prediction carries the provenance statement of the training data.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import pandas as pd

from oa_kit.errors import OAKitError
from oa_kit.features.assemble import join_knee_tables
from oa_kit.io.atomic import atomic_dir, atomic_path
from oa_kit.progression.baselines import LIGHTGBM_SET_OPTIONS
from oa_kit.progression.model import ProgressionModel, make_provenance
from oa_kit.progression.persist import load_model, save_model
from oa_kit.progression.pipeline import explain_model, labelled_rows, progression_report

DEFAULT_HORIZONS = (12, 24, 36, 48)
#: One LightGBM configuration for smoke runs (``--search quick``).
QUICK_GRID = ({"num_leaves": 8, "n_estimators": 100, "learning_rate": 0.05, "min_child_samples": 10},)


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a parquet or CSV table; ``ID`` is renamed to participant_id and ids are strings."""
    path = Path(path)
    if not path.exists():
        raise OAKitError(f"{path}: file not found; expected a parquet or CSV table")
    if path.suffix.lower() in (".parquet", ".pq"):
        table = pd.read_parquet(path)
    elif path.suffix.lower() in (".csv", ".txt"):
        table = pd.read_csv(path, dtype={"participant_id": str, "ID": str})
    else:
        raise OAKitError(f"{path}: unknown extension {path.suffix!r}; expected .parquet or .csv")
    if "participant_id" not in table.columns and "ID" in table.columns:
        table = table.rename(columns={"ID": "participant_id"})
    if "participant_id" in table.columns:
        table["participant_id"] = table["participant_id"].astype(str)
    return table


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write parquet or CSV by extension, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() in (".parquet", ".pq"):
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)
    return path


def load_features(args: argparse.Namespace) -> pd.DataFrame:
    """Join the clinical/joined table with the optional KL-CNN and MRI tables (baseline visit)."""
    return join_knee_tables(
        read_table(args.features),
        read_table(args.radiograph) if getattr(args, "radiograph", None) else None,
        read_table(args.mri) if getattr(args, "mri", None) else None,
        visit_month=args.visit_month,
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
        p.add_argument("--horizons", type=int, nargs="+", default=list(DEFAULT_HORIZONS), help="months")
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


def model_folders(folder: str | os.PathLike) -> dict[int, Path]:
    """Horizon → model folder inside a fit output (or the folder itself if it is one model)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OAKitError(f"{folder}: model folder not found; expected the output of `oa-kit progression fit`")
    if (folder / "checksums.json").exists():
        return {int(load_model(folder).horizon_months): folder}
    found = {int(p.name[1:]): p for p in sorted(folder.glob("h*")) if p.name[1:].isdigit() and p.is_dir()}
    if not found:
        raise OAKitError(f"{folder}: no h{{H}}/ model folders; expected the output of `oa-kit progression fit`")
    return found


def do_fit(args: argparse.Namespace) -> int:
    """Fit and save one model per horizon."""
    features, labels = load_features(args), read_table(args.labels)
    models = {}
    for h in args.horizons:
        X, y = labelled_rows(features, labels, h)
        grid = QUICK_GRID if args.search == "quick" else None
        models[h] = ProgressionModel(
            horizon_months=h,
            calibration=args.calibration,
            seed=args.seed,
            param_grid=grid,
            n_inner_splits=5,
            **LIGHTGBM_SET_OPTIONS,
        ).fit(X, y, provenance=_provenance(args))
        m = models[h]
        print(
            f"h{h}: {len(y)} knees, {int(y.sum())} events; inner-CV AUC {m.cv_results_['inner_auc'].max():.3f} "
            f"(tuning estimate, optimistic; use `evaluate` for out-of-sample figures)"
        )
    with atomic_dir(args.out, overwrite=args.overwrite) as tmp:
        for h, m in models.items():
            save_model(m, tmp / f"h{h}", metrics={"inner_cv_auc": float(m.cv_results_["inner_auc"].max())})
    print(f"models written to {args.out} — {models[args.horizons[0]].provenance_['statement']}")
    return 0


def do_evaluate(args: argparse.Namespace) -> int:
    """Evaluate out of sample per horizon and write model cards (and, with --fit-final, models + explanations)."""
    command = "oa-kit " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("oa-kit") else None
    table = progression_report(
        load_features(args),
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
    features = load_features(args)
    risks = [load_model(folder).predict_risk(features) for folder in model_folders(args.model).values()]
    table = pd.concat(risks, ignore_index=True)
    write_table(table, args.out)
    print(f"{len(table)} risks ({features.shape[0]} knees) written to {args.out} — {table['provenance'].iloc[0]}")
    return 0


def do_explain(args: argparse.Namespace) -> int:
    """SHAP tables, grouped values, plain-language text and figures per horizon."""
    features = load_features(args)
    model = None
    for h, folder in model_folders(args.model).items():
        model = load_model(folder)
        text = explain_model(model, features, args.out, args.top_k)
        print(f"h{h}: {text['explanation'].iloc[0]} ({text['by_family'].iloc[0]})")
    print(f"explanations written to {args.out} — {model.provenance_['statement']}")
    return 0


def handle(args: argparse.Namespace) -> int:
    """Dispatch the progression action; returns an exit code."""
    return {"fit": do_fit, "evaluate": do_evaluate, "predict": do_predict, "explain": do_explain}[args.action](args)
