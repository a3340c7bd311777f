"""SynthSeg-style generator and training (oa_kit.models.mri.synthseg) on tiny label maps made here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from oa_kit.errors import OAKitError
from oa_kit.models.mri.inference import MRISegmenter
from oa_kit.models.mri.synthseg import (
    AIR_CLASS,
    CORTEX_CLASS,
    FIRST_SUBCLASS,
    AddCortex,
    ImageSlices,
    MonaiIntensity,
    RandomGMMIntensities,
    SplitBackground,
    SynthConfig,
    SynthSampler,
    _acquisition,
    _place,
    load_label_maps,
    marginalise_missing,
    prepare_label_map,
    random_crop,
    save_label_maps,
    train_synthseg,
)
from oa_kit.models.mri.train import SegmentationCase

#: (LR, AP, SI) at 0.7 x 0.5 x 0.5 mm, RAS.
AFFINE = np.diag([0.7, 0.5, 0.5, 1.0])
CONFIG = SynthConfig(crop=(48, 48))


def tiny_labels(shift: int = 0) -> np.ndarray:
    """A 24 x 64 x 64 harmonised knee: femur, cartilages, tibia, patella, menisci (all ten labels)."""
    lab = np.zeros((24, 64, 64), dtype=np.uint8)
    lab[2:22, 16:48, 36 + shift : 56] = 1
    lab[2:22, 16:48, 33 + shift : 36 + shift] = 2
    lab[2:22, 16:48, 8:28] = 3
    lab[2:11, 18:46, 28:31] = 4
    lab[13:22, 20:44, 28:31] = 5
    lab[8:16, 52:60, 38:52] = 6
    lab[8:16, 49:52, 38:52] = 7
    lab[2:11, 16:18, 29:32] = 8
    lab[13:22, 16:18, 29:32] = 9
    return lab


@pytest.fixture(scope="module")
def cases():
    sub = np.zeros((24, 64, 64), dtype=np.int16)
    sub[0:4, 0:8, 0:8] = 12  # a background structure (SPL-like subclass)
    return [
        prepare_label_map(tiny_labels(), AFFINE, "R", "a", source="spl", subclasses=sub),
        prepare_label_map(tiny_labels(1)[::-1].copy(), AFFINE, "L", "b", source="woo"),  # a left knee, no menisci
    ]


def test_prepare_label_map_canonical_geometry(cases):
    a, b = cases
    assert a.gen.dtype == np.uint8 and a.lr_step_mm == pytest.approx(0.7)
    assert set(np.unique(a.target)) == set(range(10))
    assert b.lacks == (8, 9)
    # the left knee was mirrored: its medial plate (4) lies at low LR index like the right one
    lr = np.nonzero(b.target == 4)[0]
    assert lr.max() < b.gen.shape[0] / 2
    assert a.target_lut[a.gen[np.nonzero(a.gen >= FIRST_SUBCLASS)]].max() == 0  # the subclass stays background
    assert (a.gen >= FIRST_SUBCLASS).any()


def test_generator_is_deterministic_and_shaped(cases):
    sampler = SynthSampler(cases, config=CONFIG)
    s1, s2, s3 = sampler.sample(7), sampler.sample(7), sampler.sample(8)
    np.testing.assert_array_equal(s1["image"], s2["image"])
    np.testing.assert_array_equal(s1["target"], s2["target"])
    assert not np.array_equal(s1["image"], s3["image"])
    assert s1["image"].shape == (3, 48, 48) and s1["image"].dtype == np.float32
    assert s1["target"].shape == (1, 48, 48) and s1["target"].dtype == np.int64
    assert 0.0 <= s1["image"].min() and s1["image"].max() <= 1.0
    assert s1["target"].max() < 8  # network classes
    images, targets, lacks = sampler.batch(3, 4)
    assert images.shape == (4, 3, 48, 48) and targets.shape == (4, 1, 48, 48) and lacks.shape == (4, 8)
    images2, _, _ = sampler.batch(3, 4)
    torch.testing.assert_close(images, images2)


def test_every_tissue_gets_its_own_intensity(cases):
    case = cases[0]
    sample = {"gen": case.gen, "lut": case.target_lut, "lr_step_mm": case.lr_step_mm}
    out = RandomGMMIntensities(std_range=(0.0, 0.0), prior_prob=0.0)(dict(sample), np.random.default_rng(0))
    for label in range(10):
        values = out["image"][case.gen == label]
        assert values.size and np.allclose(values, out["means"][label])  # one Gaussian per label (std 0 here)
    means = [out["means"][k] for k in range(10)]
    assert len(set(np.round(means, 6))) == 10
    other = RandomGMMIntensities(std_range=(0.0, 0.0), prior_prob=0.0)(dict(sample), np.random.default_rng(1))
    assert not np.allclose(other["means"][:10], out["means"][:10])  # contrast changes between samples


def test_cortex_and_background_blobs(cases):
    case = cases[0]
    rng = np.random.default_rng(0)
    sample = {"gen": case.gen.copy(), "lut": case.target_lut, "lr_step_mm": case.lr_step_mm}
    with_cortex = AddCortex(width=(1, 1))(dict(sample), rng)["gen"]
    femur = case.target == 1
    assert (with_cortex[femur] == CORTEX_CLASS).any() and (with_cortex[femur] == 1).any()
    assert not (with_cortex[~np.isin(case.target, (1, 3, 6))] == CORTEX_CLASS).any()
    split = SplitBackground(max_classes=6)(dict(sample), np.random.default_rng(3))["gen"]
    assert (split[case.gen == 0] >= FIRST_SUBCLASS + 100).all()
    np.testing.assert_array_equal(split[case.gen != 0], case.gen[case.gen != 0])  # tissues untouched


def test_air_canvas_places_the_window_and_labels_air_background(cases):
    window = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) + 1
    placed = _place(window, (5, 6), (-1, 4), AIR_CLASS)
    assert placed.shape == (2, 5, 6)
    np.testing.assert_array_equal(placed[:, 0:2, 4:6], window[:, 1:3, 0:2])  # the part inside the canvas
    assert (placed == AIR_CLASS).sum() == 2 * (5 * 6 - 2 * 2)
    assert cases[0].target_lut[AIR_CLASS] == 0  # air is background to the network
    sampler = SynthSampler(cases, config=SynthConfig(crop=(48, 48), air_prob=1.0))
    dark, seen = [], 0
    for seed in range(6):
        out = sampler.sample(seed)
        background = out["target"][0] == 0
        seen += int(background.mean() > 0.3)
        dark.append(float(out["means"][AIR_CLASS]))
    assert seen >= 3  # shifted windows are mostly outside the label map
    assert max(dark) <= 0.05  # air is drawn near-black whatever the contrast


def test_bias_and_gamma_stay_in_their_ranges():
    from monai.transforms import RandAdjustContrast, RandBiasField

    image = np.full((3, 32, 32), 0.5, dtype=np.float32)
    for seed in range(5):
        biased = MonaiIntensity(RandBiasField(degree=3, coeff_range=(0.0, 0.15), prob=1.0))(
            {"image": image.copy()}, np.random.default_rng(seed)
        )["image"]
        ratio = biased / image
        assert np.all(ratio > np.exp(-2.0)) and np.all(ratio < np.exp(2.0))  # smooth multiplicative field
        np.testing.assert_allclose(biased[0] / biased[1], 1.0, rtol=1e-5)  # one field for all acquired slices
        ramp = np.linspace(0.0, 1.0, 32 * 32 * 3, dtype=np.float32).reshape(3, 32, 32)
        gamma = MonaiIntensity(RandAdjustContrast(prob=1.0, gamma=(0.5, 2.0)))(
            {"image": ramp.copy()}, np.random.default_rng(seed)
        )["image"]
        mid = gamma.ravel()[len(ramp.ravel()) // 2]
        assert 0.5**2.0 - 1e-3 <= mid <= 0.5**0.5 + 1e-3  # value at 0.5 after a gamma in [0.5, 2]


def test_slice_thickness_acquisition_weights():
    fine, weights, positions, half = _acquisition(40, 20, 0.5, 2.0, 2.0)
    assert weights.shape == (3, len(fine)) and half == 1
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert (weights > 0).sum(axis=1).tolist() == [5, 5, 5]  # a 2 mm slice averages five 0.5 mm slices
    np.testing.assert_allclose(positions, [0.0, 1.0, 2.0])  # context +-2 mm = +-1 acquired slice
    fine, weights, positions, half = _acquisition(40, 0, 0.7, 0.5, 2.0)  # thinner than the grid: nearest slice
    assert (weights > 0).sum(axis=1).max() == 1


def test_marginal_loss_merges_missing_classes_into_background():
    logits = torch.randn(2, 8, 4, 4)
    lacks = torch.zeros(2, 8, dtype=torch.bool)
    lacks[1, 7] = True
    out = marginalise_missing(logits, lacks)
    torch.testing.assert_close(out[0], logits[0])
    p_in, p_out = torch.softmax(logits[1], 0), torch.softmax(out[1], 0)
    torch.testing.assert_close(p_out[0], p_in[0] + p_in[7])
    assert float(p_out[7].max()) < 1e-6
    torch.testing.assert_close(p_out[1:7], p_in[1:7])


def test_prepared_maps_round_trip(cases, tmp_path):
    save_label_maps(tmp_path, cases)
    back = load_label_maps(tmp_path)
    assert [c.case_id for c in back] == ["a", "b"]
    np.testing.assert_array_equal(back[1].gen, cases[1].gen)
    assert back[1].lacks == (8, 9) and back[0].lr_step_mm == cases[0].lr_step_mm


@pytest.mark.slow
def test_one_epoch_writes_weights_mrisegmenter_loads(cases, tmp_path):
    result = train_synthseg(
        cases[:1], cases[1:], tmp_path, epochs=1, steps_per_epoch=2, batch_size=2, n_val=2, config=CONFIG,
        progress=False,
    )  # fmt: skip
    assert len(result.history) == 1 and (tmp_path / "checkpoint.safetensors").exists()
    seg = MRISegmenter.from_pretrained(tmp_path / "mri_synthseg.safetensors")
    assert seg.context_mm == CONFIG.context_mm and seg.in_channels == 3
    labels = seg.predict(np.random.default_rng(0).random((12, 40, 40)).astype(np.float32), AFFINE, "R")
    assert labels.shape == (12, 40, 40)
    # resuming a finished run trains nothing more and keeps the history
    again = train_synthseg(
        cases[:1], cases[1:], tmp_path, epochs=1, steps_per_epoch=2, batch_size=2, n_val=2, config=CONFIG,
        progress=False,
    )  # fmt: skip
    assert [h["epoch"] for h in again.history] == [1]


def scan_case(case_id: str, shift: int = 0) -> SegmentationCase:
    """A rendered-scan stand-in: the tiny labels with one fixed intensity per tissue plus noise."""
    labels = tiny_labels(shift)
    means = np.linspace(0.1, 1.0, 10, dtype=np.float32)
    image = means[labels] + np.random.default_rng(shift).normal(0, 0.02, labels.shape).astype(np.float32)
    return SegmentationCase(case_id, image, labels, AFFINE, "R", group=case_id)


def test_random_crop_takes_the_same_window_of_image_and_target():
    images = torch.arange(2 * 3 * 40 * 30, dtype=torch.float32).reshape(2, 3, 40, 30)
    targets = images[:, 1:2].clone()
    x, y = random_crop(images, targets, (32, 32), torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 32, 32) and y.shape == (2, 1, 32, 32)
    assert torch.equal(x[:, 1:2], y)  # same window; the 30-wide slices are zero-padded to 32
    assert torch.all(x[:, :, :, -2:] == 0)


def test_image_slices_batches_are_seeded_and_fully_labelled():
    slices = ImageSlices([scan_case("s1")], MRISegmenter(context_mm=2.0), (32, 32), progress=False)
    a, b = slices.batch(5, 3), slices.batch(5, 3)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert a[0].shape == (3, 3, 32, 32) and a[1].shape == (3, 1, 32, 32) and not a[2].any()
    images, targets, _ = slices.validation()[0]
    assert images.shape[-1] % 16 == 0 and images.shape[-2:] == targets.shape[-2:]


def test_rendered_scans_join_batches_and_the_selection(cases, tmp_path):
    result = train_synthseg(
        cases[:1], cases[1:], tmp_path, epochs=1, steps_per_epoch=2, batch_size=4, n_val=2, config=CONFIG,
        image_cases=[scan_case("s1")], val_image_cases=[scan_case("s2", 1)], image_share=0.5, progress=False,
    )  # fmt: skip
    row = result.history[0]
    assert 0 <= row["image_cartilage_mean"] <= 1 and 0 <= row["cartilage_mean"] <= 1
    meta = json.loads((tmp_path / "mri_synthseg.json").read_text())
    assert meta["image_cases"] == ["s1"] and meta["val_image_cases"] == ["s2"] and meta["image_share"] == 0.5
    with pytest.raises(OAKitError, match="image_share: 0.1 makes 0 of 4 samples"):
        train_synthseg(
            cases[:1], cases[1:], tmp_path / "b", epochs=1, steps_per_epoch=1, batch_size=4, n_val=2, config=CONFIG,
            image_cases=[scan_case("s1")], image_share=0.1, progress=False,
        )  # fmt: skip


@pytest.mark.slow
def test_cli_prepares_label_maps_trains_and_resumes(tmp_path, capsys):
    """``oa-kit mri synthseg`` on two Woo-convention maps (one held out): weights written, a rerun resumes."""
    import nibabel as nib

    from oa_kit.cli import main

    woo = tmp_path / "woo"
    woo.mkdir()
    to_woo = {1: 1, 2: 2, 3: 3, 4: 4, 5: 4, 6: 5, 7: 6, 8: 0, 9: 0}  # harmonised -> Woo values (no menisci)
    for pid, shift in (("9000001", 0), ("9000002", 1)):
        lab = np.vectorize(lambda v: to_woo.get(int(v), 0))(tiny_labels(shift)).astype(np.uint8)
        nib.save(nib.Nifti1Image(lab, AFFINE), woo / f"{pid}_00m_WB01_test.nii.gz")
    args = ["mri", "synthseg", "--woo", str(woo), "--out", str(tmp_path / "run"), "--phantoms", "0"]
    args += ["--holdout", "1", "--epochs", "1", "--steps", "1", "--batch", "2", "--val-samples", "2", "--no-progress"]
    args += ["--phantom-images", "2", "--image-share", "0.5", "--channels", "4", "8", "16", "32"]
    assert main(args) == 0
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert len(split["train"]) == 1 and len(split["holdout"]) == 1
    # one phantom participant per contrast trains (both knees), one validates; ids apart from the test sets' SYN000...
    assert len(split["phantom_scans"]) == 4 and len(split["phantom_holdout"]) == 4
    assert not any(c.startswith("SYN000") for c in split["phantom_scans"] + split["phantom_holdout"])
    model = MRISegmenter.from_pretrained(tmp_path / "run" / "mri_synthseg.safetensors")
    assert model.in_channels == 3 and tuple(model.channels) == (4, 8, 16, 32)
    assert json.loads((tmp_path / "run" / "mri_synthseg.json").read_text())["image_share"] == 0.5
    assert main(args) == 0  # the finished run resumes: nothing more to train
    assert len(json.loads((tmp_path / "run" / "checkpoint.json").read_text())["history"]) == 1
    capsys.readouterr()
    assert main([*args[:3], str(tmp_path / "missing"), *args[4:]]) != 0
    err = capsys.readouterr().err
    assert "--woo: " in err and "is not a folder" in err
