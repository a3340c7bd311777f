"""Imaging models: the KL-grade CNN (kl) and the MRI cartilage segmenter (mri)."""
