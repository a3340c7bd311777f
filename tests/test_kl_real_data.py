"""Bring your own data (#21), KL part: the OOD threshold against real Chen val knees and against images that are not
knees, grades for flagged knees, grade folders without a split level, and the out-of-fold KL table from the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage
from skimage import data

from oa_kit.api import KL_MODEL_COLUMN, grade_knees
from oa_kit.errors import OAKitError
from oa_kit.models.kl.predict import KL_TABLE_COLUMNS, SHIPPED_WEIGHTS, KLGrader, load_knees

INFO = json.loads(SHIPPED_WEIGHTS.with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def grader() -> KLGrader:
    import torch

    torch.set_num_threads(1)
    return KLGrader.from_pretrained()


def test_real_val_knees_false_flag_rate(chen_dir):
    """The shipped threshold is what `oa-kit kl calibrate` computes from val, and flags <= 0.5% of real val knees,
    both out of fold (as new knees) and in sample."""
    from oa_kit.models.kl.data import load_chen_arrays

    images, frame = load_chen_arrays(chen_dir, splits=("val",), progress=False)
    refit = KLGrader(weights=SHIPPED_WEIGHTS, ood_quantile=INFO["ood_quantile"]).fit(
        images, frame["kl"].to_numpy(), groups=frame["participant_id"].to_numpy(), seed=INFO["ood"]["seed"]
    )
    assert refit.ood_threshold_ == pytest.approx(INFO["ood_threshold"], rel=1e-3)
    assert len(images) == 826 and INFO["ood_quantile"] >= 0.995
    assert refit.ood_summary_["cross_fitted_flag_rate"] <= 0.005
    assert refit.ood_summary_["in_sample_flag_rate"] <= 0.005
    assert INFO["ood"]["cross_fitted_flag_rate"] <= 0.005 and INFO["ood"]["train_flag_rate"] <= 0.005
    card = SHIPPED_WEIGHTS.with_name("kl_model_card.md").read_text()
    assert f"OOD score > **{INFO['ood_threshold']:.4f}**" in card and "≤ 0.5%" in card


def _not_knees() -> dict[str, np.ndarray]:
    """8-bit images that are not knee radiographs: blank, noise, text, a photograph, hand- and chest-like drawings."""
    rng = np.random.default_rng(0)
    text = Image.new("L", (224, 224), 255)
    draw = ImageDraw.Draw(text)
    for i in range(12):
        draw.text((8, 8 + 17 * i), "The quick brown fox jumps over 123", fill=0)
    hand = Image.new("L", (224, 224), 20)
    draw = ImageDraw.Draw(hand)
    draw.rounded_rectangle((60, 120, 170, 215), 20, fill=170)
    for x, length in [(62, 80), (85, 100), (108, 105), (131, 95), (154, 70)]:
        draw.rounded_rectangle((x, 120 - length, x + 16, 125), 8, fill=200)
        for j in (1, 2):
            draw.line((x, 120 - j * length // 3, x + 16, 120 - j * length // 3), fill=120, width=2)
    draw.rounded_rectangle((20, 150, 62, 185), 10, fill=190)
    chest = Image.new("L", (224, 224), 30)
    draw = ImageDraw.Draw(chest)
    draw.ellipse((10, 10, 214, 230), fill=190)
    draw.ellipse((30, 40, 105, 200), fill=70)
    draw.ellipse((119, 40, 194, 200), fill=70)
    draw.rectangle((104, 10, 120, 224), fill=220)
    for y in range(50, 200, 18):
        draw.arc((25, y - 20, 110, y + 20), 200, 340, fill=150, width=4)
        draw.arc((114, y - 20, 199, y + 20), 200, 340, fill=150, width=4)

    def u8(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, np.float64)
        return np.clip(255 * (a - a.min()) / (a.max() - a.min()), 0, 255).astype(np.uint8)

    return {
        "blank": np.full((224, 224), 128, np.uint8),
        "uniform_noise": u8(rng.random((224, 224))),
        "gaussian_noise": u8(rng.normal(size=(224, 224))),
        "text": u8(np.asarray(text)),
        "scanned_text": data.text(),
        "photo": data.camera(),
        "hand_like": u8(ndimage.gaussian_filter(np.asarray(hand, float), 1.5) + rng.normal(0, 4, (224, 224))),
        "chest_like": u8(ndimage.gaussian_filter(np.asarray(chest, float), 2) + rng.normal(0, 4, (224, 224))),
    }


def test_blank_noise_and_non_knee_images_are_flagged(grader, tmp_path):
    images = _not_knees()
    files = []
    for name, image in images.items():
        files.append(tmp_path / f"{name}.png")
        Image.fromarray(image).save(files[-1])
    table = grade_knees(files, side="R", gradcam=False, grader=grader).to_frame().set_index(pd.Index(list(images)))
    flags = table["kl_qa_flags"].str.split(";")
    assert "blank_image" in flags["blank"] and pd.isna(table.loc["blank", "kl_grade"])
    others = table.drop(index="blank")
    assert all("out_of_distribution" in f for f in flags.drop(index="blank")), table["kl_qa_flags"].to_dict()
    # flagged knees keep probabilities and a grade (marked by the flag); only unusable images lose the grade
    assert others["kl_grade"].notna().all()
    assert np.allclose(others[[f"kl_p{k}" for k in range(5)]].sum(axis=1), 1, atol=1e-4)
    scores = grader.ood_score(
        np.stack([g for g in grade_knees(files[1:], side="R", gradcam=False, grader=grader).inputs])
    )
    assert (scores > 1.1 * grader.ood_threshold_).all()  # with a margin, not just over the line


def _grade_folders(root, n_participants: int = 20, seed: int = 0) -> None:
    """Synthetic grade folders 0/..4/ (no split level) with <ID><L|R>.png knees."""
    rng = np.random.default_rng(seed)
    for i in range(n_participants):
        for side in "LR":
            grade = int(rng.integers(0, 5))
            folder = root / str(grade)
            folder.mkdir(parents=True, exist_ok=True)
            image = ndimage.gaussian_filter(rng.normal(size=(96, 96)), 2) + np.linspace(0, 3 * grade, 96)[None]
            Image.fromarray((255 * (image - image.min()) / np.ptp(image)).astype(np.uint8)).save(
                folder / f"{9100000 + i}{side}.png"
            )


def test_grade_folders_load_with_labels(tmp_path):
    _grade_folders(tmp_path, n_participants=3)
    knees = load_knees(tmp_path, None, "auto")
    assert len(knees) == 6 and {k["side"] for k in knees} == {"L", "R"}
    for knee in knees:
        assert str(knee["kl_label"]) == knee["source"].split("/")[-2] and knee["input"].shape == (1, 160, 160)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OAKitError, match="expected images"):
        load_knees(empty, None, "auto")


def test_cli_predict_real_grade_folder(tmp_path, chen_dir):
    from oa_kit.cli import main
    from oa_kit.io.chen import read_chen

    rows = read_chen(chen_dir, splits=("val",)).groupby("kl").head(2)
    for row in rows.itertuples():
        (tmp_path / "knees" / str(row.kl)).mkdir(parents=True, exist_ok=True)
        shutil.copy(row.path, tmp_path / "knees" / str(row.kl))
    out = tmp_path / "pred.parquet"
    assert main(["kl", "predict", str(tmp_path / "knees"), "--out", str(out)]) == 0
    table = pd.read_parquet(out)
    assert len(table) == 10 and list(table.columns[: len(KL_TABLE_COLUMNS)]) == list(KL_TABLE_COLUMNS)
    assert table["kl_grade"].notna().all() and not table["kl_qa_flags"].str.contains("out_of_distribution").any()


def _predict(folder, out):
    from oa_kit.cli import main

    assert main(["kl", "predict", str(folder), "--out", str(out)]) == 0
    return out


def test_cli_out_of_fold_features(tmp_path, capsys):
    from oa_kit.cli import main

    _grade_folders(tmp_path / "knees")
    out = tmp_path / "oof.parquet"
    args = ["kl", "features", str(tmp_path / "knees"), "--out-of-fold", "--folds", "2", "--epochs", "1"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    table = pd.read_parquet(out)
    emb = [c for c in table.columns if c.startswith("kl_emb_")]
    assert list(table.columns) == [*KL_TABLE_COLUMNS, KL_MODEL_COLUMN, *emb] and len(emb) == 256 and len(table) == 40
    assert (table[KL_MODEL_COLUMN] == "out-of-fold").all()
    predicted = pd.read_parquet(_predict(tmp_path / "knees", tmp_path / "pred.parquet"))
    assert list(predicted.columns) == list(table.columns)  # the same table as `kl predict` writes
    assert np.allclose(table[[f"kl_p{k}" for k in range(5)]].sum(axis=1), 1, atol=1e-4)
    knees = load_knees(tmp_path / "knees", None, "auto")
    assert list(table["source"]) == [k["source"] for k in knees]  # same order as `kl predict` on the folder
    assert (tmp_path / "oof_folds" / "fold1" / "oof.parquet").exists()
    # a rerun resumes from the finished folds and writes the same table
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("done earlier") == 2
    pd.testing.assert_frame_equal(pd.read_parquet(out), table)
    # other settings in the same run folder, no --out-of-fold, a folder without grades: one-line errors
    assert main([*args, "--seed", "1", "--out", str(out)]) == 2
    assert "settings (seed)" in capsys.readouterr().err
    assert main(["kl", "features", str(tmp_path / "knees"), "--out", str(out)]) == 2
    assert "--out-of-fold" in capsys.readouterr().err
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(next((tmp_path / "knees").rglob("*.png")), plain)
    assert main(["kl", "features", str(plain), "--out-of-fold", "--out", str(tmp_path / "x.parquet")]) == 2
    assert "no KL grade" in capsys.readouterr().err
