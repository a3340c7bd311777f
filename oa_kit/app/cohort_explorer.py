"""The cohort explorer page: filter the data folder's knees (site, sex, age, BMI, baseline KL), see their
distributions, KL trajectories over visits and predicted risk, and open any knee in the knee view (a link with a
query string, ``knee_view.ipynb?participant=ID&side=R``)."""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np
import pandas as pd

from oa_kit.app import figures
from oa_kit.app.data import DataFolder
from oa_kit.app.inputs import knee_link
from oa_kit.app.widgets import MessageLine, banner, guarded, heading, show_figure
from oa_kit.errors import OAKitError

#: Knees listed with a link (the table stays readable; the filters narrow it).
MAX_LISTED = 60
KL_GRADES = (0, 4)


class CohortExplorer:
    """The cohort explorer page; ``.widget`` is what the notebook displays."""

    def __init__(self, data: DataFolder) -> None:
        self.data = data
        self.message = MessageLine()
        self.message.add_class("oa-message-line")
        cohort = data.cohort()
        readings = cohort.tables.readings
        baseline = readings[readings["visit_month"] == 0][["participant_id", "side", "kl"]]
        self.knees = cohort.tables.clinical.merge(baseline, on=["participant_id", "side"], how="left")
        self.readings = readings[readings["kl"].notna()][["participant_id", "side", "visit_month", "kl"]]
        self.risk = self._risk()
        self.note = f"{data.describe()}: {len(self.knees)} knees" + (
            f" — risk: {self.risk_note}" if self.risk is not None else ""
        )
        ages, bmis = self.knees["age_years"].dropna(), self.knees["bmi_kg_m2"].dropna()
        style = {"description_width": "70px"}
        self.site = widgets.SelectMultiple(
            options=sorted(self.knees["site"].dropna().unique()), description="Site", rows=5, style=style
        )
        self.sex = widgets.Dropdown(options=["all", "F", "M"], description="Sex", style=style)
        self.age = widgets.IntRangeSlider(
            value=(int(ages.min()), int(np.ceil(ages.max()))),
            min=int(ages.min()),
            max=int(np.ceil(ages.max())),
            description="Age",
            style=style,
        )
        self.bmi = widgets.FloatRangeSlider(
            value=(float(np.floor(bmis.min())), float(np.ceil(bmis.max()))),
            min=float(np.floor(bmis.min())),
            max=float(np.ceil(bmis.max())),
            step=0.5,
            description="BMI",
            style=style,
        )
        self.kl = widgets.IntRangeSlider(value=KL_GRADES, min=0, max=4, description="KL", style=style)
        for name in ("site", "sex", "age", "bmi", "kl"):
            getattr(self, name).add_class(f"oa-filter-{name}")
        self.count = widgets.HTML()
        self.count.add_class("oa-count")
        self.outputs = {n: widgets.Output() for n in ("age", "bmi", "kl", "site", "trajectory", "risk")}
        for name, out in self.outputs.items():
            out.add_class(f"oa-cohort-{name}")
            out.layout = widgets.Layout(width="50%")
        self.table = widgets.HTML()
        self.table.add_class("oa-knee-links")
        filters = widgets.VBox(
            [heading("Filters"), self.site, self.sex, self.age, self.bmi, self.kl, self.count],
            layout=widgets.Layout(flex="0 0 330px", width="330px"),
        )
        o = self.outputs
        results = widgets.VBox(
            [
                heading("Distributions"),
                widgets.HBox([o["age"], o["bmi"]]),
                widgets.HBox([o["kl"], o["site"]]),
                heading("KL trajectories and predicted risk"),
                widgets.HBox([o["trajectory"], o["risk"]]),
                heading("Knees (open one in the knee view)"),
                self.table,
            ],
            layout=widgets.Layout(flex="1 1 0%", min_width="0"),
        )
        self.widget = widgets.VBox(
            [
                banner(),
                widgets.HTML(f"<small>{html.escape(self.note)}</small>"),
                self.message,
                widgets.HBox([filters, results]),
            ]  # fmt: skip
        )
        self.widget.add_class("oa-cohort-explorer")
        for name in ("site", "sex", "age", "bmi", "kl"):
            getattr(self, name).observe(lambda _c: guarded(self.message)(self.update)(), "value")
        guarded(self.message)(self.update)()

    @classmethod
    def from_env(cls) -> CohortExplorer:
        """The page for ``$OA_KIT_DATA``."""
        return cls(DataFolder.from_env())

    def _risk(self) -> pd.DataFrame | None:
        """Predicted risk of every knee (``ProgressionModels.predict`` on the data folder's table), or None."""
        try:
            models = self.data.models()
            risk = models.predict(self.data.features())
        except OAKitError as error:
            self.risk_note = str(error)
            return None
        self.risk_note = models.provenance
        return risk

    def filtered(self) -> pd.DataFrame:
        """The knees passing every filter."""
        k = self.knees
        keep = pd.Series(True, index=k.index)
        for column, slider in (("age_years", self.age), ("bmi_kg_m2", self.bmi), ("kl", self.kl)):
            if slider.value != (slider.min, slider.max):  # a full range keeps knees without a value too
                keep &= k[column].between(*slider.value)
        if self.site.value:
            keep &= k["site"].isin(self.site.value)
        if self.sex.value != "all":
            keep &= k["sex"] == self.sex.value
        return k[keep]

    def update(self) -> None:
        """Redraw counts, distributions, trajectories, risk and the knee list for the current filters."""
        knees = self.filtered()
        self.count.value = f"<p><b>{len(knees)}</b> of {len(self.knees)} knees</p>"
        note = "synthetic cohort" if "synthetic" in self.note.lower() else None
        if knees.empty:
            for out in self.outputs.values():
                show_figure(out, figures.empty_figure("no knee passes the filters"))
            self.table.value = "<p>No knee passes the filters.</p>"
            return
        for column, title in (("age_years", "Age (years)"), ("bmi_kg_m2", "BMI (kg/m²)"), ("kl", "Baseline KL"),
                              ("site", "Site")):  # fmt: skip
            key = {"age_years": "age", "bmi_kg_m2": "bmi"}.get(column, column)
            show_figure(self.outputs[key], figures.distribution_figure(knees, column, title, note))
        keys = knees[["participant_id", "side"]]
        show_figure(self.outputs["trajectory"], figures.kl_trajectory_figure(self.readings.merge(keys), note=note))
        if self.risk is not None:
            risk = self.risk.merge(keys)
            show_figure(self.outputs["risk"], figures.risk_distribution_figure(risk, note=self.risk_note))
        else:
            show_figure(self.outputs["risk"], figures.empty_figure(f"no risk: {self.risk_note}"))
        rows = "".join(
            f'<tr><td><a class="oa-knee-link" href="{knee_link(r.participant_id, r.side)}">'
            f"{html.escape(str(r.participant_id))} {r.side}</a></td><td>{r.site}</td><td>{r.sex}</td>"
            f"<td>{r.age_years:.0f}</td><td>{r.bmi_kg_m2:.1f}</td><td>{'' if pd.isna(r.kl) else int(r.kl)}</td></tr>"
            for r in knees.head(MAX_LISTED).itertuples()
        )
        more = f"<p>First {MAX_LISTED} of {len(knees)}; narrow the filters.</p>" if len(knees) > MAX_LISTED else ""
        self.table.value = (
            "<table class='oa-table'><tr><th>knee</th><th>site</th><th>sex</th><th>age</th><th>BMI</th>"
            f"<th>KL</th></tr>{rows}</table>{more}"
        )
