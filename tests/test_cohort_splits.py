"""Participant-grouped splits never share a participant between train and test (property-tested)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oa_kit.cohort.splits import (
    check_no_participant_overlap,
    fold_column,
    leave_one_site_out,
    participant_kfold,
    site_held_out,
)
from oa_kit.errors import OAKitError


def _table(labels: list[int], sites: str = "ABCDE") -> pd.DataFrame:
    """Two knees per participant; participant i at site sites[i % len(sites)]."""
    rows = []
    for i, label in enumerate(labels):
        for side in "RL":
            rows.append(
                {
                    "participant_id": f"P{i:03d}",
                    "side": side,
                    "label": (label + (side == "L")) % 2,
                    "site": sites[i % len(sites)],
                }
            )
    return pd.DataFrame(rows)


@settings(max_examples=25, deadline=None)
@given(
    labels=st.lists(st.integers(0, 1), min_size=6, max_size=40),
    n_splits=st.integers(2, 5),
    seed=st.integers(0, 10_000),
    stratified=st.booleans(),
)
def test_kfold_never_shares_a_participant(labels, n_splits, seed, stratified):
    table = _table(labels)
    folds = participant_kfold(table, n_splits=n_splits, seed=seed, stratify="label" if stratified else None)
    assert len(folds) == n_splits
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested) == list(range(len(table)))  # every row tested exactly once
    groups = table["participant_id"].to_numpy()
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert len(train) + len(test) == len(table)


@settings(max_examples=15, deadline=None)
@given(labels=st.lists(st.integers(0, 1), min_size=5, max_size=30))
def test_site_splits_never_share_a_participant(labels):
    table = _table(labels)
    splits = leave_one_site_out(table)
    assert set(splits) == set(table["site"])
    for site, (train, test) in splits.items():
        assert set(table["site"].iloc[test]) == {site} and site not in set(table["site"].iloc[train])
        assert not set(table["participant_id"].iloc[train]) & set(table["participant_id"].iloc[test])


def test_kfold_is_seeded_and_stratifies():
    table = _table([i % 2 for i in range(60)])
    a = participant_kfold(table, 5, seed=3, stratify="label")
    b = participant_kfold(table, 5, seed=3, stratify="label")
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    for _, test in a:
        assert 0.3 < table["label"].iloc[test].mean() < 0.7
    folds = fold_column(table, a)
    assert (folds >= 0).all() and folds.groupby(table["participant_id"]).nunique().max() == 1


def test_overlap_check_and_bad_inputs():
    table = _table([0, 1, 0, 1])
    with pytest.raises(AssertionError, match="P000"):
        check_no_participant_overlap(table, np.array([0]), np.array([1]))
    with pytest.raises(OAKitError, match="n_splits"):
        participant_kfold(table, n_splits=10)
    with pytest.raises(OAKitError, match="stratify"):
        participant_kfold(table, 2, stratify="nope")
    with pytest.raises(OAKitError, match="site: 'Z'"):
        site_held_out(table, "Z")
    moved = table.copy()
    moved.loc[1, "site"] = "B"
    with pytest.raises(OAKitError, match="two sites"):
        site_held_out(moved, "A")


def test_participant_bootstrap_draws_whole_participants_reproducibly():
    from oa_kit.metrics import participant_bootstrap

    groups = np.repeat(np.array(["p1", "p2", "p3", "p4"]), [2, 2, 1, 3])
    first = list(participant_bootstrap(groups, 20, seed=5))
    again = list(participant_bootstrap(groups, 20, seed=5))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    for idx in first:
        drawn, counts = np.unique(groups[idx], return_counts=True)
        sizes = dict(zip(*np.unique(groups, return_counts=True)))
        assert all(c % sizes[p] == 0 for p, c in zip(drawn, counts))  # a participant comes with all its rows
        assert sum(c // sizes[p] for p, c in zip(drawn, counts)) == 4  # as many draws as participants
