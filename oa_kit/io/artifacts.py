"""Model artifacts on disk: the one checksum scheme (sha256 of each file's bytes) in its two forms.

- A weights file and its JSON sidecar (``weights.safetensors`` + ``weights.json`` holding ``sha256``):
  :func:`verified_sidecar`.
- A model folder with ``checksums.json`` listing every file it holds: :func:`write_checksums` and
  :func:`verify_checksums`, which refuses a folder whose list does not cover every file the loader reads.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from oa_kit.errors import OAKitError


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks (checksums of shipped weights and cohort files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_sidecar(weights: str | os.PathLike, what: str, pinned: Mapping[str, str] | None = None) -> dict:
    """Read the ``.json`` beside ``weights`` and check its ``sha256`` against the file; errors name the file.

    ``what`` names the artifact in messages (e.g. "KL weights"). ``pinned`` maps file names to the sha256 oa_kit
    ships them with (weights and sidecar): a shipped file that was edited, sidecar included, is refused even when the
    sidecar's recorded sha256 was edited to match. Returns the sidecar's contents.
    """
    weights = Path(weights)
    sidecar = weights.with_suffix(".json")
    if not weights.is_file():
        raise OAKitError(
            f"{weights}: {what} file missing; expected it to ship with oa_kit (reinstall) or pass its path"
        )
    if not sidecar.is_file():
        raise OAKitError(
            f"{sidecar}: {what} sidecar missing; expected the JSON with its sha256 written beside the weights"
        )
    try:
        info = json.loads(sidecar.read_text())
    except json.JSONDecodeError as exc:
        raise OAKitError(f"{sidecar}: not valid JSON ({exc.msg}); expected the {what} sidecar") from exc
    if not isinstance(info, dict):
        raise OAKitError(f"{sidecar}: JSON {type(info).__name__}; expected an object with the {what} settings")
    for path in (weights, sidecar):
        if pinned and path.name in pinned:
            verify_file(path, pinned[path.name], f"the sha256 pinned in oa_kit for the shipped {what}")
    verify_file(weights, info.get("sha256"), f"the sha256 of the {what} in {sidecar.name}")
    return info


def verify_file(path: Path, expected: object, source: str) -> None:
    """Raise unless ``path``'s sha256 equals ``expected`` (as recorded in ``source``, named in the message)."""
    actual = sha256_file(path)
    if actual != expected:
        raise OAKitError(
            f"{path}: sha256 {actual[:12]}… does not match {source}; expected {str(expected)[:12]}… "
            "(the file changed after it was written)"
        )


#: The checksum list of a model folder.
CHECKSUM_FILE = "checksums.json"


def write_checksums(folder: str | os.PathLike, names: Sequence[str]) -> Path:
    """Write ``folder/checksums.json`` with the sha256 of each named file (write it last: it vouches for the rest)."""
    folder = Path(folder)
    checksums = {name: sha256_file(folder / name) for name in names}
    path = folder / CHECKSUM_FILE
    path.write_text(json.dumps(checksums, indent=1), encoding="utf-8")
    return path


def verify_checksums(folder: str | os.PathLike, required: Sequence[str]) -> dict[str, str]:
    """Check every file listed in ``folder/checksums.json`` and that the list covers each ``required`` file.

    A file the loader reads but the list leaves out (e.g. an edited ``metadata.json`` dropped from the list) is an
    error, as is any mismatch; returns the list.
    """
    folder = Path(folder)
    path = folder / CHECKSUM_FILE
    if not path.is_file():
        raise OAKitError(f"{path}: missing; expected the checksum list of a model folder")
    try:
        checksums = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OAKitError(f"{path}: not valid JSON ({exc}); expected {{file: sha256}}") from None
    if not isinstance(checksums, dict) or not all(isinstance(v, str) for v in checksums.values()):
        raise OAKitError(f"{path}: not a {{file: sha256}} object; expected one sha256 per file")
    for name in required:
        if name not in checksums:
            raise OAKitError(f"{path}: no entry for {name}; expected every file the model loads to be listed")
    for name, expected in checksums.items():
        listed = folder / name
        if Path(name).name != name or not listed.is_file():
            raise OAKitError(f"{listed}: missing; expected it as listed in {CHECKSUM_FILE}")
        verify_file(listed, expected, f"its entry in {CHECKSUM_FILE}")
    return checksums


def check_settings(info: Mapping, fields: Mapping[str, tuple[type, float, float]], source: Path) -> None:
    """Type- and range-check the numeric settings of a sidecar: ``fields`` maps a key to (type, low, high), both
    bounds exclusive; a missing key, a string where a number belongs or a value out of range is one line."""
    for key, (kind, low, high) in fields.items():
        value = info.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and value != int(value)):
            raise OAKitError(f"{source}: {key} = {value!r}; expected a {kind.__name__}")
        if not low < value < high:
            raise OAKitError(f"{source}: {key} = {value!r}; expected a value between {low} and {high} (exclusive)")
