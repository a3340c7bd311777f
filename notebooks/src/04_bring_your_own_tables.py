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
# # 04 · Bring your own tables: OAI and MOST files into the label builder
#
# oa_kit reads the official OAI and MOST files as they are distributed (ASCII `|`-separated, CSV or SAS). This
# notebook shows which file goes where, runs the label builder on small OAI-format fixtures (made-up rows in the
# real format, from `tests/fixtures/`) and on the synthetic cohort's OAI tables, and explains each exclusion.
#
# | you have (OAI) | what oa_kit reads from it | put it in |
# |---|---|---|
# | `kxr_sq_bu00.txt` … `kxr_sq_bu10.txt` | central KL, JSN, osteophyte readings per visit (`V00XRKL`, …) | the cohort folder |
# | `kxr_qjsw_duryea00.txt` (…) | quantitative medial/lateral JSW, fixed locations | the cohort folder |
# | `allclinical00.txt` | age, BMI, WOMAC, injury, surgery (baseline) | the cohort folder |
# | `enrollees.txt` | sex, race, site | the cohort folder |
# | `outcomes99.txt` | knee replacements, deaths (censoring) | the cohort folder |
#
# | you have (MOST) | what oa_kit reads from it |
# |---|---|
# | `mostv01235xray.txt` | KL and JSN readings at 0, 15, 30, 60, 84 months |
# | `mostv0enroll.txt`, `mostv1enroll.txt` | baseline clinical factors |
# | `mostoutcomes.txt` | replacements, deaths |
#
# Put the files of one cohort in one folder and call `oa_kit.open_cohort(folder, source="oai"|"most")`. Special
# codes (`.P` replaced, `.T` technical, `.A` not expected) are kept as statuses, never silently turned into NaN.

# %% tags=["parameters"]
from pathlib import Path

import oa_kit
from oa_kit import workshop

MODE = workshop.notebook_mode()  # OA_KIT_NOTEBOOK_MODE=smoke|full
SETTINGS = workshop.SETTINGS[MODE]
DATA = workshop.prepare_data(MODE)
FIXTURES = Path("../tests/fixtures")

# %% [markdown]
# ## An OAI folder
# The fixture holds six knees, in the real format, with one replacement at baseline and one KL 4 knee. It has
# readings at 0, 12 and 24 months only, so those are the horizons.

# %%
print(sorted(p.name for p in (FIXTURES / "oai").glob("*.txt")))

# %%
oai = oa_kit.open_cohort(FIXTURES / "oai", source="oai", horizons=(12, 24))
oai.labels.summary_table()

# %%
print(oai.labels.exclusions[["participant_id", "side", "horizon_months", "reason_code"]].to_string(index=False))

# %% [markdown]
# ## A MOST folder

# %%
most = oa_kit.open_cohort(FIXTURES / "most", source="most", horizons=(30,))
most.labels.summary_table()

# %% [markdown]
# ## The synthetic cohort writes the same files
# `oa-kit synth` (and `oa_kit.synth.generate_cohort`) writes OAI ASCII tables, so the same readers and label
# builder run on it: what works here runs on the real files unchanged.

# %%
print(sorted(p.name for p in (DATA.cohort / "OAI").iterdir()))

# %%
synthetic = oa_kit.open_cohort(DATA.cohort)
synthetic.labels.summary_table()

# %% [markdown]
# ## What each exclusion reason means
# Reasons are checked in this order; a knee is excluded from a horizon for the first one that applies.

# %%
print(workshop.reason_table().to_string())

# %%
workshop.exclusion_reasons(synthetic)

# %% [markdown]
# ## Two label definitions
# `tiulpin2019` (default): any KL increase by the horizon. `panfilov2025` merges KL 0 and 1 and also excludes knees
# whose KL falls inside the window, or that have no valid follow-up reading.

# %%
strict = oa_kit.open_cohort(DATA.cohort, definition="panfilov2025")
strict.labels.summary_table()

# %%
assert oai.labels.summary_table().loc["included"].tolist() == [3, 3]
assert "baseline_kl4" in workshop.exclusion_reasons(synthetic).index
