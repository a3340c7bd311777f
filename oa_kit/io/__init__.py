"""Readers and writers: OAI/MOST tables, DICOM, PNG, NIfTI, MHD, HDF5 (no modelling here)."""
