"""Scan -> knee results: read any supported MRI input, segment, measure cartilage, QC, and write maps and the per-knee table."""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from oa_kit.errors import OAKitError
from oa_kit.features.cartilage import CartilageMeasurement, measure_cartilage, write_map_nifti
from oa_kit.features.mri_qc import QC_FLAGS, qc_flags
from oa_kit.io.artifacts import verified_sidecar
from oa_kit.io.atomic import atomic_path, write_text_atomic
from oa_kit.models.mri.inference import DEFAULT_WEIGHTS, MRISegmenter
from oa_kit.parallel import resolve_n_jobs

_NAME = re.compile(r"(?P<pid>[^_/]+)_(?P<side>[RL])_(?P<visit>V\d\d)")
_SIDE_WORDS = {"RIGHT": "R", "LEFT": "L"}


@dataclass
class ScanInput:
    """One input scan as read: image, affine, and what the name/header say about participant, side and visit."""

    path: Path
    image: np.ndarray
    affine: np.ndarray
    participant_id: str
    side: str | None
    visit_month: int


@dataclass
class KneeResult:
    """Everything measured on one knee scan."""

    labels: np.ndarray
    measurement: CartilageMeasurement
    row: dict


def read_scan(path: str | Path) -> ScanInput:
    """Read a DICOM series folder, NIfTI, MHD or SKM-TEA HDF5 scan with its geometry; reject files without orientation."""
    from oa_kit.io import mri

    path = Path(path)
    if path.is_dir():
        vol = mri.read_dicom_series(path)
    elif path.name.endswith((".nii", ".nii.gz")):
        hdr = nib.load(str(path)).header
        if int(hdr["sform_code"]) == 0 and int(hdr["qform_code"]) == 0:
            raise OAKitError(
                f"{path}: NIfTI has no orientation (qform_code = sform_code = 0); expected a scanner affine"
            )
        vol = mri.read_nifti(path)
    elif path.suffix == ".mhd":
        vol = mri.read_mhd(path)
    elif path.suffix in (".h5", ".hdf5"):
        vol = mri.read_skmtea_h5(path)["echo1"]
    elif not path.exists():
        raise OAKitError(f"{path}: not found; expected a DICOM folder, .nii(.gz), .mhd or .h5 file")
    else:
        raise OAKitError(f"{path}: unsupported file type; expected a DICOM series folder, .nii(.gz), .mhd or .h5")
    if vol.array.ndim != 3:
        raise OAKitError(f"{path}: image has shape {vol.array.shape}; expected one 3-D volume")
    return ScanInput(path, np.asarray(vol.array, dtype=np.float32), vol.affine, *_identity(path, vol.metadata))


def _identity(path: Path, metadata) -> tuple[str, str | None, int]:
    """Participant id, side and visit month from a ``{ID}_{R|L}_V00`` name or DICOM laterality/description."""
    from oa_kit.io.oai import VISIT_MONTHS

    stem = path.name.split(".")[0]
    m = _NAME.search(stem)
    if m:
        return m["pid"], m["side"], int(VISIT_MONTHS.get(m["visit"], 0))
    side = None
    lat = str(metadata.get("laterality", "")).upper()
    desc = str(metadata.get("series_description", "")).upper()
    if lat in ("R", "L"):
        side = lat
    else:
        side = next((v for k, v in _SIDE_WORDS.items() if k in desc), None)
    return stem, side, 0


def analyse_knee(scan: ScanInput, segmenter: MRISegmenter, side: str) -> KneeResult:
    """Segment one scan and measure it: biomarkers, QC flags and embedding in one tidy row."""
    seg = segmenter.segment(scan.image, scan.affine, side)
    measurement = measure_cartilage(seg.labels, scan.affine, side, proba=seg.proba)
    row = {
        "participant_id": scan.participant_id,
        "side": side,
        "visit_month": scan.visit_month,
        "source_file": str(scan.path),
    }
    row.update(measurement.to_row())
    row.update(qc_flags(seg.labels, scan.affine, side, seg.proba))
    row.update({f"mri_emb_{i:03d}": float(v) for i, v in enumerate(seg.embedding)})
    return KneeResult(seg.labels, measurement, row)


def scan_record_path(out: str | Path, path: str | Path) -> Path:
    """Where :func:`segment_scans` records one input's finished result: ``out/knees/<name>-<hash of the path>.json``.

    The record is written last, atomically, after the scan's label and thickness NIfTIs: its presence marks the
    scan complete, which is what lets an interrupted run resume.
    """
    path = Path(path)
    digest = hashlib.sha1(str(path.resolve()).encode("utf-8")).hexdigest()[:10]
    return Path(out) / "knees" / f"{path.name.split('.')[0]}-{digest}.json"


def _source_stamp(path: Path) -> dict[str, int]:
    """Size and modification time of an input file (of every file in a DICOM folder): a changed input is redone."""
    files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
    stats = [f.stat() for f in files]
    return {
        "n_files": len(stats),
        "bytes": sum(s.st_size for s in stats),
        "mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
    }


def _record_key(path: Path, side: str | None, weights_sha256: str) -> dict[str, object]:
    """What a finished result must match to be reused: the input (path, size, mtime), the ``side`` argument, the
    weights and the oa_kit version (whose biomarker columns it holds)."""
    from oa_kit import __version__

    return {
        "source_file": str(path.resolve()),
        "source": _source_stamp(path) if path.exists() else None,
        "side_argument": side,
        "weights_sha256": weights_sha256,
        "oa_kit_version": __version__,
    }


def _finished_row(out: Path, path: Path, key: dict[str, object]) -> dict | None:
    """The stored row of a scan already segmented with the same input and weights (outputs present), else None."""
    record_path = scan_record_path(out, path)
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if record.get("key") != key or not all((out / name).is_file() for name in record.get("outputs", [])):
        return None
    return record["row"]


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

    Returns the per-knee row (see :func:`analyse_knee`). ``key`` (from the caller) is stored in the record so a
    later run can tell whether the result is still valid.
    """
    path, out = Path(path), Path(out)
    scan = read_scan(path)
    knee_side = scan.side or side
    if knee_side is None:
        raise OAKitError(f"{path}: knee side not in the file name or header; expected --side R or --side L")
    result = analyse_knee(scan, segmenter, knee_side)
    stem = f"{scan.participant_id}_{knee_side}_{scan.visit_month:03d}"
    outputs = [Path("labels") / f"{stem}_labels.nii.gz", Path("thickness") / f"{stem}_thickness.nii.gz"]
    write_map_nifti(out / outputs[0], result.labels, scan.affine)
    write_map_nifti(out / outputs[1], result.measurement.thickness_map, scan.affine)
    record = {"key": key, "outputs": [str(o) for o in outputs], "row": result.row}
    write_text_atomic(scan_record_path(out, path), json.dumps(record, default=_json_default) + "\n")
    return result.row


#: The worker process's segmenter, loaded once by :func:`_init_worker`.
_WORKER: dict[str, object] = {}


def _init_worker(weights: str | None, threads: int) -> None:
    """Worker start-up: ``threads`` threads for torch/BLAS/OpenMP (processes share the cores) and load the model."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    _WORKER["limits"] = threadpool_limits(limits=threads)
    _WORKER["segmenter"] = MRISegmenter.from_pretrained(weights)


def _worker_segment(path: Path, out: Path, side: str | None, key: dict[str, object]) -> dict:
    """Task run in a worker process: :func:`segment_one` with the worker's segmenter."""
    return segment_one(path, out, _WORKER["segmenter"], side, key)


@contextlib.contextmanager
def _limit_threads(threads: int) -> Iterator[None]:
    """Run torch, BLAS and OpenMP on ``threads`` threads, restoring the caller's settings afterwards.

    One is the default: biomarkers (single-threaded NumPy/SciPy) dominate a knee's time, so a second torch thread
    could only shorten the network's share (~0.4 s of a synthetic knee), while on the shared machine its
    spin-waiting made a batch 2.4-6x slower (3.4-10.0 vs 1.0-1.8 s/scan, ``benchmarks/mri_speed.py --batch``).
    """
    from threadpoolctl import threadpool_limits

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
    """Segment the pending scans, in this process (``n_jobs`` 1) or in ``n_jobs`` spawned worker processes."""
    rows: dict[Path, dict] = {}
    if n_jobs == 1:
        segmenter = MRISegmenter.from_pretrained(weights)
        with _limit_threads(threads):
            for path in pending:
                rows[path] = segment_one(path, out, segmenter, side, keys[path])
                bar.update()
        return rows
    pool = ProcessPoolExecutor(
        max_workers=n_jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(weights, threads),
    )
    try:
        futures = {pool.submit(_worker_segment, path, out, side, keys[path]): path for path in pending}
        for future in as_completed(futures):
            rows[futures[future]] = future.result()
            bar.update()
    finally:
        pool.shutdown(cancel_futures=True)
    return rows


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
    ``knees/*.json`` (one finished record per input), ``mri_biomarkers.parquet`` (one row per knee, input order) and
    ``qc_summary.csv``/``.json``.

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
        Knee side for inputs whose name/header does not say it.
    weights
        Segmenter ``.safetensors``; default the shipped weights (trained on synthetic phantoms only).
    progress
        Show a progress bar.
    n_jobs
        Processes: 1 (default) segments in this process; more start that many spawned workers (``-1``: one per
        core), never more than the scans left to do.
    threads
        torch/BLAS threads in each process (restored afterwards in this one); 1 is fastest on a shared machine
        (see :func:`_limit_threads`).
    resume
        Reuse finished records (default); ``False`` segments every input again.

    Returns
    -------
    pandas.DataFrame
        The per-knee table written to ``mri_biomarkers.parquet``.
    """
    if int(threads) < 1:
        raise OAKitError(f"threads: got {threads}; expected a positive number of torch threads per process")
    out = Path(out)
    paths = [Path(p) for p in inputs]
    if not paths:
        raise OAKitError("inputs: no scans given; expected at least one DICOM folder or NIfTI/MHD/HDF5 file")
    weights = str(weights) if weights is not None else None
    weights_sha = str(verified_sidecar(weights or DEFAULT_WEIGHTS, "MRI segmenter weights")["sha256"])
    keys = {path: _record_key(path, side, weights_sha) for path in paths}
    done = {path: row for path in paths if resume and (row := _finished_row(out, path, keys[path])) is not None}
    pending = [path for path in dict.fromkeys(paths) if path not in done]
    jobs = resolve_n_jobs(int(n_jobs), len(pending))
    with tqdm(
        total=len(paths), initial=len(paths) - len(pending), desc="segmenting", unit="scan", disable=not progress
    ) as bar:
        done.update(_run_pending(pending, out, side, weights, keys, jobs, int(threads), bar) if pending else {})
    table = pd.DataFrame([done[path] for path in paths])
    _write_tables(table, out)
    return table


def _write_tables(table: pd.DataFrame, out: Path) -> None:
    """Write the per-knee parquet table and the QC summary (CSV + JSON) atomically."""
    with atomic_path(out / "mri_biomarkers.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    qc = table[
        [
            "participant_id",
            "side",
            "visit_month",
            "source_file",
            *QC_FLAGS,
            "qc_any",
            "qc_cartilage_entropy",
            "qc_reasons",
        ]
    ]
    with atomic_path(out / "qc_summary.csv") as tmp:
        qc.to_csv(tmp, index=False)
    summary = {
        "n_knees": len(table),
        "n_flagged": int(qc["qc_any"].sum()),
        "flag_counts": {f: int(qc[f].sum()) for f in QC_FLAGS},
        "note": "segmenter trained on synthetic phantoms only; retrain/fine-tune before trusting real-scan numbers",
    }
    write_text_atomic(out / "qc_summary.json", json.dumps(summary, indent=2) + "\n")
