"""The public API: one verb per thing a person does, each returning a result object with ``.to_frame()`` and plotly
figures. Nothing here prints or needs an output folder; paths and in-memory arrays/DataFrames are both accepted.

================================  ==========================================================================
verb                              result
================================  ==========================================================================
:func:`grade_knees`               :class:`KneeGrades` — KL probabilities, conformal set, QA flags, ROI,
                                  Grad-CAM, embedding: the KL table progression models read
:func:`analyse_mri`               :class:`MRIAnalysis` — labels, thickness map, biomarkers, QC, slice figure
:func:`measure_labels`            :class:`MRIAnalysis` from a label map the user already has
:func:`open_cohort`               :class:`Cohort` — OAI/MOST tables, progression labels, per-knee files
:func:`fit_progression`           :class:`ProgressionModels` — one calibrated model per horizon (``.save``)
:func:`load_progression`          :class:`ProgressionModels` from a saved folder (checksums verified)
:func:`knee_risk`                 :class:`KneeRisk` — per-horizon risk of one knee with its explanation
:func:`evaluate_progression`      :class:`ProgressionReport` — out-of-sample metrics with CIs and figures
:func:`read_report`               :class:`ProgressionReport` tables read back from a report folder
================================  ==========================================================================

Every result names the model that produced it and the data it was trained on; numbers from models trained on the
synthetic cohort say so.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from oa_kit import API
from oa_kit.cohort import CohortTables, ProgressionLabels, build_progression_labels, load_tables
from oa_kit.errors import OAKitError
from oa_kit.evaluation.oracle import oracle_column
from oa_kit.evaluation.report import ProgressionEvaluation
from oa_kit.evaluation.report import evaluate_progression as _evaluate
from oa_kit.explain import explain_text, family_text, grouped_shap, shap_values
from oa_kit.explain.gradcam import grader_gradcam
from oa_kit.features.assemble import baseline_features
from oa_kit.features.cartilage import CartilageMeasurement, subregion_frame
from oa_kit.features.mri_knee import analyse_knee, harmonise_labels, lacked_tissues, measure_knee
from oa_kit.features.schema import MRI_MODEL_COLUMN, keep_families
from oa_kit.horizons import MODEL_HORIZONS_MONTHS, OAI_HORIZONS_MONTHS
from oa_kit.io.artifacts import verified_sidecar, verify_checksums, write_checksums
from oa_kit.io.atomic import atomic_dir
from oa_kit.io.labels import label_convention
from oa_kit.io.mri import read_nifti
from oa_kit.io.mri_results import finished_record, record_key
from oa_kit.io.scans import ScanInput, declared_side, read_label_file, read_scan
from oa_kit.models.kl.predict import (
    KL_PROBA_COLUMNS,
    KL_TABLE_COLUMNS,
    SHIPPED_WEIGHTS,
    KLGrader,
    grade_knee_records,
    load_knees,
)
from oa_kit.models.mri.inference import MRISegmenter, shipped_name, weights_metadata
from oa_kit.progression.baselines import LIGHTGBM_SET_OPTIONS
from oa_kit.progression.model import ProgressionModel, make_provenance
from oa_kit.progression.persist import load_model, save_model
from oa_kit.progression.training_data import labelled_rows
from oa_kit.viz import shap_plots
from oa_kit.viz.kl import gradcam_figure, probability_figure
from oa_kit.viz.progression import evaluation_figures
from oa_kit.viz.thickness import thickness_map_figure

__all__ = list(API)

#: One LightGBM configuration for smoke runs (``quick=True``, ``--search quick``).
QUICK_GRID = ({"num_leaves": 8, "n_estimators": 100, "learning_rate": 0.05, "min_child_samples": 10},)
#: Column of the KL table naming the CNN that produced it (sha256 of its weights file); not a feature.
KL_MODEL_COLUMN = "kl_weights_sha256"
#: Folder of a saved models folder holding the KL-CNN copy (when it is not the shipped one).
KL_FOLDER = "kl"
#: What every KL result says about the shipped model's training data.
KL_MODEL_NOTE = "KL-CNN trained on real OAI knees (Chen 2018 train split)"


# ----------------------------------------------------------------------------------------------- radiographs
@dataclass
class KneeGrades:
    """KL grading of one or more knees (one row each), with the model inputs, Grad-CAM maps and embeddings.

    ``table`` is the one KL output table (``oa_kit.models.kl.predict.KL_TABLE_COLUMNS``: participant_id, side,
    source, kl_p0..kl_p4 calibrated, kl_grade (<NA> only when no knee was found or the image is blank; a knee
    flagged ``out_of_distribution`` keeps its grade, marked by the flag), kl_grade_set (conformal set, e.g. "2,3"),
    kl_qa_flags (";"-joined), kl_weights_sha256 (the CNN), then the ``kl_emb_*`` embedding), which
    ``oa-kit progression --radiograph`` reads as it is. ``inputs`` (N, 1, S, S) are
    the model inputs (left knees mirrored), ``cams`` (N, S, S) their Grad-CAM maps (None when not asked for);
    rows without a knee are NaN there.
    """

    table: pd.DataFrame
    inputs: np.ndarray
    cams: np.ndarray | None
    model: str = KL_MODEL_NOTE

    def to_frame(self, embeddings: bool = False) -> pd.DataFrame:
        """The per-knee table (a copy), with the ``kl_emb_*`` columns when ``embeddings``."""
        return self.table.copy() if embeddings else self.table[[*KL_TABLE_COLUMNS, KL_MODEL_COLUMN]].copy()

    def knee(self, index: int) -> KneeGrades:
        """The result of knee ``index`` alone (e.g. one side of a bilateral radiograph, for :func:`knee_risk`)."""
        cams = None if self.cams is None else self.cams[index : index + 1]
        return KneeGrades(
            self.table.iloc[[index]].reset_index(drop=True), self.inputs[index : index + 1], cams, self.model
        )

    def figure(self, index: int = 0, opacity: float = 0.45) -> go.Figure:
        """Grad-CAM overlay on knee ``index``'s model input (or the input alone without Grad-CAM)."""
        row = self.table.iloc[index]
        title = (
            f"{row['participant_id']} {row['side']}: KL {row['kl_grade']} (set {row['kl_grade_set']}) — {self.model}"
        )
        cam = self.cams[index] if self.cams is not None else np.zeros(self.inputs.shape[-2:])
        return gradcam_figure(self.inputs[index], cam, title=title, opacity=opacity)

    def probability_figure(self, index: int = 0) -> go.Figure:
        """Bar chart of knee ``index``'s calibrated grade probabilities, its conformal set highlighted."""
        row = self.table.iloc[index]
        return probability_figure(row[list(KL_PROBA_COLUMNS)].to_numpy(float), row["kl_grade_set"])


def grade_knees(
    inputs: Sequence[str | os.PathLike | np.ndarray] | str | os.PathLike,
    side: str | None = None,
    clahe: str = "auto",
    gradcam: bool = True,
    grader: KLGrader | None = None,
) -> KneeGrades:
    """Grade knees in radiographs with the KL-CNN: probabilities, conformal set, QA flags, ROI, Grad-CAM, embedding.

    Parameters
    ----------
    inputs : path, or sequence of paths and arrays
        DICOM radiographs (both knees are localised), PNG/JPEG single-knee crops, folders (Chen layout or plain), or
        arrays: a model input (1, S, S) / (S, S) in [0, 1] as made by :func:`oa_kit.imaging.preprocess.kl_input`.
    side : {"R", "L"}, optional
        Side of single-knee inputs whose name or header does not say it.
    clahe : {"auto", "yes", "no"}
        Contrast enhancement (``auto``: skip for Chen-layout folders, which are already enhanced).
    gradcam : bool
        Also compute Grad-CAM maps (about 15 ms per knee on a CPU).
    grader : KLGrader, optional
        A calibrated grader; default the shipped model (trained on real OAI knees).

    Returns
    -------
    KneeGrades

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from oa_kit.api import grade_knees
    >>> grades = grade_knees([np.full((160, 160), 0.5, dtype=np.float32)], side="R", gradcam=False)
    >>> row = grades.to_frame().iloc[0]
    >>> row["side"], "blank_image" in row["kl_qa_flags"], row["kl_grade"] is pd.NA
    ('R', True, True)
    >>> grades.to_frame(embeddings=True).filter(like="kl_emb_").shape
    (1, 256)
    >>> grades.knee(0).to_frame()["side"].tolist()  # one knee's result, as knee_risk takes it
    ['R']
    """
    grader = grader or KLGrader.from_pretrained()
    items = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    knees = [knee for item in items for knee in _knee_records(item, side, clahe, grader.input_size_)]
    if not knees:
        raise OAKitError("inputs: no knees given; expected radiograph files, folders or model-input arrays")
    table, x, _ = grade_knee_records(grader, knees)
    table.insert(table.columns.get_loc("kl_qa_flags") + 1, KL_MODEL_COLUMN, _kl_identity(grader))
    found = [i for i, k in enumerate(knees) if k["input"] is not None]
    cams = None
    if gradcam:
        cams = np.full((len(knees), *x.shape[-2:]), np.nan, dtype=np.float32)
        if found:
            cams[found] = grader_gradcam(grader, x[found])
    return KneeGrades(table, x, cams)


def _kl_identity(grader: KLGrader) -> str:
    """sha256 of the grader's weights file (what its outputs came from); an unsaved, in-memory grader has none."""
    return str(getattr(grader, "info_", {}).get("sha256", "unsaved"))


def _knee_records(item: str | os.PathLike | np.ndarray, side: str | None, clahe: str, size: int) -> list[dict]:
    """Knee records (id, side, source, input, flags) from a path or a model-input array."""
    if isinstance(item, str | os.PathLike):
        return load_knees(Path(item), side, clahe)
    array = np.asarray(item, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    if array.shape != (1, size, size) or not np.isfinite(array).all():
        raise OAKitError(f"inputs: array of shape {array.shape}; expected a finite model input (1, {size}, {size})")
    knee_side = side or ""
    return [
        {
            "id": "array",
            "side": knee_side,
            "source": "array",
            "input": array,
            "flags": () if side else ("unknown_side",),
        }
    ]


# ------------------------------------------------------------------------------------------------------- MRI
@dataclass
class MRIAnalysis:
    """One knee MRI measured: harmonised labels, thickness map, QC and the per-knee row of biomarkers.

    ``qc`` holds the QC flags of :func:`oa_kit.features.mri_qc.qc_flags` (``qc_any`` true when any check failed,
    ``qc_reasons`` saying which); a scan that fails QC says so first in :meth:`summary` and its biomarkers should not
    be used. The table and the figure come from the row and the voxel maps, which is what ``oa-kit mri segment``
    writes, so :func:`read_mri_result` gives the same analysis back from a results folder; ``measurement`` (the
    per-vertex surfaces) is there only for a knee measured in this session.
    """

    image: np.ndarray | None
    labels: np.ndarray
    affine: np.ndarray
    side: str
    thickness_map: np.ndarray
    qc: dict
    row: dict
    model: str = "labels given by the user"
    measurement: CartilageMeasurement | None = None

    def to_frame(self) -> pd.DataFrame:
        """Regional biomarkers: one row per cartilage subregion (thickness mm, area mm², volume mm³, ...)."""
        return subregion_frame(self.row)

    def summary(self) -> str:
        """One line: QC verdict first, then where the numbers come from."""
        verdict = f"QC FAILED ({self.qc.get('qc_reasons')}): do not use" if self.qc.get("qc_any") else "QC passed"
        return f"{verdict} — {self.model}"

    def features(self) -> pd.DataFrame:
        """The one-row biomarker table progression models read (thickness_mm_*, volume_mm3_*, ..., mri_emb_*)."""
        return pd.DataFrame([self.row])

    def figure(self) -> go.Figure:
        """2D projected thickness maps (femur unrolled, tibia and patella projected)."""
        verdict, model = self.summary().split(" — ", 1)
        title = f"Cartilage thickness (mm) — {verdict}<br><sup>{model.split(';')[0]}</sup>"
        return thickness_map_figure(self.labels, self.thickness_map, self.affine, self.side, title=title)

    def slice_figure(self, index: int | None = None) -> go.Figure:
        """One sagittal slice (default: the middle of the cartilage) with the labels overlaid, at true aspect ratio."""
        cartilage = np.isin(self.labels, (2, 4, 5, 7))
        index = int(np.median(np.nonzero(cartilage)[0])) if index is None and cartilage.any() else (index or 0)
        base = self.image if self.image is not None else self.labels.astype(np.float32)
        fig = go.Figure(go.Heatmap(z=base[index].T, colorscale="gray", showscale=False))
        labels = np.where(self.labels[index] > 0, self.labels[index], np.nan).T
        fig.add_heatmap(z=labels, colorscale="Turbo", opacity=0.4, showscale=False, zmin=0, zmax=9)
        spacing = np.sqrt((np.asarray(self.affine)[:3, :3] ** 2).sum(0))
        fig.update_yaxes(scaleanchor="x", scaleratio=float(spacing[2] / spacing[1]), autorange="reversed")
        fig.update_layout(title=f"slice {index} — {self.summary()}")
        return fig


def analyse_mri(
    scan: str | os.PathLike | np.ndarray,
    affine: np.ndarray | None = None,
    side: str | None = None,
    segmenter: MRISegmenter | None = None,
) -> MRIAnalysis:
    """Segment one knee MRI and measure its cartilage: labels, thickness map, regional biomarkers, QC.

    Parameters
    ----------
    scan : path or array
        A DICOM series folder, NIfTI, MHD or SKM-TEA HDF5 file, or a 3D array (then ``affine`` is required).
    affine : (4, 4) array, optional
        Voxel-to-RAS (mm) affine of an array scan.
    side : {"R", "L"}, optional
        Knee side when the file name/header does not say it (contradicting them is an error); without either, the
        side is read from the segmented anatomy and ``row["qc_side_source"]`` says so.
    segmenter : MRISegmenter, optional
        Default: the shipped ``synthetic`` weights (trained on phantoms only); for a real scan pass
        ``MRISegmenter.from_pretrained("real")`` (contrast-agnostic) and check its QC.

    Returns
    -------
    MRIAnalysis

    Examples
    --------
    >>> from oa_kit.api import analyse_mri
    >>> from oa_kit.synth.mri import DEFAULT_GEOMETRY, SITE_MRI, render_knee_mri
    >>> from oa_kit.io.labels import SUBREGIONS
    >>> knee = render_knee_mri("R", dict.fromkeys(SUBREGIONS, 2.0), DEFAULT_GEOMETRY, SITE_MRI["A"], seed=0)
    >>> result = analyse_mri(knee.image, knee.affine, side="R")
    >>> result.summary().split(" — ")[0]
    'QC passed'
    >>> bool(1.5 < result.to_frame().set_index("subregion").loc["tibial_medial", "thickness_mm_mean"] < 2.5)
    True
    """
    segmenter = segmenter or MRISegmenter.from_pretrained()
    if isinstance(scan, str | os.PathLike):
        read = read_scan(scan)
    else:
        if affine is None:
            raise OAKitError("scan: an array needs its affine (4x4 voxel -> RAS mm); expected affine=")
        read = _array_scan(np.asarray(scan, dtype=np.float32), np.asarray(affine, float))
    knee = analyse_knee(read, segmenter, side)
    qc = {k: v for k, v in knee.row.items() if k.startswith("qc_")}
    return MRIAnalysis(
        read.image,
        knee.labels,
        read.affine,
        knee.row["side"],
        knee.measurement.thickness_map,
        qc,
        knee.row,
        _segmenter_note(segmenter.metadata_),
        knee.measurement,
    )


def _segmenter_note(metadata: Mapping) -> str:
    """``segmenter: <what its weights were trained on>`` (from the weights' metadata), the provenance an MRI result
    names."""
    trained_on = metadata.get("training_data", "the shipped MRI segmenter (synthetic phantoms only)")
    return f"segmenter: {trained_on}"


def read_mri_result(
    folder: str | os.PathLike,
    scan: str | os.PathLike,
    side: str | None = None,
    segmenter: MRISegmenter | None = None,
) -> MRIAnalysis | None:
    """The analysis of a scan that ``oa-kit mri segment`` (or ``make demo``, into ``mri/``) already wrote to
    ``folder``: the same labels, thickness map, row and QC that :func:`analyse_mri` would give, read back from its
    NIfTIs and record instead of segmented again (milliseconds instead of about a second for a phantom knee).

    None when ``folder`` holds no valid result for it: the record must be for this input file (same path relative to
    ``folder``, size and modification time), the same ``side`` argument the run was given (None when the file name or header said it), the
    ``segmenter``'s weights (default: the shipped ones) and this oa_kit version.

    Examples
    --------
    >>> from oa_kit.api import read_mri_result
    >>> read_mri_result("no_such_folder", "9000001_R_V00_DESS.nii.gz") is None
    True
    """
    # the weights' metadata (sha256, training data) is all that is needed: no network is built for a read
    metadata = segmenter.metadata_ if segmenter is not None else weights_metadata()
    scan = Path(scan)
    record = finished_record(folder, scan, record_key(folder, scan, side, str(metadata.get("sha256"))))
    if record is None:
        return None
    labels, thickness = (read_nifti(path) for path in record["outputs"][:2])
    row = record["row"]
    qc = {k: v for k, v in row.items() if k.startswith("qc_")}
    model = f"{_segmenter_note(metadata)}; read from the results in {Path(folder).name}/ (oa-kit mri segment)"
    return MRIAnalysis(read_scan(scan).image, labels.array, labels.affine, row["side"], thickness.array, qc, row, model)


def _array_scan(image: np.ndarray, affine: np.ndarray) -> ScanInput:
    """A :class:`oa_kit.io.scans.ScanInput` for an in-memory volume (no name or header to say its side)."""
    if image.ndim != 3 or affine.shape != (4, 4):
        raise OAKitError(f"scan: shape {image.shape}, affine {affine.shape}; expected a 3-D volume and a 4x4 affine")
    return ScanInput(Path("array"), image, affine, "array", None, 0)


def measure_labels(
    labels: str | os.PathLike | np.ndarray,
    affine: np.ndarray | None = None,
    side: str | None = None,
    image: str | os.PathLike | np.ndarray | None = None,
    convention: str = "harmonised",
    segmenter: MRISegmenter | None = None,
) -> MRIAnalysis:
    """Measure cartilage from a label map the user already has: the biomarkers, thickness map and QC of
    :func:`analyse_mri`, without segmenting.

    Parameters
    ----------
    labels : path or array
        A NIfTI, NRRD or MHD label map, or a 3D integer array (then ``affine`` is required).
    affine : (4, 4) array, optional
        Voxel-to-RAS (mm) affine of an array label map.
    side : {"R", "L"}, optional
        Knee side when the file name does not say it; without either it is read from the anatomy
        (``row["qc_side_source"]`` says where it came from).
    image : path or array, optional
        The scan the labels were drawn on (same grid). Only the intensity-based columns use it (``mri_emb_*``, the
        segmenter's embedding of the image); without it they are NaN.
    convention : str
        The label map's convention: ``"harmonised"`` (oa_kit's own, :data:`oa_kit.io.labels.LABELS`) or a
        public one (``oaizib``, ``oaizib_cm``, ``cartimorph``, ``woo``, ``pymskt``, ``spl``, ``skmtea``,
        ``iwoai``; :data:`oa_kit.io.labels.CROSSWALKS`). QC skips the tissues it never labels.
    segmenter : MRISegmenter, optional
        For the embedding of ``image`` (and the width of the NaN embedding without it); default the shipped weights.

    Returns
    -------
    MRIAnalysis

    Examples
    --------
    >>> from oa_kit.api import measure_labels
    >>> from oa_kit.io.labels import SUBREGIONS, from_harmonised
    >>> from oa_kit.synth.mri import DEFAULT_GEOMETRY, SITE_MRI, render_knee_mri
    >>> knee = render_knee_mri("L", dict.fromkeys(SUBREGIONS, 2.5), DEFAULT_GEOMETRY, SITE_MRI["B"], seed=1)
    >>> result = measure_labels(knee.labels, knee.affine, "L")
    >>> bool(abs(result.to_frame().set_index("subregion").loc["patellar", "thickness_mm_mean"] - 2.5) < 0.2)
    True
    >>> woo = from_harmonised(knee.labels, "woo", merge=True, drop=("medial_meniscus", "lateral_meniscus"))
    >>> as_woo = measure_labels(woo, knee.affine, convention="woo")  # no side given: read from the anatomy
    >>> as_woo.side, as_woo.row["qc_side_source"], as_woo.qc["qc_missing_compartment"], as_woo.qc["qc_not_labelled"]
    ('L', 'anatomy', False, 'medial_meniscus;lateral_meniscus')
    """
    segmenter = segmenter or MRISegmenter.from_pretrained()
    key = label_convention(convention)
    if isinstance(labels, str | os.PathLike):
        read = read_label_file(labels)
        raw, name, identity = read.labels, str(read.path), {"participant_id": read.participant_id}
        identity.update(visit_month=read.visit_month, source_file=str(read.path))
        found, found_source = read.side, read.side_source
    else:
        if affine is None:
            raise OAKitError("labels: an array needs its affine (4x4 voxel -> RAS mm); expected affine=")
        raw, name, found, found_source = np.asarray(labels), "labels", None, None
        identity = {"participant_id": "array", "visit_month": 0, "source_file": "array"}
        read = None
    grid = np.asarray(read.affine if read is not None else affine, dtype=float)
    if raw.ndim != 3 or grid.shape != (4, 4):
        raise OAKitError(f"{name}: shape {raw.shape}, affine {grid.shape}; expected a 3-D label map and a 4x4 affine")
    knee_side, source = declared_side(found, found_source, side, name)
    try:
        harm, knee_side = harmonise_labels(raw, grid, key, knee_side, name)
    except OAKitError as exc:  # the convention's value checks name the convention; say which file too
        raise OAKitError(str(exc) if name in str(exc) else f"{name}: {exc}") from None
    pixels = _image_on_grid(image, harm.shape, grid, name)
    embedding = segmenter.segment(pixels, grid, knee_side).embedding if pixels is not None else None
    identity.update(source_labels=convention, qc_side_source=source or "anatomy")
    knee = measure_knee(
        harm,
        grid,
        knee_side,
        identity,
        None,
        embedding,
        segmenter.embed_dim,
        lacked_tissues(key),
        embedded_by=segmenter.weights_sha256,
    )
    qc = {k: v for k, v in knee.row.items() if k.startswith("qc_")}
    note = f"labels given by the user ({convention} convention)"
    return MRIAnalysis(
        pixels, harm, grid, knee_side, knee.measurement.thickness_map, qc, knee.row, note, knee.measurement
    )


def _image_on_grid(
    image: str | os.PathLike | np.ndarray | None, shape: tuple[int, ...], affine: np.ndarray, name: str
) -> np.ndarray | None:
    """The scan a label map was drawn on, checked to share its grid (shape and affine to 0.01 mm)."""
    if image is None:
        return None
    if isinstance(image, str | os.PathLike):
        scan = read_scan(image)
        pixels, where, grid = scan.image, str(scan.path), scan.affine
    else:
        pixels, where, grid = np.asarray(image, dtype=np.float32), "image", affine
    if pixels.shape != tuple(shape) or not np.allclose(grid, affine, atol=1e-2):
        raise OAKitError(
            f"{where}: shape {pixels.shape} on another grid than the label map {name} {tuple(shape)}; "
            "expected the scan the labels were drawn on (same shape and affine)"
        )
    return pixels


# ---------------------------------------------------------------------------------------------------- cohorts
@dataclass
class Cohort:
    """One cohort folder: its tables (OAI or MOST), progression labels with exclusions, and per-knee image files."""

    folder: Path
    tables: CohortTables
    labels: ProgressionLabels
    files: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """Baseline knees: clinical factors with the radiograph and MRI file of each knee (NaN when absent)."""
        return self.tables.clinical.merge(self.files, on=["participant_id", "side"], how="left")

    def features(self) -> pd.DataFrame:
        """Per-knee baseline features from the tables alone: clinical factors and baseline readings (KL, JSW, ...)."""
        return baseline_features(self.tables.clinical, self.tables.readings)

    def figure(self) -> go.Figure:
        """Cohort flow: included knees and exclusions per horizon."""
        return self.labels.figure()


def open_cohort(
    folder: str | os.PathLike,
    source: str = "oai",
    definition: str = "tiulpin2019",
    horizons: Sequence[int] = OAI_HORIZONS_MONTHS,
) -> Cohort:
    """Open a cohort folder (OAI/MOST tables, or a synthetic cohort) with labels and each knee's files.

    Examples
    --------
    >>> import tempfile
    >>> from oa_kit.api import open_cohort
    >>> from oa_kit.synth import generate_cohort
    >>> folder = generate_cohort("tiny", tempfile.mkdtemp() + "/c", 0, images=False, progress=False)
    >>> cohort = open_cohort(folder)
    >>> cohort.to_frame()["participant_id"].nunique()
    8
    """
    folder = Path(folder)
    tables = load_tables(folder, source)
    labels = build_progression_labels(
        tables.readings, horizons, definition=definition, deaths=tables.deaths, replacements=tables.replacements
    )
    return Cohort(folder, tables, labels, _knee_files(folder, tables.clinical))


def _knee_files(folder: Path, clinical: pd.DataFrame) -> pd.DataFrame:
    """Baseline radiograph and MRI path of each knee in the synthetic layout (``xray/``, ``mri/``), when present."""
    keys = clinical[["participant_id", "side"]].drop_duplicates().copy()
    xray = [folder / "xray" / f"{p}_V00_PA.dcm" for p in keys["participant_id"]]
    mri = [folder / "mri" / f"{p}_{s}_V00_DESS.nii.gz" for p, s in zip(keys["participant_id"], keys["side"])]
    keys["radiograph"] = [str(p) if p.exists() else None for p in xray]
    keys["mri"] = [str(p) if p.exists() else None for p in mri]
    return keys


# ------------------------------------------------------------------------------------------------ progression
@dataclass
class ProgressionModels:
    """One fitted progression model per horizon (months), and the KL-CNN whose outputs they were trained on.

    ``kl_weights`` is that CNN's weights file when it is not the shipped one (saved into the model folder);
    :meth:`kl_grader` loads the CNN so that a new patient's radiograph is graded by the same network.
    """

    models: dict[int, ProgressionModel]
    kl_weights: Path | None = None

    @property
    def provenance(self) -> str:
        """The statement of what data the models were trained on."""
        return next(iter(self.models.values())).provenance_["statement"]

    @property
    def kl_model(self) -> str | None:
        """sha256 of the KL-CNN whose outputs the models use (None: no KL-CNN features; "out-of-fold" for features
        from several per-fold CNNs, which no single network reproduces)."""
        return next(iter(self.models.values())).provenance_.get(KL_MODEL_COLUMN)

    def kl_grader(self) -> KLGrader:
        """The KL-CNN these models were trained with (the shipped one, or the copy saved beside them)."""
        wanted = self.kl_model
        if wanted is None or wanted in ("out-of-fold", "unsaved"):
            raise OAKitError(
                f"models: trained on KL features from {wanted or 'no KL-CNN'}; expected models fitted on the output "
                "of one saved KL-CNN (`oa-kit kl predict`) to grade new radiographs"
            )
        path = self.kl_weights if self.kl_weights is not None else SHIPPED_WEIGHTS
        grader = KLGrader.from_pretrained(path)
        if _kl_identity(grader) != wanted:
            raise OAKitError(
                f"{path}: KL-CNN sha256 {_kl_identity(grader)[:12]}…; expected {wanted[:12]}…, the CNN these models "
                "were trained with (pass its weights to fit_progression(kl_weights=...))"
            )
        return grader

    @property
    def mri_model(self) -> str | None:
        """sha256 of the MRI segmenter whose embeddings the models use (None: no MRI embedding features, or a table
        written before oa_kit named its segmenter)."""
        return next(iter(self.models.values())).provenance_.get(MRI_MODEL_COLUMN)

    def mri_segmenter(self) -> MRISegmenter:
        """The shipped MRI segmenter these models' MRI features came from (the default when they name none)."""
        wanted = self.mri_model
        name = shipped_name(wanted) if wanted is not None else "synthetic"
        if name is None:
            raise OAKitError(
                f"models: trained on MRI embeddings of segmenter weights {wanted[:12]}…, which are not shipped; "
                "expected MRISegmenter.from_pretrained(<those weights>) passed as segmenter="
            )
        return MRISegmenter.from_pretrained(name)

    def to_frame(self) -> pd.DataFrame:
        """One row per horizon: estimator, knees, events, bootstrap refits, training-data statement."""
        return pd.DataFrame(
            [
                {
                    "horizon_months": h,
                    "estimator": m.estimator,
                    "n_train": m.n_train_,
                    "n_events": m.n_events_,
                    "n_bootstrap": len(getattr(m, "bootstrap_", [])),
                }
                for h, m in self.models.items()
            ]
        ).assign(provenance=self.provenance)

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Risk per knee and horizon (long table with provenance); ``risk_low``/``risk_high`` are the 95% bootstrap
        interval of models fitted with ``n_bootstrap > 0`` (NaN otherwise)."""
        return pd.concat([risk_table(m, features) for m in self.models.values()], ignore_index=True)

    def save(self, folder: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write ``folder/h{H}/`` model folders (LightGBM text + JSON + sha256) and, when the KL-CNN is not the
        shipped one, a copy of its weights in ``folder/kl/``; all or nothing; returns the folder."""
        with atomic_dir(folder, overwrite=overwrite) as tmp:
            for h, model in self.models.items():
                inner = float(model.cv_results_["inner_auc"].max())
                save_model(model, tmp / f"h{h}", metrics={"inner_cv_auc": inner})
            if self.kl_weights is not None:
                (tmp / KL_FOLDER).mkdir()
                for source in (self.kl_weights, self.kl_weights.with_suffix(".json")):
                    shutil.copyfile(source, tmp / KL_FOLDER / source.name)
                write_checksums(tmp / KL_FOLDER, [self.kl_weights.name, self.kl_weights.with_suffix(".json").name])
        return Path(folder)


def risk_interval(model: ProgressionModel, X: pd.DataFrame, level: float = 0.95) -> np.ndarray:
    """A model's bootstrap risk interval per row, shape (n, 2); NaN for a model fitted without bootstrap refits."""
    if getattr(model, "bootstrap_", []):
        return model.predict_interval(X, level)
    return np.full((len(X), 2), np.nan)


def risk_table(model: ProgressionModel, X: pd.DataFrame) -> pd.DataFrame:
    """``model.predict_risk(X)`` with ``risk_low``, ``risk_high`` (95% bootstrap interval, NaN without refits) after
    ``risk``: the one per-knee risk table of the API, the CLI and the written explanations."""
    table = model.predict_risk(X)
    at = table.columns.get_loc("risk") + 1
    interval = risk_interval(model, X)
    table.insert(at, "risk_low", interval[:, 0])
    table.insert(at + 1, "risk_high", interval[:, 1])
    return table


def fit_progression(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    horizons: Sequence[int] = MODEL_HORIZONS_MONTHS,
    data: str = "unknown",
    cohort: str = "",
    seed: int = 0,
    calibration: str = "sigmoid",
    quick: bool = False,
    estimator: str = "lightgbm",
    n_components: int | None = None,
    feature_families: Sequence[str] | None = None,
    families: Mapping[str, str] | None = None,
    kl_weights: str | os.PathLike | None = None,
    n_bootstrap: int = 0,
) -> ProgressionModels:
    """Fit one calibrated progression model per horizon on a per-knee feature table and its labels.

    Parameters
    ----------
    features, labels : DataFrame
        Per-knee features (:data:`oa_kit.features.schema` says which columns are features) and labels
        (participant_id, side, horizon_months, label).
    horizons : sequence of int
        Months.
    data, cohort : str
        Provenance ("synthetic", "real" or "unknown"; a cohort name), recorded and shown with every prediction.
    seed : int
        Seed of folds and models.
    calibration : {"sigmoid", "isotonic", "none"}
        Calibration of the inner out-of-fold scores.
    quick : bool
        One LightGBM configuration instead of the tuning grid.
    estimator : {"lightgbm", "logistic"}
        LightGBM (compact derived features, monotone constraints) or an L2 logistic regression.
    n_components : int, optional
        PCA components per image embedding (default 3 for LightGBM, 8 for logistic).
    feature_families : sequence of str, optional
        Use only these families (``clinical``, ``radiograph``, ``mri``); default all present.
    families : mapping, optional
        Family of columns the feature schema does not know (an undeclared unknown column is an error).
    kl_weights : path, optional
        Weights of the KL-CNN that produced the features' KL table when it is not the shipped one; its sha256 must
        match the table's ``kl_weights_sha256`` column, and a copy is saved with the models.
    n_bootstrap : int
        Participant-level bootstrap refits per horizon (0: none); with them, :meth:`ProgressionModels.predict` and
        :func:`knee_risk` give a 95% interval of each knee's risk (``risk_low``, ``risk_high``). Each refit costs
        about one final fit of the chosen configuration.

    The KL-CNN behind KL features is recorded (``kl_weights_sha256`` in the provenance, from the KL table's
    column; "out-of-fold" when the features carry none, e.g. per-fold fine-tuned CNNs) so that
    :meth:`ProgressionModels.kl_grader` grades new radiographs with the same network.

    Tuning is nested and participant-grouped. Each model's ``cv_results_["inner_auc"]`` is a tuning estimate
    (optimistic): use :func:`evaluate_progression` for out-of-sample figures.

    Returns
    -------
    ProgressionModels

    Examples
    --------
    >>> import tempfile
    >>> from oa_kit.api import fit_progression, open_cohort
    >>> from oa_kit.synth import generate_cohort
    >>> folder = generate_cohort("tiny", tempfile.mkdtemp() + "/c", 0, images=False, progress=False, n_participants=150)
    >>> cohort = open_cohort(folder)
    >>> models = fit_progression(cohort.features(), cohort.labels.labels, horizons=(24,), data="synthetic", quick=True)
    >>> models.to_frame()[["horizon_months", "estimator"]].to_dict("records")
    [{'horizon_months': 24, 'estimator': 'lightgbm'}]
    >>> risk = models.predict(cohort.features().head(2))
    >>> bool(risk["risk"].between(0, 1).all()), "synthetic" in risk["provenance"].iloc[0].lower()
    (True, True)
    >>> bool(risk["risk_low"].isna().all())  # fitted without bootstrap refits: no interval
    True
    """
    provenance = {**make_provenance(data, cohort), **kl_model_of(features, kl_weights), **mri_model_of(features)}
    if feature_families is not None:
        features = keep_families(features, feature_families, families)
    options = dict(LIGHTGBM_SET_OPTIONS) if estimator == "lightgbm" else {}
    if n_components is not None:
        options["n_components"] = n_components
    models = {}
    for h in horizons:
        X, y = labelled_rows(features, labels, h)
        models[int(h)] = ProgressionModel(
            horizon_months=h,
            estimator=estimator,
            calibration=calibration,
            seed=seed,
            param_grid=QUICK_GRID if quick and estimator == "lightgbm" else None,
            n_inner_splits=5,
            families=families,
            n_bootstrap=n_bootstrap,
            **options,
        ).fit(X, y, provenance=provenance)
    return ProgressionModels(models, Path(kl_weights) if kl_weights is not None else None)


def kl_model_of(features: pd.DataFrame, kl_weights: str | os.PathLike | None = None) -> dict[str, str]:
    """``{"kl_weights_sha256": sha}`` of the KL-CNN behind a feature table's KL columns (checked against
    ``kl_weights`` when given; "out-of-fold" when the table names none), or {} without KL-CNN columns."""
    if not any(str(c).startswith(("kl_p", "kl_emb_")) for c in features.columns):
        return {}
    found = features[KL_MODEL_COLUMN].dropna().unique() if KL_MODEL_COLUMN in features.columns else []
    if len(found) > 1:
        raise OAKitError(f"{KL_MODEL_COLUMN}: {len(found)} different KL-CNNs in one table; expected one")
    sha = str(found[0]) if len(found) else "out-of-fold"
    if kl_weights is not None:
        given = str(verified_sidecar(kl_weights, "KL weights")["sha256"])
        if given != sha:
            raise OAKitError(f"{kl_weights}: sha256 {given[:12]}…; expected {sha[:12]}…, the CNN of the KL table")
    return {KL_MODEL_COLUMN: sha}


def mri_model_of(features: pd.DataFrame) -> dict[str, str]:
    """``{"mri_weights_sha256": sha}`` of the segmenter behind a feature table's MRI embeddings, or {} when no row
    has one (or the table predates the column); two segmenters in one table are an error."""
    embedding = [c for c in features.columns if str(c).startswith("mri_emb_")]
    if not embedding or MRI_MODEL_COLUMN not in features.columns:
        return {}
    found = features.loc[features[embedding].notna().any(axis=1), MRI_MODEL_COLUMN].dropna().unique()
    if len(found) > 1:
        raise OAKitError(
            f"{MRI_MODEL_COLUMN}: {len(found)} different MRI segmenters in one table; expected one (segment every "
            "scan with the same --weights)"
        )
    return {MRI_MODEL_COLUMN: str(found[0])} if len(found) else {}


def load_progression(folder: str | os.PathLike) -> ProgressionModels:
    """Load the per-horizon models of a folder written by :meth:`ProgressionModels.save` or ``oa-kit progression fit``
    (or one ``h{H}/`` model folder); every file's sha256 is checked first (no pickle).

    Parameters
    ----------
    folder : path
        The saved models folder.

    Returns
    -------
    ProgressionModels

    Examples
    --------
    >>> import tempfile
    >>> from oa_kit.api import fit_progression, load_progression, open_cohort
    >>> from oa_kit.synth import generate_cohort
    >>> folder = generate_cohort("tiny", tempfile.mkdtemp() + "/c", 0, images=False, progress=False, n_participants=100)
    >>> cohort = open_cohort(folder)
    >>> models = fit_progression(cohort.features(), cohort.labels.labels, horizons=(24,), data="synthetic", quick=True)
    >>> saved = models.save(tempfile.mkdtemp() + "/models")
    >>> again = load_progression(saved)
    >>> bool((again.predict(cohort.features())["risk"] == models.predict(cohort.features())["risk"]).all())
    True
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise OAKitError(f"{folder}: model folder not found; expected the output of `oa-kit progression fit`")
    if (folder / "checksums.json").exists():
        model = load_model(folder)
        return ProgressionModels({int(model.horizon_months): model})
    found = {int(p.name[1:]): p for p in sorted(folder.glob("h*")) if p.name[1:].isdigit() and p.is_dir()}
    if not found:
        raise OAKitError(f"{folder}: no h{{H}}/ model folders; expected the output of `oa-kit progression fit`")
    kl = sorted((folder / KL_FOLDER).glob("*.safetensors")) if (folder / KL_FOLDER).is_dir() else []
    if kl:
        verify_checksums(folder / KL_FOLDER, [kl[0].name, kl[0].with_suffix(".json").name])
    return ProgressionModels({h: load_model(p) for h, p in sorted(found.items())}, kl[0] if kl else None)


@dataclass
class KneeRisk:
    """Progression risk of one knee per horizon, with a grouped explanation and plain-language text."""

    table: pd.DataFrame
    explanations: dict[int, object]
    provenance: str

    def to_frame(self) -> pd.DataFrame:
        """horizon_months, risk, risk_low, risk_high (95% bootstrap interval; NaN without refits), explanation,
        by_family, provenance."""
        return self.table.copy()

    def figure(self) -> go.Figure:
        """Risk per horizon (bars) with its 95% bootstrap interval as error bars when the models have refits (the
        interval need not contain the bar's top, so it is drawn around its own middle), labelled with the data."""
        x = [f"{h} m" for h in self.table["horizon_months"]]
        fig = go.Figure(go.Bar(x=x, y=self.table["risk"], name="risk"))
        low, high = self.table["risk_low"], self.table["risk_high"]
        if low.notna().any():
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=(low + high) / 2,
                    mode="markers",
                    marker={"size": 2, "color": "black"},
                    error_y={"type": "data", "array": (high - low) / 2, "color": "black", "width": 8},
                    name="95% interval (participant bootstrap refits)",
                    customdata=np.column_stack([low, high]),
                    hovertemplate="%{x}: %{customdata[0]:.1%}–%{customdata[1]:.1%}<extra></extra>",
                )
            )
        fig.update_layout(title=f"Progression risk — {self.provenance}", yaxis={"range": [0, 1], "title": "risk"})
        return fig

    def waterfall(self, horizon: int) -> go.Figure:
        """SHAP waterfall (log-odds) of this knee's risk at ``horizon``."""
        return shap_plots.waterfall_figure(self.explanations[horizon], 0, note=self.provenance)


def knee_risk(
    models: ProgressionModels,
    clinical: Mapping[str, object] | pd.DataFrame,
    kl: KneeGrades | None = None,
    mri: MRIAnalysis | None = None,
    top_k: int = 3,
) -> KneeRisk:
    """Progression risk of one knee from a clinical row plus optional KL and MRI results, explained per horizon.

    Parameters
    ----------
    models : ProgressionModels
        Fitted or loaded models (their training data is named next to every risk).
    clinical : mapping or one-row DataFrame
        The knee's clinical factors and readings, with the column names the models were fitted on (e.g. age_years,
        sex, bmi_kg_m2, womac_pain, kl); a missing factor is NaN (LightGBM handles it).
    kl, mri : KneeGrades, MRIAnalysis, optional
        The knee's radiograph and MRI results (first row), joined as the models' radiograph / MRI features. ``kl``
        must come from the KL-CNN the models were trained with (``grade_knees(..., grader=models.kl_grader())``),
        ``mri`` from their MRI segmenter (``analyse_mri(..., segmenter=models.mri_segmenter())``).
    top_k : int
        Factors named in the plain-language explanation.

    Returns
    -------
    KneeRisk
        One row per horizon: the risk, its 95% bootstrap interval (``risk_low``, ``risk_high``; NaN for models
        fitted without ``n_bootstrap``), the explanation and the training-data statement.

    Examples
    --------
    >>> import tempfile
    >>> from oa_kit.api import fit_progression, knee_risk, open_cohort
    >>> from oa_kit.synth import generate_cohort
    >>> folder = generate_cohort("tiny", tempfile.mkdtemp() + "/c", 0, images=False, progress=False, n_participants=100)
    >>> cohort = open_cohort(folder)
    >>> models = fit_progression(cohort.features(), cohort.labels.labels, horizons=(12, 24), data="synthetic", quick=True)
    >>> knee = cohort.features().iloc[0].to_dict()
    >>> risk = knee_risk(models, knee)
    >>> risk.to_frame()[["horizon_months"]].to_dict("list"), bool(risk.to_frame()["risk"].between(0, 1).all())
    ({'horizon_months': [12, 24]}, True)
    >>> heavier = knee_risk(models, {**knee, "bmi_kg_m2": knee["bmi_kg_m2"] + 10})  # what-if: a higher BMI
    >>> "synthetic" in risk.provenance
    True
    >>> booted = fit_progression(cohort.features(), cohort.labels.labels, horizons=(24,), data="synthetic", quick=True,
    ...                          n_bootstrap=10)  # 10 participant-level refits: a 95% interval per knee
    >>> row = knee_risk(booted, knee).to_frame().iloc[0]
    >>> bool(0 <= row["risk_low"] <= row["risk_high"] <= 1)
    True
    """
    if kl is not None and models.kl_model not in (None, "out-of-fold", kl.table[KL_MODEL_COLUMN].iloc[0]):
        raise OAKitError(
            f"kl: graded by KL-CNN {kl.table[KL_MODEL_COLUMN].iloc[0][:12]}…; expected {models.kl_model[:12]}…, the "
            "CNN these models were trained with (grade with models.kl_grader())"
        )
    segmented_by = mri.row.get(MRI_MODEL_COLUMN) if mri is not None else None
    if models.mri_model is not None and segmented_by is not None and segmented_by != models.mri_model:
        raise OAKitError(
            f"mri: segmented with weights {segmented_by[:12]}…; expected {models.mri_model[:12]}…, the segmenter "
            "these models were trained with (segment with models.mri_segmenter())"
        )
    row = pd.DataFrame([dict(clinical)]) if isinstance(clinical, Mapping) else clinical.head(1).reset_index(drop=True)
    for part in (
        kl.to_frame(embeddings=True).drop(columns=["participant_id", "side"]) if kl is not None else None,
        mri.features() if mri is not None else None,
    ):
        if part is not None:
            row = pd.concat([row, part.head(1).drop(columns=[c for c in part if c in row], errors="ignore")], axis=1)
    rows, explanations = [], {}
    for h, model in models.models.items():
        result = shap_values(model, row)
        grouped = grouped_shap(result)
        explanations[h] = result
        low, high = risk_interval(model, row)[0]
        rows.append(
            {
                "horizon_months": h,
                "risk": float(model.predict_proba(row)[0, 1]),
                "risk_low": float(low),
                "risk_high": float(high),
                "explanation": explain_text(result.values.iloc[0], result.data.iloc[0], top_k),
                "by_family": family_text(grouped.iloc[0]),
                "provenance": models.provenance,
            }
        )
    return KneeRisk(pd.DataFrame(rows), explanations, models.provenance)


@dataclass
class ProgressionReport:
    """Out-of-sample evaluation of progression models at one horizon (metrics with CIs, calibration, curves)."""

    evaluation: ProgressionEvaluation | None
    headline: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """AUC with 95% CI and ECE per model (and the oracle on synthetic cohorts)."""
        return self.headline.copy()

    def figures(self) -> dict[str, go.Figure]:
        """ROC, calibration, decision curve, AUC forest and subgroup figures."""
        if self.evaluation is None:
            raise OAKitError("report: read from a folder; expected the figures as the HTML files beside headline.csv")
        return evaluation_figures(self.evaluation)


def evaluate_progression(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    horizon: int,
    truth: pd.DataFrame | None = None,
    data: str = "unknown",
    cohort: str = "",
    n_splits: int = 5,
    n_resamples: int = 1000,
    seed: int = 0,
    quick: bool = False,
    test_features: pd.DataFrame | None = None,
    test_labels: pd.DataFrame | None = None,
) -> ProgressionReport:
    """Evaluate the fused model and the baselines out of sample at ``horizon`` (participant-grouped CV with nested
    tuning and calibration; participant-bootstrap CIs, DeLong tests, calibration, decision curves, subgroups).

    Parameters
    ----------
    features, labels : DataFrame
        Per-knee features and labels (participant_id, side, horizon_months, label).
    horizon : int
        Months.
    truth : DataFrame, optional
        Synthetic truth (``p_progress_{H}`` per knee) for the oracle comparison.
    data, cohort : str
        Provenance of the data ("synthetic", "real" or "unknown"; a cohort name), shown with every number.
    n_splits, n_resamples, seed : int
        Outer folds, bootstrap resamples, seed.
    quick : bool
        One LightGBM configuration instead of the tuning grid (smoke runs).
    test_features, test_labels : DataFrame, optional
        A withheld table: fit on ``features`` and score these knees instead of cross-validating (no participant
        may be in both); ``truth`` then belongs to the test knees.

    Returns
    -------
    ProgressionReport

    Examples
    --------
    >>> import tempfile
    >>> from oa_kit.api import evaluate_progression, open_cohort
    >>> from oa_kit.synth import generate_cohort
    >>> folder = generate_cohort("tiny", tempfile.mkdtemp() + "/c", 0, images=False, progress=False, n_participants=100)
    >>> cohort = open_cohort(folder)
    >>> report = evaluate_progression(cohort.features(), cohort.labels.labels, 24, data="synthetic", n_splits=3,
    ...                               n_resamples=50, quick=True)
    >>> list(report.to_frame()["model"])
    ['clinical', 'kl', 'kl_ordinal', 'clinical_kl', 'clinical_radiograph']
    >>> sorted(report.figures())
    ['auc_forest', 'calibration', 'decision_curve', 'roc', 'subgroups']
    """
    X, y = labelled_rows(features, labels, horizon)
    test_X, test_y = (None, None) if test_features is None else labelled_rows(test_features, test_labels, horizon)
    scored = X if test_X is None else test_X
    oracle = oracle_column(scored, truth, horizon).to_numpy() if truth is not None else None
    ev = _evaluate(
        X,
        y,
        horizon,
        oracle_risk=oracle,
        n_splits=n_splits,
        n_resamples=n_resamples,
        seed=seed,
        site_held_out=False,
        provenance=make_provenance(data, cohort),
        lightgbm_grid=QUICK_GRID if quick else None,
        test_table=test_X,
        test_y=test_y,
    )
    return ProgressionReport(ev, ev.headline())


def read_report(folder: str | os.PathLike) -> ProgressionReport:
    """Read the headline table of a report folder written by ``oa-kit progression evaluate`` or ``oa-kit demo``
    (``OUT/progression``): AUC with 95% CI and ECE per model and horizon, and the training-data statement.

    Parameters
    ----------
    folder : path
        The report folder (holding ``headline.csv``, the model cards and HTML figures).

    Returns
    -------
    ProgressionReport
        Its :meth:`~ProgressionReport.to_frame` is the headline; the figures are the HTML files in the folder.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from oa_kit.api import read_report
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "headline.csv").write_text("model,horizon_months,auc\\nfused,24,0.81\\n")
    >>> read_report(folder).to_frame().to_dict("records")
    [{'model': 'fused', 'horizon_months': 24, 'auc': 0.81}]
    """
    path = Path(folder) / "headline.csv"
    if not path.is_file():
        raise OAKitError(f"{path}: missing; expected a report folder from `oa-kit progression evaluate`")
    return ProgressionReport(None, pd.read_csv(path))
