"""Dice per tissue of MRI segmenter weights on a real-contrast knee: the CartiMorph CLAIR-Knee-103R template.

The template is an intensity average of 103 real OAI-ZIB 3D DESS knees (right knee, 64 x 128 x 128 at 1.4 x 0.729 x
0.729 mm) with its labels 1 femur, 2 femoral cartilage, 3 tibia, 4 medial / 5 lateral tibial cartilage (CartiMorph
convention = ``cartimorph`` in ``oa_kit.io.labels``). It is for checking only, never for training. Targets: femoral
cartilage Dice >= 0.80, tibial cartilage (medial + lateral together) >= 0.75.

Usage: ``python benchmarks/mri_real_checks.py [WEIGHTS.safetensors ...] [--data ../shared/data/knee-mri-labels]``
(default: the shipped weights). Skips cleanly (exit 0) when the data folder is absent. About 5 s per weights file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from oa_kit.io.labels import to_harmonised
from oa_kit.io.mri import read_nifti
from oa_kit.models.mri.inference import DEFAULT_WEIGHTS, MRISegmenter

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "knee-mri-labels"
#: Scored tissues: name -> harmonised ids pooled (tibial cartilage scored as one plate pair and per side).
TISSUES = {
    "femur": (1,),
    "femoral_cartilage": (2,),
    "tibia": (3,),
    "tibial_cartilage": (4, 5),
    "medial_tibial_cartilage": (4,),
    "lateral_tibial_cartilage": (5,),
}
TARGETS = {"femoral_cartilage": 0.80, "tibial_cartilage": 0.75}


def dice(pred: np.ndarray, truth: np.ndarray, ids: tuple[int, ...]) -> float:
    """Dice of the union of ``ids`` between two label maps (NaN when both are empty)."""
    a, b = np.isin(pred, ids), np.isin(truth, ids)
    denom = a.sum() + b.sum()
    return float(2.0 * np.logical_and(a, b).sum() / denom) if denom else float("nan")


def template_dice(weights: Path, data: Path) -> dict[str, float]:
    """Dice per tissue of ``weights`` on the CartiMorph template (side R)."""
    folder = data / "cartimorph-clair-knee-103r"
    image = read_nifti(folder / "template.nii.gz")
    truth = to_harmonised(np.asarray(read_nifti(folder / "segmentation.nii.gz").array), "cartimorph")
    pred = MRISegmenter.from_pretrained(weights).predict(np.asarray(image.array, dtype=np.float32), image.affine, "R")
    return {name: dice(pred, truth, ids) for name, ids in TISSUES.items()}


def main(argv: list[str] | None = None) -> int:
    """Print one line of Dice per tissue for each weights file, with the targets' pass/fail."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="*", type=Path, default=[DEFAULT_WEIGHTS])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="knee-mri-labels folder")
    args = parser.parse_args(argv)
    if not (args.data / "cartimorph-clair-knee-103r" / "template.nii.gz").exists():
        print(f"skipped: {args.data}/cartimorph-clair-knee-103r not found (the shared label maps are not present)")
        return 0
    for weights in args.weights:
        scores = template_dice(weights, args.data)
        verdict = ", ".join(f"{k} {'PASS' if scores[k] >= v else 'FAIL'} (>= {v:.2f})" for k, v in TARGETS.items())
        print(f"{weights}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()) + f"; {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
