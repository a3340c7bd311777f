"""Synthetic DESS-like knee MRI phantom: labels, thickness truth, mirror symmetry, determinism, files on disk."""

from __future__ import annotations

import numpy as np
import pytest

from oa_kit.errors import OAKitError
from oa_kit.io.labels import LABEL_IDS, LABELS, SUBREGIONS
from oa_kit.io.mri import read_nifti
from oa_kit.synth.mri import (
    DEFAULT_GEOMETRY,
    DEFAULT_THICKNESS_MM,
    SITE_MRI,
    MRIGeometry,
    MRISite,
    render_knee_mri,
    write_knee_mri,
)


@pytest.fixture(scope="module")
def right():
    """One right knee at the default geometry."""
    return render_knee_mri("R", DEFAULT_THICKNESS_MM, DEFAULT_GEOMETRY, SITE_MRI["A"], seed=7)


@pytest.fixture(scope="module")
def left():
    """The left knee drawn with the same seed."""
    return render_knee_mri("L", DEFAULT_THICKNESS_MM, DEFAULT_GEOMETRY, SITE_MRI["A"], seed=7)


def _world_x_centroid(rendered, label: int) -> float:
    """Mean world x (mm) of the voxels carrying ``label``."""
    idx = np.argwhere(rendered.labels == label)
    return float((rendered.affine[:3, :3] @ idx.T.astype(float) + rendered.affine[:3, 3:])[0].mean())


def test_every_label_present_with_plausible_sizes(right):
    counts = np.bincount(right.labels.ravel(), minlength=len(LABELS))
    assert right.image.shape == right.labels.shape == DEFAULT_GEOMETRY.shape
    assert right.image.dtype == np.float32 and right.labels.dtype == np.uint8
    assert set(np.unique(right.labels)) == set(LABELS)
    voxel_mm3 = float(np.prod(DEFAULT_GEOMETRY.spacing_mm))
    # femoral cartilage: roughly 2 mm over a few thousand mm^2 → several thousand mm^3
    assert 2000 < counts[LABEL_IDS["femoral_cartilage"]] * voxel_mm3 < 20000
    assert counts[LABEL_IDS["femur"]] > counts[LABEL_IDS["femoral_cartilage"]]
    for name in ("medial_meniscus", "lateral_meniscus", "patellar_cartilage"):
        assert counts[LABEL_IDS[name]] * voxel_mm3 > 300, name


def test_affine_is_ras_and_centred(right):
    aff = right.affine
    np.testing.assert_allclose(np.diag(aff)[:3], DEFAULT_GEOMETRY.spacing_mm)
    centre = aff @ np.array([*(np.array(DEFAULT_GEOMETRY.shape) - 1) / 2.0, 1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-9)
    assert DEFAULT_GEOMETRY.fov_mm == (80.0, 64.0, 64.0)


def test_medial_is_toward_minus_x_for_right_and_plus_x_for_left(right, left):
    for rendered, sign in ((right, -1), (left, 1)):
        med = _world_x_centroid(rendered, LABEL_IDS["medial_tibial_cartilage"])
        lat = _world_x_centroid(rendered, LABEL_IDS["lateral_tibial_cartilage"])
        assert sign * (med - lat) > 20.0
        med_m = _world_x_centroid(rendered, LABEL_IDS["medial_meniscus"])
        assert sign * med_m > 0


def test_left_is_exact_mirror_of_right(right, left):
    np.testing.assert_array_equal(left.labels, right.labels[::-1])
    np.testing.assert_array_equal(left.image, right.image[::-1])
    assert left.true_thickness_mm == right.true_thickness_mm
    np.testing.assert_array_equal(left.affine, right.affine)


def test_same_seed_identical_other_seed_differs(right):
    again = render_knee_mri("R", DEFAULT_THICKNESS_MM, DEFAULT_GEOMETRY, SITE_MRI["A"], seed=7)
    np.testing.assert_array_equal(again.image, right.image)
    np.testing.assert_array_equal(again.labels, right.labels)
    other = render_knee_mri("R", DEFAULT_THICKNESS_MM, DEFAULT_GEOMETRY, SITE_MRI["A"], seed=8)
    assert not np.array_equal(other.image, right.image)
    assert not np.array_equal(other.labels, right.labels)


def test_truth_matches_requested_thickness(right):
    assert list(right.true_thickness_mm) == list(SUBREGIONS)
    for key in SUBREGIONS:
        assert right.true_thickness_mm[key] == pytest.approx(DEFAULT_THICKNESS_MM[key], abs=0.03), key


def test_truth_counts_cartilage_above_the_floor_and_keeps_the_whole_footprint_mean(right):
    from oa_kit.synth.mri import TRUTH_MIN_THICKNESS_MM

    assert TRUTH_MIN_THICKNESS_MM == pytest.approx(0.1)
    assert list(right.true_thickness_all_mm) == list(SUBREGIONS)
    for key in SUBREGIONS:  # the rim thinner than the floor only lowers the whole-footprint mean, by tenths of a mm
        assert right.true_thickness_all_mm[key] < right.true_thickness_mm[key], key
        assert right.true_thickness_all_mm[key] > right.true_thickness_mm[key] - 0.3, key


@pytest.mark.slow
def test_truth_is_what_an_isotropic_normal_ray_measurement_of_the_labels_gives():
    """At isotropic 0.5 mm the normal-ray method on the phantom's own labels recovers the truth: thickness is along the
    bone-surface normal (not the radius the femoral field is painted along) and the plate means agree within the
    0.10 mm target (the femoral-tibial contact film, sub-voxel, costs the femoral central means a few hundredths)."""
    from oa_kit.features.cartilage import measure_cartilage

    geometry = MRIGeometry(shape=(160, 128, 128), spacing_mm=(0.5, 0.5, 0.5))
    r = render_knee_mri("R", DEFAULT_THICKNESS_MM, geometry, SITE_MRI["A"], seed=1)
    table = measure_cartilage(r.labels, r.affine, "R").subregion_table().set_index("subregion")
    for key in SUBREGIONS:
        assert table.loc[key, "thickness_mm_mean"] == pytest.approx(r.true_thickness_mm[key], abs=0.1), key


def test_truth_follows_uneven_regional_thinning():
    rng = np.random.default_rng(3)
    target = {k: float(rng.uniform(0.6, 3.4)) for k in SUBREGIONS}
    geometry = MRIGeometry(shape=(20, 64, 64), spacing_mm=(4.0, 1.0, 1.0))
    r = render_knee_mri("R", target, geometry, SITE_MRI["C"], seed=1)
    for key in SUBREGIONS:
        assert r.true_thickness_mm[key] == pytest.approx(target[key], rel=0.06, abs=0.05), key


def test_voxel_cartilage_volume_tracks_truth():
    """Labels are rendered from the same field: thinner cartilage → proportionally fewer cartilage voxels."""
    volumes = []
    for t in (1.0, 2.5):
        target = {**DEFAULT_THICKNESS_MM, "tibial_medial": t, "femoral_medial_central": t}
        r = render_knee_mri("R", target, DEFAULT_GEOMETRY, SITE_MRI["A"], seed=11)
        volumes.append(np.sum(r.labels == LABEL_IDS["medial_tibial_cartilage"]))
    assert volumes[1] / volumes[0] == pytest.approx(2.5, rel=0.25)


def test_dess_like_contrast_partial_volume_and_site_effects(right):
    img, lab = right.image, right.labels
    mean = {name: img[lab == idx].mean() for idx, name in LABELS.items()}
    assert mean["femoral_cartilage"] > 1.8 * mean["femur"]
    assert mean["medial_meniscus"] < 0.5 * mean["femur"]
    clean_site = MRISite("Z", contrast=1.0, noise=0.0, bias_field=0.0)
    clean = render_knee_mri("R", DEFAULT_THICKNESS_MM, DEFAULT_GEOMETRY, clean_site, seed=7)
    assert clean.image.max() >= 950  # fluid ≈ 1000 without noise
    cart = clean.labels == LABEL_IDS["femoral_cartilage"]
    # partial volume: cartilage voxels span a range of values (edge voxels are mixtures), not one level
    assert np.percentile(clean.image[cart], 95) - np.percentile(clean.image[cart], 5) > 100
    noisy = render_knee_mri("R", DEFAULT_THICKNESS_MM, DEFAULT_GEOMETRY, SITE_MRI["D"], seed=7)
    np.testing.assert_array_equal(noisy.labels, clean.labels)
    assert np.std(noisy.image - clean.image) > 20


def test_write_reads_back_identical_and_deterministic(tmp_path, left):
    img_path, lab_path = write_knee_mri(tmp_path / "a", "9000099", "L", 0, left)
    assert img_path.name == "9000099_L_V00_DESS.nii.gz" and lab_path.name == "9000099_L_V00_labels.nii.gz"
    vol, lab = read_nifti(img_path), read_nifti(lab_path)
    np.testing.assert_array_equal(vol.array, left.image)
    np.testing.assert_array_equal(lab.array, left.labels)
    np.testing.assert_allclose(vol.affine, left.affine, atol=1e-6)
    assert vol.orientation == ("R", "A", "S") and lab.array.dtype == np.uint8
    assert vol.metadata["side"] == "L" and vol.metadata["participant_id"] == "9000099"
    assert lab.metadata["visit_month"] == 0
    again, _ = write_knee_mri(tmp_path / "b", "9000099", "L", 0, left)
    assert again.read_bytes() == img_path.read_bytes()
    assert write_knee_mri(tmp_path, "9000099", "L", 24, left)[0].name == "9000099_L_V03_DESS.nii.gz"
    assert not list(tmp_path.rglob("*.part"))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: render_knee_mri("X", DEFAULT_THICKNESS_MM), "side"),
        (lambda: render_knee_mri("R", {"patellar": 2.0}), "missing"),
        (lambda: render_knee_mri("R", {**DEFAULT_THICKNESS_MM, "tibial_medial": -1.0}), "out of range"),
        (lambda: render_knee_mri("R", {**DEFAULT_THICKNESS_MM, "tibial_medial": float("nan")}), "out of range"),
        (lambda: MRIGeometry(shape=(40, 0, 128), spacing_mm=(2.0, 0.5, 0.5)), "shape"),
        (lambda: MRIGeometry(shape=(40, 128, 128), spacing_mm=(2.0, -0.5, 0.5)), "spacing"),
    ],
)
def test_bad_inputs_give_one_line_errors(call, match):
    with pytest.raises(OAKitError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_write_rejects_side_and_visit_mismatch(tmp_path, right):
    with pytest.raises(OAKitError, match="side"):
        write_knee_mri(tmp_path, "9000001", "L", 0, right)
    with pytest.raises(OAKitError, match="visit_month"):
        write_knee_mri(tmp_path, "9000001", "R", 5, right)


def test_voxel_measurement_recovers_the_truth(right):
    """The features module's normal-ray thickness on the rendered labels agrees with the analytic truth."""
    from oa_kit.features.cartilage import measure_cartilage

    table = measure_cartilage(right.labels, right.affine, "R").subregion_table().set_index("subregion")
    for key in SUBREGIONS:
        assert table.loc[key, "thickness_mm_mean"] == pytest.approx(right.true_thickness_mm[key], abs=0.3), key


def test_water_excited_dess_contrast_orders_tissues_as_real_scans():
    """The "we-dess" phantom reads like real water-excited DESS after the segmenter's percentile scaling: fluid
    brightest, then cartilage, muscle (~0.6), and dark marrow (~0.05) and fat; labels and truth do not change."""
    from oa_kit.models.mri.transforms import normalise_intensity
    from oa_kit.synth.mri import TISSUE_CONTRASTS

    clean_site = MRISite("Z", contrast=1.0, noise=0.0, bias_field=0.0)
    bright = render_knee_mri("R", DEFAULT_THICKNESS_MM, DEFAULT_GEOMETRY, clean_site, seed=7, contrast="bright-marrow")
    dess = render_knee_mri("R", DEFAULT_THICKNESS_MM, DEFAULT_GEOMETRY, clean_site, seed=7, contrast="we-dess")
    np.testing.assert_array_equal(dess.labels, bright.labels)
    assert dict(dess.true_thickness_mm) == dict(bright.true_thickness_mm)
    scaled, lab = normalise_intensity(dess.image), dess.labels
    median = {name: float(np.median(scaled[lab == idx])) for idx, name in LABELS.items()}
    marrow = max(median["femur"], median["tibia"], median["patella"])
    background = scaled[lab == 0]  # muscle with fat islands
    muscle = float(np.percentile(background, 75))
    fluid = float(scaled.max())
    assert fluid > median["femoral_cartilage"] > muscle > 0.4 > 0.15 > marrow
    assert 0.45 < muscle < 0.75 and marrow < 0.1 and np.percentile(background, 10) < 0.15  # dark fat islands
    assert median["medial_meniscus"] < 0.15 and median["patellar_cartilage"] > 0.65
    old = normalise_intensity(bright.image)
    assert np.median(old[bright.labels == LABEL_IDS["femur"]]) > np.median(old[bright.labels == 0])  # the old contrast
    with pytest.raises(OAKitError, match="contrast"):
        render_knee_mri("R", DEFAULT_THICKNESS_MM, contrast="t1")
    assert set(TISSUE_CONTRASTS) == {"we-dess", "bright-marrow"}
