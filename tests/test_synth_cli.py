"""``oa-kit synth``: prints where the cohort is and what is in it; bad arguments give one error line and exit 2."""

from __future__ import annotations

import pytest

from oa_kit.cli import main
from oa_kit.synth import read_manifest


def test_synth_writes_cohort_and_prints_summary(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["synth", "--preset", "tiny", "--out", str(out), "--seed", "3", "--no-images", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert str(out.resolve()) in text and "synthetic" in text
    assert "kxr_sq_bu00" in text and "baseline KL" in text and "KL4" in text
    manifest = read_manifest(out)
    assert manifest["seed"] == 3 and manifest["n_participants"] == 8 and not manifest["images"]


def test_n_participants_override(tmp_path, capsys):
    out = tmp_path / "c"
    assert (
        main(["synth", "--preset", "demo", "--n-participants", "12", "--out", str(out), "--no-images", "--quiet"]) == 0
    )
    assert read_manifest(out)["n_participants"] == 12
    assert "12 participants, 24 knees" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--preset", "enormous"], "unknown preset 'enormous'"),
        (["--preset", "tiny", "--n-participants", "0"], "n_participants"),
        (["--preset", "tiny", "--n-participants", "-5"], "n_participants"),
        (["--preset", "tiny", "--n-participants", "many"], "--n-participants"),
        (["--preset", "tiny", "--seed", "x"], "--seed"),
        (["--preset", "tiny", "--seed", "-1"], "--seed"),
        (["--preset", "tiny", "--jobs", "0"], "--jobs"),
    ],
)
def test_bad_arguments_one_line_exit_2(tmp_path, capsys, extra, message):
    out = tmp_path / "o"
    assert main(["synth", "--out", str(out), "--no-images", "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("oa-kit synth: error:") and message in err and "\n" not in err
    assert not out.exists()


def test_existing_output_and_unwritable_folder(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["synth", "--preset", "tiny", "--out", str(out), "--no-images", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not empty" in err and "--overwrite" in err and "\n" not in err
    assert (out / "notes.txt").read_text() == "mine"
    assert main(["synth", "--preset", "tiny", "--out", str(out), "--no-images", "--quiet", "--overwrite"]) == 0
    assert not (out / "notes.txt").exists()
    capsys.readouterr()
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main(["synth", "--preset", "tiny", "--out", str(blocker / "sub"), "--no-images", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("oa-kit synth: error:") and "writable" in err and "\n" not in err
