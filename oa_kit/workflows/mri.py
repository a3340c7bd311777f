"""MRI jobs that write files: read any supported scan, segment, measure cartilage, QC, and write label maps, thickness
maps and the per-knee table for a batch of scans (resumable, optionally in worker processes)."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from oa_kit.api import measure_labels
from oa_kit.errors import OAKitError
from oa_kit.evaluation.segmentation import evaluate_segmenter, evaluate_thickness
from oa_kit.features.cartilage import write_map_nifti
from oa_kit.features.mri_knee import analyse_knee
from oa_kit.features.mri_qc import QC_FLAGS
from oa_kit.io.atomic import atomic_path, write_text_atomic
from oa_kit.io.mri_results import finished_record, record_key, scan_record_path
from oa_kit.io.scans import declared_side, read_scan, side_in_name
from oa_kit.io.tables import write_csv
from oa_kit.models.mri.datasets import discover_cases
from oa_kit.models.mri.inference import MRISegmenter, weights_metadata
from oa_kit.models.mri.network import DEFAULT_CHANNELS
from oa_kit.models.mri.synthseg import (
    SynthConfig,
    cached_label_maps,
    phantom_label_maps,
    shared_label_maps,
    split_holdout,
    train_synthseg,
    woo_label_maps,
)
from oa_kit.models.mri.train import render_phantom_cases, save_weights, split_by_group, train_segmenter
from oa_kit.parallel import ordered_map, resolve_n_jobs
from oa_kit.synth.mri import DEFAULT_CONTRAST, MRI_GEOMETRIES, TISSUE_CONTRASTS

Log = Callable[[str], None] | None


def _finished_row(out: Path, path: Path, key: dict[str, object]) -> dict | None:
    """The stored row of a scan already segmented with the same input and weights (outputs present), else None."""
    record = finished_record(out, path, key)
    return None if record is None else record["row"]


def _json_default(value: object) -> object:
    """JSON encoding for NumPy scalars in result rows."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def segment_one(
    path: str | Path,
    out: str | Path,
    segmenter: MRISegmenter,
    side: str | None = None,
    key: dict[str, object] | None = None,
) -> dict:
    """Segment and measure one scan, write its label and thickness NIfTIs under ``out`` and then its record.

    Returns the per-knee row (see :func:`analyse_knee`; a side the name and header lack is ``side``, else read from
    the anatomy). ``key`` (from the caller) is stored in the record so a later run can tell whether the result is
    still valid.
    """
    path, out = Path(path), Path(out)
    declared_side(*side_in_name(path), side, path)  # a contradicting side argument is refused before reading
    scan = read_scan(path)
    result = analyse_knee(scan, segmenter, side)
    outputs = write_knee_maps(out, path, result.labels, result.measurement.thickness_map, scan.affine)
    record = {"key": key, "outputs": [str(o) for o in outputs], "row": result.row}
    write_text_atomic(scan_record_path(out, path), json.dumps(record, default=_json_default) + "\n")
    return result.row


def write_knee_maps(out: Path, path: Path, labels: np.ndarray, thickness: np.ndarray, affine: np.ndarray) -> list:
    """Write one knee's harmonised labels and thickness map (mm) as NIfTIs on its scan's grid; returns their paths
    relative to ``out``. Names carry the input's name and a hash of its full path (as its record), so two inputs with
    the same file name in different folders never overwrite each other."""
    stem = scan_record_path(out, path).stem
    outputs = [Path("labels") / f"{stem}_labels.nii.gz", Path("thickness") / f"{stem}_thickness.nii.gz"]
    write_map_nifti(out / outputs[0], labels, affine)
    write_map_nifti(out / outputs[1], thickness, affine)
    return outputs


#: Errors that fail one input of a batch (reported, the batch goes on); anything else is a bug and stops it.
INPUT_ERRORS = (OAKitError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def _attempt(task: Callable[..., dict], path: Path, *args) -> dict:
    """``{"row": task(path, *args)}``, or ``{"error": one line}`` when the input is bad."""
    try:
        return {"row": task(path, *args)}
    except INPUT_ERRORS as exc:
        return {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}


#: The worker process's segmenter, loaded once by :func:`_init_worker`.
_WORKER: dict[str, object] = {}


def _init_worker(weights: str | None, threads: int) -> None:
    """Worker start-up: ``threads`` threads for torch/BLAS/OpenMP (processes share the cores) and load the model."""
    torch.set_num_threads(threads)
    _WORKER["limits"] = threadpool_limits(limits=threads)
    _WORKER["segmenter"] = MRISegmenter.from_pretrained(weights)


def _worker_segment(path: Path, out: Path, side: str | None, key: dict[str, object]) -> dict:
    """Task run in a worker process: :func:`segment_one` with the worker's segmenter (a bad input is returned as
    ``{"error": ...}``, see :func:`_attempt`)."""
    return _attempt(segment_one, path, out, _WORKER["segmenter"], side, key)


@contextlib.contextmanager
def limit_threads(threads: int) -> Iterator[None]:
    """Run torch, BLAS and OpenMP on ``threads`` threads, restoring the caller's settings afterwards.

    One is the default: biomarkers (single-threaded NumPy/SciPy) dominate a knee's time, so a second torch thread
    could only shorten the network's share (~0.4 s of a synthetic knee), while on the shared machine its
    spin-waiting made a batch 2.4-6x slower (3.4-10.0 vs 1.0-1.8 s/scan, ``benchmarks/mri_speed.py --batch``).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)


def _run_pending(
    pending: list[Path],
    out: Path,
    side: str | None,
    weights: str | None,
    keys: dict[Path, dict],
    n_jobs: int,
    threads: int,
    bar: tqdm,
) -> dict[Path, dict]:
    """Segment the pending scans, in this process (``n_jobs`` 1) or in ``n_jobs`` spawned worker processes; each
    result is ``{"row": ...}`` or ``{"error": ...}`` (a bad scan does not stop the others)."""
    results: dict[Path, dict] = {}
    if n_jobs == 1:
        segmenter = MRISegmenter.from_pretrained(weights)
        with limit_threads(threads):
            for path in pending:
                results[path] = _attempt(segment_one, path, out, segmenter, side, keys[path])
                bar.update()
        return results
    tasks = [(path, out, side, keys[path]) for path in pending]
    attempts = ordered_map(_worker_segment, tasks, n_jobs, _init_worker, (weights, threads), on_done=bar.update)
    return dict(zip(pending, attempts))


def segment_scans(
    inputs: Iterable[str | Path],
    out: str | Path,
    side: str | None = None,
    weights: str | Path | None = None,
    progress: bool = True,
    n_jobs: int = 1,
    threads: int = 1,
    resume: bool = True,
) -> pd.DataFrame:
    """Segment scans and write, under ``out``: ``labels/*.nii.gz``, ``thickness/*.nii.gz`` (same affine as each input),
    ``knees/*.json`` (one finished record per input), ``mri_biomarkers.parquet``/``.csv`` (one row per knee, input
    order), ``qc_summary.csv``/``.json`` and ``failures.csv``.

    A bad scan does not stop the batch: it is listed in ``failures.csv``, ``qc_summary.json`` and the table's
    ``attrs["failures"]`` (``source_file``, ``error``) and the other scans are written; only a batch where every
    scan failed is an error. A knee whose side neither its name, header nor ``side`` gives is read from the
    segmented anatomy (``qc_side_source`` says which; :func:`oa_kit.features.mri_knee.analyse_knee`).

    Many scans: one model per process, a tqdm bar, optionally ``n_jobs`` worker processes, torch on ``threads``
    threads in each. Measured on the shared 2-core machine (``benchmarks/mri_speed.py --batch 20``, load 4-5): one
    process with 1 thread 1.07 s/scan, with 2 threads 3.4 s/scan, two 1-thread workers 1.37 s/scan once started
    plus ~22 s start-up (the other jobs kept the cores busy), hence the defaults ``n_jobs=1, threads=1``; on a
    machine with idle cores, ``n_jobs=-1`` runs one worker per core.

    An interrupted run resumes: inputs whose record exists for the same input file, ``side``, weights and oa_kit
    version (and whose NIfTIs are present) are not segmented again; pass ``resume=False`` after changing biomarker
    code within a version.

    Parameters
    ----------
    inputs
        DICOM series folders, NIfTI, MHD or SKM-TEA HDF5 files.
    out
        Output folder (created).
    side
        Knee side for inputs whose name/header does not say it (contradicting them is an error); default: read from
        the anatomy.
    weights
        ``"synthetic"`` (default: the shipped weights trained on the synthetic cohort's phantoms), ``"real"`` (the
        shipped contrast-agnostic weights, for real scans) or a ``.safetensors`` file.
    progress
        Show a progress bar.
    n_jobs
        Processes: 1 (default) segments in this process; more start that many spawned workers (``-1``: one per
        core), never more than the scans left to do.
    threads
        torch/BLAS threads in each process (restored afterwards in this one); 1 is fastest on a shared machine
        (see :func:`limit_threads`).
    resume
        Reuse finished records (default); ``False`` segments every input again.

    Returns
    -------
    pandas.DataFrame
        The per-knee table written to ``mri_biomarkers.parquet`` (``qc_usable`` False: do not use that knee's
        biomarkers), with ``attrs["failures"]``.
    """
    if int(threads) < 1:
        raise OAKitError(f"threads: got {threads}; expected a positive number of torch threads per process")
    out = Path(out)
    paths = [Path(p) for p in inputs]
    if not paths:
        raise OAKitError("inputs: no scans given; expected at least one DICOM folder or NIfTI/MHD/HDF5 file")
    weights = str(weights) if weights is not None else None
    weights_sha = str(weights_metadata(weights)["sha256"])
    keys = {path: record_key(out, path, side, weights_sha) for path in paths}
    done = {path: row for path in paths if resume and (row := _finished_row(out, path, keys[path])) is not None}
    pending = [path for path in dict.fromkeys(paths) if path not in done]
    jobs = resolve_n_jobs(int(n_jobs), len(pending))
    with tqdm(
        total=len(paths), initial=len(paths) - len(pending), desc="segmenting", unit="scan", disable=not progress
    ) as bar:
        attempts = _run_pending(pending, out, side, weights, keys, jobs, int(threads), bar) if pending else {}
    done.update({path: a["row"] for path, a in attempts.items() if "row" in a})
    failures = [{"source_file": str(p), "error": a["error"]} for p, a in attempts.items() if "error" in a]
    return _finish(paths, done, failures, out)


def _finish(paths: list[Path], done: dict[Path, dict], failures: list[dict], out: Path) -> pd.DataFrame:
    """The batch's table (rows in input order) with its failures in ``attrs["failures"]``, written under ``out``;
    a batch where every input failed is an error (the first input's message when there was only one)."""
    if not done:
        first = failures[0]["error"]
        raise OAKitError(first if len(failures) == 1 else f"all {len(failures)} inputs failed; the first: {first}")
    table = pd.DataFrame([done[path] for path in dict.fromkeys(paths) if path in done])
    _write_tables(table, out, failures)
    table.attrs["failures"] = failures
    return table


#: Columns of ``qc_summary.csv``: the knee, where its side came from, each check and its evidence.
QC_SUMMARY_COLUMNS = (
    "participant_id",
    "side",
    "qc_side_source",
    "visit_month",
    "source_file",
    *QC_FLAGS,
    "qc_any",
    "qc_usable",
    "qc_cartilage_entropy",
    "qc_cartilage_on_bone_fraction",
    "qc_anatomy_side",
    "qc_not_labelled",
    "qc_reasons",
)


def _write_tables(table: pd.DataFrame, out: Path, failures: Sequence[dict] = ()) -> None:
    """Write the per-knee table (parquet and CSV), the QC summary (CSV + JSON) and the failed inputs, atomically."""
    with atomic_path(out / "mri_biomarkers.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    write_csv(table, out / "mri_biomarkers.csv")
    qc = table[[c for c in QC_SUMMARY_COLUMNS if c in table]]
    write_csv(qc, out / "qc_summary.csv")
    write_csv(pd.DataFrame(list(failures), columns=["source_file", "error"]), out / "failures.csv")
    summary = {
        "n_knees": len(table),
        "n_flagged": int(qc["qc_any"].sum()),
        "n_failed_inputs": len(failures),
        "flag_counts": {f: int(qc[f].sum()) for f in QC_FLAGS},
        "failures": list(failures),
        "note": "segmenter trained on synthetic phantoms only; retrain/fine-tune before trusting real-scan numbers",
    }
    write_text_atomic(out / "qc_summary.json", json.dumps(summary, indent=2) + "\n")


def measure_label_maps(
    inputs: Iterable[str | Path],
    out: str | Path,
    convention: str = "harmonised",
    images: Sequence[str | Path] | None = None,
    side: str | None = None,
    weights: str | Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Measure label maps the user already has (:func:`oa_kit.api.measure_labels`) and write what
    :func:`segment_scans` writes: ``labels/`` (harmonised) and ``thickness/`` NIfTIs, ``mri_biomarkers.parquet``/
    ``.csv`` (the same columns) and the QC summary. A bad input is reported in ``attrs["failures"]`` and
    ``failures.csv``; the others are measured.

    Parameters
    ----------
    inputs
        NIfTI, NRRD or MHD label maps.
    out
        Output folder (created).
    convention
        Their label convention (``harmonised`` or a key of :data:`oa_kit.io.labels.CROSSWALKS`).
    images
        Optional scans the maps were drawn on, one per input in the same order (for the ``mri_emb_*`` columns;
        without them those are NaN).
    side
        Knee side of inputs whose name does not say it; default: read from the anatomy.
    weights
        Segmenter weights for the image embedding: a shipped name (``synthetic``, the default, or ``real``) or a
        ``.safetensors`` file.
    progress
        Show a progress bar.
    """
    paths = [Path(p) for p in inputs]
    if not paths:
        raise OAKitError("inputs: no label maps given; expected at least one NIfTI/NRRD/MHD file")
    if images is not None and len(images) != len(paths):
        raise OAKitError(f"--image: {len(images)} images for {len(paths)} label maps; expected one per label map")
    segmenter = MRISegmenter.from_pretrained(weights)
    pairs = dict(zip(paths, images or [None] * len(paths)))
    attempts = {
        path: _attempt(_measure_one, path, Path(out), convention, pairs[path], side, segmenter)
        for path in tqdm(list(pairs), desc="measuring", unit="map", disable=not progress)
    }
    done = {path: a["row"] for path, a in attempts.items() if "row" in a}
    failures = [{"source_file": str(p), "error": a["error"]} for p, a in attempts.items() if "error" in a]
    return _finish(paths, done, failures, Path(out))


def _measure_one(
    path: Path, out: Path, convention: str, image: str | Path | None, side: str | None, segmenter: MRISegmenter
) -> dict:
    """Measure one label map and write its label and thickness NIfTIs (as :func:`segment_one` does)."""
    analysis = measure_labels(path, side=side, image=image, convention=convention, segmenter=segmenter)
    write_knee_maps(out, path, analysis.labels, analysis.measurement.thickness_map, analysis.affine)
    return analysis.row


def train_run(
    out: str | Path,
    synthetic: int = 0,
    data: Sequence[str | Path] = (),
    geometry: str = "phantom",
    more_synthetic: int = 0,
    more_geometry: str | None = None,
    seed: int = 0,
    channels: Sequence[int] | None = None,
    context_mm: float = 0.0,
    max_val: int | None = None,
    epochs: int = 30,
    batch_size: int = 16,
    lr: float = 2e-3,
    steps_per_epoch: int | None = None,
    resume: bool = False,
    contact_weight: float = 0.0,
    init_weights: str | Path | None = None,
    weights_out: str | Path | None = None,
    progress: bool = True,
    log: Log = None,
) -> Path:
    """Train the segmenter on ``synthetic`` phantom participants or scans found in ``data``; returns the weights path.

    Splits by participant (70/10/20), writes ``OUT/split.json``, checkpoints and ``mri_segmenter.safetensors`` (+ JSON
    with sha256 and the training-data statement), scores the test split (``test_metrics.csv``) and optionally copies
    the weights to ``weights_out``. ``more_synthetic`` adds training-only phantom participants (seed + 1).
    """

    if synthetic > 0:
        cases = render_phantom_cases(synthetic, seed=seed, geometry=MRI_GEOMETRIES[geometry], progress=progress)
    elif data:
        cases = discover_cases(data)
    else:
        raise OAKitError("mri train: no data; expected DATA paths or --synthetic N")
    train, val, test = split_by_group(cases, seed=seed)
    if more_synthetic > 0:
        if synthetic <= 0:
            raise OAKitError("mri train: --more-synthetic needs --synthetic N; expected both")
        more_geometry = more_geometry or geometry
        train = [
            *train,
            *render_phantom_cases(
                more_synthetic, seed=seed + 1, geometry=MRI_GEOMETRIES[more_geometry], progress=progress
            ),
        ]
    if not train:
        raise OAKitError("mri train: the split left no training scans; expected more participants")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split = {"train": [c.case_id for c in train], "val": [c.case_id for c in val], "test": [c.case_id for c in test]}
    write_text_atomic(out / "split.json", json.dumps(split, indent=1))

    channels = tuple(channels or DEFAULT_CHANNELS)
    if context_mm < 0:
        raise OAKitError(f"mri train: --context-mm {context_mm}; expected >= 0 mm")
    segmenter = MRISegmenter(channels=channels, strides=(2,) * (len(channels) - 1), context_mm=context_mm)
    result = train_segmenter(
        train,
        val[:max_val],
        out=out,
        epochs=epochs,
        seed=seed,
        batch_size=batch_size,
        lr=lr,
        steps_per_epoch=steps_per_epoch,
        resume=resume,
        progress=progress,
        segmenter=segmenter,
        log=log,
        contact_weight=contact_weight,
        init_weights=init_weights,
    )
    extra = (
        (f" + {more_synthetic} training-only participants (seed {seed + 1}, {more_geometry or geometry} grid)")
        if more_synthetic > 0
        else ""
    )
    source = (
        (f"synthetic phantoms (oa_kit.synth.mri.render_knee_mri), {synthetic} participants ({geometry} grid){extra}")
        if synthetic
        else "; ".join(str(p) for p in data)
    )
    weights = save_weights(result, out / "mri_segmenter.safetensors", {"training_data": source})
    _log(log, f"weights: {weights}")
    if test:
        model = MRISegmenter.from_pretrained(weights)
        summary, per_case = evaluate_segmenter(model, test, seed=seed, progress=progress)
        write_csv(summary, out / "test_metrics.csv")
        write_csv(per_case, out / "test_per_case.csv")
        _log(log, summary.to_string(index=False))
    if weights_out:
        weights_out = Path(weights_out)
        weights_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, weights_out)
        shutil.copyfile(weights.with_suffix(".json"), weights_out.with_suffix(".json"))
    return weights


def evaluate_phantom_test(
    out: str | Path,
    synthetic: int,
    seed: int = 0,
    geometry: str = "phantom",
    weights: str | Path | None = None,
    n_boot: int = 1000,
    progress: bool = True,
    contrast: str = DEFAULT_CONTRAST,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Re-create a synthetic training run's test split (same ``synthetic`` and ``seed``) and score ``weights`` on it;
    ``contrast`` renders the same phantoms with another tissue contrast (e.g. ``"we-dess"``, dark marrow).

    Writes ``test_metrics.csv``, ``test_per_case.csv``, ``thickness_error.csv`` and ``thickness_per_case.csv`` into
    ``out``; returns (Dice/ASSD summary, thickness-error summary). Figures are on phantoms, not real scans.
    """

    groups = [f"SYN{seed:03d}{p:04d}" for p in range(synthetic)]
    placeholders = [type("G", (), {"group": g, "case_id": g})() for g in groups]
    test_groups = {c.group for c in split_by_group(placeholders, seed=seed)[2]}
    cases = render_phantom_cases(
        synthetic,
        seed=seed,
        geometry=MRI_GEOMETRIES[geometry],
        progress=progress,
        only_groups=test_groups,
        contrast=contrast,
    )
    model = MRISegmenter.from_pretrained(weights)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seg_summary, seg_cases = evaluate_segmenter(model, cases, n_boot=n_boot, seed=seed, progress=progress)
    th_summary, th_cases = evaluate_thickness(model, cases, n_boot=n_boot, seed=seed, progress=progress)
    for name, frame in (
        ("test_metrics", seg_summary),
        ("test_per_case", seg_cases),
        ("thickness_error", th_summary),
        ("thickness_per_case", th_cases),
    ):
        write_csv(frame, out / f"{name}.csv")
    return seg_summary, th_summary


def _log(log: Log, message: str) -> None:
    """Pass a progress message to ``log`` (e.g. ``print``); silent when ``log`` is None."""
    if log is not None:
        log(message)


def qc_lines(table: pd.DataFrame) -> list[str]:
    """One line per knee of a biomarker table: QC passed, or which checks failed (its numbers are then unusable);
    a side read from the anatomy (not the file name, header or argument) says so."""
    lines = []
    for row in table.itertuples(index=False):
        inferred = " (side from anatomy)" if getattr(row, "qc_side_source", None) == "anatomy" else ""
        name = f"{row.participant_id} {row.side}{inferred} {Path(str(row.source_file)).name}"
        failed = bool(getattr(row, "qc_any", False))
        verdict = f"QC FAILED ({row.qc_reasons}): biomarkers unusable" if failed else "QC passed"
        lines.append(f"{name}: {verdict}")
    return lines


def failure_lines(table: pd.DataFrame) -> list[str]:
    """One line per input of a batch that could not be segmented or measured (``table.attrs["failures"]``)."""
    return [f"{f['source_file']}: FAILED: {f['error']}" for f in table.attrs.get("failures", [])]


#: Share of training samples drawn from each label-map source (renormalised over the sources present).
SYNTHSEG_SOURCE_SHARE = {"woo": 0.6, "pymskt": 0.1, "spl": 0.1, "synthetic": 0.2}


def synthseg_run(
    out: str | Path,
    woo: str | Path,
    shared: str | Path | None = None,
    phantoms: int = 4,
    holdout: int = 4,
    seed: int = 0,
    phantom_images: int = 0,
    channels: Sequence[int] | None = None,
    log: Log = None,
    **train_args,
) -> Path:
    """Prepare the real label maps (Woo OAI maps, pyMSKT and SPL from ``shared``, phantoms) once, hold out
    ``holdout`` Woo participants, and run or resume SynthSeg training in ``out``; returns the run folder.

    ``channels`` sets the U-Net's width per level (default :data:`DEFAULT_CHANNELS`). ``phantom_images`` > 0 also renders that many phantom participants per phantom contrast, whose scans (their own
    contrast, not random) join every batch (``image_share`` of it) so the weights keep segmenting phantoms.
    """
    out = Path(out)
    maps = out / "maps"
    woo_train, woo_val = split_holdout(cached_label_maps(maps / "woo", lambda: woo_label_maps(woo)), holdout, seed)
    extra = cached_label_maps(maps / "shared", lambda: shared_label_maps(shared)) if shared else []
    synthetic = cached_label_maps(maps / "phantoms", lambda: phantom_label_maps(phantoms, seed)) if phantoms else []
    train = woo_train + extra + synthetic
    count = {s: sum(c.source == s for c in train) for s in SYNTHSEG_SOURCE_SHARE}
    weights = [SYNTHSEG_SOURCE_SHARE[c.source] / count[c.source] for c in train]
    image_train, image_val = phantom_scans(phantom_images, seed) if phantom_images else ([], [])
    split = {"train": [c.case_id for c in train], "holdout": [c.case_id for c in woo_val]}
    split |= {"phantom_scans": [c.case_id for c in image_train], "phantom_holdout": [c.case_id for c in image_val]}
    write_text_atomic(out / "split.json", json.dumps(split, indent=2))
    train_synthseg(
        train,
        woo_val,
        out,
        seed=seed,
        weights=weights,
        log=log,
        image_cases=image_train,
        val_image_cases=image_val,
        segmenter=MRISegmenter(channels=tuple(channels or DEFAULT_CHANNELS), context_mm=SynthConfig().context_mm),
        **train_args,
    )
    return out


def phantom_scans(n_participants: int, seed: int = 0) -> tuple[list, list]:
    """Rendered phantom scans of ``n_participants`` per phantom contrast (ids SYN1xx..., apart from the synthetic
    test sets of seeds < 100), split by participant: all but the last of each contrast train, the last validates."""
    train, val = [], []
    for i, contrast in enumerate(sorted(TISSUE_CONTRASTS)):
        cases = render_phantom_cases(n_participants, seed=100 + 10 * seed + i, contrast=contrast)
        held = cases[-1].group
        train += [c for c in cases if c.group != held]
        val += [c for c in cases if c.group == held]
    return train, val
