"""KL network, losses, augmentation, trainer (smoke training on real Chen images, resume)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oa_kit.errors import OAKitError
from oa_kit.models.kl.losses import CORNLoss, SORDLoss, class_weights, logits_to_proba, make_loss, n_outputs_for
from oa_kit.models.kl.network import EMBEDDING_DIM, KLNet, fuse_for_inference
from oa_kit.models.kl.train import KLTrainer
from oa_kit.models.kl.transforms import kl_augment, tta_views


def test_network_shapes():
    model = KLNet().eval()
    x = torch.rand(3, 1, 160, 160)
    assert model(x).shape == (3, 5)
    assert model.embed(x).shape == (3, EMBEDDING_DIM) == (3, 256)
    assert KLNet(n_outputs=n_outputs_for("corn"))(x).shape == (3, 4)


def test_fused_inference_copy_matches_module():
    """BatchNorm folded into the convolutions: same logits and embeddings, structure kept, the original untouched."""
    torch.manual_seed(0)
    model = KLNet()
    for module in model.modules():  # non-trivial statistics, as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    model.train()
    fused = fuse_for_inference(model)
    assert model.training and sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 21
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert not any(p.requires_grad for p in fused.parameters()) and len(fused.stages) == 4
    model.eval()
    x = torch.rand(3, 1, 160, 160)
    with torch.inference_mode():
        assert torch.allclose(fused(x), model(x), atol=1e-4, rtol=1e-4)
        assert torch.allclose(fused.embed(x), model.embed(x), atol=1e-4, rtol=1e-4)
        assert torch.allclose(fuse_for_inference(model, channels_last=False)(x), model(x), atol=1e-4, rtol=1e-4)


def test_sord_is_ordinal_and_corn_probabilities_valid():
    target = torch.tensor([0])
    near, far = torch.tensor([[0.0, 4.0, 0.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 0.0, 0.0, 4.0]])
    sord, ce = SORDLoss(), make_loss("ce")
    assert sord(near, target) < sord(far, target)  # predicting KL1 for KL0 costs less than KL4
    assert ce(near, target) == pytest.approx(float(ce(far, target)), rel=1e-5)  # plain CE ignores the distance
    logits = torch.randn(20, 4)
    proba = logits_to_proba(logits, "corn")
    assert torch.allclose(proba.sum(1), torch.ones(20), atol=1e-5) and (proba > 0).all()
    confident = logits_to_proba(torch.tensor([[9.0, 9.0, -9.0, -9.0]]), "corn")
    assert int(confident.argmax()) == 2
    assert CORNLoss()(torch.tensor([[9.0, 9.0, -9.0, -9.0]]), torch.tensor([2])) < 0.01
    weights = class_weights(torch.tensor([0] * 90 + [4] * 10), power=0.5)
    assert weights[4] > weights[0]
    with pytest.raises(OAKitError, match="loss"):
        make_loss("focal")


def test_augmentation_seeded_in_range_and_no_flips():
    x = torch.rand(4, 1, 64, 64)
    a, b = kl_augment(seed=3)(x.clone()), kl_augment(seed=3)(x.clone())
    assert torch.equal(a, b) and a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, kl_augment(seed=4)(x.clone()))
    assert torch.allclose(kl_augment(seed=0, strength=0.0)(x.clone()), x, atol=1e-5)
    assert [v.shape for v in tta_views(x, 3)] == [x.shape] * 3


@pytest.fixture(scope="module")
def small_chen(chen_dir):
    from oa_kit.models.kl.data import load_chen_arrays

    images, frame = load_chen_arrays(chen_dir, limit=24, progress=False)
    train, kl = (frame["split"] == "train").to_numpy(), frame["kl"].to_numpy()
    return images[train][:16], kl[train][:16], images[~train][:8], kl[~train][:8]  # (x, y, x_val, y_val)


@pytest.mark.slow
@pytest.mark.shared_data
def test_smoke_training_loss_falls(small_chen, tmp_path):
    """One short CPU run on a handful of real Chen knees: the training loss falls and the run folder is complete."""
    torch.set_num_threads(1)
    x, y, x_val, y_val = small_chen
    trainer = KLTrainer(
        loss="sord",
        epochs=4,
        batch_size=8,
        lr=1e-3,
        warmup_epochs=0.5,
        ema_decay=0,
        aug_strength=0,
        dropout=0.0,
        device="cpu",
        out_dir=tmp_path / "run",
        progress=False,
        seed=0,
    )
    trainer.fit(x, y, x_val, y_val)
    losses = trainer.history_["train_loss"].to_numpy()
    assert losses[-1] < losses[0]
    assert list(trainer.history_["epoch"]) == [1, 2, 3, 4]
    assert {"best.safetensors", "checkpoint.safetensors", "checkpoint.json", "history.csv"} <= {
        p.name for p in (tmp_path / "run").iterdir()
    }


@pytest.mark.slow
@pytest.mark.shared_data
def test_resume_continues_from_checkpoint(small_chen, tmp_path):
    torch.set_num_threads(1)
    args = small_chen
    common = dict(loss="ce", epochs=2, batch_size=8, device="cpu", out_dir=tmp_path / "run", progress=False)
    first = KLTrainer(max_minutes=0.0, **common).fit(*args)  # interrupted after its first epoch
    assert len(first.history_) == 1
    second = KLTrainer(**common).fit(*args)
    assert list(second.history_["epoch"]) == [1, 2]
    assert second.history_["train_loss"].iloc[0] == pytest.approx(first.history_["train_loss"].iloc[0])


def test_trainer_rejects_bad_arrays():
    with pytest.raises(OAKitError, match="uint8"):
        KLTrainer(device="cpu").fit(
            np.zeros((4, 32, 32)), np.zeros(4, int), np.zeros((2, 32, 32), np.uint8), np.zeros(2, int)
        )


@pytest.mark.slow
@pytest.mark.shared_data
def test_pack_roundtrip_and_cli_train(chen_dir, tmp_path):
    """`oa-kit kl pack` on a tiny Chen-layout copy, read back, then `oa-kit kl train` for one epoch on the pack."""
    import shutil

    from oa_kit.cli import main
    from oa_kit.io.chen import read_chen
    from oa_kit.models.kl.data import load_chen_arrays, load_pack

    frame = read_chen(chen_dir).groupby("split").head(4)
    for row in frame.itertuples():
        target = tmp_path / "chen" / row.split / str(row.kl) / f"{row.participant_id}{row.side}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(row.path, target)
    pack = tmp_path / "chen.npz"
    assert main(["kl", "pack", str(tmp_path / "chen"), "--out", str(pack)]) == 0
    packed, table = load_pack(pack)
    direct, direct_table = load_chen_arrays(tmp_path / "chen", progress=False)
    assert packed.shape == direct.shape == (8, 160, 160)
    assert list(table["kl"]) == list(direct_table["kl"])
    assert np.abs(packed.astype(float) - direct).mean() < 6  # JPEG q85 error, in 8-bit levels
    torch.set_num_threads(1)
    assert (
        main(
            [
                "kl",
                "train",
                str(pack),
                "--out",
                str(tmp_path / "run"),
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    assert (tmp_path / "run" / "best.safetensors").exists()
    with pytest.raises(OAKitError, match="not a KL pack"):
        load_pack(tmp_path / "run" / "history.csv")


def test_fine_tune_from_shipped_weights_on_roi_arrays():
    """The synthetic-cohort path: ROIs → uint8 arrays → fine-tune the shipped model for one epoch."""
    from oa_kit.models.kl.data import roi_arrays
    from oa_kit.models.kl.predict import SHIPPED_WEIGHTS

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = roi_arrays([rng.random((200, 200)) for _ in range(8)])
    assert x.shape == (8, 160, 160) and x.dtype == np.uint8
    y = np.arange(8) % 5
    trainer = KLTrainer(loss="sord", epochs=1, batch_size=4, device="cpu", progress=False, init_weights=SHIPPED_WEIGHTS)
    trainer.fit(x, y, x[:4], y[:4])
    assert trainer.model_(torch.rand(2, 1, 160, 160)).shape == (2, 5)
    with pytest.raises(OAKitError, match="loss"):
        KLTrainer(loss="corn", epochs=1, device="cpu", progress=False, init_weights=SHIPPED_WEIGHTS).fit(x, y, x, y)


def test_shipped_hashes_are_pinned_in_code():
    """The pins match the shipped files (update them with any re-calibration), for both models."""
    from oa_kit.io.artifacts import sha256_file
    from oa_kit.models.kl.predict import SHIPPED_SHA256, SHIPPED_WEIGHTS
    from oa_kit.models.mri.inference import DEFAULT_WEIGHTS
    from oa_kit.models.mri.inference import SHIPPED_SHA256 as MRI_SHA256

    for folder_file, pins in ((SHIPPED_WEIGHTS, SHIPPED_SHA256), (DEFAULT_WEIGHTS, MRI_SHA256)):
        for name, sha in pins.items():
            assert sha256_file(folder_file.with_name(name)) == sha, name


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("temperature", -1, "temperature = -1; expected a value between 0.0 and 100.0"),
        ("temperature", "hot", "temperature = 'hot'; expected a float"),
        ("tta", 0, "tta = 0; expected a value between 0 and 65"),
        ("alpha", None, "alpha = None; expected a float"),
    ],
)
def test_sidecar_settings_are_type_and_range_checked(tmp_path, key, value, message):
    """A copied weights file with an edited sidecar (its sha256 still matching the weights) is refused in one line."""
    import json
    import shutil

    from oa_kit.models.kl.predict import SHIPPED_WEIGHTS, KLGrader

    copy = tmp_path / "kl.safetensors"
    shutil.copyfile(SHIPPED_WEIGHTS, copy)
    info = json.loads(SHIPPED_WEIGHTS.with_suffix(".json").read_text())
    info[key] = value
    copy.with_suffix(".json").write_text(json.dumps(info))
    with pytest.raises(OAKitError, match=f"kl.json: {message}"):
        KLGrader.from_pretrained(copy)


def test_an_edited_shipped_sidecar_is_refused_by_the_pins(tmp_path, monkeypatch):
    """Editing the shipped sidecar (a plausible temperature, its sha256 entry left valid) fails the pinned hash."""
    import json
    import shutil

    import oa_kit.models.kl.predict as predict

    shipped = tmp_path / "kl_weights.safetensors"
    shutil.copyfile(predict.SHIPPED_WEIGHTS, shipped)
    info = json.loads(predict.SHIPPED_WEIGHTS.with_suffix(".json").read_text())
    info["temperature"] = 1.5
    shipped.with_suffix(".json").write_text(json.dumps(info))
    monkeypatch.setattr(predict, "SHIPPED_WEIGHTS", shipped)
    with pytest.raises(OAKitError, match="kl_weights.json: sha256 .* the sha256 pinned in oa_kit for the shipped KL"):
        predict.KLGrader.from_pretrained()
