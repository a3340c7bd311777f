"""Per-knee feature assembly: join clinical, radiograph (KL-CNN) and MRI tables and encode them with feature families.

Inputs are DataFrames keyed by ``participant_id`` (str), ``side`` ("R"/"L") and optionally ``visit_month``:
the clinical baseline table (age, sex, bmi, injury, surgery, womac_*, kl, jsn/jsw, site), the KL-CNN table
(``kl_p0..kl_p4``, ``kl_emb_000..``) and the MRI table (regional thickness/volume, ``mri_emb_000..``).

Every output feature carries a family (``clinical`` / ``radiograph`` / ``mri``), exposed as
``FeatureAssembler.feature_families_``, so explanations can be summed per family. Documented behaviour on bad input:

- a required column that is missing → :class:`~oa_kit.errors.OAKitError` naming it;
- a feature constant over the training rows → dropped at fit (listed in ``dropped_constant_``, with a warning);
  all features constant → error;
- a row with more than ``max_missing_fraction`` of its features missing → error naming the knee
  (``on_nan_heavy="error"``, the default) or kept as NaN for LightGBM / median imputation (``"keep"``);
- text columns (sex, site) → one indicator per level seen at fit (one column for two levels); levels unseen at
  fit encode as all-zero; more than ``max_levels`` levels → error.
- ``race`` and outcome/truth columns are never used unless named explicitly in ``columns``.

Compact derived features (``derived="add"`` or ``"replace"``, :class:`DerivedFeatures`, fitted on training rows
only): the minimum JSW of each compartment as a residual (SD units) from its expected value given sex and the JSN
grade, the smaller of the two (``jsw_min_resid_z``: narrowing beyond what the grade says, in whichever compartment is
worse), and the cartilage thickness loss of each compartment's weight-bearing regions relative to the sex-specific
training median (``thickness_loss_{medial,lateral,max}``). ``"replace"`` also drops the raw inputs they summarise
(the Duryea per-location JSW profile and the regional MRI measurements), leaving ~900-knee models few, informative
columns; MRI embeddings and KL-CNN outputs are kept.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import GroupKFold

from oa_kit.errors import OAKitError
from oa_kit.features.embeddings import DEFAULT_COMPONENTS, EMBEDDING_PREFIXES, EmbeddingPCA
from oa_kit.features.schema import (
    KEY_COLUMNS,
    NOT_FEATURE_SUFFIXES,
    family_of,
    feature_columns,
    is_feature_column,
    known_family,
)


def _check_keys(table: pd.DataFrame, name: str, visit_month: int | None) -> pd.DataFrame:
    """Normalise a per-knee table's keys (``ID``/``id``→participant_id, str ids, R/L sides) and keep one visit."""
    table = table.copy()
    for alias in ("ID", "id"):
        if "participant_id" not in table.columns and alias in table.columns:
            table = table.rename(columns={alias: "participant_id"})
    for key in KEY_COLUMNS:
        if key not in table.columns:
            raise OAKitError(f"{name}.{key}: column missing; expected per-knee tables keyed by participant_id and side")
    table["participant_id"] = table["participant_id"].astype(str)
    bad = ~table["side"].isin(["R", "L"])
    if bad.any():
        raise OAKitError(f"{name}.side: value {table['side'][bad].iloc[0]!r}; expected 'R' or 'L'")
    if visit_month is not None and "visit_month" in table.columns:
        table = table[table["visit_month"] == visit_month].drop(columns="visit_month")
    dup = table.duplicated(list(KEY_COLUMNS))
    if dup.any():
        row = table[dup].iloc[0]
        raise OAKitError(
            f"{name}: knee {row['participant_id']}/{row['side']} appears twice; expected one row per knee (and visit)"
        )
    return table


def _family_prefixes(columns: Sequence[str], family: str) -> dict[str, str]:
    """Renames that make a column's name carry its source table's family (``xr_`` / ``mri_`` prefix) when
    :func:`family_of` would otherwise read it as another family, so families stay recoverable from names alone."""
    prefix = {"radiograph": "xr_", "mri": "mri_"}[family]
    return {
        c: f"{prefix}{c}"
        for c in columns
        if c not in KEY_COLUMNS and c != "visit_month" and known_family(c) != family and is_feature_column(c)
    }


def join_knee_tables(
    clinical: pd.DataFrame,
    radiograph: pd.DataFrame | None = None,
    mri: pd.DataFrame | None = None,
    visit_month: int | None = 0,
) -> pd.DataFrame:
    """Left-join the KL-CNN and MRI tables onto the clinical table per knee (one visit, baseline by default).

    Parameters
    ----------
    clinical : DataFrame
        One row per knee: participant_id, side, clinical columns (and kl, jsn/jsw readings).
    radiograph, mri : DataFrame, optional
        KL-CNN output (``kl_p0..4``/``p0..4``, ``kl_emb_*``) and MRI biomarkers (``mri_emb_*``) per knee.
    visit_month : int or None
        Keep only rows of this visit where a table has ``visit_month`` (months; None keeps all).

    Returns
    -------
    DataFrame
        One row per clinical knee; knees without images get NaN image columns. A KL-CNN or MRI column whose
        name would not be read as its table's family (e.g. ``covered_area_mm2_x`` → clinical) gets an ``xr_`` /
        ``mri_`` prefix, so :func:`family_of` assigns every feature to the table it came from.
    """
    merged = _check_keys(clinical, "clinical", visit_month)
    for name, table in (("radiograph", radiograph), ("mri", mri)):
        if table is None:
            continue
        table = _check_keys(table, name, visit_month)
        if name == "mri":
            table = _mask_failed_qc(table)
        if name == "radiograph":
            table = table.rename(columns={f"p{k}": f"kl_p{k}" for k in range(5) if f"kl_p{k}" not in table})
        table = table.rename(columns=_family_prefixes(table.columns, name))
        clash = (set(table.columns) & set(merged.columns)) - set(KEY_COLUMNS)
        if clash:
            raise OAKitError(
                f"{name}.{sorted(clash)[0]}: column also present in another table; expected distinct names"
            )
        merged = merged.merge(table, on=list(KEY_COLUMNS), how="left", validate="one_to_one")
    return merged.reset_index(drop=True)


def _mask_failed_qc(mri: pd.DataFrame) -> pd.DataFrame:
    """MRI table with every feature of a knee that failed QC (``qc_usable`` False) set to NaN: its biomarkers are
    not usable, so the models treat that knee as having no MRI rather than learning from a wrong segmentation."""
    if "qc_usable" not in mri:
        return mri
    failed = ~mri["qc_usable"].astype("boolean").fillna(True).to_numpy(dtype=bool)
    if not failed.any():
        return mri
    features = [c for c in mri.columns if c not in KEY_COLUMNS and is_feature_column(c)]
    mri = mri.copy()
    mri.loc[failed, features] = np.nan
    return mri


#: Radiograph reading columns kept by :func:`reading_features` (prefixes of the tidy readings table).
READING_FEATURE_PREFIXES: tuple[str, ...] = ("kl", "jsn_", "osteophyte", "jsw_")


def reading_features(readings: pd.DataFrame, visit_month: int = 0) -> pd.DataFrame:
    """Per-knee radiograph reading features (KL, JSN, osteophytes, JSW in mm) at one visit from the tidy readings table.

    Only valid readings count (``kl_status == "ok"`` where that column exists); the KL grade is kept as ``kl``.
    Status, READPRJ and count columns are dropped. One row per knee (participant_id, side).
    """
    table = _check_keys(
        readings[readings["visit_month"] == visit_month] if "visit_month" in readings.columns else readings,
        "readings",
        None,
    )
    if "kl_status" in table.columns:
        table = table[table["kl_status"] == "ok"]
    keep = [
        c
        for c in table.columns
        if c in KEY_COLUMNS
        or (str(c).startswith(READING_FEATURE_PREFIXES) and not str(c).endswith(NOT_FEATURE_SUFFIXES))
    ]
    return table[keep].reset_index(drop=True)


def baseline_features(clinical: pd.DataFrame, readings: pd.DataFrame, visit_month: int = 0) -> pd.DataFrame:
    """One row per knee of the clinical table: its clinical factors and its readings at ``visit_month`` (KL, JSN,
    osteophytes, JSW; NaN where the knee has no valid reading) — the clinical part of every feature table."""
    return clinical.merge(reading_features(readings, visit_month), on=list(KEY_COLUMNS), how="left")


#: Weight-bearing cartilage regions summarised per compartment (femoral central + tibial), by column-name stem.
WEIGHT_BEARING_REGIONS: dict[str, tuple[str, ...]] = {
    "medial": ("femoral_medial_central", "tibial_medial"),
    "lateral": ("femoral_lateral_central", "tibial_lateral"),
}
#: Derived feature → known direction of its effect on progression risk (LightGBM monotone constraint).
DERIVED_DIRECTIONS: dict[str, int] = {
    "jsw_medial_resid_z": -1,
    "jsw_lateral_resid_z": -1,
    "jsw_min_resid_z": -1,
    "thickness_loss_medial": 1,
    "thickness_loss_lateral": 1,
    "thickness_loss_max": 1,
    "osteophyte_resid_z": 1,
}
#: Marginal osteophyte sites (femoral/tibial x medial/lateral): reading grade ``osteophyte_<m>`` and measured size.
OSTEOPHYTE_MARGINS: tuple[str, ...] = ("fm", "fl", "tm", "tl")
#: Fewest training knees with a grade for its own reference size (else the grade's value on a line over grades).
MIN_KNEES_PER_GRADE = 5
DERIVED_MODES: tuple[str, ...] = ("none", "add", "replace")


def _female(raw: pd.DataFrame) -> np.ndarray | None:
    """1.0 for female, 0.0 for male, NaN if unknown, from a ``sex`` column ("F"/"M", or numeric 2/1); None if absent."""
    if "sex" not in raw.columns:
        return None
    text = raw["sex"].astype("string").str.upper().str.strip()
    return np.select([text.isin(["F", "FEMALE", "2"]), text.isin(["M", "MALE", "1"])], [1.0, 0.0], np.nan)


def _min_jsw(raw: pd.DataFrame, compartment: str) -> tuple[np.ndarray | None, list[str]]:
    """Minimum JSW (mm) of a compartment: ``jsw_<c>_mm`` or the minimum over the Duryea profile ``jsw_<c>_x*_mm``."""
    profile = [c for c in raw.columns if str(c).startswith(f"jsw_{compartment}_x") and str(c).endswith("_mm")]
    cols = [f"jsw_{compartment}_mm"] if f"jsw_{compartment}_mm" in raw.columns else profile
    if not cols:
        return None, []
    values = raw[cols].to_numpy(dtype=float, na_value=np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        return np.nanmin(values, axis=1), sorted(set(cols) | set(profile))


def _osteophyte_size_column(columns: Sequence[str], margin: str) -> str | None:
    """Measured size of a margin's osteophyte: spur area ``osteophyte_area_mm2_<m>`` or else length ``osteophyte_mm_<m>``."""
    return next((c for c in (f"osteophyte_area_mm2_{margin}", f"osteophyte_mm_{margin}") if c in columns), None)


def _log_size(X: pd.DataFrame, column: str) -> np.ndarray:
    """``log(1 + size)`` of a measured osteophyte size column (negative spur areas count as 0), NaN where missing."""
    return np.log1p(X[column].to_numpy(dtype=float, na_value=np.nan).clip(min=0.0))


def _thickness_columns(columns: Sequence[str], region: str) -> list[str]:
    """Mean-thickness column of a region: ``thickness_mm_mean_<region>`` (segmenter) or ``thickness_mm_<region>``."""
    return [c for c in (f"thickness_mm_mean_{region}", f"thickness_mm_{region}") if c in columns][:1]


class DerivedFeatures(BaseEstimator, TransformerMixin):
    """Compact JSW and cartilage-thickness summaries with reference values fitted on the training rows only.

    JSW residuals: per compartment, least squares ``min JSW (mm) ~ 1 + female + JSN grade`` on the training knees;
    the feature is the residual divided by the residual SD. Thickness loss: ``1 − thickness / median`` with the median
    per sex over the training knees, averaged over the compartment's weight-bearing regions. Osteophyte size beyond
    grade: per margin, ``log(1 + measured size)`` minus its training mean for the knee's OARSI grade, over the pooled
    residual SD, averaged over the margins measured (a large spur for its grade raises the risk). A feature whose
    inputs are absent is not produced.

    Attributes
    ----------
    jsw_fits_ : dict
        compartment → {"coef": [intercept, female, jsn], "sd": residual SD (mm)}.
    thickness_medians_ : dict
        column → {"female": mm, "male": mm, "all": mm}.
    osteophyte_fits_ : dict
        size column → {"grade_column": str, "means": [log size per OARSI grade 0-3], "sd": pooled residual SD}.
    consumed_ : list of str
        Raw columns these features summarise (dropped by ``FeatureAssembler(derived="replace")``).
    feature_names_out_ : list of str
    """

    def fit(self, X: pd.DataFrame, y: Any = None) -> DerivedFeatures:
        """Fit the JSW norms and the sex-specific thickness medians on training rows."""
        female = _female(X)
        self.jsw_fits_: dict[str, dict] = {}
        consumed: set[str] = set()
        for comp in WEIGHT_BEARING_REGIONS:
            jsw, cols = _min_jsw(X, comp)
            if jsw is None:
                continue
            design = self._design(X, comp, female)
            ok = np.isfinite(jsw) & np.isfinite(design).all(axis=1)
            if ok.sum() < design.shape[1] + 2:
                continue
            coef = np.linalg.lstsq(design[ok], jsw[ok], rcond=None)[0]
            sd = float(np.std(jsw[ok] - design[ok] @ coef))
            self.jsw_fits_[comp] = {"coef": coef.tolist(), "sd": sd if sd > 0 else 1.0}
            consumed.update(cols)
        self.thickness_medians_: dict[str, dict[str, float]] = {}
        for regions in WEIGHT_BEARING_REGIONS.values():
            for col in (c for r in regions for c in _thickness_columns(X.columns, r)):
                values = X[col].to_numpy(dtype=float, na_value=np.nan)
                if not np.isfinite(values).any():
                    continue
                med = {"all": float(np.nanmedian(values))}
                for name, flag in (("female", 1.0), ("male", 0.0)):
                    part = values[female == flag] if female is not None else values[:0]
                    med[name] = float(np.nanmedian(part)) if np.isfinite(part).any() else med["all"]
                self.thickness_medians_[col] = med
        self.osteophyte_fits_ = self._fit_osteophytes(X)
        if self.osteophyte_fits_:
            consumed.update(c for c in X.columns if str(c).startswith(("osteophyte_mm_", "osteophyte_area_mm2_")))
        consumed.update(c for c in X.columns if known_family(c) == "mri" and not str(c).startswith("mri_emb_"))
        self.consumed_ = sorted(consumed)
        self.feature_names_out_ = list(self.transform(X.iloc[:1]).columns)
        return self

    @staticmethod
    def _fit_osteophytes(X: pd.DataFrame) -> dict[str, dict]:
        """Per margin with a grade and a measured size: mean log size per OARSI grade and the pooled residual SD."""
        fits = {}
        for margin in OSTEOPHYTE_MARGINS:
            size_col, grade_col = _osteophyte_size_column(X.columns, margin), f"osteophyte_{margin}"
            if size_col is None or grade_col not in X.columns:
                continue
            size = _log_size(X, size_col)
            grade = X[grade_col].to_numpy(dtype=float, na_value=np.nan)
            ok = np.isfinite(size) & np.isin(grade, [0, 1, 2, 3])
            if len(np.unique(grade[ok])) < 2:
                continue
            line = np.polyfit(grade[ok], size[ok], 1)
            counts = [int((grade[ok] == g).sum()) for g in range(4)]
            means = [
                float(size[ok][grade[ok] == g].mean())
                if counts[g] >= MIN_KNEES_PER_GRADE
                else float(np.polyval(line, g))
                for g in range(4)
            ]
            sd = float(np.std(size[ok] - np.asarray(means)[grade[ok].astype(int)]))
            fits[size_col] = {"grade_column": grade_col, "means": means, "sd": sd if sd > 0 else 1.0}
        return fits

    def _osteophyte_z(self, X: pd.DataFrame) -> np.ndarray | None:
        """Mean over margins of the osteophyte size residual z (NaN where no margin is measured and graded)."""
        parts = []
        for size_col, fit in self.osteophyte_fits_.items():
            if size_col not in X.columns or fit["grade_column"] not in X.columns:
                raise OAKitError(
                    f"{size_col}: osteophyte size or grade column missing at transform; expected those seen at fit"
                )
            size = _log_size(X, size_col)
            grade = X[fit["grade_column"]].to_numpy(dtype=float, na_value=np.nan)
            graded = np.isin(grade, [0, 1, 2, 3])
            ref = np.where(graded, np.asarray(fit["means"])[np.where(graded, grade, 0).astype(int)], np.nan)
            parts.append((size - ref) / fit["sd"])
        return np.nanmean(np.column_stack(parts), axis=1) if parts else None

    @staticmethod
    def _design(X: pd.DataFrame, comp: str, female: np.ndarray | None) -> np.ndarray:
        """Design matrix [1, female, JSN grade] (a zero column for an absent input)."""
        n = len(X)
        jsn = X[f"jsn_{comp}"].to_numpy(dtype=float, na_value=np.nan) if f"jsn_{comp}" in X.columns else np.zeros(n)
        return np.column_stack([np.ones(n), female if female is not None else np.zeros(n), jsn])

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The derived features for ``X`` (same index), NaN where an input is missing."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN in nanmin/nanmean/nanmax
            return pd.DataFrame(self._derive(X), index=X.index)

    def _derive(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """JSW residuals and their minimum, regional thickness losses and their maximum, and the osteophyte size beyond
        grade (only those whose inputs exist)."""
        female = _female(X)
        out: dict[str, np.ndarray] = {}
        for comp, fit in self.jsw_fits_.items():
            jsw, _ = _min_jsw(X, comp)
            if jsw is None:
                raise OAKitError(f"jsw_{comp}_mm: JSW columns missing at transform; expected those seen at fit")
            out[f"jsw_{comp}_resid_z"] = (jsw - self._design(X, comp, female) @ np.asarray(fit["coef"])) / fit["sd"]
        if len(out) == 2:
            out["jsw_min_resid_z"] = np.nanmin(np.column_stack(list(out.values())), axis=1)
        losses = {}
        for comp, regions in WEIGHT_BEARING_REGIONS.items():
            parts = [
                self._loss(X, col, female)
                for r in regions
                for col in _thickness_columns(X.columns, r)
                if col in self.thickness_medians_
            ]
            if parts:
                losses[f"thickness_loss_{comp}"] = np.nanmean(np.column_stack(parts), axis=1)
        out.update(losses)
        if len(losses) == 2:
            out["thickness_loss_max"] = np.nanmax(np.column_stack(list(losses.values())), axis=1)
        osteophyte = self._osteophyte_z(X)
        if osteophyte is not None:
            out["osteophyte_resid_z"] = osteophyte
        return out

    def _loss(self, X: pd.DataFrame, col: str, female: np.ndarray | None) -> np.ndarray:
        """Relative thickness loss ``1 − thickness / sex-specific median`` of one region column."""
        med = self.thickness_medians_[col]
        ref = np.full(len(X), med["all"])
        if female is not None:
            ref = np.where(female == 1.0, med["female"], np.where(female == 0.0, med["male"], med["all"]))
        return 1.0 - X[col].to_numpy(dtype=float, na_value=np.nan) / ref

    def to_dict(self) -> dict:
        """JSON-ready fitted state."""
        return {
            "jsw_fits": self.jsw_fits_,
            "thickness_medians": self.thickness_medians_,
            "osteophyte_fits": self.osteophyte_fits_,
            "consumed": self.consumed_,
            "feature_names_out": self.feature_names_out_,
        }

    @classmethod
    def from_dict(cls, state: dict) -> DerivedFeatures:
        """Rebuild from :meth:`to_dict` output."""
        obj = cls()
        obj.jsw_fits_, obj.thickness_medians_ = dict(state["jsw_fits"]), dict(state["thickness_medians"])
        obj.osteophyte_fits_ = dict(state.get("osteophyte_fits", {}))  # models saved before it have none
        obj.consumed_, obj.feature_names_out_ = list(state["consumed"]), list(state["feature_names_out"])
        return obj


def _level_text(values: pd.Series) -> pd.Series:
    """Category labels of a column as text: numbers without a trailing ``.0`` (KL 2.0 -> "2"), text as it is."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.map(lambda v: f"{v:g}" if pd.notna(v) else None).astype("string")
    return values.astype("string")


class FeatureAssembler(BaseEstimator, TransformerMixin):
    """Turn a joined per-knee table into a numeric feature matrix with a family per feature.

    Parameters
    ----------
    columns : sequence of str, optional
        Raw columns to use (each required at fit and transform). Default: every column except keys, outcomes,
        generator truth and ``race``.
    families : mapping, optional
        Overrides of :func:`family_of` for raw column names.
    categorical : sequence of str
        Numeric columns to encode as categories (one indicator per level seen at fit, like text columns), e.g.
        ``("kl",)``: progression risk is not monotone in the KL grade.
    n_components : int
        Principal components kept per embedding block (``kl_emb_*``, ``mri_emb_*``), fitted on training rows only.
    max_missing_fraction : float
        A row with a larger share of missing features is "NaN-heavy".
    on_nan_heavy : {"error", "keep"}
        Raise on NaN-heavy rows, or keep them (LightGBM handles NaN; logistic models impute medians).
    max_levels : int
        Most levels accepted for a text column.
    derived : {"none", "add", "replace"}
        Compact derived features (:class:`DerivedFeatures`, fitted on the training rows): none, added to the raw
        columns, or replacing the raw JSW profile and regional MRI measurements they summarise.
    seed : int
        Seed for the embedding PCA.

    Attributes
    ----------
    feature_names_out_ : list of str
    feature_families_ : dict
        Output feature → family (``clinical``, ``radiograph`` or ``mri``).
    dropped_constant_ : list of str
        Features constant on the training rows (dropped).
    """

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        families: Mapping[str, str] | None = None,
        categorical: Sequence[str] = (),
        n_components: int = DEFAULT_COMPONENTS,
        max_missing_fraction: float = 0.5,
        on_nan_heavy: str = "error",
        max_levels: int = 12,
        derived: str = "none",
        seed: int = 0,
    ) -> None:
        self.columns = columns
        self.families = families
        self.categorical = categorical
        self.n_components = n_components
        self.max_missing_fraction = max_missing_fraction
        self.on_nan_heavy = on_nan_heavy
        self.max_levels = max_levels
        self.derived = derived
        self.seed = seed

    # -- helpers -----------------------------------------------------------------------------------------
    def _family(self, raw: str) -> str:
        """Family of a raw column, honouring the ``families`` overrides."""
        return family_of(raw, self.families)

    def _select(self, X: pd.DataFrame) -> pd.DataFrame:
        """Check the input is a DataFrame holding the raw columns and return them."""
        if not isinstance(X, pd.DataFrame):
            raise OAKitError(f"X: got {type(X).__name__}; expected a pandas DataFrame of per-knee columns")
        cols = list(self.columns) if self.columns is not None else self.raw_columns_
        missing = [c for c in cols if c not in X.columns]
        if missing:
            raise OAKitError(
                f"{missing[0]}: feature column missing; expected all of {len(cols)} feature columns "
                f"({', '.join(map(str, cols[:6]))}{'...' if len(cols) > 6 else ''})"
            )
        return X[cols]

    def _with_derived(self, raw: pd.DataFrame) -> pd.DataFrame:
        """Raw columns plus the fitted derived features (minus the summarised inputs for ``derived="replace"``)."""
        if self.derived_ is None:
            return raw
        drop = self.derived_.consumed_ if self.derived == "replace" else []
        return pd.concat([raw.drop(columns=drop), self.derived_.transform(raw)], axis=1)

    def _encode(self, X: pd.DataFrame) -> pd.DataFrame:
        """Numeric encoding of the raw columns (text → indicators with the levels seen at fit)."""
        numeric = [c for c in X.columns if c not in self.levels_]
        try:
            values = X[numeric].to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError):
            for col in numeric:
                try:
                    pd.to_numeric(X[col], errors="raise")
                except (TypeError, ValueError) as exc:
                    raise OAKitError(f"{col}: non-numeric values; expected numbers ({exc})") from None
            raise
        parts: dict[str, np.ndarray] = dict(zip(numeric, values.T))
        for col, levels in self.levels_.items():
            text = _level_text(X[col])
            missing = text.isna().to_numpy()
            text = text.fillna("").to_numpy(dtype=object)
            for level in levels[1:] if len(levels) == 2 else levels:
                parts[f"{col}_{level}"] = np.where(missing, np.nan, (text == level).astype(float))
        order = [
            name
            for col in X.columns
            for name in (
                [col]
                if col not in self.levels_
                else [
                    f"{col}_{lv}"
                    for lv in (self.levels_[col][1:] if len(self.levels_[col]) == 2 else self.levels_[col])
                ]
            )
        ]
        return pd.DataFrame({name: parts[name] for name in order}, index=X.index)

    def _check_nan_rows(self, features: pd.DataFrame, keys: pd.DataFrame | None) -> None:
        """Raise on NaN-heavy rows when ``on_nan_heavy == "error"``."""
        if self.on_nan_heavy not in ("error", "keep"):
            raise OAKitError(f"on_nan_heavy: {self.on_nan_heavy!r}; expected 'error' or 'keep'")
        frac = features.isna().mean(axis=1)
        heavy = frac > self.max_missing_fraction
        if heavy.any() and self.on_nan_heavy == "error":
            pos = int(np.flatnonzero(heavy.to_numpy())[0])
            who = (
                f"knee {keys.iloc[pos]['participant_id']}/{keys.iloc[pos]['side']}"
                if keys is not None
                else f"row {features.index[pos]!r}"
            )
            raise OAKitError(
                f"{who}: {frac.iloc[pos]:.0%} of features missing ({int(heavy.sum())} such rows); "
                f"expected at most {self.max_missing_fraction:.0%}, or on_nan_heavy='keep'"
            )

    # -- estimator API -----------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any = None) -> FeatureAssembler:
        """Learn text levels, embedding PCA and constant features from the training rows."""
        if not isinstance(X, pd.DataFrame) or len(X) == 0:
            raise OAKitError("X: empty or not a DataFrame; expected per-knee rows")
        if self.derived not in DERIVED_MODES:
            raise OAKitError(f"derived: {self.derived!r}; expected one of {DERIVED_MODES}")
        self.raw_columns_ = (
            list(self.columns) if self.columns is not None else feature_columns(X.columns, self.families)
        )
        raw = self._select(X)
        self.derived_ = DerivedFeatures().fit(raw) if self.derived != "none" else None
        raw = self._with_derived(raw)
        self.levels_: dict[str, list[str]] = {}
        for col in raw.columns:
            numeric = pd.api.types.is_numeric_dtype(raw[col]) or pd.api.types.is_bool_dtype(raw[col])
            if col in set(self.categorical) or not numeric:
                levels = sorted(_level_text(raw[col]).dropna().unique().tolist())
                if len(levels) > self.max_levels:
                    raise OAKitError(
                        f"{col}: {len(levels)} text levels; expected at most {self.max_levels} "
                        "(encode it numerically or leave it out)"
                    )
                self.levels_[col] = levels
        self.pca_ = EmbeddingPCA(EMBEDDING_PREFIXES, self.n_components, self.seed).fit(raw)
        features = self._encode(self.pca_.transform(raw))
        self._check_nan_rows(features, X[list(KEY_COLUMNS)] if set(KEY_COLUMNS) <= set(X.columns) else None)
        constant = [c for c in features.columns if features[c].nunique(dropna=True) <= 1]
        if len(constant) == features.shape[1]:
            raise OAKitError(f"X: all {len(constant)} features are constant on the training rows; expected variation")
        if constant:
            warnings.warn(
                f"FeatureAssembler: dropping {len(constant)} constant feature(s): {', '.join(constant[:5])}",
                UserWarning,
                stacklevel=2,
            )
        self.dropped_constant_ = constant
        self.feature_names_out_ = [c for c in features.columns if c not in constant]
        self.feature_families_ = {c: self._family(self._source(c)) for c in self.feature_names_out_}
        return self

    def _source(self, feature: str) -> str:
        """Raw column (or embedding prefix) an output feature came from."""
        for prefix in self.pca_.blocks_:
            if feature.startswith(prefix + "pc"):
                return prefix
        for col, levels in self.levels_.items():
            if any(feature == f"{col}_{lv}" for lv in levels):
                return col
        return feature

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Encode ``X`` with the fitted state; returns float features in ``feature_names_out_`` order, same index."""
        raw = self._with_derived(self._select(X))
        features = self._encode(self.pca_.transform(raw))
        self._check_nan_rows(
            features[self.feature_names_out_], X[list(KEY_COLUMNS)] if set(KEY_COLUMNS) <= set(X.columns) else None
        )
        return features[self.feature_names_out_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output feature names (sklearn convention)."""
        return np.asarray(self.feature_names_out_, dtype=object)

    def to_dict(self) -> dict:
        """JSON-ready fitted state for pickle-free persistence."""
        return {
            "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()},
            "raw_columns": self.raw_columns_,
            "levels": self.levels_,
            "pca": self.pca_.to_dict(),
            "dropped_constant": self.dropped_constant_,
            "feature_names_out": self.feature_names_out_,
            "feature_families": self.feature_families_,
            "derived": self.derived_.to_dict() if self.derived_ is not None else None,
        }

    @classmethod
    def from_dict(cls, state: dict) -> FeatureAssembler:
        """Rebuild a fitted assembler from :meth:`to_dict` output."""
        obj = cls(**state["params"])
        obj.raw_columns_ = list(state["raw_columns"])
        obj.levels_ = {k: list(v) for k, v in state["levels"].items()}
        obj.pca_ = EmbeddingPCA.from_dict(state["pca"])
        obj.dropped_constant_ = list(state["dropped_constant"])
        obj.feature_names_out_ = list(state["feature_names_out"])
        obj.feature_families_ = dict(state["feature_families"])
        obj.derived_ = DerivedFeatures.from_dict(state["derived"]) if state.get("derived") else None
        return obj


def out_of_fold_predictions(
    fit_predict: Callable[[pd.DataFrame, pd.DataFrame], Any],
    table: pd.DataFrame,
    group_column: str = "participant_id",
    n_splits: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Out-of-fold image features: fit an image model on participant-grouped train folds, predict the held-out fold.

    No knee's features come from a model that saw that knee (or the participant's other knee) in training.

    Parameters
    ----------
    fit_predict : callable
        ``fit_predict(train_rows, test_rows)`` fits on ``train_rows`` and returns predictions for ``test_rows``:
        a DataFrame (or array) with one row per test row, in order.
    table : DataFrame
        Rows to predict (e.g. knees with image paths), with ``group_column``.
    group_column : str
        Participant identifier; both knees of a participant stay in one fold.
    n_splits : int
        Number of folds.
    seed : int
        Seed for the fold shuffle.

    Returns
    -------
    DataFrame
        Predictions in ``table``'s row order and index, plus an ``oof_fold`` column.
    """
    if group_column not in table.columns:
        raise OAKitError(f"{group_column}: column missing; expected participant ids to group folds")
    groups = table[group_column].astype(str).to_numpy()
    if len(np.unique(groups)) < n_splits:
        raise OAKitError(
            f"{group_column}: {len(np.unique(groups))} participants; expected at least n_splits={n_splits}"
        )
    splitter = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    pieces = []
    for fold, (train, test) in enumerate(splitter.split(table, groups=groups)):
        assert not set(groups[train]) & set(groups[test]), "participant in both train and test"
        pred = fit_predict(table.iloc[train], table.iloc[test])
        pred = (
            pd.DataFrame(pred).reset_index(drop=True)
            if not isinstance(pred, pd.DataFrame)
            else pred.reset_index(drop=True)
        )
        if len(pred) != len(test):
            raise OAKitError(
                f"fit_predict: returned {len(pred)} rows for {len(test)} held-out rows; expected one per row"
            )
        pred.index = table.index[test]
        pred["oof_fold"] = fold
        pieces.append(pred)
    return pd.concat(pieces).loc[table.index]
