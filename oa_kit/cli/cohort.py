"""``oa-kit labels``: read OAI or MOST tables, build progression labels, write labels/exclusions/flow, print counts;
``oa-kit split``: split a per-knee table by participant into training and withheld files."""

from __future__ import annotations

import argparse
from pathlib import Path

from oa_kit.cli import fraction
from oa_kit.cohort.labels import (
    DEFINITIONS,
    build_progression_labels,
)
from oa_kit.cohort.tables import SOURCES, load_tables
from oa_kit.errors import OAKitError
from oa_kit.horizons import MOST_HORIZONS_MONTHS, OAI_HORIZONS_MONTHS
from oa_kit.io.atomic import check_output_dir
from oa_kit.io.tables import check_table_path
from oa_kit.workflows.cohort import split_table, write_labels


def register(subparsers) -> None:
    """Add the ``labels`` subcommand to the ``oa-kit`` parser."""
    parser = subparsers.add_parser(
        "labels",
        help="build knee progression labels with exclusion reasons from OAI/MOST tables",
        description="Read the official OAI (or MOST) tables, build progression labels per horizon, and write "
        "labels.parquet, exclusions.parquet, flow.csv (cohort flow), readings.parquet, clinical.parquet.",
    )
    parser.add_argument("--tables", required=True, help="folder with the OAI/MOST tables (or a synthetic cohort root)")
    parser.add_argument("--source", default="oai", choices=SOURCES, help="cohort the tables come from (default oai)")
    parser.add_argument("--definition", default="tiulpin2019", choices=DEFINITIONS, help="label definition")
    parser.add_argument(
        "--horizons",
        default=None,
        help="comma-separated horizons in months (default OAI 12,24,36,48,72,96; MOST 15,30,60,84)",
    )
    parser.add_argument("--out", required=True, help="output folder (created if needed; files are replaced)")
    parser.set_defaults(func=handle)
    split = subparsers.add_parser(
        "split",
        help="split a per-knee table by participant into a training and a withheld file",
        description="Both knees and every visit of a participant land on the same side (parquet or CSV by suffix).",
    )
    split.add_argument("table", help="the table to split (labels, features, ...), .parquet or .csv")
    split.add_argument(
        "--test-fraction", type=fraction, default=0.5, help="share of participants withheld (default 0.5)"
    )
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--train", required=True, help="output table of the training participants")
    split.add_argument("--test", required=True, help="output table of the withheld participants")
    split.set_defaults(func=handle_split)


def parse_horizons(text: str | None, source: str) -> tuple[int, ...]:
    """Parse ``--horizons`` ("12,24") into ints; default per source."""
    if text is None:
        return OAI_HORIZONS_MONTHS if source == "oai" else MOST_HORIZONS_MONTHS
    try:
        horizons = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        horizons = ()
    if not horizons or min(horizons) < 1:
        raise OAKitError(f"--horizons: {text!r}; expected comma-separated positive months, e.g. 12,24,48")
    return horizons


def handle(args: argparse.Namespace) -> int:
    """Run ``oa-kit labels``; returns 0 on success (bad input raises OAKitError)."""
    tables_dir = Path(args.tables)
    horizons = parse_horizons(args.horizons, args.source)
    out = check_output_dir(args.out)
    if not tables_dir.is_dir():
        raise OAKitError(
            f"--tables: {tables_dir} is not a folder; expected the folder with the {args.source.upper()} tables"
        )
    tables = load_tables(tables_dir, args.source)
    result = build_progression_labels(
        tables.readings,
        horizons,
        definition=args.definition,
        deaths=tables.deaths,
        replacements=tables.replacements,
    )
    write_labels(result, out, readings=tables.readings, clinical=tables.clinical)
    print(f"{args.source.upper()} labels ({args.definition}) written to {out.resolve()}")
    print(result.summary_text())
    return 0


def handle_split(args: argparse.Namespace) -> int:
    """Run ``oa-kit split``; returns 0."""
    train, test = check_table_path(args.train), check_table_path(args.test)
    if train.resolve() == test.resolve() or Path(args.table).resolve() in (train.resolve(), test.resolve()):
        raise OAKitError(f"--train/--test: {train} and {test} (from {args.table}); expected two new file names")
    train, test = split_table(args.table, args.test_fraction, args.seed, args.train, args.test)
    print(
        f"{len(train)} rows ({train['participant_id'].nunique()} participants) -> {args.train}; "
        f"{len(test)} rows ({test['participant_id'].nunique()} participants) -> {args.test}"
    )
    return 0
