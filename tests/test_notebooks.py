"""The notebook series (notebooks/): sources paired with stored notebooks, a parameters cell and stored outputs in
every notebook, exercise versions up to date, and the workshop helpers and checkers (oa_kit.workshop)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

from oa_kit import workshop
from oa_kit.api import KneeGrades, ProgressionReport, open_cohort
from oa_kit.errors import OAKitError
from oa_kit.synth import generate_cohort
from oa_kit.synth.presets import get_preset

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted((NOTEBOOKS / "src").glob("*.py"))


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_series_is_complete():
    assert [s.stem[:2] for s in SOURCES] == [f"{i:02d}" for i in range(1, len(SOURCES) + 1)]
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == {s.stem for s in SOURCES}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_has_parameters_cell_and_stored_outputs(source):
    nb = nbformat.read(NOTEBOOKS / f"{source.stem}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), "the first code cell must be tagged parameters"
    assert "workshop.notebook_mode()" in code[0].source
    assert sum(bool(c.outputs) for c in code) >= len(code) // 2, "run `make notebooks` to store outputs"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert any("assert " in c.source for c in code), "key results need an assert cell"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_stored_notebook_matches_its_source(source):
    stored = nbformat.read(NOTEBOOKS / f"{source.stem}.ipynb", as_version=4)
    expected = jupytext.read(source)
    assert [c.source for c in stored.cells] == [c.source for c in expected.cells], "run `make notebooks`"


def test_exercises_are_up_to_date():
    make_exercises = _script("make_exercises")
    assert make_exercises.stale() == [], "run `make exercises`"


def test_exercise_strips_solution_cells(tmp_path):
    make_exercises = _script("make_exercises")
    source = tmp_path / "99_x.py"
    source.write_text(
        '# %%\nx = 1\n\n# %% tags=["solution"]\nanswer = 42\n\n# %% tags=["solution"]\nprint(answer)\n\n# %%\nprint(x)\n'
    )
    nb = jupytext.reads(make_exercises.exercise_text(source), fmt="py:percent")
    assert [c.source for c in nb.cells] == ["x = 1", make_exercises.PLACEHOLDER, "print(x)"]
    assert all(not c.outputs for c in nb.cells)


def test_notebook_mode(monkeypatch):
    monkeypatch.setenv(workshop.MODE_VARIABLE, "smoke")
    assert workshop.notebook_mode() == "smoke"
    monkeypatch.delenv(workshop.MODE_VARIABLE)
    assert workshop.notebook_mode() == "full"
    monkeypatch.setenv(workshop.MODE_VARIABLE, "fast")
    with pytest.raises(OAKitError, match="smoke"):
        workshop.notebook_mode()


def test_workshop_preset():
    assert get_preset("workshop").n_participants == workshop.SETTINGS["smoke"]["n_participants"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = generate_cohort("workshop", tmp_path_factory.mktemp("c") / "c", 0, images=False, progress=False)
    return open_cohort(folder)


def test_summaries(cohort):
    transitions = workshop.kl_transitions(cohort.tables.readings, 0, 24)
    assert transitions.to_numpy().trace() > transitions.to_numpy().sum() / 2  # most knees keep their grade
    rates = workshop.progression_rates(cohort.labels.labels)
    assert rates.loc[24, 0.0] < rates.loc[24, 2.0] and rates.loc[24].le(1).all()
    reasons = workshop.exclusion_reasons(cohort)
    assert "baseline_kl4" in reasons.index and reasons["reason"].str.len().gt(0).all()
    missing = workshop.missingness(pd.DataFrame({"a": [1, None], "b": [1, 2], "c": [None, None]}))
    assert missing.to_dict() == {"c": 1.0, "a": 0.5}
    trajectory = workshop.kl_trajectory(cohort, cohort.features()["participant_id"].iloc[0])
    assert 0 in trajectory.index and set(trajectory.columns) <= {"R", "L"}


def test_split_keeps_participants_apart(cohort):
    split = workshop.split_participants(cohort.features(), cohort.labels.labels, 0.3)
    assert not set(split.train["participant_id"]) & set(split.test["participant_id"])
    assert set(split.test_labels["participant_id"]) <= set(split.test["participant_id"])
    assert 0.2 < len(split.test) / (len(split.train) + len(split.test)) < 0.4
    test = workshop.with_labels(split.test, split.test_labels, 24)
    assert test["label"].isin([0, 1]).all() and len(test) < len(split.test)


def test_learning_curve(cohort):
    curve = workshop.learning_curve(cohort.features(), cohort.labels.labels, 24, (60, 400))
    assert curve["n_participants"].tolist() == [60, 400]
    assert curve["auc"].between(0.5, 1).all() and curve["auc"].iloc[1] > curve["auc"].iloc[0] - 0.05


def test_leakage_checker(cohort):
    leaky = workshop.leaky_features(cohort, 24)
    assert workshop.LEAKY_COLUMN in leaky and leaky[workshop.LEAKY_COLUMN].notna().mean() > 0.5
    assert workshop.check("leakage", workshop.LEAKY_COLUMN)
    assert not workshop.check("leakage", "kl")
    assert not workshop.check("leakage", ["kl", workshop.LEAKY_COLUMN])


def test_clinical_gap_checker():
    report = ProgressionReport(None, pd.DataFrame({"model": ["clinical", "clinical_kl"], "auc": [0.62, 0.71]}))
    assert workshop.check("clinical_gap", 0.09, report=report)
    assert not workshop.check("clinical_gap", -0.09, report=report)


def test_calibration_checker():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.5, 4000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    overconfident = np.clip(p * 1.8, 0, 1)
    assert workshop.check("calibrate", p, y=y, uncalibrated=overconfident)
    assert not workshop.check("calibrate", overconfident, y=y, uncalibrated=p)
    assert not workshop.check("calibrate", p[:10], y=y, uncalibrated=overconfident)


def test_kl1_checker(cohort):
    labels = cohort.labels.labels
    rates = workshop.progression_rates(labels).loc[24]
    right = 0 if abs(rates[1] - rates[0]) < abs(rates[1] - rates[2]) else 2
    assert workshop.check("kl1", right, labels=labels)
    assert not workshop.check("kl1", 2 - right, labels=labels)
    with pytest.raises(OAKitError, match="unknown"):
        workshop.check("nope", 1)


def test_chen_sample_takes_first_files_per_grade(tmp_path):
    for grade in range(5):
        (tmp_path / str(grade)).mkdir()
        for name in ("b.png", "a.png", "c.png"):
            (tmp_path / str(grade) / name).write_bytes(b"")
    sample = workshop.chen_sample(tmp_path, 2)
    assert (
        sample.groupby("kl_true")["path"].apply(lambda p: [Path(x).name for x in p]).tolist()
        == [["a.png", "b.png"]] * 5
    )


def test_kl_sample_metrics_and_confusion():
    table = pd.DataFrame(np.eye(5)[[0, 1, 2, 3, 4, 1]], columns=[f"kl_p{g}" for g in range(5)])
    table["kl_grade_set"] = ["0", "1", "2", "3", "4", "1,2"]
    truth = [0, 1, 2, 3, 4, 2]
    metrics = workshop.kl_sample_metrics(table, truth)
    assert metrics["accuracy"] == round(5 / 6, 3) and metrics["coverage"] == 1.0
    confusion = workshop.kl_confusion(table, truth)
    assert confusion.loc[2, 1] == 1 and confusion.to_numpy().sum() == 6


def test_radiograph_figure_is_small_and_shows_both_rois(tmp_path):
    folder = generate_cohort("tiny", tmp_path / "c", 0, images=True, progress=False, n_participants=1)
    fig = workshop.radiograph_figure(next((folder / "xray").glob("*.dcm")), max_pixels=200)
    assert max(np.shape(fig.data[0].z)) <= 200
    assert sorted(a.text for a in fig.layout.annotations) == ["ROI L", "ROI R"]
    assert fig.layout.yaxis.scaleanchor == "x"


def test_reason_table_lists_every_reason_in_order():
    table = workshop.reason_table()
    assert table["order"].is_monotonic_increasing and "baseline_kl4" in table.index
    assert table["meaning"].str.len().gt(10).all()


def test_kl_per_grade_calibration_and_gallery():
    table = pd.DataFrame(np.eye(5)[[0, 1, 2, 3, 4, 1]] * 0.9 + 0.02, columns=[f"kl_p{g}" for g in range(5)])
    table["kl_grade_set"] = ["0", "1", "2", "3", "4", "1,2"]
    truth = [0, 1, 2, 3, 4, 2]
    per_grade = workshop.kl_per_grade(table, truth)
    assert per_grade.loc[2, "accuracy"] == 0.5 and per_grade.loc[2, "set_size"] == 1.5
    assert per_grade.loc[2, "coverage"] == 1.0 and per_grade["knees"].sum() == 6
    reliability = workshop.kl_calibration(table, truth, n_bins=2)
    assert len(reliability) == 2
    grades = KneeGrades(table, np.zeros((6, 1, 8, 8), np.float32), np.ones((6, 8, 8), np.float32))
    fig = workshop.gradcam_gallery(grades, [0, 5], ["a", "b"])
    assert len(fig.data) == 4 and fig.layout.yaxis2.scaleanchor == "x2"


def test_chen_folder_follows_the_environment(tmp_path, monkeypatch):
    for grade in range(5):
        (tmp_path / str(grade)).mkdir()
    monkeypatch.setenv(workshop.CHEN_VARIABLE, str(tmp_path))
    assert workshop.chen_folder() == tmp_path
    monkeypatch.setenv(workshop.CHEN_VARIABLE, str(tmp_path / "absent"))
    assert workshop.chen_folder() is None


def test_real_radiograph_notebook_skips_cleanly_without_chen(monkeypatch):
    monkeypatch.setenv(workshop.CHEN_VARIABLE, str(ROOT / "no-such-folder"))
    nb = jupytext.read(NOTEBOOKS / "src" / "03_real_radiographs.py")
    NotebookClient(nb, timeout=300, kernel_name="python3").execute(cwd=str(NOTEBOOKS))
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "skipping this notebook" in printed
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


def test_no_real_radiograph_is_stored_in_a_notebook():
    """Cells showing pixels of real radiographs (tag ``real-images``) run, but their outputs are never stored, so no
    image of ../shared lands in the repository; nor does any other large figure of notebook 03."""
    import json

    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if "real-images" in cell.get("metadata", {}).get("tags", []):
                assert cell.get("outputs") == [], path.name
    assert (NOTEBOOKS / "03_real_radiographs.ipynb").stat().st_size < 200_000
