"""Progression models: LightGBM per horizon, baselines, calibration, persistence."""
