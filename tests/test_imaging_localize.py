"""Knee localisation and ROI cutting on synthetic DICOM radiographs (known joint centres) and edge cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from oa_kit.errors import OAKitError
from oa_kit.imaging import KneeROI, knee_rois
from oa_kit.imaging.localize import JointCentre, crop_roi
from oa_kit.io.radiograph import Radiograph, read_radiograph

SITES = ("A", "B", "C", "D")  # MONOCHROME2 raw, MONOCHROME1 raw, RLE, JPEG 2000 lossless


@pytest.fixture(scope="module")
def rendered_dicoms(tmp_path_factory) -> list[tuple[Path, object, object]]:
    """One bilateral DICOM per site (KL grades vary), written by the synthetic renderer: (path, rendered, site)."""
    from oa_kit.synth.radiograph import SITE_PROFILES, anatomy_from_grades, render_bilateral_pa, write_radiograph_dicom

    folder = tmp_path_factory.mktemp("xray")
    out = []
    for i, name in enumerate(SITES):
        site = SITE_PROFILES[name]
        kl_r, kl_l = i % 5, (i + 2) % 5
        right = anatomy_from_grades("R", kl_r, 5.0 - kl_r, 6.0 - 0.3 * kl_r, seed=i)
        left = anatomy_from_grades("L", kl_l, 5.0 - kl_l, 6.0 - 0.3 * kl_l, seed=10 + i)
        rendered = render_bilateral_pa(right, left, site, seed=100 + i)
        path = folder / f"S{name}_V00_PA.dcm"
        write_radiograph_dicom(path, rendered, site, f"S{name}", 0)
        out.append((path, rendered, site))
    return out


def error_mm(roi: KneeROI, truth: tuple[float, float], spacing: float) -> float:
    """Euclidean distance between the located and true joint centre, mm."""
    return math.hypot(roi.centre_px[0] - truth[0], roi.centre_px[1] - truth[1]) * spacing


def test_bilateral_error_below_5mm_across_sites(rendered_dicoms):
    seen = set()
    for path, rendered, site in rendered_dicoms:
        radiograph = read_radiograph(path)
        seen.add((radiograph.meta["photometric"], radiograph.meta["transfer_syntax"]))
        rois = knee_rois(radiograph)
        assert [r.side for r in rois] == ["R", "L"] and rois.qa_flags == ()
        for roi in rois:
            assert error_mm(roi, rendered.joint_centres_px[roi.side], rendered.spacing_mm) < 5.0, (site.site, roi.side)
    assert ("MONOCHROME1", "Explicit VR Little Endian") in seen
    assert any(ts in {"RLE Lossless", "JPEG 2000 Image Compression (Lossless Only)"} for _, ts in seen)


def test_roi_geometry_and_mirroring(rendered_dicoms):
    path, rendered, _ = rendered_dicoms[0]
    radiograph = read_radiograph(path)
    right, left = knee_rois(radiograph, roi_mm=140.0, out_spacing_mm=0.5)
    sp = radiograph.spacing_mm[0]
    for roi in (right, left):
        assert roi.pixels.shape == (280, 280) and roi.pixels.dtype == np.float32 and roi.spacing_mm == 0.5
        r0, c0, r1, c1 = roi.box_px
        assert (r1 - r0) * sp == pytest.approx(140.0, abs=sp) and (c1 - c0) * sp == pytest.approx(140.0, abs=sp)
        assert (r0 + r1) / 2 == pytest.approx(roi.centre_px[0], abs=1.0)
        assert (c0 + c1) / 2 == pytest.approx(roi.centre_px[1], abs=1.0)
    assert right.centre_px[1] < radiograph.pixels.shape[1] / 2 < left.centre_px[1]  # right knee in the left half
    assert not right.mirrored and left.mirrored
    # the left ROI is the left-right mirror of the same crop taken unmirrored
    centre = JointCentre("", *left.centre_px, 100.0, 10.0)
    unmirrored = crop_roi(radiograph, centre, 140.0, 0.5)
    np.testing.assert_array_equal(left.pixels, unmirrored.pixels[:, ::-1])
    # both knees end in right orientation: below the joint (fibula lateral) the mirrored left ROI matches the
    # right ROI better than the unmirrored crop does
    below = slice(160, 260)  # 10-60 mm below the joint line at 0.5 mm/px
    same = np.corrcoef(right.pixels[below].ravel(), left.pixels[below].ravel())[0, 1]
    flipped = np.corrcoef(right.pixels[below].ravel(), unmirrored.pixels[below].ravel())[0, 1]
    assert same > flipped + 0.03
    # resampling keeps the physical scale: 140 mm at 0.25 mm/px is 560 px
    assert knee_rois(radiograph, out_spacing_mm=0.25)[0].pixels.shape == (560, 560)


def test_padding_outside_the_image(rendered_dicoms):
    path, _, _ = rendered_dicoms[1]
    radiograph = read_radiograph(path)
    rois = knee_rois(radiograph, roi_mm=250.0)  # taller than the 180 mm field: must pad
    for roi in rois:
        assert "roi_padded" in roi.qa_flags and roi.box_px[0] < 0
        assert roi.pixels.shape == (500, 500)
        assert roi.pixels[0].max() == pytest.approx(radiograph.pixels.min())


def test_single_knee_passes_through_with_side(rendered_dicoms):
    path, rendered, _ = rendered_dicoms[2]
    full = read_radiograph(path)
    half = full.pixels.shape[1] // 2
    meta = dict(full.meta, laterality="R")
    single = Radiograph(full.pixels[:, :half].copy(), full.spacing_mm, full.qa_flags, full.source, meta)
    rois = knee_rois(single)
    assert len(rois) == 1 and rois[0].side == "R" and not rois[0].mirrored
    assert error_mm(rois[0], rendered.joint_centres_px["R"], rendered.spacing_mm) < 5.0
    as_left = knee_rois(single, side="L")
    assert as_left[0].side == "L" and as_left[0].mirrored
    unknown = Radiograph(single.pixels, single.spacing_mm, (), "x", {})
    roi = knee_rois(unknown)[0]
    assert roi.side == "" and "unknown_side" in roi.qa_flags and not roi.mirrored


def test_missing_spacing_single_crop_passthrough(rendered_dicoms):
    path, rendered, _ = rendered_dicoms[0]
    full = read_radiograph(path)
    r, c = (int(v) for v in rendered.joint_centres_px["R"])
    half = int(60 / full.spacing_mm[0])
    crop = full.pixels[max(0, r - half) : r + half, max(0, c - half) : c + half]  # a joint-centred crop like Chen 2018
    rois = knee_rois(Radiograph(crop, None, ("missing_spacing",), "crop.png", {}), side="R")
    assert len(rois) == 1
    roi = rois[0]
    assert math.isnan(roi.spacing_mm) and {"missing_spacing", "passthrough"} <= set(roi.qa_flags)
    assert roi.pixels.shape == (280, 280)
    assert roi.box_px[2] - roi.box_px[0] == roi.box_px[3] - roi.box_px[1] == max(crop.shape)


def test_missing_spacing_bilateral_is_located_in_pixels(rendered_dicoms):
    path, rendered, _ = rendered_dicoms[3]
    full = read_radiograph(path)
    rois = knee_rois(Radiograph(full.pixels, None, ("missing_spacing",), full.source, full.meta))
    assert [r.side for r in rois] == ["R", "L"]
    for roi in rois:
        assert math.isnan(roi.spacing_mm) and "missing_spacing" in roi.qa_flags and roi.pixels.shape == (280, 280)
        assert error_mm(roi, rendered.joint_centres_px[roi.side], rendered.spacing_mm) < 5.0


def test_one_knee_missing_in_bilateral(rendered_dicoms):
    path, _, _ = rendered_dicoms[0]
    full = read_radiograph(path)
    pixels = full.pixels.copy()
    pixels[:, pixels.shape[1] // 2 :] = np.percentile(pixels, 1)  # left knee absent (e.g. shielded)
    rois = knee_rois(Radiograph(pixels, full.spacing_mm, (), "x", {}))
    assert [r.side for r in rois] == ["R"] and rois.qa_flags == ("knee_not_found_L",)


def test_bilateral_mismatch_and_too_tall_field_are_rejected(rendered_dicoms):
    path, _, _ = rendered_dicoms[0]
    full = read_radiograph(path)
    sp = full.spacing_mm[0]
    pixels = full.pixels.copy()
    half = pixels.shape[1] // 2
    pixels[:, half:] = np.roll(pixels[:, half:], int(60 / sp), axis=0)  # left knee 60 mm lower than the right
    shifted = knee_rois(Radiograph(pixels, full.spacing_mm, (), "x", {}))
    assert list(shifted) == [] and shifted.qa_flags == ("no_knee_found", "bilateral_mismatch")
    background = float(np.percentile(full.pixels, 1))
    tall = np.pad(full.pixels, ((int(250 / sp), int(250 / sp)), (0, 0)), constant_values=background)
    rois = knee_rois(Radiograph(tall, full.spacing_mm, (), "long-leg", {}))
    assert list(rois) == [] and rois.qa_flags == ("no_knee_found", "field_too_tall")


@pytest.mark.parametrize("kind", ["blank", "noise", "gradient", "rectangle", "disc"])
def test_no_recognisable_knee_gives_flag_and_no_roi(kind):
    rng = np.random.default_rng(3)
    shape = (1000, 1500)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = {
        "blank": np.zeros(shape),
        "noise": rng.normal(1000, 100, shape),
        "gradient": xx * 2.0 + yy,
        "rectangle": 100 + 900 * ((np.abs(xx - 750) < 300) & (np.abs(yy - 500) < 300)) + rng.normal(0, 5, shape),
        "disc": 100 + 900 * (np.hypot(xx - 400, yy - 500) < 250) + rng.normal(0, 5, shape),
    }[kind].astype(np.float32)
    rois = knee_rois(Radiograph(image, (0.2, 0.2), (), kind, {}))
    assert list(rois) == [] and rois.qa_flags == ("no_knee_found",)


def test_bad_arguments():
    rg = Radiograph(np.zeros((50, 50), np.float32), (0.2, 0.2), (), "x", {})
    with pytest.raises(OAKitError, match="side"):
        knee_rois(rg, side="left")
    with pytest.raises(OAKitError, match="roi_mm"):
        knee_rois(rg, roi_mm=0)
    with pytest.raises(OAKitError, match="Radiograph"):
        knee_rois(np.zeros((50, 50)))


def test_vertical_shafts_without_joint_are_rejected():
    """Two bone-like vertical bars inside soft tissue (legs without a joint) are not knees."""
    rng = np.random.default_rng(5)
    xx = np.mgrid[0:900, 0:1400][1]
    image = 200.0 + 300.0 * ((np.abs(xx - 350) < 300) | (np.abs(xx - 1050) < 300))
    image += 500.0 * ((np.abs(xx - 350) < 150) | (np.abs(xx - 1050) < 150)) + rng.normal(0, 10, xx.shape)
    rois = knee_rois(Radiograph(image.astype(np.float32), (0.2, 0.2), (), "shafts", {}))
    assert list(rois) == [] and rois.qa_flags == ("no_knee_found",)


@pytest.mark.slow
def test_tiny_cohort_radiographs_match_truth(tiny_cohort):
    """Every knee of the tiny synthetic cohort's DICOMs is located within 5 mm of the generator's truth."""
    import pandas as pd

    knees = pd.read_parquet(tiny_cohort / "truth" / "knees.parquet")
    for pid, rows in knees.groupby("ID"):
        radiograph = read_radiograph(tiny_cohort / "xray" / f"{pid}_V00_PA.dcm")
        found = {roi.side: roi for roi in knee_rois(radiograph)}
        for row in rows.itertuples():
            truth = (row.joint_centre_row, row.joint_centre_col)
            assert error_mm(found[row.side], truth, row.xray_spacing_mm) < 5.0, (pid, row.side)


@pytest.mark.shared_data
def test_real_chen_crops_pass_through(chen_dir):
    """Real joint-centred Chen 2018 crops (no spacing) are recognised and pass through whole, mirrored when left."""
    import pandas as pd

    manifest = pd.read_csv(chen_dir / "manifest.csv")
    sample = manifest[manifest["split"] == "val"].sample(20, random_state=0)
    recognised = 0
    for row in sample.itertuples():
        radiograph = read_radiograph(chen_dir / row.path)
        rois = knee_rois(radiograph, side=row.side)
        if rois:
            recognised += 1
            roi = rois[0]
            assert roi.side == row.side and roi.mirrored == (row.side == "L")
            assert "passthrough" in roi.qa_flags and math.isnan(roi.spacing_mm)
            assert roi.box_px == (0, 0, *radiograph.pixels.shape)
    assert recognised >= 18


@pytest.mark.parametrize("name", ["CT_small.dcm", "liver_1frame.dcm", "JPGExtended.dcm", "693_J2KI.dcm"])
def test_real_non_knee_dicoms_get_no_knee_found(name):
    """Real non-knee images shipped with pydicom (CT slices, a whole-body bone scan) give no ROI."""
    from pydicom.data import get_testdata_file

    rois = knee_rois(read_radiograph(get_testdata_file(name)))
    assert list(rois) == [] and "no_knee_found" in rois.qa_flags
