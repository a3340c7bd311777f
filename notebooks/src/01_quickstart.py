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
# # 01 · Quickstart: one synthetic participant, end to end
#
# A small **synthetic** cohort (made by `oa_kit.synth`, written as OAI-format files), and one participant in it:
# the bilateral radiograph with the knee ROIs the KL model crops, the KL model's grade with Grad-CAM, one MRI slice
# with its labels, the clinical row and the KL trajectory over visits. Every person here is simulated; the KL
# model is the shipped one (trained on real OAI knees), applied to synthetic radiographs.
#
# Set `OA_KIT_NOTEBOOK_MODE=smoke` for a quick run (CI, the workshop) or `full` (default) for larger samples.

# %% tags=["parameters"]
import oa_kit
from oa_kit import workshop

MODE = workshop.notebook_mode()  # OA_KIT_NOTEBOOK_MODE=smoke|full
SETTINGS = workshop.SETTINGS[MODE]
DATA = workshop.prepare_data(MODE)  # generated once (seed 0), reused afterwards

# %% [markdown]
# ## Open the cohort
# `open_cohort` reads the OAI-format tables, builds progression labels and finds each knee's image files.

# %%
cohort = oa_kit.open_cohort(DATA.imaged)
knees = cohort.to_frame()
print(f"{knees['participant_id'].nunique()} participants, {len(knees)} knees")

# %%
person = knees.iloc[0]
print(person[["participant_id", "side", "age_years", "sex", "bmi_kg_m2", "site", "womac_pain"]].to_string())

# %% [markdown]
# ## The radiograph and the knee ROIs
# The localiser finds both knee joints and cuts a 140 mm square around each; the KL model sees only these crops.

# %%
workshop.radiograph_figure(person["radiograph"])

# %% [markdown]
# ## KL grade, conformal set and Grad-CAM
# One call grades both knees of the radiograph: calibrated probabilities, a conformal set (the grades the model
# cannot rule out at 90% coverage), QA flags and a Grad-CAM map.

# %%
grades = oa_kit.grade_knees([person["radiograph"]])
print(grades.to_frame()[["participant_id", "side", "kl_grade", "kl_grade_set"]].to_string(index=False))

# %%
grades.figure(0)

# %%
grades.probability_figure(0)

# %% [markdown]
# ## One MRI slice with its labels
# The shipped segmenter (trained on synthetic phantoms only) labels bone and cartilage; the QC verdict comes first.

# %%
mri = oa_kit.analyse_mri(person["mri"])
print(mri.summary().split(" — ")[0])

# %%
mri.slice_figure()

# %% [markdown]
# ## The KL trajectory
# KL grade at every visit of this participant, both knees (synthetic readings).

# %%
workshop.kl_trajectory(cohort, person["participant_id"])

# %%
assert set(grades.to_frame()["side"]) == {"R", "L"}
assert mri.to_frame()["thickness_mm_mean"].between(0.5, 5).all()
