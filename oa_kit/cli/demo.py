"""``oa-kit demo``: parse arguments and run :func:`oa_kit.workflows.demo.run_demo` (the whole synthetic pipeline)."""

from __future__ import annotations

import argparse

from oa_kit.cli import jobs_int, nonnegative_int, positive_int
from oa_kit.errors import OAKitError
from oa_kit.io.atomic import check_output_dir
from oa_kit.synth.presets import PRESETS
from oa_kit.workflows.demo import DEMO_BOOTSTRAP, run_demo


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser("demo", help="Run the full pipeline on the synthetic demo cohort.")
    p.add_argument("--out", default="demo_out", help="Output folder (the cohort inside it is reused when unchanged).")
    p.add_argument("--preset", default="demo", help="Synthetic cohort preset: tiny, demo or full.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-participants", type=positive_int, default=None)
    p.add_argument(
        "--jobs",
        type=jobs_int,
        default=2,
        help="Worker processes for rendering the cohort's images, segmenting its MRIs and the progression "
        "horizons (-1: one per core); the results are the same for any value.",
    )
    p.add_argument("--kl-epochs", type=positive_int, default=6, help="Training epochs of each fold's synthetic KL-CNN.")
    p.add_argument(
        "--mri-participants",
        type=nonnegative_int,
        default=0,
        help="Size of a seeded MRI substudy (participants whose MRIs are segmented); 0 = every participant.",
    )
    p.add_argument("--n-resamples", type=positive_int, default=1000, help="Bootstrap resamples for the CIs.")
    p.add_argument(
        "--bootstrap",
        type=nonnegative_int,
        default=DEMO_BOOTSTRAP,
        metavar="N",
        help=f"Participant-level bootstrap refits of each final model, for a 95%% risk interval per knee "
        f"(default {DEMO_BOOTSTRAP}, about +20 s on 2 cores; 0: none).",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace earlier results in --out (the cohort is reused when unchanged).",
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_handle)


def _handle(args: argparse.Namespace) -> int:
    """CLI handler for ``oa-kit demo``."""
    out = check_output_dir(args.out)
    if args.preset not in PRESETS:
        raise OAKitError(f"--preset: {args.preset!r}; expected one of {', '.join(PRESETS)}")
    results = [p for p in (out / "progression", out / "features.parquet") if p.exists()]
    if results and not args.overwrite:
        raise OAKitError(f"{out}: holds results of an earlier run; expected --overwrite to replace them")
    run_demo(
        out,
        preset=args.preset,
        seed=args.seed,
        n_participants=args.n_participants,
        jobs=args.jobs,
        kl_epochs=args.kl_epochs,
        mri_participants=args.mri_participants or None,
        n_resamples=args.n_resamples,
        n_bootstrap=args.bootstrap,
        progress=not args.quiet,
        log=print,
    )
    return 0
