"""Val-split scores of the earlier KL training runs and of probability-averaged ensembles of the top-k runs (Chen val).

Each run's ``best.safetensors`` (EMA weights at its best val epoch) predicts the Chen val split, images read and
preprocessed as ``oa-kit kl evaluate`` does; probabilities are uncalibrated (temperature 1). Runs are ranked by their
own val QWK and the top-k are averaged at the probability level. **Both the checkpoints (early stopping) and the
ranking/k are chosen on val, so every ensemble number here is optimistic**; the ``cross-fitted`` row picks the ranking
and k on one half of the val participants and scores the other half (then swaps), which removes the selection bias of the
ensemble step (not that of early stopping). The last lines give a paired participant bootstrap of the QWK gain over the
shipped model and the inference cost (CPU ms per knee, which grows linearly with the number of members).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/kl_ensemble.py [--data DIR] [--runs-dir runs] [--n-boot 1000]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import cohen_kappa_score

from oa_kit.metrics import kl_metrics, participant_bootstrap
from oa_kit.models.kl.data import load_chen_arrays
from oa_kit.models.kl.losses import logits_to_proba
from oa_kit.models.kl.network import fuse_for_inference
from oa_kit.models.kl.predict import KLGrader, load_network

REPO = Path(__file__).resolve().parents[1]
#: Training runs of the shipped model's two GPU sessions (see the model card's loss comparison).
RUNS = ("gpu1/ce", "gpu1/sord", "gpu1/corn", "gpu2/a", "gpu2/b", "gpu2/c", "gpu2/d", "gpu2/e")
METRICS = ("qwk", "accuracy", "balanced_accuracy", "mae")


def run_proba(weights: Path, x: torch.Tensor, batch_size: int = 32) -> tuple[np.ndarray, float]:
    """Uncalibrated grade probabilities (N, 5) of one run's weights and the CPU seconds per knee they took (fused path)."""
    model, meta, _ = load_network(weights)
    model = fuse_for_inference(model)
    start, logits = time.process_time(), []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            logits.append(model(x[i : i + batch_size].contiguous(memory_format=torch.channels_last)))
    proba = logits_to_proba(torch.cat(logits), meta["loss"]).numpy()
    return proba, (time.process_time() - start) / len(x)


def qwk(y: np.ndarray, proba: np.ndarray) -> float:
    """Quadratic weighted kappa of the argmax grade."""
    return float(cohen_kappa_score(y, proba.argmax(1), weights="quadratic", labels=range(5)))


def top_k_ranking(y: np.ndarray, probas: dict[str, np.ndarray]) -> list[str]:
    """Run names ordered by their val QWK on (y, probas), best first."""
    return sorted(probas, key=lambda name: -qwk(y, probas[name]))


def cross_fitted(y: np.ndarray, probas: dict[str, np.ndarray], groups: np.ndarray, seed: int = 0) -> np.ndarray:
    """Out-of-half ensemble probabilities: ranking and k chosen on one participant half, applied to the other."""
    rng = np.random.default_rng(seed)
    uniques = np.unique(groups)
    half = np.isin(groups, rng.permutation(uniques)[: len(uniques) // 2])
    out = np.zeros_like(next(iter(probas.values())))
    for pick, apply in ((half, ~half), (~half, half)):
        order = top_k_ranking(y[pick], {n: p[pick] for n, p in probas.items()})
        k = max(range(1, len(order) + 1), key=lambda k: qwk(y[pick], np.mean([probas[n][pick] for n in order[:k]], 0)))
        out[apply] = np.mean([probas[n][apply] for n in order[:k]], 0)
    return out


def paired_gain(y: np.ndarray, a: np.ndarray, b: np.ndarray, groups: np.ndarray, n_boot: int, seed: int = 0) -> tuple:
    """QWK(a) − QWK(b) with a participant-bootstrap 95% CI."""
    draws = [qwk(y[idx], a[idx]) - qwk(y[idx], b[idx]) for idx in participant_bootstrap(groups, n_boot, seed)]
    return qwk(y, a) - qwk(y, b), *np.percentile(draws, [2.5, 97.5])


def main() -> None:
    """Score every run and the top-k ensembles on Chen val; print the table, the gain CI and the cost."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "knee-kl-chen2018")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs")
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    images, frame = load_chen_arrays(args.data, splits=("val",), progress=False)
    y, groups = frame["kl"].to_numpy().astype(int), frame["participant_id"].to_numpy()
    x = torch.from_numpy(images[:, None].astype(np.float32) / 255.0)
    probas, cpu = {}, []
    for name in RUNS:
        probas[name], seconds = run_proba(args.runs_dir / name / "best.safetensors", x)
        cpu.append(seconds)
    rows = [{"model": name, "members": 1, **kl_metrics(y, p)} for name, p in probas.items()]
    order = top_k_ranking(y, probas)
    ensembles = {k: np.mean([probas[n] for n in order[:k]], 0) for k in range(2, len(order) + 1)}
    rows += [
        {"model": f"top-{k} mean (" + ", ".join(order[:k]) + ")", "members": k, **kl_metrics(y, p)}
        for k, p in ensembles.items()
    ]
    honest = cross_fitted(y, probas, groups)
    rows.append(
        {"model": "cross-fitted top-k (k and ranking from the other val half)", "members": 0, **kl_metrics(y, honest)}
    )
    shipped = KLGrader.from_pretrained().predict_proba(images)
    rows.append({"model": "shipped (gpu2/c, calibrated)", "members": 1, **kl_metrics(y, shipped)})
    table = pd.DataFrame(rows)[["model", "members", *METRICS]]
    table["members"] = table["members"].map(lambda k: str(k) if k else "varies")
    print(f"Chen val, n = {len(y)} knees, {len(np.unique(groups))} participants; selection on val: optimistic")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    best_k = max(ensembles, key=lambda k: qwk(y, ensembles[k]))
    gain, low, high = paired_gain(y, ensembles[best_k], shipped, groups, args.n_boot)
    print(
        f"best ensemble top-{best_k} vs shipped: ΔQWK {gain:+.4f} (95% participant-bootstrap CI {low:+.4f} to {high:+.4f})"
    )
    gain, low, high = paired_gain(y, ensembles[len(order)], shipped, groups, args.n_boot)
    print(f"all {len(order)} runs (no selection) vs shipped: ΔQWK {gain:+.4f} (95% CI {low:+.4f} to {high:+.4f})")
    gain, low, high = paired_gain(y, honest, shipped, groups, args.n_boot)
    print(f"cross-fitted top-k vs shipped: ΔQWK {gain:+.4f} (95% CI {low:+.4f} to {high:+.4f})")
    splits = [qwk(y, cross_fitted(y, probas, groups, seed=seed)) for seed in range(10)]
    print(
        f"cross-fitted top-k QWK over 10 random participant halvings: mean {np.mean(splits):.4f}, "
        f"range {min(splits):.4f}-{max(splits):.4f} (shipped {qwk(y, shipped):.4f})"
    )
    print(
        f"inference cost: {1000 * np.mean(cpu):.1f} CPU ms/knee per member at {torch.get_num_threads()} thread(s) "
        f"(fused path, batch 32; min {1000 * min(cpu):.1f}, max {1000 * max(cpu):.1f}) → the top-{best_k} ensemble costs "
        f"{best_k}× that, about {best_k * 1000 * np.mean(cpu) / 2:.0f} ms/knee wall on 2 idle cores"
    )


if __name__ == "__main__":
    main()
