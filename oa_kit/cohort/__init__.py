"""Tidy cohort tables, progression labels with reason codes, participant-grouped splits."""
