"""``oa-kit mri measure`` / ``oa_kit.measure_labels``: a label map the user already has (any supported convention,
NIfTI or NRRD) measured into the same per-knee table, thickness NIfTI and QC lines as ``mri segment``; tissues a
convention lacks are not called missing; no image -> NaN image columns; a bad map fails alone."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from oa_kit.api import measure_labels
from oa_kit.cli import main
from oa_kit.errors import OAKitError
from oa_kit.io.labels import SUBREGIONS, from_harmonised
from oa_kit.models.mri.inference import MRISegmenter
from oa_kit.workflows import mri as pipeline

MENISCI = ("medial_meniscus", "lateral_meniscus")


@pytest.fixture(scope="module")
def knee():
    """A right-knee phantom with the committed default geometry (its true labels are the user's map)."""
    from oa_kit.synth.mri import DEFAULT_GEOMETRY, SITE_MRI, render_knee_mri

    return render_knee_mri("R", {s: 2.0 for s in SUBREGIONS}, DEFAULT_GEOMETRY, SITE_MRI["A"], seed=2)


@pytest.fixture(scope="module")
def maps(tmp_path_factory, knee):
    """The phantom's labels written as a user would have them: Woo NIfTI without a side in its name, pymskt NRRD,
    and the scan they were drawn on."""
    import nrrd

    folder = tmp_path_factory.mktemp("maps")
    woo = from_harmonised(knee.labels, "woo", merge=True, drop=MENISCI)
    nib.save(nib.Nifti1Image(woo.astype(np.uint8), knee.affine), str(folder / "knee_woo.nii.gz"))
    nib.save(nib.Nifti1Image(knee.image.astype(np.int16), knee.affine), str(folder / "knee_dess.nii.gz"))
    pymskt = from_harmonised(knee.labels, "pymskt")
    header = {
        "space": "right-anterior-superior",
        "space directions": knee.affine[:3, :3].T,
        "space origin": knee.affine[:3, 3],
    }
    nrrd.write(str(folder / "knee_pymskt.nrrd"), pymskt.astype(np.uint8), header)
    return folder


@pytest.fixture(scope="module")
def truth(knee):
    """The harmonised map measured directly (no convention round trip)."""
    return measure_labels(knee.labels, knee.affine, "R")


def test_cli_measure_writes_the_segment_table_and_maps(tmp_path, maps, knee, truth, capsys):
    out = tmp_path / "o"
    argv = ["mri", "measure", str(maps / "knee_woo.nii.gz"), "--convention", "woo", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "knee_woo R (side from anatomy) knee_woo.nii.gz: QC passed"
    table = pd.read_parquet(out / "mri_biomarkers.parquet")
    row = table.iloc[0]
    assert (row["side"], row["qc_side_source"], row["source_labels"]) == ("R", "anatomy", "woo")
    assert row["qc_usable"] and not row["qc_missing_compartment"]
    assert row["qc_not_labelled"] == "medial_meniscus;lateral_meniscus"
    emb = [c for c in table if c.startswith("mri_emb_")]
    assert len(emb) == MRISegmenter.from_pretrained().embed_dim and row[emb].isna().all()  # no image: NaN
    for name in SUBREGIONS:  # the menisci were never labelled; cartilage measures as the harmonised map does
        col = f"thickness_mm_mean_{name}"
        assert row[col] == pytest.approx(truth.row[col], abs=1e-6)
    csv = pd.read_csv(out / "mri_biomarkers.csv")
    assert list(csv.columns) == list(table.columns) and csv["thickness_mm_mean_patellar"].iloc[0] == pytest.approx(
        row["thickness_mm_mean_patellar"]
    )
    labels = sorted((out / "labels").glob("*.nii.gz"))
    thickness = sorted((out / "thickness").glob("*.nii.gz"))
    assert len(labels) == len(thickness) == 1
    written = nib.load(str(labels[0]))
    assert np.allclose(written.affine, knee.affine) and np.allclose(nib.load(str(thickness[0])).affine, knee.affine)
    expected = np.where(np.isin(knee.labels, (8, 9)), 0, knee.labels)
    np.testing.assert_array_equal(np.asarray(written.dataobj), expected)  # harmonised, plates split by side


def test_measure_and_segment_tables_have_the_same_columns(tmp_path, maps, knee):
    from oa_kit.synth.mri import write_knee_mri

    scan, _ = write_knee_mri(tmp_path / "in", "9000001", "R", 0, knee)
    segmented = pipeline.segment_scans([scan], tmp_path / "seg", progress=False)
    measured = pipeline.measure_label_maps([maps / "knee_woo.nii.gz"], tmp_path / "mea", "woo", progress=False)
    assert list(measured.columns) == list(segmented.columns)
    qc_seg, qc_mea = (pd.read_csv(tmp_path / d / "qc_summary.csv") for d in ("seg", "mea"))
    assert list(qc_seg.columns) == list(qc_mea.columns)


def test_image_gives_the_embedding_the_segmenter_gives(tmp_path, maps, knee):
    segmenter = MRISegmenter.from_pretrained()
    with_image = measure_labels(
        maps / "knee_woo.nii.gz", image=maps / "knee_dess.nii.gz", convention="woo", segmenter=segmenter
    )
    emb = np.array([v for k, v in with_image.row.items() if k.startswith("mri_emb_")])
    expected = segmenter.segment(knee.image.astype(np.int16).astype(np.float32), knee.affine, "R").embedding
    np.testing.assert_allclose(emb, expected, rtol=1e-5)
    assert with_image.image is not None and with_image.model == "labels given by the user (woo convention)"
    other = tmp_path / "small.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((20, 64, 64), np.int16), knee.affine), str(other))
    with pytest.raises(OAKitError, match="small.nii.gz: shape .* on another grid than the label map"):
        measure_labels(maps / "knee_woo.nii.gz", image=other, convention="woo")


def test_nrrd_pymskt_map_and_array_call_agree(maps, knee, truth):
    from_file = measure_labels(maps / "knee_pymskt.nrrd", convention="pymskt")
    from_array = measure_labels(from_harmonised(knee.labels, "pymskt"), knee.affine, convention="pymskt")
    assert from_file.side == from_array.side == "R" and from_file.row["qc_side_source"] == "anatomy"
    np.testing.assert_allclose(from_file.affine, knee.affine, atol=1e-6)
    for name in SUBREGIONS:
        col = f"thickness_mm_mean_{name}"
        assert from_file.row[col] == pytest.approx(truth.row[col], abs=1e-6) == from_array.row[col]
    assert from_file.row["qc_not_labelled"] == "" and from_file.row["qc_usable"]


def test_cartilage_only_convention_is_refused_with_the_reason(knee):
    """SKM-TEA masks label cartilage and menisci but no bones: the anatomy cannot give the side, and thickness
    (measured from the bone) cannot be measured; each is one line saying so."""
    skm = from_harmonised(knee.labels, "skmtea", drop=("femur", "tibia", "patella"))
    with pytest.raises(OAKitError, match="labels: knee side not in the file name or header, and the anatomy cannot"):
        measure_labels(skm, knee.affine, convention="skmtea")
    with pytest.raises(OAKitError, match=r"array: no cartilage lies on a labelled bone \(femur 0, tibia 0, patella 0"):
        measure_labels(skm, knee.affine, "R", convention="skmtea")


def test_a_corrupted_map_is_marked_unusable_and_a_bad_map_fails_alone(tmp_path, maps, knee, capsys):
    bad_values = tmp_path / "wrong_convention.nii.gz"
    nib.save(nib.Nifti1Image(np.full((16, 16, 16), 12, np.uint8), knee.affine), str(bad_values))
    off = from_harmonised(knee.labels, "woo", merge=True, drop=MENISCI)
    moved = np.roll(off == 6, -60, axis=1)  # patellar cartilage pulled 30 mm off the patella
    off[off == 6] = 0
    off[moved & (off == 0)] = 6
    corrupted = tmp_path / "moved_woo.nii.gz"
    nib.save(nib.Nifti1Image(off, knee.affine), str(corrupted))
    out = tmp_path / "o"
    args = ["mri", "measure", str(corrupted), str(bad_values), "--convention", "woo", "--side", "R", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 1
    captured = capsys.readouterr()
    line = captured.out.splitlines()[0]
    assert line.startswith("moved_woo R moved_woo.nii.gz: QC FAILED (") and "cartilage_off_bone: patellar" in line
    assert line.endswith("biomarkers unusable")
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and f"{bad_values}: FAILED: " in err[0] and "values [12]" in err[0]
    table = pd.read_parquet(out / "mri_biomarkers.parquet")
    assert len(table) == 1 and not table["qc_usable"].iloc[0] and table["qc_cartilage_off_bone"].iloc[0]
    assert list(pd.read_csv(out / "failures.csv")["source_file"]) == [str(bad_values)]


def test_cli_refuses_an_unknown_convention_and_unpaired_images(tmp_path, maps, capsys):
    with pytest.raises(SystemExit):
        main(["mri", "measure", str(maps / "knee_woo.nii.gz"), "--convention", "ski10", "--out", str(tmp_path)])
    assert "invalid choice: 'ski10'" in capsys.readouterr().err
    pair = ["--image", str(maps / "knee_dess.nii.gz"), str(maps / "knee_dess.nii.gz")]
    argv = ["mri", "measure", str(maps / "knee_woo.nii.gz"), "--convention", "woo", *pair, "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "--image: 2 images for 1 label maps" in capsys.readouterr().err


def test_a_segmented_knee_is_read_back_as_analyse_mri_gives_it(tmp_path, knee):
    """read_mri_result: the pipeline's NIfTIs and record give the labels, thickness map, table, QC and figure that
    analyse_mri gives; another side argument, other weights, a changed input or no results give None."""
    from oa_kit.api import analyse_mri, read_mri_result
    from oa_kit.synth.mri import write_knee_mri

    scan, _ = write_knee_mri(tmp_path / "in", "9000001", "R", 0, knee)
    segmenter = MRISegmenter.from_pretrained()
    pipeline.segment_scans([scan], tmp_path / "mri", progress=False)
    now, saved = analyse_mri(scan, segmenter=segmenter), read_mri_result(tmp_path / "mri", scan, segmenter=segmenter)
    assert saved is not None and saved.measurement is None and saved.side == now.side == "R"
    np.testing.assert_array_equal(saved.labels, now.labels)
    np.testing.assert_allclose(saved.thickness_map, now.thickness_map, rtol=1e-5)
    pd.testing.assert_frame_equal(saved.to_frame(), now.to_frame(), rtol=1e-5)
    pd.testing.assert_frame_equal(saved.to_frame(), now.measurement.subregion_table(), rtol=1e-5)
    assert (saved.qc["qc_any"], saved.qc["qc_reasons"]) == (now.qc["qc_any"], now.qc["qc_reasons"])
    assert saved.model.startswith(now.model) and "read from the results in mri/" in saved.model
    for drawn, shown in zip(saved.figure().data, now.figure().data, strict=True):
        np.testing.assert_allclose(np.asarray(drawn.z, float), np.asarray(shown.z, float), rtol=1e-5)
    assert read_mri_result(tmp_path / "mri", scan, side="R", segmenter=segmenter) is None  # run without --side
    assert read_mri_result(tmp_path / "elsewhere", scan, segmenter=segmenter) is None
    other = MRISegmenter.from_pretrained()
    other.metadata_ = {**other.metadata_, "sha256": "0" * 64}
    assert read_mri_result(tmp_path / "mri", scan, segmenter=other) is None
    record = pipeline.scan_record_path(tmp_path / "mri", scan)
    good = record.read_text()
    for damaged in ("[]", '{"key": 1}', "{not json"):  # a record edited or cut short by hand: segment again
        record.write_text(damaged)
        assert read_mri_result(tmp_path / "mri", scan, segmenter=segmenter) is None
    record.write_text(good)
    assert read_mri_result(tmp_path / "mri", scan).model == saved.model  # default: the shipped weights' metadata
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("in", "mri"):  # a data folder moved with its results (mv keeps the timestamps)
        (tmp_path / name).rename(moved / name)
    again = read_mri_result(moved / "mri", moved / "in" / scan.name, segmenter=segmenter)
    assert again is not None and np.array_equal(again.labels, saved.labels)
    kept = pipeline.scan_record_path(moved / "mri", moved / "in" / scan.name)
    written = kept.stat().st_mtime_ns
    pipeline.segment_scans([moved / "in" / scan.name], moved / "mri", progress=False)  # resumed: nothing to redo
    assert kept.stat().st_mtime_ns == written
    (moved / "in").rename(tmp_path / "in")  # the input alone moved away from its results: another file
    assert read_mri_result(moved / "mri", scan, segmenter=segmenter) is None
    (moved / "mri").rename(tmp_path / "mri")
    os.utime(scan, ns=(1, 1))  # the input changed after it was segmented
    assert read_mri_result(tmp_path / "mri", scan, segmenter=segmenter) is None
