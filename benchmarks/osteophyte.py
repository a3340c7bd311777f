"""Validation of the classical marginal-osteophyte measurement on the demo cohort's synthetic bilateral PA DICOMs.

Reads every ``xray/*.dcm`` of the cohort, cuts the knee ROIs (``knee_rois``) and measures the four marginal
osteophyte lengths (``oa_kit.imaging.osteophyte.marginal_osteophytes``); prints, per site, Pearson r and MAE against
the generator's drawn lengths (``truth/knees.parquet``), over all knees and over sites with a graded spur (OARSI
grade >= 1 in the truth), the time per ROI, and the 5-fold (participant-grouped) cross-validated R^2 of the image-only
osteophyte-size latent ``image_osteophyte_z`` from a linear model on the four OARSI osteophyte grades of the feature
table, alone and with the four measurements added. **All numbers come from synthetic images drawn by oa_kit's own
renderer; they say the measurement tracks that renderer's spurs, not that it works on real radiographs.**

Usage: ``OMP_NUM_THREADS=1 python benchmarks/osteophyte.py [--cohort demo_out/cohort] [--features
demo_out/features.parquet] [--limit N]``; ``--normal-margin`` instead recomputes the constant
``oa_kit.imaging.osteophyte.NORMAL_MARGIN`` from spur-free knees rendered at sites A-E.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from oa_kit.imaging.localize import knee_rois
from oa_kit.imaging.osteophyte import NORMAL_MARGIN, OSTEOPHYTE_SITES, band_extents, measure_osteophytes
from oa_kit.io.radiograph import Radiograph, read_radiograph


def normal_margin(n_per_site: int = 3, seed: int = 0) -> pd.DataFrame:
    """Median ``extent / half - 1`` per margin over spur-free bilateral renders (``n_per_site`` per site A-E)."""
    from oa_kit.synth.radiograph import SITE_PROFILES, KneeAnatomy, render_bilateral_pa

    rng = np.random.default_rng(seed)
    ratios = []
    for site in "ABCDE":
        for _ in range(n_per_site):
            jsw = rng.uniform(3.5, 6.0, size=2)
            knees = [KneeAnatomy(side, float(jsw[0]), float(jsw[1]), {}, 0.1, 0.0) for side in ("R", "L")]
            rendered = render_bilateral_pa(*knees, SITE_PROFILES[site], seed=int(rng.integers(2 ** 31)))
            radiograph = Radiograph(rendered.pixels.astype(np.float32), (rendered.spacing_mm,) * 2, (), "render", {})
            for roi in knee_rois(radiograph):
                found = band_extents(np.asarray(roi.pixels, np.float32), float(roi.spacing_mm))
                if not isinstance(found, str):
                    extents, half, _ = found
                    ratios.append({key: extents[key] / half - 1.0 for key in OSTEOPHYTE_SITES})
    table = pd.DataFrame(ratios)
    return pd.DataFrame({"margin": list(OSTEOPHYTE_SITES), "median_ratio": [table[k].median() for k in OSTEOPHYTE_SITES],
                         "shipped_NORMAL_MARGIN": [NORMAL_MARGIN[k] for k in OSTEOPHYTE_SITES], "n_knees": len(table)})


def measure_cohort(xray_dir: Path, limit: int | None) -> tuple[pd.DataFrame, float]:
    """Measured lengths per knee (ID, side, osteophyte_mm_*, reason) and the mean measurement time per ROI (ms)."""
    rows, seconds = [], 0.0
    for path in sorted(xray_dir.glob("*.dcm"))[:limit]:
        participant = path.name.split("_")[0]
        for roi in knee_rois(read_radiograph(path)):
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
        out.append({
            "site": key.upper(), "n": int(ok.sum()),
            "r": np.corrcoef(measured[ok], truth[ok])[0, 1], "mae_mm": float((measured[ok] - truth[ok]).abs().mean()),
            "n_graded": int(graded.sum()),
            "r_graded": np.corrcoef(measured[graded], truth[graded])[0, 1] if graded.sum() > 2 else np.nan,
            "mae_graded_mm": float((measured[graded] - truth[graded]).abs().mean()),
            "mean_drawn_mm": float(truth[ok].mean()), "mean_measured_mm": float(measured[ok].mean()),
        })
    return pd.DataFrame(out)


def latent_r2(data: pd.DataFrame, with_measurements: bool, seed: int = 0) -> float:
    """Cross-validated R^2 of image_osteophyte_z from the OARSI osteophyte grades (one-hot), +/- the measurements."""
    grades = [f"osteophyte_{k}" for k in OSTEOPHYTE_SITES]
    lengths = [f"osteophyte_mm_{k}" for k in OSTEOPHYTE_SITES]
    x = data[grades].astype(int).astype(str)
    steps = [("grade", OneHotEncoder(handle_unknown="ignore"), grades)]
    if with_measurements:
        x = pd.concat([x, data[lengths], np.log1p(data[lengths]).add_prefix("log1p_")], axis=1)
        steps.append(("mm", StandardScaler(), lengths + [f"log1p_{c}" for c in lengths]))
    model = make_pipeline(ColumnTransformer(steps), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    groups = data["ID"].to_numpy()
    cv = GroupKFold(n_splits=5, shuffle=True, random_state=seed)
    predicted = cross_val_predict(model, x, data["image_osteophyte_z"], cv=cv, groups=groups)
    return float(r2_score(data["image_osteophyte_z"], predicted))


def main() -> None:
    """Measure the cohort and print the validation table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, default=Path("demo_out/cohort"))
    parser.add_argument("--features", type=Path, default=Path("demo_out/features.parquet"))
    parser.add_argument("--limit", type=int, default=None, help="only the first N DICOMs")
    parser.add_argument("--normal-margin", action="store_true",
                        help="recompute NORMAL_MARGIN from 30 spur-free synthetic knees (3 bilateral renders per site) and exit")
    args = parser.parse_args()
    if args.normal_margin:
        print("SYNTHETIC DATA (oa_kit renderer), spur-free knees: band extent / reference half-width - 1")
        print(normal_margin().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return
    measured, ms_per_roi = measure_cohort(args.cohort / "xray", args.limit)
    truth = pd.read_parquet(args.cohort / "truth" / "knees.parquet").astype({"ID": str})
    merged = measured.merge(truth, on=["ID", "side"], how="inner", validate="one_to_one")
    print(f"SYNTHETIC DATA (oa_kit renderer): {len(merged)} knees measured, "
          f"{int((merged['reason'] != '').sum())} not measurable; {ms_per_roi:.1f} ms per ROI")
    print(site_table(merged).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    features = pd.read_parquet(args.features)
    features = features[features["visit_month"] == 0].rename(columns={"participant_id": "ID"}).astype({"ID": str})
    grade_cols = [f"osteophyte_{k}" for k in OSTEOPHYTE_SITES]
    data = merged.merge(features[["ID", "side", *grade_cols]], on=["ID", "side"], how="inner")
    data = data.dropna(subset=grade_cols + [f"osteophyte_mm_{k}" for k in OSTEOPHYTE_SITES] + ["image_osteophyte_z"])
    print(f"\nimage_osteophyte_z, 5-fold participant-grouped CV R^2 (ridge), n={len(data)} knees:")
    print(f"  OARSI osteophyte grades alone:           {latent_r2(data, False):.3f}")
    print(f"  grades + 4 measured lengths (+log1p):    {latent_r2(data, True):.3f}")


if __name__ == "__main__":
    main()
