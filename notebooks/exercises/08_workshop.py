# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Workshop: four questions about a progression model (2–3 hours)
#
# Work in pairs. Each exercise ends with a cell that **checks your answer** (`workshop.check(...)`): it says ✔ or ✘
# and why. The cohort is **synthetic** (the `workshop` preset, 600 people): every number describes the generator,
# not patients, but the mistakes are the ones people make with real data.
#
# 1. *Find the leakage* (30 min) · 2. *Why is the clinical-only model worse?* (30 min) · 3. *Calibrate it*
# (30 min) · 4. *Is KL 1 a grade?* (20 min) · discussion (20 min).

# %% tags=["parameters"]
import oa_kit
from oa_kit import workshop
from oa_kit.explain import shap_values
from oa_kit.metrics import expected_calibration_error, roc_auc

MODE = workshop.notebook_mode()  # OA_KIT_NOTEBOOK_MODE=smoke|full
SETTINGS = workshop.SETTINGS[MODE]
DATA = workshop.prepare_data(MODE)
HORIZON = 24  # months

# %%
cohort = oa_kit.open_cohort(DATA.cohort)
labels = cohort.labels.labels
print(f"{cohort.features()['participant_id'].nunique()} participants (synthetic)")

# %% [markdown]
# ## 1 · Find the leakage
# A colleague sends a feature table with one extra radiograph column and a model with a held-out AUC of about 0.9
# — far above anything in notebook 06. One column uses information a clinician would not have at baseline.
# Find it. Hint: look at what the model leans on (SHAP, notebook 07), then read how each column is made.

# %%
leaky = workshop.leaky_features(cohort, HORIZON)
split = workshop.split_participants(leaky, labels)
model = oa_kit.fit_progression(split.train, split.train_labels, (HORIZON,), data="synthetic", quick=True)
test = workshop.with_labels(split.test, split.test_labels, HORIZON)
print(f"held-out AUC {roc_auc(test['label'], model.predict(test)['risk']):.2f}")

# %% [markdown]
# Set `answer` to the name of the leaking column.

# %%
# your answer here

# %%
workshop.check("leakage", answer)

# %% [markdown]
# ## 2 · Why is the clinical-only model worse?
# Evaluate the baselines out of sample (as in notebook 06) and compute how much AUC the KL grade adds to the
# clinical factors: `answer = AUC(clinical_kl) − AUC(clinical)`. Then discuss: what does the radiograph know that
# age, BMI and pain do not? Would it be the same in a cohort selected for knee pain?

# %%
report = oa_kit.evaluate_progression(
    cohort.features(),
    labels,
    HORIZON,
    data="synthetic",
    n_splits=SETTINGS["n_splits"],
    n_resamples=SETTINGS["n_resamples"],
)

# %%
# your answer here

# %%
workshop.check("clinical_gap", answer, report=report)

# %% [markdown]
# ## 3 · Calibrate it
# This model was fitted without calibration (`calibration="none"`): it ranks knees well, but its risks are too
# high or too low. Refit it so that the test knees' expected calibration error (ECE) falls below 0.05, and set
# `answer` to the new risks of the test knees (same order as `test`).

# %%
plain = workshop.split_participants(cohort.features(), labels)
test = workshop.with_labels(plain.test, plain.test_labels, HORIZON)
raw = oa_kit.fit_progression(
    plain.train, plain.train_labels, (HORIZON,), data="synthetic", quick=True, calibration="none"
)
uncalibrated = raw.predict(test)["risk"].to_numpy()
print(f"ECE without calibration: {expected_calibration_error(test['label'], uncalibrated):.3f}")

# %%
# your answer here

# %%
workshop.check("calibrate", answer, y=test["label"], uncalibrated=uncalibrated)

# %% [markdown]
# ## 4 · Is KL 1 a grade?
# KL 1 means "doubtful" narrowing and a possible osteophyte; readers disagree on it most (and the KL model fails on
# it, notebook 03). Compare the 24-month progression rate of KL 1 knees with KL 0 and KL 2, and set `answer` to
# the grade (0 or 2) whose rate is closer. Then discuss: should KL 0 and 1 be merged (`panfilov2025` does)?

# %%
rates = workshop.progression_rates(labels)
print(rates.loc[HORIZON].to_string())

# %%
# your answer here

# %%
workshop.check("kl1", answer, labels=labels)

# %% [markdown]
# ## Discussion
# - Which of these mistakes would a held-out test set have caught? Which only a careful reading of the columns?
# - A well-calibrated model on this synthetic cohort: would it be calibrated at your hospital?
# - What would change with real radiographs instead of central readings (notebook 03)?

# %%
# your answer here
