"""Size limits: module defaults overridable by OA_KIT_* environment variables (#24)."""

from __future__ import annotations

import pytest

from oa_kit.errors import OAKitError
from oa_kit.io import limits


def test_defaults_and_override(monkeypatch):
    monkeypatch.delenv("OA_KIT_MAX_VOXELS", raising=False)
    assert limits.limit("MAX_VOXELS") == limits.MAX_VOXELS == 2**28
    monkeypatch.setenv("OA_KIT_MAX_VOXELS", "1_000")
    assert limits.limit("MAX_VOXELS") == 1000
    monkeypatch.setenv("OA_KIT_MAX_VOXELS", "2e9")
    assert limits.limit("MAX_VOXELS") == 2_000_000_000


@pytest.mark.parametrize("text", ["abc", "-5", "0"])
def test_bad_override_names_the_variable(monkeypatch, text):
    monkeypatch.setenv("OA_KIT_MAX_PIXELS", text)
    with pytest.raises(OAKitError, match="OA_KIT_MAX_PIXELS: .*expected a positive whole number"):
        limits.limit("MAX_PIXELS")


def test_check_count_message():
    with pytest.raises(OAKitError, match=r"f.nii: 729,000,000 voxels exceeds the limit .*OA_KIT_MAX_VOXELS"):
        limits.check_count("f.nii", 900**3, "MAX_VOXELS", "voxels")
    limits.check_count("f.nii", 10, "MAX_VOXELS", "voxels")
