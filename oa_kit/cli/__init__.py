"""The ``oa-kit`` command: a thin argparse front end; each subsystem registers its own subcommand."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning made KL inference ~3x slower
# (benchmarks/kl_speed.py). Set before torch loads; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from oa_kit import __version__  # noqa: E402
from oa_kit.errors import OAKitError  # noqa: E402
from oa_kit.parallel import Terminated, terminate_on_signals  # noqa: E402

#: Modules that provide a subcommand through ``register(subparsers)``; each handler returns an exit code.
SUBCOMMAND_MODULES = (
    "oa_kit.cli.synth",
    "oa_kit.cli.cohort",
    "oa_kit.cli.kl",
    "oa_kit.cli.mri",
    "oa_kit.cli.progression",
    "oa_kit.cli.demo",
)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what was wrong and where to look) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        """Print ``oa-kit <command>: error: <message>`` and exit 2 (argparse's code for a usage error)."""
        hint = "" if "expected" in message else "; expected the arguments shown by --help"
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}{hint} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (counts of folds, epochs, resamples, views)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}; expected a whole number >= 1")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: a whole number >= 0 (a visit month, a substudy size where 0 means all)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}; expected a whole number >= 0")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (learning rates, minutes)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}; expected a number > 0")
    return value


def fraction(text: str) -> float:
    """argparse type: a number strictly between 0 and 1 (a share, a miscoverage level, a quantile)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}; expected a number between 0 and 1 (exclusive)")
    return value


def jobs_int(text: str) -> int:
    """argparse type: worker processes, a whole number >= 1 or -1 (one per core)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 and value != -1:
        raise argparse.ArgumentTypeError(f"{text!r}; expected a positive number of processes or -1 (one per core)")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand."""
    parser = OneLineParser(prog="oa-kit", description="Knee osteoarthritis prediction toolkit.")
    parser.add_argument("--version", action="version", version=f"oa-kit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an unexpected error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line: user errors print one line and return 2; any other exception (a bug, or a case no
    reader catches yet) also prints one line, returns 1, and shows its traceback only with ``--debug``.

    Ctrl-C prints "interrupted" and returns 130; SIGTERM prints "terminated" and returns 143. Both stop any worker
    processes first and leave no half-written output (writers are atomic; their temporary files are removed).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with terminate_on_signals():
            return int(args.func(args) or 0)
    except (OAKitError, FileExistsError, FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        print(f"oa-kit {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"oa-kit {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"oa-kit {args.command}: terminated ({exc})", file=sys.stderr)
        return 128 + exc.signum
    except Exception as exc:  # the last resort: no traceback reaches a user unless asked for
        if args.debug:
            raise
        print(
            f"oa-kit {args.command}: unexpected error {type(exc).__name__}: {_one_line(exc)} "
            "(a bug in oa_kit: rerun with --debug and report the traceback)",
            file=sys.stderr,
        )
        return 1


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
