"""The dashboards' view-models: ipywidgets pages built from :mod:`oa_kit.api` results (``dashboards/*.ipynb`` only
construct one page each).

Layer: above :mod:`oa_kit.api` and :mod:`oa_kit.viz`, beside :mod:`oa_kit.workflows` (never importing it or
:mod:`oa_kit.cli`). Every callback is one or two API calls; bad input becomes a one-line message on the page.

=============================  =================================================================================
module                         holds
=============================  =================================================================================
:mod:`oa_kit.app.data`         the data folder the pages read (``OA_KIT_DATA``: cohort/, labels/, progression/)
:mod:`oa_kit.app.inputs`       the validated clinical form's fields, uploads in a temporary folder, query strings
:mod:`oa_kit.app.figures`      dashboard figures: SHAP waterfall in probability units, risk with CI, cohort plots
:mod:`oa_kit.app.widgets`      shared widget parts: banner, message line, figure output, guarded callbacks
:mod:`oa_kit.app.knee_view`    :class:`KneeView`, the one-knee clinician page
:mod:`oa_kit.app.cohort_explorer`  :class:`CohortExplorer`, filters, distributions, trajectories, links to knees
:mod:`oa_kit.app.model_report` :class:`ModelReport`, discrimination, calibration, decision curves, cards
=============================  =================================================================================
"""
