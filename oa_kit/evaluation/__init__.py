"""Evaluation: metrics with bootstrap CIs, DeLong, decision curves, subgroups, model cards."""
