"""Plotly figures of cartilage thickness: 2D projected maps of the femoral, tibial and patellar plates."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy.stats import binned_statistic_2d

from oa_kit.features.cartilage import voxel_spacing
from oa_kit.features.subregions import fit_circle, sagittal_angle_deg

#: Smallest map cell (mm): about the in-plane voxel of a knee DESS, so a cell holds a few surface points.
MIN_CELL_MM = 1.0


#: Cartilage labels drawn in each panel (harmonised ids: femoral, medial + lateral tibial, patellar).
PANEL_LABELS = {"femur": (2,), "tibia": (4, 5), "patella": (7,)}


def _panel_points(
    labels: np.ndarray, thickness_map: np.ndarray, affine: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """Per panel: horizontal coordinate, vertical coordinate and thickness (mm) of the measured cartilage voxels
    (each carries the thickness of its nearest covered bone-surface point), and the vertical cell size in the panel's
    unit (mm, or degrees for the unrolled femur: about one cell along the arc)."""
    cell = _cell_mm(affine)
    panels = {}
    for key, plate in PANEL_LABELS.items():
        index = np.argwhere(np.isin(labels, plate) & (thickness_map > 0))
        if not len(index):
            continue
        xyz, th = nib.affines.apply_affine(affine, index), thickness_map[tuple(index.T)].astype(float)
        if key == "femur":
            cy, cz, radius = fit_circle(xyz[:, 1], xyz[:, 2])
            arc = float(max(cell[1], cell[2]))
            step = float(np.degrees(arc / radius)) if radius > arc else 2.0
            panels[key] = (xyz[:, 0], sagittal_angle_deg(xyz[:, 1], xyz[:, 2], (cy, cz)), th, step)
        else:
            vertical = 1 if key == "tibia" else 2
            panels[key] = (xyz[:, 0], xyz[:, vertical], th, float(cell[vertical]))
    return panels


def _cell_mm(affine: np.ndarray) -> np.ndarray:
    """Map cell size (mm) along RAS x, y, z: the voxel size along the array axis nearest each, at least MIN_CELL_MM
    (a 2 mm slice gap across x would otherwise leave every other column of cells empty)."""
    axes = np.abs(np.asarray(affine, dtype=float)[:3, :3]).argmax(axis=1)
    return np.maximum(voxel_spacing(affine)[axes], MIN_CELL_MM)


def thickness_grid(
    h: np.ndarray, v: np.ndarray, thickness: np.ndarray, cell: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean thickness (mm) per map cell of size ``cell`` (horizontal, vertical): cell centres and a (V, H) grid, NaN
    where no surface point falls, so the map shows where cartilage was measured and nothing else."""
    edges = [np.arange(a.min(), a.max() + c, c) if len(a) else np.zeros(2) for a, c in zip((h, v), cell)]
    edges = [e if len(e) > 1 else np.array([e[0], e[0] + c]) for e, c in zip(edges, cell)]
    grid, he, ve, _ = binned_statistic_2d(h, v, thickness, statistic="mean", bins=edges)
    return (he[:-1] + he[1:]) / 2, (ve[:-1] + ve[1:]) / 2, grid.T


def thickness_map_figure(
    labels: np.ndarray,
    thickness_map: np.ndarray,
    affine: np.ndarray,
    side: str,
    title: str = "Cartilage thickness (mm)",
) -> go.Figure:
    """2D projected thickness maps: femur unrolled (RAS x by angle about the condyle centre), tibia and patella
    projected; each cell is the mean thickness (mm) of the cartilage voxels in it (a heatmap: light to send and to
    draw, unlike tens of thousands of markers).

    It reads only what ``oa-kit mri segment`` writes (labels and thickness NIfTIs), so a knee measured now and one
    read back from a results folder are drawn the same way.

    Parameters
    ----------
    labels
        Harmonised label map (X, Y, Z).
    thickness_map
        Thickness (mm) at every cartilage voxel, 0 elsewhere (:attr:`CartilageMeasurement.thickness_map`).
    affine
        4x4 voxel -> RAS mm matrix of both maps.
    side
        ``"R"`` or ``"L"``, named in the title.
    title
        Figure title (say when the segmentation came from a model trained on synthetic data).
    """
    names = {"femur": "Femur (unrolled)", "tibia": "Tibia (top view)", "patella": "Patella (front view)"}
    axes = {
        "femur": ("RAS x (mm)", "angle (deg, + anterior)"),
        "tibia": ("RAS x (mm)", "RAS y (mm, anterior)"),
        "patella": ("RAS x (mm)", "RAS z (mm, superior)"),
    }
    panels = _panel_points(labels, thickness_map, affine)
    cell_x = float(_cell_mm(affine)[0])
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
        title=f"{side} knee: {title}",
        coloraxis=dict(colorscale="Viridis", cmin=0.0, cmax=vmax, colorbar=dict(title="mm")),
        showlegend=False,
        height=420,
        width=1200,
    )
    return fig
