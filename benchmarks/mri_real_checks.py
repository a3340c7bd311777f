"""Real-image checks of MRI segmenter weights: a real-contrast template, a real scan, held-out real anatomy.

Three checks, each skipped cleanly when its data is absent (none of it is in the repository or needed by CI):

1. **Template Dice** — the CartiMorph CLAIR-Knee-103R template (``../shared/data/knee-mri-labels``): an intensity
   average of 103 real OAI-ZIB 3D DESS knees (right knee, 64 x 128 x 128 at 1.4 x 0.729 x 0.729 mm) with its labels
   1 femur, 2 femoral cartilage, 3 tibia, 4 medial / 5 lateral tibial cartilage (``cartimorph`` convention). Checking
   only, never training. Targets: femoral cartilage Dice >= 0.80, tibial cartilage (both plates) >= 0.75.
2. **Real scan** — the pyMSKT GE 3T multi-echo T2 knee (``gattia/pymskt`` ``data/MESE_T2_dicom_data_anon``, MIT; a
   right knee, 256 x 256 x 24 at 0.625 x 0.625 x 3 mm, first echo TE 6.3 ms): no manual labels, so cartilage volumes
   are compared with physiological ranges (femoral 4-15 mL, each tibial plate 1-4 mL, patellar 1-6 mL) and the QC
   verdict is printed; a picture of five sagittal slices with the labels is written for a person to look at.
3. **Held-out anatomy, fixed contrasts** — the Woo et al. OAI label maps held out of the SynthSeg run
   (``RUN/split.json``), rendered whole with two fixed contrasts the generator never draws as such (real
   water-excited DESS as measured on a GE 3T qDESS knee, and the template's own tissue means), then segmented by the
   full pipeline (resampling, plate split) -> Dice per tissue.

Usage::

    python benchmarks/mri_real_checks.py [WEIGHTS.safetensors ...] [--data ../shared/data/knee-mri-labels]
        [--scan runs/pymskt/data/MESE_T2_dicom_data_anon] [--woo runs/woo --run runs/mri_synthseg]
        [--pictures docs/img]

Default weights: the shipped ones. About 5 s (template), 30 s (scan) and 20 s per held-out map per weights file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from oa_kit.api import analyse_mri
from oa_kit.features.mri_qc import tissue_volumes_mm3
from oa_kit.io.labels import LABELS, to_harmonised
from oa_kit.io.mri import read_nifti
from oa_kit.models.mri.inference import DEFAULT_WEIGHTS, MRISegmenter

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "knee-mri-labels"
DEFAULT_SCAN = ROOT / "runs" / "pymskt" / "data" / "MESE_T2_dicom_data_anon"
DEFAULT_WOO = ROOT / "runs" / "woo"
DEFAULT_RUN = ROOT / "runs" / "mri_synthseg"
#: Scored tissues: name -> harmonised ids pooled (tibial cartilage scored as one plate pair and per side).
TISSUES = {
    "femur": (1,),
    "femoral_cartilage": (2,),
    "tibia": (3,),
    "tibial_cartilage": (4, 5),
    "medial_tibial_cartilage": (4,),
    "lateral_tibial_cartilage": (5,),
    "patella": (6,),
    "patellar_cartilage": (7,),
}
TARGETS = {"femoral_cartilage": 0.80, "tibial_cartilage": 0.75}
#: Physiological cartilage volumes of an adult knee (mL), the issue's ranges for a real scan.
PHYSIOLOGICAL_ML = {
    "femoral_cartilage": (4.0, 15.0),
    "medial_tibial_cartilage": (1.0, 4.0),
    "lateral_tibial_cartilage": (1.0, 4.0),
    "patellar_cartilage": (1.0, 6.0),
}
#: Fixed contrasts (tissue mean on the 1st-99th percentile scale) for rendering held-out label maps.
#: "dess": real water-excited DESS measured on a GE 3T qDESS knee (dark marrow, bright cartilage, soft tissue between);
#: "template": the CartiMorph template's own means (bone 0.29-0.31, cartilage 0.81-0.87, background 0).
CONTRASTS = {
    "dess": {0: 0.45, 1: 0.06, 3: 0.06, 6: 0.06, 2: 0.80, 4: 0.80, 5: 0.80, 7: 0.80},
    "template": {0: 0.01, 1: 0.29, 3: 0.31, 6: 0.30, 2: 0.87, 4: 0.81, 5: 0.85, 7: 0.85},
}
#: Overlay colours (RGB) of the harmonised labels in the pictures.
COLOURS = {
    1: (230, 159, 0),
    2: (0, 158, 115),
    3: (86, 180, 233),
    4: (204, 121, 167),
    5: (213, 94, 0),
    6: (240, 228, 66),
    7: (0, 114, 178),
    8: (150, 150, 150),
    9: (90, 90, 90),
}


def dice(pred: np.ndarray, truth: np.ndarray, ids: tuple[int, ...]) -> float:
    """Dice of the union of ``ids`` between two label maps (NaN when both are empty)."""
    a, b = np.isin(pred, ids), np.isin(truth, ids)
    denom = a.sum() + b.sum()
    return float(2.0 * np.logical_and(a, b).sum() / denom) if denom else float("nan")


def template_dice(segmenter: MRISegmenter, data: Path) -> dict[str, float]:
    """Dice per tissue on the CartiMorph template (side R); patella is not labelled there."""
    folder = data / "cartimorph-clair-knee-103r"
    image = read_nifti(folder / "template.nii.gz")
    truth = to_harmonised(np.asarray(read_nifti(folder / "segmentation.nii.gz").array), "cartimorph")
    pred = segmenter.predict(np.asarray(image.array, dtype=np.float32), image.affine, "R")
    return {name: dice(pred, truth, ids) for name, ids in TISSUES.items() if ids[0] < 6}


def sagittal_axis(affine: np.ndarray) -> int:
    """Array axis most aligned with world x (left-right): the axis sagittal slices are taken across."""
    return int(np.argmax(np.abs(np.asarray(affine)[0, :3]) / np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)))


def display_slices(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Volume as (sagittal index, rows superior->inferior, columns anterior->posterior) for pictures."""
    a = np.asarray(affine)[:3, :3]
    axes = [sagittal_axis(affine)]
    rest = [k for k in range(3) if k not in axes]
    rows = max(rest, key=lambda k: abs(a[2, k]) / np.linalg.norm(a[:, k]))
    cols = next(k for k in rest if k != rows)
    out = np.transpose(volume, (axes[0], rows, cols))
    if a[2, rows] > 0:  # superior up
        out = out[:, ::-1]
    if a[1, cols] < 0:  # anterior left
        out = out[:, :, ::-1]
    return out


def overlay_picture(image: np.ndarray, labels: np.ndarray, affine: np.ndarray, path: Path, n: int = 5) -> Path:
    """Write a PNG of ``n`` sagittal slices through the cartilage: the image above, the labels blended below."""
    img, lab = display_slices(image.astype(np.float32), affine), display_slices(labels, affine)
    lo, hi = np.percentile(img, [1, 99])
    grey = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1) * 255
    found = np.flatnonzero(np.isin(lab, (2, 4, 5, 7)).any(axis=(1, 2)))
    picks = np.linspace(found.min(), found.max(), n).round().astype(int) if found.size else np.arange(n)
    a = np.asarray(affine)[:3, :3]
    norms = np.linalg.norm(a, axis=0)
    order = [k for k in range(3) if k != sagittal_axis(affine)]
    rows = max(order, key=lambda k: abs(a[2, k]) / norms[k])
    aspect = norms[rows] / norms[next(k for k in order if k != rows)]
    tiles = []
    for i in picks:
        g = np.repeat(grey[i][..., None], 3, axis=2)
        colour = g.copy()
        for label, rgb in COLOURS.items():
            colour[lab[i] == label] = 0.5 * colour[lab[i] == label] + 0.5 * np.array(rgb)
        tile = Image.fromarray(np.concatenate([g, colour], axis=0).astype(np.uint8))
        tiles.append(tile.resize((tile.width, int(round(tile.height * aspect)))))
    sheet = Image.new("RGB", (sum(t.width for t in tiles), max(t.height for t in tiles)))
    for k, t in enumerate(tiles):
        sheet.paste(t, (sum(u.width for u in tiles[:k]), 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def real_scan_check(segmenter: MRISegmenter, scan: Path, picture: Path | None) -> dict[str, object]:
    """Cartilage volumes (mL) of a real scan with their physiological range, the QC verdict and a picture."""
    result = analyse_mri(scan, side="R", segmenter=segmenter)
    volumes = {k: v / 1000.0 for k, v in tissue_volumes_mm3(result.labels, result.affine).items()}
    out: dict[str, object] = {
        k: (round(volumes[k], 2), lo <= volumes[k] <= hi) for k, (lo, hi) in PHYSIOLOGICAL_ML.items()
    }
    out["qc"] = result.summary().split(" — ")[0]
    if picture is not None:
        out["picture"] = str(overlay_picture(result.image, result.labels, result.affine, picture))
    return out


def render_fixed(truth: np.ndarray, affine: np.ndarray, contrast: dict[int, float], seed: int) -> np.ndarray:
    """A label map drawn as an image with fixed tissue means, smooth background texture, bias field, noise, blur."""
    rng = np.random.default_rng(seed)
    means = np.zeros(len(LABELS), dtype=np.float32)
    for label, mean in contrast.items():
        means[label] = mean
    means[8:] = contrast.get(8, contrast[1])  # menisci (absent in Woo maps): dark like bone
    image = means[truth]
    spacing = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    texture = ndimage.gaussian_filter(rng.standard_normal(truth.shape).astype(np.float32), 4.0 / spacing)
    image = image + np.where(truth == 0, 0.15 * texture / (texture.std() + 1e-6), 0.0)
    bias = ndimage.zoom(rng.uniform(0.8, 1.2, (3, 3, 3)), np.array(truth.shape) / 3.0, order=3)[
        tuple(map(slice, truth.shape))
    ]
    image = ndimage.gaussian_filter(image * bias, 0.5) + rng.normal(0, 0.03, truth.shape)
    return image.astype(np.float32)


def heldout_dice(segmenter: MRISegmenter, woo: Path, run: Path) -> list[dict[str, object]]:
    """Dice per tissue of each held-out Woo map of the SynthSeg run, rendered with each fixed contrast."""
    held = json.loads((run / "split.json").read_text())["holdout"]
    rows = []
    for i, case in enumerate(held):
        path = next(woo.rglob(f"{case}.nii.gz"))
        volume = read_nifti(path)
        truth = to_harmonised(np.asarray(volume.array), "woo", side="R", affine=volume.affine)
        for name, contrast in CONTRASTS.items():
            image = render_fixed(truth, volume.affine, contrast, seed=i)
            pred = segmenter.predict(image, volume.affine, "R")
            rows.append(
                {"case": case.split("_WB")[0], "contrast": name}
                | {t: round(dice(pred, truth, ids), 3) for t, ids in TISSUES.items()}
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print each check for each weights file, with the targets' pass/fail."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="*", type=Path, default=[DEFAULT_WEIGHTS])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="knee-mri-labels folder")
    parser.add_argument("--scan", type=Path, default=DEFAULT_SCAN, help="pyMSKT MESE T2 DICOM folder")
    parser.add_argument("--woo", type=Path, default=DEFAULT_WOO, help="Anomaly-Aware-3D-Segmentation label maps")
    parser.add_argument("--run", type=Path, default=DEFAULT_RUN, help="SynthSeg run folder (its split.json)")
    parser.add_argument("--pictures", type=Path, default=None, help="folder for the real-scan pictures")
    parser.add_argument(
        "--picture-names",
        nargs="+",
        default=None,
        help="one name per weights file for its picture, mri_real_scan_NAME.png (default: the weights file's stem)",
    )
    parser.add_argument(
        "--no-clean", action="store_true", help="score the network's raw labels (no anatomical clean-up)"
    )
    args = parser.parse_args(argv)
    names = args.picture_names or [w.stem for w in args.weights]
    if len(names) != len(args.weights):
        parser.error(f"--picture-names: {len(names)} names for {len(args.weights)} weights files; expected one each")
    for weights, name in zip(args.weights, names, strict=True):
        segmenter = MRISegmenter.from_pretrained(weights)
        segmenter.clean = not args.no_clean
        print(f"== {weights}")
        if (args.data / "cartimorph-clair-knee-103r" / "template.nii.gz").exists():
            scores = template_dice(segmenter, args.data)
            verdict = ", ".join(f"{k} {'PASS' if scores[k] >= v else 'FAIL'} (>= {v:.2f})" for k, v in TARGETS.items())
            print("template Dice: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()) + f"; {verdict}")
        else:
            print(f"template: skipped, {args.data}/cartimorph-clair-knee-103r not found")
        if args.scan.is_dir():
            picture = args.pictures / f"mri_real_scan_{name}.png" if args.pictures else None
            print(f"real scan {args.scan.name}: {real_scan_check(segmenter, args.scan, picture)}")
        else:
            print(f"real scan: skipped, {args.scan} not found (git archive of gattia/pymskt data/)")
        if (args.run / "split.json").exists() and args.woo.is_dir():
            rows = heldout_dice(segmenter, args.woo, args.run)
            for row in rows:
                print(f"held-out {row}")
            for name in CONTRASTS:
                sel = [r for r in rows if r["contrast"] == name]
                means = {t: round(float(np.nanmean([r[t] for r in sel])), 3) for t in TISSUES}
                print(f"held-out mean ({name}, {len(sel)} maps): {means}")
        else:
            print(f"held-out anatomy: skipped, {args.run}/split.json or {args.woo} not found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
