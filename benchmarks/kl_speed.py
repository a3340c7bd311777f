"""KL CNN speed on this machine's CPU: ms/knee batched, ms for one knee incl. preprocessing and Grad-CAM, training images/s.

Run: ``python benchmarks/kl_speed.py [--threads 2]``. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from oa_kit.imaging.preprocess import kl_input
from oa_kit.models.kl.predict import KLGrader
from oa_kit.models.kl.train import KLTrainer


def _best_of(fn, repeats: int = 3) -> float:
    """Fastest wall time (s) of ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Print the three speed figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--knees", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads {args.threads}; load average before: {os.getloadavg()[0]:.1f} (figures scale with machine load)")
    rng = np.random.default_rng(0)
    grader = KLGrader.from_pretrained()
    x = rng.random((args.knees, 1, 160, 160), dtype=np.float32)
    for tta in (1, 3):
        grader.tta = tta
        cpu0 = time.process_time()
        seconds = _best_of(lambda: grader.predict_proba(x))
        cpu_per_knee = (time.process_time() - cpu0) / (4 * args.knees)
        print(f"batched inference (batch {grader.batch_size}, TTA {tta}): {1000 * seconds / args.knees:.2f} ms/knee wall, "
              f"{1000 * cpu_per_knee:.2f} ms/knee CPU time (≈ {1000 * cpu_per_knee / args.threads:.2f} ms wall on "
              f"{args.threads} idle cores)")
    grader.tta = 1
    roi = rng.random((280, 280)).astype(np.float32)

    def single() -> None:
        one = kl_input(roi)[None]
        grader.predict_proba(one)
        grader.predict_sets(one)
        grader.gradcam(one)

    print(f"single knee (preprocess + CLAHE + probabilities + set + Grad-CAM): {1000 * _best_of(single):.1f} ms")
    images = rng.integers(0, 256, (128, 160, 160), dtype=np.uint8)
    labels = rng.integers(0, 5, 128)
    trainer = KLTrainer(epochs=1, batch_size=32, device="cpu", progress=False, ema_decay=0.998)
    start = time.perf_counter()
    trainer.fit(images, labels, images[:8], labels[:8])
    elapsed = time.perf_counter() - start
    print(f"CPU training throughput ({args.threads} threads, batch 32, augmentation + EMA): {128 / elapsed:.1f} images/s")


if __name__ == "__main__":
    main()
