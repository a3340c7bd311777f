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
# # 05 · MRI cartilage: segmentation, QC, thickness maps and regional biomarkers
#
# The shipped segmenter (a 2.5D U-Net **trained on synthetic phantoms only**) on a synthetic DESS-like knee MRI:
# labels, the QC verdict (read it first), 2D thickness maps, slice overlays and one row of biomarkers per
# cartilage subregion. Then the same measurement from a label map you already have (`oa_kit.measure_labels`), with
# no segmenter involved. All scans here are synthetic phantoms. For a real scan, use the contrast-agnostic weights:
# `oa_kit.analyse_mri(path, segmenter=MRISegmenter.from_pretrained("real"))` or `oa-kit mri segment --weights real`
# (see the MRI model card: they meet the real-contrast template targets but were never checked on manually labelled
# real scans).

# %% tags=["parameters"]
import pandas as pd

import oa_kit
from oa_kit import workshop
from oa_kit.io.mri import read_nifti

MODE = workshop.notebook_mode()  # OA_KIT_NOTEBOOK_MODE=smoke|full
SETTINGS = workshop.SETTINGS[MODE]
DATA = workshop.prepare_data(MODE)

# %%
knees = oa_kit.open_cohort(DATA.imaged).to_frame()
scan = knees["mri"].dropna().iloc[0]
print(scan.rsplit("/", 1)[-1])

# %% [markdown]
# ## Segment and measure
# One call: read the NIfTI, segment, measure, QC. The summary states the QC verdict first; a scan that fails QC
# must not feed a model.

# %%
mri = oa_kit.analyse_mri(scan)
print(mri.summary().split(" — ")[0])

# %%
print({k: v for k, v in mri.qc.items() if isinstance(v, bool)})  # each check: True = failed

# %% [markdown]
# ## Thickness maps
# Femoral cartilage unrolled, tibial and patellar cartilage projected: thickness in mm at each point.

# %%
mri.figure()

# %% [markdown]
# ## Slice overlays
# The middle cartilage slice, then one more lateral, with the segmentation labels over the image (true aspect).

# %%
mri.slice_figure()

# %%
mri.slice_figure(mri.labels.shape[0] // 3)

# %% [markdown]
# ## Regional biomarkers
# One row per subregion: mean thickness (mm), area and volume. These are the `thickness_mm_*` / `volume_mm3_*`
# features the progression models read (`mri.features()`, one row).

# %%
biomarkers = mri.to_frame().set_index("subregion")
print(biomarkers[["thickness_mm_mean", "volume_mm3"]].round(1).to_string())

# %%
print(f"{mri.features().shape[1]} MRI features in one row")

# %% [markdown]
# ## Measuring a label map you already have
# If your site already segments knees (harmonised labels, `oa_kit.io.labels`), measure them directly. Here the
# phantom's ground-truth labels, which the synthetic generator writes next to each scan.

# %%
truth = read_nifti(scan.replace("_DESS.nii.gz", "_labels.nii.gz"))
measured = oa_kit.measure_labels(truth.array.astype("int16"), truth.affine, mri.side)
print(measured.summary())

# %% [markdown]
# Segmenter versus ground truth, mean thickness per subregion (mm): the difference is the segmenter's error on
# this phantom, not a claim about real knees.

# %%
truth_table = measured.to_frame().set_index("subregion")
compare = pd.DataFrame({"segmenter": biomarkers["thickness_mm_mean"], "truth": truth_table["thickness_mm_mean"]})
print(compare.assign(difference=compare["segmenter"] - compare["truth"]).round(2).to_string())

# %%
assert not mri.qc["qc_any"]
assert (compare["segmenter"] - compare["truth"]).abs().max() < 1.0
