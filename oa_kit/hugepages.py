"""NumPy's transparent-hugepage advice, turned off while a knee MRI is segmented and measured.

On Linux NumPy asks the kernel for transparent hugepages (``madvise``) for every array of 4 MB or more. Where the
kernel's ``/sys/kernel/mm/transparent_hugepage/defrag`` is ``madvise`` (a common default) a fault in such an array
may first compact memory. Measuring one OAI-size knee makes hundreds of short-lived arrays of 10-200 MB, and on the
development machine the advice cost 35-70 % more time (40.6 against 23.5 s, and in a slower hour 43.5-48.1 against
32.7-33.4 s; the same peak memory; ``benchmarks/mri_speed.py --sizes oai-dess [--numpy-hugepages]``). NumPy's own switch, ``NUMPY_MADVISE_HUGEPAGE=0``, is read
once at import; :func:`small_pages` turns the advice off for a block of code and restores it when the last of the
blocks that overlap (threads of one process) ends.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from numpy._core import multiarray


class _Advice:
    """The process's hugepage advice as the open :func:`small_pages` blocks left it: how many are open, and the
    setting to restore when the last one closes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = 0
        self.before = True


_ADVICE = _Advice()


@contextlib.contextmanager
def small_pages() -> Iterator[None]:
    """Within the block, NumPy allocates large arrays without asking for transparent hugepages (ordinary 4 KB
    pages); the previous setting is back once every overlapping block has ended."""
    with _ADVICE.lock:
        if _ADVICE.open == 0:
            _ADVICE.before = bool(multiarray._set_madvise_hugepage(False))
        _ADVICE.open += 1
    try:
        yield
    finally:
        with _ADVICE.lock:
            _ADVICE.open -= 1
            if _ADVICE.open == 0:
                multiarray._set_madvise_hugepage(_ADVICE.before)
