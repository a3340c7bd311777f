"""Benchmark: seconds to render one synthetic DESS-like knee volume and write it as NIfTI (prints numbers)."""

from __future__ import annotations

import tempfile
import time

import numpy as np

from oa_kit.io.mri import read_nifti
from oa_kit.synth.mri import DEFAULT_GEOMETRY, DEFAULT_THICKNESS_MM, SITE_MRI, render_knee_mri, write_knee_mri


def main(n: int = 10) -> None:
    """Render ``n`` volumes at the default geometry, then write/read one; print median timings and file sizes."""
    render_knee_mri("R", DEFAULT_THICKNESS_MM, seed=0)  # warm-up
    times, cpu = [], []
    for seed in range(n):
        start, start_cpu = time.perf_counter(), time.process_time()
        rendered = render_knee_mri(
            "RL"[seed % 2], DEFAULT_THICKNESS_MM, DEFAULT_GEOMETRY, SITE_MRI["ABCDE"[seed % 5]], seed
        )
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    print(
        f"render_knee_mri {DEFAULT_GEOMETRY.shape}: median wall {np.median(times):.3f} s, "
        f"median CPU {np.median(cpu):.3f} s, max wall {max(times):.3f} s (n={n}; wall time depends on machine load)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        image, labels = write_knee_mri(tmp, "9000001", rendered.side, 0, rendered)
        write_s = time.perf_counter() - start
        start = time.perf_counter()
        read_nifti(image)
        read_s = time.perf_counter() - start
        print(
            f"write_knee_mri: {write_s:.3f} s; read_nifti: {read_s:.3f} s; "
            f"image {image.stat().st_size / 1e6:.2f} MB, labels {labels.stat().st_size / 1e3:.0f} kB"
        )


if __name__ == "__main__":
    main()
