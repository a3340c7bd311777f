"""Knee-localisation error (mm) on synthetic bilateral PA radiographs whose joint centres are known.

Renders ``--participants`` radiographs (two knees each) across sites A–E (MONOCHROME1/2, uncompressed, RLE and
JPEG 2000 DICOM) and KL grades 0–4, writes each as DICOM, reads it back with ``oa_kit.io.radiograph`` and runs
``oa_kit.imaging.knee_rois``. Prints the Euclidean error of the located joint centre (mm; synthetic data only:
it measures the method on the renderer's anatomy, not on real radiographs), overall and per site and KL grade.

With ``--chen N`` it also reports how many of N real Chen 2018 val crops (``../shared/data/knee-kl-chen2018``; joint-centred,
no spacing, so only recognition is measured, not error) are recognised as a knee and passed through.

Usage: ``python benchmarks/localization.py [--participants 60] [--seed 0] [--chen 200]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from oa_kit.imaging import knee_rois
from oa_kit.io.radiograph import read_radiograph
from oa_kit.synth.radiograph import SITE_PROFILES, anatomy_from_grades, render_bilateral_pa, write_radiograph_dicom

#: Typical minimum JSW (mm) per KL grade (medial, lateral) for the benchmark's knees.
JSW_BY_KL = {0: (5.0, 6.0), 1: (4.5, 5.8), 2: (3.5, 5.5), 3: (2.0, 5.0), 4: (0.3, 4.5)}


def synthetic_case(index: int, seed: int):
    """Site, KL grades and rendered radiograph of benchmark participant ``index``."""
    rng = np.random.default_rng([seed, index])
    site = SITE_PROFILES["ABCDE"[index % 5]]
    kls = {side: int(rng.integers(0, 5)) for side in ("R", "L")}
    anatomy = {
        side: anatomy_from_grades(
            side, kl, *(v * rng.uniform(0.85, 1.15) for v in JSW_BY_KL[kl]), seed=int(rng.integers(2**31))
        )
        for side, kl in kls.items()
    }
    rendered = render_bilateral_pa(anatomy["R"], anatomy["L"], site, seed=int(rng.integers(2**31)))
    return site, kls, rendered


def localisation_errors(participants: int, seed: int, folder: Path) -> pd.DataFrame:
    """One row per knee: site, KL, photometric, transfer syntax, found, error_mm (NaN when not found)."""
    rows = []
    for i in range(participants):
        site, kls, rendered = synthetic_case(i, seed)
        path = folder / f"P{i:04d}_V00_PA.dcm"
        write_radiograph_dicom(path, rendered, site, f"P{i:04d}", 0)
        start = time.perf_counter()
        radiograph = read_radiograph(path)
        found = {roi.side: roi.centre_px for roi in knee_rois(radiograph)}
        seconds = time.perf_counter() - start
        for side, (t_row, t_col) in rendered.joint_centres_px.items():
            err = np.nan
            if side in found:
                err = float(np.hypot(found[side][0] - t_row, found[side][1] - t_col) * rendered.spacing_mm)
            rows.append(
                {
                    "participant": i,
                    "site": site.site,
                    "side": side,
                    "kl": kls[side],
                    "photometric": site.photometric,
                    "transfer_syntax": site.transfer_syntax,
                    "found": side in found,
                    "error_mm": err,
                    "read_localise_s": seconds,
                }
            )
    return pd.DataFrame(rows)


def chen_recognition(n: int, seed: int) -> tuple[int, int]:
    """(recognised, tried) over ``n`` random real Chen 2018 val crops; (0, 0) when the data is absent."""
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "knee-kl-chen2018"
    if not (root / "manifest.csv").exists() or n <= 0:
        return 0, 0
    manifest = pd.read_csv(root / "manifest.csv")
    sample = manifest[manifest["split"] == "val"].sample(min(n, 826), random_state=seed)
    found = sum(
        bool(knee_rois(read_radiograph(root / path), side=side)) for path, side in zip(sample["path"], sample["side"])
    )
    return found, len(sample)


def main() -> None:
    """Run the benchmark and print the error summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=60, help="radiographs to render (2 knees each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chen", type=int, default=0, help="also test recognition on N real Chen 2018 val crops")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        table = localisation_errors(args.participants, args.seed, Path(tmp))
    err = table["error_mm"].dropna()
    per_image = table.groupby("participant")["read_localise_s"].first().mean()
    print(
        f"synthetic knees: {len(table)} ({args.participants} radiographs, sites A-E), found {table['found'].sum()}"
        f" ({100 * table['found'].mean():.1f}%); read + localise + 2 ROIs: {per_image:.2f} s per radiograph"
    )
    print(
        f"joint-centre error (mm, SYNTHETIC data): mean {err.mean():.2f}  median {err.median():.2f}  "
        f"p95 {np.percentile(err, 95):.2f}  max {err.max():.2f}"
    )
    summary = table.groupby(["site", "photometric", "transfer_syntax"])["error_mm"].agg(["count", "mean", "max"])
    print(summary.round(2).to_string())
    print(table.groupby("kl")["error_mm"].agg(["count", "mean", "max"]).round(2).to_string())
    found, tried = chen_recognition(args.chen, args.seed)
    if tried:
        print(
            f"real Chen 2018 val crops recognised as a knee (passthrough): {found}/{tried} ({100 * found / tried:.1f}%)"
        )


if __name__ == "__main__":
    main()
