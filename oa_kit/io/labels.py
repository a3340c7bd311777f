"""The harmonised MRI label convention (the one place it is defined) and crosswalks from public datasets."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from oa_kit.errors import OAKitError

#: oa_kit's harmonised knee MRI labels. Medial/lateral tibial cartilage and menisci stay separate;
#: they are merged only on export to conventions that lack the split.
LABELS = MappingProxyType(
    {
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
    }
)
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


# ----------------------------------------------------------------------------------------------------------------------
# Crosswalks from public conventions (docs/REFERENCE §2.3). Each maps a source value to a harmonised label.
# One-hot sources (SKM-TEA, IWOAI: 6 channels, no background) are numbered by channel index + 1 (0 = no channel set).
# ----------------------------------------------------------------------------------------------------------------------
#: Value of OAI-ZIB's combined tibial cartilage; :func:`to_harmonised` splits it into medial (4) / lateral (5).
OAIZIB_TIBIAL_CARTILAGE = 4

CROSSWALKS = MappingProxyType(
    {
        # OAI-ZIB / SKI10: 1 femur, 2 femoral cartilage, 3 tibia, 4 tibial cartilage (split by side + x-centroid).
        "oaizib": MappingProxyType({0: 0, 1: 1, 2: 2, 3: 3, 4: OAIZIB_TIBIAL_CARTILAGE}),
        # OAIZIB-CM: as OAI-ZIB with tibial cartilage already split: 4 medial, 5 lateral.
        "oaizib_cm": MappingProxyType({0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
        # SKM-TEA seg channels 1-6: patellar, femoral, medial tibial, lateral tibial cartilage, medial, lateral meniscus.
        "skmtea": MappingProxyType({0: 0, 1: 7, 2: 2, 3: 4, 4: 5, 5: 8, 6: 9}),
        # IWOAI 2019 channels 1-6: femoral, medial tibial, lateral tibial, patellar cartilage, lateral, medial meniscus
        # (order per REFERENCE §2.3, marked unverified there).
        "iwoai": MappingProxyType({0: 0, 1: 2, 2: 4, 3: 5, 4: 7, 5: 9, 6: 8}),
        # oa_kit's synthetic cohort writes the harmonised convention itself.
        "synthetic": MappingProxyType({k: k for k in LABELS}),
    }
)
#: Sources whose masks are stored one-hot with this many channels (last axis).
ONEHOT_CHANNELS = MappingProxyType({"skmtea": 6, "iwoai": 6})


def _check_source(source: str) -> None:
    """Raise unless ``source`` names a known crosswalk."""
    if source not in CROSSWALKS:
        raise OAKitError(f"source: unknown label convention {source!r}; expected one of {sorted(CROSSWALKS)}")


def onehot_to_labels(onehot: np.ndarray, name: str = "mask") -> np.ndarray:
    """Collapse a one-hot mask (..., C) without background into channel numbers 1..C (0 where no channel is set).

    Voxels with more than one channel set raise :class:`OAKitError` rather than losing a label.
    """
    arr = np.asarray(onehot)
    if arr.ndim < 2:
        raise OAKitError(f"{name}: shape {arr.shape}; expected (..., channels) one-hot")
    binary = arr != 0
    if np.any(arr[binary] != 1) and arr.dtype != bool:
        bad = sorted(set(np.unique(arr[binary]).tolist()) - {1})[:5]
        raise OAKitError(f"{name}: one-hot values {bad}; expected 0/1 per channel")
    n_set = binary.sum(axis=-1)
    if np.any(n_set > 1):
        raise OAKitError(f"{name}: {int(np.sum(n_set > 1))} voxels have several channels set; expected one-hot")
    return (np.argmax(binary, axis=-1) + 1).astype(np.uint8) * (n_set > 0)


def labels_to_onehot(labels: np.ndarray, n_channels: int) -> np.ndarray:
    """Expand channel numbers 1..C (0 = none) into a uint8 one-hot array (..., C) without background."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > n_channels):
        raise OAKitError(f"labels: values outside 0..{n_channels}; expected channel numbers")
    return (labels[..., None] == np.arange(1, n_channels + 1)).astype(np.uint8)


def _check_values(values: np.ndarray, allowed, name: str) -> None:
    """Raise naming every value not in ``allowed``."""
    present = np.unique(values)
    unknown = sorted(set(present.tolist()) - set(allowed))
    if unknown:
        raise OAKitError(
            f"labels ({name}): values {unknown[:10]} are not in the {name} convention; expected {sorted(allowed)}"
        )


def _split_tibial(out: np.ndarray, combined: np.ndarray, side: str | None, affine: np.ndarray | None) -> None:
    """Split combined tibial cartilage (mask) into medial 4 / lateral 5 at its x-centroid (in place)."""
    if side not in ("R", "L"):
        raise OAKitError(
            f"side: got {side!r}; expected 'R' or 'L' to split OAI-ZIB tibial cartilage into medial/lateral"
        )
    idx = np.nonzero(combined)
    if affine is None:
        x = idx[0].astype(float)  # array axis 0 taken as LR, increasing toward +x (patient's right)
    else:
        aff = np.asarray(affine, dtype=float)
        x = aff[0, 0] * idx[0] + aff[0, 1] * idx[1] + aff[0, 2] * idx[2] + aff[0, 3]
    medial_low_x = side == "R"  # right knee: medial toward −x (patient's left)
    is_medial = (x < x.mean()) if medial_low_x else (x >= x.mean())
    out[idx] = np.where(is_medial, LABEL_IDS["medial_tibial_cartilage"], LABEL_IDS["lateral_tibial_cartilage"])


def to_harmonised(
    labels: np.ndarray, source: str, side: str | None = None, affine: np.ndarray | None = None
) -> np.ndarray:
    """Convert a label map from ``source`` into the harmonised convention (:data:`LABELS`), uint8.

    Parameters
    ----------
    labels : ndarray
        Integer label map; for one-hot sources (``"skmtea"``, ``"iwoai"``) either the one-hot mask
        (..., 6) or channel numbers 1..6.
    source : {"oaizib", "oaizib_cm", "skmtea", "iwoai", "synthetic"}
    side : {"R", "L"}, optional
        Knee side; required for ``"oaizib"``, whose single tibial cartilage label 4 is split into medial (4) and
        lateral (5) at the x-centroid of the tibial cartilage (right knee: medial at −x; left: medial at +x).
    affine : ndarray, optional
        Voxel → RAS affine giving world x for the split; without it array axis 0 is taken as +x.

    Returns
    -------
    ndarray of uint8 with harmonised labels. Values outside the source convention raise :class:`OAKitError`
    naming them; no label is dropped.
    """
    _check_source(source)
    arr = np.asarray(labels)
    if source in ONEHOT_CHANNELS and arr.ndim >= 4 and arr.shape[-1] == ONEHOT_CHANNELS[source]:
        arr = onehot_to_labels(arr, name=f"labels ({source})")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise OAKitError(f"labels ({source}): non-integer values; expected an integer label map")
        arr = arr.astype(np.int64)
    table = CROSSWALKS[source]
    _check_values(arr, table, source)
    lut = np.zeros(max(table) + 1, dtype=np.uint8)
    for k, v in table.items():
        lut[k] = v
    out = lut[arr.astype(np.intp)]
    if source == "oaizib":
        combined = arr == OAIZIB_TIBIAL_CARTILAGE
        if combined.any():
            _split_tibial(out, combined, side, affine)
    return out


#: Harmonised labels merged on export to conventions that lack the split (explicit, see ``merge`` below).
EXPORT_MERGES = MappingProxyType(
    {
        "oaizib": MappingProxyType({4: 4, 5: 4}),
    }
)


def from_harmonised(
    labels: np.ndarray, target: str, merge: bool = False, drop: tuple[int | str, ...] = ()
) -> np.ndarray:
    """Convert a harmonised label map to ``target``'s convention (channel numbers for one-hot targets).

    Parameters
    ----------
    labels : ndarray
        Harmonised labels (:data:`LABELS`).
    target : {"oaizib", "oaizib_cm", "skmtea", "iwoai", "synthetic"}
    merge : bool
        Allow the export merges in :data:`EXPORT_MERGES` (OAI-ZIB: medial + lateral tibial cartilage → 4).
        Without it, a map that needs merging raises instead of silently losing the split.
    drop : tuple of label ids or names
        Harmonised labels to set to background explicitly (e.g. ``("patella",)`` for OAI-ZIB).
        Any present label the target cannot represent and not listed here raises :class:`OAKitError`.

    Returns
    -------
    ndarray of uint8 in the target convention; use :func:`labels_to_onehot` for one-hot files.
    """
    _check_source(target)
    arr = np.asarray(labels)
    _check_values(arr, LABELS, "harmonised")
    dropped = {LABEL_IDS[d] if isinstance(d, str) and d in LABEL_IDS else d for d in drop}
    unknown_drop = sorted(str(d) for d in dropped if d not in LABELS)
    if unknown_drop:
        raise OAKitError(f"drop: {unknown_drop} are not harmonised labels; expected ids or names of {dict(LABELS)}")
    inverse: dict[int, int] = {}
    for src, harm in CROSSWALKS[target].items():
        if harm not in EXPORT_MERGES.get(target, {}):
            inverse[harm] = src
    merges = EXPORT_MERGES.get(target, {})
    present = set(np.unique(arr).tolist())
    needs_merge = sorted(present & set(merges))
    if needs_merge and not merge:
        names = [LABELS[v] for v in needs_merge]
        raise OAKitError(f"labels: {names} must be merged for {target}; expected merge=True to merge them explicitly")
    inverse.update({h: s for h, s in merges.items()})
    missing = sorted(v for v in present if v not in inverse and v not in dropped and v != 0)
    if missing:
        raise OAKitError(
            f"labels: {[LABELS[v] for v in missing]} have no {target} label; expected them listed in drop="
        )
    lut = np.zeros(len(LABELS), dtype=np.uint8)
    for harm, src in inverse.items():
        if harm not in dropped:
            lut[harm] = src
    return lut[arr.astype(np.intp)]
