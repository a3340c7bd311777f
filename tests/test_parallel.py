"""Worker-process helpers: how many workers, and an ordered map whose result does not depend on them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
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


def _run_then_signal(tmp_path, signum: int, group: bool) -> tuple[int, str, list[int]]:
    """Start ``oa-kit synth --jobs 2`` (images rendered in two workers), send ``signum`` once both workers run (to
    the whole process group when ``group``: what a terminal's Ctrl-C does), and return (exit code, stderr, worker
    PIDs seen)."""
    out = tmp_path / "cohort"
    command = [sys.executable, "-c", "import sys; from oa_kit.cli import main; sys.exit(main())"]
    args = ["synth", "--preset", "tiny", "--n-participants", "40", "--jobs", "2", "--quiet", "--out", str(out)]
    proc = subprocess.Popen(
        [*command, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        workers = _workers_once_busy(proc)
        os.killpg(proc.pid, signum) if group else proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, err, workers


def _workers_once_busy(proc: subprocess.Popen) -> list[int]:
    """PIDs of ``proc``'s worker processes, once two of them have used a second of CPU (spawned and working)."""
    parent, deadline = psutil.Process(proc.pid), time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            workers = [c for c in parent.children() if "resource_tracker" not in " ".join(c.cmdline())]
            if len(workers) >= 2 and all(c.cpu_times().user > 1.0 for c in workers):
                return [c.pid for c in workers]
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.2)
    raise AssertionError("the run ended (or never started two workers) before the signal")


def _no_leftovers(tmp_path, pids: list[int]) -> None:
    """No worker alive, no output folder, no temporary sibling."""

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in pids):
        time.sleep(0.1)
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"workers {alive} outlived their parent"
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "partial output left behind"


@pytest.mark.slow
def test_sigterm_stops_the_workers_and_leaves_no_partial_output(tmp_path):

    code, err, pids = _run_then_signal(tmp_path, signal.SIGTERM, group=False)
    assert code == 143, err
    assert err.strip() == "oa-kit synth: terminated (received SIGTERM)", err
    _no_leftovers(tmp_path, pids)


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_leaves_no_partial_output(tmp_path):

    code, err, pids = _run_then_signal(tmp_path, signal.SIGINT, group=True)
    assert code == 130, err
    assert err.strip() == "oa-kit synth: interrupted", err
    _no_leftovers(tmp_path, pids)
