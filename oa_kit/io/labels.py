"""The harmonised MRI label convention (the one place it is defined) and crosswalks from public datasets."""
from __future__ import annotations

from types import MappingProxyType

#: oa_kit's harmonised knee MRI labels. Medial/lateral tibial cartilage and menisci stay separate;
#: they are merged only on export to conventions that lack the split.
LABELS = MappingProxyType({
    0: "background",
    1: "femur",
    2: "femoral_cartilage",
    3: "tibia",
    4: "medial_tibial_cartilage",
    5: "lateral_tibial_cartilage",
    6: "patella",
    7: "patellar_cartilage",
    8: "medial_meniscus",
    9: "lateral_meniscus",
})
LABEL_IDS = MappingProxyType({name: idx for idx, name in LABELS.items()})
CARTILAGE_LABELS = (2, 4, 5, 7)
BONE_LABELS = (1, 3, 6)
N_LABELS = len(LABELS)

#: Cartilage subregions measured by oa_kit (see docs/DESIGN.md for the geometric rule).
SUBREGIONS = (
    "femoral_medial_anterior",
    "femoral_medial_central",
    "femoral_medial_posterior",
    "femoral_lateral_anterior",
    "femoral_lateral_central",
    "femoral_lateral_posterior",
    "tibial_medial",
    "tibial_lateral",
    "patellar",
)
#: Half-width (degrees) of the femoral central (weight-bearing) sector around the inferior direction.
FEMORAL_CENTRAL_HALF_ANGLE_DEG = 30.0
