"""``oa-kit mri train`` on synthetic phantoms and on a cohort folder: checkpoints every epoch, resume, export, reload."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from oa_kit.cli import main
from oa_kit.io.labels import SUBREGIONS
from oa_kit.models.mri.inference import MRISegmenter
from oa_kit.models.mri.train import ContactWeightedDiceCE, cartilage_contacts, split_by_group


def test_train_resume_export(tmp_path):
    run = tmp_path / "run"
    common = [
        "mri",
        "train",
        "--synthetic",
        "3",
        "--out",
        str(run),
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "2",
        "--channels",
        "4",
        "8",
        "--max-val",
        "1",
        "--no-progress",
    ]
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


def test_contact_weighted_loss_is_dicece_at_zero_and_targets_touching_plates():
    from monai.losses import DiceCELoss

    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(2, 8, 12, 12, generator=g), torch.randint(0, 8, (2, 1, 12, 12), generator=g)
    plain = DiceCELoss(to_onehot_y=True, softmax=True)(logits, targets)
    assert float(ContactWeightedDiceCE(0.0)(logits, targets)) == pytest.approx(float(plain), rel=1e-6)
    stack = torch.zeros(1, 1, 8, 5, dtype=torch.long)
    stack[0, 0, 1:3], stack[0, 0, 3:6], stack[0, 0, 6] = 2, 4, 1  # femoral over tibial cartilage over bone
    contact = cartilage_contacts(stack)[0, 0]
    assert contact[2].eq(1).all() and contact[3].eq(1).all()  # the two rows where the plates touch
    assert contact.sum() == 10  # and nowhere else (bone is not cartilage)
    # an error on the contact rows costs more when they are weighted
    wrong = torch.nn.functional.one_hot(stack[:, 0], 8).permute(0, 3, 1, 2).float() * 8.0
    wrong[0, :, 3] = wrong[0, :, 2]  # first tibial row predicted femoral
    assert float(ContactWeightedDiceCE(8.0)(wrong, stack)) > float(ContactWeightedDiceCE(0.0)(wrong, stack))


def test_fine_tune_from_weights_with_more_training_participants(tmp_path):
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    common = [
        "mri",
        "train",
        "--synthetic",
        "3",
        "--steps-per-epoch",
        "1",
        "--batch-size",
        "2",
        "--channels",
        "4",
        "8",
        "--max-val",
        "1",
        "--epochs",
        "1",
        "--no-progress",
    ]
    assert main([*common, "--out", str(base)]) == 0
    start = base / "mri_segmenter.safetensors"
    assert (
        main(
            [
                *common,
                "--out",
                str(tuned),
                "--init-weights",
                str(start),
                "--more-synthetic",
                "1",
                "--more-geometry",
                "oai-dess",
                "--contact-weight",
                "4",
            ]
        )
        == 0
    )
    split = json.loads((tuned / "split.json").read_text())
    assert any(c.startswith("SYN001") for c in split["train"])  # the extra participants: training only, new ids
    assert not any(c.startswith("SYN001") for c in split["val"] + split["test"])
    meta = json.loads((tuned / "mri_segmenter.json").read_text())
    assert meta["contact_weight"] == 4.0 and meta["init_weights"] == start.name
    assert "training-only participants" in meta["training_data"] and "oai-dess grid" in meta["training_data"]


def test_geometry_names_of_the_cli_are_the_renderers():
    from oa_kit.cli.mri import GEOMETRY_NAMES
    from oa_kit.synth.mri import MRI_GEOMETRIES

    assert GEOMETRY_NAMES == tuple(MRI_GEOMETRIES)


def test_evaluate_scores_the_runs_test_participants_on_the_chosen_grid(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "mri",
                "train",
                "--synthetic",
                "5",
                "--steps-per-epoch",
                "1",
                "--batch-size",
                "2",
                "--channels",
                "4",
                "8",
                "--max-val",
                "1",
                "--epochs",
                "1",
                "--no-progress",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    test_ids = json.loads((run / "split.json").read_text())["test"]
    out = tmp_path / "eval"
    assert (
        main(
            [
                "mri",
                "evaluate",
                "--synthetic",
                "5",
                "--geometry",
                "oai-dess",
                "--contrast",
                "we-dess",
                "--weights",
                str(run / "mri_segmenter.safetensors"),
                "--n-boot",
                "20",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "oai-dess grid, we-dess contrast" in capsys.readouterr().out
    per_case = pd.read_csv(out / "thickness_per_case.csv")
    assert sorted(per_case["case_id"].unique()) == sorted(test_ids)  # the same participants as the run's test
    assert set(per_case["source"]) == {"segmenter", "true_labels"}
    assert set(per_case["subregion"]) == set(SUBREGIONS)
    true_labels = per_case[per_case["source"] == "true_labels"]
    assert true_labels["error_mm"].abs().max() < 0.25  # the method on a fine grid's own labels
    summary = pd.read_csv(out / "thickness_error.csv")
    assert {"mae_mm", "bias_mm", "mae_all_mm"} <= set(summary["metric"])
    assert set(pd.read_csv(out / "test_metrics.csv")["metric"]) == {"dice", "assd_mm"}


def test_fine_tune_rejects_weights_of_another_architecture(tmp_path):
    run = tmp_path / "run"
    common = [
        "mri",
        "train",
        "--synthetic",
        "3",
        "--steps-per-epoch",
        "1",
        "--batch-size",
        "2",
        "--max-val",
        "1",
        "--epochs",
        "1",
        "--no-progress",
        "--out",
        str(run),
    ]
    assert main([*common, "--channels", "4", "8"]) == 0
    assert main([*common, "--channels", "8", "16", "--init-weights", str(run / "mri_segmenter.safetensors")]) == 2


def test_25d_fine_tune_from_2d_trains_resumes_and_exports(tmp_path):
    """``--context-mm`` with 2D ``--init-weights``: the 3-channel network starts from the 2D kernels, trains on
    3-channel slices, resumes, and its weights (direct and exported) reload as 2.5D with the same embedding size."""
    from safetensors.torch import load_file

    from oa_kit.models.mri.train import TrainResult, _metadata, render_phantom_cases, save_weights, stack_cases

    run, flat_model = tmp_path / "run", MRISegmenter(channels=(4, 8), strides=(2,))
    torch.manual_seed(0)
    flat = save_weights(
        TrainResult(net=flat_model._build(), metadata=_metadata(flat_model)), tmp_path / "flat.safetensors"
    )
    common = [
        "mri",
        "train",
        "--synthetic",
        "3",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "2",
        "--channels",
        "4",
        "8",
        "--max-val",
        "1",
        "--no-progress",
    ]
    wide = [*common, "--out", str(run), "--context-mm", "2", "--init-weights", str(flat)]
    assert main([*wide, "--epochs", "1"]) == 0
    assert json.loads((run / "checkpoint.json").read_text())["context_mm"] == 2.0
    assert main([*wide, "--epochs", "2", "--resume"]) == 0
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [1, 2]
    meta = json.loads((run / "mri_segmenter.json").read_text())
    assert meta["context_mm"] == 2.0 and meta["architecture"]["in_channels"] == 3 and meta["init_weights"] == flat.name
    out = tmp_path / "w.safetensors"
    assert main(["mri", "export", str(run), "--out", str(out)]) == 0
    for path in (run / "mri_segmenter.safetensors", out):
        model = MRISegmenter.from_pretrained(path)
        assert (model.context_mm, model.in_channels, model.channels, model.embed_dim) == (2.0, 3, (4, 8), 8)
        assert load_file(str(path))["model.0.conv.unit0.conv.weight"].shape[1] == 3
    (case,) = render_phantom_cases(1, seed=5, progress=False)[:1]
    images, targets = stack_cases([case], model, progress=False)
    assert images.shape[1] == 3 and targets.shape[1] == 1 and images.shape[0] == targets.shape[0] > 0
    seg = model.segment(case.image, case.affine, case.side)
    assert seg.labels.shape == case.image.shape and seg.embedding.shape == (8,)
