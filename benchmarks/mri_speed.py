"""MRI speed/memory benchmark: segmentation + cartilage biomarkers per synthetic volume, one OAI-DESS-sized volume,
and batch throughput of ``segment_scans`` (one process with 2 threads vs 1 thread vs worker processes).

Run: ``OMP_NUM_THREADS=2 python benchmarks/mri_speed.py [--n 3] [--oai] [--batch 20] [--compare-architectures CPU_S]``.
Prints seconds (wall and CPU) and peak memory: tracemalloc for Python/numpy allocations of a synthetic volume, and
the peak RSS of a fresh process that reads, segments and measures one OAI-sized NIfTI. The machine is shared, so the
load average is printed with every figure; times are upper bounds when it exceeds the core count.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from oa_kit.io.labels import SUBREGIONS
from oa_kit.models.mri.inference import MRISegmenter
from oa_kit.synth.mri import DEFAULT_GEOMETRY, SITE_MRI, MRIGeometry, render_knee_mri

#: Real OAI DESS geometry: 160 x 384 x 384 voxels at 0.7 x 0.365 x 0.365 mm.
OAI_GEOMETRY = MRIGeometry(shape=(160, 384, 384), spacing_mm=(0.7, 0.3646, 0.3646))


def _load() -> str:
    """The 1-minute load average and the core count, for every printed figure."""
    return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def _peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB): ``VmHWM`` (unlike ``ru_maxrss`` it does not inherit the
    peak of the process that forked and exec'd us)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_knee(segmenter: MRISegmenter, image: np.ndarray, affine: np.ndarray, side: str) -> tuple[float, float, float]:
    """Wall seconds for segmentation and for biomarkers (+QC) of one volume, and the CPU seconds of both."""
    from oa_kit.features.cartilage import measure_cartilage
    from oa_kit.features.mri_qc import qc_flags

    cpu, t0 = time.process_time(), time.perf_counter()
    seg = segmenter.segment(image, affine, side)
    t1 = time.perf_counter()
    measure_cartilage(seg.labels, affine, side, proba=seg.proba)
    qc_flags(seg.labels, affine, side, seg.proba)
    return t1 - t0, time.perf_counter() - t1, time.process_time() - cpu


def bench_synthetic(segmenter: MRISegmenter, n: int) -> None:
    """Time ``n`` default-geometry phantoms (then a traced rerun of the first for the tracemalloc peak)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        side = "RL"[i % 2]
        r = render_knee_mri(
            side, {s: float(rng.uniform(1, 3)) for s in SUBREGIONS}, DEFAULT_GEOMETRY, SITE_MRI["ABCDE"[i % 5]], seed=i
        )
        seg_s, bio_s, cpu_s = _run_knee(segmenter, r.image, r.affine, side)
        peak = float("nan")
        if i == 0:
            tracemalloc.start()
            _run_knee(segmenter, r.image, r.affine, side)
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        print(
            f"synthetic {r.image.shape} {side}: segmentation {seg_s:.2f} s + biomarkers/QC {bio_s:.2f} s "
            f"= {seg_s + bio_s:.2f} s wall ({cpu_s:.2f} s CPU); tracemalloc peak {peak:.0f} MiB; {_load()}",
            flush=True,
        )


def oai_worker(path: str, weights: str | None, biomarkers: bool) -> None:
    """In a fresh process: read one OAI-sized NIfTI, segment, measure; print times and peak RSS after each step."""
    from oa_kit.features.cartilage import measure_cartilage
    from oa_kit.features.mri_qc import qc_flags
    from oa_kit.io.scans import read_scan

    segmenter = MRISegmenter.from_pretrained(weights)
    base = _peak_rss_mib()
    scan = read_scan(path)
    read_peak = _peak_rss_mib()
    cpu, t0 = time.process_time(), time.perf_counter()
    seg = segmenter.segment(scan.image, scan.affine, "R")
    seg_s, seg_cpu = time.perf_counter() - t0, time.process_time() - cpu
    print(
        f"OAI DESS geometry {scan.image.shape}: segmentation {seg_s:.1f} s wall ({seg_cpu:.1f} s CPU, torch threads "
        f"{torch.get_num_threads()}); peak RSS {base:.0f} MiB after imports + model, {read_peak:.0f} MiB after reading "
        f"the NIfTI, {_peak_rss_mib():.0f} MiB after segmentation; {_load()}",
        flush=True,
    )
    if biomarkers:
        cpu, t1 = time.process_time(), time.perf_counter()
        measure_cartilage(seg.labels, scan.affine, "R", proba=seg.proba)
        qc_flags(seg.labels, scan.affine, "R", seg.proba)
        bio_s = time.perf_counter() - t1
        print(
            f"OAI DESS geometry: biomarkers/QC {bio_s:.1f} s wall ({time.process_time() - cpu:.1f} s CPU); total "
            f"{seg_s + bio_s:.1f} s; peak RSS {_peak_rss_mib():.0f} MiB after biomarkers; {_load()}",
            flush=True,
        )


def bench_oai(weights: str | None, cache: Path, biomarkers: bool) -> None:
    """Render (once, cached) one OAI-geometry phantom as NIfTI and time it in a fresh process (clean peak RSS)."""
    from oa_kit.synth.mri import write_knee_mri

    image = cache / "9999999_R_V00_DESS.nii.gz"
    if not image.is_file():
        r = render_knee_mri("R", {s: 2.0 for s in SUBREGIONS}, OAI_GEOMETRY, SITE_MRI["A"], seed=0)
        write_knee_mri(cache, "9999999", "R", 0, r)
    cmd = [sys.executable, __file__, "--oai-worker", str(image)] + (["--weights", weights] if weights else [])
    cmd += [] if biomarkers else ["--segmentation-only"]
    subprocess.run(cmd, check=True)


def bench_batch(n: int, weights: str | None, scans_dir: Path) -> None:
    """Throughput of ``segment_scans`` on ``n`` scans: 1 process x 2 threads, 1 x 1, and 2 worker processes x 1 thread."""
    from oa_kit.workflows.mri import segment_scans

    scans = sorted(scans_dir.glob("*_DESS.nii.gz"))[:n]
    if len(scans) < n:
        raise SystemExit(f"{scans_dir}: only {len(scans)} scans; run `oa-kit demo` first or pass --scans")
    for jobs, threads in ((1, 2), (1, 1), (2, 1)):
        out = Path(tempfile.mkdtemp(prefix="mri_batch_"))
        try:
            load0, t0 = os.getloadavg()[0], time.perf_counter()
            segment_scans(scans, out, weights=weights, n_jobs=jobs, threads=threads, progress=False)
            wall = time.perf_counter() - t0
            done = sorted(p.stat().st_mtime for p in (out / "knees").glob("*.json"))
        finally:
            shutil.rmtree(out, ignore_errors=True)
        steady = (done[-1] - done[0]) / max(len(done) - 1, 1)
        print(
            f"batch of {n}: {jobs} process(es) x {threads} torch thread(s): {wall:.1f} s = {wall / n:.2f} s/scan "
            f"(incl. start-up), {steady:.2f} s/scan between first and last finished scan; "
            f"load {load0:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
            flush=True,
        )


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
                x, y = img[v : v + 1, :, 4:36, 16:112, 16:112], lab[v : v + 1, :, 4:36, 16:112, 16:112]
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
        print(
            f"{dims}D U-Net {channels}: {steps} steps in {seconds:.0f} CPU-s, val cartilage Dice {np.mean(dices):.3f}, "
            f"inference {infer:.2f} s/volume"
        )


def main() -> None:
    """Parse arguments and run the requested benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3, help="synthetic volumes to time (0: none)")
    parser.add_argument("--oai", action="store_true", help="also time one 160x384x384 OAI-DESS-sized volume")
    parser.add_argument("--oai-cache", default="runs/mri_speed_oai", help="folder caching the rendered OAI-sized NIfTI")
    parser.add_argument("--oai-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--segmentation-only", action="store_true", help="--oai: skip the (slow) biomarkers")
    parser.add_argument("--batch", type=int, default=0, metavar="N", help="time segment_scans on N scans per setting")
    parser.add_argument("--scans", default="demo_out/cohort/mri", help="folder of *_DESS.nii.gz scans for --batch")
    parser.add_argument(
        "--compare-architectures",
        type=float,
        default=0.0,
        metavar="CPU_S",
        help="train 2D and 3D U-Nets for this many CPU seconds each and compare",
    )
    parser.add_argument("--weights", default=None)
    args = parser.parse_args()
    if args.oai_worker:
        oai_worker(args.oai_worker, args.weights, not args.segmentation_only)
        return
    print(f"torch threads: {torch.get_num_threads()}; {_load()}")
    if args.compare_architectures:
        compare_architectures(args.compare_architectures)
        return
    if args.n:
        bench_synthetic(MRISegmenter.from_pretrained(args.weights), args.n)
    if args.oai:
        bench_oai(args.weights, Path(args.oai_cache), not args.segmentation_only)
    if args.batch:
        bench_batch(args.batch, args.weights, Path(args.scans))


if __name__ == "__main__":
    main()
