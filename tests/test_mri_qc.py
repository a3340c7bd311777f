"""QC flags fire on deliberately broken segmentations (empty mask, swapped laterality, cropped field of view, low
confidence, cartilage off its bone, implausible volumes) and stay silent on clean phantoms and on tissues a label
convention never labels."""

from __future__ import annotations

import numpy as np
import pytest

from oa_kit.features.mri_qc import (
    ON_BONE_FRACTION,
    PHYSIOLOGICAL_CARTILAGE_ML,
    PLAUSIBLE_VOLUME_MM3,
    QC_FLAGS,
    on_bone_fractions,
    qc_flags,
)
from oa_kit.io.labels import LACKS_TISSUES, SUBREGIONS, anatomy_side, from_harmonised, to_harmonised

#: Checks judged by anatomy; a clean map must pass every one of them.
ANATOMY_FLAGS = tuple(flag for flag in QC_FLAGS if flag != "qc_low_confidence")


@pytest.fixture(scope="module")
def phantom():
    from oa_kit.synth.mri import DEFAULT_GEOMETRY, SITE_MRI, render_knee_mri

    return render_knee_mri("R", {s: 2.0 for s in SUBREGIONS}, DEFAULT_GEOMETRY, SITE_MRI["A"], seed=2)


@pytest.mark.parametrize("side, seed", [("R", 2), ("L", 3), ("R", 4)])
def test_clean_phantoms_pass_every_anatomy_check(side, seed):
    from oa_kit.synth.mri import DEFAULT_GEOMETRY, SITE_MRI, render_knee_mri

    knee = render_knee_mri(side, {s: 2.0 for s in SUBREGIONS}, DEFAULT_GEOMETRY, SITE_MRI["A"], seed=seed)
    q = qc_flags(knee.labels, knee.affine, side)
    assert set(QC_FLAGS) <= set(q) and not any(q[f] for f in ANATOMY_FLAGS), q["qc_reasons"]
    assert q["qc_cartilage_on_bone_fraction"] == pytest.approx(1.0) and q["qc_anatomy_side"] == side
    assert q["qc_not_labelled"] == "" and not q["qc_any"]


def test_volume_limits_keep_a_margin_around_the_physiological_ranges():
    for name, (lo, hi) in PHYSIOLOGICAL_CARTILAGE_ML.items():
        low, high = PLAUSIBLE_VOLUME_MM3[name]
        assert low < lo * 1000 and high > hi * 1000  # a margin on both sides, in mm^3
    assert PLAUSIBLE_VOLUME_MM3["femoral_cartilage"][1] < 92_000  # the confidently wrong real-scan segmentation
    assert PLAUSIBLE_VOLUME_MM3["medial_tibial_cartilage"][1] < 37_000


def test_empty_mask_flags_missing():
    q = qc_flags(np.zeros((20, 30, 30), np.uint8), np.diag([2.0, 0.5, 0.5, 1.0]), "R")
    assert q["qc_missing_compartment"] and q["qc_any"]
    assert "femoral_cartilage" in q["qc_reasons"] and q["qc_anatomy_side"] == ""


def test_swapped_laterality_flags(phantom):
    assert anatomy_side(phantom.labels, phantom.affine)[0] == "R"
    q = qc_flags(phantom.labels, phantom.affine, "L")
    assert q["qc_laterality_mismatch"] and "declared L but the anatomy says R" in q["qc_reasons"]
    mirrored = phantom.labels[::-1].copy()
    assert qc_flags(mirrored, phantom.affine, "L")["qc_laterality_mismatch"] is False
    no_tibia = np.where(phantom.labels == 3, 0, phantom.labels)  # the anatomy cannot decide: no mismatch claimed
    assert anatomy_side(no_tibia, phantom.affine)[0] is None
    assert qc_flags(no_tibia, phantom.affine, "L")["qc_laterality_mismatch"] is False


def test_laterality_ignores_how_the_plates_are_named(phantom):
    """The check reads the tibial plates as one mask: naming them by position (a segmenter told the wrong side)
    cannot make a left-declared right knee pass."""
    swapped = phantom.labels.copy()
    swapped[phantom.labels == 4], swapped[phantom.labels == 5] = 5, 4
    assert qc_flags(swapped, phantom.affine, "L")["qc_laterality_mismatch"]


def test_cropped_fov_flags(phantom):
    zs = np.flatnonzero((phantom.labels == 2).any(axis=(0, 1)))
    cropped = phantom.labels[:, :, zs[0] + 3 :]  # cut through the femoral cartilage
    q = qc_flags(cropped, phantom.affine, "R")
    assert q["qc_truncated_fov"] and "axis 2" in q["qc_reasons"]


def test_disconnected_and_implausible(phantom):
    lab = phantom.labels.copy()
    lab[lab == 7] = 0  # drop patellar cartilage ...
    lab[2:6, 2:10, 2:10] = 2  # ... and add a stray femoral-cartilage blob
    lab[10:30, 2:40, 2:60] = 2  # big enough to be a second piece
    q = qc_flags(lab, phantom.affine, "R")
    assert q["qc_missing_compartment"] and q["qc_disconnected"]
    huge = phantom.labels.copy()
    huge[np.isin(huge, (0, 6, 7))] = 7  # patellar cartilage everywhere: far too large
    q = qc_flags(huge, phantom.affine, "R")
    assert q["qc_volume_implausible"] and "patellar_cartilage" in q["qc_reasons"]


def test_confidently_wrong_segmentation_fails_by_anatomy(phantom):
    """'Femoral cartilage' scattered along soft-tissue edges far from the femur, tibial plates of tens of mL: the
    model is sure of every voxel (entropy 0) and QC still fails it, naming the evidence."""
    lab = phantom.labels.copy()
    body = ~np.isin(lab, (1, 3, 6))
    rng = np.random.default_rng(0)
    edges = body & (rng.random(lab.shape) < 0.25)
    edges[:, 40:, :] = False  # keep the clutter anterior-far from the bones' surfaces ...
    lab[edges & (lab == 0)] = 2
    lab[:, :6][body[:, :6]] = 4  # ... and thick "tibial cartilage" slabs along the front of the field of view
    lab[:, -6:][body[:, -6:]] = 5
    sure = np.zeros((10, *lab.shape), dtype=np.float32)
    np.put_along_axis(sure, lab[None].astype(np.int64), 1.0, axis=0)
    q = qc_flags(lab, phantom.affine, "R", proba=sure)
    assert not q["qc_low_confidence"] and q["qc_cartilage_entropy"] < 0.01
    assert q["qc_any"] and q["qc_cartilage_off_bone"] and q["qc_volume_implausible"]
    assert q["qc_cartilage_on_bone_fraction"] < ON_BONE_FRACTION
    assert "cartilage_off_bone: femoral_cartilage" in q["qc_reasons"] and "% on bone" in q["qc_reasons"]


def test_cartilage_moved_off_its_bone_is_flagged(phantom):
    """Patellar cartilage shifted 30 mm away from the patella: volume and shape unchanged, position wrong."""
    lab = phantom.labels.copy()
    moved = np.roll(lab == 7, -60, axis=1)  # 60 voxels x 0.5 mm posterior
    lab[lab == 7] = 0
    lab[moved & (lab == 0)] = 7
    fractions = on_bone_fractions(lab, phantom.affine)
    assert fractions["patellar_cartilage"] < 0.5 and fractions["femoral_cartilage"] == pytest.approx(1.0)
    q = qc_flags(lab, phantom.affine, "R")
    assert q["qc_cartilage_off_bone"] and "patellar_cartilage" in q["qc_reasons"]
    assert not qc_flags(lab, phantom.affine, "R", lacks=(6,))["qc_cartilage_off_bone"]  # no patella labelled: unjudged


def test_tissues_a_convention_lacks_are_not_missing(phantom):
    """A Woo/OAI-ZIB map has no menisci (and OAI-ZIB no patella): no false missing_compartment, and the table says
    which tissues were not labelled."""
    woo = from_harmonised(phantom.labels, "woo", merge=True, drop=("medial_meniscus", "lateral_meniscus"))
    harm = to_harmonised(woo, "woo", side="R", affine=phantom.affine)
    assert qc_flags(harm, phantom.affine, "R")["qc_missing_compartment"]  # told nothing: menisci look missing
    q = qc_flags(harm, phantom.affine, "R", lacks=LACKS_TISSUES["woo"])
    assert not any(q[f] for f in ANATOMY_FLAGS), q["qc_reasons"]
    assert q["qc_not_labelled"] == "medial_meniscus;lateral_meniscus"
    oaizib = np.where(np.isin(harm, (6, 7)), 0, harm)
    q = qc_flags(oaizib, phantom.affine, "R", lacks=LACKS_TISSUES["oaizib"])
    assert not q["qc_missing_compartment"] and q["qc_not_labelled"].split(";")[:2] == ["patella", "patellar_cartilage"]
    assert qc_flags(oaizib, phantom.affine, "R", lacks=("patella", "patellar_cartilage", 8, 9))["qc_any"] is False


def test_low_confidence_from_entropy(phantom):
    uniform = np.full((10, *phantom.labels.shape), 0.1, dtype=np.float32)
    q = qc_flags(phantom.labels, phantom.affine, "R", proba=uniform)
    assert q["qc_low_confidence"] and q["qc_cartilage_entropy"] == pytest.approx(1.0, abs=1e-3)
    sure = np.zeros_like(uniform)
    np.put_along_axis(sure, phantom.labels[None].astype(np.int64), 1.0, axis=0)
    assert not qc_flags(phantom.labels, phantom.affine, "R", proba=sure)["qc_low_confidence"]
