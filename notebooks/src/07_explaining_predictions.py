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
# # 07 · Explaining predictions with SHAP
#
# SHAP values split a model's log-odds for one knee into one contribution per feature. Here: global importance,
# importance grouped by feature family, one knee's waterfall, dependence and interactions, and what SHAP does
# **not** tell you. The model is trained on the **synthetic** cohort, so the explanations describe the generator.

# %% tags=["parameters"]
import oa_kit
from oa_kit import workshop
from oa_kit.explain import grouped_shap, interaction_values, shap_values
from oa_kit.viz import shap_plots

MODE = workshop.notebook_mode()  # OA_KIT_NOTEBOOK_MODE=smoke|full
SETTINGS = workshop.SETTINGS[MODE]
DATA = workshop.prepare_data(MODE)
HORIZON = 24  # months

# %%
cohort = oa_kit.open_cohort(DATA.cohort)
features = cohort.features()
models = oa_kit.fit_progression(
    features,
    cohort.labels.labels,
    horizons=(HORIZON,),
    data="synthetic",
    quick=True,
    n_bootstrap=SETTINGS["n_bootstrap"],  # participant-level refits: a 95% interval for each knee's risk
)
model = models.models[HORIZON]

# %% [markdown]
# ## Global: which features move the log-odds most

# %%
result = shap_values(model, features)
print(result.values.abs().mean().sort_values(ascending=False).head(8).round(3).to_string())

# %%
shap_plots.importance_figure(result, top_k=15, note=models.provenance)

# %%
shap_plots.beeswarm_figure(result, note=models.provenance)

# %% [markdown]
# ## Grouped by family
# Sum of a knee's contributions per family (clinical, radiograph, MRI), then mean absolute value over knees.

# %%
grouped = grouped_shap(result)
print(grouped[["clinical", "radiograph", "mri"]].abs().mean().round(3).to_string())

# %%
shap_plots.grouped_figure(grouped, note=models.provenance)

# %% [markdown]
# ## One knee: waterfall and plain-language explanation
# `knee_risk` gives the risk per horizon with its 95% interval (the bootstrap refits: how much the risk depends on
# which knees the model saw) and its explanation; the waterfall starts at the average log-odds.

# %%
knee = features.iloc[0].to_dict()
risk = oa_kit.knee_risk(models, knee)
print(risk.to_frame()[["horizon_months", "risk", "risk_low", "risk_high"]].round(3).to_string(index=False))
print(risk.to_frame()["explanation"].iloc[0])

# %%
risk.waterfall(HORIZON)

# %% [markdown]
# ## Dependence and interactions
# How the contribution of baseline KL varies with its value, coloured by age; then the strongest pairwise
# interactions among clinical features (mean |interaction| in log-odds).

# %%
shap_plots.dependence_figure(result, "kl", color_by="age_years", note=models.provenance)

# %%
interactions = interaction_values(model, features, max_rows=200)
print(interactions.head(5).round(3).to_string(index=False))

# %% [markdown]
# ## What SHAP does not mean
# - **Not causal.** A large contribution of BMI says the *model* leans on BMI, not that lowering BMI would lower
#   this knee's risk; correlated features share credit arbitrarily (KL and JSN here).
# - **Not about the person, about the model.** Another model fitted on the same data can explain the same knee
#   differently.
# - **Log-odds, not risk.** Contributions add up on the log-odds scale; the same contribution moves a 5% risk less
#   than a 50% one.
# - **Synthetic.** Here the generator's rules are what the model learned.

# %%
additive = abs(result.raw_output()[0] - (result.values.iloc[0].sum() + result.base_values[0])) < 1e-6
assert additive and grouped.shape[0] == len(features)
