"""``oa-kit progression fit|evaluate|predict|score|explain`` on per-knee feature and label tables (parquet/CSV).

Feature tables are keyed by participant_id and side (``--features`` clinical/joined table, optional ``--radiograph``
KL-CNN and ``--mri`` tables joined per knee at baseline); labels come from ``oa-kit labels``
(participant_id, side, horizon_months, label). Models are written as ``OUT/h{H}/`` folders (LightGBM text + JSON +
sha256); every prediction carries the provenance statement of the training data, and, for models fitted with
``--bootstrap N``, a 95% interval of each knee's risk (``risk_low``, ``risk_high``) from N participant-level refits.
"""

from __future__ import annotations

import argparse
import shlex
import sys

import pandas as pd

from oa_kit.api import QUICK_GRID, fit_progression, load_progression
from oa_kit.cli import jobs_int, nonnegative_int, positive_int
from oa_kit.errors import OAKitError
from oa_kit.features.schema import keep_families
from oa_kit.horizons import MODEL_HORIZONS_MONTHS
from oa_kit.io.atomic import check_output_dir
from oa_kit.io.tables import check_table_path, read_table, write_table
from oa_kit.progression.model import make_provenance
from oa_kit.workflows.progression import (
    explain_models,
    progression_report,
    read_features,
    score_predictions,
)


def _provenance(args: argparse.Namespace) -> dict:
    """Provenance record from --data / --cohort."""
    return make_provenance(args.data, args.cohort or "")


def _add_inputs(p: argparse.ArgumentParser, labels: bool) -> None:
    """Common input options."""
    p.add_argument("--features", required=True, help="per-knee clinical (or already joined) table, parquet/CSV")
    p.add_argument("--radiograph", help="KL-CNN output table (kl_p0..4 or p0..4, kl_emb_*)")
    p.add_argument("--mri", help="MRI biomarker table (thickness/volume, mri_emb_*)")
    p.add_argument("--visit-month", type=nonnegative_int, default=0, help="visit of the features (months, default 0)")
    if labels:
        p.add_argument("--labels", required=True, help="labels table: participant_id, side, horizon_months, label")
        p.add_argument("--horizons", type=positive_int, nargs="+", default=list(MODEL_HORIZONS_MONTHS), help="months")
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


def _add_model_options(p: argparse.ArgumentParser) -> None:
    """Options choosing what the models use: estimator, embedding components, feature families, declared columns."""
    p.add_argument(
        "--feature-families",
        nargs="+",
        choices=("clinical", "radiograph", "mri"),
        help="use only these feature families (default: all present)",
    )
    p.add_argument(
        "--declare",
        nargs="+",
        default=[],
        metavar="COLUMN=FAMILY",
        help="family of columns the feature schema does not know, e.g. hba1c=clinical (else they are an error)",
    )


def _declared(args: argparse.Namespace) -> dict[str, str] | None:
    """``--declare col=family`` pairs as a mapping (one-line error on a malformed pair)."""
    pairs = {}
    for item in args.declare:
        column, sep, family = item.partition("=")
        if not sep or not column or not family:
            raise OAKitError(f"--declare: {item!r}; expected COLUMN=FAMILY, e.g. hba1c=clinical")
        pairs[column] = family
    return pairs or None


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
    fit.add_argument("--estimator", choices=("lightgbm", "logistic"), default="lightgbm")
    fit.add_argument(
        "--kl-weights",
        help="weights of the KL-CNN behind --radiograph when not the shipped one (copied into the model folder)",
    )
    fit.add_argument(
        "--bootstrap",
        type=nonnegative_int,
        default=0,
        metavar="N",
        help="participant-level bootstrap refits per horizon for a 95%% risk interval per knee (default 0: none; "
        "each refit costs about one final fit)",
    )
    fit.add_argument(
        "--components",
        type=positive_int,
        default=None,
        help="PCA components per image embedding (default 3 LightGBM, 8 logistic)",
    )
    _add_model_options(fit)
    ev = sub.add_parser("evaluate", help="out-of-sample evaluation of the fused model and baselines + model cards")
    _add_inputs(ev, labels=True)
    ev.add_argument("--out", required=True, help="report folder (cards, CSV tables, HTML figures)")
    ev.add_argument(
        "--oracle",
        help="synthetic truth table with p_progress_{H} per knee (truth/knees.parquet); "
        "its image_*_z latents add the latent reference row",
    )
    ev.add_argument("--test-features", help="a withheld per-knee table: fit on --features, score these knees")
    ev.add_argument("--test-radiograph", help="KL table of the withheld knees")
    ev.add_argument("--test-mri", help="MRI biomarker table of the withheld knees")
    ev.add_argument("--test-labels", help="labels of the withheld knees (required with --test-features)")
    _add_model_options(ev)
    ev.add_argument("--n-splits", type=int, default=5)
    ev.add_argument("--n-resamples", type=positive_int, default=1000)
    ev.add_argument("--no-site-held-out", action="store_true")
    ev.add_argument(
        "--fit-final",
        action="store_true",
        help="also fit, save (OUT/models/h{H}) and explain (OUT/explain) the final model per horizon",
    )
    ev.add_argument(
        "--bootstrap",
        type=nonnegative_int,
        default=0,
        metavar="N",
        help="with --fit-final: participant-level bootstrap refits of each final model (95%% risk intervals)",
    )
    ev.add_argument(
        "--jobs",
        type=jobs_int,
        default=1,
        help="worker processes, one horizon each (-1: one per core); same tables for any value",
    )
    pr = sub.add_parser("predict", help="risk per knee and horizon, with provenance")
    _add_inputs(pr, labels=False)
    pr.add_argument("--model", required=True, help="folder from `progression fit` (or one h{H}/ model folder)")
    pr.add_argument("--out", required=True, help="output table (.csv or .parquet)")
    sc = sub.add_parser(
        "score", help="score a `progression predict` table against labels (AUC, AP, Brier, ECE with CIs)"
    )
    sc.add_argument("--risks", required=True, help="output of `oa-kit progression predict`")
    sc.add_argument("--labels", required=True, help="labels table of the same knees")
    sc.add_argument("--out", required=True, help="output table (.csv or .parquet)")
    sc.add_argument("--n-resamples", type=positive_int, default=1000)
    sc.add_argument("--seed", type=int, default=0)
    ex = sub.add_parser("explain", help="SHAP values, grouped by family, plain-language text and figures")
    _add_inputs(ex, labels=False)
    ex.add_argument("--model", required=True, help="folder from `progression fit` (or one h{H}/ model folder)")
    ex.add_argument("--out", required=True, help="output folder")
    ex.add_argument("--top-k", type=positive_int, default=3)
    parser.set_defaults(func=handle)


def _features(args: argparse.Namespace) -> pd.DataFrame:
    """The per-knee table from --features and the optional --radiograph / --mri tables."""
    return read_features(args.features, args.radiograph, args.mri, visit_month=args.visit_month)


def do_fit(args: argparse.Namespace) -> int:
    """Fit and save one model per horizon."""
    check_output_dir(args.out, overwrite=args.overwrite)
    models = fit_progression(
        _features(args),
        read_table(args.labels),
        args.horizons,
        data=args.data,
        cohort=args.cohort or "",
        seed=args.seed,
        calibration=args.calibration,
        quick=args.search == "quick",
        estimator=args.estimator,
        n_components=args.components,
        feature_families=args.feature_families,
        families=_declared(args),
        kl_weights=args.kl_weights,
        n_bootstrap=args.bootstrap,
    )
    for h, m in models.models.items():
        print(
            f"h{h}: {m.n_train_} knees, {m.n_events_} events; inner-CV AUC {m.cv_results_['inner_auc'].max():.3f} "
            f"(tuning estimate, optimistic; use `evaluate` for out-of-sample figures); {len(m.bootstrap_)} "
            "bootstrap refits"
        )
    models.save(args.out, overwrite=args.overwrite)
    print(f"models written to {args.out} — {models.provenance}")
    return 0


def do_evaluate(args: argparse.Namespace) -> int:
    """Evaluate out of sample per horizon and write model cards (and, with --fit-final, models + explanations)."""
    command = "oa-kit " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("oa-kit") else None
    check_output_dir(args.out)
    if args.n_splits < 2:
        raise OAKitError(f"--n-splits: {args.n_splits}; expected at least 2 cross-validation folds")
    if args.bootstrap and not args.fit_final:
        raise OAKitError(f"--bootstrap: {args.bootstrap} refits without --fit-final; expected --fit-final with it")
    if bool(args.test_features) != bool(args.test_labels):
        raise OAKitError("--test-features/--test-labels: one given without the other; expected both or neither")
    test = None
    if args.test_features:
        test = read_features(args.test_features, args.test_radiograph, args.test_mri, visit_month=args.visit_month)
    table = progression_report(
        _restricted(_features(args), args),
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
        n_bootstrap=args.bootstrap,
        lightgbm_grid=QUICK_GRID if args.search == "quick" else None,
        calibration=args.calibration,
        command=command,
        progress=False,
        n_jobs=args.jobs,
        test_features=_restricted(test, args) if test is not None else None,
        test_labels=read_table(args.test_labels) if test is not None else None,
    )
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.drop(columns="provenance").round(3).to_string(index=False))
    print(table["provenance"].iloc[0])
    return 0


def _restricted(table: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    """The table without the feature families left out by --feature-families."""
    if not args.feature_families:
        return table
    return keep_families(table, args.feature_families, _declared(args))


def do_score(args: argparse.Namespace) -> int:
    """Score a risk table against labels and write the metrics."""
    check_table_path(args.out)
    table = score_predictions(read_table(args.risks), read_table(args.labels), args.n_resamples, args.seed)
    write_table(table, args.out)
    index = [c for c in ("horizon_months", "model") if c in table.columns]
    wide = table.pivot_table(index=index, columns="metric", values="estimate")
    print(wide.round(3).to_string())
    return 0


def do_predict(args: argparse.Namespace) -> int:
    """Risk per knee and horizon with provenance."""
    check_table_path(args.out)
    features = _features(args)
    table = load_progression(args.model).predict(features)
    write_table(table, args.out)
    print(f"{len(table)} risks ({features.shape[0]} knees) written to {args.out} — {table['provenance'].iloc[0]}")
    return 0


def do_explain(args: argparse.Namespace) -> int:
    """SHAP tables, grouped values, plain-language text and figures per horizon."""
    check_output_dir(args.out)
    models = load_progression(args.model)
    for h, text in explain_models(models, _features(args), args.out, args.top_k).items():
        print(f"h{h}: {text['explanation'].iloc[0]} ({text['by_family'].iloc[0]})")
    print(f"explanations written to {args.out} — {models.provenance}")
    return 0


def handle(args: argparse.Namespace) -> int:
    """Dispatch the progression action; returns an exit code."""
    actions = {"fit": do_fit, "evaluate": do_evaluate, "predict": do_predict, "score": do_score, "explain": do_explain}
    return actions[args.action](args)
