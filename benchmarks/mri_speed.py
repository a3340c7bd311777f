"""MRI speed/memory benchmark: one knee segmented and measured (``oa_kit.features.mri_knee.analyse_knee``: segmenter,
cartilage biomarkers, QC) per volume size, each in a fresh process; and batch throughput of ``segment_scans``.

Run: ``python benchmarks/mri_speed.py [--sizes phantom ge-dess oai-dess] [--threads 2] [--batch 20]
[--compare-architectures CPU_S]``. For every size a water-excited DESS phantom (``oa_kit.synth.mri``) is rendered
once on that grid (cached under ``--cache``) and written as NIfTI in the file voxel order of that kind of scan; a
fresh process then reads it, loads the weights and runs ``analyse_knee`` with ``--threads`` torch threads. Printed:
wall seconds (read, segmentation, biomarkers + QC), CPU seconds, and the process's peak RSS from
``resource``/``os.wait4`` (the child's ``ru_maxrss``: this parent holds no volume when it starts one), plus the
1-minute load average before and after: the machine is shared, and times are upper bounds when the load exceeds the
core count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from numpy._core import multiarray

from oa_kit.features.mri_knee import analyse_knee
from oa_kit.io.mri import MRIVolume, write_nifti
from oa_kit.io.scans import read_scan
from oa_kit.models.mri.inference import MRISegmenter
from oa_kit.synth.mri import (
    DEFAULT_GEOMETRY,
    DEFAULT_THICKNESS_MM,
    SITE_MRI,
    TISSUE_CONTRASTS,
    MRIGeometry,
    render_knee_mri,
)

#: Volume sizes: name -> (grid the phantom is rendered on as (LR, AP, SI), axis order of the file, what it stands for).
#: ``(1, 2, 0)`` stores (AP, SI, LR), a sagittal DICOM series' (rows, columns, slices) order.
SIZES = {
    "phantom": (DEFAULT_GEOMETRY, (0, 1, 2), "phantom grid 40 x 128 x 128 at 2.0 x 0.5 x 0.5 mm"),
    "ge-dess": (
        MRIGeometry(shape=(80, 512, 512), spacing_mm=(1.5, 0.3125, 0.3125)),
        (1, 2, 0),
        "GE 3T qDESS series 512 x 512 x 80 at 0.31 x 0.31 x 1.5 mm",
    ),
    "oai-dess": (
        MRIGeometry(shape=(160, 384, 384), spacing_mm=(0.7, 0.3646, 0.3646)),
        (0, 1, 2),
        "OAI 3D DESS 160 x 384 x 384 at 0.7 x 0.365 x 0.365 mm",
    ),
}


def _load() -> float:
    """The 1-minute load average (printed with every figure)."""
    return os.getloadavg()[0]


def _peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB, ``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def render_size(name: str, path: Path, contrast: str) -> None:
    """Render the phantom of one size (right knee, default thickness, site A, seed 0) and write it in its file order."""
    geometry, order, _ = SIZES[name]
    r = render_knee_mri("R", DEFAULT_THICKNESS_MM, geometry, SITE_MRI["A"], seed=0, contrast=contrast)
    perm = np.zeros((4, 4))
    perm[3, 3] = 1.0
    perm[list(order), list(range(3))] = 1.0  # file voxel index -> rendered voxel index
    image = np.ascontiguousarray(np.transpose(r.image, order)).astype(np.int16)
    write_nifti(path, MRIVolume(image, r.affine @ perm, metadata={"side": "R"}))


class _TimedSegmenter:
    """Wraps a segmenter to record the wall time and the peak RSS of its ``segment`` call inside ``analyse_knee``."""

    def __init__(self, segmenter: MRISegmenter) -> None:
        self.segmenter = segmenter
        self.seconds = 0.0
        self.peak_mib = 0.0

    @property
    def weights_sha256(self) -> str:
        """The wrapped segmenter's weights (named in the MRI row)."""
        return self.segmenter.weights_sha256

    def segment(self, volume: np.ndarray, affine: np.ndarray, side: str):
        """``MRISegmenter.segment``, timed."""
        t0 = time.perf_counter()
        out = self.segmenter.segment(volume, affine, side)
        self.seconds, self.peak_mib = time.perf_counter() - t0, _peak_rss_mib()
        return out


def knee_worker(path: str, weights: str | None, threads: int, numpy_hugepages: bool = False) -> None:
    """In a fresh process: read one scan, load the weights, ``analyse_knee``; print one JSON line of figures.

    ``numpy_hugepages`` keeps NumPy's transparent-hugepage advice on inside the MRI steps (``small_pages`` is made to
    change nothing in this process), to measure what ``oa_kit.hugepages`` saves."""
    if numpy_hugepages:
        multiarray._set_madvise_hugepage(True)
        multiarray._set_madvise_hugepage = lambda flag: True  # small_pages reads and restores "on": a no-op here
    torch.set_num_threads(threads)
    cpu0, t0 = time.process_time(), time.perf_counter()
    scan = read_scan(path)
    t1 = time.perf_counter()
    timed = _TimedSegmenter(MRISegmenter.from_pretrained(weights))
    t2 = time.perf_counter()
    result = analyse_knee(scan, timed, "R")
    t3 = time.perf_counter()
    row = result.row
    figures = {
        "shape": list(scan.image.shape),
        "read_s": t1 - t0,
        "load_weights_s": t2 - t1,
        "segmentation_s": timed.seconds,
        "biomarkers_qc_s": t3 - t2 - timed.seconds,
        "total_s": t3 - t0,
        "cpu_s": time.process_time() - cpu0,
        "peak_after_segmentation_mib": timed.peak_mib,
        "femoral_cartilage_ml": row["volume_mm3_femoral_cartilage"] / 1000.0,
        "qc": row["qc_reasons"] or "pass",
    }
    print(json.dumps(figures), flush=True)


def bench_sizes(
    names: list[str], weights: str | None, threads: int, cache: Path, contrast: str, numpy_hugepages: bool = False
) -> None:
    """Render (once) and time every size in a fresh process; print one line per size."""
    cache.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = cache / f"{name}_{contrast}_R_DESS.nii.gz"
        if not path.is_file():
            subprocess.run([sys.executable, __file__, "--render", name, str(path), "--contrast", contrast], check=True)
        cmd = [sys.executable, __file__, "--knee-worker", str(path), "--threads", str(threads)]
        cmd += ["--weights", weights] if weights else []
        cmd += ["--numpy-hugepages"] if numpy_hugepages else []
        load0 = _load()
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        if status:
            raise SystemExit(f"{name}: worker failed (status {status})")
        f = json.loads(out.strip().splitlines()[-1])
        print(
            f"{name} ({SIZES[name][2]}, {contrast} contrast, file {' x '.join(map(str, f['shape']))}): "
            f"read {f['read_s']:.1f} s + segmentation {f['segmentation_s']:.1f} s + biomarkers/QC "
            f"{f['biomarkers_qc_s']:.1f} s = {f['read_s'] + f['segmentation_s'] + f['biomarkers_qc_s']:.1f} s wall "
            f"({usage.ru_utime + usage.ru_stime:.1f} s CPU, {threads} torch threads; weights load "
            f"{f['load_weights_s']:.1f} s); peak RSS {usage.ru_maxrss / 1024:.0f} MiB "
            f"({f['peak_after_segmentation_mib']:.0f} MiB after segmentation); femoral cartilage "
            f"{f['femoral_cartilage_ml']:.1f} mL, QC {f['qc']}; load {load0:.1f} -> {_load():.1f} on "
            f"{os.cpu_count()} cores" + ("; NumPy hugepage advice kept on" if numpy_hugepages else ""),
            flush=True,
        )


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
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES), help="volume sizes to time")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the measuring process")
    parser.add_argument("--cache", default="runs/mri_speed", help="folder caching the rendered NIfTI volumes")
    parser.add_argument(
        "--contrast",
        default="we-dess",
        choices=sorted(TISSUE_CONTRASTS),
        help="phantom contrast (we-dess: real water-excited DESS, dark marrow)",
    )
    parser.add_argument("--render", nargs=2, metavar=("SIZE", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--knee-worker", default=None, help=argparse.SUPPRESS)
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
    parser.add_argument(
        "--numpy-hugepages",
        action="store_true",
        help="keep NumPy's transparent-hugepage advice on (what the run costs without oa_kit.hugepages.small_pages)",
    )
    args = parser.parse_args()
    if args.render:
        render_size(args.render[0], Path(args.render[1]), args.contrast)
        return
    if args.knee_worker:
        knee_worker(args.knee_worker, args.weights, args.threads, args.numpy_hugepages)
        return
    print(f"{_load():.1f} load on {os.cpu_count()} cores at start")
    if args.compare_architectures:
        compare_architectures(args.compare_architectures)
        return
    bench_sizes(args.sizes, args.weights, args.threads, Path(args.cache), args.contrast, args.numpy_hugepages)
    if args.batch:
        bench_batch(args.batch, args.weights, Path(args.scans))


if __name__ == "__main__":
    main()
