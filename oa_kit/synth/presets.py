"""Size presets of the synthetic cohort: ``tiny`` (tests, seconds), ``workshop`` (600, the notebooks' smoke mode),
``demo`` (~500 participants), ``full`` (4000)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from oa_kit.errors import OAKitError
from oa_kit.synth import mri

if TYPE_CHECKING:
    from oa_kit.synth.mri import MRIGeometry


@dataclass(frozen=True)
class CohortPreset:
    """Counts and image geometry of one preset.

    Attributes
    ----------
    name : str
    n_participants : int, participants (two knees each).
    xray_field_mm : (height, width) of the bilateral PA radiograph field in mm.
    xray_spacing_mm : detector pixel spacing (mm) for every site, or ``None`` (all presets) for each site's own
        0.15–0.2 mm from ``oa_kit.synth.radiograph.SITE_PROFILES``.
    mri_shape, mri_spacing_mm : DESS-like volume grid, axes (LR, AP, SI); ``None`` uses
        ``oa_kit.synth.mri.DEFAULT_GEOMETRY``.
    """

    name: str
    n_participants: int
    xray_field_mm: tuple[float, float] = (180.0, 280.0)
    xray_spacing_mm: float | None = None
    mri_shape: tuple[int, int, int] | None = None
    mri_spacing_mm: tuple[float, float, float] | None = None
    balanced_kl: bool = False

    def mri_geometry(self) -> MRIGeometry:
        """The ``oa_kit.synth.mri.MRIGeometry`` of this preset (imports the renderer lazily)."""

        if self.mri_shape is None:
            return mri.DEFAULT_GEOMETRY
        return mri.MRIGeometry(shape=self.mri_shape, spacing_mm=self.mri_spacing_mm)


PRESETS: dict[str, CohortPreset] = {
    "tiny": CohortPreset("tiny", n_participants=8, balanced_kl=True),
    # enough knees for stable progression models in the notebooks (generate it with images=False: tables only)
    "workshop": CohortPreset("workshop", n_participants=600),
    "demo": CohortPreset("demo", n_participants=500),
    "full": CohortPreset("full", n_participants=4000),
}


def get_preset(name: str, n_participants: int | None = None) -> CohortPreset:
    """Look up a preset by name, optionally overriding its participant count (must be positive)."""
    if name not in PRESETS:
        raise OAKitError(f"preset: unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    preset = PRESETS[name]
    if n_participants is not None:
        if isinstance(n_participants, bool) or int(n_participants) != n_participants or n_participants <= 0:
            raise OAKitError(f"n_participants: {n_participants!r} is not a positive integer; expected ≥ 1")
        preset = dataclasses.replace(preset, n_participants=int(n_participants))
    if preset.n_participants <= 0:
        raise OAKitError(f"preset {name}: n_participants {preset.n_participants} is not positive; expected ≥ 1")
    return preset
