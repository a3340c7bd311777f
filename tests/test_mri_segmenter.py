"""MRI segmenter end to end with the shipped weights: predict/proba/embed, mirroring and reorientation, weight checks,
the fast slice-batched inference against the whole-volume reference, ``segment_scans`` batches (resume, worker
processes), ``oa-kit mri segment`` outputs (affine preserved to every NIfTI, parquet table, QC) and bad inputs."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from monai.inferers import sliding_window_inference

from oa_kit.cli import main
from oa_kit.errors import OAKitError
from oa_kit.io.labels import SUBREGIONS
from oa_kit.models.mri.inference import DEFAULT_WEIGHTS, MRISegmenter
from oa_kit.models.mri.network import network_to_harmonised
from oa_kit.models.mri.transforms import (
    from_canonical,
    percentile_range,
    resample_slices,
    scale_intensity,
    split_medial_lateral,
    to_canonical,
)
from oa_kit.workflows import mri as pipeline


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
    dense = np.asarray(seg.proba)
    assert seg.proba.shape == dense.shape == (10, *phantom.image.shape) and dense.dtype == np.float32
    assert np.allclose(dense.sum(axis=0), 1.0, atol=2e-3)  # float16 storage: 3 significant digits
    mask = seg.labels == 2
    assert np.array_equal(seg.proba[:, mask], dense[:, mask]) and np.array_equal(seg.proba[5], dense[5])
    assert np.array_equal(seg.proba[4:6], dense[4:6]) and np.array_equal(seg.proba[:, 3, 5:9], dense[:, 3, 5:9])
    assert not np.any(dense[4] * dense[5]) and not np.any(dense[8] * dense[9])  # medial/lateral never overlap
    assert seg.embedding.shape == (segmenter.embed_dim,) and np.all(np.isfinite(seg.embedding))
    for label in (2, 4, 5):  # femoral, medial and lateral tibial cartilage of a LEFT knee
        assert _dice(seg.labels == label, phantom.labels == label) > 0.8


def test_reoriented_input_gives_reoriented_labels(segmenter, phantom):
    """The same scan stored in another voxel order (axes permuted and flipped) segments identically."""
    img = np.ascontiguousarray(np.transpose(phantom.image, (2, 0, 1))[::-1])
    perm = np.zeros((4, 4))
    perm[3, 3] = 1
    perm[2, 0], perm[0, 1], perm[1, 2] = -1, 1, 1  # new (i, j, k) -> old (x, y, z) indices
    perm[2, 3] = phantom.image.shape[2] - 1
    affine = phantom.affine @ perm
    labels = segmenter.predict(img, affine, "L")
    back = np.transpose(labels[::-1], (1, 2, 0))
    ref = segmenter.predict(phantom.image, phantom.affine, "L")
    assert (back == ref).mean() > 0.999


def test_class_probabilities_read_like_the_dense_array():
    """Compact float16 probabilities answer every NumPy-style read the biomarker and QC code makes, equal to the
    dense array: one class, a class inside a crop box, a voxel, ``[:, mask]``, class slices; medial/lateral split."""
    from oa_kit.models.mri.inference import ClassProbabilities

    rng = np.random.default_rng(0)
    proba = ClassProbabilities(
        [rng.random((5, 6, 7)).astype(np.float16) for _ in range(8)], rng.random((5, 6, 7)) > 0.5
    )
    dense = np.asarray(proba)
    assert dense.shape == proba.shape == (10, 5, 6, 7) and len(proba) == 10
    box = (slice(1, 4), slice(0, 6), slice(2, 5))
    for k in range(10):
        for key in (k, (k, *box), (k, 2, 3, 4), (k, slice(None), 3)):
            assert np.array_equal(proba[key], dense[key]), key
    mask = rng.random((5, 6, 7)) > 0.3
    for key in ((slice(None), mask), slice(2, 5), (slice(None), slice(1, 3), 2), -1):
        assert np.array_equal(proba[key], dense[key]), key
    assert np.array_equal(dense[4] > 0, ~proba.lateral & (dense[4] > 0)) and not np.any(dense[5][~proba.lateral])
    with pytest.raises(OAKitError, match="label"):
        proba.channel(10)
    with pytest.raises(IndexError):
        proba[13]


def _reference_segment(segmenter, volume, affine, side):
    """The whole-volume algorithm the fast path must reproduce: all slices in one sliding-window pass, dense
    float32 probabilities, labels split medial/lateral on the canonical grid."""
    canon, view = to_canonical(volume.astype(np.float32), affine, side)
    with torch.no_grad():
        slices = segmenter.network_slices(canon, view.spacing_mm)
        logits = sliding_window_inference(slices, segmenter.roi_size, 16, segmenter.net_, overlap=0.25, mode="gaussian")
        proba = torch.softmax(resample_slices(logits, tuple(canon.shape[1:])), dim=1).numpy()
    labels = split_medial_lateral(network_to_harmonised(proba.argmax(axis=1)))
    return from_canonical(labels, view), proba


def test_clean_up_removes_only_false_positives_on_a_phantom(phantom):
    """On a phantom the network segments well, the anatomical clean-up only turns stray voxels into background: no
    tissue's Dice against the phantom's truth gets worse (the bones' improve: their stray pieces were wrong), and the
    cartilage volumes change by at most 1%."""
    segmenter = MRISegmenter.from_pretrained()
    segmenter.clean = False
    raw = segmenter.segment(phantom.image, phantom.affine, "L").labels
    segmenter.clean = True
    cleaned = segmenter.segment(phantom.image, phantom.affine, "L").labels
    changed = raw != cleaned
    assert changed.any() and (cleaned[changed] == 0).all()
    for label in np.unique(phantom.labels[phantom.labels > 0]):
        truth = phantom.labels == label
        assert _dice(cleaned == label, truth) >= _dice(raw == label, truth) - 1e-6, label
        if label in (2, 4, 5, 7):
            assert abs(int((cleaned == label).sum()) - int((raw == label).sum())) <= 0.01 * (raw == label).sum()


@pytest.mark.parametrize("case", ["roi_sized", "windowed_reoriented"])
def test_fast_inference_matches_whole_volume_reference(segmenter, phantom, case):
    """Slice batches (with a remainder), direct forward passes or sliding windows, float16 storage and writes
    through canonical views give the labels of the whole-volume reference (Dice >= 0.999 for every tissue)."""
    image, affine = phantom.image, phantom.affine
    if case == "windowed_reoriented":  # 100 x 150 slices: padded/overlapping windows; axes stored as (SI, LR, AP)
        image = np.ascontiguousarray(np.transpose(image[:, 10:110, :], (2, 0, 1))[:, :, :])
        image = np.concatenate([image, image[:22]], axis=0)
        perm = np.zeros((4, 4))
        perm[3, 3] = 1
        perm[2, 0], perm[0, 1], perm[1, 2] = 1, 1, 1
        affine = phantom.affine @ perm
    fast = MRISegmenter.from_pretrained()
    fast.slice_batch, fast.clean = 7, False  # the reference is the network's own labels
    seg = fast.segment(image, affine, "L")
    ref_labels, ref_proba = _reference_segment(segmenter, image, affine, "L")
    assert seg.labels.shape == ref_labels.shape == image.shape
    for label in np.unique(ref_labels):
        assert _dice(seg.labels == label, ref_labels == label) >= 0.999, label
    assert (seg.labels != ref_labels).mean() <= 1e-4
    assert np.isclose(np.asarray(seg.proba)[2].sum(), ref_proba[:, 2].sum(), rtol=1e-3)  # femoral cartilage mass


def test_tampered_weights_error_names_file(tmp_path, tampered_copy):
    dst = tampered_copy(DEFAULT_WEIGHTS, tmp_path, "w.safetensors")
    with pytest.raises(OAKitError, match="w.safetensors.*sha256"):
        MRISegmenter.from_pretrained(dst)
    with pytest.raises(OAKitError, match="missing.safetensors: MRI segmenter weights file missing"):
        MRISegmenter.from_pretrained(tmp_path / "missing.safetensors")
    with pytest.raises(OAKitError, match="weights: 'rea' is no file; expected a shipped name \\(synthetic, real\\)"):
        MRISegmenter.from_pretrained("rea")
    meta = json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    assert "synthetic" in meta["training_data"]


def test_cli_segment_writes_aligned_outputs(tmp_path, phantom, capsys):
    from oa_kit.synth.mri import write_knee_mri

    image_path, _ = write_knee_mri(tmp_path / "in", "9000001", "L", 0, phantom)
    out = tmp_path / "out"
    assert main(["mri", "segment", str(image_path), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"9000001 L {image_path.name}: QC")  # one QC line per knee, then the summary
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
    assert row["qc_usable"] == (not row["qc_any"]) and ("QC passed" in printed[0]) == bool(row["qc_usable"])
    assert json.loads((out / "qc_summary.json").read_text())["n_knees"] == 1


def _nifti(path, data, affine, orient=True):
    img = nib.Nifti1Image(data, affine)
    if not orient:
        img.set_qform(None, code=0)
        img.set_sform(None, code=0)
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("2d", "3-D"),
        ("no_orientation", "orientation"),
        ("anisotropic", "anisotropic"),
        ("flat", "3D volume"),
    ],
)
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
    for name, edit in (
        ("ct", lambda ds, i: setattr(ds, "Modality", "CT")),
        (
            "uneven",
            lambda ds, i: setattr(
                ds,
                "ImagePositionPatient",
                [*ds.ImagePositionPatient[:2], float(ds.ImagePositionPatient[2]) + (0.5 if i == 3 else 0)],
            ),
        ),
    ):
        files = write_dicom_series(tmp_path / name, vol)
        for i, f in enumerate(sorted(files)):
            ds = pydicom.dcmread(f)
            edit(ds, i)
            ds.save_as(f)
        assert (
            main(["mri", "segment", str(tmp_path / name), "--side", "R", "--out", str(tmp_path / "o"), "--no-progress"])
            == 2
        )
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and ("CT" if name == "ct" else "spacing") in err


@pytest.fixture(scope="module")
def two_scans(tmp_path_factory, phantom):
    """Two NIfTI scans (the phantom written for two participants) as real input files."""
    from oa_kit.synth.mri import write_knee_mri

    folder = tmp_path_factory.mktemp("scans")
    return [write_knee_mri(folder, pid, "L", 0, phantom)[0] for pid in ("9000001", "9000002")]


def test_segment_scans_goes_on_past_a_bad_scan_and_resumes_after_interruption(tmp_path, two_scans, monkeypatch):
    """A bad input is reported and the batch goes on; an interrupted run keeps the finished scans' records and the
    rerun segments only the scans left; a changed input or a record made with other weights is redone."""
    calls = []
    real = pipeline.analyse_knee
    monkeypatch.setattr(pipeline, "analyse_knee", lambda scan, *a: calls.append(scan.path.name) or real(scan, *a))
    bad = _nifti(tmp_path / "9000003_R_V00_DESS.nii.gz", np.zeros((64, 64), np.int16), np.diag([0.5, 0.5, 0.5, 1.0]))
    out = tmp_path / "out"
    table = pipeline.segment_scans([two_scans[0], bad, two_scans[1]], out, n_jobs=1, progress=False)
    assert calls == [two_scans[0].name, two_scans[1].name] and list(table["participant_id"]) == ["9000001", "9000002"]
    [failure] = table.attrs["failures"]
    assert failure["source_file"] == str(bad) and "3-D" in failure["error"]
    assert json.loads((out / "qc_summary.json").read_text())["n_failed_inputs"] == 1

    def interrupted(scan, *a):
        if scan.path == two_scans[1]:
            raise KeyboardInterrupt
        return real(scan, *a)

    calls.clear()
    out = tmp_path / "again"
    monkeypatch.setattr(
        pipeline, "analyse_knee", lambda scan, *a: calls.append(scan.path.name) or interrupted(scan, *a)
    )
    with pytest.raises(KeyboardInterrupt):
        pipeline.segment_scans(two_scans, out, n_jobs=1, progress=False)
    assert calls == [two_scans[0].name, two_scans[1].name] and pipeline.scan_record_path(out, two_scans[0]).is_file()
    assert not pipeline.scan_record_path(out, two_scans[1]).is_file()
    monkeypatch.setattr(pipeline, "analyse_knee", lambda scan, *a: calls.append(scan.path.name) or real(scan, *a))
    table = pipeline.segment_scans(two_scans, out, n_jobs=1, progress=False)
    assert calls[2:] == [two_scans[1].name]
    assert list(table["participant_id"]) == ["9000001", "9000002"] and len(list((out / "labels").iterdir())) == 2
    assert pd.read_parquet(out / "mri_biomarkers.parquet").equals(table) and table.attrs["failures"] == []
    record = pipeline.scan_record_path(out, two_scans[1])
    stored = json.loads(record.read_text())
    stored["key"]["weights_sha256"] = "0" * 64
    record.write_text(json.dumps(stored))
    again = pipeline.segment_scans(two_scans, out, n_jobs=1, progress=False)
    assert calls[3:] == [two_scans[1].name]
    pd.testing.assert_frame_equal(again, table)


def test_n_jobs_and_threads_checked():
    for kwargs, message in (({"n_jobs": 0}, "n_jobs"), ({"threads": 0}, "threads"), ({}, "no scans")):
        with pytest.raises(OAKitError, match=message):
            pipeline.segment_scans([] if not kwargs else ["x.nii.gz"], "unused", **kwargs)


@pytest.mark.slow
def test_segment_scans_worker_processes_match_in_process(tmp_path, two_scans):
    """Two spawned 1-thread workers give the same table as one process."""
    one = pipeline.segment_scans(two_scans, tmp_path / "one", n_jobs=1, progress=False)
    two = pipeline.segment_scans(two_scans, tmp_path / "two", n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(one.drop(columns="source_file"), two.drop(columns="source_file"), rtol=1e-4)
    assert pipeline.scan_record_path(tmp_path / "two", two_scans[1]).is_file()


def test_label_resampling_takes_the_pixel_under_each_output_centre():
    # OAI DESS in-plane (176 px at 0.3646 mm) to the network's 0.5 mm (128 px): each output pixel must carry the label
    # of the source pixel under its centre, as the bilinear image does, or thin cartilage shifts against its image
    src, dst = 176, 128
    index = torch.arange(src, dtype=torch.float32)
    labels = (index[:, None] * 1000 + index[None, :])[None, None]
    out = resample_slices(labels, (dst, dst), mode="nearest")[0, 0]
    centre = (torch.arange(dst) + 0.5) * src / dst - 0.5  # output centres in source-index units
    assert torch.all((out // 1000 - centre[:, None]).abs() <= 0.5)
    assert torch.all((out % 1000 - centre[None, :]).abs() <= 0.5)


# ------------------------------------------------------------------------------------------------------ 2.5D input
def test_weights_without_context_load_as_2d_and_segment_as_before(tmp_path, phantom):
    """Weights whose JSON has no ``context_mm``/``in_channels`` (files written before the 2.5D option) load as the
    one-channel 2D model and give exactly the outputs of the slab-by-slab algorithm (scale, resample, forward, softmax)."""
    from oa_kit.models.mri.train import TrainResult, _metadata, save_weights

    torch.manual_seed(0)
    old = MRISegmenter(channels=(4, 8), strides=(2,))
    path = save_weights(TrainResult(net=old._build(), metadata=_metadata(old)), tmp_path / "legacy.safetensors")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta.pop("context_mm", None)
    meta["architecture"].pop("in_channels", None)
    path.with_suffix(".json").write_text(json.dumps(meta))
    segmenter = MRISegmenter.from_pretrained(path)
    assert segmenter.context_mm == 0 and segmenter.in_channels == 1
    assert segmenter.net_.model[0].conv.unit0.conv.weight.shape[1] == 1
    segmenter.clean = False  # compared with the network's own labels
    seg = segmenter.segment(phantom.image, phantom.affine, "L")
    canon, view = to_canonical(phantom.image.astype(np.float32), phantom.affine, "L")
    lo, hi = percentile_range(phantom.image.astype(np.float32))
    with torch.no_grad():
        parts = []
        for start in range(0, canon.shape[0], segmenter.slice_batch):
            slices = torch.from_numpy(scale_intensity(canon[start : start + segmenter.slice_batch], lo, hi))[:, None]
            parts.append(torch.softmax(segmenter.net_(resample_slices(slices, segmenter.roi_size)), dim=1))
        proba = torch.cat(parts).to(torch.float16).numpy()
    for c in range(proba.shape[1]):
        assert np.array_equal(to_canonical(seg.proba.channels[c], phantom.affine, "L")[0], proba[:, c]), c
    assert np.array_equal(seg.labels, _reference_segment(segmenter, phantom.image, phantom.affine, "L")[0])


def test_shipped_weights_are_the_2_5d_model(segmenter):
    """The shipped JSON declares the 2.5D input the model card describes (3 channels, +/- 2 mm)."""
    meta = json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    assert meta["context_mm"] == 2.0 and meta["architecture"]["in_channels"] == 3
    assert segmenter.context_mm == 2.0 and segmenter.in_channels == 3
    assert segmenter.net_.model[0].conv.unit0.conv.weight.shape[1] == 3


def test_weights_json_declares_the_input_channels(tmp_path):
    """``context_mm``/``in_channels`` in the JSON are read back; a JSON whose in_channels contradicts its context fails."""
    from oa_kit.io.artifacts import sha256_file
    from oa_kit.models.mri.train import TrainResult, _metadata, save_weights

    model = MRISegmenter(channels=(4, 8), strides=(2,), context_mm=1.5)
    net = model._build()
    path = save_weights(TrainResult(net=net, metadata=_metadata(model)), tmp_path / "w.safetensors")
    loaded = MRISegmenter.from_pretrained(path)
    assert loaded.context_mm == 1.5 and loaded.in_channels == 3
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["context_mm"] = 0.0
    path.with_suffix(".json").write_text(json.dumps(dict(meta, sha256=sha256_file(path))))
    with pytest.raises(OAKitError, match="in_channels 3 does not fit context_mm 0.0"):
        MRISegmenter.from_pretrained(path)


@pytest.mark.parametrize("step_mm", [2.0, 0.7])
def test_context_channels_sample_the_volume_in_mm(step_mm):
    """On a volume whose value is each slice's LR position x (mm), the 2.5D channels read x - D, x, x + D (linear
    interpolation between slices, clamped to the volume's extent), on a 2 mm and a 0.7 mm slice grid; slab by
    slab (slices at the slab's edges read their neighbours beyond it) equals the whole volume."""
    from oa_kit.models.mri.transforms import context_stack

    n, context = 13, 2.0
    x = np.arange(n) * step_mm
    volume = np.broadcast_to(x[:, None, None], (n, 8, 8)).astype(np.float32)
    stack = context_stack(volume, step_mm, context)
    assert stack.shape == (n, 3, 8, 8)
    expected = np.stack([np.clip(x - context, 0, x[-1]), x, np.clip(x + context, 0, x[-1])], axis=1)
    assert np.allclose(stack[:, :, 3, 4], expected, atol=1e-5)
    model = MRISegmenter(context_mm=context)
    slab = model.input_slices(volume, 4, 9, (0.0, float(x[-1])), (step_mm, 0.5, 0.5))
    assert slab.shape == (5, 3, 8, 8)
    assert torch.allclose(slab[:, :, 0, 0], torch.from_numpy(expected[4:9] / x[-1]).float(), atol=1e-6)
    assert torch.equal(model.network_slices(volume, (step_mm, 0.5, 0.5))[4:9], slab)


def test_2d_weights_start_an_equal_25d_model(tmp_path, phantom):
    """A 2.5D network initialised from 2D weights (2D kernels on the centre channel, zeros on the neighbours)
    predicts what the 2D model does before any training: same labels, probabilities and embedding."""
    from oa_kit.models.mri.train import TrainResult, _metadata, load_initial_weights, save_weights

    torch.manual_seed(1)
    flat_model = MRISegmenter()
    path = save_weights(
        TrainResult(net=flat_model._build(), metadata=_metadata(flat_model)), tmp_path / "2d.safetensors"
    )
    segmenter = MRISegmenter.from_pretrained(path)
    assert segmenter.in_channels == 1
    wide = MRISegmenter(context_mm=2.0)
    wide.net_ = load_initial_weights(wide._build(), path).eval()
    first = wide.net_.model[0].conv.unit0.conv.weight
    assert first.shape[1] == 3 and torch.count_nonzero(first[:, [0, 2]]) == 0
    flat, deep = segmenter.segment(phantom.image, phantom.affine, "L"), wide.segment(phantom.image, phantom.affine, "L")
    assert np.array_equal(flat.labels, deep.labels)
    assert np.allclose(np.asarray(flat.proba), np.asarray(deep.proba), atol=1e-3)
    assert np.allclose(flat.embedding, deep.embedding, rtol=1e-5, atol=1e-6)
    with pytest.raises(OAKitError, match="cannot start from these weights"):
        load_initial_weights(MRISegmenter(channels=(4, 8), strides=(2,), context_mm=2.0)._build(), path)


@pytest.fixture(scope="module")
def dark_marrow_scan(tmp_path_factory):
    """A right-knee phantom in water-excited DESS contrast (dark marrow, as real DESS), written as NIfTI."""
    from oa_kit.synth.mri import DEFAULT_GEOMETRY, SITE_MRI, render_knee_mri, write_knee_mri

    knee = render_knee_mri(
        "R", {s: 2.2 for s in SUBREGIONS}, DEFAULT_GEOMETRY, SITE_MRI["B"], seed=7, contrast="we-dess"
    )
    path, _ = write_knee_mri(tmp_path_factory.mktemp("wedess"), "9000002", "R", 0, knee)
    return path, knee


def test_real_weights_segment_the_contrast_the_synthetic_weights_cannot(tmp_path, dark_marrow_scan, capsys):
    """``--weights real`` (contrast-agnostic, shipped and pinned) finds the cartilage of a dark-marrow scan where the
    default phantom-trained weights do not; the summary line names the weights used."""
    path, knee = dark_marrow_scan
    dice = {}
    for name in ("synthetic", "real"):
        out = tmp_path / name
        assert main(["mri", "segment", str(path), "--out", str(out), "--weights", name, "--no-progress"]) == 0
        labels = np.asarray(nib.load(str(next((out / "labels").glob("*.nii.gz")))).dataobj)
        dice[name] = [_dice(labels == label, knee.labels == label) for label in (2, 4, 5)]
        summary = capsys.readouterr().out.splitlines()[-1]
        assert ("real scans: --weights real" in summary) == (name == "synthetic"), summary
    assert min(dice["real"]) > 0.6 and max(dice["synthetic"]) < 0.4, dice
    model = MRISegmenter.from_pretrained("real")
    assert model.channels == (16, 32, 64, 128) and "real OAI knee label maps" in model.metadata_["training_data"]
