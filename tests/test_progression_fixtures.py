"""Small per-knee tables with a known risk model, for the progression/evaluation/explain tests (not shipped)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SITES = ("A", "B", "C", "D", "E")


def make_knee_table(
    n_participants: int = 150, seed: int = 0, emb_dim: int = 12
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Joined per-knee table (clinical + KL-CNN + MRI columns), outcome and true probability per knee.

    Risk model: logit = -2.2 + 0.06(age-62) + 0.12(bmi-28) + 0.8 injury + 0.35 kl + 1.1 z_xr + 1.0 z_mri, where
    z_xr / z_mri are image-only latents visible only through the KL-CNN and MRI embeddings / thickness.
    """
    rng = np.random.default_rng(seed)
    n = 2 * n_participants
    pid = np.repeat([f"9{i:06d}" for i in range(n_participants)], 2)
    side = np.tile(["R", "L"], n_participants)
    site = np.repeat(rng.choice(SITES, n_participants), 2)
    sex = np.repeat(rng.choice(["M", "F"], n_participants), 2)
    age = np.repeat(rng.uniform(45, 79, n_participants).round(), 2)
    bmi = np.repeat(rng.normal(28, 4.5, n_participants).round(1), 2)
    injury = rng.binomial(1, 0.2, n)
    surgery = rng.binomial(1, 0.08, n)
    womac = np.clip(rng.normal(3 + 2 * injury, 3), 0, 20).round()
    kl = np.clip(np.round(rng.normal(1.3, 1.0, n) + 0.02 * (bmi - 28)), 0, 3).astype(int)
    z_xr, z_mri = rng.normal(size=n), rng.normal(size=n)
    logit = -2.2 + 0.06 * (age - 62) + 0.12 * (bmi - 28) + 0.8 * injury + 0.35 * kl + 1.1 * z_xr + 1.0 * z_mri
    p_true = 1 / (1 + np.exp(-logit))
    y = rng.binomial(1, p_true)
    table = pd.DataFrame(
        {
            "participant_id": pid,
            "side": side,
            "site": site,
            "sex": sex,
            "age": age,
            "bmi": bmi,
            "injury": injury,
            "surgery": surgery,
            "womac_pain": womac,
            "kl": kl,
            "jsw_medial_mm": (5.0 - 0.6 * kl - 0.3 * z_xr + rng.normal(0, 0.3, n)).round(2),
        }
    )
    logits = -0.9 * (np.arange(5)[None, :] - kl[:, None]) ** 2 + rng.normal(0, 0.3, (n, 5))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    for k in range(5):
        table[f"kl_p{k}"] = probs[:, k]
    wx, wm = np.random.default_rng(12345).normal(size=(2, emb_dim))  # fixed "image model" across seeds
    for j in range(emb_dim):
        table[f"kl_emb_{j:03d}"] = wx[j] * z_xr + 0.3 * kl + rng.normal(0, 0.5, n)
    table["thickness_mm_tibial_medial"] = 2.0 - 0.25 * z_mri + rng.normal(0, 0.1, n)
    table["volume_mm3_femoral"] = 9000 - 400 * z_mri + rng.normal(0, 150, n)
    for j in range(emb_dim):
        table[f"mri_emb_{j:03d}"] = wm[j] * z_mri + rng.normal(0, 0.5, n)
    return table, y, p_true
