"""Participant-grouped splits: stratified k-fold and site held-out; no participant ever appears on both sides."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, GroupShuffleSplit, StratifiedGroupKFold

from oa_kit.errors import OAKitError

Split = tuple[np.ndarray, np.ndarray]


def check_no_participant_overlap(
    table: pd.DataFrame, train: np.ndarray, test: np.ndarray, group: str = "participant_id"
) -> None:
    """Raise ``AssertionError`` if any participant has rows in both ``train`` and ``test`` (positional indices)."""
    groups = table[group].astype(str).to_numpy()
    shared = set(groups[train]) & set(groups[test])
    if shared:
        raise AssertionError(f"participants in both train and test: {sorted(shared)[:5]}")


def participant_kfold(
    table: pd.DataFrame,
    n_splits: int = 5,
    seed: int = 0,
    stratify: str | Sequence | None = None,
    group: str = "participant_id",
) -> list[Split]:
    """K folds grouped by participant (both knees together), optionally stratified.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per sample (knee or knee-horizon); must hold ``group``.
    n_splits : int
        Number of folds (≥ 2 and ≤ number of participants).
    seed : int
        Shuffling seed.
    stratify : str or array-like, optional
        Column name or per-row labels to balance across folds (``StratifiedGroupKFold``); None → ``GroupKFold``.
    group : str
        Participant column.

    Returns
    -------
    list of (train_index, test_index)
        Positional indices into ``table``; every row is in exactly one test fold.
    """
    groups = _groups(table, group)
    n_groups = len(np.unique(groups))
    if not 2 <= n_splits <= n_groups:
        raise OAKitError(f"n_splits: {n_splits}; expected 2..{n_groups} (the number of participants)")
    if stratify is None:
        splitter = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        y = np.zeros(len(table))
    else:
        y = _labels(table, stratify)
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = [(np.asarray(tr), np.asarray(te)) for tr, te in splitter.split(np.zeros((len(table), 1)), y, groups)]
    for train, test in folds:
        check_no_participant_overlap(table, train, test, group)
    return folds


def participant_holdout(
    table: pd.DataFrame, test_fraction: float = 0.5, seed: int = 0, group: str = "participant_id"
) -> Split:
    """One train/test split grouped by participant (both knees and every visit on one side), ``test_fraction`` of the
    participants in the test part; positional indices into ``table``."""
    groups = _groups(table, group)
    if not 0 < test_fraction < 1:
        raise OAKitError(f"test_fraction: {test_fraction}; expected a fraction between 0 and 1")
    if len(np.unique(groups)) < 2:
        raise OAKitError(f"{group}: one participant; expected at least two to split")
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
    train, test = next(splitter.split(np.zeros((len(table), 1)), groups=groups))
    check_no_participant_overlap(table, train, test, group)
    return np.asarray(train), np.asarray(test)


def site_held_out(table: pd.DataFrame, site: str, site_column: str = "site", group: str = "participant_id") -> Split:
    """Train on every site but ``site``, test on ``site``; participants seen at two sites are an error."""
    groups = _groups(table, group)
    if site_column not in table.columns:
        raise OAKitError(f"table: missing column {site_column}; expected a site column for site-held-out splits")
    sites = table[site_column].astype(str).to_numpy()
    if site not in set(sites):
        raise OAKitError(f"site: {site!r} not in column {site_column}; expected one of {sorted(set(sites))}")
    per_participant = pd.Series(sites).groupby(groups).nunique()
    if (per_participant > 1).any():
        raise OAKitError(
            f"{site_column}: participant {per_participant[per_participant > 1].index[0]!r} has rows at "
            "two sites; expected one site per participant"
        )
    test = np.flatnonzero(sites == site)
    train = np.flatnonzero(sites != site)
    check_no_participant_overlap(table, train, test, group)
    return train, test


def leave_one_site_out(
    table: pd.DataFrame, site_column: str = "site", group: str = "participant_id"
) -> dict[str, Split]:
    """One :func:`site_held_out` split per site, keyed by the held-out site."""
    if site_column not in table.columns:
        raise OAKitError(f"table: missing column {site_column}; expected a site column for site-held-out splits")
    return {
        site: site_held_out(table, site, site_column, group) for site in sorted(table[site_column].astype(str).unique())
    }


def fold_column(table: pd.DataFrame, folds: Sequence[Split]) -> pd.Series:
    """The test-fold number of every row (a column to save beside a table so splits are reproducible on disk)."""
    fold = np.full(len(table), -1, dtype=int)
    for number, (_, test) in enumerate(folds):
        fold[test] = number
    return pd.Series(fold, index=table.index, name="fold")


def _groups(table: pd.DataFrame, group: str) -> np.ndarray:
    """Participant ids as strings; a missing column or empty id is an error."""
    if group not in table.columns:
        raise OAKitError(f"table: missing column {group}; expected a participant column to group by")
    groups = table[group].astype(str).to_numpy()
    if len(groups) == 0:
        raise OAKitError("table: no rows; expected at least one row per split")
    return groups


def _labels(table: pd.DataFrame, stratify: str | Sequence) -> np.ndarray:
    """Stratification labels from a column name or a per-row sequence."""
    if isinstance(stratify, str):
        if stratify not in table.columns:
            raise OAKitError(f"stratify: column {stratify!r} not in table; expected a column name or per-row labels")
        values = table[stratify]
    else:
        values = pd.Series(list(stratify))
        if len(values) != len(table):
            raise OAKitError(f"stratify: {len(values)} labels for {len(table)} rows; expected one label per row")
    if values.isna().any():
        raise OAKitError("stratify: labels contain NaN; expected a label for every row")
    return values.astype(str).to_numpy()
