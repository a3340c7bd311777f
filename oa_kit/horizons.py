"""Prediction horizons in months: the one definition every layer imports (labels, generator, models, reports)."""

from __future__ import annotations

#: OAI follow-up visits with radiographic readings, as horizons (V01 12 ... V10 96 months).
OAI_HORIZONS_MONTHS: tuple[int, ...] = (12, 24, 36, 48, 72, 96)
#: MOST follow-up visits with PA radiographs (V1 15, V2 30, V3 60, V5 84 months).
MOST_HORIZONS_MONTHS: tuple[int, ...] = (15, 30, 60, 84)
#: Horizons the progression models are fitted and reported at by default (``oa-kit demo``, ``oa-kit progression``).
MODEL_HORIZONS_MONTHS: tuple[int, ...] = (12, 24, 36, 48)
