"""Knee side when the file name and header lack it: read from the anatomy (one rule, ``anatomy_side``) and said so
(``qc_side_source`` and the CLI line), or refused when the anatomy cannot decide; an argument contradicting the file
name is refused; ``mri segment`` goes on past a bad scan and never lets two inputs overwrite each other's maps."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from oa_kit.api import analyse_mri
from oa_kit.cli import main
from oa_kit.errors import OAKitError
from oa_kit.features.mri_knee import analyse_knee
from oa_kit.io.labels import SIDE_SCORE_MARGIN, SUBREGIONS, anatomy_side, knee_side_cues
from oa_kit.io.scans import declared_side, read_scan
from oa_kit.models.mri.inference import HARMONISED_CHANNEL, ClassProbabilities, MRISegmenter, Segmentation
from oa_kit.workflows import mri as pipeline


@pytest.fixture(scope="module")
def left():
    from oa_kit.synth.mri import DEFAULT_GEOMETRY, SITE_MRI, render_knee_mri

    return render_knee_mri("L", {s: 2.2 for s in SUBREGIONS}, DEFAULT_GEOMETRY, SITE_MRI["D"], seed=123)


@pytest.fixture(scope="module")
def segmenter():
    return MRISegmenter.from_pretrained()


def _unnamed(path, knee):
    """The scan under a name that says nothing about the side, with no laterality in its header."""
    nib.save(nib.Nifti1Image(knee.image.astype(np.int16), knee.affine), str(path))
    return path


def test_anatomy_side_is_one_rule_with_an_undecided_band(left):
    side, score = anatomy_side(left.labels, left.affine)
    assert side == "L" and score < -SIDE_SCORE_MARGIN
    cues = knee_side_cues(
        left.labels == 1, left.labels == 3, np.isin(left.labels, (4, 5)), left.labels == 6, left.affine
    )
    assert sum(cues.values()) == pytest.approx(score) and all(v < 0 for v in cues.values())
    assert anatomy_side(left.labels[::-1].copy(), left.affine)[0] == "R"
    assert anatomy_side(np.where(left.labels == 3, 0, left.labels), left.affine) == (None, 0.0)


def test_declared_side_precedence_and_conflict():
    assert declared_side("R", "file name", None, "a") == ("R", "file name")
    assert declared_side("L", "header", "L", "a") == ("L", "header")
    assert declared_side(None, None, "R", "a") == ("R", "argument")
    assert declared_side(None, None, None, "a") == (None, None)
    with pytest.raises(OAKitError, match="a: side R given but the file name says L; expected them to agree"):
        declared_side("L", "file name", "R", "a")
    with pytest.raises(OAKitError, match="side: got 'X'"):
        declared_side(None, None, "X", "a")


class TruthSegmenter:
    """Stands in for :class:`MRISegmenter` with a perfect segmentation of one phantom: its true labels, with the
    tibial plates and menisci named by position for the side it is told (as the real segmenter names them), so a
    test sees exactly what the side logic does, whatever the shipped weights are."""

    embed_dim = 4
    weights_sha256 = "unsaved"

    def __init__(self, knee) -> None:
        self.knee, self.calls = knee, []

    def segment(self, volume: np.ndarray, affine: np.ndarray, side: str) -> Segmentation:
        self.calls.append(side)
        labels = self.knee.labels if side == self.knee.side else SWAP[self.knee.labels]
        channel = np.array([HARMONISED_CHANNEL[k] for k in range(10)])[labels]
        channels = [(channel == c).astype(np.float16) for c in range(max(HARMONISED_CHANNEL.values()) + 1)]
        proba = ClassProbabilities(channels, np.isin(labels, (5, 9)))
        return Segmentation(labels.copy(), proba, np.arange(4, dtype=np.float32))


#: Medial <-> lateral names of the tibial plates and menisci.
SWAP = np.array([0, 1, 2, 3, 5, 4, 6, 7, 9, 8], dtype=np.uint8)


def test_unnamed_left_knee_is_segmented_as_right_then_renamed_from_its_anatomy(tmp_path, left):
    """Segmented once as a right knee, the side read from the segmentation and the plates renamed: exactly the
    labels, probabilities and biomarkers of segmenting it declared left."""
    scan = read_scan(_unnamed(tmp_path / "knee.nii.gz", left))
    assert scan.side is None and scan.side_source is None
    fake = TruthSegmenter(left)
    inferred = analyse_knee(scan, fake)
    assert fake.calls == ["R"]  # one pass, no second segmentation
    declared = analyse_knee(scan, fake, "L")
    np.testing.assert_array_equal(inferred.labels, left.labels)
    assert inferred.row["side"] == "L" and inferred.row["qc_side_source"] == "anatomy"
    assert declared.row["qc_side_source"] == "argument"
    assert {k: v for k, v in inferred.row.items() if k != "qc_side_source"} == pytest.approx(
        {k: v for k, v in declared.row.items() if k != "qc_side_source"}, nan_ok=True
    )
    assert not inferred.row["qc_laterality_mismatch"] and not inferred.row["qc_missing_compartment"]


def test_cli_says_the_side_came_from_the_anatomy(tmp_path, left, capsys, monkeypatch):
    monkeypatch.setattr(pipeline.MRISegmenter, "from_pretrained", classmethod(lambda cls, w=None: TruthSegmenter(left)))
    path = _unnamed(tmp_path / "knee.nii.gz", left)
    assert main(["mri", "segment", str(path), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("knee L (side from anatomy) knee.nii.gz: QC")
    row = pd.read_parquet(tmp_path / "o" / "mri_biomarkers.parquet").iloc[0]
    assert row["side"] == "L" and row["qc_side_source"] == "anatomy"
    qc = pd.read_csv(tmp_path / "o" / "qc_summary.csv")
    assert qc.loc[0, "qc_side_source"] == "anatomy"


def test_undecidable_anatomy_is_refused_naming_the_input(segmenter):
    """A volume with no knee in it: nothing to read the side from, so no side is guessed."""
    with pytest.raises(OAKitError, match="array: knee side not in the file name or header, and the anatomy cannot"):
        analyse_mri(np.zeros((16, 64, 64), np.float32), np.diag([2.0, 0.5, 0.5, 1.0]), segmenter=segmenter)


def test_side_argument_contradicting_the_file_name_is_refused(tmp_path, left, capsys):
    from oa_kit.synth.mri import write_knee_mri

    path, _ = write_knee_mri(tmp_path, "9000001", "L", 0, left)
    assert main(["mri", "segment", str(path), "--side", "R", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "side R given but the file name says L" in err


def test_batch_goes_on_past_a_bad_scan_and_exits_1(tmp_path, left, capsys):
    from oa_kit.synth.mri import write_knee_mri

    good, _ = write_knee_mri(tmp_path, "9000001", "L", 0, left)
    bad = tmp_path / "9000002_R_V00_DESS.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((64, 64), np.int16), np.eye(4)), str(bad))
    out = tmp_path / "o"
    assert main(["mri", "segment", str(bad), str(good), "--out", str(out), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].startswith(f"9000001 L {good.name}: QC")
    assert "1 input(s) failed" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{bad}: FAILED: ") and "3-D" in err[0]
    failures = pd.read_csv(out / "failures.csv")
    assert list(failures["source_file"]) == [str(bad)]
    assert len(pd.read_parquet(out / "mri_biomarkers.parquet")) == 1


def test_same_file_name_in_two_folders_keeps_both_maps(tmp_path, left):
    from oa_kit.synth.mri import write_knee_mri

    paths = [write_knee_mri(tmp_path / site, "9000001", "L", 0, left)[0] for site in ("site_a", "site_b")]
    table = pipeline.segment_scans(paths, tmp_path / "o", progress=False)
    assert list(table["source_file"]) == [str(p) for p in paths]
    labels = sorted((tmp_path / "o" / "labels").iterdir())
    thickness = sorted((tmp_path / "o" / "thickness").iterdir())
    assert len(labels) == len(thickness) == 2 and labels[0].name != labels[1].name
    assert all(p.name.startswith("9000001_L_V00_DESS-") for p in labels)
