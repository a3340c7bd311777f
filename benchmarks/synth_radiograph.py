"""Benchmark: time to render and write one synthetic bilateral PA radiograph per site (prints numbers, asserts nothing).

Run: ``python benchmarks/synth_radiograph.py [repeats]``. Reports wall and CPU seconds (CPU time is less affected
by other processes on a shared machine) for ``render_bilateral_pa`` at the default 180 x 280 mm field and for
``write_radiograph_dicom`` with each site's transfer syntax.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from oa_kit.synth.radiograph import SITE_PROFILES, anatomy_from_grades, render_bilateral_pa, write_radiograph_dicom


def _timed(fn):
    """Run ``fn`` once; return (result, wall seconds, CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(repeats: int = 5) -> None:
    """Print median render and write times per site."""
    right = anatomy_from_grades("R", 3, 2.5, 6.0, jsn_medial=2, seed=0)
    left = anatomy_from_grades("L", 2, 4.0, 6.0, jsn_medial=1, seed=1)
    print(f"{'site':4} {'pixels':>12} {'render wall s':>14} {'render cpu s':>13} {'write wall s':>13} {'syntax'}")
    with tempfile.TemporaryDirectory() as tmp:
        for code, site in SITE_PROFILES.items():
            renders, writes = [], []
            for seed in range(repeats):
                image, wall, cpu = _timed(
                    lambda site=site, seed=seed: render_bilateral_pa(right, left, site, seed=seed)
                )
                renders.append((wall, cpu))
                path = Path(tmp) / f"{code}.dcm"
                _, write_wall, _ = _timed(
                    lambda path=path, image=image, site=site: write_radiograph_dicom(path, image, site, "9000000", 0)
                )
                writes.append(write_wall)
            shape = "x".join(map(str, image.pixels.shape))
            wall = statistics.median(w for w, _ in renders)
            cpu = statistics.median(c for _, c in renders)
            write = statistics.median(writes)
            print(f"{code:4} {shape:>12} {wall:14.3f} {cpu:13.3f} {write:13.3f} {site.transfer_syntax}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
