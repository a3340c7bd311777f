"""Worker processes for independent tasks (scans, horizons): how many to start, and an ordered map over them.

Workers are spawned (not forked), so a parent holding torch or BLAS thread pools cannot deadlock them; results come
back in input order, so a run's outputs do not depend on how many workers computed them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from oa_kit.errors import OAKitError


def resolve_n_jobs(n_jobs: int, n_tasks: int) -> int:
    """Processes to use for ``n_tasks`` tasks: ``n_jobs``, where -1 means one per CPU core available to this process;
    never more than the tasks (at least 1)."""
    if n_jobs == -1:
        n_jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if n_jobs < 1:
        raise OAKitError(f"n_jobs: got {n_jobs}; expected a positive number of processes or -1 (one per core)")
    return max(1, min(n_jobs, n_tasks))


def ordered_map(func: Callable[..., Any], tasks: Sequence[tuple], n_jobs: int = 1) -> list[Any]:
    """``[func(*task) for task in tasks]``, in this process (``n_jobs`` 1) or in spawned worker processes.

    ``func`` must be a module-level function and the tasks picklable; the first task error is raised as is.
    """
    jobs = resolve_n_jobs(int(n_jobs), len(tasks))
    if jobs == 1:
        return [func(*task) for task in tasks]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(func, *task) for task in tasks]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()
