"""Shared fixtures: the tiny synthetic cohort (generated once per session) and the shared data folder."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_KL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "knee-kl-chen2018"


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """A ``tiny`` synthetic cohort written once for the whole session (read-only for tests)."""
    from oa_kit.synth import generate_cohort

    out = tmp_path_factory.mktemp("cohort") / "tiny"
    generate_cohort(preset="tiny", out=out, seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def chen_dir() -> Path:
    """The real Chen 2018 KL radiographs in ../shared; skips when absent."""
    if not (SHARED_KL_DIR / "manifest.csv").exists():
        pytest.skip(f"{SHARED_KL_DIR} not present")
    return SHARED_KL_DIR
