"""Write a synthetic OAI-like cohort to disk (tables, radiographs, MRI, truth, manifest) or simulate it in memory.

Layout (docs/DESIGN.md "Synthetic cohort on disk")::

    OUT/manifest.json  OUT/OAI/*.txt  OUT/xray/{ID}_V00_PA.dcm  OUT/mri/{ID}_{R|L}_V00_{DESS,labels}.nii.gz
    OUT/truth/participants.parquet  OUT/truth/knees.parquet

The folder is built in a hidden temporary sibling and renamed whole (``oa_kit.io.atomic.atomic_dir``);
``manifest.json`` (per-file sha256) is written last, so an interrupted run never leaves a complete-looking cohort.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from oa_kit import __version__
from oa_kit.errors import OAKitError
from oa_kit.io.artifacts import sha256_file
from oa_kit.io.atomic import atomic_dir, write_text_atomic
from oa_kit.io.labels import SUBREGIONS
from oa_kit.synth.model import OSTEOPHYTE_SITES, SimulatedCohort, simulate
from oa_kit.synth.presets import CohortPreset, get_preset
from oa_kit.synth.tables import write_oai_tables

if TYPE_CHECKING:
    from oa_kit.synth.mri import MRIGeometry
    from oa_kit.synth.radiograph import KneeAnatomy

MANIFEST_NAME = "manifest.json"
#: Knee-truth columns that are internal draws, not documented truth.
_INTERNAL_COLUMNS = tuple(f"grade_quantile_{i}" for i in range(6))


def simulate_cohort(preset: str, seed: int, n_participants: int | None = None) -> SimulatedCohort:
    """Simulate the cohort's tables in memory (no files, no images): fast, for statistics and model development.

    Parameters
    ----------
    preset : str
        ``tiny``, ``demo`` or ``full``.
    seed : int
        Seed of every random draw; the same seed gives the same cohort as ``generate_cohort``.
    n_participants : int, optional
        Override the preset's participant count (must be positive).

    Returns
    -------
    SimulatedCohort
        ``participants`` and ``knees`` truth tables and the observed ``readings``.
    """
    spec = get_preset(preset, n_participants)
    return simulate(spec.n_participants, _check_seed(seed), balanced_kl=spec.balanced_kl)


def generate_cohort(preset: str, out: str | os.PathLike, seed: int, overwrite: bool = False, images: bool = True,
                    progress: bool = True, n_participants: int | None = None, n_jobs: int = 1) -> Path:
    """Generate the synthetic cohort folder ``out`` (deterministic by ``seed``: same seed → byte-identical files).

    Parameters
    ----------
    preset : str
        ``tiny`` (8 participants), ``demo`` (500) or ``full`` (4000).
    out : path
        Output folder; must be new or empty unless ``overwrite``.
    seed : int
        Seed of every random draw (tables, images, DICOM UIDs).
    overwrite : bool
        Replace an existing non-empty ``out`` (only once the new cohort is complete).
    images : bool
        Render radiographs (DICOM) and MRI (NIfTI); ``False`` writes tables and truth only.
    progress : bool
        Show a tqdm progress bar while rendering.
    n_participants : int, optional
        Override the preset's participant count.
    n_jobs : int
        Worker processes for rendering images (files are identical for any value).

    Returns
    -------
    Path
        The cohort folder.
    """
    spec = get_preset(preset, n_participants)
    seed = _check_seed(seed)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise OAKitError(f"n_jobs: {n_jobs!r} is not a positive integer; expected ≥ 1")
    out = Path(out)
    replace = _check_output(out, overwrite)
    cohort = simulate(spec.n_participants, seed, balanced_kl=spec.balanced_kl)
    with atomic_dir(out, overwrite=replace) as tmp:
        _default_permissions(tmp)
        table_paths = write_oai_tables(cohort, tmp / "OAI")
        knees = cohort.knees.drop(columns=list(_INTERNAL_COLUMNS))
        if images:
            knees = render_images(cohort, knees, spec, tmp, progress, int(n_jobs))
        _write_truth(cohort.participants, knees, tmp / "truth")
        write_manifest(tmp, spec, seed, images, {stem: _count_rows(path) for stem, path in table_paths.items()})
    return out


def _default_permissions(folder: Path) -> None:
    """Give the (mkdtemp, 0700) build folder the permissions a plain ``mkdir`` would have under the umask."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)


def _check_seed(seed: int) -> int:
    """Seeds must be non-negative integers (numpy SeedSequence entropy)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OAKitError(f"seed: {seed!r} is not a non-negative integer; expected e.g. 0")
    return int(seed)


def _check_output(out: Path, overwrite: bool) -> bool:
    """Validate the output folder; returns whether an existing folder will be replaced."""
    if out.exists() and not out.is_dir():
        raise OAKitError(f"{out}: exists and is not a folder; expected a new or empty folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OAKitError(f"{out}: folder exists and is not empty; expected a new or empty folder (use --overwrite)")
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OAKitError(f"{out}: cannot create the parent folder ({exc.strerror}); expected a writable location") from exc
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OAKitError(f"{out}: parent folder {parent} is not writable; expected a writable location")
    return out.exists()


def _sub_seed(seed: int, index: int, tag: int) -> int:
    """Independent 32-bit seed for participant ``index`` and stream ``tag`` (0 radiograph, 1 right MRI, 2 left MRI)."""
    return int(np.random.SeedSequence([seed, index, tag]).generate_state(1)[0])


def knee_anatomy(row: Mapping[str, float]) -> KneeAnatomy:
    """The ``oa_kit.synth.radiograph.KneeAnatomy`` of one knee-truth row (JSW and osteophytes in mm)."""
    from oa_kit.synth.radiograph import KneeAnatomy

    return KneeAnatomy(side=row["side"], jsw_medial_mm=float(row["jsw_medial_mm"]),
                       jsw_lateral_mm=float(row["jsw_lateral_mm"]),
                       osteophyte_mm={s: float(row[f"osteophyte_mm_{s}"]) for s in OSTEOPHYTE_SITES},
                       sclerosis=float(row["sclerosis"]), varus_deg=float(row["varus_deg"]))


@dataclasses.dataclass(frozen=True)
class _ParticipantImages:
    """Everything needed to render one participant's images (picklable for worker processes)."""

    participant_id: str
    site: str
    knees: dict[str, dict[str, float]]
    xray_seed: int
    mri_seeds: dict[str, int]
    field_mm: tuple[float, float]
    spacing_mm: float | None
    geometry: MRIGeometry
    folder: Path


def _render_participant(task: _ParticipantImages) -> dict[str, dict[str, float]]:
    """Render and write one participant's DICOM and MRI; returns per-side image truth (joint centre, thickness)."""
    from oa_kit.synth import mri, radiograph

    xsite = radiograph.SITE_PROFILES[task.site]
    if task.spacing_mm is not None:
        xsite = dataclasses.replace(xsite, spacing_mm=task.spacing_mm)
    rendered = radiograph.render_bilateral_pa(knee_anatomy(task.knees["R"]), knee_anatomy(task.knees["L"]), xsite,
                                              seed=task.xray_seed, field_mm=task.field_mm)
    pid = task.participant_id
    radiograph.write_radiograph_dicom(task.folder / "xray" / f"{pid}_V00_PA.dcm", rendered, xsite, pid, 0)
    truth = {}
    for side in ("R", "L"):
        row, col = rendered.joint_centres_px[side]
        truth[side] = {"joint_centre_row": float(row), "joint_centre_col": float(col),
                       "xray_spacing_mm": float(rendered.spacing_mm)}
        if task.knees[side]["tkr_month"] == 0:
            continue
        target = {r: float(task.knees[side][f"thickness_mm_{r}"]) for r in SUBREGIONS}
        volume = mri.render_knee_mri(side, target, task.geometry, mri.SITE_MRI[task.site], seed=task.mri_seeds[side])
        mri.write_knee_mri(task.folder / "mri", pid, side, 0, volume)
        truth[side].update({f"thickness_mm_{r}": round(float(volume.true_thickness_mm[r]), 4) for r in SUBREGIONS})
    return truth


def render_images(cohort: SimulatedCohort, knees: pd.DataFrame, spec: CohortPreset, folder: Path,
                  progress: bool, n_jobs: int = 1) -> pd.DataFrame:
    """Render and write each participant's bilateral PA DICOM and per-knee MRI; returns knees with image truth.

    Adds ``joint_centre_row``/``joint_centre_col`` (pixels in the DICOM), ``xray_spacing_mm`` and replaces
    ``thickness_mm_<subregion>`` by the rendered cartilage's true mean thickness. Knees replaced at baseline get no MRI.
    ``n_jobs`` > 1 renders participants in worker processes; files are identical either way (per-participant seeds).
    """
    geometry = spec.mri_geometry()
    columns = ["side", "jsw_medial_mm", "jsw_lateral_mm", "sclerosis", "varus_deg", "tkr_month",
               *[f"osteophyte_mm_{s}" for s in OSTEOPHYTE_SITES], *[f"thickness_mm_{r}" for r in SUBREGIONS]]
    by_id = {pid: {row["side"]: row for row in group[columns].to_dict("records")} for pid, group in knees.groupby("ID")}
    tasks = [_ParticipantImages(pid, site, by_id[pid], _sub_seed(cohort.seed, i, 0),
                                {"R": _sub_seed(cohort.seed, i, 1), "L": _sub_seed(cohort.seed, i, 2)},
                                tuple(spec.xray_field_mm), spec.xray_spacing_mm, geometry, folder)
             for i, (pid, site) in enumerate(zip(cohort.participants["ID"], cohort.participants["site"]))]
    bar = tqdm(total=len(tasks), desc="synthetic cohort images", unit="participant", disable=not progress)
    with bar:
        if n_jobs == 1:
            results = [_tick(bar, _render_participant(task)) for task in tasks]
        else:
            with ProcessPoolExecutor(max_workers=n_jobs) as pool:
                results = [_tick(bar, r) for r in pool.map(_render_participant, tasks, chunksize=4)]
    knees = knees.copy()
    for col in ("joint_centre_row", "joint_centre_col", "xray_spacing_mm"):
        knees[col] = np.nan
    index = {(pid, side): i for i, (pid, side) in enumerate(zip(knees["ID"], knees["side"]))}
    for task, truth in zip(tasks, results):
        for side, values in truth.items():
            for col, value in values.items():
                knees.iloc[index[(task.participant_id, side)], knees.columns.get_loc(col)] = value
    return knees


def _tick(bar: tqdm, result):
    """Advance the progress bar by one participant and pass the result through."""
    bar.update(1)
    return result


def _write_truth(participants: pd.DataFrame, knees: pd.DataFrame, folder: Path) -> None:
    """Write the truth tables as parquet (deterministic: no index, fixed column order)."""
    folder.mkdir(parents=True, exist_ok=True)
    participants.to_parquet(folder / "participants.parquet", index=False)
    knees.to_parquet(folder / "knees.parquet", index=False)


def _count_rows(path: Path) -> int:
    """Data rows of an ASCII table (lines minus the header)."""
    with open(path, "rb") as handle:
        return sum(1 for _ in handle) - 1



def write_manifest(folder: Path, spec: CohortPreset, seed: int, images: bool, table_rows: dict[str, int]) -> Path:
    """Write ``manifest.json`` last: preset, seed, counts, version and sha256 of every other file."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = {
        "dataset": "oa_kit synthetic OAI-like cohort (synthetic data, not real patients)",
        "preset": spec.name, "seed": seed, "n_participants": spec.n_participants, "n_knees": 2 * spec.n_participants,
        "images": images, "oa_kit_version": __version__, "table_rows": table_rows, "files": files,
    }
    path = folder / MANIFEST_NAME
    write_text_atomic(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(cohort_dir: str | os.PathLike) -> dict:
    """Read a cohort's manifest; a folder without one is not a complete cohort."""
    path = Path(cohort_dir) / MANIFEST_NAME
    if not path.is_file():
        raise OAKitError(f"{path}: missing; expected a complete cohort written by generate_cohort")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise OAKitError(f"{path}: not valid JSON ({exc.msg}); expected a generate_cohort manifest") from exc
