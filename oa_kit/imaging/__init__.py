"""Radiograph preprocessing and knee localisation shared by the models."""
