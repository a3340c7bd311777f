"""Write a synthetic OAI-like cohort to disk (tables, radiographs, MRI, truth, manifest) or simulate it in memory.

Layout (docs/DESIGN.md "Synthetic cohort on disk")::

    OUT/manifest.json  OUT/OAI/*.txt  OUT/xray/{ID}_V00_PA.dcm  OUT/mri/{ID}_{R|L}_V00_{DESS,labels}.nii.gz
    OUT/truth/participants.parquet  OUT/truth/knees.parquet

The folder is built in a hidden temporary sibling and renamed whole (``oa_kit.io.atomic.atomic_dir``);
``manifest.json`` (per-file sha256) is written last, so an interrupted run never leaves a complete-looking cohort.

A resumable run (``generate_cohort(..., resume=True)``) builds in a persistent staging folder beside ``OUT``
instead, so a run stopped anywhere (a session's time limit, a kill) continues where it stopped::

    OUT.partial/resume.json        preset, seed, n_participants, images, version, geometry (written first)
    OUT.partial/done/{ID}.json     one participant's image truth + sha256 of its files (written after its files)
    OUT.partial/cohort/            the cohort being built; renamed to OUT once its manifest is written

On resume, a participant counts as rendered only if its record is readable and every file it lists has the
recorded size and sha256; everything else in ``cohort/`` (half-written participants, temporary files, old
tables) is deleted and redone. One rendered participant is re-rendered in a scratch folder and must match its
files byte for byte (so a renderer changed between sessions cannot mix two versions in one cohort).
The result is byte-identical to an uninterrupted run: images are seeded per participant (``_sub_seed``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from oa_kit import __version__
from oa_kit.errors import OAKitError
from oa_kit.io.artifacts import sha256_file
from oa_kit.io.atomic import atomic_dir, replace_dir, write_text_atomic
from oa_kit.io.labels import SUBREGIONS
from oa_kit.parallel import ordered_map, resolve_n_jobs
from oa_kit.synth import mri, radiograph
from oa_kit.synth.model import OSTEOPHYTE_SITES, SimulatedCohort, simulate
from oa_kit.synth.presets import CohortPreset, get_preset
from oa_kit.synth.radiograph import KneeAnatomy
from oa_kit.synth.tables import write_oai_tables

if TYPE_CHECKING:
    from oa_kit.synth.mri import MRIGeometry
    from oa_kit.synth.radiograph import KneeAnatomy

MANIFEST_NAME = "manifest.json"
#: Suffix of the staging folder of a resumable generation (``OUT.partial`` beside ``OUT``).
PARTIAL_SUFFIX = ".partial"
_RESUME_NAME = "resume.json"
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


def generate_cohort(
    preset: str,
    out: str | os.PathLike,
    seed: int,
    overwrite: bool = False,
    images: bool = True,
    progress: bool = True,
    n_participants: int | None = None,
    n_jobs: int = 1,
    resume: bool = False,
) -> Path:
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
        Replace an existing non-empty ``out`` (only once the new cohort is complete). Without ``resume`` it also
        discards a staging folder ``out.partial`` left by an interrupted resumable run (once the cohort is complete).
    images : bool
        Render radiographs (DICOM) and MRI (NIfTI); ``False`` writes tables and truth only.
    progress : bool
        Show a tqdm progress bar while rendering (participants kept from an interrupted run count as done).
    n_participants : int, optional
        Override the preset's participant count.
    n_jobs : int
        Worker processes for rendering images, ``-1`` one per core (files are identical for any value).
    resume : bool
        Build in the persistent staging folder ``out.partial`` (see `partial_folder`) and continue an interrupted
        run found there: participants whose files are complete are not rendered again, and the result is
        byte-identical to an uninterrupted run. The staging folder must come from the same preset, seed,
        ``n_participants``, ``images`` and oa_kit version (else `OAKitError`), and one kept participant is
        re-rendered to check the renderers still give the same bytes. If ``out`` already holds a complete cohort
        with these parameters and not ``overwrite``, it is returned as is. ``False`` (default) builds in a hidden
        temporary folder that an interruption discards, and refuses to run while ``out.partial`` exists unless
        ``overwrite``.

    Returns
    -------
    Path
        The cohort folder.
    """
    spec = get_preset(preset, n_participants)
    seed = _check_seed(seed)
    n_jobs = resolve_n_jobs(int(n_jobs) if isinstance(n_jobs, np.integer) else n_jobs, spec.n_participants)
    out = Path(out)
    if resume:
        return _generate_resumable(spec, out, seed, overwrite, images, progress, int(n_jobs))
    replace = _check_output(out, overwrite)
    partial = partial_folder(out)
    if partial.exists() and not overwrite:
        raise OAKitError(
            f"{partial}: an interrupted resumable generation is there; expected resume=True (--resume) "
            f"to continue it, or overwrite=True (--overwrite) to discard it"
        )
    cohort = simulate(spec.n_participants, seed, balanced_kl=spec.balanced_kl)
    with atomic_dir(out, overwrite=replace) as tmp:
        _default_permissions(tmp)
        _write_cohort(
            cohort,
            spec,
            seed,
            images,
            tmp,
            lambda knees: render_images(cohort, knees, spec, tmp, progress, int(n_jobs)),
        )
    if partial.exists():
        shutil.rmtree(partial)
    return out


def partial_folder(out: str | os.PathLike) -> Path:
    """The staging folder ``<out>.partial`` in which ``generate_cohort(..., resume=True)`` builds ``out``."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def _write_cohort(
    cohort: SimulatedCohort,
    spec: CohortPreset,
    seed: int,
    images: bool,
    folder: Path,
    render: Callable[[pd.DataFrame], pd.DataFrame],
) -> None:
    """Write tables, images (through ``render(knees) -> knees``), truth and, last, the manifest into ``folder``."""
    table_paths = write_oai_tables(cohort, folder / "OAI")
    knees = cohort.knees.drop(columns=list(_INTERNAL_COLUMNS))
    if images:
        knees = render(knees)
    _write_truth(cohort.participants, knees, folder / "truth")
    write_manifest(folder, spec, seed, images, {stem: _count_rows(path) for stem, path in table_paths.items()})


def _generate_resumable(
    spec: CohortPreset, out: Path, seed: int, overwrite: bool, images: bool, progress: bool, n_jobs: int
) -> Path:
    """``generate_cohort(..., resume=True)``: build in ``out.partial``, keep verified participants, rename at end."""
    partial = partial_folder(out)
    if not overwrite and _holds_cohort(out, spec, seed, images):
        _discard_finished_staging(partial, _resume_parameters(spec, seed, images))
        return out
    _check_output(out, overwrite)
    cohort = simulate(spec.n_participants, seed, balanced_kl=spec.balanced_kl)
    with _staging(partial, _resume_parameters(spec, seed, images)):
        build, records = partial / "cohort", partial / "done"
        knees = cohort.knees.drop(columns=list(_INTERNAL_COLUMNS))
        tasks = _image_tasks(cohort, knees, spec, build, records) if images else []
        done = _verified_records(tasks, progress)
        _remove_unclaimed(build, {name for record in done.values() for name in record["files"]})
        if done:
            _check_renderer(next(t for t in tasks if t.participant_id in done), done, partial / "check")
        _write_cohort(
            cohort,
            spec,
            seed,
            images,
            build,
            lambda knees: render_images(cohort, knees, spec, build, progress, n_jobs, records=records, done=done),
        )
        replace_dir(build, out)  # an existing ``out`` is replaced only now that the new cohort is complete
    shutil.rmtree(partial)
    return out


def _holds_cohort(out: Path, spec: CohortPreset, seed: int, images: bool) -> bool:
    """Whether ``out`` already holds a complete cohort (manifest) with this preset, seed, size and images."""
    if not (out / MANIFEST_NAME).is_file():
        return False
    try:
        manifest = read_manifest(out)
    except OAKitError:
        return False
    wanted = {"preset": spec.name, "seed": seed, "n_participants": spec.n_participants, "images": images}
    return all(manifest.get(key) == value for key, value in wanted.items())


def _discard_finished_staging(partial: Path, params: dict) -> None:
    """Remove a staging folder left by a run stopped between renaming its cohort to ``out`` and removing it."""
    if (partial / _RESUME_NAME).is_file() and not (partial / "cohort").exists():
        try:
            _check_parameters(partial, params)
        except OAKitError:
            return
        shutil.rmtree(partial)


def _resume_parameters(spec: CohortPreset, seed: int, images: bool) -> dict:
    """What a staging folder must have been started with to be continued (JSON-normalised)."""
    params = {
        "preset": spec.name,
        "seed": seed,
        "n_participants": spec.n_participants,
        "images": images,
        "oa_kit_version": __version__,
        "geometry": dataclasses.asdict(spec),
    }
    return json.loads(json.dumps(params))


@contextlib.contextmanager
def _staging(partial: Path, params: dict) -> Iterator[Path]:
    """Open (creating it if new) the staging folder of a resumable run, locked against a second concurrent run."""
    if partial.exists() and not partial.is_dir():
        raise OAKitError(f"{partial}: exists and is not a folder; expected the staging folder of a resumable run")
    if not partial.exists():
        with atomic_dir(partial) as tmp:
            write_text_atomic(tmp / _RESUME_NAME, json.dumps(params, indent=2, sort_keys=True) + "\n")
            (tmp / "cohort").mkdir()
            (tmp / "done").mkdir()
    _check_parameters(partial, params)
    with _lock(partial / ".lock"):
        shutil.rmtree(partial / "check", ignore_errors=True)
        for sub in ("cohort", "done"):
            (partial / sub).mkdir(exist_ok=True)
        yield partial


def _check_parameters(partial: Path, params: dict) -> None:
    """Raise a one-line OAKitError naming the first parameter that differs from the staging folder's."""
    path = partial / _RESUME_NAME
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OAKitError(
            f"{path}: missing; expected the staging folder of generate_cohort(..., resume=True) "
            f"(delete {partial} to start over)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OAKitError(
            f"{path}: not valid JSON ({exc}); expected the parameters of a resumable run "
            f"(delete {partial} to start over)"
        ) from None
    for key, value in params.items():
        if not isinstance(stored, dict) or stored.get(key) != value:
            found = stored.get(key) if isinstance(stored, dict) else stored
            raise OAKitError(
                f"{path}: {key} is {found!r} but this run asks for {value!r}; expected the parameters of "
                f"the interrupted run (preset, seed, n_participants, images, oa_kit version) "
                f"(or delete {partial} to start over)"
            )


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (POSIX ``flock``; no-op where unavailable)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OAKitError(
                f"{path.parent}: another generate_cohort run is using this staging folder; expected one run at a time"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
        raise OAKitError(
            f"{out}: cannot create the parent folder ({exc.strerror}); expected a writable location"
        ) from exc
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OAKitError(f"{out}: parent folder {parent} is not writable; expected a writable location")
    return out.exists()


def _sub_seed(seed: int, index: int, tag: int) -> int:
    """Independent 32-bit seed for participant ``index`` and stream ``tag`` (0 radiograph, 1 right MRI, 2 left MRI)."""
    return int(np.random.SeedSequence([seed, index, tag]).generate_state(1)[0])


def knee_anatomy(row: Mapping[str, float]) -> KneeAnatomy:
    """The ``oa_kit.synth.radiograph.KneeAnatomy`` of one knee-truth row (JSW and osteophytes in mm)."""

    return KneeAnatomy(
        side=row["side"],
        jsw_medial_mm=float(row["jsw_medial_mm"]),
        jsw_lateral_mm=float(row["jsw_lateral_mm"]),
        osteophyte_mm={s: float(row[f"osteophyte_mm_{s}"]) for s in OSTEOPHYTE_SITES},
        sclerosis=float(row["sclerosis"]),
        varus_deg=float(row["varus_deg"]),
    )


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
    records: Path | None = None


def _render_participant(task: _ParticipantImages) -> dict[str, dict[str, float]]:
    """Render and write one participant's DICOM and MRI; returns per-side image truth (joint centre, thickness)."""

    xsite = radiograph.SITE_PROFILES[task.site]
    if task.spacing_mm is not None:
        xsite = dataclasses.replace(xsite, spacing_mm=task.spacing_mm)
    rendered = radiograph.render_bilateral_pa(
        knee_anatomy(task.knees["R"]), knee_anatomy(task.knees["L"]), xsite, seed=task.xray_seed, field_mm=task.field_mm
    )
    pid = task.participant_id
    radiograph.write_radiograph_dicom(task.folder / "xray" / f"{pid}_V00_PA.dcm", rendered, xsite, pid, 0)
    truth = {}
    for side in ("R", "L"):
        row, col = rendered.joint_centres_px[side]
        truth[side] = {
            "joint_centre_row": float(row),
            "joint_centre_col": float(col),
            "xray_spacing_mm": float(rendered.spacing_mm),
        }
        if task.knees[side]["tkr_month"] == 0:
            continue
        target = {r: float(task.knees[side][f"thickness_mm_{r}"]) for r in SUBREGIONS}
        volume = mri.render_knee_mri(side, target, task.geometry, mri.SITE_MRI[task.site], seed=task.mri_seeds[side])
        mri.write_knee_mri(task.folder / "mri", pid, side, 0, volume)
        truth[side].update({f"thickness_mm_{r}": round(float(volume.true_thickness_mm[r]), 4) for r in SUBREGIONS})
    return truth


def _image_tasks(
    cohort: SimulatedCohort, knees: pd.DataFrame, spec: CohortPreset, folder: Path, records: Path | None = None
) -> list[_ParticipantImages]:
    """One rendering task per participant, in cohort order, with its per-participant seeds."""
    geometry = spec.mri_geometry()
    columns = [
        "side",
        "jsw_medial_mm",
        "jsw_lateral_mm",
        "sclerosis",
        "varus_deg",
        "tkr_month",
        *[f"osteophyte_mm_{s}" for s in OSTEOPHYTE_SITES],
        *[f"thickness_mm_{r}" for r in SUBREGIONS],
    ]
    by_id = {pid: {row["side"]: row for row in group[columns].to_dict("records")} for pid, group in knees.groupby("ID")}
    return [
        _ParticipantImages(
            pid,
            site,
            by_id[pid],
            _sub_seed(cohort.seed, i, 0),
            {"R": _sub_seed(cohort.seed, i, 1), "L": _sub_seed(cohort.seed, i, 2)},
            tuple(spec.xray_field_mm),
            spec.xray_spacing_mm,
            geometry,
            folder,
            records,
        )
        for i, (pid, site) in enumerate(zip(cohort.participants["ID"], cohort.participants["site"]))
    ]


def render_images(
    cohort: SimulatedCohort,
    knees: pd.DataFrame,
    spec: CohortPreset,
    folder: Path,
    progress: bool,
    n_jobs: int = 1,
    records: Path | None = None,
    done: Mapping[str, Mapping] | None = None,
) -> pd.DataFrame:
    """Render and write each participant's bilateral PA DICOM and per-knee MRI; returns knees with image truth.

    Adds ``joint_centre_row``/``joint_centre_col`` (pixels in the DICOM), ``xray_spacing_mm`` and replaces
    ``thickness_mm_<subregion>`` by the rendered cartilage's true mean thickness. Knees replaced at baseline get no MRI.
    ``n_jobs`` > 1 renders participants in worker processes; files are identical either way (per-participant seeds).
    ``records`` (a folder) receives a ``{ID}.json`` record after each participant's files are written; participants in
    ``done`` (ID → record, already verified) are not rendered again: their truth comes from the record.
    """
    done = dict(done or {})
    tasks = _image_tasks(cohort, knees, spec, folder, records)
    todo = [task for task in tasks if task.participant_id not in done]
    bar = tqdm(
        total=len(tasks),
        initial=len(tasks) - len(todo),
        desc="synthetic cohort images",
        unit="participant",
        disable=not progress,
    )
    with bar:
        rendered = ordered_map(_render_and_record, [(task,) for task in todo], n_jobs, on_done=bar.update)
    truths = {pid: record["truth"] for pid, record in done.items()}
    truths.update((task.participant_id, truth) for task, truth in zip(todo, rendered))
    knees = knees.copy()
    for col in ("joint_centre_row", "joint_centre_col", "xray_spacing_mm"):
        knees[col] = np.nan
    index = {(pid, side): i for i, (pid, side) in enumerate(zip(knees["ID"], knees["side"]))}
    for task in tasks:
        for side, values in truths[task.participant_id].items():
            for col, value in values.items():
                knees.iloc[index[(task.participant_id, side)], knees.columns.get_loc(col)] = value
    return knees


def _task_files(task: _ParticipantImages) -> list[str]:
    """Paths (relative to the cohort folder) of the files one participant's rendering writes."""
    pid = task.participant_id
    names = [f"xray/{pid}_V00_PA.dcm"]
    for side in ("R", "L"):
        if task.knees[side]["tkr_month"] != 0:
            names += [f"mri/{pid}_{side}_V00_DESS.nii.gz", f"mri/{pid}_{side}_V00_labels.nii.gz"]
    return names


def _file_record(folder: Path, names: list[str]) -> dict[str, dict[str, int | str]]:
    """sha256 and size (bytes) of each named file under ``folder``."""
    return {name: {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size} for name in names}


def _render_and_record(task: _ParticipantImages) -> dict[str, dict[str, float]]:
    """Render one participant; with ``task.records``, then write its record (truth + file hashes) atomically."""
    truth = _render_participant(task)
    if task.records is not None:
        record = {
            "participant_id": task.participant_id,
            "truth": truth,
            "files": _file_record(task.folder, _task_files(task)),
        }
        write_text_atomic(task.records / f"{task.participant_id}.json", json.dumps(record, sort_keys=True) + "\n")
    return truth


def _verified_records(tasks: list[_ParticipantImages], progress: bool) -> dict[str, dict]:
    """Records of participants whose files are all present with the recorded size and sha256; others are deleted."""
    done = {}
    staged = [task for task in tasks if (task.records / f"{task.participant_id}.json").exists()]
    for task in tqdm(staged, desc="checking rendered participants", unit="participant", disable=not progress):
        path = task.records / f"{task.participant_id}.json"
        record = _read_record(path)
        if record is not None and _record_matches(task, record):
            done[task.participant_id] = record
        else:
            path.unlink()
    return done


def _read_record(path: Path) -> dict | None:
    """A participant record, or ``None`` when it cannot be read as one (then it is redone)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("files"), dict)
        or not isinstance(record.get("truth"), dict)
    ):
        return None
    return record


def _record_matches(task: _ParticipantImages, record: dict) -> bool:
    """Whether the record lists exactly this participant's files and each is intact on disk."""
    names = _task_files(task)
    if record.get("participant_id") != task.participant_id or sorted(record["files"]) != sorted(names):
        return False
    if set(record["truth"]) != {"R", "L"} or not all((task.folder / name).is_file() for name in names):
        return False
    return _file_record(task.folder, names) == record["files"]


def _remove_unclaimed(folder: Path, keep: set[str]) -> None:
    """Delete every file under ``folder`` not in ``keep`` (half-written participants, temp files, old tables)."""
    for path in sorted(folder.rglob("*"), reverse=True):  # children before their folder
        if path.is_symlink() or path.is_file():
            if path.relative_to(folder).as_posix() not in keep:
                path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _check_renderer(task: _ParticipantImages, done: Mapping[str, Mapping], scratch: Path) -> None:
    """Re-render one kept participant in ``scratch``; different bytes mean the renderers changed (OAKitError)."""
    record = done[task.participant_id]
    probe = dataclasses.replace(task, folder=scratch, records=None)
    try:
        truth = _render_participant(probe)
        same = truth == record["truth"] and _file_record(scratch, _task_files(task)) == record["files"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not same:
        raise OAKitError(
            f"{task.records.parent}: participant {task.participant_id} re-rendered differently from its "
            f"staged files (the image renderers changed since this generation started); expected the "
            f"same oa_kit code (or delete {task.records.parent} to start over)"
        )


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
        "preset": spec.name,
        "seed": seed,
        "n_participants": spec.n_participants,
        "n_knees": 2 * spec.n_participants,
        "images": images,
        "oa_kit_version": __version__,
        "table_rows": table_rows,
        "files": files,
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
