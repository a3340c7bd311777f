"""``oa-kit kl``: predict, features (out of fold), train, evaluate, calibrate and pack subcommands for the KL-grade CNN (heavy imports happen inside handlers)."""

from __future__ import annotations

import argparse

from oa_kit.api import KL_MODEL_NOTE
from oa_kit.cli import fraction, positive_float, positive_int
from oa_kit.errors import OAKitError
from oa_kit.io.atomic import check_output_dir, check_output_file
from oa_kit.io.tables import write_csv
from oa_kit.models.kl.card import ship_weights
from oa_kit.models.kl.data import pack_chen
from oa_kit.models.kl.evaluate import evaluate_on_chen
from oa_kit.models.kl.predict import SHIPPED_WEIGHTS
from oa_kit.models.kl.train import resolve_device, train_kl
from oa_kit.workflows.kl import out_of_fold_table, predict_to_table


def _views(value: int | None) -> int | None:
    """Check a ``--tta`` value (None = the shipped setting): test-time views must be ≥ 1."""
    if value is not None and value < 1:
        raise OAKitError(f"--tta: {value}; expected test-time views >= 1 (1 = no augmentation)")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``kl`` subcommand with its nested ``predict``/``train``/``evaluate``/``pack`` commands."""
    kl = subparsers.add_parser("kl", help="KL-grade CNN: predict, train, evaluate, pack.")
    sub = kl.add_subparsers(dest="kl_command", metavar="KL_COMMAND", required=True)

    predict = sub.add_parser("predict", help="Grade knees in DICOM/PNG/JPEG files or a Chen-layout folder.")
    predict.add_argument("inputs", nargs="+", metavar="INPUT")
    predict.add_argument(
        "--out",
        default="kl_predictions.parquet",
        help="Output table, one row per knee with its embedding (.parquet, the default, or .csv); "
        "`oa-kit progression --radiograph` reads it as it is.",
    )
    predict.add_argument("--weights", default=None, help="Weights file (default: the shipped model).")
    predict.add_argument(
        "--side", choices=["R", "L"], default=None, help="Side of single-knee inputs without laterality."
    )
    predict.add_argument("--tta", type=int, default=None, help="Test-time views (default: the shipped setting).")
    predict.add_argument(
        "--clahe",
        choices=["auto", "yes", "no"],
        default="auto",
        help="auto: skip for Chen-layout folders (already CLAHE-enhanced), apply to DICOM/PNG/JPEG.",
    )
    predict.add_argument("--device", default="cpu")
    predict.set_defaults(func=_predict)

    features = sub.add_parser(
        "features",
        help="The KL table (as `kl predict` writes it) for knees a CNN trains on, out of fold (no knee graded by a "
        "CNN that saw it).",
    )
    features.add_argument("data_dir", metavar="DATA", help="Chen-layout folder or grade folders 0/..4/.")
    features.add_argument(
        "--out-of-fold", action="store_true", help="Required: train one CNN per participant-grouped fold."
    )
    features.add_argument("--out", default="kl_oof.parquet", help="Output table (.parquet or .csv).")
    features.add_argument("--folds", type=positive_int, default=5)
    features.add_argument("--seed", type=int, default=0, help="Seed of the folds and of training.")
    features.add_argument("--epochs", type=positive_int, default=6, help="Training epochs per fold.")
    features.add_argument(
        "--init-weights",
        default=None,
        help="Fine-tune each fold from these weights (default: from scratch; the shipped weights were trained on "
        "the Chen train split, so fine-tuning them leaks those knees' grades).",
    )
    features.add_argument(
        "--run-dir", default=None, help="Fold checkpoints and tables (default: OUT without suffix + _folds); resumes."
    )
    features.add_argument("--split", default=None, help="Only this Chen split (e.g. train).")
    features.add_argument("--limit", type=positive_int, default=None, help="Only the first N knees (timing runs).")
    features.add_argument("--clahe", choices=["auto", "yes", "no"], default="auto")
    features.add_argument("--quiet", action="store_true")
    features.set_defaults(func=_features)

    train = sub.add_parser("train", help="Train on a Chen-layout folder or a pack from `oa-kit kl pack`.")
    train.add_argument("data_dir", metavar="DATA_DIR")
    train.add_argument("--out", default="runs/kl", help="Run folder (checkpoints, best.safetensors, history.csv).")
    train.add_argument("--loss", choices=["ce", "sord", "corn"], default="sord")
    train.add_argument("--epochs", type=positive_int, default=60)
    train.add_argument("--batch-size", type=positive_int, default=128)
    train.add_argument("--lr", type=positive_float, default=2e-3)
    train.add_argument("--weight-decay", type=float, default=0.05)
    train.add_argument("--aug-strength", type=float, default=1.0)
    train.add_argument("--dropout", type=float, default=0.2)
    train.add_argument("--patience", type=positive_int, default=25)
    train.add_argument("--max-minutes", type=positive_float, default=None)
    train.add_argument(
        "--limit", type=positive_int, default=None, help="Use only the first N images per split (smoke runs)."
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto")
    train.add_argument("--init-weights", default=None, help="Fine-tune from these weights (e.g. the shipped model).")
    train.add_argument("--no-resume", action="store_true")
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(func=_train)

    evaluate = sub.add_parser("evaluate", help="Evaluate weights on the val split with bootstrap CIs.")
    evaluate.add_argument("data_dir", metavar="DATA_DIR")
    evaluate.add_argument("--weights", default=None)
    evaluate.add_argument("--split", default="val")
    evaluate.add_argument("--out", default=None, help="Write the metrics table (.csv).")
    evaluate.add_argument("--n-boot", type=positive_int, default=1000)
    evaluate.add_argument("--limit", type=positive_int, default=None)
    evaluate.set_defaults(func=_evaluate)

    calibrate = sub.add_parser(
        "calibrate", help="Calibrate trained weights on val, save with sha256, write the model card."
    )
    calibrate.add_argument("weights", metavar="WEIGHTS", help="best.safetensors from `oa-kit kl train`.")
    calibrate.add_argument("data_dir", metavar="DATA_DIR")
    calibrate.add_argument("--out", default=None, help="Calibrated weights path (default: the shipped location).")
    calibrate.add_argument("--tta", type=int, default=1)
    calibrate.add_argument("--alpha", type=fraction, default=0.1)
    calibrate.add_argument("--n-boot", type=positive_int, default=1000)
    calibrate.add_argument(
        "--ood-quantile",
        type=fraction,
        default=0.995,
        help="Flag knees whose OOD score exceeds this conformal quantile of the cross-fitted val scores "
        "(1 - quantile = false-flag rate for real knees; default 0.995 → ≤ 0.5%%).",
    )
    calibrate.add_argument(
        "--ood-only",
        action="store_true",
        help="Recalibrate only the OOD flag of already calibrated weights (e.g. the shipped file): temperature, "
        "conformal sets, TTA and alpha are kept from their sidecar; the network is never changed.",
    )
    calibrate.set_defaults(func=_calibrate)

    pack = sub.add_parser("pack", help="Pack preprocessed Chen images into one compact .npz (JPEG bytes).")
    pack.add_argument("data_dir", metavar="DATA_DIR")
    pack.add_argument("--out", required=True)
    pack.add_argument("--size", type=int, default=160)
    pack.add_argument("--quality", type=int, default=85)
    pack.set_defaults(func=_pack)


def _train(args: argparse.Namespace) -> int:
    """Handler for ``oa-kit kl train``."""
    check_output_dir(args.out)  # a run folder: resumed when it holds a checkpoint
    resolve_device(args.device)
    for flag, value in (("--weight-decay", args.weight_decay), ("--aug-strength", args.aug_strength)):
        if not value >= 0:
            raise OAKitError(f"{flag}: {value}; expected a number >= 0")
    if not 0 <= args.dropout < 1:
        raise OAKitError(f"--dropout: {args.dropout}; expected a probability in [0, 1)")

    trainer = train_kl(
        args.data_dir,
        args.out,
        limit=args.limit,
        loss=args.loss,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        weight_decay=args.weight_decay,
        aug_strength=args.aug_strength,
        dropout=args.dropout,
        max_minutes=args.max_minutes,
        seed=args.seed,
        device=args.device,
        resume=not args.no_resume,
        progress=not args.quiet,
        init_weights=args.init_weights,
    )
    print(
        f"best val QWK {trainer.best_qwk_:.4f} at epoch {trainer.best_epoch_}; weights in {args.out}/best.safetensors"
    )
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    """Handler for ``oa-kit kl calibrate``."""
    if args.out is not None:
        check_output_file(args.out, (".safetensors",))

    evaluation = ship_weights(
        args.weights,
        args.data_dir,
        out=args.out or SHIPPED_WEIGHTS,
        tta=_views(args.tta),
        alpha=args.alpha,
        n_boot=args.n_boot,
        ood_quantile=args.ood_quantile,
        ood_only=args.ood_only,
    )
    print(evaluation.metrics.to_string(index=False))
    return 0


def _features(args: argparse.Namespace) -> int:
    """Handler for ``oa-kit kl features``."""

    if not args.out_of_fold:
        raise OAKitError(
            "--out-of-fold: missing; expected --out-of-fold (for knees no CNN here was trained on, use `oa-kit kl predict`)"
        )
    table = out_of_fold_table(
        args.data_dir,
        args.out,
        folds=args.folds,
        seed=args.seed,
        epochs=args.epochs,
        init_weights=args.init_weights,
        run_dir=args.run_dir,
        split=args.split,
        limit=args.limit,
        clahe=args.clahe,
        progress=not args.quiet,
        log=(lambda message: None) if args.quiet else print,
    )
    flagged = int(table["kl_qa_flags"].ne("").sum())
    print(f"wrote {args.out}: {len(table)} knees out of fold ({args.folds} folds, {flagged} with QA flags)")
    return 0


def _pack(args: argparse.Namespace) -> int:
    """Handler for ``oa-kit kl pack``."""
    check_output_file(args.out, (".npz",))
    if not 32 <= args.size <= 1024 or not 1 <= args.quality <= 100:
        raise OAKitError(
            f"--size/--quality: {args.size}/{args.quality}; expected 32-1024 pixels and JPEG quality 1-100"
        )

    path = pack_chen(args.data_dir, args.out, size=args.size, quality=args.quality)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def _predict(args: argparse.Namespace) -> int:
    """Handler for ``oa-kit kl predict``."""
    resolve_device(args.device)  # before the weights are loaded: a missing GPU is one line, not a traceback

    table = predict_to_table(
        args.inputs, args.out, args.weights, side=args.side, tta=_views(args.tta), clahe=args.clahe, device=args.device
    )
    flagged = int(table["kl_qa_flags"].ne("").sum())
    print(f"wrote {args.out}: {len(table)} knees ({flagged} with QA flags) — {KL_MODEL_NOTE}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    """Handler for ``oa-kit kl evaluate``."""
    if args.out:
        check_output_file(args.out, (".csv",))

    result = evaluate_on_chen(
        args.data_dir, weights=args.weights, split=args.split, n_boot=args.n_boot, limit=args.limit
    )
    print(result.metrics.to_string(index=False))
    if args.out:
        write_csv(result.metrics, args.out)
    return 0
