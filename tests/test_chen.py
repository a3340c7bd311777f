"""Chen 2018 layout reader: real manifest, layout without manifest, bad names."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from oa_kit.errors import OAKitError
from oa_kit.io.chen import is_chen_layout, read_chen


def test_real_manifest_counts(chen_dir):
    frame = read_chen(chen_dir)
    assert list(frame.columns) == ["path", "participant_id", "side", "kl", "split"]
    counts = frame.groupby("split").size().to_dict()
    assert counts == {"train": 5778, "val": 826}
    assert frame.query("split == 'val'")["kl"].value_counts().sort_index().tolist() == [328, 153, 212, 106, 27]
    # both knees of every participant, never split across train/val
    assert frame.groupby("participant_id")["split"].nunique().max() == 1
    assert set(frame["side"]) == {"L", "R"}


def test_layout_without_manifest(tmp_path):
    for split, grade, name in [("train", 0, "9000001L"), ("train", 3, "9000001R"), ("val", 4, "9000002R")]:
        folder = tmp_path / split / str(grade)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(folder / f"{name}.png")
    assert is_chen_layout(tmp_path)
    frame = read_chen(tmp_path)
    assert frame[["participant_id", "side", "kl", "split"]].values.tolist() == [
        ["9000001", "L", 0, "train"],
        ["9000001", "R", 3, "train"],
        ["9000002", "R", 4, "val"],
    ]
    assert len(read_chen(tmp_path, splits=("val",))) == 1


def test_bad_inputs(tmp_path):
    with pytest.raises(OAKitError, match="not a folder"):
        read_chen(tmp_path / "missing")
    folder = tmp_path / "train" / "1"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(folder / "knee.png")
    with pytest.raises(OAKitError, match="knee.png"):
        read_chen(tmp_path)
    (tmp_path / "manifest.csv").write_text("split,kl_grade,path,oai_id,side\ntrain,7,train/1/knee.png,1,L\n")
    with pytest.raises(OAKitError, match="kl_grade"):
        read_chen(tmp_path)
    assert not is_chen_layout(tmp_path / "train" / "1" / "knee.png")


def test_grade_folders_without_split(tmp_path):
    """Grade folders 0/..4/ directly (no train|val|test level): each image's KL from its folder."""
    for grade, name in [(0, "9000001L.png"), (2, "9000001R.png"), (4, "knee_a.jpg")]:
        folder = tmp_path / str(grade)
        folder.mkdir(exist_ok=True)
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(folder / name)
    assert is_chen_layout(tmp_path)
    frame = read_chen(tmp_path)
    assert frame[["participant_id", "side", "kl", "split"]].values.tolist() == [
        ["9000001", "L", 0, ""],
        ["9000001", "R", 2, ""],
        ["knee_a", "", 4, ""],
    ]
    (tmp_path / "other").mkdir()  # a folder that is not a grade: not this layout
    assert not is_chen_layout(tmp_path)
    assert not is_chen_layout(tmp_path / "0")
