"""Small saved progression model folders for the catalogue (fitted once per session, copied per case), and a maker
that edits one metadata field and re-vouches for the edit in ``checksums.json`` (a deliberate, checksummed edit:
what the metadata checks must catch, since the sha256 list alone cannot)."""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oa_kit.io.artifacts import write_checksums
from oa_kit.progression import ProgressionModel, make_provenance, save_model

GRID = [{"num_leaves": 4, "n_estimators": 20, "learning_rate": 0.1}]


def knee_table(n: int = 120, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A per-knee table (age, BMI, KL, sex) whose outcome depends on age and KL, seeded."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "participant_id": [f"9{i // 2:06d}" for i in range(n)],
            "side": ["R", "L"] * (n // 2),
            "age": rng.uniform(45, 79, n).round(),
            "bmi": rng.normal(28, 4, n).round(1),
            "kl": rng.integers(0, 4, n),
            "sex": rng.choice(["M", "F"], n),
        }
    )
    logit = -1.5 + 0.08 * (table["age"] - 62) + 0.6 * table["kl"]
    return table, rng.binomial(1, 1 / (1 + np.exp(-logit.to_numpy())))


@functools.cache
def _saved(estimator: str) -> Path:
    """One fitted model of ``estimator`` saved under a session temp folder (``lightgbm`` or ``logistic`` isotonic)."""
    X, y = knee_table()
    kwargs = {"param_grid": GRID} if estimator == "lightgbm" else {"calibration": "isotonic"}
    model = ProgressionModel(estimator=estimator, seed=0, **kwargs).fit(
        X, y, provenance=make_provenance("synthetic", "bad_inputs fixture")
    )
    return save_model(model, Path(tempfile.mkdtemp(prefix="oa_kit_bad_inputs_")) / "model")


def model_folder(tmp: Path, estimator: str = "lightgbm", name: str = "model") -> Path:
    """A copy of the saved ``estimator`` model at ``tmp / name``."""
    return Path(shutil.copytree(_saved(estimator), tmp / name))


def revouch(folder: Path) -> Path:
    """Rewrite ``checksums.json`` for the files it lists (so only the content checks can catch an edit)."""
    write_checksums(folder, sorted(json.loads((folder / "checksums.json").read_text())))
    return folder


def edited(
    change: Callable[[dict], Any], estimator: str = "lightgbm", name: str = "model", whole: bool = False
) -> Callable[[Path], Path]:
    """Maker: a model folder whose metadata ``change(meta)`` edited in place (``whole``: replaced by what it returns),
    with checksums updated."""

    def make(tmp: Path) -> Path:
        folder = model_folder(tmp, estimator, name)
        meta = json.loads((folder / "metadata.json").read_text())
        result = change(meta)
        (folder / "metadata.json").write_text(json.dumps(result if whole else meta))
        return revouch(folder)

    return make


def replaced(file: str, data: bytes, estimator: str = "lightgbm") -> Callable[[Path], Path]:
    """Maker: a model folder with ``file`` replaced by ``data`` and checksums updated (unless it is the list)."""

    def make(tmp: Path) -> Path:
        folder = model_folder(tmp, estimator)
        (folder / file).write_bytes(data)
        return folder if file == "checksums.json" else revouch(folder)

    return make


def set_path(meta: dict, dotted: str, value: Any) -> None:
    """``meta[a][b] = value`` for ``dotted`` = ``"a.b"``."""
    *parents, key = dotted.split(".")
    for part in parents:
        meta = meta[part]
    meta[key] = value


def drop_first_feature(meta: dict, assembler_too: bool) -> None:
    """Remove the first feature from the metadata's list (and the assembler's output list when asked)."""
    first = meta["feature_names"].pop(0)
    meta["feature_families"].pop(first)
    if assembler_too:
        meta["assembler"]["feature_names_out"].remove(first)
