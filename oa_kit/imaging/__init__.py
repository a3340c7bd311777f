"""Radiograph preprocessing, knee localisation and classical measurements shared by the models."""

from oa_kit.imaging.localize import JointCentre, KneeROI, KneeROIList, find_joint_centres, knee_rois
from oa_kit.imaging.osteophyte import OSTEOPHYTE_SITES, marginal_osteophytes, measure_osteophytes

__all__ = [
    "JointCentre",
    "KneeROI",
    "KneeROIList",
    "OSTEOPHYTE_SITES",
    "find_joint_centres",
    "knee_rois",
    "marginal_osteophytes",
    "measure_osteophytes",
]
