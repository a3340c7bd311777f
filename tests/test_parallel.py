"""Worker-process helpers: how many workers, and an ordered map whose result does not depend on them."""

from __future__ import annotations

import pytest

from oa_kit.cli import build_parser
from oa_kit.errors import OAKitError
from oa_kit.parallel import ordered_map, resolve_n_jobs


def _power(base: int, exponent: int) -> int:
    """Module-level task for the spawned workers."""
    if base < 0:
        raise OAKitError(f"base: {base}; expected a non-negative number")
    return base**exponent


def test_resolve_n_jobs():
    assert resolve_n_jobs(-1, 10**6) >= 1
    assert resolve_n_jobs(4, 3) == 3 and resolve_n_jobs(2, 0) == 1
    with pytest.raises(OAKitError, match="n_jobs"):
        resolve_n_jobs(0, 5)


def test_ordered_map_same_in_workers_and_in_process():
    tasks = [(b, 3) for b in range(6, 0, -1)]
    assert (
        ordered_map(_power, tasks, n_jobs=2) == ordered_map(_power, tasks, n_jobs=1) == [b**3 for b in range(6, 0, -1)]
    )


def test_ordered_map_raises_the_task_error_from_a_worker():
    with pytest.raises(OAKitError, match="base: -1"):
        ordered_map(_power, [(2, 2), (-1, 2)], n_jobs=2)


def test_every_parallel_entry_point_takes_minus_one(tmp_path, capsys):
    """``--jobs -1`` (one worker per core) reaches the one pool from the CLI; 0 is refused in one line."""
    from oa_kit.cli import main

    args = ["synth", "--preset", "tiny", "--n-participants", "2", "--quiet", "--out"]
    assert main([*args, str(tmp_path / "a"), "--jobs", "-1"]) == 0
    assert main([*args, str(tmp_path / "b"), "--jobs", "0"]) == 2
    assert "--jobs: 0; expected a positive number of processes or -1" in capsys.readouterr().err
    demo = build_parser().parse_args(["demo", "--jobs", "-1"])
    assert demo.jobs == -1 and resolve_n_jobs(demo.jobs, 4) >= 1
