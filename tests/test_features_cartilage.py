"""Cartilage biomarkers on analytic shapes (slab, spherical shell) with known thickness, FCL, subregions, NIfTI maps."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from oa_kit.errors import OAKitError
from oa_kit.features.cartilage import measure_cartilage, plate_thickness, write_map_nifti
from oa_kit.features.subregions import FemoralSubregions, fit_circle


def _ramp(coord: np.ndarray, lo: float, hi: float, h: float) -> np.ndarray:
    """Partial-volume occupancy of [lo, hi] for voxels of size h centred at ``coord``."""
    return np.clip((np.minimum(coord + h / 2, hi) - np.maximum(coord - h / 2, lo)) / h, 0.0, 1.0)


@pytest.mark.parametrize("thickness", [1.1, 2.0, 2.35])
def test_slab_thickness_partial_volume(thickness):
    h = 0.5
    z = np.arange(40) * h
    bone = np.broadcast_to(_ramp(z, -10.0, 5.0, h), (30, 30, 40)).astype(np.float32).copy()
    cart = np.broadcast_to(_ramp(z, 5.0, 5.0 + thickness, h), (30, 30, 40)).astype(np.float32).copy()
    surf = plate_thickness(cart, bone, np.diag([h, h, h, 1.0]), label=4)
    assert surf.covered.mean() > 0.95
    assert abs(surf.thickness_mm[surf.covered].mean() - thickness) < 0.05
    assert abs(np.nanmean(surf.thickness_cp_mm) - thickness) < 0.1


@pytest.mark.parametrize("spacing", [(0.5, 0.5, 0.5), (1.0, 0.4, 0.4)])
def test_spherical_shell_thickness(spacing):
    sp = np.array(spacing)
    n = np.ceil(30 / sp).astype(int)
    grids = np.meshgrid(*[(np.arange(k) - k / 2) * s for k, s in zip(n, sp)], indexing="ij")
    r = np.sqrt(sum(g ** 2 for g in grids))
    r1, r2 = 9.0, 11.4
    bone = (np.clip(0.5 - (r - r1) / sp.min(), 0, 1)).astype(np.float32)
    cart = (np.clip(0.5 - (r - r2) / sp.min(), 0, 1) - bone).astype(np.float32)
    surf = plate_thickness(cart, bone, np.diag([*sp, 1.0]), label=2)
    th = surf.thickness_mm[surf.covered]
    assert surf.covered.mean() > 0.95
    assert abs(np.average(th, weights=surf.area_mm2[surf.covered]) - (r2 - r1)) < 0.05
    # binary masks (no partial volume) stay close as well
    binary = plate_thickness(((r > r1) & (r <= r2)).astype(np.float32), (r <= r1).astype(np.float32), np.diag([*sp, 1.0]), 2)
    assert abs(binary.thickness_mm[binary.covered].mean() - (r2 - r1)) < 0.1


def test_full_thickness_loss_hole_area():
    h = 0.5
    z = np.arange(30) * h
    shape = (60, 60, 30)
    bone = np.broadcast_to(_ramp(z, -10.0, 4.0, h), shape).astype(np.float32).copy()
    cart = np.broadcast_to(_ramp(z, 4.0, 6.0, h), shape).astype(np.float32).copy()
    yy, xx = np.meshgrid(np.arange(60) * h, np.arange(60) * h)
    hole = (xx - 15.0) ** 2 + (yy - 15.0) ** 2 < 4.0 ** 2          # radius 4 mm -> 50.3 mm^2
    cart[hole] = 0.0
    surf = plate_thickness(cart, bone, np.diag([h, h, h, 1.0]), label=4)
    area = surf.area_mm2[surf.fcl].sum()
    assert area == pytest.approx(np.pi * 16.0, rel=0.25)
    assert not surf.fcl[surf.covered].any()


def test_fit_circle_and_femoral_sectors():
    ang = np.linspace(-2.5, 2.5, 200)
    y, z = 3.0 + 20.0 * np.sin(ang), -4.0 - 20.0 * np.cos(ang)
    cy, cz, rad = fit_circle(y, z)
    assert (cy, cz, rad) == pytest.approx((3.0, -4.0, 20.0), abs=1e-6)
    pts = np.array([[-10.0, 3.0, -24.0], [-10.0, 3.0 + 20.0, -4.0], [-10.0, 3.0 - 20.0, -4.0], [10.0, 3.0, -24.0]])
    iface = np.column_stack([np.where(np.arange(200) % 2, -10.0, 10.0), y, z])
    model = FemoralSubregions("R").fit(pts, iface)
    assert list(model.transform(pts)) == ["femoral_medial_central", "femoral_medial_anterior",
                                          "femoral_medial_posterior", "femoral_lateral_central"]
    assert FemoralSubregions("L").fit(pts, iface).transform(pts)[0] == "femoral_lateral_central"


def _toy_knee(affine_scale=(1.0, 0.5, 0.5)):
    """A blocky knee: femur + femoral cartilage on top of tibia + tibial cartilage (medial at -x)."""
    lab = np.zeros((24, 40, 40), dtype=np.uint8)
    lab[2:22, 5:35, 24:38] = 1          # femur
    lab[2:22, 5:35, 20:24] = 2          # femoral cartilage 2 mm
    lab[2:22, 5:35, 2:14] = 3           # tibia
    lab[2:11, 5:35, 14:18] = 4          # medial tibial cartilage (low x = -x)
    lab[13:22, 5:35, 14:19] = 5         # lateral, 2.5 mm
    aff = np.diag([*affine_scale, 1.0])
    aff[:3, 3] = (-12.0, -10.0, -10.0)
    return lab, aff


def test_measure_knee_table_and_nifti_affine(tmp_path):
    lab, aff = _toy_knee()
    m = measure_cartilage(lab, aff, "R")
    table = m.subregion_table().set_index("subregion")
    # box plates: the median is the plate thickness; square rims pull the mean down a little
    assert table.loc["tibial_medial", "thickness_mm_median"] == pytest.approx(2.0, abs=0.05)
    assert table.loc["tibial_lateral", "thickness_mm_median"] == pytest.approx(2.5, abs=0.05)
    assert table.loc["tibial_medial", "thickness_mm_mean"] == pytest.approx(2.0, abs=0.25)
    assert m.volume_mm3["medial_tibial_cartilage"] == pytest.approx(9 * 30 * 4 * 0.25)
    assert set(np.unique(m.subregion_map[lab == 2])) <= set(range(1, 7))
    assert np.all(m.thickness_map[lab == 4] > 0) and np.all(m.thickness_map[lab == 0] == 0)
    row = m.to_row()
    assert "thickness_mm_p05_tibial_medial" in row and "fcl_area_mm2_patellar" in row
    oblique = aff.copy()
    rot = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    oblique[:3, :3] = rot @ aff[:3, :3]
    path = write_map_nifti(tmp_path / "thickness.nii.gz", m.thickness_map, oblique)
    img = nib.load(str(path))
    assert np.allclose(img.affine, oblique) and np.allclose(img.get_qform(), oblique)
    assert np.allclose(np.asarray(img.dataobj), m.thickness_map)


def test_measure_rejects_bad_inputs():
    lab, aff = _toy_knee()
    with pytest.raises(OAKitError, match="side"):
        measure_cartilage(lab, aff, "X")
    sheared = aff.copy()
    sheared[0, 1] = 0.4
    with pytest.raises(OAKitError, match="orthogonal"):
        measure_cartilage(lab, sheared, "R")
    with pytest.raises(OAKitError, match="3D"):
        measure_cartilage(lab[0], aff, "R")


def test_projected_thickness_figure():
    from oa_kit.viz.thickness import thickness_map_figure

    lab, aff = _toy_knee()
    fig = thickness_map_figure(measure_cartilage(lab, aff, "L"), title="toy")
    assert len(fig.data) == 2                                   # femur and tibia panels (no patella in the toy)
    tibia = np.asarray(fig.data[1].marker.color)
    assert np.percentile(tibia, 75) == pytest.approx(2.5, abs=0.05) and np.percentile(tibia, 25) == pytest.approx(2.0, abs=0.05)
    assert "L knee" in fig.layout.title.text
