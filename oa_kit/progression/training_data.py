"""Training rows for one horizon: labelled knees joined to their features (a labelled knee without features is an error)."""

from __future__ import annotations

import pandas as pd

from oa_kit.errors import OAKitError
from oa_kit.features.schema import KEY_COLUMNS


def labelled_rows(features: pd.DataFrame, labels: pd.DataFrame, horizon: int) -> tuple[pd.DataFrame, pd.Series]:
    """Knees with a label at ``horizon`` joined to their features (a labelled knee without features is an error)."""
    for col in (*KEY_COLUMNS, "horizon_months", "label"):
        if col not in labels.columns:
            raise OAKitError(f"labels.{col}: column missing; expected participant_id, side, horizon_months, label")
    lab = labels[labels["horizon_months"] == horizon][[*KEY_COLUMNS, "label"]].copy()
    if lab.empty:
        raise OAKitError(f"labels: no rows for horizon {horizon} months; expected labels from `oa-kit labels`")
    lab["participant_id"] = lab["participant_id"].astype(str)
    merged = lab.merge(features, on=list(KEY_COLUMNS), how="left", indicator=True)
    missing = merged[merged["_merge"] == "left_only"]
    if len(missing):
        row = missing.iloc[0]
        raise OAKitError(
            f"features: no row for labelled knee {row['participant_id']}/{row['side']} "
            f"({len(missing)} knees); expected features for every labelled knee"
        )
    merged = merged.drop(columns="_merge")
    return merged.drop(columns="label"), merged["label"].to_numpy().astype(int)
