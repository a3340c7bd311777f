"""Anatomical clean-up of predicted label maps: one piece per bone, cartilage only on its own bone (in mm)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from oa_kit.models.mri.postprocess import (
    MAX_CARTILAGE_DISTANCE_MM,
    bone_surface_tree,
    clean_labels,
    keep_cartilage_on_bone,
    voxel_spacing_mm,
)

FEMUR, FEMORAL_CARTILAGE, TIBIA, MEDIAL_TIBIAL, PATELLAR_CARTILAGE = 1, 2, 3, 4, 7


def _knee() -> np.ndarray:
    """A 60^3 label map at 1 mm: femur above tibia, a 2 mm cartilage layer on each, facing each other."""
    labels = np.zeros((60, 60, 60), dtype=np.uint8)
    labels[10:50, 10:50, 32:50] = FEMUR
    labels[10:50, 10:50, 30:32] = FEMORAL_CARTILAGE
    labels[10:50, 10:50, 10:26] = TIBIA
    labels[10:50, 10:50, 26:28] = MEDIAL_TIBIAL
    return labels


def test_a_clean_knee_is_left_as_it_is():
    labels = _knee()
    assert np.array_equal(clean_labels(labels, (1.0, 1.0, 1.0)), labels)


def test_stray_bone_and_floating_cartilage_are_removed():
    labels = _knee()
    labels[52:56, 52:56, 52:56] = FEMUR  # a piece of "femur" in the fat, apart from the femur
    labels[2:6, 52:58, 2:4] = FEMORAL_CARTILAGE  # "cartilage" along a skin edge, far from the femur
    labels[20:24, 20:24, 55:57] = PATELLAR_CARTILAGE  # patellar cartilage without any patella
    cleaned = clean_labels(labels, (1.0, 1.0, 1.0))
    assert np.array_equal(cleaned, _knee())


def test_cartilage_far_from_its_bone_is_cut_even_when_connected():
    labels = _knee()
    labels[5:10, 30, 30:32] = FEMORAL_CARTILAGE  # joined to the femoral layer beside the femur (x 10-49) ...
    labels[5, 30, 10:32] = FEMORAL_CARTILAGE  # ... with a tail running down past the tibia, 5-21 mm from the femur
    cleaned = keep_cartilage_on_bone(labels, (1.0, 1.0, 1.0))
    distance = ndimage.distance_transform_edt(labels != FEMUR)  # to the nearest femur voxel, mm at 1 mm voxels
    kept = cleaned == FEMORAL_CARTILAGE
    assert kept[5, 30, 30] and not kept[5, 30, 12]  # the part near the femur stays, the tail's far end goes
    assert distance[kept].max() <= MAX_CARTILAGE_DISTANCE_MM
    # tibial cartilage is judged against the tibia: its layer is untouched
    assert np.array_equal(cleaned == MEDIAL_TIBIAL, labels == MEDIAL_TIBIAL)


@pytest.mark.parametrize(("slice_mm", "kept"), [(0.5, True), (3.0, False)])
def test_touching_is_measured_in_mm_not_voxels(slice_mm, kept):
    """A cartilage piece two slices off its bone touches it at 0.5 mm slices (1 mm) but not at 3 mm slices (6 mm)."""
    labels = np.zeros((20, 30, 30), dtype=np.uint8)
    labels[2:, 5:25, 5:15] = FEMUR
    labels[10:12, 8:12, 15:17] = FEMORAL_CARTILAGE  # on the femur: always kept
    labels[0, 8:12, 8:12] = FEMORAL_CARTILAGE  # its own piece, two slices off the femur's first slice
    cleaned = keep_cartilage_on_bone(labels, (slice_mm, 0.5, 0.5), touch_mm=1.5)
    assert (cleaned[10:12, 8:12, 15:17] == FEMORAL_CARTILAGE).all()
    assert bool((cleaned[0, 8:12, 8:12] == FEMORAL_CARTILAGE).all()) is kept


def test_voxel_spacing_reads_the_affine_columns():
    affine = np.diag([0.3, 0.4, 1.5, 1.0])[:, [2, 0, 1, 3]]
    assert voxel_spacing_mm(affine) == pytest.approx((1.5, 0.3, 0.4))


def test_surface_tree_distances_equal_a_distance_transform():
    """The k-d tree of a bone's surface voxels gives every outside voxel the distance transform's distance (mm)."""
    rng = np.random.default_rng(0)
    labels = np.zeros((24, 30, 28), dtype=np.uint8)
    labels[ndimage.gaussian_filter(rng.random(labels.shape), 3) > 0.5] = FEMUR  # an irregular "bone"
    spacing = (2.0, 0.5, 0.7)
    box = ndimage.find_objects(labels)[0]
    outside = np.argwhere(labels != FEMUR)
    tree = bone_surface_tree(labels, FEMUR, box, spacing)
    got = tree.query(outside * np.asarray(spacing))[0]
    want = ndimage.distance_transform_edt(labels != FEMUR, sampling=spacing)[tuple(outside.T)]
    assert labels.any() and np.allclose(got, want)


def test_cartilage_exactly_at_the_distance_limit_stays():
    """A column of cartilage standing 1-9 mm off the femur keeps its voxels up to and including the limit."""
    labels = np.zeros((12, 12, 30), dtype=np.uint8)
    labels[2:10, 2:10, 15:] = FEMUR
    labels[6, 6, 6:15] = FEMORAL_CARTILAGE  # 9 .. 1 mm from the femur's first voxel (z 15)
    cleaned = keep_cartilage_on_bone(labels, (1.0, 1.0, 1.0))
    kept_mm = 15 - np.flatnonzero(cleaned[6, 6] == FEMORAL_CARTILAGE)
    assert sorted(kept_mm) == list(range(1, int(MAX_CARTILAGE_DISTANCE_MM) + 1))
