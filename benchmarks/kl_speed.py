"""KL CNN speed on this machine's CPU: ms/knee batched, ms for one knee incl. preprocessing and Grad-CAM, training images/s.

Each figure is the fastest of ``--repeats`` calls after a warm-up, as wall time and as this process's CPU time. The load
average is printed beside every line: on a shared machine (load above the core count) wall times mostly measure the other
processes, and CPU time / threads estimates the wall time on idle cores. Under heavy load that estimate is still too high
with 2 threads (an OpenMP thread spins while its sibling is descheduled), so the figures are repeated with 1 thread, whose
CPU time is close to the wall time on one idle core (an upper bound for two). On a busy machine, running with
``OMP_WAIT_POLICY=PASSIVE`` (read when torch loads, so set it in the environment) stops that spinning and cut the 2-thread
wall time about 3× here. Both inference paths are timed:
``fused`` (the default ``KLGrader``: BatchNorm folded into the convolutions, channels-last) and ``plain`` (the module as
trained, ``KLGrader(fuse=False)``); they give the same probabilities up to float rounding.

Run: ``python benchmarks/kl_speed.py [--threads 2 1] [--knees 256] [--no-train]``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch

from oa_kit.explain.gradcam import grader_gradcam
from oa_kit.imaging.preprocess import kl_input
from oa_kit.models.kl.predict import KLGrader
from oa_kit.models.kl.train import KLTrainer


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Fastest wall time and fastest process CPU time (s) of ``repeats`` calls after one warm-up."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def load() -> str:
    """1-minute load average, for printing beside a figure."""
    return f"load {os.getloadavg()[0]:.1f}"


def batched(graders: dict[str, KLGrader], x: np.ndarray, threads: int, repeats: int) -> None:
    """Print ms/knee of ``predict_proba`` on a batch for each path, batch size and TTA setting."""
    for name, batch_size, tta in (("fused", 32, 1), ("plain", 32, 1), ("fused", 64, 1), ("fused", 32, 3)):
        grader = graders[name]
        grader.tta, grader.batch_size = tta, batch_size
        wall, cpu = timed(lambda g=grader: g.predict_proba(x), repeats)
        grader.tta, grader.batch_size = 1, 32
        print(
            f"{threads} thread(s) batched {name} (batch {batch_size}, TTA {tta}): {1000 * wall / len(x):6.2f} ms/knee wall, "
            f"{1000 * cpu / len(x):6.2f} ms/knee CPU (≈ {1000 * cpu / len(x) / threads:5.2f} ms wall on "
            f"{threads} idle core(s))  [{load()}]",
            flush=True,
        )


def single_knee(graders: dict[str, KLGrader], threads: int, repeats: int) -> None:
    """Print ms for one knee: preprocessing with CLAHE, calibrated probabilities, conformal set and Grad-CAM."""
    roi = np.random.default_rng(1).random((280, 280)).astype(np.float32)
    for name, grader in graders.items():

        def one_knee(grader: KLGrader = grader) -> None:
            x = kl_input(roi)[None]
            proba = grader.predict_proba(x)
            grader.predict_sets_from_proba(proba)
            grader_gradcam(grader, x, target=proba.argmax(1))

        wall, cpu = timed(one_knee, repeats)
        print(
            f"{threads} thread(s) single knee {name} (preprocess + CLAHE + probabilities + set + Grad-CAM): {1000 * wall:6.1f} ms wall, "
            f"{1000 * cpu:6.1f} ms CPU (≈ {1000 * cpu / threads:5.1f} ms wall on {threads} idle core(s))  [{load()}]",
            flush=True,
        )


def training(threads: int) -> None:
    """Print CPU training throughput (images/s) for one epoch of 128 random images."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (128, 160, 160), dtype=np.uint8)
    labels = rng.integers(0, 5, 128)
    trainer = KLTrainer(epochs=1, batch_size=32, device="cpu", progress=False, ema_decay=0.998)
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.fit(images, labels, images[:8], labels[:8])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"CPU training throughput ({threads} threads, batch 32, augmentation + EMA): {128 / wall:.1f} images/s wall, "
        f"{128 / cpu * threads:.1f} images/s from CPU time on {threads} idle cores  [{load()}]"
    )


def main() -> None:
    """Print the speed figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="thread counts to time, in turn")
    parser.add_argument("--knees", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-train", action="store_true", help="skip the training-throughput figure")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
        f"{load()} at start"
    )
    graders = {"fused": KLGrader.from_pretrained(), "plain": KLGrader.from_pretrained(fuse=False)}
    x = np.random.default_rng(0).random((args.knees, 1, 160, 160), dtype=np.float32)
    for threads in args.threads:
        torch.set_num_threads(threads)
        batched(graders, x, threads, args.repeats)
        single_knee(graders, threads, 5 * args.repeats)
    if not args.no_train:
        torch.set_num_threads(args.threads[0])
        training(args.threads[0])


if __name__ == "__main__":
    main()
