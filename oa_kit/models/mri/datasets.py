"""Find labelled knee MRI scans in the layouts users bring (synthetic cohort, OAI-ZIB, OAIZIB-CM, SKM-TEA) for training."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from oa_kit.errors import OAKitError
from oa_kit.io import labels as labmod
from oa_kit.io import mri
from oa_kit.models.mri.train import SegmentationCase

_SYNTH = re.compile(r"(?P<pid>.+)_(?P<side>[RL])_(?P<visit>V\d\d)_DESS\.nii(\.gz)?$")


def discover_cases(paths: Iterable[str | Path]) -> list[SegmentationCase]:
    """Load every image/label pair found under ``paths``, labels converted to the harmonised convention.

    Recognised: synthetic cohort ``mri/{ID}_{R|L}_V00_DESS.nii.gz`` + ``_labels``; OAIZIB-CM ``imagesTr/X_0000.nii.gz``
    + ``labelsTr/X.nii.gz`` (side from ``kneeSideInfo.csv`` when present); OAI-ZIB ``X.segmentation_masks.mhd`` + the
    image ``X.mhd``/``X.image.mhd`` (mask geometry repaired from the image); SKM-TEA HDF5 with ``echo1`` and ``seg``.
    """
    cases: list[SegmentationCase] = []
    for root in map(Path, paths):
        if not root.exists():
            raise OAKitError(f"{root}: not found; expected a dataset folder or file")
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        sides = _oaizib_cm_sides(root) if root.is_dir() else {}
        for f in files:
            case = _case_from_file(f, sides)
            if case is not None:
                cases.append(case)
    if not cases:
        raise OAKitError(
            f"{', '.join(map(str, paths))}: no labelled scans found; expected a synthetic cohort, "
            "OAI-ZIB (.mhd), OAIZIB-CM (imagesTr/labelsTr NIfTI) or SKM-TEA (.h5) layout"
        )
    return cases


def _case_from_file(f: Path, sides: dict[str, str]) -> SegmentationCase | None:
    """Build a case when ``f`` is the image of a recognised pair, else None."""

    name = f.name
    if (m := _SYNTH.match(name)) and f.with_name(name.replace("_DESS", "_labels")).exists():
        img, lab = mri.read_nifti(f), mri.read_nifti(f.with_name(name.replace("_DESS", "_labels")))
        return _case(f"{m['pid']}_{m['side']}_{m['visit']}", img, lab.array, "synthetic", m["side"], m["pid"])
    if f.parent.name.startswith("images") and re.search(r"_0000\.nii(\.gz)?$", name):
        stem = re.sub(r"_0000\.nii(\.gz)?$", "", name)
        label_dir = f.parent.parent / f.parent.name.replace("images", "labels")
        label = next((p for p in (label_dir / f"{stem}.nii.gz", label_dir / f"{stem}.nii") if p.exists()), None)
        if label is None:
            return None
        side = sides.get(stem, "R")
        return _case(stem, mri.read_nifti(f), mri.read_nifti(label).array, "oaizib_cm", side, stem)
    if name.endswith(".segmentation_masks.mhd"):
        stem = name[: -len(".segmentation_masks.mhd")]
        image = next(
            (p for d in (f.parent, f.parent.parent) for p in d.rglob(f"{stem}*.mhd") if "segmentation" not in p.name),
            None,
        )
        if image is None:
            raise OAKitError(f"{f}: no image {stem}.mhd found beside the mask; expected the OAI-ZIB image/mask pair")
        img, lab = mri.read_mhd_pair(image, f)
        return _case(stem, img, lab.array, "oaizib", "R", stem)
    if f.suffix == ".h5":
        with h5py.File(f, "r") as h:
            if "seg" not in h or "echo1" not in h:
                return None
        vols = mri.read_skmtea_h5(f)
        return _case(f.stem, vols["echo1"], vols["seg"].array, "skmtea", "R", f.stem)
    return None


def _case(case_id: str, image, labels: np.ndarray, source: str, side: str, group: str) -> SegmentationCase:
    """Wrap a read image and its native labels as a harmonised :class:`SegmentationCase`."""

    if source == "synthetic":
        harmonised = np.asarray(labels, dtype=np.uint8)
    else:
        to_harmonised = getattr(labmod, "to_harmonised", None)
        if to_harmonised is None:
            raise OAKitError(
                f"{case_id}: label crosswalk oa_kit.io.labels.to_harmonised unavailable; expected it for {source}"
            )
        harmonised = np.asarray(to_harmonised(labels, source, side=side), dtype=np.uint8)
    return SegmentationCase(case_id, np.asarray(image.array, dtype=np.float32), harmonised, image.affine, side, group)


def _oaizib_cm_sides(root: Path) -> dict[str, str]:
    """Case -> side from OAIZIB-CM ``kneeSideInfo.csv`` (KneeSide 1 = right, 2 = left), if the file is present."""
    found = next(iter(root.rglob("kneeSideInfo.csv")), None)
    if found is None:
        return {}
    out = {}
    with open(found, newline="") as fh:
        for row in csv.DictReader(fh):
            keys = {k.lower(): k for k in row}
            side_key = next((keys[k] for k in keys if "side" in k), None)
            case_key = next((keys[k] for k in keys if k not in (side_key or "").lower()), None)
            if side_key and case_key and str(row[side_key]).strip() in ("1", "2"):
                out[str(row[case_key]).strip()] = "R" if str(row[side_key]).strip() == "1" else "L"
    return out
