"""``oa-kit mri``: train the cartilage segmenter and segment scans into label/thickness maps, a biomarker table and QC."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from oa_kit.errors import OAKitError

log = logging.getLogger("oa_kit.mri")


#: Names of the phantom grids (``oa_kit.synth.mri.MRI_GEOMETRIES``), listed here so the parser needs no renderer import.
GEOMETRY_NAMES = ("phantom", "oai-dess")


def _geometry(name: str):
    """The ``oa_kit.synth.mri.MRIGeometry`` called ``name``."""
    from oa_kit.synth.mri import MRI_GEOMETRIES

    return MRI_GEOMETRIES[name]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``mri`` subcommand (``train``, ``segment``)."""
    parser = subparsers.add_parser("mri", help="MRI cartilage segmentation and biomarkers")
    sub = parser.add_subparsers(dest="mri_command", metavar="ACTION", required=True)

    train = sub.add_parser("train", help="train the segmenter on labelled scans or synthetic phantoms")
    train.add_argument(
        "data", nargs="*", type=Path, help="dataset folders/files (synthetic cohort, OAI-ZIB, OAIZIB-CM, SKM-TEA)"
    )
    train.add_argument(
        "--synthetic", type=int, default=0, metavar="N", help="render N synthetic participants (2 knees each) instead"
    )
    train.add_argument(
        "--more-synthetic",
        type=int,
        default=0,
        metavar="M",
        help="with --synthetic: render M more participants (seed + 1, other ids) for the training split only",
    )
    train.add_argument(
        "--geometry",
        choices=GEOMETRY_NAMES,
        default="phantom",
        help="grid of the --synthetic phantoms: 'phantom' 2 x 0.5 x 0.5 mm, 'oai-dess' 0.7 x 0.365 x 0.365 mm",
    )
    train.add_argument(
        "--more-geometry",
        choices=GEOMETRY_NAMES,
        default=None,
        help="grid of the --more-synthetic phantoms (default: --geometry)",
    )
    train.add_argument(
        "--out", type=Path, required=True, help="run folder (checkpoints, history, weights, test metrics)"
    )
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--steps-per-epoch", type=int, default=None)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument(
        "--channels", type=int, nargs="+", default=None, help="U-Net channels per level (default 8 16 32 64)"
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--contact-weight",
        type=float,
        default=0.0,
        help="extra cross-entropy weight where two cartilage plates touch (0 = plain DiceCE)",
    )
    train.add_argument(
        "--init-weights",
        type=Path,
        default=None,
        help="fine-tune: start from these .safetensors weights (same architecture) instead of random",
    )
    train.add_argument(
        "--context-mm",
        type=float,
        default=0.0,
        metavar="D",
        help="2.5D: also feed the network the volume D mm either side of each sagittal slice (0 = 2D); "
        "with 2D --init-weights the neighbour channels start at zero",
    )
    train.add_argument("--max-val", type=int, default=8, help="validation scans scored each epoch")
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.*")
    train.add_argument("--weights-out", type=Path, default=None, help="also copy the final weights (+json) here")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(func=_train)

    exp = sub.add_parser("export", help="package a run's best-validation checkpoint as weights + JSON (sha256)")
    exp.add_argument("run", type=Path, help="run folder of 'oa-kit mri train'")
    exp.add_argument("--out", type=Path, required=True, help="weights path (.safetensors); the .json goes beside it")
    exp.add_argument("--training-data", default="", help="what the run was trained on (recorded in the JSON)")
    exp.set_defaults(func=_export)

    ev = sub.add_parser(
        "evaluate", help="score weights on the test split of a synthetic training run (Dice, ASSD, thickness)"
    )
    ev.add_argument("--synthetic", type=int, required=True, metavar="N", help="participants of the training run")
    ev.add_argument("--seed", type=int, default=0, help="seed of the training run")
    ev.add_argument("--weights", type=Path, default=None, help="weights to score; default: shipped weights")
    ev.add_argument(
        "--geometry",
        choices=GEOMETRY_NAMES,
        default="phantom",
        help="grid the test phantoms are rendered on (same participants and thickness at either)",
    )
    ev.add_argument("--out", type=Path, required=True, help="folder for test_metrics.csv, thickness_error.csv, ...")
    ev.add_argument("--n-boot", type=int, default=1000)
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=_evaluate)

    seg = sub.add_parser("segment", help="segment scans: label + thickness NIfTI, per-knee parquet table, QC summary")
    seg.add_argument("inputs", nargs="+", type=Path, help="DICOM series folders, NIfTI, MHD or SKM-TEA HDF5 files")
    seg.add_argument("--out", type=Path, required=True)
    seg.add_argument(
        "--side", choices=("R", "L"), default=None, help="knee side when it cannot be read from the file name/header"
    )
    seg.add_argument(
        "--weights", type=Path, default=None, help="segmenter weights (.safetensors); default: shipped weights"
    )
    seg.add_argument(
        "--n-jobs",
        type=int,
        default=1,
        help="worker processes (-1 = one per core); 1 was fastest on a shared 2-core machine",
    )
    seg.add_argument("--threads", type=int, default=1, help="torch threads per process")
    seg.add_argument(
        "--no-resume",
        action="store_true",
        help="segment every input again (default: skip inputs already finished in OUT by the same weights)",
    )
    seg.add_argument("--no-progress", action="store_true")
    seg.set_defaults(func=_segment)


def _train(args: argparse.Namespace) -> int:
    """Handler of ``oa-kit mri train``."""
    import shutil

    from oa_kit.io.atomic import write_text_atomic
    from oa_kit.models.mri.train import (
        evaluate_segmenter,
        render_phantom_cases,
        save_weights,
        split_by_group,
        train_segmenter,
    )

    progress = not args.no_progress
    if args.synthetic > 0:
        cases = render_phantom_cases(
            args.synthetic, seed=args.seed, geometry=_geometry(args.geometry), progress=progress
        )
    elif args.data:
        from oa_kit.models.mri.datasets import discover_cases

        cases = discover_cases(args.data)
    else:
        raise OAKitError("mri train: no data; expected DATA paths or --synthetic N")
    train, val, test = split_by_group(cases, seed=args.seed)
    if args.more_synthetic > 0:
        if args.synthetic <= 0:
            raise OAKitError("mri train: --more-synthetic needs --synthetic N; expected both")
        more_geometry = args.more_geometry or args.geometry
        train = [
            *train,
            *render_phantom_cases(
                args.more_synthetic, seed=args.seed + 1, geometry=_geometry(more_geometry), progress=progress
            ),
        ]
    if not train:
        raise OAKitError("mri train: the split left no training scans; expected more participants")
    args.out.mkdir(parents=True, exist_ok=True)
    split = {"train": [c.case_id for c in train], "val": [c.case_id for c in val], "test": [c.case_id for c in test]}
    write_text_atomic(args.out / "split.json", json.dumps(split, indent=1))
    from oa_kit.models.mri.inference import MRISegmenter
    from oa_kit.models.mri.network import DEFAULT_CHANNELS

    channels = tuple(args.channels or DEFAULT_CHANNELS)
    if args.context_mm < 0:
        raise OAKitError(f"mri train: --context-mm {args.context_mm}; expected >= 0 mm")
    segmenter = MRISegmenter(channels=channels, strides=(2,) * (len(channels) - 1), context_mm=args.context_mm)
    result = train_segmenter(
        train,
        val[: args.max_val],
        out=args.out,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        steps_per_epoch=args.steps_per_epoch,
        resume=args.resume,
        progress=progress,
        segmenter=segmenter,
        log=lambda m: print(m, flush=True),
        contact_weight=args.contact_weight,
        init_weights=args.init_weights,
    )
    extra = (
        (
            f" + {args.more_synthetic} training-only participants (seed {args.seed + 1}, "
            f"{args.more_geometry or args.geometry} grid)"
        )
        if args.more_synthetic > 0
        else ""
    )
    source = (
        (
            f"synthetic phantoms (oa_kit.synth.mri.render_knee_mri), {args.synthetic} participants "
            f"({args.geometry} grid){extra}"
        )
        if args.synthetic
        else "; ".join(str(p) for p in args.data)
    )
    weights = save_weights(result, args.out / "mri_segmenter.safetensors", {"training_data": source})
    print(f"weights: {weights}", flush=True)
    if test:
        model = MRISegmenter.from_pretrained(weights)
        summary, per_case = evaluate_segmenter(model, test, seed=args.seed, progress=progress)
        summary.to_csv(args.out / "test_metrics.csv", index=False)
        per_case.to_csv(args.out / "test_per_case.csv", index=False)
        print(summary.to_string(index=False), flush=True)
    if args.weights_out:
        args.weights_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, args.weights_out)
        shutil.copyfile(weights.with_suffix(".json"), args.weights_out.with_suffix(".json"))
    return 0


def _export(args: argparse.Namespace) -> int:
    """Handler of ``oa-kit mri export``."""
    from oa_kit.models.mri.train import export_best

    path = export_best(args.run, args.out, extra={"training_data": args.training_data or str(args.run)})
    print(f"weights: {path}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    """Handler of ``oa-kit mri evaluate``: re-create a synthetic run's test split and score weights on it."""
    from oa_kit.io.atomic import write_text_atomic
    from oa_kit.models.mri.inference import MRISegmenter
    from oa_kit.models.mri.train import evaluate_segmenter, evaluate_thickness, render_phantom_cases, split_by_group

    progress = not args.no_progress
    groups = [f"SYN{args.seed:03d}{p:04d}" for p in range(args.synthetic)]
    placeholders = [type("G", (), {"group": g, "case_id": g})() for g in groups]
    test_groups = {c.group for c in split_by_group(placeholders, seed=args.seed)[2]}
    cases = render_phantom_cases(
        args.synthetic, seed=args.seed, geometry=_geometry(args.geometry), progress=progress, only_groups=test_groups
    )
    model = MRISegmenter.from_pretrained(args.weights)
    args.out.mkdir(parents=True, exist_ok=True)
    seg_summary, seg_cases = evaluate_segmenter(model, cases, n_boot=args.n_boot, seed=args.seed, progress=progress)
    th_summary, th_cases = evaluate_thickness(model, cases, n_boot=args.n_boot, seed=args.seed, progress=progress)
    for name, frame in (
        ("test_metrics", seg_summary),
        ("test_per_case", seg_cases),
        ("thickness_error", th_summary),
        ("thickness_per_case", th_cases),
    ):
        write_text_atomic(args.out / f"{name}.csv", frame.to_csv(index=False))
    print(f"synthetic test set (phantoms on the {args.geometry} grid, not real scans)")
    print(seg_summary.to_string(index=False))
    print(th_summary.to_string(index=False))
    return 0


def _segment(args: argparse.Namespace) -> int:
    """Handler of ``oa-kit mri segment``."""
    from oa_kit.models.mri.pipeline import segment_scans

    table = segment_scans(
        args.inputs,
        args.out,
        side=args.side,
        weights=args.weights,
        progress=not args.no_progress,
        n_jobs=args.n_jobs,
        threads=args.threads,
        resume=not args.no_resume,
    )
    print(f"wrote {len(table)} knee(s) to {args.out}")
    return 0
