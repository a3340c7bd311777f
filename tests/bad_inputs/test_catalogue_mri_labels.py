"""Catalogue of bad inputs, part 3 (#20): label maps a user measures (``oa_kit.measure_labels``, ``oa-kit mri
measure``) and the knee side of ``oa-kit mri segment``.

Each case writes one label map (or scan) with a third-party writer (nibabel, pynrrd, plain bytes) and expects ONE
line naming the file or argument and what was expected, or a correct result; command-line cases (the ``cli``
runner of part 2) must exit 2 having written nothing. Cases use :class:`~tests.bad_inputs.test_catalogue.Case`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from .test_catalogue import CASES as PART_ONE
from .test_catalogue import Case, check_case, entry, writer
from .test_catalogue_outputs import CASES as PART_TWO
from .test_catalogue_outputs import cli

MEASURE = "oa_kit.api:measure_labels"
AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])


def tiny_woo() -> np.ndarray:
    """A 20 x 16 x 16 right knee in the Woo convention (1 mm): femur over tibia, one tibial cartilage label (4) whose
    medial plate is the longer, patella (5) and its cartilage (6) lateral; no menisci (Woo labels none)."""
    lab = np.zeros((20, 16, 16), dtype=np.uint8)
    lab[2:16, 3:13, 10:15] = 1
    lab[2:16, 3:13, 9] = 2
    lab[4:18, 3:13, 2:7] = 3
    lab[4:9, 2:14, 7] = 4
    lab[12:17, 5:11, 7] = 4
    lab[10:15, 14:16, 10:14] = 5
    lab[10:15, 13, 10:14] = 6
    return lab


def label_map(name: str, data: Callable[[], np.ndarray] = tiny_woo, orient: bool = True) -> Callable[[Path], Path]:
    """Maker writing ``data()`` with nibabel as ``tmp / name`` (``orient=False``: qform and sform codes 0)."""

    def make(tmp: Path) -> Path:
        image = nib.Nifti1Image(np.asarray(data()), AFFINE)
        if not orient:
            image.set_qform(None, code=0)
            image.set_sform(None, code=0)
        nib.save(image, str(tmp / name))
        return tmp / name

    make.__doc__ = f"``{name}`` written by nibabel"
    return make


def woo_with(value: float, dtype=np.uint8) -> Callable[[], np.ndarray]:
    """The tiny Woo knee with one voxel set to ``value``."""

    def data() -> np.ndarray:
        lab = tiny_woo().astype(dtype)
        lab[0, 0, 0] = value
        return lab

    return data


def with_image(shape: tuple[int, ...]) -> Callable[[Path], Path]:
    """Maker of the tiny Woo map plus ``scan.nii.gz`` of ``shape`` on the same affine."""

    def make(tmp: Path) -> Path:
        nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), AFFINE), str(tmp / "scan.nii.gz"))
        return label_map("knee.nii.gz")(tmp)

    return make


def measure(**kwargs) -> Callable[[object], object]:
    """``oa_kit.api.measure_labels(path, convention="woo", **kwargs)``; ``image`` names a file in the case folder."""

    def run(path: Path):
        extra = {k: (path.parent / v if k == "image" else v) for k, v in kwargs.items()}
        return entry(MEASURE, **{"convention": "woo", **extra})(path)

    run.__name__, run.target = "measure_labels", MEASURE
    return run


def no_bones() -> np.ndarray:
    """Cartilage only (as SKM-TEA masks): the Woo knee without femur, tibia or patella."""
    lab = tiny_woo()
    lab[np.isin(lab, (1, 3, 5))] = 0
    return lab


def garbage_nrrd(tmp: Path) -> Path:
    """``knee.nrrd`` holding text, not NRRD."""
    return writer("knee.nrrd", b"NOT A NRRD\n" * 20)(tmp)


def segment_scan(tmp: Path) -> Path:
    """``9000001_L_V00_DESS.nii.gz`` holding bytes no reader accepts: the side contradiction must be refused first,
    before the scan is read."""
    (tmp / "9000001_L_V00_DESS.nii.gz").write_bytes(b"NOT A SCAN" * 50)
    return tmp


def reads_without_false_flags(result) -> bool:
    """The Woo map measures: side from the anatomy, menisci recorded as not labelled, not reported missing."""
    return (
        result.side == "R"
        and result.row["qc_side_source"] == "anatomy"
        and not result.qc["qc_missing_compartment"]
        and result.qc["qc_not_labelled"] == "medial_meniscus;lateral_meniscus"
    )


CASES = [
    Case("labels_woo_reads", label_map("knee.nii.gz"), measure(), check=reads_without_false_flags),
    Case(
        "labels_value_outside_convention",
        label_map("knee.nii.gz", woo_with(12)),
        measure(),
        r"knee.nii.gz: labels \(woo\): values \[12\] are not in the woo convention; expected \[0, 1, 2",
    ),
    Case(
        "labels_fractional_values",
        label_map("knee.nii.gz", woo_with(1.5, np.float32)),
        measure(),
        r"knee.nii.gz: labels \(woo\): non-integer values; expected an integer label map",
    ),
    Case(
        "labels_4d",
        label_map("knee.nii.gz", lambda: np.stack([tiny_woo()] * 2, axis=-1)),
        measure(),
        r"knee.nii.gz: label map has shape \(20, 16, 16, 2\); expected one 3-D volume",
    ),
    Case(
        "labels_nifti_without_orientation",
        label_map("knee.nii.gz", orient=False),
        measure(),
        r"knee.nii.gz: NIfTI has no orientation",
    ),
    Case(
        "labels_text_file",
        writer("knee.txt", "1 2 3\n"),
        measure(),
        r"knee.txt: unsupported file type for a label map; expected a .nii\(.gz\), .nrrd or .mhd",
    ),
    Case("labels_nrrd_garbage", garbage_nrrd, measure(), r"knee.nrrd: not a readable NRRD header"),
    Case(
        "labels_nrrd_header_5000_cubed",
        writer(
            "knee.nrrd",
            b"NRRD0004\ntype: unsigned char\ndimension: 3\nsizes: 5000 5000 5000\nspace: RAS\n"
            b"space directions: (1,0,0) (0,1,0) (0,0,1)\nencoding: raw\n\n",
        ),
        measure(),
        r"knee.nrrd: 125,000,000,000 voxels exceeds the limit",
    ),
    Case(
        "labels_unknown_convention",
        label_map("knee.nii.gz"),
        measure(convention="ski10"),
        r"convention: unknown label convention 'ski10'; expected one of \['harmonised'",
    ),
    Case(
        "labels_side_contradicts_file_name",
        label_map("9000001_R_V00_labels.nii.gz"),
        measure(side="L"),
        r"9000001_R_V00_labels.nii.gz: side L given but the file name says R; expected them to agree",
    ),
    Case(
        "labels_empty_side_undecidable",
        label_map("knee.nii.gz", lambda: np.zeros((20, 16, 16), np.uint8)),
        measure(),
        r"knee.nii.gz: knee side not in the file name or header, and the anatomy cannot decide it",
    ),
    Case(
        "labels_cartilage_without_bones",
        label_map("knee.nii.gz", no_bones),
        measure(side="R"),
        r"knee.nii.gz: no cartilage lies on a labelled bone \(femur 0, tibia 0, patella 0 voxels\)",
    ),
    Case(
        "labels_image_on_another_grid",
        with_image((20, 16, 8)),
        measure(image="scan.nii.gz"),
        r"scan.nii.gz: shape \(20, 16, 8\) on another grid than the label map .*knee.nii.gz \(20, 16, 16\)",
    ),
    Case(
        "cli_mri_measure_one_bad_map",
        label_map("knee.nii.gz", woo_with(12)),
        lambda path: cli("mri", "measure", "{tmp}/knee.nii.gz", "--convention=woo", "--out={tmp}/o", "--no-progress")(
            path.parent
        ),
        r"knee.nii.gz: labels \(woo\): values \[12\] are not in the woo convention",
    ),
    Case(
        "cli_mri_measure_images_unpaired",
        with_image((20, 16, 16)),
        lambda path: cli(
            "mri",
            "measure",
            "{tmp}/knee.nii.gz",
            "--convention=woo",
            "--image",
            "{tmp}/scan.nii.gz",
            "{tmp}/scan.nii.gz",
            "--out={tmp}/o",
            "--no-progress",
        )(path.parent),
        r"--image: 2 images for 1 label maps; expected one per label map",
    ),
    Case(
        "cli_mri_segment_side_contradicts_file_name",
        segment_scan,
        cli("mri", "segment", "{tmp}/9000001_L_V00_DESS.nii.gz", "--side=R", "--out={tmp}/o", "--no-progress"),
        r"9000001_L_V00_DESS.nii.gz: side R given but the file name says L; expected them to agree",
    ),
]


def test_part_three_is_named_uniquely_and_apart_from_parts_one_and_two():
    names = [c.name for c in CASES]
    assert len(set(names)) == len(names) and not set(names) & {c.name for c in (*PART_ONE, *PART_TWO)}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, tmp_path, monkeypatch)
