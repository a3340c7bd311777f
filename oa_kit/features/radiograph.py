"""Radiograph features per knee: KL-model inputs from a cohort's DICOMs, classical marginal-osteophyte lengths (mm)
and spur areas (mm^2), and out-of-fold KL-CNN probabilities + embeddings."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from oa_kit.cohort.splits import participant_kfold
from oa_kit.errors import OAKitError
from oa_kit.imaging.localize import knee_rois
from oa_kit.imaging.osteophyte import marginal_osteophytes
from oa_kit.io.radiograph import read_radiograph
from oa_kit.metrics import kl_metrics
from oa_kit.models.kl.data import roi_arrays
from oa_kit.models.kl.predict import SHIPPED_WEIGHTS, KLGrader
from oa_kit.models.kl.train import KLTrainer


def radiograph_knee_inputs(
    paths: list[str | os.PathLike], visit_month: int = 0, progress: bool = True
) -> tuple[np.ndarray, pd.DataFrame]:
    """Localise both knees in each bilateral PA radiograph and preprocess them for the KL model.

    Parameters
    ----------
    paths : list of path
        DICOM/PNG/JPEG radiographs; the participant id is the DICOM PatientID, else the file stem before ``_``.
    visit_month : int
        Visit recorded in the returned keys (months).
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    X : numpy.ndarray
        uint8 (N, S, S) KL-model inputs, one per knee found (right-knee orientation).
    keys : DataFrame
        participant_id, side, visit_month, source_file, qa_flags and the measured marginal osteophyte lengths
        ``osteophyte_mm_{fm,fl,tm,tl}`` and spur areas ``osteophyte_area_mm2_{fm,fl,tm,tl}``
        (:func:`oa_kit.imaging.osteophyte.marginal_osteophytes`) — one row per knee,
        aligned with X.
    """
    rois, rows = [], []
    for path in tqdm(list(paths), desc="radiograph ROIs", disable=not progress):
        radiograph = read_radiograph(path)
        participant = str(radiograph.meta.get("patient_id") or Path(path).name.split("_")[0])
        for roi in knee_rois(radiograph):
            rois.append(roi.pixels)
            rows.append(
                {
                    "participant_id": participant,
                    "side": roi.side,
                    "visit_month": visit_month,
                    "source_file": str(path),
                    "qa_flags": ";".join(radiograph.qa_flags + roi.qa_flags),
                    **marginal_osteophytes(roi),
                }
            )
    if not rois:
        raise OAKitError(
            f"{paths[0] if paths else 'paths'}: no knee found in any radiograph; expected bilateral PA knee images"
        )
    return roi_arrays(rois, clahe=True), pd.DataFrame(rows)


def kl_feature_table(grader: KLGrader, X: np.ndarray, keys: pd.DataFrame) -> pd.DataFrame:
    """Per-knee radiograph features: KL-CNN probabilities ``kl_p0..kl_p4``, predicted grade and ``kl_emb_*`` embedding,
    plus the measured ``osteophyte_mm_*`` lengths and ``osteophyte_area_mm2_*`` spur areas when ``keys`` carries them
    (:func:`radiograph_knee_inputs`)."""
    proba, embedding = grader.predict_proba_and_embed(X)
    measured = ("osteophyte_mm_", "osteophyte_area_mm2_")
    carried = ["participant_id", "side", "visit_month", *[c for c in keys.columns if c.startswith(measured)]]
    table = keys[carried].reset_index(drop=True).copy()
    for k in range(proba.shape[1]):
        table[f"kl_p{k}"] = proba[:, k]
    table["kl_grade"] = proba.argmax(1)
    emb = pd.DataFrame(embedding, columns=[f"kl_emb_{i:03d}" for i in range(embedding.shape[1])])
    return pd.concat([table, emb], axis=1)


def out_of_fold_kl_features(
    X: np.ndarray,
    keys: pd.DataFrame,
    grades: np.ndarray,
    n_splits: int = 5,
    seed: int = 0,
    epochs: int = 6,
    init_weights: str | os.PathLike | None = SHIPPED_WEIGHTS,
    run_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train a KL-CNN per participant-grouped fold and predict the held-out knees, so no knee's features leak.

    Each fold trains a fresh ``KLNet`` on the other folds (a participant-grouped fifth of them for early
    stopping and temperature/conformal calibration) and predicts the held-out fold.

    Parameters
    ----------
    X : numpy.ndarray
        uint8 (N, S, S) KL inputs (:func:`radiograph_knee_inputs`).
    keys : DataFrame
        participant_id, side, visit_month aligned with X.
    grades : array of int
        Reference KL grade per knee (0–4).
    n_splits, seed, epochs : int
        Folds, seed of splits and training, training epochs per fold.
    init_weights : path or None
        KL weights to fine-tune from (None: train from scratch).
    run_dir : path, optional
        Where fold checkpoints go (a temporary folder when omitted).

    Returns
    -------
    features : DataFrame
        :func:`kl_feature_table` rows for every knee, each predicted by the model that did not see it.
    metrics : DataFrame
        Out-of-fold KL metrics (metric, estimate: QWK, accuracy, ...) against ``grades``.
    """
    grades = np.asarray(grades, dtype=int)
    if len(grades) != len(X) or len(keys) != len(X):
        raise OAKitError(f"grades: {len(grades)} values for {len(X)} images; expected one grade per knee")
    table = keys.reset_index(drop=True).assign(kl=grades)
    parts: list[pd.DataFrame] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(run_dir) if run_dir is not None else Path(tmp)
        for fold, (train_idx, test_idx) in enumerate(kl_folds(table, n_splits=n_splits, seed=seed)):
            grader = train_fold_grader(
                X, grades, table, train_idx, base / f"fold{fold}", fold, seed, epochs, init_weights, progress
            )
            parts.append(kl_feature_table(grader, X[test_idx], keys.iloc[test_idx]).set_index(pd.Index(test_idx)))
    features = pd.concat(parts).sort_index().reset_index(drop=True)
    proba = features[[f"kl_p{k}" for k in range(5)]].to_numpy()
    metrics = pd.DataFrame({"metric": list(m := kl_metrics(grades, proba)), "estimate": list(m.values())})
    return features, metrics


def kl_folds(table: pd.DataFrame, n_splits: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Participant-grouped folds stratified by KL (``table`` holds ``participant_id`` and ``kl``) for out-of-fold
    KL-CNN features: (train_index, test_index) pairs, every knee in exactly one test fold."""
    return participant_kfold(table, n_splits=n_splits, seed=seed, stratify="kl")


def train_fold_grader(
    X: np.ndarray,
    grades: np.ndarray,
    table: pd.DataFrame,
    train_idx: np.ndarray,
    out: str | os.PathLike,
    fold: int,
    seed: int = 0,
    epochs: int = 6,
    init_weights: str | os.PathLike | None = SHIPPED_WEIGHTS,
    progress: bool = True,
) -> KLGrader:
    """Train one fold's KL-CNN on ``train_idx`` (a participant-grouped fifth of it held back for early stopping and
    temperature/conformal/OOD calibration) and return the calibrated grader; checkpoints go to ``out`` and a rerun
    resumes from them (a finished fold only reloads its best weights)."""
    inner = table.iloc[train_idx].reset_index(drop=True)
    n_inner = min(5, inner["participant_id"].nunique())
    fit_idx, cal_idx = participant_kfold(inner, n_splits=n_inner, seed=seed)[0]
    fit_idx, cal_idx = train_idx[fit_idx], train_idx[cal_idx]
    out = Path(out)
    KLTrainer(
        epochs=epochs,
        batch_size=32,
        lr=1e-3 if init_weights is not None else 2e-3,
        warmup_epochs=1.0,
        ema_decay=0.0,
        patience=epochs,
        seed=seed + fold,
        device="cpu",
        out_dir=out,
        init_weights=init_weights,
        progress=progress,
    ).fit(X[fit_idx], grades[fit_idx], X[cal_idx], grades[cal_idx])
    return KLGrader(weights=out / "best.safetensors").fit(
        X[cal_idx], grades[cal_idx], groups=table["participant_id"].to_numpy()[cal_idx], seed=seed
    )
