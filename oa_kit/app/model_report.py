"""The model report page: for the models of a report folder (``oa-kit progression evaluate`` / ``make demo``:
headline.csv, model_card_h{H}.md, *_h{H}.csv), per horizon: headline AUC/ECE with CIs, AUC forest, ROC, calibration
curves, decision curves, the subgroup table, global SHAP importance and the rendered model card."""

from __future__ import annotations

import functools
import html
from pathlib import Path

import ipywidgets as widgets
import pandas as pd
from IPython.display import Markdown, display

from oa_kit.api import read_report
from oa_kit.app.data import DataFolder
from oa_kit.app.figures import empty_figure
from oa_kit.app.risk import REFERENCE_MODELS
from oa_kit.app.widgets import MessageLine, banner, guarded, heading, show_figure, table_html
from oa_kit.errors import OAKitError
from oa_kit.explain import shap_values
from oa_kit.io.tables import read_table
from oa_kit.viz import shap_plots
from oa_kit.viz.progression import (
    auc_forest_figure,
    calibration_figure,
    decision_curve_figure,
    roc_figure,
    subgroup_figure,
)

FIGURES = ("forest", "roc", "calibration", "decision", "subgroups", "shap")


class ModelReport:
    """The model report page; ``.widget`` is what the notebook displays."""

    def __init__(self, data: DataFolder) -> None:
        self.data = data
        self.folder: Path | None = None
        self.headline = pd.DataFrame()
        self._quiet = False
        self.message = MessageLine()
        self.message.add_class("oa-message-line")
        self.folder_text = widgets.Text(
            value=str(data.report_dir), description="Report folder", layout=widgets.Layout(width="640px")
        )
        self.load_button = widgets.Button(description="Open", icon="folder-open")
        self.horizon = widgets.Dropdown(description="Horizon", layout=widgets.Layout(width="220px"))
        self.headline_html = widgets.HTML()
        self.headline_html.add_class("oa-headline")
        self.subgroup_html = widgets.HTML()
        self.subgroup_html.add_class("oa-subgroups")
        self.outputs = {name: widgets.Output() for name in FIGURES}
        for name, out in self.outputs.items():
            out.add_class(f"oa-report-{name}")
        self.card = widgets.Output()
        self.card.add_class("oa-model-card")
        half = widgets.Layout(width="50%")
        for name in ("roc", "calibration", "decision", "forest"):
            self.outputs[name].layout = half
        self.widget = widgets.VBox(
            [
                banner(),
                self.message,
                widgets.HBox([self.folder_text, self.load_button]),
                self.horizon,
                heading("Discrimination and calibration (out of sample)"),
                self.headline_html,
                widgets.HBox([self.outputs["forest"], self.outputs["roc"]]),
                widgets.HBox([self.outputs["calibration"], self.outputs["decision"]]),
                heading("Subgroups"),
                self.subgroup_html,
                self.outputs["subgroups"],
                heading("Global SHAP importance (final model)"),
                self.outputs["shap"],
                heading("Model card"),
                self.card,
            ]
        )
        self.widget.add_class("oa-model-report")
        self.load_button.on_click(lambda _b: guarded(self.message)(self.open)(self.folder_text.value))
        guarded(self.message)(self.open)(self.folder_text.value)
        self.horizon.observe(lambda _c: None if self._quiet else guarded(self.message)(self.show)(), "value")

    @classmethod
    def from_env(cls) -> ModelReport:
        """The page for ``$OA_KIT_DATA``'s report folder."""
        return cls(DataFolder.from_env())

    def open(self, folder: str) -> None:
        """Read a report folder's headline (:func:`oa_kit.read_report`) and show its first horizon."""
        self.folder = Path(folder.strip()).expanduser()
        self.headline = read_report(self.folder).to_frame()
        horizons = sorted(int(h) for h in self.headline["horizon_months"].unique())
        self._quiet = True
        try:
            self.horizon.options = [(f"{h} months", h) for h in horizons]
            self.horizon.value = horizons[0]
        finally:
            self._quiet = False
        self.show()

    def _table(self, name: str, h: int) -> pd.DataFrame | None:
        path = self.folder / f"{name}_h{h}.csv"
        return read_table(path) if path.is_file() else None

    def show(self) -> None:
        """Everything for the chosen horizon (tables read from the folder; a missing one says so in its place)."""
        h = self.horizon.value
        if h is None:
            return
        head = self.headline[self.headline["horizon_months"] == h]
        note = str(head["provenance"].iloc[0]) if "provenance" in head and len(head) else None
        columns = [c for c in ("model", "auc", "auc_ci_low", "auc_ci_high", "ece", "gap_to_oracle") if c in head]
        self.headline_html.value = (
            f"<p><b>{h}-month progression</b> — {html.escape(note or 'training data not stated')}</p>"
            + table_html(head[columns])
        )
        metrics, predictions = self._table("metrics", h), self._table("predictions", h)
        oracle = head.loc[head["model"] == "oracle", "auc"]
        figures = {
            "forest": auc_forest_figure(metrics, float(oracle.iloc[0]) if len(oracle) else None, note)
            if metrics is not None
            else None,
            "roc": roc_figure(predictions, note) if predictions is not None else None,
            "calibration": calibration_figure(predictions, note=note) if predictions is not None else None,
            "decision": decision_curve_figure(predictions, note=note) if predictions is not None else None,
        }
        subgroups = self._table("subgroups", h)
        if subgroups is not None:
            auc = subgroups[subgroups["metric"] == "auc"]
            keep = [c for c in ("subgroup", "estimate", "ci_low", "ci_high", "n", "n_events") if c in auc]
            self.subgroup_html.value = table_html(auc[keep].rename(columns={"estimate": "auc"}))
            figures["subgroups"] = subgroup_figure(auc, note)
        else:
            self.subgroup_html.value = "<p>No subgroup table in this folder.</p>"
            figures["subgroups"] = None
        figures["shap"] = self._shap_figure(h, note)
        for name, fig in figures.items():
            show_figure(self.outputs[name], fig if fig is not None else empty_figure(f"no {name} table in the folder"))
        self.card.clear_output()
        card = self.folder / f"model_card_h{h}.md"
        with self.card:
            display(Markdown(card.read_text(encoding="utf-8") if card.is_file() else f"No {card.name} here."))

    def _shap_figure(self, h: int, note: str | None):
        """Global importance: ``explain/importance_h{H}.csv`` when the folder has it, else SHAP of ``models/h{H}`` on
        the data folder's knees."""
        path = self.folder / "explain" / f"importance_h{h}.csv"
        if path.is_file():
            imp = read_table(path).head(20).iloc[::-1]
            return shap_plots.go.Figure(
                shap_plots.go.Bar(x=imp["mean_abs_shap"], y=imp["feature"], orientation="h")
            ).update_layout(title={"text": f"Global importance (mean |SHAP|, log-odds)<br><sup>{note}</sup>"})
        try:
            models = self.data.models() if self.folder == self.data.report_dir else None
        except OAKitError:
            models = None
        if models is None or h not in models.models:
            return None
        return importance_figure(self.data, h)


@functools.cache
def importance_figure(data: DataFolder, horizon: int):
    """Global SHAP importance of the data folder's model at ``horizon`` on its knees: SHAP of the whole cohort is
    computed once per kernel and horizon, not on every change of horizon."""
    model = data.models().models[horizon]
    result = shap_values(model, data.features())
    return shap_plots.importance_figure(result, note=model.provenance_["statement"])


def reference_rows(headline: pd.DataFrame) -> pd.DataFrame:
    """The oracle / latent-reference rows of a headline (synthetic cohorts only)."""
    return headline[headline["model"].isin(REFERENCE_MODELS)]
