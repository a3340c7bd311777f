"""The Voila dashboards (``dashboards/*.ipynb`` over :mod:`oa_kit.app`): their logic in-process, then each page in a
real headless Chromium (Playwright) against a small prepared data folder built by the real command line.

Browser tests skip with a reason when Playwright or Chromium is missing. The pages must work offline: any request off
127.0.0.1 fails the test (the page template in ``dashboards/jupyter`` drops the CDN stylesheets of Voila's ``lab``
template). The accessibility test runs axe-core (bundled by the ``axe-playwright-python`` package; skips without it).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from oa_kit.errors import OAKitError

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("OA_KIT_SCREENSHOTS", tempfile.gettempdir())) / "oa_kit_dashboard_shots"


# ------------------------------------------------------------------------------------------- the data folder
def _run(*args: str) -> None:
    from oa_kit.cli import main

    assert main(list(args)) == 0, args


@pytest.fixture(scope="session")
def dashboard_data(request, tmp_path_factory) -> Path:
    """A data folder laid out like ``make demo``'s (cohort/, labels/, features.parquet, progression/ with a report
    and models/, mri/ with the baseline MRIs segmented), from the 30-participant cohort, built by the command line
    (about two minutes on 2 cores).
    ``OA_KIT_TEST_DASHBOARD_DATA=folder`` reuses one built before (read-only)."""
    if os.environ.get("OA_KIT_TEST_DASHBOARD_DATA"):
        return Path(os.environ["OA_KIT_TEST_DASHBOARD_DATA"])
    small_cohort = request.getfixturevalue("small_cohort")
    root = tmp_path_factory.mktemp("dashboard") / "data"
    root.mkdir()
    (root / "cohort").symlink_to(small_cohort)
    _run("labels", "--tables", str(small_cohort), "--out", str(root / "labels"))
    _run("kl", "predict", str(small_cohort / "xray"), "--out", str(root / "kl.parquet"))
    clinical = pd.read_parquet(root / "labels" / "clinical.parquet")
    kl = pd.read_parquet(root / "kl.parquet")
    kl = kl[["participant_id", "side", *[c for c in kl if c.startswith(("kl_p", "kl_emb_"))]]]
    clinical.merge(kl, on=["participant_id", "side"], how="left").to_parquet(root / "features.parquet", index=False)
    common = ["--features", str(root / "features.parquet"), "--labels", str(root / "labels" / "labels.parquet")]
    common += ["--horizons", "24", "48", "--data", "synthetic", "--search", "quick"]
    _run("progression", "evaluate", *common, "--n-splits", "3", "--n-resamples", "50", "--no-site-held-out",
         "--oracle", str(small_cohort / "truth" / "knees.parquet"), "--out", str(root / "progression"))  # fmt: skip
    _run("progression", "fit", *common, "--bootstrap", "10", "--out", str(root / "progression" / "models"))
    scans = sorted((small_cohort / "mri").glob("*_V00_DESS.nii.gz"))  # as make demo: the baseline MRIs, into mri/
    _run("mri", "segment", *map(str, scans), "--out", str(root / "mri"), "--no-progress")
    return root


@pytest.fixture(scope="session")
def knee_png(dashboard_data, tmp_path_factory) -> Path:
    """A single-knee PNG crop (the model input of a cohort knee, 8-bit)."""
    from PIL import Image

    from oa_kit.api import grade_knees

    dicom = sorted((dashboard_data / "cohort" / "xray").glob("*.dcm"))[0]
    grades = grade_knees([dicom], gradcam=False)
    path = tmp_path_factory.mktemp("png") / "9999999R.png"
    Image.fromarray((255 * grades.inputs[0, 0]).astype(np.uint8)).save(path)
    return path


# -------------------------------------------------------------------------------------------- in-process logic
def test_clinical_form_validation_names_the_field():
    from oa_kit.app.inputs import form_values, validate_clinical

    good = validate_clinical({"age_years": "61", "sex": "F", "bmi_kg_m2": "31,5", "womac_pain": "4",
                              "womac_stiffness": "2", "womac_function": "10", "injury": "yes"})  # fmt: skip
    assert good["bmi_kg_m2"] == 31.5 and good["womac_total"] == 16 and good["injury"] == 1.0
    assert math.isnan(validate_clinical({"age_years": "61", "sex": "F", "bmi_kg_m2": "30"})["womac_total"])
    for values, expected in [
        ({"age_years": "61", "sex": "F", "bmi_kg_m2": "500"}, "BMI: 500 is out of range; expected 12 to 70"),
        ({"age_years": "", "sex": "F", "bmi_kg_m2": "30"}, "Age: empty; expected a value (required)"),
        ({"age_years": "61", "sex": "F", "bmi_kg_m2": "heavy"}, "BMI: 'heavy' is not a number"),
        ({"age_years": "61", "sex": "X", "bmi_kg_m2": "30"}, "Sex: 'X'; expected one of F, M"),
        ({"age_years": "nan", "sex": "F", "bmi_kg_m2": "30"}, "Age: nan is out of range"),
    ]:
        with pytest.raises(OAKitError, match=re.escape(expected)):
            validate_clinical(values)
    row = {"age_years": 61.0, "sex": "M", "bmi_kg_m2": 29.2, "injury": 0.0, "surgery": float("nan")}
    assert form_values(row) == {**dict.fromkeys(form_values({}), ""), "age_years": "61", "sex": "M",
                                "bmi_kg_m2": "29.2", "injury": "no"}  # fmt: skip


def test_uploads_live_only_in_a_temporary_folder(tmp_path):
    import zipfile

    from oa_kit.app.inputs import UPLOAD_PREFIX, saved_upload

    with saved_upload({"name": "../../knee.png", "content": memoryview(b"\x89PNG data")}, "radiograph") as path:
        assert path.read_bytes() == b"\x89PNG data" and path.name == "knee.png"
        assert path.parent.name.startswith(UPLOAD_PREFIX)
        folder = path.parent
    assert not folder.exists()
    with pytest.raises(OAKitError, match="boom"), saved_upload({"name": "k.dcm", "content": b"x"}, "radiograph") as p:
        folder = p.parent
        raise OAKitError("boom")
    assert not folder.exists()
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../evil/1.dcm", b"a")
        zf.writestr("dir/2.dcm", b"b")
    with saved_upload({"name": "series.zip", "content": archive.read_bytes()}, "mri") as series:
        assert sorted(p.name for p in series.iterdir()) == ["00000.dcm", "00001.dcm"]
    assert not series.exists()
    for item, kind, message in [
        ({"name": "notes.txt", "content": b"hello"}, "radiograph", "notes.txt: not a radiograph file"),
        ({"name": "big.png", "content": bytes(50 * 1024 * 1024)}, "radiograph", "big.png: 50 MB; expected a"),
        ({"name": "empty.dcm", "content": b""}, "radiograph", "empty.dcm: empty file"),
        ({"name": "scan.zip", "content": b"not a zip"}, "mri", "scan.zip: not a readable zip file"),
    ]:
        with pytest.raises(OAKitError, match=re.escape(message)), saved_upload(item, kind):
            pass
    assert not list(Path(tempfile.gettempdir()).glob(f"{UPLOAD_PREFIX}*"))


def test_query_string_and_links():
    from oa_kit.app.inputs import knee_link, query_knee

    assert query_knee("participant=9001&side=L") == ("9001", "L")
    assert query_knee("participant=9001&side=Z") == ("9001", None)
    assert query_knee("") == (None, None)
    assert knee_link("9001", "R") == "knee_view.ipynb?participant=9001&side=R"


def test_probability_waterfall_adds_up_to_the_shown_risk(dashboard_data):
    from oa_kit.api import knee_risk
    from oa_kit.app.data import DataFolder
    from oa_kit.app.figures import probability_waterfall
    from oa_kit.app.risk import calibration_interval, main_predictions, probability_contributions

    data = DataFolder(dashboard_data)
    models, row = data.models(), data.features().iloc[3].to_dict()
    risk = knee_risk(models, row)
    for h, shown in zip(risk.to_frame()["horizon_months"], risk.to_frame()["risk"]):
        table = probability_contributions(risk.explanations[h], 0, models.models[h].calibrator_.predict, top_k=3)
        assert table["group"].iloc[0] == "base rate" and table["group"].iloc[-1] == "risk"
        assert len(table) <= 3 + 3
        assert table["probability"].iloc[1:-1].sum() + table["probability"].iloc[0] == pytest.approx(shown, abs=1e-9)
        assert table["cumulative"].iloc[-1] == pytest.approx(shown, abs=1e-9)
        assert table["log_odds"].iloc[1:-1].sum() + table["log_odds"].iloc[0] == pytest.approx(
            risk.explanations[h].raw_output()[0]
        )
        fig = probability_waterfall(table, h, note=risk.provenance)
        assert "synthetic" in fig.layout.title.text and "percentage points" in fig.layout.title.text
        low, high, n = calibration_interval(main_predictions(data.report_dir, h), shown)
        assert 0 <= low <= high <= 1 and n >= 20
    assert calibration_interval(None, 0.3)[2] == 0


def _item(name: str, data: bytes) -> dict:
    """One ipywidgets FileUpload value entry."""
    return {
        "name": name,
        "type": "",
        "size": len(data),
        "content": memoryview(data),
        "last_modified": datetime.now(UTC),
    }


def test_knee_view_in_process_what_if_and_bad_inputs(dashboard_data, knee_png, monkeypatch):
    from oa_kit.app.data import DataFolder
    from oa_kit.app.knee_view import KneeView

    data = DataFolder(dashboard_data)
    pid, side = data.features()[["participant_id", "side"]].iloc[2]
    monkeypatch.setenv("QUERY_STRING", f"participant={pid}&side={side}")
    view = KneeView(data)
    assert view.message.value == "" and "synthetic cohort" in view.risk_text.value
    assert "KL-CNN trained on real OAI knees" in view.kl_text.value and "QC" in view.mri_text.value
    table = view.risk_table
    assert (table["risk_low"] <= table["risk_high"]).all() and "10 bootstrap refits" in view.risk_text.value
    for r in table.itertuples():
        assert f"95% interval {100 * r.risk_low:.0f}–{100 * r.risk_high:.0f}%" in view.risk_text.value
    preview, flag = view.preview()._repr_mimebundle_()  # the static copy the page template shows first
    shown = preview["text/html"]
    assert flag == {"oa_kit_preview": True} and shown.startswith('<div class="oa-preview-source">')
    assert "not a diagnosis" in shown and f"Knee {pid} {side}" in shown and "Trained on the synthetic cohort" in shown
    assert all(f"{r.horizon_months} months: {100 * r.risk:.0f}%" in shown for r in table.itertuples())
    assert "KL-CNN trained on real OAI knees" in shown and "QC" in shown and "In plain words" in shown
    assert 'class="oa-risk' not in shown and 'class="oa-preview-risk"' in shown  # never taken for the widgets
    before = view.risk_table["risk"].to_numpy()
    changed = False
    for bmi in ("60", "15", "45"):
        view.fields["bmi_kg_m2"].value = bmi
        changed |= not np.allclose(view.risk_table["risk"].to_numpy(), before)
    assert changed and view.message.value == ""
    view.fields["bmi_kg_m2"].value = "500"
    assert "BMI: 500 is out of range" in view.message.value
    view.fields["bmi_kg_m2"].value = "30"
    assert view.message.value == ""
    view.radiograph_upload.value = (_item(knee_png.name, knee_png.read_bytes()),)
    assert view.message.value == "" and view.radiograph_upload.value == ()
    assert view.kl.table["participant_id"].iloc[0] == "9999999"
    assert not any(c.startswith(("kl_p", "kl_emb_")) for c in view.clinical())  # the upload's KL replaces the row's
    view.radiograph_upload.value = (_item("bad.dcm", b"\0" * 300),)
    assert "bad.dcm" in view.message.value and "Traceback" not in view.message.value
    scan = sorted((dashboard_data / "cohort" / "mri").glob("*_R_V00_DESS.nii.gz"))[0]
    view.side.value = "R"
    view.mri_upload.value = (_item("knee.nii.gz", scan.read_bytes()),)
    assert view.message.value == "" and view.mri_upload.value == ()
    assert view.mri.side == "R" and "QC" in view.mri_text.value and "segmenter" in view.mri_text.value
    view.model_folder.value = str(dashboard_data / "nowhere")
    view._on_load_models(None)
    assert "model folder not found" in view.message.value


def test_knee_view_caches_network_results(dashboard_data, monkeypatch):
    from oa_kit.app import data as app_data
    from oa_kit.app.data import DataFolder
    from oa_kit.app.knee_view import KneeView

    data = DataFolder(dashboard_data)
    keys = [tuple(k) for k in data.features()[["participant_id", "side"]].itertuples(index=False)]
    monkeypatch.delenv("QUERY_STRING", raising=False)
    view = KneeView(data)  # warm-up: the folder's first knee through every step
    assert view.kl is not None and view.mri is not None and view.knee_label == " ".join(keys[0])
    view.open_query()  # no knee asked for: an empty page
    assert view.base_row == {} and view.kl is None and "Choose a knee" in view.risk_text.value
    view.open_knee(*keys[9])  # the risk now; KL and MRI on the page's worker thread
    assert view.knee_label == " ".join(keys[9]) and "synthetic cohort" in view.risk_text.value
    view.wait()
    shown = view.kl.to_frame().iloc[view.kl_index]
    assert (shown["participant_id"], shown["side"]) == keys[9] and view.mri_label == " ".join(keys[9])
    assert f'data-knee="{keys[9][0]} {keys[9][1]}"' in view.mri_text.value and view.message.value == ""
    kl_hits, mri_hits = app_data.knee_grades.cache_info().hits, app_data.knee_mri.cache_info().hits
    view.open_knee(*keys[0])  # graded and segmented in the warm-up: from the cache now
    view.wait()
    assert app_data.knee_grades.cache_info().hits == kl_hits + 1 and app_data.knee_mri.cache_info().hits == mri_hits + 1
    assert view.kl.to_frame().iloc[view.kl_index]["participant_id"] == keys[0][0]


def test_knee_view_shows_the_pipelines_mri_result(dashboard_data, monkeypatch):
    """A knee whose MRI ``oa-kit mri segment`` wrote to the folder's mri/ is shown from there (the result its
    features came from, no segmentation in the page); without mri/ (a bare cohort folder) it is segmented."""
    from oa_kit.app.data import DataFolder
    from oa_kit.app.knee_view import KneeView

    monkeypatch.delenv("QUERY_STRING", raising=False)
    view = KneeView(DataFolder(dashboard_data))
    assert view.mri.measurement is None and "read from the results in mri/" in view.mri.model
    assert "read from the results" in view.mri_text.value and view.message.value == ""
    bare = KneeView(DataFolder(dashboard_data / "cohort"))
    assert bare.mri.measurement is not None and "read from" not in bare.mri.model


def test_risk_figure_draws_the_bootstrap_interval_and_the_calibration_check():
    from oa_kit.app.figures import risk_figure

    table = pd.DataFrame(
        {"horizon_months": [24, 48], "risk": [0.2, 0.3], "risk_low": [0.1, 0.35], "risk_high": [0.4, 0.5],
         "ci_low": [0.15, float("nan")], "ci_high": [0.45, float("nan")]}
    )  # fmt: skip
    bar, check = risk_figure(table).data
    assert np.allclose(bar.error_y.array, [20, 20]) and np.allclose(bar.error_y.arrayminus, [10, 0])  # 0: not below
    assert list(check.x) == [0.35] and "calibration check" in check.name and "bootstrap" in bar.name
    bare = risk_figure(table.drop(columns=["risk_low", "risk_high"]))
    assert bare.data[0].error_y.array is None and "bootstrap" not in bare.data[0].name


def test_page_worker_runs_only_the_newest_job():
    """A knee switched away from while its network work waits is dropped; a job that raises leaves the thread going."""
    from oa_kit.app.worker import LatestWorker

    worker, started, gate, ran = LatestWorker(), threading.Event(), threading.Event(), []

    def first(generation: int) -> None:
        started.set()
        gate.wait(10)
        ran.append(("first", worker.current(generation)))

    worker.submit(first)
    assert started.wait(10)
    worker.submit(lambda g: ran.append(("second", g)))
    third = worker.submit(lambda g: ran.append(("third", g)))
    gate.set()
    worker.wait()
    assert ran == [("first", False), ("third", third)]
    worker.submit(lambda g: 1 / 0)
    worker.submit(lambda g: ran.append(("after an error", g)))
    worker.wait()
    assert ran[-1][0] == "after an error"


def test_knee_view_shows_only_the_newest_knee(dashboard_data, monkeypatch):
    """Two knees picked in quick succession: the page ends on the second one's KL, MRI and risk (the first one's
    network results, if they arrive, are not shown), each figure set as a plotly bundle."""
    from oa_kit.app.data import DataFolder
    from oa_kit.app.knee_view import KneeView

    data = DataFolder(dashboard_data)
    keys = [tuple(k) for k in data.features()[["participant_id", "side"]].itertuples(index=False)]
    monkeypatch.delenv("QUERY_STRING", raising=False)
    view = KneeView(data, warm=False)
    view.open_knee(*keys[11])
    view.open_knee(*keys[12])
    view.wait()
    label = " ".join(keys[12])
    assert view.knee_label == label and view.message.value == ""
    assert tuple(view.kl.to_frame().iloc[view.kl_index][["participant_id", "side"]]) == keys[12]
    assert f'data-knee="{label}"' in view.kl_text.value and f'data-knee="{label}"' in view.mri_text.value
    for out in (view.gradcam_out, view.mri_out, view.risk_out, view.waterfall_out):
        assert "application/vnd.plotly.v1+json" in out.outputs[0]["data"]


def test_knee_view_runs_kl_and_mri_side_by_side(dashboard_data, monkeypatch):
    """A picked knee's MRI does not wait for its radiograph: the KL job only finishes once the MRI job has started."""
    import threading

    from oa_kit.app import knee_view as page
    from oa_kit.app.data import DataFolder

    data = DataFolder(dashboard_data)
    keys = [tuple(k) for k in data.features()[["participant_id", "side"]].itertuples(index=False)]
    monkeypatch.delenv("QUERY_STRING", raising=False)
    mri_started, grades, analyse = threading.Event(), page.knee_grades, page.knee_mri

    def grades_after_mri_started(*args):
        if not mri_started.wait(60):
            raise RuntimeError("the MRI job did not start while the KL job ran")
        return grades(*args)

    monkeypatch.setattr(page, "knee_grades", grades_after_mri_started)
    monkeypatch.setattr(page, "knee_mri", lambda *args: (mri_started.set(), analyse(*args))[1])
    view = page.KneeView(data, warm=False)
    view.open_knee(*keys[13])
    view.wait()
    assert view.message.value == "" and view.kl is not None and view.mri is not None


def test_pages_on_a_bare_cohort_folder(dashboard_data, monkeypatch):
    """The workshop preset's folders (``notebooks/data/*_imaged``) are cohorts only: tables and images, no labels,
    models or report; each page shows what the folder has and names what it lacks."""
    from oa_kit.app.cohort_explorer import CohortExplorer
    from oa_kit.app.data import DataFolder
    from oa_kit.app.knee_view import KneeView
    from oa_kit.app.model_report import ModelReport

    data = DataFolder(dashboard_data / "cohort")
    assert not (data.root / "labels").exists() and len(data.features()) == 60
    explorer = CohortExplorer(data)
    assert explorer.risk is None and "of 60 knees" in explorer.count.value and explorer.message.value == ""
    monkeypatch.delenv("QUERY_STRING", raising=False)
    view = KneeView(data)
    assert "KL-CNN trained on real OAI knees" in view.kl_text.value and "QC" in view.mri_text.value
    assert "No progression models loaded" in view.risk_text.value
    report = ModelReport(data)
    assert "headline.csv: missing" in report.message.value


# ------------------------------------------------------------------------------------------------ the browser
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium driven by Playwright (skips when either is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} not found (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="oa_kit_chromium_"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 2400},
        )
        yield context
        context.close()


@pytest.fixture(scope="module")
def voila(dashboard_data, tmp_path_factory):
    """``voila dashboards/`` with the checked-in voila.json on a free port; yields (base URL, its temp folder)."""
    pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    port = _free_port()
    tmp = tmp_path_factory.mktemp("voila_tmp")
    log = open(tmp_path_factory.mktemp("voila_log") / "voila.log", "w")  # noqa: SIM115 - closed at teardown
    env = {
        **os.environ,
        "OA_KIT_DATA": str(dashboard_data),
        "TMPDIR": str(tmp),
        "JUPYTER_PATH": str(DASHBOARDS / "jupyter"),
    }
    command = [sys.executable, "-m", "voila", f"--Voila.config_file_paths={DASHBOARDS}", f"--port={port}"]
    server = subprocess.Popen([*command, "--no-browser", str(DASHBOARDS)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        with contextlib.suppress(OSError):
            if urllib.request.urlopen(url, timeout=2).status == 200:
                break
        time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("voila did not start")
    yield url, tmp
    server.send_signal(signal.SIGINT)
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


class Page:
    """One dashboard page in the browser, with its console errors and requests off this machine."""

    def __init__(self, context, url: str) -> None:
        self.errors: list[str] = []
        self.page = context.new_page()
        self.page.on("console", lambda m: self._console(m))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("response", lambda r: self.errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
        self.page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/]).*"), self._outside)
        self.page.goto(url, timeout=180_000, wait_until="commit")

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} {message.location.get('url', '')}")

    def _outside(self, route) -> None:
        self.errors.append(f"request off this machine: {route.request.url}")
        route.abort()

    def wait_for(self, selector: str, timeout_s: float = 180) -> None:
        self.page.wait_for_selector(selector, timeout=timeout_s * 1000)

    def wait_until(self, condition, timeout_s: float = 30, what: str = "") -> None:
        end = time.time() + timeout_s
        while time.time() < end:
            if condition():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    def text(self, selector: str) -> str:
        node = self.page.locator(selector)
        return node.first.inner_text() if node.count() else ""

    def count(self, selector: str) -> int:
        return self.page.locator(selector).count()

    def check_clean(self) -> None:
        assert self.count(".voila-error") == 0
        assert self.errors == []

    def screenshot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def kernel_id(self) -> str:
        """The id of the kernel serving this page (Voila writes it into the page's configuration)."""
        return re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', self.page.content()).group(1)

    def close(self) -> None:
        """Close the tab as a person would (its unload handlers run: Voila's shuts the page's kernel down)."""
        self.page.close(run_before_unload=True)


def _field(page: Page, column: str):
    return page.page.locator(f".oa-field-{column} input")


def _set_field(page: Page, column: str, value: str) -> None:
    field = _field(page, column)
    field.fill(value)
    field.press("Enter")


def _upload(page: Page, description: str, path: Path | None = None, name: str = "", data: bytes = b"") -> None:
    """Choose a file in a FileUpload button (ipywidgets 8 keeps its file input out of the DOM: use the chooser)."""
    with page.page.expect_file_chooser() as chooser:
        page.page.locator(".widget-upload", has_text=description).first.click()
    if path is not None:
        chooser.value.set_files(str(path))
    else:
        chooser.value.set_files({"name": name, "mimeType": "application/octet-stream", "buffer": data})


def _uploads_left(tmp: Path) -> list[Path]:
    return list(tmp.glob("oa_kit_upload_*"))


@pytest.mark.slow
def test_knee_view_in_the_browser(voila, browser, dashboard_data, knee_png):
    url, tmp = voila
    keys = pd.read_parquet(dashboard_data / "features.parquet")[["participant_id", "side"]]
    pid, side = keys.iloc[2]
    page = Page(browser, f"{url}/voila/render/knee_view.ipynb?participant={pid}&side={side}")
    page.wait_for(".oa-risk li")
    page.wait_until(lambda: page.count(".js-plotly-plot") >= 5, timeout_s=180, what="five figures")
    page.check_clean()
    # the static preview was shown while the HTML was still being read, before Voila's JavaScript ran, and is gone
    # once the widgets are drawn
    shown = page.page.evaluate("() => window.oaPreviewShown")
    assert shown["readyState"] == "loading", shown
    assert page.count("#oa-preview") == 0 and not page.page.locator(".oa-preview-source").is_visible()
    assert "not a diagnosis" in page.text(".oa-banner")
    assert "Trained on the synthetic cohort" in page.text(".oa-risk") and "bootstrap refits" in page.text(".oa-risk")
    assert "KL-CNN trained on real OAI knees" in page.text(".oa-kl-result")
    assert "QC" in page.text(".oa-mri-qc")
    assert pid in page.text(".oa-gradcam-out") and "percentage points" in page.text(".oa-waterfall-out")
    page.screenshot("knee_view")

    # select another participant
    other_pid, other_side = keys.iloc[7]
    page.page.locator(".widget-dropdown", has_text="Knee").locator("select").first.select_option(
        f"{other_pid} {other_side}"
    )
    page.wait_until(lambda: other_pid in page.text(".oa-gradcam-out"), what="the other knee's Grad-CAM")

    # what-if: BMI changes the risk
    before = page.text(".oa-risk ul")
    for bmi in ("60", "15", "45"):
        _set_field(page, "bmi_kg_m2", bmi)
        with contextlib.suppress(AssertionError):
            page.wait_until(lambda: page.text(".oa-risk ul") != before, timeout_s=5, what="a new risk")
            break
    assert page.text(".oa-risk ul") != before

    # upload a PNG: KL result with its Grad-CAM; the upload's temporary folder is gone
    _upload(page, "Radiograph", knee_png)
    page.wait_until(lambda: "9999999" in page.text(".oa-gradcam-out"), what="the PNG's Grad-CAM")
    assert "KL-CNN trained on real OAI knees" in page.text(".oa-kl-result")
    assert _uploads_left(tmp) == []
    page.check_clean()
    page.screenshot("knee_view_png_upload")
    page.close()


@pytest.mark.slow
def test_knee_view_bad_inputs_in_the_browser(voila, browser, dashboard_data, tmp_path):
    url, tmp = voila
    pid, side = pd.read_parquet(dashboard_data / "features.parquet")[["participant_id", "side"]].iloc[4]
    page = Page(browser, f"{url}/voila/render/knee_view.ipynb?participant={pid}&side={side}")
    page.wait_for(".oa-risk li")

    def shows(text: str) -> None:
        page.wait_until(lambda: text in page.text(".oa-error"), what=repr(text))
        assert "Traceback" not in page.page.inner_text("body")

    _set_field(page, "bmi_kg_m2", "500")
    shows("BMI: 500 is out of range; expected 12 to 70")
    _set_field(page, "age_years", "")
    shows("Age: empty; expected a value (required)")
    _set_field(page, "age_years", "60")
    _set_field(page, "bmi_kg_m2", "31")
    page.wait_until(lambda: page.count(".oa-error") == 0, what="the message to clear")
    _upload(page, "Radiograph", name="notes.txt", data=b"not an image")
    shows("notes.txt: not a radiograph file")
    _upload(page, "Radiograph", name="corrupt.dcm", data=b"\0" * 128 + b"DICM" + os.urandom(2000))
    shows("corrupt.dcm")
    _upload(page, "Radiograph", name="fake.png", data=b"this is text, not a PNG")
    shows("fake.png")
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\x89PNG" + bytes(50 * 1024 * 1024))
    _upload(page, "Radiograph", huge)
    page.wait_until(lambda: "huge.png: 50 MB" in page.text(".oa-error"), timeout_s=90, what="the size message")
    _upload(page, "MRI", name="scan.zip", data=b"PK not really")
    shows("scan.zip: not a readable zip file")
    page.screenshot("knee_view_bad_input")
    # the page still works
    _set_field(page, "bmi_kg_m2", "33")
    page.wait_until(lambda: page.count(".oa-error") == 0 and page.count(".oa-risk li") == 2, what="a working page")
    assert _uploads_left(tmp) == []
    page.check_clean()
    page.close()


def test_model_report_in_process(dashboard_data):
    from oa_kit.app.data import DataFolder
    from oa_kit.app.model_report import ModelReport

    page = ModelReport(DataFolder(dashboard_data))
    assert page.message.value == "" and "24-month progression" in page.headline_html.value
    assert "synthetic" in page.headline_html.value and "auc" in page.subgroup_html.value
    page.horizon.value = 48
    assert page.message.value == "" and "48-month progression" in page.headline_html.value
    page.folder_text.value = str(dashboard_data / "nowhere")
    page.load_button.click()
    assert "headline.csv: missing" in page.message.value


@pytest.mark.slow
def test_model_report_in_the_browser(voila, browser):
    url, _ = voila
    page = Page(browser, f"{url}/voila/render/model_report.ipynb")
    page.wait_for(".oa-headline table")
    page.wait_until(lambda: page.count(".js-plotly-plot") >= 6, timeout_s=60, what="six figures")
    page.wait_until(lambda: "Model card" in page.text(".oa-model-card"), what="the model card")
    page.check_clean()
    assert "not a diagnosis" in page.text(".oa-banner") and "synthetic" in page.text(".oa-headline")
    page.screenshot("model_report")
    page.page.locator(".widget-dropdown", has_text="Horizon").locator("select").first.select_option("48 months")
    page.wait_until(lambda: "48-month progression" in page.text(".oa-headline"), what="the 48-month report")
    page.check_clean()
    page.close()


def test_cohort_explorer_in_process(dashboard_data):
    from oa_kit.app.cohort_explorer import CohortExplorer
    from oa_kit.app.data import DataFolder

    page = CohortExplorer(DataFolder(dashboard_data))
    assert page.message.value == "" and "<b>60</b> of 60 knees" in page.count.value
    assert page.risk is not None and set(page.risk["horizon_months"]) == {24, 48}
    page.sex.value = "F"
    women = len(page.filtered())
    assert 0 < women < 60 and (page.filtered()["sex"] == "F").all()
    page.kl.value = (4, 4)
    assert (page.filtered()["kl"] == 4).all() and page.message.value == ""
    page.age.value = (page.age.max, page.age.max)
    page.kl.value = (0, 0)
    assert "No knee passes" in page.table.value or len(page.filtered()) > 0
    page.sex.value, page.kl.value, page.age.value = "all", (0, 4), (page.age.min, page.age.max)
    assert "knee_view.ipynb?participant=" in page.table.value


@pytest.mark.slow
def test_cohort_explorer_in_the_browser(voila, browser):
    url, _ = voila
    page = Page(browser, f"{url}/voila/render/cohort_explorer.ipynb")
    page.wait_for(".oa-knee-links a")
    page.wait_until(lambda: page.count(".js-plotly-plot") >= 6, timeout_s=60, what="six figures")
    page.check_clean()
    assert "of 60 knees" in page.text(".oa-count") and "not a diagnosis" in page.text(".oa-banner")
    page.screenshot("cohort_explorer")
    page.page.locator(".oa-filter-sex select").select_option("M")
    page.wait_until(lambda: "60 knees" in page.text(".oa-count") and "<b>60</b>" not in page.text(".oa-count")
                    and not page.text(".oa-count").startswith("60 of"), what="a filtered count")  # fmt: skip
    link = page.page.locator(".oa-knee-links a").first
    pid = link.inner_text().split()[0]
    link.click()
    page.wait_for(".oa-risk li")
    page.wait_until(
        lambda: pid in page.text(".oa-gradcam-out"), timeout_s=180, what="the knee opened from the explorer"
    )
    page.check_clean()
    page.close()


@pytest.mark.slow
def _kernel_running(kernel_id: str) -> bool:
    """Whether a kernel process with this id (its connection file ``kernel-<id>.json``) is alive on this machine."""
    import psutil

    return any(
        f"kernel-{kernel_id}.json" in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])
    )


def test_closing_a_page_shuts_its_kernel_down(voila, browser):
    """Voila's shutdown beacon is refused without an XSRF cookie (voila-dashboards/voila#1458), which left each closed
    page's kernel (~0.65 GB) running until culled; the page template sets one, so closing the tab ends the kernel."""
    url, _ = voila
    page = Page(browser, f"{url}/voila/render/model_report.ipynb")
    page.wait_for(".oa-headline table")
    kernel = page.kernel_id()
    assert _kernel_running(kernel) and "_xsrf=" in page.page.evaluate("document.cookie")
    page.check_clean()
    page.close()
    end = time.time() + 30
    while _kernel_running(kernel) and time.time() < end:
        time.sleep(0.2)
    assert not _kernel_running(kernel)


def test_dashboards_accessibility(voila, browser, dashboard_data):
    """axe-core on each page once drawn: no violation of serious or critical impact."""
    axe = pytest.importorskip("axe_playwright_python.sync_playwright", reason="pip install axe-playwright-python")
    url, _ = voila
    pid, side = pd.read_parquet(dashboard_data / "features.parquet")[["participant_id", "side"]].iloc[1]
    pages = [
        (f"knee_view.ipynb?participant={pid}&side={side}", ".oa-mri-qc", 5),
        ("cohort_explorer.ipynb", ".oa-knee-links a", 6),
        ("model_report.ipynb", ".oa-headline table", 6),
    ]
    found = {}
    for path, ready, n_figures in pages:
        page = Page(browser, f"{url}/voila/render/{path}")
        page.wait_for(ready)
        page.wait_until(lambda p=page, n=n_figures: p.count(".js-plotly-plot") >= n, timeout_s=60, what="figures")
        results = axe.Axe().run(page.page)
        found[path.split("?")[0]] = [
            f"{v['id']} ({v['impact']}, {len(v['nodes'])}): {v['nodes'][0]['target']}"
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        page.check_clean()
        page.close()
    assert found == dict.fromkeys(found, [])
    # the page template names ipywidgets' slider handles (noUiSlider leaves them nameless) after their labels
    page = Page(browser, f"{url}/voila/render/cohort_explorer.ipynb")
    page.wait_for(".oa-knee-links a")
    names = page.page.eval_on_selector_all(
        ".noUi-handle[role=slider]", "hs => hs.map(h => h.getAttribute('aria-label'))"
    )
    assert "Age (lower end)" in names and "KL (upper end)" in names and None not in names
    page.close()
