"""The data folder the dashboards read: ``OA_KIT_DATA`` (default ``demo_out``), laid out as ``make demo`` writes it::

    DATA/cohort/            a cohort folder (OAI/MOST tables; a synthetic cohort also has xray/ and mri/)
    DATA/labels/            clinical.parquet, labels.parquet (``oa-kit labels``)
    DATA/features.parquet   the per-knee table the progression models were fitted on (optional; else
                            labels/clinical.parquet, else the cohort tables' baseline features: a bare cohort folder
                            such as the workshop preset's ``notebooks/data/full_imaged`` works too)
    DATA/progression/       a report folder (headline.csv, model_card_h{H}.md, *_h{H}.csv, *_h{H}.html)
    DATA/progression/models/h{H}/   the fitted models (``oa-kit progression fit`` / ``evaluate --fit-final``)
    DATA/mri/               the cohort MRIs' segmentations, thickness maps and records (``oa-kit mri segment``): a
                            knee's MRI is read from there when its record is valid, else segmented in the page

Every part is optional except what a page needs; a page names the missing part in one line.

A kernel serves one page and keeps what it read: tables, models and networks are loaded once per folder, and each
knee's KL grading (both knees of a radiograph) and MRI analysis once per file (:func:`knee_grades`, :func:`knee_mri`),
so that going back to a knee, or a what-if, never repeats a network's work. A knee whose MRI the pipeline already
segmented shows the pipeline's result (the one its progression features came from) without segmenting it again.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from oa_kit.api import (
    Cohort,
    KneeGrades,
    MRIAnalysis,
    ProgressionModels,
    ProgressionReport,
    analyse_mri,
    grade_knees,
    load_progression,
    open_cohort,
    read_mri_result,
    read_report,
)
from oa_kit.errors import OAKitError
from oa_kit.io.tables import read_table
from oa_kit.models.kl.predict import KLGrader
from oa_kit.models.mri.inference import MRISegmenter

#: Environment variable naming the data folder.
DATA_ENV = "OA_KIT_DATA"
DEFAULT_DATA = "demo_out"
KEYS = ["participant_id", "side"]


@dataclass(frozen=True)
class DataFolder:
    """Paths of one data folder (see the module docstring); loaders are cached per folder."""

    root: Path

    @classmethod
    def from_env(cls, folder: str | os.PathLike | None = None) -> DataFolder:
        """``folder``, else ``$OA_KIT_DATA``, else ``demo_out`` (resolved to an absolute path)."""
        return cls(Path(folder or os.environ.get(DATA_ENV) or DEFAULT_DATA).expanduser().resolve())

    @property
    def cohort_dir(self) -> Path:
        return self.root / "cohort" if (self.root / "cohort").is_dir() else self.root

    @property
    def report_dir(self) -> Path:
        return self.root / "progression" if (self.root / "progression").is_dir() else self.root

    @property
    def models_dir(self) -> Path:
        return self.report_dir / "models"

    @property
    def mri_results_dir(self) -> Path | None:
        """``mri/`` of the folder when it holds segmentation records (``oa-kit mri segment``), else None."""
        return self.root / "mri" if (self.root / "mri" / "knees").is_dir() else None

    def describe(self) -> str:
        """One line: which folder the page reads."""
        return f"data folder {self.root} ({DATA_ENV})"

    def features(self) -> pd.DataFrame:
        """The per-knee table the models were fitted on (``features.parquet``, else ``labels/clinical.parquet``)."""
        return _features(self.root)

    def cohort(self) -> Cohort:
        """The cohort (tables, labels, per-knee files) via :func:`oa_kit.open_cohort`."""
        return _cohort(self.cohort_dir)

    def models(self) -> ProgressionModels:
        """The fitted progression models of ``progression/models`` via :func:`oa_kit.load_progression`."""
        return _models(self.models_dir)

    def report(self) -> ProgressionReport:
        """The headline of the report folder via :func:`oa_kit.read_report`."""
        return read_report(self.report_dir)

    def knee_files(self, participant_id: str, side: str) -> dict:
        """``{"radiograph": path or None, "mri": path or None}`` of one knee in the cohort folder."""
        files = self.cohort().files
        row = files[(files["participant_id"] == str(participant_id)) & (files["side"] == side)]
        if row.empty:
            return {"radiograph": None, "mri": None}
        return {k: row.iloc[0][k] for k in ("radiograph", "mri")}

    def first_knee(self) -> tuple[str, str] | None:
        """``(participant_id, side)`` of the first knee of :meth:`features`, or None when the folder has none."""
        try:
            keys = self.features()[KEYS]
        except OAKitError:
            return None
        return (str(keys.iloc[0, 0]), str(keys.iloc[0, 1])) if len(keys) else None

    def knee_row(self, participant_id: str, side: str) -> dict:
        """One knee's row of :meth:`features` as a dict (an error naming the knee when it is not there)."""
        table = self.features()
        row = table[(table["participant_id"] == str(participant_id)) & (table["side"] == side)]
        if row.empty:
            raise OAKitError(f"participant {participant_id} {side}: not in {self.root}; expected a knee of this folder")
        return row.iloc[0].to_dict()


@functools.cache
def _features(root: Path) -> pd.DataFrame:
    table = None
    for path in (root / "features.parquet", root / "labels" / "clinical.parquet"):
        if path.is_file():
            table = read_table(path)
            break
    if table is None and ((root / "cohort").is_dir() or (root / "OAI").is_dir() or (root / "MOST").is_dir()):
        table = _cohort(root / "cohort" if (root / "cohort").is_dir() else root).features()  # a bare cohort folder
    if table is None:
        raise OAKitError(
            f"{root}: no features.parquet, labels/clinical.parquet or cohort tables; expected the output of `make demo`"
        )
    table["participant_id"] = table["participant_id"].astype(str)
    if "visit_month" in table:
        table = table[table["visit_month"].fillna(0) == 0]
    return table.reset_index(drop=True)


@functools.cache
def _cohort(folder: Path) -> Cohort:
    return open_cohort(folder)


@functools.cache
def _models(folder: Path) -> ProgressionModels:
    return load_progression(folder)


def load_models(folder: str | os.PathLike) -> ProgressionModels:
    """The progression models of ``folder`` (:func:`oa_kit.load_progression`), loaded once per kernel and folder."""
    return _models(Path(folder).expanduser().resolve())


#: Knees whose network results a kernel keeps (a KL result holds two 160 px inputs and maps; an MRI its volume).
KL_CACHE_SIZE = 256
MRI_CACHE_SIZE = 24


@functools.cache
def kl_grader(models_dir: Path | None) -> KLGrader:
    """The KL-CNN for the models of ``models_dir``: the network they were trained with
    (:meth:`ProgressionModels.kl_grader`), else (no models, or out-of-fold KL features) the shipped one."""
    if models_dir is not None:
        try:
            return _models(models_dir).kl_grader()
        except OAKitError:
            pass
    return KLGrader.from_pretrained()


@functools.cache
def mri_segmenter(models_dir: Path | None) -> MRISegmenter:
    """The MRI segmenter for the models of ``models_dir``: the shipped weights their MRI features came from
    (:meth:`ProgressionModels.mri_segmenter`), else (no models, or unshipped weights) the default shipped one."""
    if models_dir is not None:
        try:
            return _models(models_dir).mri_segmenter()
        except OAKitError:
            pass
    return MRISegmenter.from_pretrained()


@functools.lru_cache(maxsize=KL_CACHE_SIZE)
def knee_grades(radiograph: str, models_dir: Path | None) -> KneeGrades:
    """KL grades with Grad-CAM of every knee in one radiograph file (:func:`oa_kit.grade_knees`), once per file."""
    return grade_knees([radiograph], grader=kl_grader(models_dir))


@functools.lru_cache(maxsize=MRI_CACHE_SIZE)
def knee_mri(scan: str, side: str, results: Path | None = None, models_dir: Path | None = None) -> MRIAnalysis:
    """Segmentation, thickness and QC of one knee MRI file, once per file, side and models: the pipeline's result in
    ``results`` when it is valid for this file, side and segmenter (:func:`oa_kit.read_mri_result`), else
    :func:`oa_kit.analyse_mri` now, with the segmenter of the models of ``models_dir`` (:func:`mri_segmenter`)."""
    segmenter = mri_segmenter(models_dir)
    if results is not None:
        saved = read_mri_result(results, scan, segmenter=segmenter)
        if saved is not None and saved.side == side:
            return saved
    return analyse_mri(scan, side=side, segmenter=segmenter)
