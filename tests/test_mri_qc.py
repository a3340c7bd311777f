"""QC flags fire on deliberately broken segmentations: empty mask, swapped laterality, cropped field of view, low confidence."""

from __future__ import annotations

import numpy as np
import pytest

from oa_kit.features.mri_qc import QC_FLAGS, anatomical_medial_sign, qc_flags
from oa_kit.io.labels import SUBREGIONS


@pytest.fixture(scope="module")
def phantom():
    from oa_kit.synth.mri import DEFAULT_GEOMETRY, SITE_MRI, render_knee_mri

    return render_knee_mri("R", {s: 2.0 for s in SUBREGIONS}, DEFAULT_GEOMETRY, SITE_MRI["A"], seed=2)


def test_clean_phantom_passes(phantom):
    q = qc_flags(phantom.labels, phantom.affine, "R")
    assert set(QC_FLAGS) <= set(q)
    assert not q["qc_missing_compartment"] and not q["qc_laterality_mismatch"] and not q["qc_disconnected"]
    assert not q["qc_volume_implausible"] and not q["qc_truncated_fov"]


def test_empty_mask_flags_missing():
    q = qc_flags(np.zeros((20, 30, 30), np.uint8), np.diag([2.0, 0.5, 0.5, 1.0]), "R")
    assert q["qc_missing_compartment"] and q["qc_any"]
    assert "femoral_cartilage" in q["qc_reasons"]


def test_swapped_laterality_flags(phantom):
    assert anatomical_medial_sign(phantom.labels, phantom.affine) == -1  # right knee: medial toward -x
    q = qc_flags(phantom.labels, phantom.affine, "L")
    assert q["qc_laterality_mismatch"] and "declared L" in q["qc_reasons"]
    mirrored = phantom.labels[::-1].copy()
    assert qc_flags(mirrored, phantom.affine, "L")["qc_laterality_mismatch"] is False


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


def test_low_confidence_from_entropy(phantom):
    uniform = np.full((10, *phantom.labels.shape), 0.1, dtype=np.float32)
    q = qc_flags(phantom.labels, phantom.affine, "R", proba=uniform)
    assert q["qc_low_confidence"] and q["qc_cartilage_entropy"] == pytest.approx(1.0, abs=1e-3)
    sure = np.zeros_like(uniform)
    np.put_along_axis(sure, phantom.labels[None].astype(np.int64), 1.0, axis=0)
    assert not qc_flags(phantom.labels, phantom.affine, "R", proba=sure)["qc_low_confidence"]
