"""``oa-kit mri``: train the cartilage segmenter, segment scans (or measure label maps the user already has) into
label/thickness maps, a biomarker table and QC."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from oa_kit.errors import OAKitError
from oa_kit.io.labels import CONVENTION_NAMES
from oa_kit.models.mri.inference import export_best
from oa_kit.synth.mri import DEFAULT_CONTRAST, TISSUE_CONTRASTS
from oa_kit.workflows.mri import (
    evaluate_phantom_test,
    failure_lines,
    limit_threads,
    measure_label_maps,
    qc_lines,
    segment_scans,
    synthseg_run,
    train_run,
)

log = logging.getLogger("oa_kit.mri")


#: Names of the phantom grids (``oa_kit.synth.mri.MRI_GEOMETRIES``), listed here so the parser needs no renderer import.
GEOMETRY_NAMES = ("phantom", "oai-dess")
WEIGHTS_HELP = (
    "segmenter weights: 'synthetic' (default; trained on the synthetic cohort's phantoms, fails on real contrasts), "
    "'real' (contrast-agnostic, for real scans; see the model card) or a .safetensors file"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``mri`` subcommand (``train``, ``export``, ``evaluate``, ``segment``, ``measure``)."""
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
    ev.add_argument("--weights", default=None, help=WEIGHTS_HELP)
    ev.add_argument(
        "--geometry",
        choices=GEOMETRY_NAMES,
        default="phantom",
        help="grid the test phantoms are rendered on (same participants and thickness at either)",
    )
    ev.add_argument(
        "--contrast",
        choices=sorted(TISSUE_CONTRASTS),
        default=DEFAULT_CONTRAST,
        help="tissue contrast the test phantoms are rendered with",
    )
    ev.add_argument("--out", type=Path, required=True, help="folder for test_metrics.csv, thickness_error.csv, ...")
    ev.add_argument("--n-boot", type=int, default=1000)
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=_evaluate)

    syn = sub.add_parser(
        "synthseg",
        help="train the contrast-agnostic segmenter from real label maps (SynthSeg: random contrast per sample)",
    )
    syn.add_argument("--woo", type=Path, required=True, help="Anomaly-Aware-3D-Segmentation label maps (folder)")
    syn.add_argument("--shared", type=Path, default=None, help="knee-mri-labels folder (pyMSKT, SPL atlas maps)")
    syn.add_argument("--out", type=Path, required=True, help="run folder (maps, checkpoints, history, weights)")
    syn.add_argument("--phantoms", type=int, default=4, help="synthetic participants added (2 knee maps each)")
    syn.add_argument("--holdout", type=int, default=4, help="Woo participants held out for validation")
    syn.add_argument(
        "--phantom-images",
        type=int,
        default=0,
        metavar="N",
        help="render N phantom participants per phantom contrast whose scans join every batch (one validates)",
    )
    syn.add_argument("--image-share", type=float, default=0.25, help="share of each batch from --phantom-images scans")
    syn.add_argument(
        "--channels", type=int, nargs="+", default=None, help="U-Net channels per level (default 8 16 32 64)"
    )
    syn.add_argument("--epochs", type=int, default=240)
    syn.add_argument("--steps", type=int, default=25, help="steps per epoch")
    syn.add_argument("--batch", type=int, default=8)
    syn.add_argument("--lr", type=float, default=1e-3)
    syn.add_argument("--val-samples", type=int, default=64, help="fixed held-out samples scored each epoch")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--init", type=Path, default=None, help="start from these .safetensors weights")
    syn.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget; run again to resume")
    syn.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    syn.add_argument("--no-progress", action="store_true")
    syn.set_defaults(func=_synthseg)

    seg = sub.add_parser("segment", help="segment scans: label + thickness NIfTI, per-knee parquet table, QC summary")
    seg.add_argument("inputs", nargs="+", type=Path, help="DICOM series folders, NIfTI, MHD or SKM-TEA HDF5 files")
    seg.add_argument("--out", type=Path, required=True)
    seg.add_argument(
        "--side",
        choices=("R", "L"),
        default=None,
        help="knee side when it cannot be read from the file name/header (default: read from the segmented anatomy)",
    )
    seg.add_argument("--weights", default=None, help=WEIGHTS_HELP)
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

    mea = sub.add_parser(
        "measure", help="measure label maps you already have: the same table, thickness NIfTI and QC as segment"
    )
    mea.add_argument("labels", nargs="+", type=Path, help="label maps: NIfTI, NRRD or MHD")
    mea.add_argument(
        "--convention",
        required=True,
        choices=CONVENTION_NAMES,
        help="label convention of the maps ('harmonised' = oa_kit's own; QC skips tissues a convention lacks)",
    )
    mea.add_argument(
        "--image",
        nargs="+",
        type=Path,
        default=None,
        help="the scan(s) the maps were drawn on, one per label map (for the image embedding; else NaN)",
    )
    mea.add_argument(
        "--side",
        choices=("R", "L"),
        default=None,
        help="knee side when the file name does not say it (default: read from the anatomy)",
    )
    mea.add_argument("--weights", default=None, help=f"for the image embedding: {WEIGHTS_HELP}")
    mea.add_argument("--out", type=Path, required=True)
    mea.add_argument("--no-progress", action="store_true")
    mea.set_defaults(func=_measure)


def _synthseg(args: argparse.Namespace) -> int:
    """Handler of ``oa-kit mri synthseg``: run or resume SynthSeg training (rerun the same command to resume)."""
    for name in ("woo", "shared"):
        folder = getattr(args, name)
        if folder is not None and not folder.is_dir():
            raise OAKitError(f"--{name}: {folder} is not a folder; expected the label-map snapshot folder")
    with limit_threads(args.threads):
        synthseg_run(
            args.out,
            args.woo,
            shared=args.shared,
            phantoms=args.phantoms,
            holdout=args.holdout,
            seed=args.seed,
            phantom_images=args.phantom_images,
            image_share=args.image_share,
            channels=args.channels,
            epochs=args.epochs,
            steps_per_epoch=args.steps,
            batch_size=args.batch,
            lr=args.lr,
            init_weights=args.init,
            max_minutes=args.max_minutes,
            n_val=args.val_samples,
            progress=not args.no_progress,
            log=lambda m: print(m, flush=True),
        )
    return 0


def _train(args: argparse.Namespace) -> int:
    """Handler of ``oa-kit mri train``."""
    train_run(
        args.out,
        synthetic=args.synthetic,
        data=args.data or (),
        geometry=args.geometry,
        more_synthetic=args.more_synthetic,
        more_geometry=args.more_geometry,
        seed=args.seed,
        channels=args.channels,
        context_mm=args.context_mm,
        max_val=args.max_val,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        steps_per_epoch=args.steps_per_epoch,
        resume=args.resume,
        contact_weight=args.contact_weight,
        init_weights=args.init_weights,
        weights_out=args.weights_out,
        progress=not args.no_progress,
        log=lambda m: print(m, flush=True),
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    """Handler of ``oa-kit mri export``."""

    path = export_best(args.run, args.out, extra={"training_data": args.training_data or str(args.run)})
    print(f"weights: {path}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    """Handler of ``oa-kit mri evaluate``: re-create a synthetic run's test split and score weights on it."""
    seg_summary, th_summary = evaluate_phantom_test(
        args.out,
        args.synthetic,
        seed=args.seed,
        geometry=args.geometry,
        weights=args.weights,
        n_boot=args.n_boot,
        progress=not args.no_progress,
        contrast=args.contrast,
    )
    print(f"synthetic test set (phantoms on the {args.geometry} grid, {args.contrast} contrast, not real scans)")
    print(seg_summary.to_string(index=False))
    print(th_summary.to_string(index=False))
    return 0


def _segment(args: argparse.Namespace) -> int:
    """Handler of ``oa-kit mri segment``: one QC line per knee, one line per failed scan; 1 when any scan failed."""

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
    return _report(table, args.out, _weights_note(args.weights))


def _weights_note(weights: str | None) -> str:
    """What the summary line says of the segmenter: where its weights come from and what to do on real scans."""
    if weights in (None, "synthetic"):
        return "segmenter trained on synthetic phantoms (real scans: --weights real); check QC"
    if weights == "real":
        return "contrast-agnostic segmenter for real scans ('real' weights); check QC"
    return f"segmenter weights {weights}; check QC"


def _measure(args: argparse.Namespace) -> int:
    """Handler of ``oa-kit mri measure``: one QC line per knee, one line per failed map; 1 when any map failed."""
    table = measure_label_maps(
        args.labels,
        args.out,
        convention=args.convention,
        images=args.image,
        side=args.side,
        weights=args.weights,
        progress=not args.no_progress,
    )
    return _report(table, args.out, f"labels given in the {args.convention} convention")


def _report(table, out: Path, note: str) -> int:
    """Print the QC lines and the failed inputs of a batch; the exit status is 1 when any input failed."""
    for line in qc_lines(table):
        print(line)
    failed = failure_lines(table)
    for line in failed:
        print(line, file=sys.stderr)
    tail = f"; {len(failed)} input(s) failed (failures.csv)" if failed else ""
    print(f"wrote {len(table)} knee(s) to {out} — {note}{tail}")
    return 1 if failed else 0
