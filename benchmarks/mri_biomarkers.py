"""Cartilage biomarker speed and memory per volume (no network): ``measure_cartilage`` and ``qc_flags`` timed apart.

Run: ``OMP_NUM_THREADS=2 python benchmarks/mri_biomarkers.py [--n 3] [--oai]``.

Inputs are phantom label maps (``oa_kit.synth.mri``, synthetic content) with their one-hot "probabilities", so the
probability path of the pipeline (10 x X x Y x Z float32) is exercised without running the segmenter. Prints seconds
(wall and CPU) for the biomarkers (volume, normal-ray thickness, cross-check, FCL, subregions, voxel maps) and for
the QC flags, the tracemalloc peak of a second, traced run (Python/numpy allocations made by the measurement, inputs
excluded) and the process peak RSS (inputs included). ``benchmarks/mri_speed.py`` times segmentation plus biomarkers end to end.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np

from oa_kit.features.cartilage import measure_cartilage
from oa_kit.features.mri_qc import qc_flags
from oa_kit.io.labels import LABELS, SUBREGIONS
from oa_kit.synth.mri import DEFAULT_GEOMETRY, SITE_MRI, MRIGeometry, render_knee_mri

#: Real OAI DESS grid: 160 sagittal slices of 384 x 384 at 0.7 x 0.365 x 0.365 mm.
OAI_GEOMETRY = MRIGeometry(shape=(160, 384, 384), spacing_mm=(0.7, 0.3646, 0.3646))


def one_hot(labels: np.ndarray) -> np.ndarray:
    """Harmonised one-hot probabilities (10, X, Y, Z) float32 of a label map."""
    proba = np.zeros((len(LABELS), *labels.shape), dtype=np.float32)
    for k in LABELS:
        proba[k] = labels == k
    return proba


def _timed(fn, *args, **kwargs) -> tuple[float, float]:
    """Wall and CPU seconds of one call (CPU time is the fairer figure on a shared, loaded machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu


def time_biomarkers(labels: np.ndarray, affine: np.ndarray, side: str, trace: bool) -> dict[str, float]:
    """Wall/CPU seconds for ``measure_cartilage`` and ``qc_flags`` on one volume, and the tracemalloc peak (MiB) of a
    traced rerun."""
    proba = one_hot(labels)
    out = dict(zip(("bio_wall", "bio_cpu"), _timed(measure_cartilage, labels, affine, side, proba=proba)))
    out.update(zip(("qc_wall", "qc_cpu"), _timed(qc_flags, labels, affine, side, proba)))
    out["peak_mib"] = float("nan")
    if trace:
        tracemalloc.start()
        measure_cartilage(labels, affine, side, proba=proba)
        qc_flags(labels, affine, side, proba)
        out["peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return out


def _report(name: str, shape: tuple[int, ...], t: dict[str, float]) -> None:
    """Print one line of results."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(
        f"{name} {shape}: biomarkers {t['bio_wall']:.2f} s (CPU {t['bio_cpu']:.2f} s) + QC {t['qc_wall']:.2f} s "
        f"(CPU {t['qc_cpu']:.2f} s) = {t['bio_wall'] + t['qc_wall']:.2f} s (CPU {t['bio_cpu'] + t['qc_cpu']:.2f} s); "
        f"tracemalloc peak {t['peak_mib']:.0f} MiB; process peak RSS so far {rss:.0f} MiB",
        flush=True,
    )


def main() -> None:
    """Time ``--n`` default-geometry phantoms and, with ``--oai``, one OAI DESS-sized phantom."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3, help="synthetic volumes (default geometry)")
    parser.add_argument("--oai", action="store_true", help="also one volume at OAI DESS geometry (slow to render)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for i in range(args.n):
        side = "RL"[i % 2]
        r = render_knee_mri(
            side, {s: float(rng.uniform(1, 3)) for s in SUBREGIONS}, DEFAULT_GEOMETRY, SITE_MRI["ABCDE"[i % 5]], seed=i
        )
        _report(f"synthetic {side}", r.labels.shape, time_biomarkers(r.labels, r.affine, side, trace=i == 0))
    if args.oai:
        r = render_knee_mri("R", {s: 2.0 for s in SUBREGIONS}, OAI_GEOMETRY, SITE_MRI["A"], seed=0)
        timing = time_biomarkers(r.labels, r.affine, "R", trace=True)
        _report("OAI DESS geometry (synthetic content) R", r.labels.shape, timing)


if __name__ == "__main__":
    main()
