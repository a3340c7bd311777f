"""Plotly figures of cartilage thickness: 2D projected maps of the femoral, tibial and patellar plates."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from oa_kit.features.cartilage import CartilageMeasurement
from oa_kit.features.subregions import fit_circle, sagittal_angle_deg


def _panel_points(measurement: CartilageMeasurement) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per panel: horizontal coordinate, vertical coordinate and thickness (mm) of covered bone-surface points."""
    panels = {}
    fem = measurement.surfaces.get(2)
    if fem is not None and fem.covered.any():
        xyz, th = fem.world_xyz[fem.covered], fem.thickness_mm[fem.covered]
        cy, cz, _ = fit_circle(xyz[:, 1], xyz[:, 2])
        panels["femur"] = (xyz[:, 0], sagittal_angle_deg(xyz[:, 1], xyz[:, 2], (cy, cz)), th)
    tib = [s for k, s in measurement.surfaces.items() if k in (4, 5) and s.covered.any()]
    if tib:
        xyz = np.concatenate([s.world_xyz[s.covered] for s in tib])
        panels["tibia"] = (xyz[:, 0], xyz[:, 1], np.concatenate([s.thickness_mm[s.covered] for s in tib]))
    pat = measurement.surfaces.get(7)
    if pat is not None and pat.covered.any():
        xyz = pat.world_xyz[pat.covered]
        panels["patella"] = (xyz[:, 0], xyz[:, 2], pat.thickness_mm[pat.covered])
    return panels


def thickness_map_figure(
    measurement: CartilageMeasurement, title: str = "Cartilage thickness (mm)", max_points: int = 20_000, seed: int = 0
) -> go.Figure:
    """2D projected thickness maps: femur unrolled (RAS x by angle about the condyle centre), tibia and patella projected.

    Parameters
    ----------
    measurement
        Result of :func:`oa_kit.features.cartilage.measure_cartilage`.
    title
        Figure title (say when the segmentation came from a model trained on synthetic data).
    max_points
        Points drawn per panel (randomly thinned with ``seed`` to keep the figure light).
    """
    names = {"femur": "Femur (unrolled)", "tibia": "Tibia (top view)", "patella": "Patella (front view)"}
    axes = {
        "femur": ("RAS x (mm)", "angle (deg, + anterior)"),
        "tibia": ("RAS x (mm)", "RAS y (mm, anterior)"),
        "patella": ("RAS x (mm)", "RAS z (mm, superior)"),
    }
    panels = _panel_points(measurement)
    fig = make_subplots(rows=1, cols=3, subplot_titles=[names[k] for k in names])
    rng = np.random.default_rng(seed)
    vmax = max([float(np.percentile(p[2], 99)) for p in panels.values()] + [1.0])
    for col, key in enumerate(names, start=1):
        if key not in panels:
            continue
        h, v, th = panels[key]
        keep = rng.permutation(len(th))[:max_points]
        fig.add_trace(
            go.Scattergl(
                x=h[keep],
                y=v[keep],
                mode="markers",
                name=names[key],
                marker=dict(
                    size=3,
                    color=th[keep],
                    colorscale="Viridis",
                    cmin=0.0,
                    cmax=vmax,
                    showscale=col == 1,
                    colorbar=dict(title="mm"),
                ),
                hovertemplate="%{marker.color:.2f} mm<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text=axes[key][0], row=1, col=col)
        fig.update_yaxes(title_text=axes[key][1], row=1, col=col)
    fig.update_layout(title=f"{title} - {measurement.side} knee", showlegend=False, height=420, width=1200)
    return fig
