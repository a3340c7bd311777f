"""Label conventions of real knee label maps (Woo OAI, pymskt, SPL atlas, CartiMorph/OAIZIB-CM, SKM-TEA) and the NRRD reader."""

from __future__ import annotations

import numpy as np
import pytest

from oa_kit.errors import OAKitError
from oa_kit.io.labels import (
    CONVENTION_NAMES,
    CROSSWALKS,
    LABELS,
    LACKS_TISSUES,
    SIDE_SCORE_MARGIN,
    SPL_BACKGROUND,
    anatomy_side,
    compartment_cut_x,
    from_harmonised,
    infer_knee_side,
    knee_side_cues,
    label_convention,
    subclass_map,
    to_harmonised,
)

#: RAS affine of a tiny sagittal-ish grid: axes (LR, AP, SI) at 1 mm.
AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])


def tiny_knee(lateral_plus_x: bool = True) -> np.ndarray:
    """A 20x16x16 harmonised right knee (lateral toward +x): femur above, tibia below, two tibial plates, patella.

    The medial plate (at low x) is longer anteroposteriorly than the lateral one, the tibia sits 2 voxels toward
    lateral of the femur and the patella lateral too, as in real knees. ``lateral_plus_x=False`` mirrors it (a left knee).
    """
    lab = np.zeros((20, 16, 16), dtype=np.uint8)
    lab[2:16, 3:13, 10:15] = 1  # femur
    lab[2:16, 3:13, 9] = 2  # femoral cartilage
    lab[4:18, 3:13, 2:7] = 3  # tibia
    lab[4:9, 2:14, 7] = 4  # medial tibial cartilage: AP 12 voxels
    lab[12:17, 5:11, 7] = 5  # lateral tibial cartilage: AP 6 voxels
    lab[10:15, 14:16, 10:14] = 6  # patella
    lab[10:15, 13, 10:14] = 7  # patellar cartilage
    lab[4:9, 2, 8] = 8  # medial meniscus
    lab[12:17, 4, 8] = 9  # lateral meniscus
    return lab if lateral_plus_x else lab[::-1].copy()


def woo_from(harm: np.ndarray) -> np.ndarray:
    """The same knee in the Woo convention: one tibial cartilage label 4, patella 5/6, no menisci; a femoral lesion 7."""
    woo = from_harmonised(harm, "woo", merge=True, drop=("medial_meniscus", "lateral_meniscus"))
    woo[5, 5, 12] = 7
    return woo


def test_every_convention_maps_into_harmonised_labels_and_declares_what_it_lacks():
    assert set(LACKS_TISSUES) == set(CROSSWALKS)
    for source, table in CROSSWALKS.items():
        assert set(table.values()) <= set(LABELS), source
        present = set(table.values()) - {0}
        if source == "oaizib":  # OAI-ZIB proper has no patella; the kneeseg extension's 5/6 are read when present
            present -= {6, 7}
        assert not present & set(LACKS_TISSUES[source]), source  # a tissue is either mapped or declared missing
    assert LACKS_TISSUES["woo"] == (8, 9)
    assert set(LACKS_TISSUES["skmtea"]) == {1, 3, 6}


@pytest.mark.parametrize("lateral_plus_x, side", [(True, "R"), (False, "L")])
def test_woo_tibial_cartilage_is_split_by_the_inferred_side(lateral_plus_x, side):
    harm = tiny_knee(lateral_plus_x)
    woo = woo_from(harm)
    assert set(np.unique(woo)) == {0, 1, 2, 3, 4, 5, 6, 7}
    assert infer_knee_side(harm == 1, harm == 3, np.isin(harm, [4, 5]), harm == 6, AFFINE) == side
    back = to_harmonised(woo, "woo", side="auto", affine=AFFINE)
    expected = np.where(np.isin(harm, [8, 9]), 0, harm)
    np.testing.assert_array_equal(back, expected)  # the lesion (7) became femur, plates split exactly
    np.testing.assert_array_equal(to_harmonised(woo, "woo", side=side, affine=AFFINE), expected)
    with pytest.raises(OAKitError, match="side"):
        to_harmonised(woo, "woo")
    assert subclass_map(woo, "woo")[5, 5, 12] == 7 and subclass_map(woo, "woo").sum() == 7


def test_compartment_cut_finds_the_gap_not_the_centroid():
    # unequal plates: 30 voxels at x 0-2, 10 voxels at x 6: the centroid (1.8) lies inside the big plate
    x = np.concatenate([np.repeat([0.0, 1.0, 2.0], 10), np.full(10, 6.0)])
    assert 2.0 < compartment_cut_x(x, 1.0) < 6.0
    # touching plates: the least-populated bin between them
    x = np.concatenate([np.repeat(np.arange(5.0), 10), [5.0], np.repeat(np.arange(6.0, 11.0), 10)])
    assert compartment_cut_x(x, 1.0) == pytest.approx(5.0)


def test_oaizib_reads_patella_bearing_maps():
    harm = tiny_knee()
    kneeseg = from_harmonised(harm, "oaizib", merge=True, drop=("medial_meniscus", "lateral_meniscus"))
    assert {5, 6} <= set(np.unique(kneeseg))
    back = to_harmonised(kneeseg, "oaizib", side="R", affine=AFFINE)
    np.testing.assert_array_equal(back, np.where(np.isin(harm, [8, 9]), 0, harm))


def test_pymskt_convention():
    pymskt = np.array([[[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]])
    np.testing.assert_array_equal(to_harmonised(pymskt, "pymskt")[0, 0], [0, 2, 4, 5, 7, 1, 3, 6, 0, 9, 8])
    np.testing.assert_array_equal(subclass_map(pymskt, "pymskt")[0, 0], [0] * 8 + [8, 0, 0])  # fibula kept apart
    with pytest.raises(OAKitError, match=r"values \[11\]"):
        to_harmonised(np.array([[[11]]]), "pymskt")


def test_spl_keeps_background_structures_as_subclasses():
    spl = np.array([[[0, 83, 84, 85, 86, 81, 82, 95, 96, 97, 98, 12, 9, 35, 3]]])
    harm = to_harmonised(spl, "spl")
    np.testing.assert_array_equal(harm[0, 0], [0, 2, 5, 4, 7, 9, 8, 1, 3, 0, 6, 0, 0, 0, 0])
    sub = subclass_map(spl, "spl")
    np.testing.assert_array_equal(sub[0, 0], [0] * 9 + [97, 0, 12, 9, 35, 3])
    assert SPL_BACKGROUND[97] == "fibula" and SPL_BACKGROUND[12] == "vastus_lateralis_muscle"
    # exporting to the SPL convention writes 0 for background, not one of the structures merged into it
    assert from_harmonised(np.zeros((1, 1, 1), np.uint8), "spl")[0, 0, 0] == 0


def test_cartimorph_and_skmtea_conventions():
    cm = np.array([[[0, 1, 2, 3, 4, 5]]])
    np.testing.assert_array_equal(to_harmonised(cm, "cartimorph"), to_harmonised(cm, "oaizib_cm"))
    np.testing.assert_array_equal(to_harmonised(cm, "cartimorph")[0, 0], [0, 1, 2, 3, 4, 5])
    onehot = np.zeros((1, 1, 6, 6), np.uint8)
    onehot[0, 0, np.arange(6), np.arange(6)] = 1
    np.testing.assert_array_equal(to_harmonised(onehot, "skmtea")[0, 0], [7, 2, 4, 5, 8, 9])


def test_infer_knee_side_needs_the_bones():
    harm = tiny_knee()
    with pytest.raises(OAKitError, match="femur"):
        infer_knee_side(np.zeros_like(harm, bool), harm == 3, harm == 4, None, AFFINE)


@pytest.mark.parametrize("lateral_plus_x, side", [(True, "R"), (False, "L")])
def test_anatomy_side_is_infer_knee_side_with_an_undecided_band(lateral_plus_x, side):
    harm = tiny_knee(lateral_plus_x)
    got, score = anatomy_side(harm, AFFINE)
    cues = knee_side_cues(harm == 1, harm == 3, np.isin(harm, [4, 5]), harm == 6, AFFINE)
    assert got == side == infer_knee_side(harm == 1, harm == 3, np.isin(harm, [4, 5]), harm == 6, AFFINE)
    assert score == pytest.approx(sum(cues.values())) and abs(score) >= SIDE_SCORE_MARGIN
    assert set(cues) == {"plateau_length", "tibia_offset", "patella_offset"}
    assert anatomy_side(np.where(harm == 1, 0, harm), AFFINE) == (None, 0.0)  # no femur: undecided, no error


def test_symmetric_anatomy_leaves_the_side_undecided():
    """Equal plates, tibia right under the femur, no patella: no cue says anything, so no side is claimed."""
    flat = np.zeros((20, 16, 16), dtype=np.uint8)
    flat[2:16, 3:13, 10:15] = 1
    flat[2:16, 3:13, 9] = 2
    flat[2:16, 3:13, 2:7] = 3
    flat[3:8, 4:12, 7], flat[10:15, 4:12, 7] = 4, 5
    assert anatomy_side(flat, AFFINE) == (None, 0.0)


def test_convention_names_and_aliases():
    assert label_convention("harmonised") == "synthetic" and label_convention("woo") == "woo"
    assert set(CONVENTION_NAMES) == {"harmonised", *CROSSWALKS}
    with pytest.raises(OAKitError, match="convention: unknown label convention 'ski10'; expected one of"):
        label_convention("ski10")


def test_read_nrrd_gives_an_ras_affine(tmp_path):
    nrrd = pytest.importorskip("nrrd")
    from oa_kit.io.nrrd import read_nrrd

    data = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    header = {
        "space": "left-posterior-superior",
        "space directions": np.diag([0.5, 0.6, 0.7]),
        "space origin": np.array([10.0, 20.0, 30.0]),
    }
    nrrd.write(str(tmp_path / "x.nrrd"), data, header)
    vol = read_nrrd(tmp_path / "x.nrrd")
    np.testing.assert_array_equal(vol.array, data)
    np.testing.assert_allclose(vol.affine[:3, :3], np.diag([-0.5, -0.6, 0.7]))
    np.testing.assert_allclose(vol.affine[:3, 3], [-10.0, -20.0, 30.0])
    assert vol.orientation == ("L", "P", "S")
    header["space"] = "scanner-xyz"
    nrrd.write(str(tmp_path / "y.nrrd"), data, header)
    with pytest.raises(OAKitError, match="y.nrrd: NRRD space"):
        read_nrrd(tmp_path / "y.nrrd")
    with pytest.raises(OAKitError, match="not found"):
        read_nrrd(tmp_path / "missing.nrrd")
