"""Tests for the synthetic bilateral PA knee radiograph: DICOM per site, determinism, KL and osteophytes in pixels."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pydicom
import pytest
from scipy import ndimage

from oa_kit.errors import OAKitError
from oa_kit.io.radiograph import read_radiograph
from oa_kit.synth.radiograph import (
    COMPARTMENT_OFFSET_MM,
    SERIES_DESCRIPTION,
    SITE_PROFILES,
    KneeAnatomy,
    RadiographSite,
    anatomy_from_grades,
    render_bilateral_pa,
    write_radiograph_dicom,
)

# Medial JSW (mm) typical of KL 0..4; the lateral compartment stays normal.
KL_SWEEP_MEDIAL_JSW = {0: 5.8, 1: 5.0, 2: 3.9, 3: 2.5, 4: 1.0}
LATERAL_JSW = 6.4
SMALL_FIELD_MM = (140.0, 250.0)  # smaller than the default field to keep the tests fast


def _measure_jsw_mm(pixels: np.ndarray, centre_px: tuple[float, float], spacing_mm: float) -> float:
    """Joint-space width (mm) along the vertical line through ``centre_px``: distance between the bone edges.

    The profile (mean of a 3 mm-wide strip, 10 mm up and down) is smoothed and re-centred on its darkest point
    within 4 mm; the femoral edge is the steepest fall above that point and the tibial edge the steepest rise below.
    """
    row, col = (int(round(v)) for v in centre_px)
    half, reach, near = max(1, int(1.5 / spacing_mm)), int(10.0 / spacing_mm), int(4.0 / spacing_mm)
    strip = pixels[row - reach : row + reach + 1, col - half : col + half + 1].astype(float)
    profile = ndimage.gaussian_filter1d(strip.mean(axis=1), 0.1 / spacing_mm)
    darkest = ndimage.gaussian_filter1d(profile, 0.5 / spacing_mm)[reach - near : reach + near + 1]
    centre = reach - near + int(np.argmin(darkest))
    slope = np.gradient(profile)
    femoral_edge = int(np.argmin(slope[: centre + 1]))
    tibial_edge = centre + int(np.argmax(slope[centre:]))
    return (tibial_edge - femoral_edge) * spacing_mm


def _bony_width_mm(image, side: str, jsw_mm: float, femoral: bool) -> float:
    """Bony width (mm) of the femur just above (or the tibia just below) the joint line, margin to margin.

    In a 6 mm band beside the joint space the column-wise maximum is followed outward from each compartment centre
    until it falls below 30% of the way from the soft tissue 24 mm outward to the bone at the compartment.
    """
    sp = image.spacing_mm
    pixels = ndimage.gaussian_filter(image.pixels.astype(float), 0.3 / sp)
    ends = {}
    for compartment in ("medial", "lateral"):
        row, col = image.compartment_centres_px[side][compartment]
        offsets = np.arange(jsw_mm / 2 + 0.6, jsw_mm / 2 + 6.0, sp) / sp
        rows = np.round(row - offsets if femoral else row + offsets).astype(int)
        band = pixels[rows].max(axis=0)
        bone = np.median(band[int(col) - int(8 / sp) : int(col) + int(8 / sp)])
        outward = 1 if (compartment == "medial") == (side == "R") else -1
        c = int(round(col))
        soft = band[c + outward * int(24 / sp)]
        while band[c] > soft + 0.3 * (bone - soft):
            c += outward
        ends[compartment] = c
    return abs(ends["medial"] - ends["lateral"]) * sp


@pytest.fixture(scope="module")
def kl_sweep() -> dict[int, object]:
    """One radiograph per KL grade 0-4 (site A), both knees with the same grade."""
    images = {}
    for kl, jsw in KL_SWEEP_MEDIAL_JSW.items():
        right = anatomy_from_grades("R", kl, jsw, LATERAL_JSW, jsn_medial=min(kl, 3), seed=kl)
        left = anatomy_from_grades("L", kl, jsw, LATERAL_JSW, jsn_medial=min(kl, 3), seed=10 + kl)
        images[kl] = render_bilateral_pa(right, left, SITE_PROFILES["A"], seed=100 + kl, field_mm=SMALL_FIELD_MM)
    return images


def test_measured_jsw_falls_with_kl_and_matches_input(kl_sweep):
    """KL is recoverable from pixels: medial JSW measured at the true centres is within 0.5 mm and falls with KL."""
    for side in ("R", "L"):
        measured = []
        for kl, image in kl_sweep.items():
            medial = _measure_jsw_mm(image.pixels, image.compartment_centres_px[side]["medial"], image.spacing_mm)
            lateral = _measure_jsw_mm(image.pixels, image.compartment_centres_px[side]["lateral"], image.spacing_mm)
            assert abs(medial - KL_SWEEP_MEDIAL_JSW[kl]) <= 0.5, (side, kl, medial)
            assert abs(lateral - LATERAL_JSW) <= 0.5, (side, kl, lateral)
            measured.append(medial)
        assert np.all(np.diff(measured) < 0), (side, measured)


@pytest.mark.parametrize("site_code", ["B", "E"])
def test_measured_jsw_matches_input_at_coarse_sites(site_code):
    """Coarser spacing and stronger blur (sites B, E) still give JSW within 0.5 mm."""
    right = KneeAnatomy("R", 4.5, 2.0)
    left = KneeAnatomy("L", 1.5, 6.0)
    image = render_bilateral_pa(right, left, SITE_PROFILES[site_code], seed=7, field_mm=SMALL_FIELD_MM)
    truth = {("R", "medial"): 4.5, ("R", "lateral"): 2.0, ("L", "medial"): 1.5, ("L", "lateral"): 6.0}
    for (side, compartment), jsw in truth.items():
        got = _measure_jsw_mm(image.pixels, image.compartment_centres_px[side][compartment], image.spacing_mm)
        assert abs(got - jsw) <= 0.5, (site_code, side, compartment, got)


def test_osteophytes_widen_bone_at_joint_margins():
    """Longer marginal osteophytes give a wider femur above and tibia below the joint line, on both knees."""
    widths = {}
    for length in (0.0, 2.5, 5.0):
        spurs = dict.fromkeys(("FM", "FL", "TM", "TL"), length)
        right, left = KneeAnatomy("R", 4.0, 5.0, spurs), KneeAnatomy("L", 4.0, 5.0, spurs)
        image = render_bilateral_pa(right, left, SITE_PROFILES["A"], seed=3, field_mm=SMALL_FIELD_MM)
        widths[length] = {
            (side, femoral): _bony_width_mm(image, side, 4.5, femoral)
            for side in ("R", "L")
            for femoral in (True, False)
        }
    for key in widths[0.0]:
        series = [widths[length][key] for length in (0.0, 2.5, 5.0)]
        assert series[1] > series[0] + 1.5 and series[2] > series[1] + 1.5, (key, series)


def test_geometry_and_contrast_of_rendered_image(kl_sweep):
    """Right knee in the image's left half, medial sides toward the centre; bone brighter than the joint space."""
    image = kl_sweep[0]
    rows, cols = image.pixels.shape
    assert image.pixels.dtype == np.uint16 and image.pixels.max() < 2**image.bits_stored
    assert (rows, cols) == (round(SMALL_FIELD_MM[0] / 0.15), round(SMALL_FIELD_MM[1] / 0.15))
    (r_row, r_col), (l_row, l_col) = image.joint_centres_px["R"], image.joint_centres_px["L"]
    assert r_col < cols / 2 < l_col and abs(r_row - rows / 2) < 15 / 0.15 and abs(l_row - rows / 2) < 15 / 0.15
    assert 120 / 0.15 < l_col - r_col < 180 / 0.15
    assert image.compartment_centres_px["R"]["medial"][1] > r_col > image.compartment_centres_px["R"]["lateral"][1]
    assert image.compartment_centres_px["L"]["medial"][1] < l_col < image.compartment_centres_px["L"]["lateral"][1]
    row, col = (int(round(v)) for v in image.compartment_centres_px["R"]["medial"])
    gap = image.pixels[row - 2 : row + 3, col - 5 : col + 6].mean()
    femur = image.pixels[row - int(15 / 0.15), col - 5 : col + 6].mean()
    air = image.pixels[row, cols // 2 - 3 : cols // 2 + 4].mean()
    assert femur > gap + 200 and gap > air


def test_varus_moves_tibial_shaft_medially():
    """A varus knee's tibial shaft lies further toward the medial side 70 mm below the joint line."""
    centres = []
    for varus in (0.0, 8.0):
        right, left = KneeAnatomy("R", 2.0, 6.0, varus_deg=varus), KneeAnatomy("L", 5.0, 6.0)
        image = render_bilateral_pa(right, left, SITE_PROFILES["A"], seed=5)
        row, col = image.joint_centres_px["R"]
        line = ndimage.gaussian_filter1d(image.pixels[int(row + 70 / 0.15)].astype(float), 5)
        window = line[int(col - 40 / 0.15) : int(col + 40 / 0.15)]
        bone = window > np.percentile(window, 70)
        centres.append((np.flatnonzero(bone).mean() + int(col - 40 / 0.15) - col) * 0.15)
    assert centres[1] > centres[0] + 5.0, centres


@pytest.fixture(scope="module")
def site_images() -> dict[str, object]:
    """One rendering per site profile at the default field."""
    right = anatomy_from_grades("R", 2, 4.0, 6.0, seed=1)
    left = anatomy_from_grades("L", 3, 2.5, 6.0, jsn_medial=2, seed=2)
    return {code: render_bilateral_pa(right, left, site, seed=11) for code, site in SITE_PROFILES.items()}


@pytest.mark.parametrize("site_code", sorted(SITE_PROFILES))
def test_dicom_opens_with_site_geometry_and_decodes(tmp_path, site_images, site_code):
    """Each site's DICOM decodes (uncompressed, RLE, JPEG 2000) to the rendered pixels with the right header."""
    site, image = SITE_PROFILES[site_code], site_images[site_code]
    path = tmp_path / f"9000001_V00_PA_{site_code}.dcm"
    write_radiograph_dicom(path, image, site, "9000001", 0)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == getattr(pydicom.uid, site.transfer_syntax)
    assert (ds.Rows, ds.Columns) == image.pixels.shape
    assert ds.PhotometricInterpretation == site.photometric
    assert [float(v) for v in ds.ImagerPixelSpacing] == [site.spacing_mm] * 2
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, site.bits_stored, site.bits_stored - 1)
    assert (ds.Modality, ds.ViewPosition, ds.PatientID) == (site.modality, "PA", "9000001")
    assert ds.SeriesDescription == SERIES_DESCRIPTION
    assert float(ds.RescaleSlope) == 1.0 and float(ds.WindowWidth) > 0
    stored = ds.pixel_array
    expected = (2**site.bits_stored - 1) - image.pixels if site.photometric == "MONOCHROME1" else image.pixels
    np.testing.assert_array_equal(stored, expected)
    read = read_radiograph(path, voi_lut=False)
    assert read.spacing_mm == (site.spacing_mm, site.spacing_mm)
    np.testing.assert_allclose(read.pixels, image.pixels.astype(np.float32))
    assert not list(tmp_path.glob(".*.part"))


def test_same_inputs_give_identical_bytes(tmp_path):
    """Same anatomy, site and seed -> identical pixels and byte-identical files; another seed differs."""
    right, left = anatomy_from_grades("R", 2, 4.0, 6.0, seed=1), anatomy_from_grades("L", 1, 5.0, 6.0, seed=2)
    site = SITE_PROFILES["D"]
    digests = []
    for name in ("a", "b"):
        image = render_bilateral_pa(right, left, site, seed=42, field_mm=SMALL_FIELD_MM)
        write_radiograph_dicom(tmp_path / f"{name}.dcm", image, site, "9000002", 12)
        digests.append(hashlib.sha256((tmp_path / f"{name}.dcm").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    other = render_bilateral_pa(right, left, site, seed=43, field_mm=SMALL_FIELD_MM)
    assert not np.array_equal(other.pixels, image.pixels)
    ds = pydicom.dcmread(tmp_path / "a.dcm")
    later = tmp_path / "c.dcm"
    write_radiograph_dicom(later, image, site, "9000002", 24)
    ds_later = pydicom.dcmread(later)
    assert ds_later.StudyInstanceUID != ds.StudyInstanceUID and ds_later.StudyDate > ds.StudyDate


def test_anatomy_from_grades_follows_kl():
    """Sclerosis, osteophytes and varus grow with KL; explicit grades and extra length are honoured."""
    knees = [anatomy_from_grades("R", kl, 5.0, 6.0, jsn_medial=min(kl, 3), seed=0) for kl in range(5)]
    sclerosis = [k.sclerosis for k in knees]
    medial_spurs = [k.osteophyte("FM") + k.osteophyte("TM") for k in knees]
    assert sclerosis == sorted(sclerosis) and sclerosis[4] > sclerosis[0]
    assert all(b > a for a, b in zip(medial_spurs, medial_spurs[1:]))
    assert knees[4].varus_deg >= 4.0 and knees[0].varus_deg == 0.0
    valgus = anatomy_from_grades("L", 4, 5.0, 1.0, jsn_lateral=3, seed=0)
    assert valgus.varus_deg < 0
    graded = anatomy_from_grades("R", 2, 4.0, 6.0, {"FM": 3}, extra_osteophyte_mm={"TL": 2.0}, seed=0)
    assert graded.osteophyte("FM") > 4.0 and graded.osteophyte("FL") == 0.0
    assert graded.osteophyte("TL") == pytest.approx(2.0)


@pytest.mark.parametrize(
    "build",
    [
        lambda: KneeAnatomy("X", 4.0, 5.0),
        lambda: KneeAnatomy("R", -1.0, 5.0),
        lambda: KneeAnatomy("R", 4.0, 5.0, {"XX": 1.0}),
        lambda: KneeAnatomy("R", 4.0, 5.0, sclerosis=2.0),
        lambda: RadiographSite("Z", "RGB", 0.15, 1.0, 0.01, 0.1, "ExplicitVRLittleEndian"),
        lambda: RadiographSite("Z", "MONOCHROME2", 0.5, 1.0, 0.01, 0.1, "ExplicitVRLittleEndian"),
        lambda: RadiographSite("Z", "MONOCHROME2", 0.15, 1.0, 0.01, 0.1, "JPEGBaseline8Bit"),
        lambda: anatomy_from_grades("R", 5, 4.0, 5.0),
        lambda: render_bilateral_pa(KneeAnatomy("L", 4, 5), KneeAnatomy("R", 4, 5), SITE_PROFILES["A"], seed=0),
        lambda: render_bilateral_pa(KneeAnatomy("R", 4, 5), KneeAnatomy("L", 4, 5), SITE_PROFILES["A"], 0, (50, 80)),
    ],
)
def test_bad_inputs_raise_one_line_error(build):
    """Every bad field raises OAKitError with a one-line message."""
    with pytest.raises(OAKitError) as info:
        build()
    assert "\n" not in str(info.value)


def test_writer_rejects_bad_identity_and_leaves_no_file(tmp_path, site_images):
    """A bad participant id or visit raises before anything is written."""
    image, site = site_images["A"], SITE_PROFILES["A"]
    for pid, visit in (("", 0), ("9000003", -12)):
        with pytest.raises(OAKitError):
            write_radiograph_dicom(tmp_path / "x.dcm", image, site, pid, visit)
    assert not list(tmp_path.iterdir())


def test_tiny_cohort_jsw_readable_from_dicom_pixels(tiny_cohort):
    """Cohort DICOMs read by oa_kit.io give, near the stored joint centres, JSW that matches truth and falls with KL.

    The compartment columns are the stored joint centre +/- the nominal compartment offset (medial toward the image
    centre); the knee's size factor and tilt are unknown to the reader, as they would be in real data.
    """
    knees = pd.read_parquet(tiny_cohort / "truth" / "knees.parquet")
    errors, rows = [], []
    for pid, knee_rows in knees.groupby("ID"):
        image = read_radiograph(tiny_cohort / "xray" / f"{pid}_V00_PA.dcm", voi_lut=False)
        sp = image.spacing_mm[1]
        for knee in knee_rows.itertuples():
            toward_centre = 1.0 if knee.side == "R" else -1.0
            for compartment, sign in (("medial", 1.0), ("lateral", -1.0)):
                col = knee.joint_centre_col + sign * toward_centre * COMPARTMENT_OFFSET_MM / sp
                measured = _measure_jsw_mm(image.pixels, (knee.joint_centre_row, col), sp)
                truth = getattr(knee, f"jsw_{compartment}_mm")
                errors.append(measured - truth)
                rows.append((knee.kl_true_V00, compartment, measured))
    errors = np.abs(errors)
    assert len(errors) == 4 * knees["ID"].nunique() and np.median(errors) < 0.3 and errors.max() < 0.75, errors
    table = pd.DataFrame(rows, columns=["kl", "compartment", "jsw_mm"])
    narrowest = table.groupby(["kl", table.index // 2])["jsw_mm"].min().groupby("kl").mean()
    assert narrowest.loc[narrowest.index >= 3].mean() < narrowest.loc[narrowest.index <= 1].mean() - 1.0, narrowest
