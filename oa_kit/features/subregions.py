"""Cartilage subregions (docs/DESIGN.md "Cartilage subregions"): femoral M/L x A/C/P by condyle angle, tibial M/L, patellar."""

from __future__ import annotations

import numpy as np

from oa_kit.io.labels import FEMORAL_CENTRAL_HALF_ANGLE_DEG, SUBREGIONS

#: Subregion index used in integer subregion maps: 0 = none, i + 1 = ``SUBREGIONS[i]``.
SUBREGION_INDEX = {name: i + 1 for i, name in enumerate(SUBREGIONS)}


def fit_circle(y: np.ndarray, z: np.ndarray) -> tuple[float, float, float]:
    """Least-squares (Kasa) circle through points in a plane; returns centre (y, z) and radius, all mm."""
    if len(y) < 3:
        return float(np.mean(y)) if len(y) else 0.0, float(np.mean(z)) if len(z) else 0.0, 0.0
    a = np.column_stack([2 * y, 2 * z, np.ones_like(y)])
    b = y**2 + z**2
    (cy, cz, c), *_ = np.linalg.lstsq(a, b, rcond=None)
    return float(cy), float(cz), float(np.sqrt(max(c + cy**2 + cz**2, 0.0)))


def is_medial(x: np.ndarray, split_x: float, side: str) -> np.ndarray:
    """True where world x (RAS mm) lies in the medial compartment: right knee medial at -x, left knee at +x."""
    return x < split_x if side == "R" else x > split_x


def sagittal_angle_deg(y: np.ndarray, z: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """Angle about a condyle centre in the sagittal plane, degrees: 0 = inferior (-z), positive toward anterior (+y)."""
    return np.degrees(np.arctan2(y - centre[0], -(z - centre[1])))


class FemoralSubregions:
    """The femoral subdivision fitted to one knee: LR split and one condyle centre per compartment.

    Parameters
    ----------
    side
        ``"R"`` or ``"L"`` (decides which side of the split is medial).
    central_half_angle_deg
        Half-width of the central (weight-bearing) sector.
    """

    def __init__(self, side: str, central_half_angle_deg: float = FEMORAL_CENTRAL_HALF_ANGLE_DEG) -> None:
        self.side = side
        self.central_half_angle_deg = central_half_angle_deg

    def fit(self, cartilage_xyz: np.ndarray, interface_xyz: np.ndarray) -> FemoralSubregions:
        """Fit from femoral cartilage points (for the LR centroid) and bone-cartilage interface points (circle fits), world mm."""
        self.split_x_ = float(np.mean(cartilage_xyz[:, 0])) if len(cartilage_xyz) else 0.0
        self.centres_ = {}
        medial = is_medial(interface_xyz[:, 0], self.split_x_, self.side)
        for name, sel in (("medial", medial), ("lateral", ~medial)):
            cy, cz, _ = fit_circle(interface_xyz[sel, 1], interface_xyz[sel, 2])
            self.centres_[name] = (cy, cz)
        return self

    def transform(self, xyz: np.ndarray) -> np.ndarray:
        """Subregion name (``femoral_{medial,lateral}_{anterior,central,posterior}``) for each world point (N, 3)."""
        medial = is_medial(xyz[:, 0], self.split_x_, self.side)
        out = np.empty(len(xyz), dtype=object)
        for name, sel in (("medial", medial), ("lateral", ~medial)):
            theta = sagittal_angle_deg(xyz[sel, 1], xyz[sel, 2], self.centres_[name])
            part = np.where(
                theta > self.central_half_angle_deg, 0, np.where(theta < -self.central_half_angle_deg, 2, 1)
            )
            names = np.array([f"femoral_{name}_{p}" for p in ("anterior", "central", "posterior")], dtype=object)
            out[sel] = names[part]
        return out


#: Non-femoral cartilage label -> its single subregion.
PLATE_SUBREGION = {4: "tibial_medial", 5: "tibial_lateral", 7: "patellar"}
