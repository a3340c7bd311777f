"""``ProgressionModel``: one horizon's progression risk from per-knee features (LightGBM or logistic regression).

The estimator is the whole pipeline — feature assembly (with embedding PCA), model, calibration — so that every
cross-validation fit refits all of it on training knees only. ``fit`` runs a small, bounded hyper-parameter search
in an inner participant-grouped CV (both knees of a participant stay together), keeps the configuration with the
best pooled out-of-fold AUC, fits the calibrator (Platt or isotonic) on those out-of-fold scores and refits the
model on all training knees. Class imbalance: ``class_weight="balanced"`` for both model kinds (the calibrator
then maps the re-weighted scores back to event probabilities). Evaluating it in an outer participant-grouped CV
(``oa_kit.evaluation.validation``) makes the tuning nested. With ``n_bootstrap > 0``, ``fit`` also refits the
model on participant-level bootstrap draws (each with a calibrator fitted on its out-of-bag knees), and
``predict_interval`` gives a per-knee percentile interval of the risk over those refits.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold

from oa_kit.errors import OAKitError
from oa_kit.features.assemble import DERIVED_DIRECTIONS, FeatureAssembler
from oa_kit.features.schema import KEY_COLUMNS, feature_columns
from oa_kit.metrics import roc_auc
from oa_kit.progression.calibration import ProbabilityCalibrator

#: Statement attached to every prediction of a model trained on synthetic data.
SYNTHETIC_STATEMENT = "trained on synthetic data — not a clinical estimate"
#: Statement when the training data provenance was not recorded.
UNKNOWN_STATEMENT = "training data provenance not recorded — research use only, not a clinical estimate"
#: Small bounded LightGBM search (5 configurations, from slow, strongly regularised additive stumps to 8-leaf trees;
#: shallow models won on the synthetic demo cohort, where ~800 knees carry ~70–220 events per horizon).
LIGHTGBM_GRID: tuple[dict, ...] = (
    {
        "num_leaves": 2,
        "n_estimators": 800,
        "learning_rate": 0.03,
        "min_child_samples": 30,
        "reg_lambda": 10.0,
        "colsample_bytree": 0.5,
    },
    {"num_leaves": 3, "n_estimators": 600, "learning_rate": 0.03, "min_child_samples": 30, "extra_trees": True},
    {"num_leaves": 4, "n_estimators": 300, "learning_rate": 0.03, "min_child_samples": 20},
    {"num_leaves": 8, "n_estimators": 400, "learning_rate": 0.02, "min_child_samples": 40},
    {"num_leaves": 2, "n_estimators": 1500, "learning_rate": 0.01, "min_child_samples": 40, "reg_lambda": 20.0},
)
#: Regularisation strengths searched for the logistic model.
LOGISTIC_GRID: tuple[dict, ...] = ({"C": 0.01}, {"C": 0.1}, {"C": 1.0}, {"C": 10.0})
ESTIMATORS: tuple[str, ...] = ("lightgbm", "logistic")
#: Draws tried per bootstrap refit before giving up when the in-bag or out-of-bag knees hold a single class.
BOOTSTRAP_ATTEMPTS = 20


def make_provenance(data: str = "unknown", cohort: str = "", note: str = "") -> dict:
    """Provenance record of the training data: ``data`` is ``synthetic``, ``real`` or ``unknown``; ``cohort`` names it."""
    if data not in ("synthetic", "real", "unknown"):
        raise OAKitError(f"provenance.data: {data!r}; expected 'synthetic', 'real' or 'unknown'")
    statement = {"synthetic": SYNTHETIC_STATEMENT, "unknown": UNKNOWN_STATEMENT}.get(
        data,
        f"trained on real data ({cohort or 'cohort not named'}) — research use only, not a validated clinical tool",
    )
    return {"data": data, "cohort": cohort, "statement": statement, "note": note}


def data_sha256(X: pd.DataFrame, y: Sequence[int]) -> str:
    """sha256 of the training table and labels (row order and values), recorded in model metadata."""
    frame = X.copy()
    frame["__label__"] = np.asarray(y)
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes() + ",".join(map(str, frame.columns)).encode()).hexdigest()


@dataclass
class LinearScorer:
    """Logistic-regression scorer as plain arrays: median imputation, standardisation, linear log-odds."""

    medians: np.ndarray
    means: np.ndarray
    scales: np.ndarray
    coef: np.ndarray
    intercept: float
    extra: dict = field(default_factory=dict)

    def raw(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds for a feature matrix (columns in training order)."""
        values = X.to_numpy(dtype=float)
        values = np.where(np.isnan(values), self.medians, values)
        return (values - self.means) / self.scales @ self.coef + self.intercept

    def to_dict(self) -> dict:
        """JSON-ready arrays."""
        return {
            "medians": self.medians.tolist(),
            "means": self.means.tolist(),
            "scales": self.scales.tolist(),
            "coef": self.coef.tolist(),
            "intercept": float(self.intercept),
        }

    @classmethod
    def from_dict(cls, state: dict) -> LinearScorer:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            *(np.asarray(state[k], dtype=float) for k in ("medians", "means", "scales", "coef")),
            float(state["intercept"]),
        )


def fit_linear(X: pd.DataFrame, y: np.ndarray, C: float, class_weight: str | None, seed: int) -> LinearScorer:
    """Fit median-imputed, standardised L2 logistic regression and return it as a :class:`LinearScorer`."""
    values = X.to_numpy(dtype=float)
    medians = np.nanmedian(values, axis=0)
    medians = np.where(np.isnan(medians), 0.0, medians)
    values = np.where(np.isnan(values), medians, values)
    means, scales = values.mean(axis=0), values.std(axis=0)
    scales = np.where(scales > 0, scales, 1.0)
    lr = LogisticRegression(C=C, class_weight=class_weight, max_iter=2000, random_state=seed)
    lr.fit((values - means) / scales, y)
    return LinearScorer(medians, means, scales, lr.coef_[0].copy(), float(lr.intercept_[0]))


def monotone_constraints(columns: Sequence[str], directions: Mapping[str, int] = DERIVED_DIRECTIONS) -> list[int]:
    """LightGBM monotone constraint per feature column: the known risk direction (+1/−1) or 0 (unconstrained)."""
    return [int(directions.get(str(c), 0)) for c in columns]


def fit_booster(
    X: pd.DataFrame,
    y: np.ndarray,
    params: Mapping[str, Any],
    class_weight: str | None,
    seed: int,
    monotone: bool = False,
) -> lgb.Booster:
    """Fit a LightGBM binary classifier (single thread, deterministic) and return its booster.

    Defaults subsample 0.8, colsample_bytree 0.8, reg_lambda 1.0 apply unless ``params`` sets them. With
    ``monotone``, features of known direction (:data:`~oa_kit.features.assemble.DERIVED_DIRECTIONS`) are constrained.
    """
    settings = {"subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 1.0, **dict(params)}
    constraints = monotone_constraints(X.columns)
    if monotone and any(constraints):
        settings["monotone_constraints"] = constraints
    clf = lgb.LGBMClassifier(
        objective="binary",
        class_weight=class_weight,
        random_state=seed,
        n_jobs=1,
        verbose=-1,
        deterministic=True,
        force_row_wise=True,
        **settings,
    )
    clf.fit(X, y)
    return clf.booster_


def resolve_groups(X: pd.DataFrame, groups: Sequence | None) -> np.ndarray:
    """Participant id per row: ``groups`` if given, else ``X['participant_id']``; required to keep knees together."""
    if groups is None:
        if "participant_id" not in X.columns:
            raise OAKitError(
                "groups: not given and X has no participant_id column; expected participant ids so "
                "both knees of a participant stay in one fold"
            )
        groups = X["participant_id"]
    groups = np.asarray(groups).astype(str)
    if len(groups) != len(X):
        raise OAKitError(f"groups: {len(groups)} ids for {len(X)} rows; expected one per row")
    return groups


def check_labels(y: Sequence, horizon_months: int, n_splits: int) -> np.ndarray:
    """Validate 0/1 labels with enough events and non-events for ``n_splits`` grouped folds."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise OAKitError("label: expected a non-empty 1-D array of 0/1 outcomes")
    if pd.isna(y).any() or not np.isin(y.astype(float), (0.0, 1.0)).all():
        raise OAKitError("label: values must be 0 or 1 with no missing entries")
    y = y.astype(int)
    n_events, n = int(y.sum()), len(y)
    if n_events == 0 or n_events == n:
        which = "no progression events" if n_events == 0 else "only progression events"
        raise OAKitError(
            f"label: horizon {horizon_months} months has {which} ({n_events} of {n}); "
            "expected both classes to fit a model"
        )
    if min(n_events, n - n_events) < n_splits:
        raise OAKitError(
            f"label: horizon {horizon_months} months has {min(n_events, n - n_events)} knees in the "
            f"minority class; expected at least n_splits={n_splits} for grouped cross-validation"
        )
    return y


def check_n_bootstrap(n_bootstrap: object) -> int:
    """``n_bootstrap`` as a whole number >= 0 (bools and fractions refused)."""
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 0:
        raise OAKitError(f"n_bootstrap: {n_bootstrap!r}; expected a whole number >= 0 (0: no bootstrap refits)")
    return int(n_bootstrap)


def participant_draw(groups: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One participant-level bootstrap draw: the in-bag rows (every knee of a drawn participant, once per time it was
    drawn) and the out-of-bag mask (the knees of participants never drawn), so no participant is split."""
    ids, inverse = np.unique(groups, return_inverse=True)
    drawn = np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))[inverse]
    return np.repeat(np.arange(len(groups)), drawn), drawn == 0


class ProgressionModel(BaseEstimator, ClassifierMixin):
    """Risk of knee OA progression by ``horizon_months``: features → LightGBM (or logistic) → calibration.

    Parameters
    ----------
    horizon_months : int
        Outcome horizon (12, 24, 36, 48, ... months); recorded in outputs.
    estimator : {"lightgbm", "logistic"}
        Model kind; ``logistic`` is the baseline (median imputation, standardisation, L2).
    columns : sequence of str, optional
        Raw columns to use (e.g. clinical only for a baseline); default all usable columns.
    param_grid : sequence of dict, optional
        Hyper-parameter configurations searched in the inner CV (default: a 4-point grid per estimator).
    n_inner_splits : int
        Inner participant-grouped folds for the search and calibration.
    calibration : {"sigmoid", "isotonic", "none"}
        Calibration of the out-of-fold scores.
    class_weight : {"balanced", None}
        Class-imbalance handling.
    n_components : int
        PCA components per image embedding (fitted inside each training fold).
    derived : {"none", "add", "replace"}
        Compact derived JSW / thickness features (:class:`~oa_kit.features.assemble.DerivedFeatures`, fitted
        inside each training fold).
    monotone : bool
        LightGBM: constrain the derived features to their known risk direction.
    on_nan_heavy : {"error", "keep"}
        Passed to :class:`~oa_kit.features.FeatureAssembler`.
    seed : int
        Seed for folds, models and PCA.
    families : mapping, optional
        Family (``clinical``, ``radiograph``, ``mri``) of columns the feature schema (:mod:`oa_kit.features.schema`)
        does not know; an undeclared unknown column is an error naming it.
    categorical : sequence of str
        Numeric columns entering as categories (one indicator per level), e.g. ``("kl",)``.
    n_bootstrap : int
        Participant-level bootstrap refits for :meth:`predict_interval` (0: none). Each refit reuses the main
        model's fitted feature assembler and ``best_params_`` (neither is refitted: cheaper, and the refits persist
        as plain boosters / coefficients) and gets its own calibrator, fitted on the scores of its out-of-bag knees.

    Attributes
    ----------
    assembler_ : FeatureAssembler
    feature_names_ : list of str
    feature_families_ : dict
    booster_ : lightgbm.Booster or None
    linear_ : LinearScorer or None
    calibrator_ : ProbabilityCalibrator
    best_params_ : dict
    cv_results_ : DataFrame
        Inner-CV AUC per configuration.
    bootstrap_ : list of (lightgbm.Booster or LinearScorer, ProbabilityCalibrator)
        The bootstrap refits (empty when ``n_bootstrap=0``).
    bootstrap_seeds_ : list of int
        Seed of each refit's draw (``seed + b``).
    provenance_ : dict
    data_sha256_ : str
    classes_ : ndarray
    """

    def __init__(
        self,
        horizon_months: int = 24,
        estimator: str = "lightgbm",
        columns: Sequence[str] | None = None,
        param_grid: Sequence[Mapping[str, Any]] | None = None,
        n_inner_splits: int = 3,
        calibration: str = "sigmoid",
        class_weight: str | None = "balanced",
        n_components: int = 8,
        derived: str = "none",
        monotone: bool = False,
        on_nan_heavy: str = "keep",
        seed: int = 0,
        families: Mapping[str, str] | None = None,
        categorical: Sequence[str] = (),
        n_bootstrap: int = 0,
    ) -> None:
        self.horizon_months = horizon_months
        self.estimator = estimator
        self.columns = columns
        self.param_grid = param_grid
        self.n_inner_splits = n_inner_splits
        self.calibration = calibration
        self.class_weight = class_weight
        self.n_components = n_components
        self.derived = derived
        self.monotone = monotone
        self.on_nan_heavy = on_nan_heavy
        self.seed = seed
        self.families = families
        self.categorical = categorical
        self.n_bootstrap = n_bootstrap

    # -- fitting ----------------------------------------------------------------------------------------
    def search_grid(self) -> list[dict]:
        """The hyper-parameter configurations the inner CV searches (``param_grid`` or the estimator's default grid)."""
        if self.estimator not in ESTIMATORS:
            raise OAKitError(f"estimator: {self.estimator!r}; expected one of {ESTIMATORS}")
        grid = self.param_grid or (LIGHTGBM_GRID if self.estimator == "lightgbm" else LOGISTIC_GRID)
        if not grid:
            raise OAKitError("param_grid: empty; expected at least one configuration")
        return [dict(g) for g in grid]

    def _assembler(self) -> FeatureAssembler:
        """A fresh (unfitted) feature assembler with this model's settings."""
        return FeatureAssembler(
            columns=self.columns,
            n_components=self.n_components,
            on_nan_heavy=self.on_nan_heavy,
            derived=self.derived,
            seed=self.seed,
            families=self.families,
            categorical=self.categorical,
        )

    def _fit_estimator(self, features: pd.DataFrame, y: np.ndarray, params: dict) -> Any:
        """Fit the booster or linear scorer on assembled features (no calibration)."""
        if self.estimator == "lightgbm":
            return fit_booster(features, y, params, self.class_weight, self.seed, self.monotone)
        return fit_linear(features, y, params["C"], self.class_weight, self.seed)

    def _inner_fold_features(self, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray) -> list[tuple]:
        """Inner participant-grouped folds with features assembled on each training part only (PCA in-fold)."""
        splitter = StratifiedGroupKFold(n_splits=self.n_inner_splits, shuffle=True, random_state=self.seed)
        fold_data = []
        for train, test in splitter.split(X, y, groups):
            if len(np.unique(y[train])) < 2:
                raise OAKitError(
                    f"label: an inner training fold has a single class (horizon "
                    f"{self.horizon_months} months); expected more events"
                )
            assembler = self._assembler().fit(X.iloc[train])
            fold_data.append((assembler.transform(X.iloc[train]), y[train], assembler.transform(X.iloc[test]), test))
        return fold_data

    def _search(self, fold_data: list[tuple], y: np.ndarray) -> tuple[pd.DataFrame, tuple]:
        """Pooled out-of-fold AUC of every configuration; returns the table and (auc, params, oof scores) of the best."""
        rows, best = [], (-np.inf, None, None)
        for i, params in enumerate(self.search_grid()):
            oof = np.full(len(y), np.nan)
            for f_train, y_train, f_test, test in fold_data:
                oof[test] = self._raw(self._fit_estimator(f_train, y_train, params), f_test)
            auc = _auc(y, oof)
            rows.append({"config": i, **params, "inner_auc": auc})
            if auc > best[0]:
                best = (auc, params, oof)
        return pd.DataFrame(rows), best

    @staticmethod
    def _raw(core: Any, features: pd.DataFrame) -> np.ndarray:
        """Raw log-odds from a booster or linear scorer (one thread: OpenMP start-up cost ~0.3 s per call on a busy
        2-core machine, against ~0.1 ms of work for one knee; 50 bootstrap refits make that 50 calls)."""
        if isinstance(core, lgb.Booster):
            return core.predict(features, raw_score=True, num_threads=1)
        return core.raw(features)

    def fit(
        self,
        X: pd.DataFrame,
        y: Sequence[int],
        groups: Sequence | None = None,
        provenance: Mapping[str, str] | None = None,
    ) -> ProgressionModel:
        """Search hyper-parameters and fit the calibrator in inner grouped CV, then refit on all rows.

        Parameters
        ----------
        X : DataFrame
            One row per knee (joined clinical / KL-CNN / MRI columns; keys allowed).
        y : array-like of 0/1
            Progression by ``horizon_months``.
        groups : array-like, optional
            Participant id per row (default ``X['participant_id']``).
        provenance : mapping, optional
            From :func:`make_provenance`; stored and attached to every prediction.

        With ``n_bootstrap > 0`` the refit on all rows is followed by ``n_bootstrap`` refits on participant-level
        bootstrap draws (:meth:`_fit_bootstrap`).

        Returns
        -------
        self
        """
        if not isinstance(X, pd.DataFrame):
            raise OAKitError(f"X: got {type(X).__name__}; expected a pandas DataFrame")
        check_n_bootstrap(self.n_bootstrap)
        y = check_labels(y, self.horizon_months, self.n_inner_splits)
        groups = resolve_groups(X, groups)
        keep = list(self.columns) if self.columns is not None else feature_columns(X.columns, self.families)
        missing = [c for c in keep if c not in X.columns]
        if missing:
            raise OAKitError(f"{missing[0]}: feature column missing; expected all of {len(keep)} feature columns")
        keys = [c for c in KEY_COLUMNS if c in X.columns and c not in keep]
        X = X[keys + keep].reset_index(drop=True)  # only what the model uses: cheaper fold slicing
        fold_data = self._inner_fold_features(X, y, groups)
        rows, best = self._search(fold_data, y)
        self.cv_results_ = rows
        self.best_params_ = dict(best[1])
        self.calibrator_ = ProbabilityCalibrator(self.calibration).fit(best[2], y)
        self.assembler_ = self._assembler().fit(X)
        features = self.assembler_.transform(X)
        core = self._fit_estimator(features, y, self.best_params_)
        self.booster_ = core if isinstance(core, lgb.Booster) else None
        self.linear_ = core if isinstance(core, LinearScorer) else None
        self.bootstrap_ = self._fit_bootstrap(features, y, groups)
        self.feature_names_ = list(self.assembler_.feature_names_out_)
        self.feature_families_ = dict(self.assembler_.feature_families_)
        self.provenance_ = dict(provenance) if provenance is not None else make_provenance()
        self.data_sha256_ = data_sha256(X, y)
        self.classes_ = np.array([0, 1])
        self.n_train_, self.n_events_ = len(y), int(y.sum())
        return self

    def _fit_bootstrap(self, features: pd.DataFrame, y: np.ndarray, groups: np.ndarray) -> list[tuple]:
        """``n_bootstrap`` (core, calibrator) refits: the core on a participant-level draw of the assembled features
        with ``best_params_``, the calibrator on its out-of-bag knees' scores; records each draw's seed."""
        refits, self.bootstrap_seeds_ = [], []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for b in range(self.n_bootstrap):
                rows, oob = self._usable_draw(y, groups, self.seed + b)
                core = self._fit_estimator(features.iloc[rows], y[rows], self.best_params_)
                out_of_bag = np.flatnonzero(oob)
                scores = self._raw(core, features.iloc[out_of_bag])
                refits.append((core, ProbabilityCalibrator(self.calibration).fit(scores, y[out_of_bag])))
                self.bootstrap_seeds_.append(self.seed + b)
        _summarise_flat_refits(caught, self.n_bootstrap)
        return refits

    def _usable_draw(self, y: np.ndarray, groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """A participant-level draw whose in-bag and out-of-bag knees both hold events and non-events; redrawn from
        the same seeded generator (so two refits never share a draw), at most :data:`BOOTSTRAP_ATTEMPTS` times."""
        rng = np.random.default_rng(seed)
        for _ in range(BOOTSTRAP_ATTEMPTS):
            rows, oob = participant_draw(groups, rng)
            if len(np.unique(y[rows])) == 2 and len(np.unique(y[oob])) == 2:
                return rows, oob
        raise OAKitError(
            f"n_bootstrap: {BOOTSTRAP_ATTEMPTS} draws of seed {seed} left in-bag or out-of-bag knees of a single class "
            f"(horizon {self.horizon_months} months); expected more events and non-events, or n_bootstrap=0"
        )

    # -- prediction -------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        """Raise if the model has not been fitted or loaded."""
        if not hasattr(self, "calibrator_"):
            raise OAKitError("ProgressionModel: not fitted; call fit() or load_model() first")

    def transform_features(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model's feature matrix for ``X`` (what SHAP explains)."""
        self._check_fitted()
        return self.assembler_.transform(X)

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds (the scale SHAP values add up to)."""
        features = self.transform_features(X)
        return self._raw(self.booster_ if self.booster_ is not None else self.linear_, features)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, shape (n, 2) (sklearn contract; use :meth:`predict_risk` for provenance)."""
        self._check_fitted()
        p = np.clip(self.calibrator_.predict(self.decision_function(X)), 0.0, 1.0)
        return np.column_stack([1 - p, p])

    def bootstrap_risks(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated risk of every knee under every bootstrap refit, shape (n, n_bootstrap)."""
        self._check_fitted()
        if not getattr(self, "bootstrap_", []):
            raise OAKitError(
                f"ProgressionModel (horizon {self.horizon_months} months): fitted with n_bootstrap=0; expected a "
                "model fitted with n_bootstrap > 0 (e.g. 50) for risk intervals"
            )
        features = self.assembler_.transform(X)
        return np.column_stack(
            [np.clip(calibrator.predict(self._raw(core, features)), 0.0, 1.0) for core, calibrator in self.bootstrap_]
        )

    def predict_interval(self, X: pd.DataFrame, level: float = 0.95) -> np.ndarray:
        """Per-knee percentile interval of the bootstrap refits' calibrated risks, shape (n, 2): (low, high).

        It shows how far the risk moves when the training participants are resampled (the main model's features and
        hyper-parameters held fixed); it need not contain the point risk of :meth:`predict_proba`.
        """
        if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
            raise OAKitError(f"level: {level!r}; expected a number between 0 and 1 (exclusive), e.g. 0.95")
        tail = (1 - level) / 2
        return np.quantile(self.bootstrap_risks(X), [tail, 1 - tail], axis=1).T

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted class at a 0.5 calibrated risk."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def predict_risk(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-knee risk table with provenance: keys, horizon_months, risk, model, provenance.

        The returned frame's ``attrs["provenance"]`` holds the full provenance record.
        """
        risk = self.predict_proba(X)[:, 1]
        keys = [c for c in (*KEY_COLUMNS, "visit_month") if c in X.columns]
        out = X[keys].reset_index(drop=True).copy()
        out["horizon_months"] = int(self.horizon_months)
        out["risk"] = risk
        out["model"] = self.estimator
        out["provenance"] = self.provenance_["statement"]
        out.attrs["provenance"] = dict(self.provenance_)
        return out


def _summarise_flat_refits(caught: list[warnings.WarningMessage], n_bootstrap: int) -> None:
    """One warning for the refits whose calibrator fell back to the event rate (instead of one per refit); any other
    warning caught during the refits is passed on unchanged."""
    flat = [w for w in caught if "anti-correlate" in str(w.message)]
    for w in caught:
        if w not in flat:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if flat:
        warnings.warn(
            f"n_bootstrap: {len(flat)} of {n_bootstrap} refits scored their out-of-bag knees the wrong way round and "
            "predict the event rate for every knee (a weak signal for this sample size; intervals are wide)",
            UserWarning,
            stacklevel=3,
        )


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Pooled AUC of out-of-fold scores (NaN scores are an internal error)."""
    if np.isnan(scores).any():
        raise OAKitError("inner CV: some knees got no out-of-fold score; expected every knee in one test fold")
    return roc_auc(y, scores)
