"""Why the femoral thickness of the synthetic MRI phantoms reads high on 2 mm sagittal slices: the method against the
phantom's analytic truth on its own labels, at the phantoms' 2 x 0.5 x 0.5 mm grid, the OAI DESS grid
(0.7 x 0.365 x 0.365 mm) and isotropic 0.5 mm.

For each grid, one phantom (default thickness targets, site A) is rendered; the normal-ray method
(:func:`oa_kit.features.cartilage.measure_cartilage`) is run on the TRUE label map, so every difference is the method
and the grid, not a segmenter. Printed per grid: the error of each subregion's mean thickness against
``true_thickness_mm`` (cartilage >= ``TRUTH_MIN_THICKNESS_MM`` thick, along the bone-surface normal), and for the whole
femoral plate the measured covered area and mean against the truth's area and mean over cartilage at least 0.1, 0.25
and 0.5 mm thick. **Synthetic phantoms only.**

Usage: ``OMP_NUM_THREADS=2 python benchmarks/mri_thickness_truth.py [--seeds 1 2]`` (about 40 s per seed).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from oa_kit.features.cartilage import measure_cartilage
from oa_kit.io.labels import SUBREGIONS
from oa_kit.synth import mri

GRIDS = {
    "2 mm sagittal slices": mri.DEFAULT_GEOMETRY,
    "OAI DESS 0.7 mm slices": mri.OAI_DESS_GEOMETRY,
    "isotropic 0.5 mm": mri.MRIGeometry(shape=(160, 128, 128), spacing_mm=(0.5, 0.5, 0.5)),
}
FOOTPRINTS_MM = (0.1, 0.25, 0.5)


def femoral_truth_footprints(seed: int) -> dict[float, tuple[float, float]]:
    """Analytic femoral cartilage area (mm^2) and mean normal thickness (mm) over cartilage at least each limit thick,
    for the phantom ``render_knee_mri`` draws with ``seed`` and the default targets."""
    a, f = mri._fitted_phantom(np.random.default_rng(seed), mri._check_thickness(mri.DEFAULT_THICKNESS_MM))
    t, area = mri._femoral_normal_thickness(a, f)[:2]
    return {
        lim: (float(area[t >= lim].sum()), float(np.average(t[t >= lim], weights=area[t >= lim])))
        for lim in FOOTPRINTS_MM
    }


def main() -> None:
    """Print the per-subregion errors and the femoral footprint comparison for each grid and seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    femoral = [k for k in SUBREGIONS if k.startswith("femoral")]
    errors = {}
    for seed in args.seeds:
        truth = femoral_truth_footprints(seed)
        print(
            f"seed {seed}: femoral truth "
            + ", ".join(f">= {lim} mm: {area:,.0f} mm^2, mean {mean:.3f} mm" for lim, (area, mean) in truth.items())
        )
        for name, geometry in GRIDS.items():
            r = mri.render_knee_mri("R", mri.DEFAULT_THICKNESS_MM, geometry, mri.SITE_MRI["A"], seed=seed)
            table = measure_cartilage(r.labels, r.affine, "R").subregion_table().set_index("subregion")
            errors[(name, seed)] = table["thickness_mm_mean"] - pd.Series(dict(r.true_thickness_mm))
            covered = table.loc[femoral, "covered_area_mm2"]
            mean = np.average(table.loc[femoral, "thickness_mm_mean"], weights=covered)
            print(f"  {name}: measured femoral covered area {covered.sum():,.0f} mm^2, mean {mean:.3f} mm")
    print("\nmean thickness error on the true labels (mm; measured - truth), synthetic phantoms")
    print(pd.DataFrame(errors).T.groupby(level=0, sort=False).mean().T.round(3).to_string())


if __name__ == "__main__":
    main()
