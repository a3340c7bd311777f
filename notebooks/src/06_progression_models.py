# ---
# jupyter:
#   jupytext:
#     formats: ipynb,src//py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Progression models: baselines, fused models, CIs, DeLong, calibration, decision curves
#
# Will a knee's KL grade increase within 24 months? Out-of-sample evaluation (participant-grouped
# cross-validation, participant bootstrap CIs) of the clinical-only baseline, KL-only baselines and the combined
# models, against the generator's true risk (the *oracle*, known only because the cohort is **synthetic**). Every
# number here comes from models trained and tested on synthetic data: it describes the generator, not patients.

# %% tags=["parameters"]
import pandas as pd
import plotly.express as px

import oa_kit
from oa_kit import workshop

MODE = workshop.notebook_mode()  # OA_KIT_NOTEBOOK_MODE=smoke|full
SETTINGS = workshop.SETTINGS[MODE]
DATA = workshop.prepare_data(MODE)
HORIZON = 24  # months

# %%
cohort = oa_kit.open_cohort(DATA.cohort)
features, labels = cohort.features(), cohort.labels.labels
truth = pd.read_parquet(DATA.cohort / "truth" / "knees.parquet")  # the generator's true risk (synthetic only)

# %% [markdown]
# ## Features
# Per-knee baseline features and their families (clinical, radiograph readings; no images in this cohort).

# %%
print(features.drop(columns=["participant_id", "side"]).columns.tolist())

# %% [markdown]
# ## Out-of-sample evaluation
# Every model sees the same folds; AUC with a 95% participant-bootstrap CI and expected calibration error (ECE).

# %%
report = oa_kit.evaluate_progression(
    features,
    labels,
    HORIZON,
    truth=truth,
    data="synthetic",
    cohort="workshop preset",
    n_splits=SETTINGS["n_splits"],
    n_resamples=SETTINGS["n_resamples"],
)
headline = report.to_frame()
print(headline[["model", "auc", "auc_ci_low", "auc_ci_high", "ece"]].round(2).to_string(index=False))

# %%
figures = report.figures()
figures["auc_forest"]

# %%
figures["roc"]

# %% [markdown]
# ## DeLong: is the difference in AUC more than noise?
# Paired DeLong tests on the same knees, main model against each other model.

# %%
print(report.evaluation.delong.round(3).to_string(index=False))

# %% [markdown]
# ## Calibration and decision curves
# Calibration: predicted risk against the observed rate per risk decile. Decision curve: net benefit of treating
# knees above a risk threshold, against treating all or none.

# %%
figures["calibration"]

# %%
figures["decision_curve"]

# %% [markdown]
# ## Subgroups
# AUC per sex, site and baseline KL: where the model works less well.

# %%
figures["subgroups"]

# %% [markdown]
# ## Distance to the oracle
# The oracle is the generator's true progression probability: no model can beat it on average. The gap says how
# much signal is left (and, with the latent reference, how much an image model could add).

# %%
print(report.evaluation.oracle.round(2).to_string(index=False))

# %% [markdown]
# ## One calibrated model per horizon
# `fit_progression` fits the model to ship (nested tuning, calibration); `quick=True` uses one LightGBM setting.

# %%
models = oa_kit.fit_progression(features, labels, horizons=(12, 24, 48), data="synthetic", quick=True)
print(models.to_frame()[["horizon_months", "estimator", "n_train", "n_events"]].to_string(index=False))

# %% [markdown]
# ## What changes with cohort size
# Held-out AUC and ECE of the same quick model fitted on more and more training participants (same test set).

# %%
curve = workshop.learning_curve(features, labels, HORIZON, (50, 150, 400))
print(curve.to_string(index=False))

# %%
px.line(curve, x="n_participants", y="auc", markers=True, title="Held-out AUC by training size — synthetic")

# %%
aucs = headline.set_index("model")["auc"]
assert aucs["clinical_kl"] > aucs["clinical"]
assert aucs["oracle"] >= aucs.drop("oracle").max() - 0.02
