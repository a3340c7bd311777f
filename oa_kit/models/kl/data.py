"""KL training data: Chen images → preprocessed uint8 arrays, and the compact ``.npz`` pack (JPEG bytes) for remote training."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from oa_kit.errors import OAKitError
from oa_kit.imaging.preprocess import KL_INPUT_SIZE, kl_input
from oa_kit.io.atomic import atomic_path
from oa_kit.io.chen import read_chen
from oa_kit.io.radiograph import read_gray_array

PACK_FORMAT = "oa_kit.kl.pack/1"


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG/JPEG as a 2-D array (8- or 16-bit kept), size-checked before decoding; palette/grey+alpha/grey-RGB
    become luminance, true colour raises (:func:`oa_kit.io.radiograph.read_gray_array`)."""
    return read_gray_array(path)


def chen_input(path: str | os.PathLike, side: str, size: int = KL_INPUT_SIZE) -> np.ndarray:
    """Model input (1, size, size) for one Chen image: left knees mirrored, no CLAHE (the copy is CLAHE-enhanced)."""
    image = read_gray(path)
    if side == "L":
        image = image[:, ::-1]
    return kl_input(image, size=size, clahe=False)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Quantise a [0, 1] float image to uint8 (round half up)."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def roi_arrays(rois: list[np.ndarray], clahe: bool = True, size: int = KL_INPUT_SIZE) -> np.ndarray:
    """Training/inference arrays (N, size, size) uint8 from knee ROIs in right orientation (e.g. ``KneeROI.pixels``)."""
    return np.stack([to_uint8(kl_input(roi, size=size, clahe=clahe)[0]) for roi in rois])


def load_chen_arrays(
    data_dir: str | os.PathLike,
    splits: tuple[str, ...] = ("train", "val"),
    size: int = KL_INPUT_SIZE,
    limit: int | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Preprocess Chen images into uint8 arrays (N, size, size) plus their index table (path, participant_id, side, kl, split)."""
    frame = read_chen(data_dir, splits=splits)
    if limit is not None:
        frame = frame.groupby("split", group_keys=False).head(limit).reset_index(drop=True)
    images = np.empty((len(frame), size, size), dtype=np.uint8)
    for i, row in enumerate(tqdm(frame.itertuples(), total=len(frame), desc="preprocess", disable=not progress)):
        images[i] = to_uint8(chen_input(row.path, row.side, size)[0])
    return images, frame


def pack_chen(
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    size: int = KL_INPUT_SIZE,
    quality: int = 85,
    progress: bool = True,
) -> Path:
    """Write the preprocessed Chen images as JPEG bytes in ONE ``.npz`` (no pickle) for training elsewhere; returns the path."""
    images, frame = load_chen_arrays(data_dir, size=size, progress=progress)
    blobs = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality, optimize=True)
        blobs.append(np.frombuffer(buffer.getvalue(), dtype=np.uint8))
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    meta = {"format": PACK_FORMAT, "size": size, "quality": quality, "source": str(data_dir)}
    target = Path(out)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                jpeg=np.concatenate(blobs),
                offsets=offsets,
                kl=frame["kl"].to_numpy(np.int8),
                split=frame["split"].to_numpy(str),
                participant_id=frame["participant_id"].to_numpy(str),
                side=frame["side"].to_numpy(str),
                meta=np.array(json.dumps(meta)),
            )
    return target


def load_pack(path: str | os.PathLike) -> tuple[np.ndarray, pd.DataFrame]:
    """Decode a pack written by :func:`pack_chen` into uint8 images (N, H, W) and a table (participant_id, side, kl, split)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            blob, offsets = data["jpeg"], data["offsets"]
            frame = pd.DataFrame(
                {
                    "participant_id": data["participant_id"],
                    "side": data["side"],
                    "kl": data["kl"].astype(np.int64),
                    "split": data["split"],
                }
            )
    except (OSError, KeyError, ValueError) as exc:
        raise OAKitError(f"{path}: not a KL pack ({exc}); expected a file written by `oa-kit kl pack`") from exc
    if meta.get("format") != PACK_FORMAT:
        raise OAKitError(f"{path}: format {meta.get('format')!r}; expected {PACK_FORMAT}")
    images = np.stack(
        [np.asarray(Image.open(io.BytesIO(blob[a:b].tobytes()))) for a, b in zip(offsets[:-1], offsets[1:])]
    )
    frame["path"] = [f"{path}#{i}" for i in range(len(frame))]
    return images, frame


def load_training_data(
    source: str | os.PathLike, size: int = KL_INPUT_SIZE, limit: int | None = None, progress: bool = True
) -> tuple[np.ndarray, pd.DataFrame]:
    """Images and table from a Chen folder or a ``.npz`` pack (chosen by what ``source`` is)."""
    if Path(source).is_file():
        images, frame = load_pack(source)
        if limit is not None:
            keep = frame.groupby("split", group_keys=False).head(limit).index.to_numpy()
            images, frame = images[keep], frame.loc[keep].reset_index(drop=True)
        return images, frame
    return load_chen_arrays(source, size=size, limit=limit, progress=progress)
