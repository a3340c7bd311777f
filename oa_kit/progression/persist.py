"""Save and load progression models without pickle: LightGBM text model + JSON metadata + sha256 checksums.

Layout of a saved model folder::

    model.txt        LightGBM text model (absent for the logistic baseline, whose coefficients are in the metadata)
    metadata.json    feature list and families, horizon, assembler/PCA and calibrator parameters, provenance,
                     training-data sha256, metrics
    bootstrap_NNN.txt  LightGBM text model of bootstrap refit NNN (``n_bootstrap > 0``; the logistic refits' coefficients
                       are in the metadata's ``bootstrap`` list, beside each refit's calibrator)
    checksums.json   sha256 of every file above (written last; checked on load)

The bootstrap boosters sit beside ``model.txt`` rather than in a subfolder because the one checksum list
(:mod:`oa_kit.io.artifacts`) names plain files only. A folder saved before bootstrap refits existed (no ``bootstrap``
field) loads as a model without them.
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
from oa_kit.progression.model import ESTIMATORS, LinearScorer, ProgressionModel, make_provenance

FORMAT = "oa_kit.progression/1"
MODEL_FILE, METADATA_FILE = "model.txt", "metadata.json"
#: File name of bootstrap refit ``b``'s LightGBM text model.
BOOTSTRAP_FILE = "bootstrap_{:03d}.txt"
#: Longest horizon a saved model may claim (months; 100 years).
MAX_HORIZON_MONTHS = 1200
#: The top-level metadata fields and their JSON types, checked on load before anything is built from them.
METADATA_FIELDS: dict[str, tuple[type, ...]] = {
    "estimator": (str,),
    "horizon_months": (int,),
    "params": (dict,),
    "best_params": (dict,),
    "feature_names": (list,),
    "feature_families": (dict,),
    "assembler": (dict,),
    "calibrator": (dict,),
    "linear": (dict, type(None)),
    "provenance": (dict,),
    "data_sha256": (str,),
    "n_train": (int,),
    "n_events": (int,),
    "cv_results": (list,),
}
_JSON_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "a whole number",
    float: "a number",
    bool: "true/false",
}


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
            "bootstrap": bootstrap_metadata(model),
            "metrics": dict(metrics or {}),
        }
    )


def bootstrap_metadata(model: ProgressionModel) -> list[dict]:
    """One entry per bootstrap refit: its draw's seed, calibrator, and its booster file or logistic coefficients."""
    entries = []
    for b, (core, calibrator) in enumerate(getattr(model, "bootstrap_", [])):
        entry = {"seed": int(model.bootstrap_seeds_[b]), "calibrator": calibrator.to_dict()}
        if isinstance(core, LinearScorer):
            entry["linear"] = core.to_dict()
        else:
            entry["file"] = BOOTSTRAP_FILE.format(b)
        entries.append(entry)
    return entries


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
        for entry, (core, _) in zip(meta["bootstrap"], getattr(model, "bootstrap_", []), strict=True):
            if "file" in entry:
                (tmp / entry["file"]).write_text(core.model_to_string(), encoding="utf-8")
                files.append(entry["file"])
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=1, allow_nan=False), encoding="utf-8")
        write_checksums(tmp, files)
    return Path(folder)


def load_model(folder: str | os.PathLike) -> ProgressionModel:
    """Load a model written by :func:`save_model`, verifying sha256 checksums first and then type- and range-checking
    every metadata field (no pickle): a damaged or hand-edited folder is one line naming the file and field."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OAKitError(f"{folder}: not a folder; expected a saved progression model folder")
    checksums = verify_checksums(folder, [METADATA_FILE])
    path = folder / METADATA_FILE
    meta = _read_metadata(path)
    model = _rebuild(meta, path)
    if meta["estimator"] == "lightgbm":
        if MODEL_FILE not in checksums:
            raise OAKitError(f"{folder / CHECKSUM_FILE}: no entry for {MODEL_FILE}; expected the LightGBM model")
        model.booster_ = _read_booster(folder / MODEL_FILE, len(model.feature_names_))
    model.bootstrap_ = _read_bootstrap(meta, folder, checksums, len(model.feature_names_))
    model.bootstrap_seeds_ = [entry["seed"] for entry in meta.get("bootstrap", [])]
    _check_folder_horizon(folder, model.horizon_months, path)
    return model


def _read_metadata(path: Path) -> dict:
    """``metadata.json`` parsed and checked field by field (types, ranges, consistency)."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise OAKitError(f"{path}: byte {exc.start} is not UTF-8; expected the JSON metadata of a model") from None
    except json.JSONDecodeError as exc:
        raise OAKitError(
            f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); expected the model metadata"
        ) from None
    if not isinstance(meta, dict):
        raise OAKitError(f"{path}: JSON {type(meta).__name__}; expected an object with the model metadata")
    if meta.get("format") != FORMAT:
        raise OAKitError(f"{path}: format {meta.get('format')!r}; expected {FORMAT!r}")
    for key, kinds in METADATA_FIELDS.items():
        _field(meta, key, kinds, path)
    if meta["estimator"] not in ESTIMATORS:
        raise OAKitError(f"{path}: field 'estimator' = {meta['estimator']!r}; expected one of {', '.join(ESTIMATORS)}")
    _check_range(path, "horizon_months", meta["horizon_months"], 1, MAX_HORIZON_MONTHS, "months")
    _check_range(path, "n_train", meta["n_train"], 1, None, "knees")
    _check_range(path, "n_events", meta["n_events"], 0, meta["n_train"], "events (at most n_train)")
    names = meta["feature_names"]
    if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise OAKitError(f"{path}: field 'feature_names'; expected a non-empty list of distinct column names")
    families = meta["feature_families"]
    if set(families) != set(names) or not all(isinstance(v, str) for v in families.values()):
        raise OAKitError(f"{path}: field 'feature_families'; expected one family name for each of the feature_names")
    _check_provenance(meta["provenance"], path)
    _check_calibrator(meta["calibrator"], path)
    if meta["estimator"] == "logistic":
        _check_linear(meta["linear"], len(names), path)
    _check_bootstrap(meta, path)
    if not isinstance(meta.get("metrics", {}), dict):
        raise OAKitError(f"{path}: field 'metrics' is {type(meta['metrics']).__name__}; expected an object")
    return meta


def _field(meta: dict, key: str, kinds: tuple[type, ...], path: Path) -> Any:
    """``meta[key]``, which must be present and of one of ``kinds`` (``bool`` is not a number)."""
    if key not in meta:
        raise OAKitError(f"{path}: field {key!r} missing; expected the metadata written by save_model")
    value = meta[key]
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        expected = " or ".join("null" if k is type(None) else _JSON_NAMES.get(k, k.__name__) for k in kinds)
        raise OAKitError(f"{path}: field {key!r} is {_json_type(value)}; expected {expected}")
    return value


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (for messages)."""
    return "null" if value is None else _JSON_NAMES.get(type(value), type(value).__name__)


def _check_range(path: Path, key: str, value: int, low: int, high: int | None, unit: str) -> None:
    """A whole number ``low <= value <= high`` (``high`` None: no upper bound)."""
    if value < low or (high is not None and value > high):
        bound = f"{low}-{high}" if high is not None else f">= {low}"
        raise OAKitError(f"{path}: field {key!r} = {value}; expected {bound} {unit}")


def _finite_numbers(value: Any) -> bool:
    """A list of finite JSON numbers (no bools)."""
    return isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in value
    )


def _check_provenance(provenance: dict, path: Path) -> None:
    """``data`` one of synthetic/real/unknown and ``statement`` the one oa_kit attaches to it (so an edited
    provenance cannot label a synthetic model "trained on real data")."""
    data, cohort = provenance.get("data"), provenance.get("cohort", "")
    if data not in ("synthetic", "real", "unknown") or not isinstance(cohort, str):
        raise OAKitError(f"{path}: field 'provenance.data' = {data!r}; expected 'synthetic', 'real' or 'unknown'")
    if provenance.get("statement") != make_provenance(data, cohort)["statement"]:
        raise OAKitError(
            f"{path}: field 'provenance.statement' = {provenance.get('statement')!r}; expected the statement oa_kit "
            f"writes for data {data!r}"
        )


def _check_calibrator(state: Any, path: Path, name: str = "calibrator") -> None:
    """Method known and its parameters finite numbers (isotonic thresholds: equal-length, x increasing, y in 0-1);
    ``name`` is the field's path in the metadata."""
    method = state.get("method") if isinstance(state, dict) else None
    if method not in ("sigmoid", "isotonic", "none"):
        raise OAKitError(f"{path}: field '{name}.method' = {method!r}; expected sigmoid, isotonic or none")
    if method == "sigmoid":
        for key in ("slope", "intercept"):
            if not _finite_numbers([state.get(key)]):
                raise OAKitError(f"{path}: field '{name}.{key}' = {state.get(key)!r}; expected a finite number")
        if state["slope"] < 0:  # fit() never writes one: a negative slope would reverse the order of every risk
            raise OAKitError(f"{path}: field '{name}.slope' = {state['slope']!r}; expected a slope >= 0")
    if method == "isotonic":
        x, y = state.get("x_thresholds"), state.get("y_thresholds")
        if not (_finite_numbers(x) and _finite_numbers(y) and len(x) == len(y) >= 1):
            raise OAKitError(f"{path}: field '{name}.x_thresholds/y_thresholds'; expected two equal-length lists")
        if np.any(np.diff(x) < 0) or min(y) < 0 or max(y) > 1:
            raise OAKitError(f"{path}: field '{name}.y_thresholds'; expected increasing x and probabilities 0-1")


def _check_linear(state: Any, n_features: int, path: Path, name: str = "linear") -> None:
    """The logistic scorer: one finite median, mean, positive scale and coefficient per feature, a finite intercept."""
    if not isinstance(state, dict):
        raise OAKitError(f"{path}: field '{name}' is {_json_type(state)}; expected the logistic model's coefficients")
    for key in ("medians", "means", "scales", "coef"):
        if not _finite_numbers(state.get(key)) or len(state[key]) != n_features:
            raise OAKitError(f"{path}: field '{name}.{key}'; expected {n_features} finite numbers (one per feature)")
    if min(state["scales"], default=1) <= 0 or not _finite_numbers([state.get("intercept")]):
        raise OAKitError(f"{path}: field '{name}.scales/intercept'; expected positive scales and a finite intercept")


def _check_bootstrap(meta: dict, path: Path) -> None:
    """The ``bootstrap`` list (absent in folders saved before it existed: no refits): one entry per refit of
    ``params.n_bootstrap``, each with a whole-number seed, a checked calibrator and its booster file (named
    ``bootstrap_NNN.txt`` in order) or logistic coefficients."""
    entries = _field(meta, "bootstrap", (list,), path) if "bootstrap" in meta else []
    expected = meta["params"].get("n_bootstrap", 0)
    if isinstance(expected, bool) or len(entries) != expected:
        raise OAKitError(
            f"{path}: field 'bootstrap' has {len(entries)} refits; expected {expected} (params.n_bootstrap)"
        )
    for b, entry in enumerate(entries):
        name = f"bootstrap[{b}]"
        if not isinstance(entry, dict) or isinstance(entry.get("seed"), bool) or not isinstance(entry.get("seed"), int):
            raise OAKitError(f"{path}: field '{name}'; expected an object with a whole-number seed")
        _check_calibrator(entry.get("calibrator"), path, f"{name}.calibrator")
        if meta["estimator"] == "logistic":
            _check_linear(entry.get("linear"), len(meta["feature_names"]), path, f"{name}.linear")
        elif entry.get("file") != BOOTSTRAP_FILE.format(b):
            raise OAKitError(
                f"{path}: field '{name}.file' = {entry.get('file')!r}; expected {BOOTSTRAP_FILE.format(b)!r}"
            )


def _read_bootstrap(meta: dict, folder: Path, checksums: dict, n_features: int) -> list[tuple]:
    """The (core, calibrator) bootstrap refits of checked metadata; every booster file must be in the checksum list."""
    refits = []
    for entry in meta.get("bootstrap", []):
        calibrator = ProbabilityCalibrator.from_dict(entry["calibrator"])
        if "linear" in entry and meta["estimator"] == "logistic":
            refits.append((LinearScorer.from_dict(entry["linear"]), calibrator))
            continue
        if entry["file"] not in checksums:
            raise OAKitError(f"{folder / CHECKSUM_FILE}: no entry for {entry['file']}; expected every bootstrap model")
        refits.append((_read_booster(folder / entry["file"], n_features), calibrator))
    return refits


def _rebuild(meta: dict, path: Path) -> ProgressionModel:
    """The model object from checked metadata; a state its own class cannot rebuild names the field."""
    params = dict(meta["params"])
    if params.get("param_grid") is not None:
        params["param_grid"] = [dict(g) for g in params["param_grid"]]
    model = _part(path, "params", lambda: ProgressionModel(**params))
    if model.horizon_months != meta["horizon_months"] or model.estimator != meta["estimator"]:
        raise OAKitError(f"{path}: field 'params'; expected the horizon_months and estimator of the metadata")
    model.assembler_ = _part(path, "assembler", lambda: FeatureAssembler.from_dict(meta["assembler"]))
    if list(model.assembler_.feature_names_out_) != meta["feature_names"]:
        raise OAKitError(f"{path}: field 'assembler.feature_names_out'; expected the same list as 'feature_names'")
    model.calibrator_ = ProbabilityCalibrator.from_dict(meta["calibrator"])
    model.booster_, model.linear_ = None, None
    if meta["estimator"] == "logistic":
        model.linear_ = LinearScorer.from_dict(meta["linear"])
    model.best_params_ = meta["best_params"]
    model.feature_names_ = list(meta["feature_names"])
    model.feature_families_ = dict(meta["feature_families"])
    model.provenance_ = dict(meta["provenance"])
    model.data_sha256_ = meta["data_sha256"]
    model.n_train_, model.n_events_ = meta["n_train"], meta["n_events"]
    model.cv_results_ = _part(path, "cv_results", lambda: pd.DataFrame(meta["cv_results"]))
    model.classes_ = np.array([0, 1])
    model.metrics_ = meta.get("metrics", {})
    return model


def _part(path: Path, key: str, build: Any) -> Any:
    """``build()``, turning the errors of a malformed nested state into one line naming ``key``."""
    try:
        return build()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = " ".join(str(exc).split())[:120]
        raise OAKitError(
            f"{path}: field {key!r} malformed ({type(exc).__name__}: {detail}); expected the state save_model writes"
        ) from None


def _read_booster(path: Path, n_features: int) -> lgb.Booster:
    """The LightGBM text model, which must parse and use exactly ``n_features`` features (the metadata's list)."""
    try:
        booster = lgb.Booster(model_str=path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise OAKitError(f"{path}: byte {exc.start} is not UTF-8; expected a LightGBM text model") from None
    except lgb.basic.LightGBMError as exc:
        raise OAKitError(
            f"{path}: cannot parse ({' '.join(str(exc).split())[:120]}); expected a LightGBM text model"
        ) from None
    if booster.num_feature() != n_features:
        raise OAKitError(
            f"{path}: {booster.num_feature()} features; expected {n_features}, the feature_names of {METADATA_FILE}"
        )
    return booster


def _check_folder_horizon(folder: Path, horizon: int, path: Path) -> None:
    """A model folder named ``h{H}`` must hold the model of horizon H (a swapped folder would mislabel every risk)."""
    name = folder.resolve().name
    if name[:1] == "h" and name[1:].isdigit() and int(name[1:]) != horizon:
        raise OAKitError(f"{path}: field 'horizon_months' = {horizon}; expected {name[1:]}, the horizon of {name}/")
