"""Shipped KL weights: offline load, checksum errors, QWK against the model card, Grad-CAM, QA flags, CLI on PNG and DICOM."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import cohen_kappa_score

from oa_kit.api import grade_knees
from oa_kit.errors import OAKitError
from oa_kit.explain.gradcam import grader_gradcam
from oa_kit.models.kl.predict import SHIPPED_WEIGHTS, KLGrader

CARD = SHIPPED_WEIGHTS.with_name("kl_model_card.md")


@pytest.fixture(scope="module")
def grader() -> KLGrader:
    import torch

    torch.set_num_threads(1)
    return KLGrader.from_pretrained()


def test_checksum_mismatch_and_missing_files(tmp_path, tampered_copy):
    copy = tampered_copy(SHIPPED_WEIGHTS, tmp_path)
    with pytest.raises(OAKitError, match=r"kl_weights\.safetensors: sha256"):
        KLGrader.from_pretrained(copy)
    with pytest.raises(OAKitError, match="missing"):
        KLGrader.from_pretrained(tmp_path / "absent.safetensors")
    copy.with_suffix(".json").unlink()
    with pytest.raises(OAKitError, match=r"kl_weights\.json"):
        KLGrader.from_pretrained(copy)


def test_qwk_on_fixed_val_subset_matches_card(grader, chen_dir):
    from oa_kit.io.chen import read_chen
    from oa_kit.models.kl.data import chen_input

    info = json.loads(SHIPPED_WEIGHTS.with_suffix(".json").read_text())["check_subset"]
    frame = read_chen(chen_dir, splits=("val",)).iloc[:: info["every"]]
    x = np.stack([chen_input(r.path, r.side) for r in frame.itertuples()])
    qwk = cohen_kappa_score(frame["kl"], grader.predict(x), weights="quadratic", labels=range(5))
    card = CARD.read_text()
    subset_qwk = float(re.search(r"Check subset .*?QWK ([0-9]+\.[0-9]+)", card, re.S).group(1))
    low, high = map(
        float,
        re.search(r"\| Quadratic weighted kappa \| [0-9.]+ \| ([0-9]+\.[0-9]+) – ([0-9]+\.[0-9]+) \|", card).groups(),
    )
    assert len(frame) == info["n"]
    assert qwk == pytest.approx(subset_qwk, abs=0.01)  # the card's number is reproduced from the shipped file
    assert low - 0.05 <= qwk <= high + 0.05  # and the subset agrees with the full-val CI


def test_fused_path_matches_plain_module(grader, chen_dir):
    """The fast inference path (BatchNorm folded, channels-last) predicts what the trained module predicts on real knees."""
    from oa_kit.io.chen import read_chen
    from oa_kit.models.kl.data import chen_input

    rows = read_chen(chen_dir, splits=("val",)).groupby("kl").head(1)
    x = np.stack([chen_input(r.path, r.side) for r in rows.itertuples()])
    plain = KLGrader.from_pretrained(fuse=False)
    assert grader.inference_model_ is not grader.model_ and plain.inference_model_ is plain.model_
    proba, embeddings = grader.predict_proba_and_embed(x)
    assert np.abs(proba - plain.predict_proba(x)).max() < 1e-4
    assert np.abs(embeddings - plain.embed(x)).max() < 1e-3
    assert np.array_equal(proba, grader.predict_proba(x)) and np.array_equal(embeddings, grader.embed(x))
    assert np.abs(grader_gradcam(grader, x[3:]) - grader_gradcam(plain, x[3:])).max() < 1e-3


def test_outputs_gradcam_and_qa(grader, chen_dir):
    from oa_kit.io.chen import read_chen
    from oa_kit.models.kl.data import chen_input

    rows = read_chen(chen_dir, splits=("val",)).groupby("kl").head(1)
    x = np.stack([chen_input(r.path, r.side) for r in rows.itertuples()])
    proba = grader.predict_proba(x)
    assert proba.shape == (5, 5) and np.allclose(proba.sum(1), 1, atol=1e-5)
    sets = grader.predict_sets(x)
    assert sets[np.arange(5), proba.argmax(1)].all()
    assert grader.embed(x).shape == (5, 256)
    cam = grader_gradcam(grader, x[:2])
    assert cam.shape == (2, 160, 160) and cam.min() >= 0 and cam.max() <= 1 and cam.max() > 0
    blank = np.zeros((1, 1, 160, 160), np.float32)
    assert "blank_image" in grader.qa_flags(blank)[0]
    rng = np.random.default_rng(0)
    from oa_kit.imaging.preprocess import kl_input

    not_knees = np.stack([kl_input(rng.random((224, 224))), kl_input(np.tile(np.linspace(0, 1, 224), (224, 1)))])
    assert all("out_of_distribution" in flags for flags in grader.qa_flags(not_knees))
    with pytest.raises(OAKitError, match="expected preprocessed inputs"):
        grader.predict_proba(np.zeros((2, 1, 64, 64), np.float32))


def test_cli_predict_png_and_blank(tmp_path, chen_dir):
    from oa_kit.cli import main

    src = next((chen_dir / "val" / "3").glob("*L.png"))
    png = tmp_path / src.name
    shutil.copy(src, png)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((224, 224), 128, np.uint8)).save(blank)
    out = tmp_path / "pred.csv"
    assert main(["kl", "predict", str(png), str(blank), "--out", str(out)]) == 0
    table = pd.read_csv(out, keep_default_na=False, dtype={"participant_id": str})
    assert list(table.columns[:3]) == ["participant_id", "side", "source"]
    knee, flat = table.iloc[0], table.iloc[1]
    assert knee["participant_id"] == src.name[:-5] and knee["side"] == "L" and knee["kl_grade"] != ""
    assert sum(knee[f"kl_p{k}"] for k in range(5)) == pytest.approx(1, abs=1e-4)
    assert str(knee["kl_grade"]) in knee["kl_grade_set"].split(",")
    assert table.filter(like="kl_emb_").shape == (2, 256)
    assert "blank_image" in flat["kl_qa_flags"] and "unknown_side" in flat["kl_qa_flags"] and flat["kl_grade"] == ""
    assert main(["kl", "predict", str(tmp_path / "nothing.png"), "--out", str(out)]) == 2


def test_cli_tta_must_be_positive(tmp_path, capsys):
    from oa_kit.cli import main

    png = tmp_path / "knee.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(png)
    assert main(["kl", "predict", str(png), "--tta", "0", "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--tta: 0" in err and "expected" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "p.csv").exists()


def test_cli_predict_bilateral_dicom(tmp_path):
    from oa_kit.cli import main
    from oa_kit.synth.radiograph import SITE_PROFILES, anatomy_from_grades, render_bilateral_pa, write_radiograph_dicom

    site = SITE_PROFILES["A"]
    rendered = render_bilateral_pa(
        anatomy_from_grades("R", 2, 3.0, 5.5, seed=1), anatomy_from_grades("L", 0, 5.0, 6.0, seed=2), site, seed=3
    )
    dicom = tmp_path / "P1_V00_PA.dcm"
    write_radiograph_dicom(dicom, rendered, site, "P1", 0)
    out = tmp_path / "pred.parquet"
    assert main(["kl", "predict", str(dicom), "--out", str(out)]) == 0
    table = pd.read_parquet(out)
    assert list(table["side"]) == ["R", "L"] and (table["participant_id"] == "P1").all()
    assert np.allclose(table[[f"kl_p{k}" for k in range(5)]].sum(axis=1), 1, atol=1e-4)
    assert np.isfinite(table.filter(like="kl_emb_").to_numpy()).all()
    blank = table["kl_qa_flags"].str.contains("blank_image")
    assert (table["kl_grade"].isna() == blank).all()  # no grade exactly where the image is unusable


def test_cli_evaluate_small(tmp_path, chen_dir, capsys):
    from oa_kit.cli import main

    out = tmp_path / "metrics.csv"
    assert main(["kl", "evaluate", str(chen_dir), "--limit", "40", "--n-boot", "20", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert {"qwk", "accuracy", "coverage"} <= set(table["metric"]) and (table["n"] == 40).all()


def test_16bit_and_rgb_png_match_8bit(grader, chen_dir, tmp_path):
    src = next((chen_dir / "val" / "2").glob("*R.png"))
    gray = np.asarray(Image.open(src))
    Image.fromarray(gray).save(tmp_path / "a8.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "a16.png")
    Image.fromarray(np.repeat(gray[..., None], 3, axis=2)).save(tmp_path / "argb.png")
    Image.fromarray(np.stack([gray, gray // 2, gray], axis=2)).save(tmp_path / "colour.png")
    files = [tmp_path / "a8.png", tmp_path / "a16.png", tmp_path / "argb.png"]
    table = grade_knees(files, side="R", clahe="no", gradcam=False, grader=grader).to_frame()
    probs = table[[f"kl_p{k}" for k in range(5)]].to_numpy()
    assert np.allclose(probs[0], probs[1], atol=0.02) and np.allclose(probs[0], probs[2], atol=1e-6)
    with pytest.raises(OAKitError, match="colour"):
        grade_knees([tmp_path / "colour.png"], side="R", grader=grader)
