"""MRI speed/memory benchmark: segmentation + cartilage biomarkers per synthetic volume, and one OAI-DESS-sized volume.

Run: ``OMP_NUM_THREADS=2 python benchmarks/mri_speed.py [--n 3] [--oai] [--compare-architectures]``.
Prints seconds and peak memory (tracemalloc for Python/numpy allocations, ru_maxrss for the whole process).
``--compare-architectures`` trains a 2D slice-wise and a 3D patch U-Net for the same CPU time on phantoms and
prints their validation Dice and inference time (the measurement behind the model card's choice).
"""
from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc

import numpy as np
import torch

from oa_kit.io.labels import SUBREGIONS
from oa_kit.models.mri.inference import MRISegmenter
from oa_kit.synth.mri import DEFAULT_GEOMETRY, SITE_MRI, MRIGeometry, render_knee_mri


def _run_knee(segmenter: MRISegmenter, image: np.ndarray, affine: np.ndarray, side: str) -> tuple[float, float]:
    """Seconds for segmentation and for biomarkers (+QC) of one volume."""
    from oa_kit.features.cartilage import measure_cartilage
    from oa_kit.features.mri_qc import qc_flags

    t0 = time.perf_counter()
    seg = segmenter.segment(image, affine, side)
    t1 = time.perf_counter()
    measure_cartilage(seg.labels, affine, side, proba=seg.proba)
    qc_flags(seg.labels, affine, side, seg.proba)
    return t1 - t0, time.perf_counter() - t1


def _time_knee(segmenter: MRISegmenter, image: np.ndarray, affine: np.ndarray, side: str,
               memory: bool = True) -> tuple[float, float, float]:
    """Timed run (no tracing), then a second traced run for the tracemalloc peak (MiB) unless ``memory`` is False."""
    seg_s, bio_s = _run_knee(segmenter, image, affine, side)
    peak = float("nan")
    if memory:
        tracemalloc.start()
        _run_knee(segmenter, image, affine, side)
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
    return seg_s, bio_s, peak


def bench_synthetic(segmenter: MRISegmenter, n: int) -> None:
    """Time ``n`` default-geometry phantoms."""
    rng = np.random.default_rng(0)
    for i in range(n):
        side = "RL"[i % 2]
        r = render_knee_mri(side, {s: float(rng.uniform(1, 3)) for s in SUBREGIONS}, DEFAULT_GEOMETRY, SITE_MRI["ABCDE"[i % 5]], seed=i)
        seg_s, bio_s, peak = _time_knee(segmenter, r.image, r.affine, side, memory=i == 0)
        print(f"synthetic {r.image.shape} {side}: segmentation {seg_s:.2f} s + biomarkers/QC {bio_s:.2f} s "
              f"= {seg_s + bio_s:.2f} s; tracemalloc peak {peak:.0f} MiB")


def bench_oai(segmenter: MRISegmenter) -> None:
    """Time one volume of real OAI DESS geometry: 160 x 384 x 384 at 0.7 x 0.365 x 0.365 mm (synthetic content)."""
    geom = MRIGeometry(shape=(160, 384, 384), spacing_mm=(0.7, 0.3646, 0.3646))
    r = render_knee_mri("R", {s: 2.0 for s in SUBREGIONS}, geom, SITE_MRI["A"], seed=0)
    seg_s, bio_s, peak = _time_knee(segmenter, r.image, r.affine, "R", memory=False)
    print(f"OAI DESS geometry {r.image.shape}: segmentation {seg_s:.2f} s + biomarkers/QC {bio_s:.2f} s "
          f"= {seg_s + bio_s:.2f} s; tracemalloc peak {peak:.0f} MiB")


def compare_architectures(seconds: float, seed: int = 0) -> None:
    """Train 2D slice-wise and 3D patch U-Nets for the same CPU time; print validation cartilage Dice and inference time."""
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceCELoss

    from oa_kit.models.mri.network import build_unet, harmonised_to_network
    from oa_kit.models.mri.train import render_phantom_cases
    from oa_kit.models.mri.transforms import normalise_intensity

    cases = render_phantom_cases(8, seed=seed, progress=False)
    train, val = cases[:12], cases[12:]
    img = torch.from_numpy(np.stack([normalise_intensity(c.image) for c in train]))[:, None]
    lab = torch.from_numpy(np.stack([harmonised_to_network(c.labels) for c in train]))[:, None]
    for dims, channels in ((2, (8, 16, 32, 64)), (3, (8, 16, 32, 64))):
        torch.manual_seed(seed)
        net = build_unet(dims, channels)
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
        gen = torch.Generator().manual_seed(seed)
        t_end, steps = time.process_time() + seconds, 0
        while time.process_time() < t_end:
            if dims == 2:
                v = torch.randint(0, len(img), (8,), generator=gen)
                s = torch.randint(4, img.shape[2] - 4, (8,), generator=gen)
                x, y = img[v, :, s], lab[v, :, s]
            else:
                v = int(torch.randint(0, len(img), (1,), generator=gen))
                x, y = img[v:v + 1, :, 4:36, 16:112, 16:112], lab[v:v + 1, :, 4:36, 16:112, 16:112]
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            steps += 1
        net.eval()
        dices, t0 = [], time.perf_counter()
        with torch.no_grad():
            for c in val:
                x = torch.from_numpy(normalise_intensity(c.image))[None, None]
                if dims == 2:
                    pred = net(x[0].permute(1, 0, 2, 3)).argmax(1).numpy()
                else:
                    pred = sliding_window_inference(x, (32, 96, 96), 1, net).argmax(1)[0].numpy()
                truth = harmonised_to_network(c.labels)
                for k in (2, 4, 6):
                    a, b = pred == k, truth == k
                    dices.append(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
        infer = (time.perf_counter() - t0) / len(val)
        print(f"{dims}D U-Net {channels}: {steps} steps in {seconds:.0f} CPU-s, val cartilage Dice {np.mean(dices):.3f}, "
              f"inference {infer:.2f} s/volume")


def main() -> None:
    """Parse arguments and run the requested benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3, help="synthetic volumes to time")
    parser.add_argument("--oai", action="store_true", help="also time one 160x384x384 OAI-DESS-sized volume")
    parser.add_argument("--compare-architectures", type=float, default=0.0, metavar="CPU_S",
                        help="train 2D and 3D U-Nets for this many CPU seconds each and compare")
    parser.add_argument("--weights", default=None)
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    if args.compare_architectures:
        compare_architectures(args.compare_architectures)
        return
    segmenter = MRISegmenter.from_pretrained(args.weights)
    bench_synthetic(segmenter, args.n)
    if args.oai:
        bench_oai(segmenter)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
