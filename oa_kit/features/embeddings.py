"""Embedding reduction: PCA of image-model embeddings (``kl_emb_*``, ``mri_emb_*``) fitted on training rows only.

The KL CNN and the MRI segmenter each export a fixed-size penultimate embedding per knee (tens to hundreds of
columns). Trees and logistic regression see them through a few principal components instead; the PCA is an
estimator so that, inside a cross-validation loop, it is refitted on each training fold and never sees the
held-out knees. Rows with any missing embedding value get missing components (LightGBM treats NaN natively).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA

from oa_kit.errors import OAKitError

#: Column prefixes of the embeddings that oa_kit image models export.
EMBEDDING_PREFIXES: tuple[str, ...] = ("kl_emb_", "mri_emb_")
#: Documented default size of each reduced embedding (components per prefix).
DEFAULT_COMPONENTS = 8


def embedding_columns(columns: Sequence[str], prefix: str) -> list[str]:
    """Return the columns that belong to the embedding ``prefix`` (e.g. ``kl_emb_000`` for ``kl_emb_``), in order."""
    return sorted(c for c in columns if str(c).startswith(prefix) and str(c)[len(prefix) :].isdigit())


def component_name(prefix: str, index: int) -> str:
    """Name of principal component ``index`` (0-based) of an embedding: ``kl_emb_`` → ``kl_emb_pc01``."""
    return f"{prefix}pc{index + 1:02d}"


class EmbeddingPCA(BaseEstimator, TransformerMixin):
    """Replace each embedding block by its first principal components, fitted on the training rows only.

    Parameters
    ----------
    prefixes : sequence of str
        Column prefixes of embedding blocks; a block is every column ``<prefix><digits>``.
    n_components : int
        Components kept per block (capped by the number of complete training rows and columns).
    seed : int
        Seed for the randomized SVD solver.

    Attributes
    ----------
    blocks_ : dict
        prefix → {"columns": [...], "mean": [...], "components": [[...]]} for each block found at fit.
    """

    def __init__(
        self, prefixes: Sequence[str] = EMBEDDING_PREFIXES, n_components: int = DEFAULT_COMPONENTS, seed: int = 0
    ) -> None:
        self.prefixes = prefixes
        self.n_components = n_components
        self.seed = seed

    def fit(self, X: pd.DataFrame, y: Any = None) -> EmbeddingPCA:
        """Fit one PCA per embedding block on the rows where that block is complete."""
        if int(self.n_components) < 1:
            raise OAKitError(f"n_components: got {self.n_components}; expected a positive integer")
        self.blocks_: dict[str, dict[str, list]] = {}
        for prefix in self.prefixes:
            cols = embedding_columns(X.columns, prefix)
            if not cols:
                continue
            block = X[cols].to_numpy(dtype=float)
            complete = block[np.isfinite(block).all(axis=1)]
            if len(complete) < 2:
                raise OAKitError(
                    f"{prefix}*: fewer than 2 training rows with a complete embedding; "
                    "expected image-model embeddings for most knees"
                )
            k = min(int(self.n_components), complete.shape[0] - 1, complete.shape[1])
            pca = PCA(n_components=k, random_state=self.seed).fit(complete)
            self.blocks_[prefix] = {"columns": cols, "mean": pca.mean_.tolist(), "components": pca.components_.tolist()}
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Drop the embedding columns and append their principal components (NaN where the embedding is incomplete)."""
        out = X.drop(columns=[c for b in self.blocks_.values() for c in b["columns"]], errors="ignore")
        reduced = {}
        for prefix, block in self.blocks_.items():
            missing = [c for c in block["columns"] if c not in X.columns]
            if missing:
                raise OAKitError(
                    f"{missing[0]}: embedding column missing at transform; expected the "
                    f"{len(block['columns'])} columns {prefix}* seen at fit"
                )
            values = X[block["columns"]].to_numpy(dtype=float, na_value=np.nan)
            scores = (values - np.asarray(block["mean"])) @ np.asarray(block["components"]).T
            scores[~np.isfinite(values).all(axis=1)] = np.nan
            reduced.update({component_name(prefix, i): scores[:, i] for i in range(scores.shape[1])})
        if not reduced:
            return out
        return pd.concat([out, pd.DataFrame(reduced, index=X.index)], axis=1)

    def to_dict(self) -> dict:
        """JSON-ready state (parameters and fitted blocks) for pickle-free persistence."""
        return {
            "prefixes": list(self.prefixes),
            "n_components": int(self.n_components),
            "seed": int(self.seed),
            "blocks": self.blocks_,
        }

    @classmethod
    def from_dict(cls, state: dict) -> EmbeddingPCA:
        """Rebuild a fitted reducer from :meth:`to_dict` output."""
        obj = cls(prefixes=tuple(state["prefixes"]), n_components=state["n_components"], seed=state["seed"])
        obj.blocks_ = state["blocks"]
        return obj
