"""Features: image embeddings, cartilage biomarkers, per-knee feature assembly with families."""

from __future__ import annotations

from oa_kit.features.assemble import (
    FeatureAssembler,
    join_knee_tables,
    out_of_fold_predictions,
    reading_features,
)
from oa_kit.features.embeddings import EmbeddingPCA
from oa_kit.features.schema import FEATURE_FAMILIES, KEY_COLUMNS, family_of, feature_columns

__all__ = [
    "FEATURE_FAMILIES",
    "KEY_COLUMNS",
    "EmbeddingPCA",
    "FeatureAssembler",
    "family_of",
    "feature_columns",
    "join_knee_tables",
    "out_of_fold_predictions",
    "reading_features",
]
