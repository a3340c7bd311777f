"""Plotly figures of cartilage thickness: 2D projected maps of the femoral, tibial and patellar plates."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy.stats import binned_statistic_2d

from oa_kit.features.cartilage import CartilageMeasurement, voxel_spacing
from oa_kit.features.subregions import fit_circle, sagittal_angle_deg

#: Smallest map cell (mm): about the in-plane voxel of a knee DESS, so a cell holds a few surface points.
MIN_CELL_MM = 1.0


def _panel_points(
    measurement: CartilageMeasurement,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """Per panel: horizontal coordinate, vertical coordinate and thickness (mm) of covered bone-surface points, and
    the vertical cell size in the panel's unit (mm, or degrees for the unrolled femur: about one cell along the arc)."""
    cell = _cell_mm(measurement)
    panels = {}
    fem = measurement.surfaces.get(2)
    if fem is not None and fem.covered.any():
        xyz, th = fem.world_xyz[fem.covered], fem.thickness_mm[fem.covered]
        cy, cz, radius = fit_circle(xyz[:, 1], xyz[:, 2])
        arc = float(max(cell[1], cell[2]))
        step = float(np.degrees(arc / radius)) if radius > arc else 2.0
        panels["femur"] = (xyz[:, 0], sagittal_angle_deg(xyz[:, 1], xyz[:, 2], (cy, cz)), th, step)
    tib = [s for k, s in measurement.surfaces.items() if k in (4, 5) and s.covered.any()]
    if tib:
        xyz = np.concatenate([s.world_xyz[s.covered] for s in tib])
        th = np.concatenate([s.thickness_mm[s.covered] for s in tib])
        panels["tibia"] = (xyz[:, 0], xyz[:, 1], th, cell[1])
    pat = measurement.surfaces.get(7)
    if pat is not None and pat.covered.any():
        xyz = pat.world_xyz[pat.covered]
        panels["patella"] = (xyz[:, 0], xyz[:, 2], pat.thickness_mm[pat.covered], cell[2])
    return panels


def _cell_mm(measurement: CartilageMeasurement) -> np.ndarray:
    """Map cell size (mm) along RAS x, y, z: the voxel size along the array axis nearest each, at least MIN_CELL_MM
    (a 2 mm slice gap across x would otherwise leave every other column of cells empty)."""
    axes = np.abs(np.asarray(measurement.affine, dtype=float)[:3, :3]).argmax(axis=1)
    return np.maximum(voxel_spacing(measurement.affine)[axes], MIN_CELL_MM)


def thickness_grid(
    h: np.ndarray, v: np.ndarray, thickness: np.ndarray, cell: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean thickness (mm) per map cell of size ``cell`` (horizontal, vertical): cell centres and a (V, H) grid, NaN
    where no surface point falls, so the map shows where cartilage was measured and nothing else."""
    edges = [np.arange(a.min(), a.max() + c, c) if len(a) else np.zeros(2) for a, c in zip((h, v), cell)]
    edges = [e if len(e) > 1 else np.array([e[0], e[0] + c]) for e, c in zip(edges, cell)]
    grid, he, ve, _ = binned_statistic_2d(h, v, thickness, statistic="mean", bins=edges)
    return (he[:-1] + he[1:]) / 2, (ve[:-1] + ve[1:]) / 2, grid.T


def thickness_map_figure(measurement: CartilageMeasurement, title: str = "Cartilage thickness (mm)") -> go.Figure:
    """2D projected thickness maps: femur unrolled (RAS x by angle about the condyle centre), tibia and patella
    projected; each cell is the mean thickness (mm) of the bone-surface points in it (a heatmap: light to send and
    to draw, unlike tens of thousands of markers).

    Parameters
    ----------
    measurement
        Result of :func:`oa_kit.features.cartilage.measure_cartilage`.
    title
        Figure title (say when the segmentation came from a model trained on synthetic data).
    """
    names = {"femur": "Femur (unrolled)", "tibia": "Tibia (top view)", "patella": "Patella (front view)"}
    axes = {
        "femur": ("RAS x (mm)", "angle (deg, + anterior)"),
        "tibia": ("RAS x (mm)", "RAS y (mm, anterior)"),
        "patella": ("RAS x (mm)", "RAS z (mm, superior)"),
    }
    panels = _panel_points(measurement)
    cell_x = float(_cell_mm(measurement)[0])
    fig = make_subplots(rows=1, cols=3, subplot_titles=[names[k] for k in names])
    vmax = max([float(np.percentile(p[2], 99)) for p in panels.values()] + [1.0])
    for col, key in enumerate(names, start=1):
        if key not in panels:
            continue
        h, v, th, step = panels[key]
        x, y, grid = thickness_grid(h, v, th, (cell_x, step))
        fig.add_trace(
            go.Heatmap(
                x=x,
                y=y,
                z=np.round(grid, 2),
                name=names[key],
                coloraxis="coloraxis",
                hovertemplate=f"{axes[key][0]} %{{x:.0f}}, {axes[key][1]} %{{y:.0f}}: %{{z:.2f}} mm<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text=axes[key][0], row=1, col=col)
        fig.update_yaxes(title_text=axes[key][1], row=1, col=col)
    fig.update_layout(
        title=f"{measurement.side} knee: {title}",
        coloraxis=dict(colorscale="Viridis", cmin=0.0, cmax=vmax, colorbar=dict(title="mm")),
        showlegend=False,
        height=420,
        width=1200,
    )
    return fig
