"""Worker processes for independent tasks (participants, scans, horizons): how many to start, and one map over them.

Workers are spawned (not forked), so a parent holding torch or BLAS thread pools cannot deadlock them; results come
back in input order, so a run's outputs do not depend on how many workers computed them. This is the only process
pool in oa_kit: the cohort generator, the MRI batch and the progression report all use :func:`ordered_map`.

Stopping: workers ignore SIGINT (a Ctrl-C reaches the whole process group; only this process acts on it), and while
:func:`terminate_on_signals` is in force SIGTERM raises :class:`Terminated` here instead of killing this process
outright. Either way the exception unwinds :func:`ordered_map`, which terminates its workers (none is left running)
before it propagates, and every ``finally`` on the way deletes its temporary files (``oa_kit.io.atomic``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
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


class Terminated(BaseException):
    """A termination signal (SIGTERM) received while :func:`terminate_on_signals` was in force.

    A ``BaseException`` like ``KeyboardInterrupt``, so ``except Exception`` handlers do not swallow it; the command
    line exits with ``128 + signum`` (143 for SIGTERM), the shell's code for a process ended by that signal.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum


def _raise_terminated(signum: int, _frame: object) -> None:
    """Signal handler: turn SIGTERM into :class:`Terminated` in the main thread."""
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (so workers are stopped and temporary files removed)
    instead of ending the process at once; a handler someone else installed, or a call off the main thread, is left
    alone."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_DFL,
        None,
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


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
    task error is raised as is; on it, or on Ctrl-C or SIGTERM (see :func:`terminate_on_signals`), the other tasks
    are cancelled and the workers terminated before the exception propagates (no worker outlives the call).
    """
    jobs = resolve_n_jobs(int(n_jobs), len(tasks))
    if jobs == 1 and initializer is None:
        return [_done(func(*task), on_done) for task in tasks]
    context = multiprocessing.get_context("spawn")
    with terminate_on_signals():
        pool = ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=_init_worker, initargs=(initializer, initargs)
        )
        try:
            futures = {pool.submit(func, *task): i for i, task in enumerate(tasks)}
            results: list[Any] = [None] * len(tasks)
            for future in as_completed(futures):
                results[futures[future]] = _done(future.result(), on_done)
        except BaseException:
            _stop(pool)
            raise
        pool.shutdown()
    return results


def _init_worker(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    """Worker start: ignore SIGINT (the parent handles Ctrl-C and terminates its workers), then the caller's
    initializer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the pending tasks and terminate the workers now, instead of waiting for their running tasks."""
    workers = list((getattr(pool, "_processes", None) or {}).values())  # the executor has no public handle on them
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join(timeout=5)
        if worker.is_alive():
            worker.kill()
            worker.join(timeout=5)


def _done(result: Any, on_done: Callable[[], None] | None) -> Any:
    """Report one finished task to ``on_done`` and pass its result through."""
    if on_done is not None:
        on_done()
    return result
