"""Resumable cohort generation: an interrupted ``resume=True`` run continues to byte-identical files."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pandas as pd
import pytest

from oa_kit.cli import main
from oa_kit.errors import OAKitError
from oa_kit.synth import generate, mri
from oa_kit.synth.generate import generate_cohort, partial_folder, read_manifest

N = 3  # participants; every one of them (seed 0) has both knees imaged: 1 DICOM + 2 MRI renders each


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run (the classic, non-resumable path) of the parameters every test resumes."""
    return generate_cohort(
        "tiny", tmp_path_factory.mktemp("reference") / "cohort", seed=0, progress=False, n_participants=N
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _interrupt(monkeypatch, out: Path, crash_at: int) -> Path:
    """Start a resumable run whose ``crash_at``-th MRI render raises (that participant's DICOM is already written)."""
    real, calls = mri.render_knee_mri, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise RuntimeError("session time limit")
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(mri, "render_knee_mri", flaky)
        with pytest.raises(RuntimeError, match="session time limit"):
            generate_cohort("tiny", out, seed=0, progress=False, n_participants=N, resume=True)
    assert not out.exists()
    return partial_folder(out)


def _record_renders(monkeypatch) -> list[tuple[str, Path]]:
    """Log (participant, folder) of every participant rendered from now on (n_jobs=1 only)."""
    log, real = [], generate._render_participant

    def logged(task):
        log.append((task.participant_id, task.folder))
        return real(task)

    monkeypatch.setattr(generate, "_render_participant", logged)
    return log


def test_interrupted_run_resumes_to_the_same_bytes(tmp_path, monkeypatch, capsys, reference):
    out = tmp_path / "cohort"
    partial = _interrupt(monkeypatch, out, crash_at=4)  # participant 1 complete, participant 2 half-written
    ids = pd.read_csv(reference / "OAI" / "enrollees.txt", sep="|", dtype=str)["ID"].tolist()
    assert [p.stem for p in (partial / "done").glob("*.json")] == ids[:1]
    assert (partial / "cohort" / "xray" / f"{ids[1]}_V00_PA.dcm").exists()
    log = _record_renders(monkeypatch)
    argv = ["synth", "--preset", "tiny", "--n-participants", str(N), "--seed", "0", "--out", str(out), "--resume"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert str(out.resolve()) in captured.out
    assert " 1/3 " in captured.err and " 0/3 " not in captured.err  # the kept participant shows as done
    assert [pid for pid, folder in log if folder == partial / "cohort"] == ids[1:]
    assert [pid for pid, folder in log if folder != partial / "cohort"] == ids[:1]  # the renderer check
    assert not partial.exists()
    assert _files(out) == _files(reference)
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "truth" / "knees.parquet"), pd.read_parquet(reference / "truth" / "knees.parquet")
    )


def test_corrupt_and_half_written_participants_are_redone(tmp_path, monkeypatch, reference):
    out = tmp_path / "cohort"
    partial = _interrupt(monkeypatch, out, crash_at=5)  # participants 1-2 complete, participant 3's DICOM written
    ids = sorted(p.stem for p in (partial / "done").glob("*.json"))
    assert len(ids) == 2
    dess = partial / "cohort" / "mri" / f"{ids[0]}_R_V00_DESS.nii.gz"
    data = bytearray(dess.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes
    dess.write_bytes(bytes(data))
    record = partial / "done" / f"{ids[1]}.json"
    record.write_text(record.read_text()[:40])  # a record cut short
    (partial / "cohort" / "xray" / f".{ids[1]}_V00_PA.dcm.x1y2.part").write_bytes(b"left by a killed writer")
    log = _record_renders(monkeypatch)
    generate_cohort("tiny", out, seed=0, progress=False, n_participants=N, resume=True)
    assert len(log) == N and all(folder == partial / "cohort" for _, folder in log)
    assert _files(out) == _files(reference)


def test_resume_refuses_other_parameters_and_changed_renderers(tmp_path, monkeypatch):
    out = tmp_path / "cohort"
    partial = _interrupt(monkeypatch, out, crash_at=3)  # participant 1 complete
    for change, field in [
        ({"seed": 1}, "seed"),
        ({"n_participants": 4}, "n_participants"),
        ({"preset": "demo"}, "preset"),
        ({"images": False}, "images"),
    ]:
        kwargs = {"preset": "tiny", "seed": 0, "n_participants": N, **change}
        with pytest.raises(OAKitError, match=f"resume.json: {field} is .* but this run asks for") as info:
            generate_cohort(out=out, progress=False, resume=True, **kwargs)
        assert "\n" not in str(info.value)
    with monkeypatch.context() as patch:
        patch.setattr(generate, "_sub_seed", lambda seed, index, tag: 1000 + 3 * index + tag)
        with pytest.raises(OAKitError, match="re-rendered differently"):
            generate_cohort("tiny", out, seed=0, progress=False, n_participants=N, resume=True)
    assert len(list((partial / "done").glob("*.json"))) == 1 and not (partial / "check").exists()
    with open(partial / ".lock", "a") as handle:  # a second run on the same staging folder
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(OAKitError, match="another generate_cohort run"):
            generate_cohort("tiny", out, seed=0, progress=False, n_participants=N, resume=True)
        fcntl.flock(handle, fcntl.LOCK_UN)


def test_resume_false_with_a_staging_folder_needs_overwrite(tmp_path, monkeypatch):
    out = tmp_path / "cohort"
    with monkeypatch.context() as patch:
        patch.setattr(generate, "_write_truth", lambda *args: (_ for _ in ()).throw(RuntimeError("killed")))
        with pytest.raises(RuntimeError, match="killed"):
            generate_cohort("tiny", out, seed=0, images=False, progress=False, resume=True)
    partial = partial_folder(out)
    assert (partial / "resume.json").is_file() and (partial / "cohort" / "OAI" / "enrollees.txt").is_file()
    with pytest.raises(OAKitError, match=r"resume=True \(--resume\)") as info:
        generate_cohort("tiny", out, seed=0, images=False, progress=False)
    assert "\n" not in str(info.value) and partial.exists() and not out.exists()
    generate_cohort("tiny", out, seed=5, images=False, progress=False, overwrite=True)
    assert read_manifest(out)["seed"] == 5 and not partial.exists()


def test_resume_keeps_a_complete_cohort_and_respects_overwrite(tmp_path):
    out = generate_cohort("tiny", tmp_path / "cohort", seed=0, images=False, progress=False, resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert generate_cohort("tiny", out, seed=0, images=False, progress=False, resume=True) == out
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    with pytest.raises(OAKitError, match="not empty"):
        generate_cohort("tiny", out, seed=1, images=False, progress=False, resume=True)
    generate_cohort("tiny", out, seed=1, images=False, progress=False, resume=True, overwrite=True)
    assert read_manifest(out)["seed"] == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]


def test_a_run_stopped_right_after_its_rename_is_complete(tmp_path, monkeypatch):
    out, real = tmp_path / "cohort", generate.replace_dir

    def publish_then_stop(*args):
        real(*args)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(generate, "replace_dir", publish_then_stop)
        with pytest.raises(KeyboardInterrupt):
            generate_cohort("tiny", out, seed=0, images=False, progress=False, resume=True)
    assert read_manifest(out)["seed"] == 0 and (partial_folder(out) / "resume.json").exists()
    generate_cohort("tiny", out, seed=0, images=False, progress=False, resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]
