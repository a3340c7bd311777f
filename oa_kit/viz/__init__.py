"""Plotly figures (the only plotting library oa_kit uses)."""
