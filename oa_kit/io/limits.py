"""Size limits every reader checks BEFORE it allocates or decompresses: the one mechanism for hostile input sizes.

Each limit is a module constant (the default) that an environment variable of the same name with an ``OA_KIT_``
prefix overrides at call time, e.g. ``OA_KIT_MAX_VOXELS=1000000000 oa-kit mri segment big.nii.gz``:

- ``OA_KIT_MAX_VOXELS``, default 268,435,456 (2^28): MRI readers (NIfTI, MHD, DICOM series, HDF5, MRNet), checked
  from the header before the voxel data is read;
- ``OA_KIT_MAX_BYTES``, default 1,073,741,824 (1 GiB): decoded bytes of one volume or image, size of a table or
  radiograph file, and the most a compressed stream may inflate to (a ``.zraw`` is also never inflated beyond the
  size its header declares);
- ``OA_KIT_MAX_PIXELS``, default 67,108,864 (2^26): radiograph and PNG/JPEG readers, from the header size (Pillow's
  own decompression-bomb limit, about 179 M pixels, also stays in force);
- ``OA_KIT_MIN_VOXELS_PER_AXIS``, default 8: an MRI volume smaller than this along any axis cannot be a knee scan.

The defaults are generous for real data (an OAI DESS is 384 x 384 x 160 = 23.6 M voxels; an OAI PA radiograph
about 15 M pixels) and small enough that a hostile header cannot make a reader allocate tens of GiB.
"""

from __future__ import annotations

import os

from oa_kit.errors import OAKitError

#: Most voxels (all axes and channels together) an MRI reader accepts.
MAX_VOXELS = 2**28
#: Most decoded bytes of one volume/image, and the most any compressed stream may inflate to.
MAX_BYTES = 2**30
#: Most pixels of one 2-D radiograph/image.
MAX_PIXELS = 2**26
#: Fewest voxels along each spatial axis of an MRI volume (anything smaller cannot be a knee scan).
MIN_VOXELS_PER_AXIS = 8

_DEFAULTS = {
    "MAX_VOXELS": MAX_VOXELS,
    "MAX_BYTES": MAX_BYTES,
    "MAX_PIXELS": MAX_PIXELS,
    "MIN_VOXELS_PER_AXIS": MIN_VOXELS_PER_AXIS,
}


def limit(name: str) -> int:
    """The limit ``name`` (e.g. ``"MAX_VOXELS"``): ``OA_KIT_<name>`` from the environment when set, else the default.

    Parameters
    ----------
    name : str
        One of ``MAX_VOXELS``, ``MAX_BYTES``, ``MAX_PIXELS``, ``MIN_VOXELS_PER_AXIS``.

    Returns
    -------
    int
        The limit in force.

    Raises
    ------
    OAKitError
        The environment variable is set but is not a positive integer.
    """
    if name not in _DEFAULTS:
        raise OAKitError(f"limit: {name!r} is not a size limit; expected one of {', '.join(_DEFAULTS)}")
    text = os.environ.get(f"OA_KIT_{name}", "").strip().replace("_", "")
    if not text:
        return int(_DEFAULTS[name])
    try:
        value = int(float(text)) if "e" in text.lower() else int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise OAKitError(f"OA_KIT_{name}: {text!r}; expected a positive whole number (default {_DEFAULTS[name]})")
    return value


def check_count(what: str, count: int, name: str, unit: str) -> None:
    """Raise when ``count`` exceeds limit ``name`` (``what`` names the file or field)."""
    cap = limit(name)
    if count > cap:
        raise OAKitError(
            f"{what}: {count:,} {unit} exceeds the limit of {cap:,}; expected a smaller file "
            f"(raise it with the environment variable OA_KIT_{name} if this input is genuine)"
        )
