"""Workflows: the multi-step jobs that write files (the demo, cohort labels, MRI batches, progression fit/evaluate/
predict/explain). Each returns its results as objects or tables; the CLI parses arguments and calls one of them."""
