"""``oa-kit mri train`` on synthetic phantoms and on a cohort folder: checkpoints every epoch, resume, export, reload."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from oa_kit.cli import main
from oa_kit.io.labels import SUBREGIONS
from oa_kit.models.mri.inference import MRISegmenter
from oa_kit.models.mri.train import split_by_group


def test_train_resume_export(tmp_path):
    run = tmp_path / "run"
    common = ["mri", "train", "--synthetic", "3", "--out", str(run), "--steps-per-epoch", "2", "--batch-size", "2",
              "--channels", "4", "8", "--max-val", "1", "--no-progress"]
    assert main([*common, "--epochs", "1"]) == 0
    assert json.loads((run / "checkpoint.json").read_text())["epoch"] == 1
    assert main([*common, "--epochs", "2", "--resume"]) == 0
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    split = json.loads((run / "split.json").read_text())
    groups = {k: {c.rsplit("_", 1)[0] for c in v} for k, v in split.items()}
    assert not (groups["train"] & groups["test"]) and not (groups["train"] & groups["val"])
    assert (run / "test_metrics.csv").exists()
    out = tmp_path / "w.safetensors"
    assert main(["mri", "export", str(run), "--out", str(out), "--training-data", "synthetic test"]) == 0
    model = MRISegmenter.from_pretrained(out)
    assert model.channels == (4, 8) and model.embed_dim == 8


def test_discover_synthetic_cohort_layout(tmp_path):
    from oa_kit.models.mri.datasets import discover_cases
    from oa_kit.synth.mri import DEFAULT_GEOMETRY, SITE_MRI, render_knee_mri, write_knee_mri

    r = render_knee_mri("L", {s: 2.0 for s in SUBREGIONS}, DEFAULT_GEOMETRY, SITE_MRI["A"], seed=1)
    write_knee_mri(tmp_path / "cohort" / "mri", "9001", "L", 0, r)
    (case,) = discover_cases([tmp_path / "cohort"])
    assert (case.case_id, case.side, case.group) == ("9001_L_V00", "L", "9001")
    assert np.array_equal(case.labels, r.labels) and np.allclose(case.affine, r.affine)


def test_split_by_group_keeps_participants_together():
    cases = [type("C", (), {"group": f"P{i // 2}", "case_id": f"P{i // 2}_{'RL'[i % 2]}"})() for i in range(40)]
    train, val, test = split_by_group(cases, seed=3)
    sets = [{c.group for c in part} for part in (train, val, test)]
    assert sum(len(s) for s in sets) == 20 and not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
