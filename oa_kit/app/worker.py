"""A page's background worker: one kind of network work of a knee (KL-CNN with Grad-CAM, or MRI segmentation and
biomarkers) runs on a daemon thread after the page has shown the knee's risk, so a page load or a knee switch never
waits for it; only the newest knee's work runs (an older knee's queued work is dropped, and a running job checks
:meth:`LatestWorker.current` before showing anything).

One thread per kind, not a pool: a page runs its knee's KL and MRI side by side (one worker each, so the MRI does not
wait for the radiograph), but never two knees of one kind, which would only delay the newest. A daemon thread never
keeps a kernel from shutting down.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

#: A job is given its generation number, to ask :meth:`LatestWorker.current` before each step it shows.
Job = Callable[[int], None]
LOG = logging.getLogger("oa_kit.app")


class LatestWorker:
    """Runs jobs one at a time on a daemon thread; submitting a job makes every earlier one outdated."""

    def __init__(self, name: str = "page") -> None:
        self.name = name
        self.generation = 0
        self._jobs: queue.Queue[tuple[int, Job]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, job: Job) -> int:
        """Queue ``job`` as the newest work and return its generation."""
        self.generation += 1
        self._jobs.put((self.generation, job))
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"oa_kit-{self.name}-worker", daemon=True)
                self._thread.start()
        return self.generation

    def cancel(self) -> None:
        """Make every queued or running job outdated (e.g. the page was cleared)."""
        self.generation += 1

    def current(self, generation: int) -> bool:
        """Whether ``generation`` is still the newest job (its results may be shown)."""
        return generation == self.generation

    def wait(self) -> None:
        """Block until every submitted job has finished or been dropped (warm-up, tests)."""
        self._jobs.join()

    def _run(self) -> None:
        """The thread: take jobs in order, skip outdated ones; an error a job let through is logged, the thread goes on."""
        while True:
            generation, job = self._jobs.get()
            try:
                if self.current(generation):
                    job(generation)
            except Exception:  # noqa: BLE001 - the page's jobs show their own errors; the thread must outlive any
                LOG.exception("%s worker job failed", self.name)
            finally:
                self._jobs.task_done()
