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
# # 02 · Exploring a cohort
#
# Distributions by site, sex and KL grade; how KL changes between visits; how many knees progress by each
# horizon; who the label builder excludes and why; what is missing. The cohort is **synthetic** (the `workshop`
# preset: tables only), so every rate below describes the generator, not people.

# %% tags=["parameters"]
import plotly.express as px

import oa_kit
from oa_kit import workshop

MODE = workshop.notebook_mode()  # OA_KIT_NOTEBOOK_MODE=smoke|full
SETTINGS = workshop.SETTINGS[MODE]
DATA = workshop.prepare_data(MODE)

# %%
cohort = oa_kit.open_cohort(DATA.cohort)
features = cohort.features()
print(f"{features['participant_id'].nunique()} participants, {len(features)} knees at baseline")

# %% [markdown]
# ## Who is in it

# %%
features.groupby("site").agg(knees=("side", "size"), age=("age_years", "mean"), bmi=("bmi_kg_m2", "mean")).round(1)

# %%
px.histogram(features, x="kl", color="sex", barmode="group", title="Baseline KL by sex — synthetic cohort")

# %%
px.box(features, x="site", y="bmi_kg_m2", color="sex", title="BMI by site and sex — synthetic cohort")

# %%
px.histogram(features, x="age_years", color="site", nbins=30, title="Age by site — synthetic cohort")

# %% [markdown]
# ## KL transitions across visits
# Rows: KL at baseline; columns: KL at 24 months (knees read at both visits). Off-diagonal cells are progression
# (or, below the diagonal, reader disagreement: KL can "fall").

# %%
transitions = workshop.kl_transitions(cohort.tables.readings, 0, 24)
transitions  # noqa: B018

# %%
px.imshow(transitions, text_auto=True, color_continuous_scale="Blues", title="KL 0 → 24 months — synthetic")

# %% [markdown]
# ## Progression rate per horizon
# Share of labelled knees that progress (KL increase, `tiulpin2019` definition) by each horizon, per baseline KL.

# %%
rates = workshop.progression_rates(cohort.labels.labels)
rates  # noqa: B018

# %% [markdown]
# ## Cohort flow and exclusion reasons
# The label builder keeps every excluded knee with the first reason that applies.

# %%
cohort.labels.summary_table()

# %%
cohort.figure()

# %%
workshop.exclusion_reasons(cohort)

# %% [markdown]
# ## Missingness
# The baseline table of this synthetic cohort is complete; what goes missing is follow-up. Knees read per
# visit, and the share of missing values per column of the readings over all visits (columns with none are not
# listed; a real OAI table has many more).

# %%
cohort.tables.readings.groupby("visit_month")["kl"].count()

# %%
workshop.missingness(cohort.tables.readings)

# %%
assert rates.notna().any().any() and (rates.fillna(0) <= 1).all().all()
assert cohort.labels.summary_table().loc["included"].gt(0).all()
