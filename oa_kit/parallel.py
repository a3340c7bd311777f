"""Worker processes for independent tasks (participants, scans, horizons): how many to start, and one map over them.

Workers are spawned (not forked), so a parent holding torch or BLAS thread pools cannot deadlock them; results come
back in input order, so a run's outputs do not depend on how many workers computed them. This is the only process
pool in oa_kit: the cohort generator, the MRI batch and the progression report all use :func:`ordered_map`.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from oa_kit.errors import OAKitError


def resolve_n_jobs(n_jobs: int, n_tasks: int) -> int:
    """Processes to use for ``n_tasks`` tasks: ``n_jobs``, where -1 means one per CPU core available to this process;
    never more than the tasks (at least 1)."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int):
        raise OAKitError(f"n_jobs: got {n_jobs!r}; expected a positive number of processes or -1 (one per core)")
    if n_jobs == -1:
        n_jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if n_jobs < 1:
        raise OAKitError(f"n_jobs: got {n_jobs}; expected a positive number of processes or -1 (one per core)")
    return max(1, min(n_jobs, n_tasks))


def ordered_map(
    func: Callable[..., Any],
    tasks: Sequence[tuple],
    n_jobs: int = 1,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    on_done: Callable[[], None] | None = None,
) -> list[Any]:
    """``[func(*task) for task in tasks]``, in this process (``n_jobs`` 1) or in spawned worker processes.

    ``func`` (and ``initializer``) must be module-level functions and the tasks picklable. ``initializer(*initargs)``
    runs once in each worker (e.g. to load a model once per process); it is not called in this process.
    ``on_done()`` is called as each task finishes, in completion order (e.g. to advance a progress bar). The first
    task error is raised as is; the other tasks are cancelled.
    """
    jobs = resolve_n_jobs(int(n_jobs), len(tasks))
    if jobs == 1 and initializer is None:
        return [_done(func(*task), on_done) for task in tasks]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=initializer, initargs=initargs) as pool:
        futures = {pool.submit(func, *task): i for i, task in enumerate(tasks)}
        results: list[Any] = [None] * len(tasks)
        try:
            for future in as_completed(futures):
                results[futures[future]] = _done(future.result(), on_done)
        finally:
            for future in futures:
                future.cancel()
    return results


def _done(result: Any, on_done: Callable[[], None] | None) -> Any:
    """Report one finished task to ``on_done`` and pass its result through."""
    if on_done is not None:
        on_done()
    return result
