"""Shared fixtures: the tiny synthetic cohort (generated once per session) and the shared data folder."""

from __future__ import annotations

import shutil
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


@pytest.fixture
def tampered_copy():
    """Function copying weights + JSON sidecar into a folder with one byte of the weights flipped (checksum tests)."""
    return _tampered_copy


def _tampered_copy(weights: Path, folder: Path, name: str | None = None) -> Path:
    """Copy ``weights`` and their JSON sidecar into ``folder`` and flip the last byte of the weights."""
    dst = folder / (name or weights.name)
    shutil.copyfile(weights, dst)
    shutil.copyfile(weights.with_suffix(".json"), dst.with_suffix(".json"))
    data = bytearray(dst.read_bytes())
    data[-1] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory) -> Path:
    """A 30-participant synthetic cohort with images (enough labelled knees to fit a progression model), written once
    per session by the real command line (about a minute on 2 cores)."""
    from oa_kit.cli import main

    out = tmp_path_factory.mktemp("small") / "cohort"
    assert main(["synth", "--preset", "tiny", "--n-participants", "30", "--out", str(out), "--quiet"]) == 0
    return out
