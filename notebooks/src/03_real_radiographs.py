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
# # 03 · The KL model on real knees (Chen 2018)
#
# The shipped KL-CNN (trained on real OAI knees, Chen 2018 *train* split) on **real** knees from the Chen 2018
# *validation* split: the first N knees of each grade, sorted by file name (a fixed rule, no cherry-picking).
# Probabilities, conformal sets, Grad-CAM, calibration and confusion on this sample, and where the model fails:
# KL 1. The sample is small: its numbers carry wide uncertainty.
#
# The data live in `../shared/data/knee-kl-chen2018/val` (or `$OA_KIT_CHEN_VAL`); without them every cell below
# says so and does nothing.

# %% tags=["parameters"]
import plotly.express as px

import oa_kit
from oa_kit import workshop
from oa_kit.viz.kl import confusion_figure

MODE = workshop.notebook_mode()  # OA_KIT_NOTEBOOK_MODE=smoke|full
SETTINGS = workshop.SETTINGS[MODE]
CHEN = workshop.chen_folder()  # None when ../shared is absent

# %%
if CHEN is None:
    print("Chen 2018 knees not found (../shared/data/knee-kl-chen2018/val, $OA_KIT_CHEN_VAL): skipping this notebook.")
else:
    sample = workshop.chen_sample(CHEN, SETTINGS["chen_per_grade"])
    print(f"{len(sample)} real knees, {SETTINGS['chen_per_grade']} per KL grade (first by file name)")

# %% [markdown]
# ## Grade them
# Calibrated probabilities, the most likely grade, the conformal set (90% coverage) and QA flags, one row per knee.

# %%
if CHEN is not None:
    grades = oa_kit.grade_knees(list(sample["path"]))
    table = grades.to_frame().assign(kl_true=sample["kl_true"].to_numpy())
    print(table[["participant_id", "side", "kl_true", "kl_grade", "kl_grade_set"]].head(10).to_string(index=False))

# %%
grades.probability_figure(SETTINGS["chen_per_grade"]) if CHEN else None  # the first KL 1 knee

# %% [markdown]
# ## Metrics on this sample
# Quadratic-weighted kappa, accuracy, mean absolute error, expected calibration error, conformal coverage and mean
# set size (the sample is balanced by grade, unlike the real prevalence).

# %%
if CHEN is not None:
    print(workshop.kl_sample_metrics(table, table["kl_true"]))

# %%
confusion_figure(workshop.kl_confusion(table, table["kl_true"])) if CHEN else None

# %% [markdown]
# ## Calibration of P(KL ≥ 2)
# Predicted probability of radiographic OA against the observed share, by quantile bin.

# %%
if CHEN is not None:
    reliability = workshop.kl_calibration(table, table["kl_true"])
    print(reliability.to_string(index=False))

# %%
px.line(reliability, x=reliability.columns[0], y=reliability.columns[1], markers=True) if CHEN else None

# %% [markdown]
# ## Grad-CAM gallery
# The first knee of each true grade: where the model looked for its answer (a saliency map, not a reason).

# %%
if CHEN is not None:
    first = [int(g) * SETTINGS["chen_per_grade"] for g in range(5)]
    titles = [f"true KL {table['kl_true'][i]}, predicted {table['kl_grade'][i]}" for i in first]

# %% tags=["real-images"]
workshop.gradcam_gallery(grades, first, titles) if CHEN else None

# %% [markdown]
# ## Where it fails: KL 1
# KL 1 ("doubtful" narrowing, possible osteophyte) is the grade readers disagree on most; the model rarely
# commits to it, and its conformal sets for KL 1 knees are the widest.

# %%
if CHEN is not None:
    per_grade = workshop.kl_per_grade(table, table["kl_true"])
    print(per_grade.to_string())

# %%
if CHEN is not None:
    assert per_grade.loc[1, "accuracy"] <= per_grade["accuracy"].drop(1).mean()
    assert workshop.kl_sample_metrics(table, table["kl_true"])["qwk"] > 0.5
