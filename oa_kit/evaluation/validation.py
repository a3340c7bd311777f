"""Out-of-sample predictions: participant-grouped cross-validation and site-held-out validation on identical folds.

Every model (the fused LightGBM and each baseline) is refitted inside each outer training fold — including feature
assembly, embedding PCA, hyper-parameter search and calibration — and predicts only knees of participants it never
saw. With :class:`~oa_kit.progression.ProgressionModel` the tuning inside ``fit`` makes this nested CV.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone
from tqdm.auto import tqdm

from oa_kit.cohort.splits import check_no_participant_overlap, leave_one_site_out, participant_kfold
from oa_kit.errors import OAKitError
from oa_kit.evaluation.delong import delong_test
from oa_kit.metrics import bootstrap_metrics
from oa_kit.progression.model import resolve_groups

Split = tuple[np.ndarray, np.ndarray]


def grouped_folds(
    X: pd.DataFrame, y: Sequence[int], groups: Sequence | None = None, n_splits: int = 5, seed: int = 0
) -> list[Split]:
    """Outcome-stratified, participant-grouped folds (both knees of a participant in the same fold)."""
    table = pd.DataFrame({"participant_id": resolve_groups(X, groups), "label": np.asarray(y)})
    return participant_kfold(table, n_splits=n_splits, seed=seed, stratify="label")


def site_folds(X: pd.DataFrame, groups: Sequence | None = None, site_column: str = "site") -> dict[str, Split]:
    """Leave-one-site-out splits keyed by the held-out site."""
    if site_column not in X.columns:
        raise OAKitError(f"{site_column}: column missing; expected a site per knee for site-held-out validation")
    table = pd.DataFrame({"participant_id": resolve_groups(X, groups), "site": X[site_column].astype(str).to_numpy()})
    return leave_one_site_out(table)


def predict_splits(
    models: Mapping[str, object],
    X: pd.DataFrame,
    y: Sequence[int],
    splits: Mapping[str, Split],
    groups: Sequence | None = None,
    provenance: Mapping[str, str] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Fit a clone of each model on each split's training rows and predict its test rows.

    Parameters
    ----------
    models : mapping
        Name → unfitted estimator with ``fit(X, y, groups=..., provenance=...)`` and ``predict_proba``.
    X, y : DataFrame, array-like
        Per-knee table and 0/1 outcomes.
    splits : mapping
        Split name (fold number or held-out site) → (train positions, test positions).
    groups : array-like, optional
        Participant ids (default ``X['participant_id']``).
    provenance : mapping, optional
        Passed to each fit.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    DataFrame
        Long table: model, split, participant_id, side (if present), row, label, risk.
    """
    X = X.reset_index(drop=True)
    y = np.asarray(y).astype(int)
    ids = resolve_groups(X, groups)
    frame = pd.DataFrame({"participant_id": ids})
    pieces = []
    jobs = [(name, split) for split in splits for name in models]
    for name, split in tqdm(jobs, disable=not progress, desc="out-of-sample fits"):
        train, test = splits[split]
        check_no_participant_overlap(frame, train, test)
        if len(np.unique(y[train])) < 2:
            raise OAKitError(f"label: training split {split!r} has a single class; expected events and non-events")
        model = clone(models[name]).fit(X.iloc[train], y[train], groups=ids[train], provenance=provenance)
        part = pd.DataFrame(
            {
                "model": name,
                "split": str(split),
                "participant_id": ids[test],
                "row": test,
                "label": y[test],
                "risk": model.predict_proba(X.iloc[test])[:, 1],
            }
        )
        if "side" in X.columns:
            part.insert(3, "side", X["side"].to_numpy()[test])
        pieces.append(part)
    return pd.concat(pieces, ignore_index=True)


def cross_validate(
    models: Mapping[str, object],
    X: pd.DataFrame,
    y: Sequence[int],
    groups: Sequence | None = None,
    n_splits: int = 5,
    seed: int = 0,
    provenance: Mapping[str, str] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Out-of-fold predictions of every model on the same participant-grouped folds (see :func:`predict_splits`)."""
    folds = grouped_folds(X, y, groups, n_splits, seed)
    return predict_splits(models, X, y, {i: f for i, f in enumerate(folds)}, groups, provenance, progress)


def site_held_out_validate(
    models: Mapping[str, object],
    X: pd.DataFrame,
    y: Sequence[int],
    groups: Sequence | None = None,
    site_column: str = "site",
    provenance: Mapping[str, str] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Leave-one-site-out predictions (train on the other sites, test on the held-out one)."""
    return predict_splits(models, X, y, site_folds(X, groups, site_column), groups, provenance, progress)


def summarize(
    predictions: pd.DataFrame,
    n_resamples: int = 1000,
    seed: int = 0,
    by_split: bool = False,
    split_label: str = "split",
) -> pd.DataFrame:
    """Metrics with participant bootstrap CIs for each model (pooled over splits, or per split with ``by_split``,
    labelled ``<split_label>=<split>`` in the ``subgroup`` column)."""
    keys = ["model", "split"] if by_split else ["model"]
    rows = []
    for key, part in predictions.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        table = bootstrap_metrics(
            part["label"],
            part["risk"],
            part["participant_id"],
            n_resamples,
            seed,
            subgroup=f"{split_label}={key[1]}" if by_split else "all",
        )
        for name, value in zip(keys, key):
            table.insert(0, name, value)
        rows.append(table)
    return pd.concat(rows, ignore_index=True)


def compare_to_reference(predictions: pd.DataFrame, reference: str) -> pd.DataFrame:
    """DeLong test of every model's pooled out-of-sample AUC against ``reference`` on the same knees."""
    wide = predictions.pivot_table(index="row", columns="model", values="risk")
    labels = predictions.drop_duplicates("row").set_index("row")["label"].loc[wide.index]
    if reference not in wide.columns:
        raise OAKitError(f"reference: model {reference!r} not in predictions; expected one of {list(wide.columns)}")
    rows = []
    for name in wide.columns:
        if name == reference:
            continue
        test = delong_test(labels.to_numpy(), wide[name].to_numpy(), wide[reference].to_numpy())
        test.insert(0, "reference", reference)
        test.insert(0, "model", name)
        rows.append(test)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
