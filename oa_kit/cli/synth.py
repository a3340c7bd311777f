"""``oa-kit synth``: generate the synthetic OAI-like cohort and print where it is and what is in it."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import pandas as pd

from oa_kit.errors import OAKitError
from oa_kit.io.atomic import check_output_dir
from oa_kit.synth.generate import generate_cohort, read_manifest
from oa_kit.synth.presets import PRESETS


def register(subparsers) -> None:
    """Add the ``synth`` subcommand to the ``oa-kit`` parser."""
    parser = subparsers.add_parser(
        "synth",
        help="generate the synthetic OAI-like cohort (synthetic data, not real patients)",
        description="Generate a synthetic OAI-like cohort: OAI tables, DICOM radiographs, NIfTI MRI, truth tables.",
    )
    parser.add_argument("--preset", default="demo", help=f"cohort size: {', '.join(PRESETS)} (default demo)")
    parser.add_argument("--out", required=True, help="output folder (new or empty unless --overwrite)")
    parser.add_argument("--seed", default="0", help="random seed, a non-negative integer (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    parser.add_argument("--n-participants", default=None, help="override the preset's number of participants")
    parser.add_argument("--no-images", action="store_true", help="write tables and truth only (no DICOM/NIfTI)")
    parser.add_argument(
        "--jobs", default="1", help="worker processes for rendering images (default 1; -1: one per core)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="build in OUT.partial and continue an interrupted --resume run found there (participants "
        "already rendered are kept; same preset, seed, size and images required)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=handle)


def _integer(text: str | None, field: str) -> int | None:
    """Parse an integer argument, raising a one-line OAKitError naming the field."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise OAKitError(f"{field}: {text!r} is not an integer; expected e.g. 500") from None


def handle(args: argparse.Namespace) -> int:
    """Run ``oa-kit synth``; returns 0 on success (errors are raised as OAKitError)."""
    seed = _integer(args.seed, "--seed")
    if seed < 0:
        raise OAKitError(f"--seed: {seed} is negative; expected a non-negative integer")
    n = _integer(args.n_participants, "--n-participants")
    jobs = _integer(args.jobs, "--jobs")
    if jobs < 1 and jobs != -1:
        raise OAKitError(f"--jobs: {jobs}; expected a positive number of processes or -1 (one per core)")
    check_output_dir(args.out)  # a file in its place or an unwritable parent fails now, not after the simulation
    out = generate_cohort(
        args.preset,
        Path(args.out),
        seed=seed,
        overwrite=args.overwrite,
        images=not args.no_images,
        progress=not args.quiet,
        n_participants=n,
        n_jobs=jobs,
        resume=args.resume,
    )
    print(summary(out))
    return 0


def summary(cohort_dir: str | Path) -> str:
    """Plain-text summary of a generated cohort: location, counts per table and file type, baseline KL distribution."""
    cohort_dir = Path(cohort_dir)
    manifest = read_manifest(cohort_dir)
    kinds = Counter(Path(name).parts[0] for name in manifest["files"])
    total_mb = sum(f["bytes"] for f in manifest["files"].values()) / 1e6
    lines = [
        f"Synthetic OAI-like cohort (synthetic data, not real patients) at {cohort_dir.resolve()}",
        f"  preset {manifest['preset']}, seed {manifest['seed']}: {manifest['n_participants']} participants, "
        f"{manifest['n_knees']} knees, {len(manifest['files'])} files, {total_mb:.1f} MB",
        "  OAI tables (rows): " + ", ".join(f"{k} {v}" for k, v in sorted(manifest["table_rows"].items())),
        "  files: " + ", ".join(f"{k}/ {v}" for k, v in sorted(kinds.items())),
    ]
    knees = pd.read_parquet(cohort_dir / "truth" / "knees.parquet", columns=["kl_true_V00"])
    dist = knees["kl_true_V00"].value_counts().sort_index()
    lines.append("  baseline KL (true): " + ", ".join(f"KL{k} {v}" for k, v in dist.items()))
    return "\n".join(lines)
