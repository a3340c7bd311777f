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

_OAIZIB_CM = MappingProxyType({0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5})
#: SPL knee atlas (stity/spl-knee-atlas ``knee.ctbl``): cartilages, menisci and bones map to harmonised labels;
#: every other structure (muscles, tendons, ligaments, nerves, vessels, fat pad, fibula, unnamed 3) is background.
_SPL_TISSUES = {81: 9, 82: 8, 83: 2, 84: 5, 85: 4, 86: 7, 95: 1, 96: 3, 98: 6}
#: SPL atlas structures that become background, by id (names from ``knee.ctbl``; 3 is present but unnamed there).
SPL_BACKGROUND = MappingProxyType(
    {
        3: "unnamed_3",
        9: "infrapatellar_fat_body",
        12: "vastus_lateralis_muscle",
        13: "vastus_medialis_muscle",
        15: "biceps_femoris_muscle",
        16: "semimembranosus_muscle",
        17: "semitendinosus_muscle",
        18: "gracilis_muscle",
        19: "sartorius_muscle",
        20: "medial_head_gastrocnemius_muscle",
        21: "lateral_head_gastrocnemius_muscle",
        22: "popliteus_muscle",
        23: "soleus_muscle",
        24: "tibialis_anterior_muscle",
        25: "extensor_digitorum_longus_muscle",
        26: "peroneus_longus_muscle",
        31: "anterior_cruciate_ligament",
        32: "posterior_cruciate_ligament",
        33: "fibular_collateral_ligament",
        34: "tibial_collateral_ligament",
        35: "patellar_ligament",
        41: "adductor_magnus_tendon",
        42: "biceps_femoris_tendon",
        43: "iliotibial_tract",
        44: "popliteus_tendon",
        46: "soleus_tendon",
        47: "semitendinosus_tendon",
        48: "gracilis_tendon",
        61: "peroneus_nerve",
        62: "tibialis_nerve",
        63: "muscular_branches_tibialis_nerve",
        64: "medial_sural_cutaneous_nerve",
        71: "popliteal_artery",
        72: "popliteal_vein",
        73: "superior_medial_genicular_artery",
        74: "superior_lateral_genicular_artery",
        75: "middle_genicular_artery",
        77: "great_saphenous_vein",
        78: "small_saphenous_vein",
        97: "fibula",
    }
)

CROSSWALKS = MappingProxyType(
    {
        # OAI-ZIB / SKI10: 1 femur, 2 femoral cartilage, 3 tibia, 4 tibial cartilage (split by side at the gap between
        # the compartments). 5 patella / 6 patellar cartilage (the kneeseg OAI extension) are read when present.
        "oaizib": MappingProxyType({0: 0, 1: 1, 2: 2, 3: 3, 4: OAIZIB_TIBIAL_CARTILAGE, 5: 6, 6: 7}),
        # OAIZIB-CM: as OAI-ZIB with tibial cartilage already split: 4 medial, 5 lateral.
        "oaizib_cm": _OAIZIB_CM,
        # CartiMorph (CLAIR-Knee-103R template and OAIZIB-CM outputs): the OAIZIB-CM convention.
        "cartimorph": _OAIZIB_CM,
        # Anomaly-aware OAI (wooboyeong/Anomaly-Aware-3D-Segmentation): OAI-ZIB + 5 patella, 6 patellar cartilage and
        # 7/8/9 femoral/tibial/patellar bone lesions, which lie inside their bone and become that bone.
        "woo": MappingProxyType({0: 0, 1: 1, 2: 2, 3: 3, 4: OAIZIB_TIBIAL_CARTILAGE, 5: 6, 6: 7, 7: 1, 8: 3, 9: 6}),
        # pymskt DESS example (gattia/pymskt): 1 femoral, 2 medial tibial, 3 lateral tibial, 4 patellar cartilage,
        # 5 femur, 6 tibia, 7 patella, 8 fibula (background), 9 lateral, 10 medial meniscus (checked against the
        # anatomy: 8 lies lateral-inferior, 2/10 on the side away from it).
        "pymskt": MappingProxyType({0: 0, 1: 2, 2: 4, 3: 5, 4: 7, 5: 1, 6: 3, 7: 6, 8: 0, 9: 9, 10: 8}),
        # SPL knee atlas: see _SPL_TISSUES and SPL_BACKGROUND.
        "spl": MappingProxyType({0: 0, **{k: 0 for k in SPL_BACKGROUND}, **_SPL_TISSUES}),
        # SKM-TEA seg channels 1-6: patellar, femoral, medial tibial, lateral tibial cartilage, medial, lateral meniscus.
        "skmtea": MappingProxyType({0: 0, 1: 7, 2: 2, 3: 4, 4: 5, 5: 8, 6: 9}),
        # IWOAI 2019 channels 1-6: femoral, medial tibial, lateral tibial, patellar cartilage, lateral, medial meniscus
        # (order per REFERENCE §2.3, marked unverified there).
        "iwoai": MappingProxyType({0: 0, 1: 2, 2: 4, 3: 5, 4: 7, 5: 9, 6: 8}),
        # oa_kit's synthetic cohort writes the harmonised convention itself.
        "synthetic": MappingProxyType({k: k for k in LABELS}),
    }
)
#: Conventions whose single tibial cartilage value is split into medial (4) / lateral (5) by :func:`to_harmonised`.
COMBINED_TIBIAL = MappingProxyType({"oaizib": OAIZIB_TIBIAL_CARTILAGE, "woo": OAIZIB_TIBIAL_CARTILAGE})
#: Harmonised tissues each convention never labels (quality checks skip them; generators must not expect them).
LACKS_TISSUES = MappingProxyType(
    {
        "oaizib": (6, 7, 8, 9),
        "oaizib_cm": (6, 7, 8, 9),
        "cartimorph": (6, 7, 8, 9),
        "woo": (8, 9),
        "pymskt": (),
        "spl": (),
        "skmtea": (1, 3, 6),
        "iwoai": (1, 3, 6),
        "synthetic": (),
    }
)
#: Source values kept apart from the rest of their harmonised label by :func:`subclass_map` (background structures,
#: bone lesions): a label-to-image generator gives each its own intensity.
SUBCLASS_VALUES = MappingProxyType({"spl": tuple(SPL_BACKGROUND), "pymskt": (8,), "woo": (7, 8, 9)})
#: Sources whose masks are stored one-hot with this many channels (last axis).
ONEHOT_CHANNELS = MappingProxyType({"skmtea": 6, "iwoai": 6})


#: Other names accepted for a convention (the synthetic cohort writes the harmonised labels themselves).
CONVENTION_ALIASES = MappingProxyType({"harmonised": "synthetic"})
#: Every convention name a user may give (``oa-kit mri measure --convention``).
CONVENTION_NAMES = (*CONVENTION_ALIASES, *CROSSWALKS)


def _check_source(source: str) -> None:
    """Raise unless ``source`` names a known crosswalk."""
    if source not in CROSSWALKS:
        raise OAKitError(f"source: unknown label convention {source!r}; expected one of {sorted(CROSSWALKS)}")


def label_convention(name: str) -> str:
    """The crosswalk key of a convention name (``"harmonised"`` -> ``"synthetic"``); unknown names are an error."""
    key = CONVENTION_ALIASES.get(name, name)
    if key not in CROSSWALKS:
        raise OAKitError(f"convention: unknown label convention {name!r}; expected one of {list(CONVENTION_NAMES)}")
    return key


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
    values = np.asarray(values)
    if values.dtype.kind in "iub" and values.size and 0 <= values.min() and values.max() < 65536:
        present = np.flatnonzero(np.bincount(values.ravel().astype(np.intp)))  # far faster than unique on volumes
    else:
        present = np.unique(values)
    unknown = sorted(set(present.tolist()) - set(allowed))
    if unknown:
        raise OAKitError(
            f"labels ({name}): values {unknown[:10]} are not in the {name} convention; expected {sorted(allowed)}"
        )


def _world_x(mask: np.ndarray, affine: np.ndarray | None) -> tuple[np.ndarray, float]:
    """World x (mm) of the voxels of ``mask`` and the voxel step along x; without an affine, array axis 0 is +x."""
    idx = np.nonzero(mask)
    if affine is None:
        return idx[0].astype(float), 1.0
    aff = np.asarray(affine, dtype=float)
    x = aff[0, 0] * idx[0] + aff[0, 1] * idx[1] + aff[0, 2] * idx[2] + aff[0, 3]
    return x, float(np.abs(aff[0, :3]).max())


def compartment_cut_x(x: np.ndarray, step: float) -> float:
    """World x (mm) separating the medial and lateral tibial cartilage plates, given the x of their voxels.

    Rule: bin the voxels along x (one bin per voxel step); the cut is the middle of the widest run of empty bins
    between the 10th and 90th x-percentiles (the gap over the tibial spines); plates that touch have no empty bin,
    and then the cut is the least-populated bin between the 25th and 75th percentiles. Ties go to the bin nearest
    the x-centroid.
    """
    if x.size == 0:
        return 0.0
    lo = float(x.min()) - step / 2.0
    counts = np.bincount(((x - lo) // step).astype(np.intp))
    centres = lo + (np.arange(len(counts)) + 0.5) * step
    mean = float(x.mean())

    def window(q_lo: float, q_hi: float) -> np.ndarray:
        a, b = np.percentile(x, (q_lo, q_hi))
        return np.flatnonzero((centres >= a) & (centres <= b))

    inner = window(10, 90)
    empty = inner[counts[inner] == 0]
    if empty.size:
        runs = np.split(empty, np.flatnonzero(np.diff(empty) > 1) + 1)
        widest = max(len(r) for r in runs)
        mids = [float(centres[r].mean()) for r in runs if len(r) == widest]
        return min(mids, key=lambda m: abs(m - mean))
    core = window(25, 75)
    if core.size == 0:
        return mean
    lowest = core[counts[core] == counts[core].min()]
    return float(min(centres[lowest], key=lambda m: abs(m - mean)))


def _split_tibial(out: np.ndarray, combined: np.ndarray, side: str | None, affine: np.ndarray | None) -> None:
    """Split combined tibial cartilage (mask) into medial 4 / lateral 5 at :func:`compartment_cut_x` (in place)."""
    if side not in ("R", "L"):
        raise OAKitError(
            f"side: got {side!r}; expected 'R', 'L' or 'auto' to split combined tibial cartilage into medial/lateral"
        )
    x, step = _world_x(combined, affine)
    cut = compartment_cut_x(x, step)
    is_medial = (x < cut) if side == "R" else (x > cut)  # right knee: medial toward −x (patient's left)
    out[np.nonzero(combined)] = np.where(
        is_medial, LABEL_IDS["medial_tibial_cartilage"], LABEL_IDS["lateral_tibial_cartilage"]
    )


#: |score| (sum of the cues of :func:`knee_side_cues`) below which :func:`anatomy_side` leaves the side undecided.
#: Measured: +0.66 to +7.3 on the 68 Woo OAI maps (all right knees, median 3.1), ±2.2 to ±2.7 on phantoms
#: (``render_knee_mri``, both sides, seeds 0-5), +3.2 pymskt (right), -4.7 SPL atlas (left), +2.9 CartiMorph (right).
SIDE_SCORE_MARGIN = 0.5


def knee_side_cues(
    femur: np.ndarray, tibia: np.ndarray, tibial_cartilage: np.ndarray, patella=None, affine=None
) -> dict[str, float]:
    """Three anatomical cues to the knee side, each positive when the lateral side lies toward +x (a right knee).

    (1) ``plateau_length``: the tibial cartilage plate on the −x side of :func:`compartment_cut_x` is longer
    anteroposteriorly than the +x plate (the medial plateau is oval and longer than the round lateral one), per 5 mm;
    (2) ``tibia_offset``: the tibia's x-centroid lies toward +x of the femur's (the larger medial condyle pulls the
    femur medially), per 3 mm; (3) ``patella_offset``: the patella's x-centroid lies toward +x of the femur's (the
    patella rides laterally), per 8 mm (the weakest cue; 0 without a patella). Masks are (X, Y, Z) bool in the
    file's voxel order; without ``affine`` the array axes are taken as (x, y, z) at 1 mm.
    """
    aff = np.eye(4) if affine is None else np.asarray(affine, dtype=float)
    masks = {"femur": femur, "tibia": tibia, "tibial_cartilage": tibial_cartilage}
    empty = [name for name, m in masks.items() if not np.any(m)]
    if empty:
        raise OAKitError(f"labels: {empty} empty; expected femur, tibia and tibial cartilage to infer the knee side")

    def centroid_x(mask: np.ndarray) -> float:
        axes = range(mask.ndim)
        counts = [mask.sum(axis=tuple(a for a in axes if a != k)) for k in axes]
        mean_index = np.array([np.average(np.arange(len(c)), weights=c) for c in counts])
        return float(aff[0, :3] @ mean_index + aff[0, 3])

    x, step = _world_x(tibial_cartilage, aff)
    idx = np.nonzero(tibial_cartilage)
    y = aff[1, 0] * idx[0] + aff[1, 1] * idx[1] + aff[1, 2] * idx[2]
    cut = compartment_cut_x(x, step)
    low, high = y[x < cut], y[x >= cut]
    ap = (np.ptp(low) if low.size else 0.0) - (np.ptp(high) if high.size else 0.0)
    femur_x = centroid_x(femur)
    has_patella = patella is not None and np.any(patella)
    return {
        "plateau_length": float(ap / 5.0),
        "tibia_offset": (centroid_x(tibia) - femur_x) / 3.0,
        "patella_offset": (centroid_x(patella) - femur_x) / 8.0 if has_patella else 0.0,
    }


def infer_knee_side(
    femur: np.ndarray, tibia: np.ndarray, tibial_cartilage: np.ndarray, patella=None, affine=None
) -> str:
    """Knee side ("R"/"L") from bone and cartilage masks in RAS world coordinates, for maps that do not record it.

    The sum of :func:`knee_side_cues` decides: > 0 -> "R", otherwise "L". It is positive on all 68 Woo OAI maps
    (right knees) and gives the known side of the pymskt (right), CartiMorph CLAIR-Knee-103R (right) and SPL atlas
    (left, fibula at -x) maps. :func:`anatomy_side` is the same rule that can also say "undecided".

    Parameters
    ----------
    femur, tibia, tibial_cartilage : ndarray of bool
        Masks (X, Y, Z) in the file's voxel order.
    patella : ndarray of bool, optional
        Patella mask; the cue is skipped when absent or empty.
    affine : ndarray, optional
        Voxel -> RAS mm affine; without it array axes are taken as (x, y, z) at 1 mm.

    Returns
    -------
    str
        ``"R"`` or ``"L"``.
    """
    return "R" if sum(knee_side_cues(femur, tibia, tibial_cartilage, patella, affine).values()) > 0 else "L"


def anatomy_side(labels: np.ndarray, affine: np.ndarray | None = None) -> tuple[str | None, float]:
    """Knee side of a harmonised label map from its anatomy, or None when the anatomy cannot decide.

    The one anatomy-side rule of oa_kit (QC's laterality check, side inference of ``mri segment``/``measure``):
    the sum of :func:`knee_side_cues` (tibial cartilage taken as one mask, 4 or 5, so a segmenter that names the
    plates by position cannot make it circular). Returns (``"R"``/``"L"`` or None, score); None when femur, tibia or
    tibial cartilage is missing or ``|score| <`` :data:`SIDE_SCORE_MARGIN`.
    """
    labels = np.asarray(labels)
    femur, tibia, tibial = labels == 1, labels == 3, np.isin(labels, (4, 5))
    if not (femur.any() and tibia.any() and tibial.any()):
        return None, 0.0
    score = float(sum(knee_side_cues(femur, tibia, tibial, labels == 6, affine).values()))
    if abs(score) < SIDE_SCORE_MARGIN:
        return None, score
    return ("R" if score > 0 else "L"), score


def subclass_map(labels: np.ndarray, source: str) -> np.ndarray:
    """Source values listed in :data:`SUBCLASS_VALUES` (background structures, bone lesions) kept, 0 elsewhere (int16).

    :func:`to_harmonised` merges these into background or a bone; a label-to-image generator reads them from here
    to give, e.g., each SPL muscle, the fat pad or a bone lesion its own intensity.
    """
    _check_source(source)
    arr = np.asarray(labels)
    keep = SUBCLASS_VALUES.get(source, ())
    return np.where(np.isin(arr, keep), arr, 0).astype(np.int16)


def to_harmonised(
    labels: np.ndarray, source: str, side: str | None = None, affine: np.ndarray | None = None
) -> np.ndarray:
    """Convert a label map from ``source`` into the harmonised convention (:data:`LABELS`), uint8.

    Parameters
    ----------
    labels : ndarray
        Integer label map; for one-hot sources (``"skmtea"``, ``"iwoai"``) either the one-hot mask
        (..., 6) or channel numbers 1..6.
    source : str
        A key of :data:`CROSSWALKS`: ``"oaizib"``, ``"oaizib_cm"``, ``"cartimorph"``, ``"woo"``, ``"pymskt"``,
        ``"spl"``, ``"skmtea"``, ``"iwoai"``, ``"synthetic"``.
    side : {"R", "L", "auto"}, optional
        Knee side; required for the conventions in :data:`COMBINED_TIBIAL` (``"oaizib"``, ``"woo"``), whose single
        tibial cartilage label 4 is split into medial (4) and lateral (5) at the gap between the plates
        (:func:`compartment_cut_x`; right knee: medial at −x, left: medial at +x). ``"auto"`` infers the side from
        the anatomy (:func:`infer_knee_side`).
    affine : ndarray, optional
        Voxel → RAS affine giving world x for the split; without it array axis 0 is taken as +x.

    Returns
    -------
    ndarray of uint8 with harmonised labels. Values outside the source convention raise :class:`OAKitError`
    naming them; no label is dropped except the source structures the crosswalk sends to background
    (kept by :func:`subclass_map`).
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
    if source in COMBINED_TIBIAL:
        combined = arr == COMBINED_TIBIAL[source]
        if combined.any():
            if side == "auto":
                side = infer_knee_side(out == 1, out == 3, combined, out == 6, affine)
            _split_tibial(out, combined, side, affine)
    return out


#: Harmonised labels merged on export to conventions that lack the split (explicit, see ``merge`` below).
EXPORT_MERGES = MappingProxyType(
    {
        "oaizib": MappingProxyType({4: 4, 5: 4}),
        "woo": MappingProxyType({4: 4, 5: 4}),
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
    target : str
        A key of :data:`CROSSWALKS`.
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
            inverse.setdefault(harm, src)  # several sources -> one label (SPL background): export the first
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
