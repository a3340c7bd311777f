"""The synthetic OAI-like cohort generator with known ground truth (writes real file formats)."""
