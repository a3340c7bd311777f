"""NRRD reader (3D Slicer label maps such as the pymskt and SPL knee atlases) returning an RAS :class:`MRIVolume`."""

from __future__ import annotations

import os
from pathlib import Path

import nrrd
import numpy as np

from oa_kit.errors import OAKitError
from oa_kit.io.mri import MRIVolume, check_volume_size

__all__ = ["nrrd_affine", "read_nrrd"]

#: NRRD ``space`` values -> sign flips that turn that world frame into RAS (x, y, z).
_SPACE_TO_RAS = {
    "right-anterior-superior": (1.0, 1.0, 1.0),
    "ras": (1.0, 1.0, 1.0),
    "left-posterior-superior": (-1.0, -1.0, 1.0),
    "lps": (-1.0, -1.0, 1.0),
    "left-anterior-superior": (-1.0, 1.0, 1.0),
    "las": (-1.0, 1.0, 1.0),
}


def nrrd_affine(header: dict, name: str = "nrrd") -> np.ndarray:
    """Voxel -> RAS (mm) 4x4 affine from an NRRD header's ``space``, ``space directions`` and ``space origin``."""
    space = str(header.get("space", "")).lower()
    if space not in _SPACE_TO_RAS:
        raise OAKitError(f"{name}: NRRD space {space or 'missing'!r}; expected one of {sorted(_SPACE_TO_RAS)}")
    directions = np.asarray(header.get("space directions", np.full((3, 3), np.nan)), dtype=float)
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=float)
    if directions.shape != (3, 3) or not np.all(np.isfinite(directions)) or origin.shape != (3,):
        raise OAKitError(f"{name}: NRRD 'space directions' {directions.shape}; expected three 3-vectors (one per axis)")
    flip = np.asarray(_SPACE_TO_RAS[space])
    affine = np.eye(4)
    affine[:3, :3] = flip[:, None] * directions.T  # column j = world step of array axis j
    affine[:3, 3] = flip * origin
    if abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise OAKitError(f"{name}: NRRD 'space directions' are singular; expected three independent axes")
    return affine


def read_nrrd(path: str | os.PathLike) -> MRIVolume:
    """Read a 3D ``.nrrd`` / ``.nhdr`` volume (e.g. a label map) in the file's voxel order with its RAS affine.

    Parameters
    ----------
    path
        NRRD file with a world ``space`` (RAS, LPS or LAS) and ``space directions``.

    Returns
    -------
    MRIVolume
        ``array`` as stored (dtype kept), ``affine`` voxel -> RAS mm, ``metadata`` the scalar header fields.
    """
    path = Path(path)
    if not path.is_file():
        raise OAKitError(f"{path}: file not found; expected an NRRD file")
    try:
        sizes = [int(n) for n in nrrd.read_header(str(path)).get("sizes", ())]
    except (nrrd.NRRDError, OSError, ValueError, TypeError) as exc:
        raise OAKitError(f"{path}: not a readable NRRD header ({exc}); expected a valid .nrrd") from None
    check_volume_size(path, sizes, 1, minimum=False)  # the voxel cap before anything is decoded
    try:
        data, header = nrrd.read(str(path))
    except (nrrd.NRRDError, OSError, ValueError) as exc:
        raise OAKitError(f"{path}: not a readable NRRD file ({exc}); expected a valid .nrrd") from exc
    if data.ndim != 3:
        raise OAKitError(f"{path}: NRRD has {data.ndim} dimensions {data.shape}; expected a 3D volume")
    meta = {k: v for k, v in header.items() if isinstance(v, (str, int, float))}
    return MRIVolume(
        array=np.ascontiguousarray(data), affine=nrrd_affine(header, str(path)), source=path, metadata=meta
    )
