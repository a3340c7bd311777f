"""MRI segmenter end to end with the shipped weights: predict/proba/embed, mirroring and reorientation, weight checks,
``oa-kit mri segment`` outputs (affine preserved to every NIfTI, parquet table, QC) and bad inputs."""
from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from oa_kit.cli import main
from oa_kit.errors import OAKitError
from oa_kit.io.labels import SUBREGIONS
from oa_kit.models.mri.inference import DEFAULT_WEIGHTS, MRISegmenter


@pytest.fixture(scope="module")
def phantom():
    from oa_kit.synth.mri import DEFAULT_GEOMETRY, SITE_MRI, render_knee_mri

    return render_knee_mri("L", {s: 2.2 for s in SUBREGIONS}, DEFAULT_GEOMETRY, SITE_MRI["D"], seed=123)


@pytest.fixture(scope="module")
def segmenter():
    return MRISegmenter.from_pretrained()


def _dice(a, b):
    return 2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def test_segment_phantom_end_to_end(segmenter, phantom):
    seg = segmenter.segment(phantom.image, phantom.affine, "L")
    assert seg.labels.shape == phantom.image.shape and seg.labels.dtype == np.uint8
    assert seg.proba.shape == (10, *phantom.image.shape)
    assert np.allclose(seg.proba.sum(axis=0), 1.0, atol=1e-4)
    assert seg.embedding.shape == (segmenter.embed_dim,) and np.all(np.isfinite(seg.embedding))
    for label in (2, 4, 5):                       # femoral, medial and lateral tibial cartilage of a LEFT knee
        assert _dice(seg.labels == label, phantom.labels == label) > 0.8


def test_reoriented_input_gives_reoriented_labels(segmenter, phantom):
    """The same scan stored in another voxel order (axes permuted and flipped) segments identically."""
    img = np.ascontiguousarray(np.transpose(phantom.image, (2, 0, 1))[::-1])
    perm = np.zeros((4, 4))
    perm[3, 3] = 1
    perm[2, 0], perm[0, 1], perm[1, 2] = -1, 1, 1             # new (i, j, k) -> old (x, y, z) indices
    perm[2, 3] = phantom.image.shape[2] - 1
    affine = phantom.affine @ perm
    labels = segmenter.predict(img, affine, "L")
    back = np.transpose(labels[::-1], (1, 2, 0))
    ref = segmenter.predict(phantom.image, phantom.affine, "L")
    assert (back == ref).mean() > 0.999


def test_tampered_weights_error_names_file(tmp_path):
    dst = tmp_path / "w.safetensors"
    shutil.copyfile(DEFAULT_WEIGHTS, dst)
    shutil.copyfile(DEFAULT_WEIGHTS.with_suffix(".json"), dst.with_suffix(".json"))
    data = bytearray(dst.read_bytes())
    data[-1] ^= 0xFF
    dst.write_bytes(bytes(data))
    with pytest.raises(OAKitError, match="w.safetensors.*sha256"):
        MRISegmenter.from_pretrained(dst)
    with pytest.raises(OAKitError, match="missing.safetensors: MRI segmenter weights file missing"):
        MRISegmenter.from_pretrained(tmp_path / "missing.safetensors")
    meta = json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    assert "synthetic" in meta["training_data"]


def test_cli_segment_writes_aligned_outputs(tmp_path, phantom):
    from oa_kit.synth.mri import write_knee_mri

    image_path, _ = write_knee_mri(tmp_path / "in", "9000001", "L", 0, phantom)
    out = tmp_path / "out"
    assert main(["mri", "segment", str(image_path), "--out", str(out), "--no-progress"]) == 0
    affine = nib.load(str(image_path)).affine
    maps = sorted(out.rglob("*.nii.gz"))
    assert {p.parent.name for p in maps} == {"labels", "thickness"}
    for path in maps:
        img = nib.load(str(path))
        assert np.allclose(img.affine, affine) and img.shape == phantom.image.shape
    table = pd.read_parquet(out / "mri_biomarkers.parquet")
    row = table.iloc[0]
    assert (row["participant_id"], row["side"], row["visit_month"]) == ("9000001", "L", 0)
    for name in SUBREGIONS:
        assert 0.5 < row[f"thickness_mm_mean_{name}"] < 5.0
    assert "qc_laterality_mismatch" in table and "mri_emb_000" in table
    assert not row["qc_laterality_mismatch"] and not row["qc_missing_compartment"]
    assert json.loads((out / "qc_summary.json").read_text())["n_knees"] == 1


def _nifti(path, data, affine, orient=True):
    img = nib.Nifti1Image(data, affine)
    if not orient:
        img.set_qform(None, code=0)
        img.set_sform(None, code=0)
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("case, message", [
    ("2d", "3-D"), ("no_orientation", "orientation"), ("anisotropic", "anisotropic"), ("flat", "3D volume"),
])
def test_bad_inputs_fail_clearly(tmp_path, capsys, case, message):
    aff = np.diag([0.5, 0.5, 0.5, 1.0])
    if case == "2d":
        path = _nifti(tmp_path / "a_R_V00_DESS.nii.gz", np.zeros((64, 64), np.int16), aff)
    elif case == "no_orientation":
        path = _nifti(tmp_path / "a_R_V00_DESS.nii.gz", np.zeros((8, 64, 64), np.int16), aff, orient=False)
    elif case == "anisotropic":
        path = _nifti(tmp_path / "a_R_V00_DESS.nii.gz", np.zeros((8, 64, 64), np.int16), np.diag([8.0, 0.3, 0.3, 1.0]))
    else:
        path = _nifti(tmp_path / "a_R_V00_DESS.nii.gz", np.zeros((1, 64, 64), np.int16), aff)
    assert main(["mri", "segment", str(path), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_non_mr_dicom_and_uneven_spacing(tmp_path, capsys):
    import pydicom

    from oa_kit.io.mri import MRIVolume, write_dicom_series

    vol = MRIVolume(np.arange(16 * 16 * 6, dtype=np.uint16).reshape(16, 16, 6), np.diag([0.5, 0.5, 0.7, 1.0]))
    for name, edit in (("ct", lambda ds, i: setattr(ds, "Modality", "CT")),
                       ("uneven", lambda ds, i: setattr(ds, "ImagePositionPatient",
                                                        [*ds.ImagePositionPatient[:2], float(ds.ImagePositionPatient[2]) + (0.5 if i == 3 else 0)]))):
        files = write_dicom_series(tmp_path / name, vol)
        for i, f in enumerate(sorted(files)):
            ds = pydicom.dcmread(f)
            edit(ds, i)
            ds.save_as(f)
        assert main(["mri", "segment", str(tmp_path / name), "--side", "R", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and ("CT" if name == "ct" else "spacing") in err
