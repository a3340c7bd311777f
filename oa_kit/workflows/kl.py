"""KL jobs that write files: grade every knee in radiograph files or folders into the one KL output table, and the
same table out of fold for knees a KL-CNN is trained on (:func:`out_of_fold_table`)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from oa_kit.api import KL_MODEL_COLUMN, grade_knees
from oa_kit.errors import OAKitError
from oa_kit.features.radiograph import kl_folds, train_fold_grader
from oa_kit.io.atomic import write_text_atomic
from oa_kit.io.chen import is_chen_layout, read_chen
from oa_kit.io.tables import check_table_path, write_table
from oa_kit.models.kl.data import to_uint8
from oa_kit.models.kl.predict import KLGrader, chen_knee_records, grade_knee_records, load_knees


def predict_to_table(
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    side: str | None = None,
    tta: int | None = None,
    clahe: str = "auto",
    device: str = "cpu",
) -> pd.DataFrame:
    """Grade every knee in DICOM/PNG/JPEG files or folders and write the KL table to ``out`` (.parquet or .csv).

    The table is :class:`oa_kit.api.KneeGrades`'s, embeddings included (``kl_emb_*``), so
    ``oa-kit progression fit --radiograph OUT`` reads it as it is. ``out`` is checked before any work; the file
    appears whole or not at all.
    """
    out = check_table_path(out)
    grader = KLGrader.from_pretrained(weights, device=device)
    if tta is not None:
        grader.tta = tta
    table = grade_knees(list(inputs), side=side, clahe=clahe, gradcam=False, grader=grader).to_frame(embeddings=True)
    write_table(table, out)
    return table


def out_of_fold_table(
    data: str | os.PathLike,
    out: str | os.PathLike,
    folds: int = 5,
    seed: int = 0,
    epochs: int = 6,
    init_weights: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    split: str | None = None,
    limit: int | None = None,
    clahe: str = "auto",
    progress: bool = True,
    log: Callable[[str], object] = lambda message: None,
) -> pd.DataFrame:
    """The KL output table (``KL_TABLE_COLUMNS``, ``kl_weights_sha256`` = "out-of-fold", ``kl_emb_*``, as
    ``oa-kit kl predict`` writes it) for knees a KL-CNN is trained on, each knee graded by a CNN that never saw it.

    Knees come from a folder with grades (Chen layout ``{split}/{0..4}/`` or grade folders ``{0..4}/``). They are
    split into ``folds`` participant-grouped folds stratified by KL (seeded); per fold a ``KLNet`` is trained on the
    other folds (a participant-grouped fifth of them held back for early stopping and calibration), then grades the
    held-out knees through :func:`oa_kit.models.kl.predict.grade_knee_records`. Fold checkpoints and finished fold
    tables go to ``run_dir`` (default: ``<out>`` without suffix + ``_folds``); a rerun with the same settings resumes.

    Parameters
    ----------
    init_weights : path, optional
        Fine-tune each fold from these weights. Default None: from scratch, because the shipped weights were trained
        on the Chen train split (fine-tuning them would leak those knees' grades into their features).
    split : str, optional
        Only knees of this Chen split (e.g. ``train``).
    limit : int, optional
        Only the first ``limit`` knees (in reading order: both knees of a participant together), for timing runs.
    """
    out = check_table_path(out)
    if folds < 2:
        raise OAKitError(f"--folds: {folds}; expected at least 2 folds")
    if epochs < 1:
        raise OAKitError(f"--epochs: {epochs}; expected at least 1 epoch")
    if clahe not in ("auto", "yes", "no"):
        raise OAKitError(f"--clahe: {clahe!r}; expected auto, yes or no")
    if is_chen_layout(data):  # index first, so only the knees asked for are read and preprocessed
        frame = read_chen(data)
        if split is not None:
            frame = frame[frame["split"] == split]
            if frame.empty:
                raise OAKitError(f"{data}: no knees in split {split!r}; expected a Chen split such as train or val")
        knees = chen_knee_records(frame.iloc[:limit], None, clahe)
    else:
        knees = load_knees(Path(data), None, clahe)[:limit]
    unlabelled = [k["source"] for k in knees if k.get("kl_label") is None or k["input"] is None]
    if unlabelled:
        raise OAKitError(
            f"{unlabelled[0]}: no KL grade ({len(unlabelled)} such knees); expected a Chen-layout folder "
            "({split}/{0..4}/) or grade folders {0..4}/ whose folder names are the grades"
        )
    keys = pd.DataFrame({"participant_id": [str(k["id"]) for k in knees], "side": [k["side"] for k in knees]})
    grades = np.array([int(k["kl_label"]) for k in knees])
    table = keys.assign(kl=grades)
    if table["participant_id"].nunique() < folds:
        raise OAKitError(
            f"--folds: {folds} folds for {table['participant_id'].nunique()} participants; expected at most one "
            "fold per participant"
        )
    X = np.stack([to_uint8(k["input"][0]) for k in knees])
    run = Path(run_dir) if run_dir is not None else out.with_name(out.stem + "_folds")
    settings = {
        "data": str(Path(data).resolve()),
        "split": split,
        "limit": limit,
        "clahe": clahe,
        "n_knees": len(knees),
        "folds": folds,
        "seed": seed,
        "epochs": epochs,
        "init_weights": None if init_weights is None else str(Path(init_weights).resolve()),
    }
    _check_run(run, settings)
    parts, order = [], []
    for fold, (train_idx, test_idx) in enumerate(kl_folds(table, n_splits=folds, seed=seed)):
        done = run / f"fold{fold}" / "oof.parquet"
        if done.exists():
            log(f"fold {fold + 1}/{folds}: done earlier, read {done}")
            part = pd.read_parquet(done)
        else:
            log(f"fold {fold + 1}/{folds}: training on {len(train_idx)} knees, grading {len(test_idx)}")
            grader = train_fold_grader(
                X, grades, table, train_idx, run / f"fold{fold}", fold, seed, epochs, init_weights, progress
            )
            part = grade_knee_records(grader, [knees[i] for i in test_idx])[0]
            write_table(part, done)
        parts.append(part)
        order.append(test_idx)
    result = pd.concat(parts, ignore_index=True).iloc[np.argsort(np.concatenate(order))].reset_index(drop=True)
    # as `kl predict` names its CNN; here one CNN per fold, which the progression models record as "out-of-fold"
    result.insert(result.columns.get_loc("kl_qa_flags") + 1, KL_MODEL_COLUMN, "out-of-fold")
    write_table(result, out)
    return result


def _check_run(run: Path, settings: dict) -> None:
    """Create the run folder with its settings, or check that an existing one was made with the same settings."""
    record = run / "settings.json"
    if record.exists():
        before = json.loads(record.read_text())
        changed = sorted(k for k in settings if before.get(k) != settings[k])
        if changed:
            raise OAKitError(
                f"{record}: made with other settings ({', '.join(changed)}); expected the same settings to resume, "
                "or another --run-dir"
            )
        return
    run.mkdir(parents=True, exist_ok=True)
    write_text_atomic(record, json.dumps(settings, indent=2) + "\n")
