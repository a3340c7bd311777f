"""Dashboard speed in a real browser: page load to the first prediction shown, and each interaction, on this machine.

Starts ``voila dashboards/`` with the checked-in ``dashboards/voila.json`` on a free port (``OA_KIT_DATA`` = the data
folder, ``JUPYTER_PATH`` = the page template, as ``make dashboard``) and drives headless Chromium with Playwright, as
``tests/test_dashboards.py`` does. Targets: page load to the first prediction <= 5 s, each interaction <= 1 s. Each
figure is the median of ``--repeats`` (after one warm-up page load); the load average is printed, since on a shared
2-core machine wall times also measure the other processes.

voila.json preheats one kernel per page (it has run the notebook up to the browser's request). A timed page load
first waits until every kernel is idle (the pools refilled after the previous page) and prints that wait: a page
opened sooner after the previous one of its kind waits for the refill of its pool.

Page load is timed from navigation to: the knee view's risk list (its first prediction) in its static preview (the
HTML copy the page template shows before Voila's JavaScript has drawn the widgets) and in the widgets, the model
report's headline
table, the cohort explorer's knee list; and to all of the page's plotly figures drawn. Interactions are timed from the
input to the changed element in the page; selecting another knee is timed to its risk, to its KL result with
Grad-CAM and to its MRI (two background workers grade and segment side by side after the risk shows), and again for a
knee seen before (its network results cached), each timed in the page by a MutationObserver (:func:`marks_after`).
A page load makes Voila start a replacement preheated kernel, which
runs the whole notebook (several CPU-seconds) on the same cores; the what-if and opacity steps run while it does, the
knee selections once the kernels are idle again (the wait is printed), as for a reader who looks at a page before
clicking.

Run: ``python benchmarks/dashboard_speed.py --data demo_out [--repeats 3] [--png knee.png]``. Prints figures; asserts
nothing. Needs Playwright and Chromium (``/usr/bin/chromium``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psutil
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def voila_server(data: Path, extra: list[str], log: Path):
    """The dashboards served on a free port (server log in ``log``); yields the base URL and the server process."""
    port = free_port()
    env = {**os.environ, "OA_KIT_DATA": str(data), "JUPYTER_PATH": str(ROOT / "dashboards" / "jupyter")}
    command = [sys.executable, "-m", "voila", f"--Voila.config_file_paths={ROOT / 'dashboards'}", f"--port={port}"]
    with open(log, "w") as stream:
        server = subprocess.Popen(
            [*command, *extra, "--no-browser", str(ROOT / "dashboards")], env=env, stdout=stream, stderr=stream
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    break
            time.sleep(0.5)
        yield url, psutil.Process(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


#: VoilaKernelManager.fill_delay in dashboards/voila.json: a used pool starts its refill this long after the use.
FILL_DELAY_S = 1.0


class Pools:
    """Waits until Voila's preheated kernels have run their notebooks up to the browser's request: every kernel of the
    server idle (under 0.05 s of CPU in a second). Voila's log line "pool ... is filled" comes when a kernel has
    started, before its notebook ran, so it does not say that."""

    def __init__(self, server: psutil.Process, pages: int) -> None:
        self.server, self.pages = server, pages

    def _kernels_cpu(self) -> tuple[int, float]:
        kernels = [c for c in self.server.children(recursive=True) if "ipykernel" in " ".join(c.cmdline())]
        total = 0.0
        for kernel in kernels:
            with contextlib.suppress(psutil.Error):
                times = kernel.cpu_times()
                total += times.user + times.system
        return len(kernels), total

    def ready(self, timeout_s: float = 600) -> float:
        """Seconds until at least one kernel per page runs and all kernels are idle (NaN on timeout); counted after
        voila.json's ``fill_delay`` (1 s) and a margin, so that a refill started by the previous page is seen."""
        time.sleep(FILL_DELAY_S + 2)
        state = {"last": self._kernels_cpu()}

        def idle() -> bool:
            time.sleep(1.0)
            count, cpu = self._kernels_cpu()
            quiet = count >= self.pages and cpu - state["last"][1] < 0.05
            state["last"] = (count, cpu)
            return quiet

        return FILL_DELAY_S + 2 + wait(idle, timeout_s)


def wait(condition: Callable[[], bool], timeout_s: float = 180) -> float:
    """Seconds until ``condition`` holds (polled every 20 ms); NaN on timeout."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if condition():
            return time.perf_counter() - start
        time.sleep(0.02)
    return float("nan")


def text(page, selector: str) -> str:
    node = page.locator(selector)
    return node.first.inner_text() if node.count() else ""


def open_page(context, url: str, ready: str, figures: int, preview: str | None = None) -> tuple[object, list[float]]:
    """Open ``url``; seconds to ``preview`` (the page's static copy of its first results) or ``ready`` shown,
    whichever comes first (NaN without ``preview``), to ``ready`` shown in the widgets, and to ``figures`` plotly
    figures drawn."""
    page = context.new_page()
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/]).*"), lambda route: route.fulfill(status=200, body=""))
    start, times = time.perf_counter(), []
    page.goto(url, wait_until="commit", timeout=180_000)
    if preview is not None:
        wait(lambda: page.locator(preview).count() > 0 or page.locator(ready).count() > 0)
    times.append(time.perf_counter() - start if preview is not None else float("nan"))
    wait(lambda: page.locator(ready).count() > 0)
    times.append(time.perf_counter() - start)
    wait(lambda: page.locator(".js-plotly-plot").count() >= figures)
    return page, [*times, time.perf_counter() - start]


def interaction(page, act: Callable[[], None], changed: Callable[[], bool]) -> float:
    """Seconds from ``act`` to ``changed``."""
    start = time.perf_counter()
    act()
    wait(changed, timeout_s=60)
    return time.perf_counter() - start


#: In-page recorder: the time (performance.now(), ms) each named selector first matches, from a MutationObserver.
MARKS_JS = """([selectors, figures]) => {
  window.oaMarks = {}; window.oaStart = performance.now();
  const check = () => {
    for (const [name, sel] of Object.entries(selectors)) {
      if (window.oaMarks[name] !== undefined || !document.querySelector(sel)) continue;
      const figure = figures[name];
      if (figure) {
        const plot = document.querySelector(figure[0]);
        if (!plot || !(plot.textContent || "").includes(figure[1])) continue;
      }
      window.oaMarks[name] = performance.now() - window.oaStart;
    }
  };
  if (window.oaObserver) window.oaObserver.disconnect();
  window.oaObserver = new MutationObserver(check);
  window.oaObserver.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
}"""


def marks_after(page, act: Callable[[], None], selectors: dict[str, str], figures: dict) -> dict[str, float]:
    """Seconds from just before ``act`` to each selector first matching in the page (and, where ``figures`` names
    one, its plotly figure drawn with the given text), recorded in the page by a MutationObserver: each part is
    timed on its own (a result shown before another is not timed after it) and without the polling's latency."""
    page.evaluate(MARKS_JS, [selectors, figures])
    act()
    done = f"() => Object.keys(window.oaMarks).length === {len(selectors)}"
    with contextlib.suppress(Exception):  # a part not shown within 60 s is reported as NaN
        page.wait_for_function(done, timeout=60_000)
    marks = page.evaluate("() => window.oaMarks")
    return {name: marks[name] / 1000 if name in marks else float("nan") for name in selectors}


def knee_view(context, url: str, knees: pd.DataFrame, png: Path | None, pools: Pools) -> dict[str, float]:
    pid, side = knees.iloc[2]
    refill = pools.ready()
    page, (shown, first, full) = open_page(
        context, f"{url}/voila/render/knee_view.ipynb?participant={pid}&side={side}", ".oa-risk li", 5,
        preview="#oa-preview .oa-preview-risk li",
    )  # fmt: skip
    out = {"knee view: kernels idle (preheated) before the load": refill}
    out |= {
        "knee view: load to first prediction (static preview)": shown,
        "knee view: load to first prediction in the widgets": first,
        "knee view: load to all figures": full,
    }
    bmi = page.locator(".oa-field-bmi_kg_m2 input")
    times = []
    for value in ("60", "15", "60", "15"):
        before = text(page, ".oa-explanation")
        times.append(interaction(page, lambda v=value: (bmi.fill(v), bmi.press("Enter")),
                                 lambda b=before: text(page, ".oa-explanation") != b))  # fmt: skip
    out["knee view: BMI what-if (risk, waterfall, text)"] = statistics.median(times)
    slider = page.locator(".oa-knee-view .widget-slider .noUi-handle").first
    before = page.locator(".oa-gradcam-out .js-plotly-plot").first.inner_html()
    out["knee view: Grad-CAM opacity"] = interaction(
        page,
        lambda: (slider.focus(), slider.press("ArrowRight")),
        lambda: (
            page.locator(".oa-gradcam-out .js-plotly-plot").count() > 0
            and page.locator(".oa-gradcam-out .js-plotly-plot").first.inner_html() != before
        ),
    )
    select = page.locator(".widget-dropdown", has_text="Knee").locator("select").first
    for i, label in ((7, "another knee"), (2, "the first knee again (cached)")):
        out[f"knee view: kernels idle before selecting {label}"] = pools.ready()
        pid, side = knees.iloc[i]
        for part, seconds in marks_after(
            page,
            lambda k=f"{pid} {side}": select.select_option(k),
            {
                "risk": f'.oa-risk[data-knee="{pid} {side}"]',
                "KL + Grad-CAM": f'.oa-kl-result[data-knee="{pid} {side}"]',
                "MRI": f'.oa-mri-qc[data-knee="{pid} {side}"]',
            },
            {"KL + Grad-CAM": (".oa-gradcam-out .js-plotly-plot", pid), "MRI": (".oa-mri-out .js-plotly-plot", "")},
        ).items():
            out[f"knee view: select {label} -> {part}"] = seconds
    if png is not None:
        with page.expect_file_chooser() as chooser:
            page.locator(".widget-upload", has_text="Radiograph").first.click()
        out["knee view: upload a PNG (KL + Grad-CAM)"] = interaction(
            page, lambda: chooser.value.set_files(str(png)), lambda: png.stem[:7] in text(page, ".oa-gradcam-out")
        )
    page.close(run_before_unload=True)  # as a tab closed: Voila shuts its kernel down (the template sets _xsrf)
    return out


def model_report(context, url: str, pools: Pools) -> dict[str, float]:
    refill = pools.ready()
    page, (_, first, full) = open_page(context, f"{url}/voila/render/model_report.ipynb", ".oa-headline table", 6)
    out = {"model report: kernels idle (preheated) before the load": refill}
    out |= {"model report: load to headline": first, "model report: load to all figures": full}
    select = page.locator(".widget-dropdown", has_text="Horizon").locator("select").first
    options = select.locator("option").all_inner_texts()
    if len(options) > 1:
        out["model report: change horizon"] = interaction(
            page, lambda: select.select_option(options[1]),
            lambda: f"{options[1].split()[0]}-month" in text(page, ".oa-headline"),
        )  # fmt: skip
    page.close(run_before_unload=True)  # as a tab closed: Voila shuts its kernel down (the template sets _xsrf)
    return out


def cohort_explorer(context, url: str, pools: Pools) -> dict[str, float]:
    refill = pools.ready()
    page, (_, first, full) = open_page(context, f"{url}/voila/render/cohort_explorer.ipynb", ".oa-knee-links a", 6)
    out = {"cohort explorer: kernels idle (preheated) before the load": refill}
    out |= {"cohort explorer: load to knee list": first, "cohort explorer: load to all figures": full}
    before = text(page, ".oa-count")
    out["cohort explorer: filter by sex"] = interaction(
        page, lambda: page.locator(".oa-filter-sex select").select_option("F"),
        lambda: text(page, ".oa-count") != before,
    )  # fmt: skip
    page.close(run_before_unload=True)  # as a tab closed: Voila shuts its kernel down (the template sets _xsrf)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("OA_KIT_DATA", "demo_out"), help="data folder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--png", type=Path, help="a single-knee PNG to time the upload")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--voila-arg", action="append", default=[], help="extra voila argument (repeatable)")
    parser.add_argument(
        "--pages", nargs="+", default=["knee_view", "model_report", "cohort_explorer"], help="pages to time"
    )
    args = parser.parse_args()
    data = Path(args.data).resolve()
    features = data / "features.parquet"
    knees = pd.read_parquet(features if features.is_file() else data / "labels" / "clinical.parquet")
    knees = knees[["participant_id", "side"]].astype(str)
    results: dict[str, list[float]] = {}
    log = Path(tempfile.mkdtemp(prefix="oa_kit_bench_voila_")) / "voila.log"
    print(f"data {data}; {os.cpu_count()} CPUs, load average {load_average()} at the start", flush=True)
    with voila_server(data, args.voila_arg, log) as (url, server), sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="oa_kit_bench_"), executable_path=args.chromium, args=ARGS, headless=True,
            viewport={"width": 1400, "height": 2400},
        )  # fmt: skip
        pools = Pools(server, pages=3)
        knee_view(context, url, knees, None, pools)  # warm-up: Python's bytecode and file caches, Chromium's cache
        for repeat in range(args.repeats):
            timings, started = {}, time.strftime("%H:%M:%S")
            if "knee_view" in args.pages:
                timings.update(knee_view(context, url, knees, args.png, pools))
            if "model_report" in args.pages:
                timings.update(model_report(context, url, pools))
            if "cohort_explorer" in args.pages:
                timings.update(cohort_explorer(context, url, pools))
            print(f"repeat {repeat + 1} (started {started}, load average {load_average()}):", flush=True)
            for name, seconds in timings.items():
                results.setdefault(name, []).append(seconds)
                print(f"  {name:<58} {seconds:6.2f}", flush=True)
        context.close()
    print(f"load average {load_average()} at the end; Voila's log (timestamped): {log}; median of {args.repeats} (s)")
    for name, values in results.items():
        median = statistics.median(values)
        first = ("load to first", "load to headline", "load to knee list")
        target = None if "all figures" in name or "idle" in name else 5.0 if any(f in name for f in first) else 1.0
        verdict = "" if target is None else f"  (target <= {target:.0f} s: {'met' if median <= target else 'NOT met'})"
        print(f"  {name:<58} {median:6.2f}  [{', '.join(f'{v:.2f}' for v in values)}]{verdict}")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
