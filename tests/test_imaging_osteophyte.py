"""Marginal osteophyte lengths on synthetic PA radiographs rendered with known spur lengths, and failure cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from oa_kit.errors import OAKitError
from oa_kit.imaging.localize import KneeROI, knee_rois
from oa_kit.imaging.osteophyte import OSTEOPHYTE_SITES, marginal_osteophytes, measure_osteophytes
from oa_kit.io.radiograph import read_radiograph

LENGTHS_MM = (0.0, 3.0, 6.0)
#: Stated tolerance of the measurement against the drawn length on these renders (mm): thin spur tips fade into soft
#: tissue, and a short tibial spur does not stand out of the plateau's rim, so small spurs read short.
TOLERANCE_MM = 3.5
#: Largest reading of a spur-free margin (the medial tibial rim's thin tip sometimes passes the threshold).
SPUR_FREE_MAX_MM = 3.0


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> list[dict[str, dict[str, float]]]:
    """Per drawn length: {side: measured lengths} for a right FM spur and a left TM spur, read back from DICOM."""
    from oa_kit.synth.radiograph import SITE_PROFILES, KneeAnatomy, render_bilateral_pa, write_radiograph_dicom

    folder = tmp_path_factory.mktemp("ost")
    site = SITE_PROFILES["A"]
    out = []
    for i, length in enumerate(LENGTHS_MM):
        right = KneeAnatomy("R", 4.5, 5.5, {"FM": length}, 0.1, 0.0)
        left = KneeAnatomy("L", 4.5, 5.5, {"TM": length}, 0.1, 0.0)
        path = folder / f"K{i}_V00_PA.dcm"
        write_radiograph_dicom(path, render_bilateral_pa(right, left, site, seed=7), site, f"K{i}", 0)
        rois = knee_rois(read_radiograph(path))
        assert [r.side for r in rois] == ["R", "L"]
        out.append({roi.side: measure_osteophytes(roi).lengths_mm for roi in rois})
    return out


def test_measured_length_grows_with_drawn_length(measured):
    fm = [m["R"]["fm"] for m in measured]
    tm = [m["L"]["tm"] for m in measured]  # left knee: mirrored, so its medial side is still the ROI's right
    for values in (fm, tm):
        assert values[0] <= values[1] <= values[2] and values[2] - values[0] >= 3.0, (fm, tm)
    for values in (fm, tm):
        assert all(abs(v - t) <= TOLERANCE_MM for v, t in zip(values, LENGTHS_MM)), values


def test_spur_free_margins_stay_small(measured):
    for m in measured:
        for key in ("fl", "tm", "tl"):
            assert m["R"][key] < SPUR_FREE_MAX_MM, (key, m["R"])
        for key in ("fm", "fl", "tl"):
            assert m["L"][key] < SPUR_FREE_MAX_MM, (key, m["L"])


def _roi(pixels: np.ndarray, spacing: float = 0.5) -> KneeROI:
    """A bare KneeROI around ``pixels``."""
    return KneeROI("R", pixels.astype(np.float32), spacing, (0.0, 0.0), (0, 0, 1, 1), False, ())


def test_blank_roi_gives_nan_and_reason():
    result = measure_osteophytes(_roi(np.full((280, 280), 100.0)))
    assert all(math.isnan(v) for v in result.lengths_mm.values()) and "blank" in result.reason
    noise = np.random.default_rng(0).normal(100.0, 5.0, (280, 280))
    result = measure_osteophytes(_roi(noise))
    assert all(math.isnan(v) for v in result.lengths_mm.values()) and "no joint" in result.reason


def test_missing_spacing_gives_nan_and_feature_keys():
    row = marginal_osteophytes(_roi(np.zeros((280, 280)), spacing=math.nan))
    assert sorted(row) == sorted(f"osteophyte_mm_{k}" for k in OSTEOPHYTE_SITES)
    assert all(math.isnan(v) for v in row.values())
    assert "spacing" in measure_osteophytes(_roi(np.zeros((280, 280)), spacing=math.nan)).reason


def test_bad_input_raises():
    with pytest.raises(OAKitError, match="KneeROI"):
        marginal_osteophytes(np.zeros((280, 280)))
    with pytest.raises(OAKitError, match="roi.pixels"):
        marginal_osteophytes(_roi(np.zeros((8, 8))))
