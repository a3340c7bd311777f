"""Validation of the classical marginal-osteophyte measurement on the demo cohort's synthetic bilateral PA DICOMs.

Reads every ``xray/*.dcm`` of the cohort, cuts the knee ROIs (``knee_rois``) and measures the four marginal
osteophyte lengths and spur areas (``oa_kit.imaging.osteophyte.measure_osteophytes``); prints

* per site, Pearson r and MAE of the measured lengths against the generator's drawn lengths (``truth/knees.parquet``),
  over all knees and over sites with a graded spur (OARSI grade >= 1 in the truth), and the time per ROI;
* per site and OARSI grade (truth), the within-grade Pearson r of the drawn length with the measured length and with
  the spur area (a measure that tracks spur size within a grade is what carries the size latent below);
* the 5-fold (participant-grouped) cross-validated R^2 of the image-only osteophyte-size latent ``image_osteophyte_z``
  from a ridge model on the four OARSI osteophyte grades of the feature table, alone and with measures (each with a
  slope per grade of its margin): the feature table's lengths (as the demo measured them), the lengths measured now,
  the spur areas, and lengths + spur areas. With the drawn lengths as the measures this model reaches R^2 0.95 on the
  demo cohort: the ceiling for any measurement of spur size.

Method choices (spur rows, edge rule) were made while looking at the first 150 DICOMs; on the other 350 the
within-grade r and R^2 are the same to within a few hundredths, so they are not fitted to those knees.

**All numbers come from synthetic images drawn by oa_kit's own renderer; they say the measurement tracks that
renderer's spurs, not that it works on real radiographs.**

Usage: ``OMP_NUM_THREADS=1 python benchmarks/osteophyte.py [--cohort demo_out/cohort] [--features
demo_out/features.parquet] [--limit N] [--roi-cache runs/h_ost/rois.npz]`` (the cache holds the ROIs of the first N
DICOMs, so iterating on the measurement skips the slow ROI extraction; delete it when the cohort changes);
``--normal-margin`` instead recomputes the constants ``NORMAL_MARGIN`` and ``SPUR_FREE_OFFSET_MM`` of
``oa_kit.imaging.osteophyte`` from spur-free knees rendered at sites A-E.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from oa_kit.imaging.localize import KneeROI, knee_rois
from oa_kit.imaging.osteophyte import (
    NORMAL_MARGIN,
    OSTEOPHYTE_SITES,
    SPUR_FREE_OFFSET_MM,
    band_extents,
    measure_osteophytes,
    spur_row_offsets,
)
from oa_kit.io.atomic import atomic_path
from oa_kit.io.radiograph import Radiograph, read_radiograph

LENGTHS = [f"osteophyte_mm_{k}" for k in OSTEOPHYTE_SITES]
AREAS = [f"osteophyte_area_mm2_{k}" for k in OSTEOPHYTE_SITES]
GRADES = [f"osteophyte_{k}" for k in OSTEOPHYTE_SITES]


def normal_margin(n_per_site: int = 3, seed: int = 0) -> pd.DataFrame:
    """Median spur-free constants per margin over spur-free bilateral renders (``n_per_site`` per site A-E):
    ``extent / half - 1`` (``NORMAL_MARGIN``) and spur-row edge offset / scale (``SPUR_FREE_OFFSET_MM``, mm)."""
    from oa_kit.synth.radiograph import SITE_PROFILES, KneeAnatomy, render_bilateral_pa

    rng = np.random.default_rng(seed)
    ratios, offsets = [], []
    for site in "ABCDE":
        for _ in range(n_per_site):
            jsw = rng.uniform(3.5, 6.0, size=2)
            knees = [KneeAnatomy(side, float(jsw[0]), float(jsw[1]), {}, 0.1, 0.0) for side in ("R", "L")]
            rendered = render_bilateral_pa(*knees, SITE_PROFILES[site], seed=int(rng.integers(2**31)))
            radiograph = Radiograph(rendered.pixels.astype(np.float32), (rendered.spacing_mm,) * 2, (), "render", {})
            for roi in knee_rois(radiograph):
                pixels, sp = np.asarray(roi.pixels, np.float32), float(roi.spacing_mm)
                found, spur = band_extents(pixels, sp), spur_row_offsets(pixels, sp)
                if not isinstance(found, str):
                    extents, half, _ = found
                    ratios.append({key: extents[key] / half - 1.0 for key in OSTEOPHYTE_SITES})
                if not isinstance(spur, str):
                    offset, scale = spur
                    offsets.append({key: offset[key] / scale for key in OSTEOPHYTE_SITES})
    ratios, offsets = pd.DataFrame(ratios), pd.DataFrame(offsets)
    return pd.DataFrame(
        {
            "margin": list(OSTEOPHYTE_SITES),
            "n_knees": len(ratios),
            "median_ratio": [ratios[k].median() for k in OSTEOPHYTE_SITES],
            "shipped_NORMAL_MARGIN": [NORMAL_MARGIN[k] for k in OSTEOPHYTE_SITES],
            "median_offset_mm": [offsets[k].median() for k in OSTEOPHYTE_SITES],
            "sd_offset_mm": [offsets[k].std() for k in OSTEOPHYTE_SITES],
            "shipped_SPUR_FREE_OFFSET_MM": [SPUR_FREE_OFFSET_MM[k] for k in OSTEOPHYTE_SITES],
        }
    )


def cohort_rois(xray_dir: Path, limit: int | None, cache: Path | None) -> list[tuple[str, KneeROI]]:
    """(participant ID, ROI) of every knee in the first ``limit`` DICOMs; read from / written to ``cache`` (.npz)."""
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as saved:
            pixels, spacing, ids, sides = saved["pixels"], saved["spacing"], saved["ID"], saved["side"]
        return [
            (str(i), KneeROI(str(s), p, float(sp), (0.0, 0.0), (0, 0, 1, 1), False, ()))
            for p, sp, i, s in zip(pixels, spacing, ids, sides)
        ]
    found = [
        (path.name.split("_")[0], roi)
        for path in sorted(xray_dir.glob("*.dcm"))[:limit]
        for roi in knee_rois(read_radiograph(path))
    ]
    if cache is not None:
        with atomic_path(cache) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                pixels=np.stack([np.asarray(r.pixels, np.float32) for _, r in found]),
                spacing=np.array([r.spacing_mm for _, r in found]),
                ID=np.array([i for i, _ in found]),
                side=np.array([r.side for _, r in found]),
            )
    return found


def measure_cohort(rois: list[tuple[str, KneeROI]]) -> tuple[pd.DataFrame, float]:
    """Measured lengths and areas per knee (ID, side, osteophyte_mm_*, osteophyte_area_mm2_*, reason) and the mean
    measurement time per ROI (ms)."""
    rows, seconds = [], 0.0
    for participant, roi in rois:
        start = time.perf_counter()
        result = measure_osteophytes(roi)
        seconds += time.perf_counter() - start
        rows.append({"ID": participant, "side": roi.side, "reason": result.reason, **result.as_dict()})
    return pd.DataFrame(rows), 1000.0 * seconds / max(1, len(rows))


def site_table(merged: pd.DataFrame) -> pd.DataFrame:
    """Pearson r and MAE (mm) of measured vs drawn length per site, all knees and graded spurs only."""
    out = []
    for key in OSTEOPHYTE_SITES:
        measured, truth = merged[f"osteophyte_mm_{key}"], merged[f"osteophyte_mm_{key.upper()}"]
        ok = measured.notna()
        graded = ok & (merged[f"os_{key.upper()}"] >= 1)
        out.append(
            {
                "site": key.upper(),
                "n": int(ok.sum()),
                "r": np.corrcoef(measured[ok], truth[ok])[0, 1],
                "mae_mm": float((measured[ok] - truth[ok]).abs().mean()),
                "n_graded": int(graded.sum()),
                "r_graded": np.corrcoef(measured[graded], truth[graded])[0, 1] if graded.sum() > 2 else np.nan,
                "mae_graded_mm": float((measured[graded] - truth[graded]).abs().mean()),
                "mean_drawn_mm": float(truth[ok].mean()),
                "mean_measured_mm": float(measured[ok].mean()),
            }
        )
    return pd.DataFrame(out)


def _r(x: pd.Series, y: pd.Series) -> float:
    """Pearson r over the rows where both are finite (NaN with fewer than 5)."""
    ok = x.notna() & y.notna()
    return float(np.corrcoef(x[ok], y[ok])[0, 1]) if ok.sum() >= 5 else np.nan


def within_grade_table(data: pd.DataFrame) -> pd.DataFrame:
    """Per site and true OARSI grade: Pearson r of the drawn length with the demo's length (feature table), the
    length measured now and the spur area."""
    out = []
    for key in OSTEOPHYTE_SITES:
        for grade, group in data.groupby(f"os_{key.upper()}"):
            truth = group[f"osteophyte_mm_{key.upper()}"]
            out.append(
                {
                    "site": key.upper(),
                    "grade": int(grade),
                    "n": len(group),
                    "drawn_mm_range": f"{truth.min():.2f}-{truth.max():.2f}",
                    "r_length_demo": _r(group[f"demo_osteophyte_mm_{key}"], truth),
                    "r_length_now": _r(group[f"osteophyte_mm_{key}"], truth),
                    "r_area": _r(group[f"osteophyte_area_mm2_{key}"], truth),
                }
            )
    return pd.DataFrame(out)


def latent_r2(data: pd.DataFrame, measures: list[str], seed: int = 0) -> float:
    """Cross-validated R^2 of image_osteophyte_z from the OARSI osteophyte grades (one-hot) and ``measures`` (lengths
    also as log1p), each measure with a slope per grade of its margin (spur size within a grade is the signal, and
    1 mm means more at grade 0 than at grade 2)."""
    grades = data[GRADES].astype(int)
    x = pd.get_dummies(grades.astype(str)).astype(float)
    columns = dict(zip(measures, measures))
    columns.update({f"log1p_{c}": c for c in measures if "_mm_" in c})
    for name, column in columns.items():
        values = np.log1p(data[column]) if name.startswith("log1p_") else data[column]
        margin = column.rsplit("_", 1)[1]
        for grade in range(4):
            x[f"{name}_g{grade}"] = values.where(grades[f"osteophyte_{margin}"] == grade, 0.0)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    cv = GroupKFold(n_splits=5, shuffle=True, random_state=seed)
    predicted = cross_val_predict(model, x, data["image_osteophyte_z"], cv=cv, groups=data["ID"].to_numpy())
    return float(r2_score(data["image_osteophyte_z"], predicted))


def main() -> None:
    """Measure the cohort and print the validation tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, default=Path("demo_out/cohort"))
    parser.add_argument("--features", type=Path, default=Path("demo_out/features.parquet"))
    parser.add_argument("--limit", type=int, default=None, help="only the first N DICOMs")
    parser.add_argument("--roi-cache", type=Path, default=None, help=".npz of the ROIs (written if missing)")
    parser.add_argument(
        "--normal-margin",
        action="store_true",
        help="recompute NORMAL_MARGIN and SPUR_FREE_OFFSET_MM from 30 spur-free synthetic knees "
        "(3 bilateral renders per site) and exit",
    )
    args = parser.parse_args()
    fmt = {"float_format": lambda v: f"{v:.3f}", "index": False}
    if args.normal_margin:
        print(
            "SYNTHETIC DATA (oa_kit renderer), spur-free knees: band extent / reference half-width - 1, "
            "spur-row edge offset / scale"
        )
        print(normal_margin().to_string(**fmt))
        return
    measured, ms_per_roi = measure_cohort(cohort_rois(args.cohort / "xray", args.limit, args.roi_cache))
    truth = pd.read_parquet(args.cohort / "truth" / "knees.parquet").astype({"ID": str})
    merged = measured.merge(truth, on=["ID", "side"], how="inner", validate="one_to_one")
    print(
        f"SYNTHETIC DATA (oa_kit renderer): {len(merged)} knees measured, "
        f"{int((merged['reason'] != '').sum())} not measurable; {ms_per_roi:.1f} ms per ROI"
    )
    print(site_table(merged).to_string(**fmt))
    features = pd.read_parquet(args.features)
    features = features[features["visit_month"] == 0].rename(columns={"participant_id": "ID"}).astype({"ID": str})
    demo = features[["ID", "side", *GRADES, *LENGTHS]].rename(columns={c: f"demo_{c}" for c in LENGTHS})
    data = merged.merge(demo, on=["ID", "side"], how="inner")
    print("\nWithin-grade Pearson r with the drawn length (true OARSI grade): demo lengths, lengths now, spur area")
    print(within_grade_table(data).to_string(**fmt))
    data = data.dropna(subset=GRADES + LENGTHS + AREAS + ["image_osteophyte_z"])
    print(f"\nimage_osteophyte_z, 5-fold participant-grouped CV R^2 (ridge), n={len(data)} knees:")
    print(f"  OARSI osteophyte grades alone:               {latent_r2(data, []):.3f}")
    print(f"  grades + 4 demo lengths (+log1p):            {latent_r2(data, [f'demo_{c}' for c in LENGTHS]):.3f}")
    print(f"  grades + 4 lengths now (+log1p):             {latent_r2(data, LENGTHS):.3f}")
    print(f"  grades + 4 spur areas:                       {latent_r2(data, AREAS):.3f}")
    print(f"  grades + lengths now (+log1p) + spur areas:  {latent_r2(data, LENGTHS + AREAS):.3f}")


if __name__ == "__main__":
    main()
