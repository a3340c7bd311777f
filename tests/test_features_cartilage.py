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
    r = np.sqrt(sum(g**2 for g in grids))
    r1, r2 = 9.0, 11.4
    bone = (np.clip(0.5 - (r - r1) / sp.min(), 0, 1)).astype(np.float32)
    cart = (np.clip(0.5 - (r - r2) / sp.min(), 0, 1) - bone).astype(np.float32)
    surf = plate_thickness(cart, bone, np.diag([*sp, 1.0]), label=2)
    th = surf.thickness_mm[surf.covered]
    assert surf.covered.mean() > 0.95
    assert abs(np.average(th, weights=surf.area_mm2[surf.covered]) - (r2 - r1)) < 0.05
    # binary masks (no partial volume) stay close as well
    binary = plate_thickness(
        ((r > r1) & (r <= r2)).astype(np.float32), (r <= r1).astype(np.float32), np.diag([*sp, 1.0]), 2
    )
    assert abs(binary.thickness_mm[binary.covered].mean() - (r2 - r1)) < 0.1


def test_full_thickness_loss_hole_area():
    h = 0.5
    z = np.arange(30) * h
    shape = (60, 60, 30)
    bone = np.broadcast_to(_ramp(z, -10.0, 4.0, h), shape).astype(np.float32).copy()
    cart = np.broadcast_to(_ramp(z, 4.0, 6.0, h), shape).astype(np.float32).copy()
    yy, xx = np.meshgrid(np.arange(60) * h, np.arange(60) * h)
    hole = (xx - 15.0) ** 2 + (yy - 15.0) ** 2 < 4.0**2  # radius 4 mm -> 50.3 mm^2
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
    assert list(model.transform(pts)) == [
        "femoral_medial_central",
        "femoral_medial_anterior",
        "femoral_medial_posterior",
        "femoral_lateral_central",
    ]
    assert FemoralSubregions("L").fit(pts, iface).transform(pts)[0] == "femoral_lateral_central"


def _toy_knee(affine_scale=(1.0, 0.5, 0.5)):
    """A blocky knee: femur + femoral cartilage on top of tibia + tibial cartilage (medial at -x)."""
    lab = np.zeros((24, 40, 40), dtype=np.uint8)
    lab[2:22, 5:35, 24:38] = 1  # femur
    lab[2:22, 5:35, 20:24] = 2  # femoral cartilage 2 mm
    lab[2:22, 5:35, 2:14] = 3  # tibia
    lab[2:11, 5:35, 14:18] = 4  # medial tibial cartilage (low x = -x)
    lab[13:22, 5:35, 14:19] = 5  # lateral, 2.5 mm
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
    measured = measure_cartilage(lab, aff, "L")
    fig = thickness_map_figure(lab, measured.thickness_map, aff, "L", title="toy")
    assert len(fig.data) == 2 and {t.type for t in fig.data} == {"heatmap"}  # femur, tibia (no patella in the toy)
    tibia = np.asarray(fig.data[1].z, dtype=float)
    assert np.nanpercentile(tibia, 75) == pytest.approx(2.5, abs=0.05)
    assert np.nanpercentile(tibia, 25) == pytest.approx(2.0, abs=0.05)
    assert np.isnan(tibia).any() and np.isfinite(tibia).mean() > 0.5  # cells without cartilage stay empty
    assert "L knee" in fig.layout.title.text


# ---------------------------------------------------------------------------------------------- more analytic shapes
def _supersampled(inside, shape, spacing, factor=4):
    """Partial-volume occupancy of ``inside(x, y, z)`` (mm, voxel centres at index * spacing) by supersampling."""
    offs = (np.arange(factor) + 0.5) / factor - 0.5
    axes = [(np.arange(n)[:, None] + offs[None, :]).ravel() * s for n, s in zip(shape, spacing)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    fine = inside(x, y, z).astype(np.float32)
    return fine.reshape(shape[0], factor, shape[1], factor, shape[2], factor).mean(axis=(1, 3, 5))


@pytest.mark.parametrize(
    "spacing, normal",
    [
        ((2.0, 0.5, 0.5), (0.0, 0.42, 0.91)),  # thick sagittal slices, in-plane tilt
        ((0.6, 0.6, 0.6), (0.3, 0.4, 0.87)),
    ],
)  # oblique to every axis
def test_tilted_slab_thickness(spacing, normal):
    """A slab whose normal is oblique to the grid: the normal-ray thickness stays within 0.05 mm."""
    sp, n = np.array(spacing), np.array(normal) / np.linalg.norm(normal)
    shape = tuple(int(v) for v in np.ceil(np.array([24.0, 20.0, 20.0]) / sp))
    thickness, d0 = 2.3, float(n @ (np.array(shape) * sp / 2))
    dist = lambda x, y, z: n[0] * x + n[1] * y + n[2] * z  # noqa: E731
    bone = _supersampled(lambda x, y, z: dist(x, y, z) < d0, shape, sp, factor=(2 if sp[0] > 1 else 3))
    cart = _supersampled(
        lambda x, y, z: (dist(x, y, z) >= d0) & (dist(x, y, z) < d0 + thickness),
        shape,
        sp,
        factor=(2 if sp[0] > 1 else 3),
    )
    surf = plate_thickness(cart, bone, np.diag([*sp, 1.0]), label=4)
    inner = np.all((surf.points_mm > 5.0) & (surf.points_mm < np.array(shape) * sp - 5.0), axis=1)
    assert surf.covered[inner].mean() > 0.95
    assert (
        abs(
            np.average(surf.thickness_mm[inner & surf.covered], weights=surf.area_mm2[inner & surf.covered]) - thickness
        )
        < 0.05
    )
    assert np.median(surf.normals[inner] @ n) > 0.99  # rays follow the true normal


def test_tapered_cap_local_thickness_and_rim():
    """Patella-like cap whose cartilage tapers to zero at the rim (as the phantom's does).

    Where the voxels resolve the cartilage the normal-ray thickness matches the analytic value within 0.05 mm, so the
    plate mean matches the analytic mean over the part thicker than half a voxel. Only the sub-voxel rim is missed:
    the analytic mean over everything > 0 (down to 0.01 mm) is lower, which is the resolution limit of any voxel method.
    """
    h, R, peak, phi_max, width = 0.5, 14.0, 2.6, 45.0, 8.0
    shape = (72, 48, 72)
    centre = np.array([18.0, 8.0 + R, 18.0])  # cap faces -y

    def taper(x, y, z):
        d = np.stack([x - centre[0], y - centre[1], z - centre[2]])
        r = np.linalg.norm(d, axis=0)
        phi = np.degrees(np.arccos(np.clip(-(y - centre[1]) / np.maximum(r, 1e-9), -1, 1)))
        v = np.clip((phi_max - phi) / width, 0.0, 1.0)
        return r, peak * v * v * (3 - 2 * v)

    def in_cartilage(x, y, z):
        r, t = taper(x, y, z)
        return (r >= R) & (r < R + t)

    bone = _supersampled(lambda x, y, z: taper(x, y, z)[0] < R, shape, (h, h, h), factor=3)
    cart = _supersampled(in_cartilage, shape, (h, h, h), factor=3)
    surf = plate_thickness(cart, bone, np.diag([h, h, h, 1.0]), label=7)
    p = surf.points_mm
    _, t_true = taper(p[:, 0], p[:, 1], p[:, 2])
    cov, w = surf.covered, surf.area_mm2
    local = np.average(surf.thickness_mm[cov] - t_true[cov], weights=w[cov])
    assert abs(local) < 0.05
    resolved = t_true >= h / 2
    mean = np.average(surf.thickness_mm[cov], weights=w[cov])
    assert abs(mean - np.average(t_true[resolved], weights=w[resolved])) < 0.05
    assert not np.any(~cov & (t_true > 2 * h))  # nothing thicker than 2 voxels is missed
    everything = t_true > 0.01
    assert np.average(t_true[everything], weights=w[everything]) < mean - 0.02  # the sub-voxel rim lowers the full mean


# ------------------------------------------------------------------------------- fast paths against plain references
def _reference_ray_thickness(cartilage, points, normals, spacing, max_mm=10.0):
    """The first-segment rule on the whole sampled profile of every ray (no early stop)."""
    from scipy import ndimage

    step = float(spacing.min()) / 5.0
    back = np.abs(normals) @ spacing
    t = np.arange(-float(spacing.max()), max_mm + step, step)
    pts = points[:, None, :] + t[None, :, None] * normals[:, None, :]
    occ = np.clip(
        ndimage.map_coordinates(cartilage, (pts / spacing).reshape(-1, 3).T, order=1, mode="constant").reshape(
            pts.shape[:-1]
        ),
        0,
        1,
    )
    occ[t[None, :] < -back[:, None]] = 0.0
    out, cov = np.zeros(len(points)), np.zeros(len(points), dtype=bool)
    for i, row in enumerate(occ):
        hi = np.flatnonzero(row >= 0.5)
        if not len(hi):
            continue
        zeros = np.flatnonzero(row < 1e-3)
        start = zeros[zeros < hi[0]].max() + 1 if np.any(zeros < hi[0]) else 0
        end = zeros[zeros > hi[0]].min() if np.any(zeros > hi[0]) else len(row)
        if t[start] <= back[i] + step:
            out[i], cov[i] = row[start:end].sum() * step, True
    return out, cov


def test_ray_marching_matches_full_profile_rule():
    """Early-stopping ray marching gives exactly the first-segment integral of the full profile, on a messy field."""
    from scipy import ndimage

    from oa_kit.features.cartilage import ray_thickness

    rng = np.random.default_rng(0)
    spacing = np.array([1.5, 0.5, 0.5])
    field = ndimage.gaussian_filter(rng.random((16, 40, 40)), 1.5).astype(np.float32)
    field = np.clip((field - field.mean()) / field.std() * 0.6 + 0.3, 0, 1).astype(np.float32)
    points = rng.uniform([3, 3, 3], [20, 17, 17], size=(400, 3))
    normals = rng.normal(size=(400, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    got, got_cov = ray_thickness(field, points, normals, spacing, max_mm=6.0)
    ref, ref_cov = _reference_ray_thickness(field, points, normals, spacing, max_mm=6.0)
    assert got_cov.sum() > 50 and (~got_cov).sum() > 50  # both outcomes exercised
    np.testing.assert_array_equal(got_cov, ref_cov)
    np.testing.assert_allclose(got, ref, atol=1e-5)  # reference sums in float32


def test_fcl_vectorised_gap_test_matches_per_point_rule():
    """Vectorised full-thickness-loss flags equal the per-point angular-gap rule (rim, notch and hole points)."""
    from scipy.spatial import cKDTree

    from oa_kit.features.cartilage import full_thickness_loss

    g = np.arange(0.0, 30.0, 0.5)
    x, y = np.meshgrid(g, g, indexing="ij")
    pts = np.column_stack([x.ravel(), y.ravel(), 0.02 * x.ravel() ** 1.5])
    normals = np.tile([0.0, 0.0, 1.0], (len(pts), 1))
    normals[: len(pts) // 7] = [0.0, 0.6, 0.8]  # some faces turned away
    covered = ((pts[:, 0] - 15) ** 2 + (pts[:, 1] - 12) ** 2 > 9.0) & (pts[:, 0] < 26) & (np.abs(pts[:, 1] - 20) > 1.0)
    got = full_thickness_loss(pts, normals, covered)
    expect = np.zeros(len(pts), dtype=bool)
    cov = pts[covered]
    _, keep = np.unique(np.round(cov).astype(np.int64), axis=0, return_index=True)
    anchors, an = cov[keep], normals[covered][keep]
    tree = cKDTree(anchors)
    for i in np.flatnonzero(~covered):
        nb = np.asarray(tree.query_ball_point(pts[i], r=6.0), dtype=int)
        if len(nb) < 6:
            continue
        m = an[nb].mean(axis=0)
        m /= np.linalg.norm(m)
        if m @ normals[i] < 0.9:
            continue
        u = np.cross(m, [1.0, 0.0, 0.0] if abs(m[0]) < 0.9 else [0.0, 1.0, 0.0])
        u /= np.linalg.norm(u)
        vec = anchors[nb] - pts[i]
        ang = np.sort(np.degrees(np.arctan2(vec @ np.cross(m, u), vec @ u)))
        expect[i] = np.max(np.diff(np.r_[ang, ang[0] + 360.0])) < 100.0
    assert expect.sum() > 10 and (~covered & ~expect).sum() > 10
    np.testing.assert_array_equal(got, expect)


def test_measurement_does_not_depend_on_field_of_view_padding():
    """Cropping to each plate is exact: a knee padded with empty space measures the same."""
    lab, aff = _toy_knee()
    pad = ((7, 3), (5, 11), (2, 9))
    big = np.pad(lab, pad)
    big_aff = aff.copy()
    big_aff[:3, 3] -= aff[:3, :3] @ np.array([p[0] for p in pad], dtype=float)
    proba = np.stack([(big == k) for k in range(10)]).astype(np.float32) * 0.9 + 0.01
    inner = tuple(slice(p[0], p[0] + n) for p, n in zip(pad, lab.shape))
    small = measure_cartilage(lab, aff, "R", proba=proba[(slice(None), *inner)])
    padded = measure_cartilage(big, big_aff, "R", proba=proba)
    a = small.subregion_table().set_index("subregion")
    b = padded.subregion_table().set_index("subregion")
    np.testing.assert_allclose(a.to_numpy(dtype=float), b.to_numpy(dtype=float), atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(padded.thickness_map[inner], small.thickness_map, atol=1e-6)
    assert padded.thickness_map.sum() == pytest.approx(small.thickness_map.sum(), abs=1e-3)


def test_full_thickness_loss_on_thick_slices():
    """On 2 mm sagittal slices FCL points fall only inside a real hole, and a healthy phantom knee shows almost no FCL
    (vertices between slices on slanted bone used to read as denuded bone: 20-60 mm^2 per healthy knee)."""
    from oa_kit.io.labels import SUBREGIONS
    from oa_kit.synth.mri import DEFAULT_GEOMETRY, render_knee_mri

    sp = np.array([2.0, 0.5, 0.5])
    z = np.arange(30) * sp[2]
    shape = (20, 60, 30)
    bone = np.broadcast_to(_ramp(z, -10.0, 4.0, sp[2]), shape).astype(np.float32).copy()
    cart = np.broadcast_to(_ramp(z, 4.0, 6.0, sp[2]), shape).astype(np.float32).copy()
    xx, yy = np.meshgrid(np.arange(20) * sp[0], np.arange(60) * sp[1], indexing="ij")
    cart[(xx - 20.0) ** 2 + (yy - 15.0) ** 2 < 4.5**2] = 0.0
    surf = plate_thickness(cart, bone, np.diag([*sp, 1.0]), label=4)
    inside = (surf.points_mm[:, 0] - 20.0) ** 2 + (surf.points_mm[:, 1] - 15.0) ** 2 < 4.5**2
    assert surf.fcl.any() and not np.any(surf.fcl & ~inside)
    r = render_knee_mri("R", {s: 2.0 for s in SUBREGIONS}, DEFAULT_GEOMETRY, seed=6)
    m = measure_cartilage(r.labels, r.affine, "R")
    assert m.subregion_table()["fcl_area_mm2"].sum() < 15.0
