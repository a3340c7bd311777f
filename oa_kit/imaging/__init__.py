"""Radiograph preprocessing and knee localisation shared by the models."""
from oa_kit.imaging.localize import JointCentre, KneeROI, KneeROIList, find_joint_centres, knee_rois

__all__ = ["JointCentre", "KneeROI", "KneeROIList", "find_joint_centres", "knee_rois"]
