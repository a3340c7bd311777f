"""Segmentation time per knee of the shipped MRI weights against other weights (e.g. the 2D stage-2 file against the
2.5D shipped one), alternated so that machine load affects both alike, on the phantom grid and the OAI DESS grid; also
the norm of each file's image-reading kernels per input channel (how much a 2.5D network uses its neighbours).

Usage: ``OMP_NUM_THREADS=2 python benchmarks/mri_weights_speed.py OTHER.safetensors [--threads 2] [--repeats 3]``
(the JSON must sit beside OTHER; e.g. ``git show 447863b:oa_kit/weights/mri_segmenter.safetensors`` and its .json for
the 2D stage-2 weights). Synthetic phantoms only; about 30 s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from oa_kit.io.labels import SUBREGIONS
from oa_kit.models.mri.inference import MRISegmenter
from oa_kit.synth.mri import MRI_GEOMETRIES, SITE_MRI, render_knee_mri


def input_kernel_norms(net: torch.nn.Module) -> str:
    """Norm of the image-reading kernels per input channel (how much a 2.5D network uses its neighbour channels)."""
    state = net.state_dict()
    keys = [k for k in ("model.0.conv.unit0.conv.weight", "model.0.residual.weight") if k in state]
    return "; ".join(
        f"{k} norm per input channel "
        + ", ".join(f"{float(state[k][:, c].norm()):.3f}" for c in range(state[k].shape[1]))
        for k in keys
    )


def main() -> None:
    """Print min and median ``segment()`` seconds per knee for each weights file and grid."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "other", type=Path, help="weights (.safetensors, JSON beside it) to compare with the shipped ones"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {"shipped": MRISegmenter.from_pretrained(), args.other.name: MRISegmenter.from_pretrained(args.other)}
    for name, model in models.items():
        print(
            f"{name}: {model.in_channels} input channel(s), context {model.context_mm} mm; "
            + input_kernel_norms(model.net_)
        )
    for grid, geometry in MRI_GEOMETRIES.items():
        r = render_knee_mri("R", {s: 2.0 for s in SUBREGIONS}, geometry, SITE_MRI["A"], seed=1)
        times: dict[str, list[float]] = {k: [] for k in models}
        for _ in range(args.repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model.segment(r.image, r.affine, "R")
                times[name].append(time.perf_counter() - start)
        for name, t in times.items():
            print(f"{grid} {r.image.shape}: {name} min {min(t):.2f} s, median {np.median(t):.2f} s per knee")


if __name__ == "__main__":
    main()
