"""The one-knee clinician page: pick a knee of the data folder (or ``?participant=ID&side=R``) or upload a radiograph
and an MRI, edit the clinical factors, and read KL grade with Grad-CAM, MRI thickness with QC, progression risk per
horizon with its interval, a SHAP waterfall in percentage points and a plain-language explanation.

Every callback is one or two :mod:`oa_kit.api` calls; the results are kept so that a what-if (BMI, WOMAC) only
re-runs :func:`oa_kit.knee_risk`. Speed: the page is built, its networks loaded and one knee run through every step
before a browser asks (Voila's preheated kernel, ``dashboards/voila.json``); the knee of the query string is computed
before the page is sent. A knee picked in the live page shows its risk at once (from its table row, which holds the
features the models were fitted on); its KL grading and MRI analysis run side by side on the page's two background
workers (:mod:`oa_kit.app.worker`) and appear as each is ready, marked with the knee they belong to (cached per file by
:mod:`oa_kit.app.data`, so a knee seen before opens at once). One lock keeps the worker's updates and the page's
callbacks from interleaving.
"""

from __future__ import annotations

import html
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import ipywidgets as widgets
import pandas as pd

from oa_kit.api import KneeGrades, MRIAnalysis, ProgressionModels, analyse_mri, grade_knees, knee_risk
from oa_kit.app import figures
from oa_kit.app.data import DataFolder, kl_grader, knee_grades, knee_mri, load_models, mri_segmenter
from oa_kit.app.inputs import CLINICAL_FIELDS, form_values, query_knee, saved_upload, validate_clinical
from oa_kit.app.risk import calibration_interval, main_predictions, probability_contributions
from oa_kit.app.widgets import (
    MessageLine,
    PagePreview,
    banner,
    clear_figure,
    guarded,
    heading,
    preview_classes,
    report_error,
    show_figure,
    table_html,
)
from oa_kit.app.worker import LatestWorker
from oa_kit.errors import OAKitError
from oa_kit.models.kl.predict import KL_PROBA_COLUMNS

NO_KNEE = "— choose a knee —"
#: Column prefixes of the image features an uploaded file replaces in a knee's row.
IMAGE_FEATURES = {"radiograph": ("kl_p", "kl_emb_")}


class KneeView:
    """The knee view page; ``.widget`` is what the notebook displays.

    Parameters
    ----------
    data : DataFolder
        Where knees, models and the report come from (``OA_KIT_DATA``).
    warm : bool
        Load the networks and run one knee through every step now (:meth:`warm_up`), so the page's first knee is
        quick; the notebook then calls :meth:`open_query` once the browser's query string is known.
    """

    def __init__(self, data: DataFolder, warm: bool = True) -> None:
        self.data = data
        self.models: ProgressionModels | None = None
        self.models_note = ""
        self.models_dir: Path | None = None
        self.kl: KneeGrades | None = None
        self.kl_index = 0
        self.mri: MRIAnalysis | None = None
        self.uploaded: set[str] = set()
        self.base_row: dict = {}
        self.knee_label = ""  # "ID side" of the open knee of the folder (the page marks its results with it)
        self.mri_label = ""
        self._filling = False
        self.message = MessageLine()
        self.workers = {"radiograph": LatestWorker("radiograph"), "mri": LatestWorker("mri")}
        self.lock = threading.RLock()
        self._build()
        self._start()
        if warm:
            self.warm_up()

    @classmethod
    def from_env(cls) -> KneeView:
        """The page for ``$OA_KIT_DATA``, opened on the knee named in the query string if any."""
        view = cls(DataFolder.from_env())
        view.open_query()
        return view

    # ------------------------------------------------------------------------------------------------ layout
    def _build(self) -> None:
        text = {"layout": widgets.Layout(width="300px"), "style": {"description_width": "130px"}}
        self.knee_picker = widgets.Dropdown(description="Knee", options=[NO_KNEE], **text)
        self.side = widgets.ToggleButtons(options=["R", "L"], description="Side", style={"button_width": "50px"})
        self.radiograph_upload = widgets.FileUpload(
            accept=".dcm,.dicom,.png,.jpg,.jpeg", description="Radiograph", multiple=False
        )
        self.mri_upload = widgets.FileUpload(accept=".nii,.gz,.zip", description="MRI", multiple=False)
        self.fields: dict[str, widgets.Widget] = {}
        for field in CLINICAL_FIELDS:
            label = f"{field.label}{' *' if field.required else ''}"
            if field.choices:
                self.fields[field.column] = widgets.Dropdown(options=["", *field.choices], description=label, **text)
            else:
                placeholder = f"{field.low:g}–{field.high:g} {field.unit}" if field.unit else ""
                self.fields[field.column] = widgets.Text(
                    description=label, placeholder=placeholder, continuous_update=False, **text
                )
            self.fields[field.column].add_class(f"oa-field-{field.column}")
        self.model_folder = widgets.Text(description="Model folder", placeholder="folder of h{H}/ models", **text)
        self.load_models_button = widgets.Button(description="Load models", icon="folder-open")
        self.opacity = widgets.FloatSlider(value=0.45, min=0, max=1, step=0.05, description="Grad-CAM opacity")
        self.horizon = widgets.Dropdown(description="Explain at", layout=widgets.Layout(width="220px"))
        self.kl_text = widgets.HTML()
        self.mri_text = widgets.HTML()
        self.risk_text = widgets.HTML()
        self.explanation = widgets.HTML()
        self.source_text = widgets.HTML()
        self.gradcam_out, self.proba_out = widgets.Output(), widgets.Output()
        self.mri_out, self.risk_out, self.waterfall_out = widgets.Output(), widgets.Output(), widgets.Output()
        for name in ("kl_text", "mri_text", "risk_text", "explanation", "source_text"):
            getattr(self, name).add_class(f"oa-{name.replace('_', '-')}")
        for name in ("gradcam_out", "proba_out", "mri_out", "risk_out", "waterfall_out"):
            getattr(self, name).add_class(f"oa-{name.replace('_', '-')}")
        self.risk_out.layout = widgets.Layout(width="40%")
        self.message.add_class("oa-message-line")
        inputs = widgets.VBox(
            [
                heading("Knee"),
                self.knee_picker,
                widgets.HTML("<small>or upload (files are deleted after reading):</small>"),
                self.side,
                widgets.HBox([self.radiograph_upload, self.mri_upload]),
                heading("Clinical factors"),
                *self.fields.values(),
                widgets.HTML("<small>* required. Changing a value updates the risk.</small>"),
                heading("Progression models"),
                self.model_folder,
                self.load_models_button,
            ],
            layout=widgets.Layout(flex="0 0 340px", width="340px", padding="0 12px 0 0"),
        )
        results = widgets.VBox(
            [
                heading("Radiograph: KL grade"),
                self.kl_text,
                self.opacity,
                widgets.HBox([self.gradcam_out, self.proba_out]),
                heading("Progression risk"),
                self.risk_text,
                widgets.HBox(
                    [
                        self.risk_out,
                        widgets.VBox([self.horizon, self.waterfall_out], layout=widgets.Layout(width="60%")),
                    ]
                ),
                self.explanation,
                heading("MRI: cartilage thickness"),
                self.mri_text,
                self.mri_out,
            ],
            layout=widgets.Layout(flex="1 1 0%", min_width="0", overflow="hidden"),
        )
        self.widget = widgets.VBox(
            [banner(), self.source_text, self.message, widgets.HBox([inputs, results])],
            layout=widgets.Layout(width="100%"),
        )
        self.widget.add_class("oa-knee-view")

    def _start(self) -> None:
        """Fill the picker and models from the data folder (missing parts become a note) and connect the callbacks."""
        self.source_text.value = f"<small>{html.escape(self.data.describe())}</small>"
        guarded(self.message)(self._load_default_models)()
        try:
            keys = self.data.features()[["participant_id", "side"]]
            self.knee_picker.options = [NO_KNEE, *(f"{p} {s}" for p, s in keys.itertuples(index=False))]
        except OAKitError as error:
            self.message.note(f"no knees to pick: {error}")
        self.knee_picker.observe(self._on_pick, "value")
        self.radiograph_upload.observe(self._on_radiograph, "value")
        self.mri_upload.observe(self._on_mri, "value")
        for widget in self.fields.values():
            widget.observe(self._on_form, "value")
        self.opacity.observe(self._on_opacity, "value")
        self.horizon.observe(self._on_horizon, "value")
        self.load_models_button.on_click(self._on_load_models)

    def _load_default_models(self) -> None:
        self.set_models(self.data.models(), self.data.models_dir)

    def warm_up(self) -> None:
        """Load the networks and open one knee (the query's, else the folder's first) through every step: the first use
        of torch, SHAP and plotly costs seconds, which a preheated kernel pays before the browser asks."""
        guarded(self.message)(kl_grader)(self.models_dir)
        guarded(self.message)(mri_segmenter)(self.models_dir)
        participant, side = query_knee()
        knee = f"{participant} {side or 'R'}" if participant else None
        first = self.data.first_knee()
        if knee not in self.knee_picker.options and first is not None:
            knee = f"{first[0]} {first[1]}"
        if knee in self.knee_picker.options:
            self._call(self.open_knee, *knee.rsplit(" ", 1), False)
            self.knee_picker.value = knee  # already open: the picker's callback does nothing

    def open_query(self) -> None:
        """Show the knee named in the page's query string (``?participant=ID&side=R``), else an empty form."""
        participant, side = query_knee()
        knee = f"{participant} {side or 'R'}"
        if participant and knee in self.knee_picker.options:
            if knee != self.knee_label:  # not the one warm_up opened: computed before the page is sent
                self._call(self.open_knee, participant, side or "R", False)
            self.knee_picker.value = knee  # already open: the picker's callback does nothing
            return
        self.clear()
        if participant:
            self.message.error(f"participant {participant} {side or ''}: not in this data folder; pick another knee")

    def preview(self) -> PagePreview:
        """The open knee's results as static HTML (banner, knee and files, risk per horizon with the models' training
        data, KL and MRI results with their QC, the explanation), which the page shows before the widgets are drawn;
        empty when no knee is open."""
        if not self.knee_label:
            return PagePreview("")
        heading = f"<h3>Knee {html.escape(self.knee_label)}</h3>"
        parts = (banner().value, heading, self.source_text.value, self.risk_text.value, self.kl_text.value)
        return PagePreview(preview_classes("".join((*parts, self.mri_text.value, self.explanation.value))))

    def wait(self) -> None:
        """Block until the background workers have shown the open knee's KL and MRI results (warm-up, tests)."""
        for worker in self.workers.values():
            worker.wait()

    # ---------------------------------------------------------------------------------------------- actions
    def set_models(self, models: ProgressionModels, where: str | Path) -> None:
        """Use ``models`` (read from folder ``where``) for the risk; their training data is shown next to every risk."""
        self.models, self.models_note, self.models_dir = models, str(where), Path(where)
        self.horizon.options = [(f"{h} months", h) for h in models.models]
        self.horizon.value = next(iter(models.models))
        self.update_risk()

    def clear(self) -> None:
        """No knee: an empty form and no results (the picker shows its prompt)."""
        self.base_row, self.kl, self.mri, self.uploaded = {}, None, None, set()
        self.knee_label = self.mri_label = ""
        for worker in self.workers.values():
            worker.cancel()
        self._filling = True
        try:
            self.knee_picker.value = NO_KNEE
            for widget in self.fields.values():
                widget.value = ""
        finally:
            self._filling = False
        for name in ("kl_text", "mri_text", "explanation"):
            getattr(self, name).value = ""
        for out in (self.gradcam_out, self.proba_out, self.mri_out, self.risk_out, self.waterfall_out):
            clear_figure(out)
        self.update_risk()

    def open_knee(self, participant: str, side: str, background: bool = True) -> None:
        """Open one knee of the data folder: its row and risk now, then its radiograph (KL + Grad-CAM) and MRI
        (thickness + QC; read from the folder's mri/ results when the pipeline segmented it) side by side on the
        background workers, started before the risk is computed and each shown as soon as it is ready if the knee is
        still open; both are cached per file, so a knee seen before opens without any network work. The risk is
        recomputed only when the row lacks the image features they add (a knee of the folder keeps the features its
        models were fitted on). ``background=False`` computes them now (side by side) and shows them before
        returning: used while the page is being built (warm-up, the query's knee), when no browser is connected yet to
        receive later updates."""
        with self.lock:
            row = self.data.knee_row(participant, side)
            files = self.data.knee_files(participant, side)
            self.base_row, self.kl, self.mri, self.uploaded = row, None, None, set()
            self.knee_label = self.mri_label = f"{participant} {side}"
            self._fill_form(row)
            self.kl_text.value = "<p>Grading the radiograph…</p>" if files["radiograph"] else ""
            self.mri_text.value = "<p>Segmenting the MRI…</p>" if files["mri"] else ""
            for out in (self.gradcam_out, self.proba_out, self.mri_out):
                clear_figure(out)
            radiograph, scan = files["radiograph"], files["mri"]
            jobs = {
                "radiograph": (partial(knee_grades, str(radiograph), self.models_dir) if radiograph else None,
                               partial(self._show_grades, side)),
                "mri": (partial(knee_mri, str(scan), side, self.data.mri_results_dir, self.models_dir) if scan else None,
                        self._show_analysis),
            }  # fmt: skip
            if background:  # the networks start now and show their results once the risk below has been shown
                for kind, (compute, show) in jobs.items():
                    self.workers[kind].submit(partial(self._background, self.workers[kind], compute, show))
                self.update_risk()
                return
            for worker in self.workers.values():
                worker.cancel()
            with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="oa_kit-page-build") as pool:
                running = [pool.submit(_outcome, compute) for compute, _ in jobs.values()]
                self.update_risk()
                results = [future.result() for future in running]
            for (_, show), result in zip(jobs.values(), results, strict=True):
                self._show_result(show, result)

    def _background(self, worker: LatestWorker, compute: Callable | None, show: Callable, generation: int) -> None:
        """Run ``compute`` (off the page's thread), then show its result under the page lock while the knee it
        belongs to is still ``worker``'s newest."""
        result = _outcome(compute)
        with self.lock:
            if worker.current(generation):
                self._show_result(show, result)

    def _show_result(self, show: Callable, result: object) -> None:
        """``show(result)``, or the error (computing or showing it) on the page's message line; called under the page
        lock (by :meth:`_background`, or inside :meth:`open_knee`)."""
        if isinstance(result, Exception):
            report_error(self.message, result)
            return
        try:
            show(result)
        except Exception as error:  # noqa: BLE001 - the page must keep working
            report_error(self.message, error)

    def _show_grades(self, side: str, grades: KneeGrades | None) -> None:
        """Keep and show a knee's KL result (unless a radiograph was uploaded meanwhile); the risk is updated when the
        row lacks the KL-CNN features."""
        if "radiograph" in self.uploaded:
            return
        if grades is not None:
            self.set_kl(grades, side)
            if not any(c.startswith(IMAGE_FEATURES["radiograph"]) for c in self.base_row):
                self.update_risk()
        self._show_kl()

    def _show_analysis(self, analysis: MRIAnalysis | None) -> None:
        """Keep and show a knee's MRI result (unless an MRI was uploaded meanwhile); the risk is updated when the row
        lacks the MRI features."""
        if "mri" in self.uploaded:
            return
        if analysis is not None:
            self.set_mri(analysis)
            if not any(c in self.base_row for c in analysis.features().columns):
                self.update_risk()
        self._show_mri()

    def set_kl(self, grades: KneeGrades, side: str | None = None) -> None:
        """Keep a KL result, on the row of ``side`` when it has several knees."""
        sides = list(grades.table["side"])
        self.kl, self.kl_index = grades, sides.index(side) if side in sides else 0

    def set_mri(self, analysis: MRIAnalysis) -> None:
        self.mri = analysis

    def clinical(self) -> dict:
        """The knee's row with the form's validated values over it (the clinical row :func:`oa_kit.knee_risk` is given).

        A knee of the folder keeps its row's image features (those its models were fitted on); an uploaded radiograph
        or MRI replaces them: the row's KL-CNN or MRI columns are dropped, and knee_risk joins the upload's result.
        """
        values = validate_clinical({c: w.value for c, w in self.fields.items()})
        row = {**self.base_row, **values}
        if "radiograph" in self.uploaded:
            row = {k: v for k, v in row.items() if not k.startswith(IMAGE_FEATURES["radiograph"])}
        if "mri" in self.uploaded and self.mri is not None:
            row = {k: v for k, v in row.items() if k not in set(self.mri.features().columns)}
        row.setdefault("side", self.side.value)
        return row

    def update_risk(self) -> None:
        """Risk per horizon, interval, waterfall and explanation for the current inputs (one :func:`knee_risk`)."""
        if self.models is None:
            self.risk_text.value = "<p>No progression models loaded: load a model folder.</p>"
            return
        if not self.base_row and not self.fields["age_years"].value:
            self.risk_text.value = "<p>Choose a knee or fill in the clinical factors to see its risk.</p>"
            clear_figure(self.risk_out)
            clear_figure(self.waterfall_out)
            self.explanation.value = ""
            return
        kl = self.kl.knee(self.kl_index) if self.kl is not None else None
        self.risk = knee_risk(self.models, pd.DataFrame([self.clinical()]), kl=kl, mri=self.mri)
        table = self.risk.to_frame()
        intervals = [
            calibration_interval(main_predictions(self.data.report_dir, h), r)
            for h, r in zip(table["horizon_months"], table["risk"])
        ]
        table["ci_low"], table["ci_high"], table["ci_knees"] = zip(*intervals) if intervals else ((), (), ())
        self.risk_table = table
        self.risk_text.value = self._risk_html(table)
        show_figure(self.risk_out, figures.risk_figure(table, note=self.risk.provenance))
        self._show_waterfall()

    def _show_waterfall(self) -> None:
        if self.models is None or not hasattr(self, "risk"):
            return
        h = self.horizon.value or int(self.risk_table["horizon_months"].iloc[0])
        model = self.models.models[h]
        contributions = probability_contributions(self.risk.explanations[h], 0, model.calibrator_.predict)
        show_figure(self.waterfall_out, figures.probability_waterfall(contributions, h, note=self.risk.provenance))
        row = self.risk_table.set_index("horizon_months").loc[h]
        self.explanation.value = (
            f'<p class="oa-plain"><b>In plain words ({h} months):</b> {html.escape(str(row["explanation"]))} '
            f"{html.escape(str(row['by_family']))}</p>"
            "<p><small>Bars: SHAP contributions (log-odds of the model's score) converted to percentage points "
            "along the path from the base rate to this risk, largest first; they add up to the risk shown.</small></p>"
        )

    # ------------------------------------------------------------------------------------------------ views
    def _fill_form(self, row: dict) -> None:
        values = form_values(row)
        self._filling = True
        try:
            for column, widget in self.fields.items():
                widget.value = values[column]
        finally:
            self._filling = False
        if row.get("side") in ("R", "L"):
            self.side.value = row["side"]

    def _show_kl(self) -> None:
        if self.kl is None:
            self.kl_text.value = "<p>No radiograph for this knee.</p>"
            clear_figure(self.gradcam_out)
            clear_figure(self.proba_out)
            return
        row = self.kl.to_frame().iloc[self.kl_index]
        probs = ", ".join(f"KL{k}: {100 * row[c]:.0f}%" for k, c in enumerate(KL_PROBA_COLUMNS))
        flags = row["kl_qa_flags"] or "none"
        grade = "not graded" if row["kl_grade"] is pd.NA else f"KL {row['kl_grade']}"
        knee = html.escape(f"{row['participant_id']} {row['side']}")
        self.kl_text.value = (
            f'<p class="oa-kl-result" data-knee="{knee}"><b>{grade}</b> — conformal set '
            f"{{{html.escape(str(row['kl_grade_set']))}}} "
            f"(90% coverage); probabilities {probs}; QA flags: {html.escape(str(flags))}<br>"
            f"<small>Model: {html.escape(self.kl.model)}.</small></p>"
        )
        show_figure(self.gradcam_out, self.kl.figure(self.kl_index, opacity=self.opacity.value))
        show_figure(self.proba_out, self.kl.probability_figure(self.kl_index))

    def _show_mri(self) -> None:
        if self.mri is None:
            self.mri_text.value = "<p>No MRI for this knee.</p>"
            clear_figure(self.mri_out)
            return
        summary = html.escape(self.mri.summary())
        failed = bool(self.mri.qc.get("qc_any"))
        style = "color:#a4000f;font-weight:700" if failed else "color:#1a6b2a;font-weight:600"
        numbers = self.mri.to_frame()
        keep = [c for c in ("subregion", "thickness_mm_mean", "thickness_mm_p05", "volume_mm3") if c in numbers]
        verdict = "oa-qc-failed" if failed else "oa-qc-passed"
        self.mri_text.value = (
            f'<p class="oa-mri-qc {verdict}" data-knee="{html.escape(self.mri_label)}" style="{style}">{summary}</p>'
            + table_html(numbers[keep], "{:.2f}")
        )
        show_figure(self.mri_out, self.mri.figure())

    def _risk_html(self, table: pd.DataFrame) -> str:
        synthetic = "synthetic" in self.risk.provenance.lower()
        note = (
            '<span class="oa-synthetic" style="color:#a4000f;font-weight:700">Trained on the synthetic cohort — '
            "not a clinical estimate.</span> "
            if synthetic
            else ""
        )
        parts = []
        for r in table.itertuples():
            n_refits = len(getattr(self.models.models[r.horizon_months], "bootstrap_", []))
            spread = (
                f' <span class="oa-risk-bootstrap">(95% interval {100 * r.risk_low:.0f}–{100 * r.risk_high:.0f}%, '
                f"{n_refits} bootstrap refits)</span>"
                if not math.isnan(r.risk_low)
                else ' <span class="oa-risk-bootstrap">(no interval: models fitted without bootstrap refits)</span>'
            )
            interval = (
                f' <span class="oa-risk-interval">— calibration check: {r.ci_knees} held-out knees with the nearest '
                f"predicted risk progressed at {100 * r.ci_low:.0f}–{100 * r.ci_high:.0f}% "
                "(95% CI of that rate)</span>"
                if not math.isnan(r.ci_low)
                else ' <span class="oa-risk-interval">(no calibration check: no report folder beside the models)</span>'
            )
            parts.append(f"<li><b>{r.horizon_months} months: {100 * r.risk:.0f}%</b>{spread}{interval}</li>")
        return (
            f'<div class="oa-risk" data-knee="{html.escape(self.knee_label)}">{note}<ul>{"".join(parts)}</ul>'
            "<small>Model: LightGBM progression models in "
            f"{html.escape(self.models_note)}; {html.escape(self.risk.provenance)}.<br>The 95% interval is this "
            "knee's risk under the models refitted on participant-level bootstrap resamples of their training knees "
            "(how much the risk depends on which knees the models saw). The calibration check is the Wilson 95% "
            "confidence interval of the progression rate observed among the report's held-out knees whose "
            "out-of-sample risk was nearest this one; a well-calibrated risk lies inside it.</small></div>"
        )

    # -------------------------------------------------------------------------------------------- callbacks
    def _call(self, callback: Callable, *args) -> None:
        """Run a page callback under the page lock (the worker may be showing a result), its errors on the page."""
        with self.lock:
            guarded(self.message)(callback)(*args)

    def _on_pick(self, change) -> None:
        if change["new"] in (NO_KNEE, self.knee_label):
            return
        participant, side = change["new"].rsplit(" ", 1)
        self._call(self.open_knee, participant, side)

    def _on_radiograph(self, change) -> None:
        self._call(self._read_radiograph, change["new"])

    def _read_radiograph(self, value) -> None:
        if not value or self._filling:
            return
        try:
            with saved_upload(value[0], "radiograph") as path:
                grades = grade_knees([path], side=self.side.value, grader=kl_grader(self.models_dir))
        finally:
            self._forget(self.radiograph_upload)
        self.uploaded.add("radiograph")
        self.set_kl(grades, self.side.value)
        self._show_kl()
        self.update_risk()

    def _on_mri(self, change) -> None:
        self._call(self._read_mri, change["new"])

    def _read_mri(self, value) -> None:
        if not value or self._filling:
            return
        try:
            with saved_upload(value[0], "mri") as path:
                analysis = analyse_mri(path, side=self.side.value, segmenter=mri_segmenter(self.models_dir))
        finally:
            self._forget(self.mri_upload)
        self.uploaded.add("mri")
        self.mri_label = "upload"
        self.set_mri(analysis)
        self._show_mri()
        self.update_risk()

    def _forget(self, upload: widgets.FileUpload) -> None:
        """Drop the uploaded bytes from the widget (the file lived only in the deleted temporary folder)."""
        self._filling = True
        try:
            upload.value = ()
        finally:
            self._filling = False

    def _on_form(self, change) -> None:
        if self._filling:
            return
        self._call(self.update_risk)

    def _on_opacity(self, change) -> None:
        self._call(self._show_gradcam, change["new"])

    def _show_gradcam(self, opacity: float) -> None:
        if self.kl is not None:
            show_figure(self.gradcam_out, self.kl.figure(self.kl_index, opacity=opacity))

    def _on_horizon(self, change) -> None:
        self._call(self._show_waterfall)

    def _on_load_models(self, _button) -> None:
        self._call(self._load_models)

    def _load_models(self) -> None:
        folder = self.model_folder.value.strip()
        if not folder:
            raise OAKitError("Model folder: empty; expected a folder written by `oa-kit progression fit`")
        self.set_models(load_models(folder), Path(folder).expanduser().resolve())


def _outcome(compute: Callable | None) -> object:
    """``compute()``'s result, or the exception it raised (to be shown on the page, not lost in a thread); None
    when there is nothing to compute (the knee has no such image)."""
    try:
        return compute() if compute is not None else None
    except Exception as error:  # noqa: BLE001 - shown on the page by the caller
        return error
