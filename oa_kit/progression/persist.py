"""Save and load progression models without pickle: LightGBM text model + JSON metadata + sha256 checksums.

Layout of a saved model folder::

    model.txt        LightGBM text model (absent for the logistic baseline, whose coefficients are in the metadata)
    metadata.json    feature list and families, horizon, assembler/PCA and calibrator parameters, provenance,
                     training-data sha256, metrics
    checksums.json   sha256 of the two files above (written last; checked on load)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from oa_kit import __version__
from oa_kit.errors import OAKitError
from oa_kit.features.assemble import FeatureAssembler
from oa_kit.io.artifacts import CHECKSUM_FILE, verify_checksums, write_checksums
from oa_kit.io.atomic import atomic_dir
from oa_kit.progression.calibration import ProbabilityCalibrator
from oa_kit.progression.model import LinearScorer, ProgressionModel

FORMAT = "oa_kit.progression/1"
MODEL_FILE, METADATA_FILE = "model.txt", "metadata.json"


def _jsonable(value: Any) -> Any:
    """Convert numpy/pandas scalars and containers into JSON types."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def model_metadata(model: ProgressionModel, metrics: Mapping[str, Any] | None = None) -> dict:
    """The JSON metadata describing a fitted model (everything but the tree text)."""
    model._check_fitted()
    params = model.get_params()
    return _jsonable(
        {
            "format": FORMAT,
            "oa_kit_version": __version__,
            "estimator": model.estimator,
            "horizon_months": int(model.horizon_months),
            "params": params,
            "best_params": model.best_params_,
            "feature_names": model.feature_names_,
            "feature_families": model.feature_families_,
            "assembler": model.assembler_.to_dict(),
            "calibrator": model.calibrator_.to_dict(),
            "linear": model.linear_.to_dict() if model.linear_ is not None else None,
            "provenance": model.provenance_,
            "data_sha256": model.data_sha256_,
            "n_train": model.n_train_,
            "n_events": model.n_events_,
            "cv_results": model.cv_results_.to_dict(orient="records"),
            "metrics": dict(metrics or {}),
        }
    )


def save_model(
    model: ProgressionModel,
    folder: str | os.PathLike,
    metrics: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` to ``folder`` (built in a temp folder and renamed whole); returns the folder.

    Parameters
    ----------
    model : ProgressionModel
        A fitted model.
    folder : path
        Output folder (must not exist unless ``overwrite``).
    metrics : mapping, optional
        Evaluation figures to store with the model (e.g. AUC with CI from cross-validation).
    overwrite : bool
        Replace an existing folder.
    """
    meta = model_metadata(model, metrics)
    with atomic_dir(folder, overwrite=overwrite) as tmp:
        files = [METADATA_FILE]
        if model.booster_ is not None:
            (tmp / MODEL_FILE).write_text(model.booster_.model_to_string(), encoding="utf-8")
            files.insert(0, MODEL_FILE)
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=1, allow_nan=False), encoding="utf-8")
        write_checksums(tmp, files)
    return Path(folder)


def load_model(folder: str | os.PathLike) -> ProgressionModel:
    """Load a model written by :func:`save_model`, verifying sha256 checksums first (no pickle)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OAKitError(f"{folder}: not a folder; expected a saved progression model folder")
    checksums = verify_checksums(folder, [METADATA_FILE])
    meta = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise OAKitError(f"{folder / METADATA_FILE}: format {meta.get('format')!r}; expected {FORMAT!r}")
    params = dict(meta["params"])
    if params.get("param_grid") is not None:
        params["param_grid"] = [dict(g) for g in params["param_grid"]]
    model = ProgressionModel(**params)
    model.assembler_ = FeatureAssembler.from_dict(meta["assembler"])
    model.calibrator_ = ProbabilityCalibrator.from_dict(meta["calibrator"])
    model.booster_, model.linear_ = None, None
    if meta["estimator"] == "lightgbm":
        if MODEL_FILE not in checksums:
            raise OAKitError(f"{folder / CHECKSUM_FILE}: no entry for {MODEL_FILE}; expected the LightGBM model")
        model.booster_ = lgb.Booster(model_str=(folder / MODEL_FILE).read_text(encoding="utf-8"))
    else:
        model.linear_ = LinearScorer.from_dict(meta["linear"])
    model.best_params_ = meta["best_params"]
    model.feature_names_ = list(meta["feature_names"])
    model.feature_families_ = dict(meta["feature_families"])
    model.provenance_ = dict(meta["provenance"])
    model.data_sha256_ = meta["data_sha256"]
    model.n_train_, model.n_events_ = meta["n_train"], meta["n_events"]
    model.cv_results_ = pd.DataFrame(meta["cv_results"])
    model.classes_ = np.array([0, 1])
    model.metrics_ = meta.get("metrics", {})
    return model
