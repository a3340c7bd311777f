"""Model artifacts on disk: sha256 checksums and the JSON sidecars that vouch for shipped weights."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from oa_kit.errors import OAKitError


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks (checksums of shipped weights and cohort files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_sidecar(weights: str | os.PathLike, what: str) -> dict:
    """Read the ``.json`` beside ``weights`` and check its ``sha256`` against the file; errors name the file.

    ``what`` names the artifact in messages (e.g. "KL weights"). Returns the sidecar's contents.
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
    actual = sha256_file(weights)
    if actual != info.get("sha256"):
        raise OAKitError(
            f"{weights}: sha256 {actual[:12]}… does not match {str(info.get('sha256'))[:12]}… in "
            f"{sidecar.name}; expected the unmodified {what} file"
        )
    return info
