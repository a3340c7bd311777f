"""Dashboard speed in a real browser: page load to the first prediction shown, and each interaction, on this machine.

Starts ``voila dashboards/`` with the checked-in ``dashboards/voila.json`` on a free port (``OA_KIT_DATA`` = the data
folder) and drives headless Chromium with Playwright, as ``tests/test_dashboards.py`` does. Targets: page load to the
first prediction <= 5 s, each interaction <= 1 s. Each figure is the median of ``--repeats`` (after one warm-up page
load that starts Python's caches); the load average is printed, since on a shared 2-core machine wall times also
measure the other processes.

Page load is timed from navigation to: the knee view's risk list (its first prediction: KL, MRI and risk are all
computed before it shows), the model report's headline table, the cohort explorer's knee list; and to all of the
page's plotly figures drawn. Interactions are timed from the input to the changed element in the page.

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
def voila_server(data: Path, extra: list[str]):
    """The dashboards served on a free port; yields the base URL."""
    port = free_port()
    env = {**os.environ, "OA_KIT_DATA": str(data)}
    command = [sys.executable, "-m", "voila", f"--Voila.config_file_paths={ROOT / 'dashboards'}", f"--port={port}"]
    server = subprocess.Popen(
        [*command, *extra, "--no-browser", str(ROOT / "dashboards")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    break
            time.sleep(0.5)
        yield url
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


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


def open_page(context, url: str, ready: str, figures: int) -> tuple[object, float, float]:
    """Open ``url``; seconds to ``ready`` visible and to ``figures`` plotly figures drawn."""
    page = context.new_page()
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/]).*"), lambda route: route.fulfill(status=200, body=""))
    start = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=180_000)
    wait(lambda: page.locator(ready).count() > 0)
    first = time.perf_counter() - start
    wait(lambda: page.locator(".js-plotly-plot").count() >= figures)
    return page, first, time.perf_counter() - start


def interaction(page, act: Callable[[], None], changed: Callable[[], bool]) -> float:
    """Seconds from ``act`` to ``changed``."""
    start = time.perf_counter()
    act()
    wait(changed, timeout_s=60)
    return time.perf_counter() - start


def knee_view(context, url: str, knees: pd.DataFrame, png: Path | None) -> dict[str, float]:
    pid, side = knees.iloc[2]
    page, first, full = open_page(context, f"{url}/voila/render/knee_view.ipynb?participant={pid}&side={side}",
                                  ".oa-risk li", 5)  # fmt: skip
    out = {"knee view: load to first prediction": first, "knee view: load to all figures": full}
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
    other_pid, other_side = knees.iloc[7]
    select = page.locator(".widget-dropdown", has_text="Knee").locator("select").first
    out["knee view: select a participant (KL, MRI, risk)"] = interaction(
        page, lambda: select.select_option(f"{other_pid} {other_side}"),
        lambda: other_pid in text(page, ".oa-gradcam-out") and page.locator(".oa-mri-out .js-plotly-plot").count(),
    )  # fmt: skip
    if png is not None:
        with page.expect_file_chooser() as chooser:
            page.locator(".widget-upload", has_text="Radiograph").first.click()
        out["knee view: upload a PNG (KL + Grad-CAM)"] = interaction(
            page, lambda: chooser.value.set_files(str(png)), lambda: png.stem[:7] in text(page, ".oa-gradcam-out")
        )
    page.close()
    return out


def model_report(context, url: str) -> dict[str, float]:
    page, first, full = open_page(context, f"{url}/voila/render/model_report.ipynb", ".oa-headline table", 6)
    out = {"model report: load to headline": first, "model report: load to all figures": full}
    select = page.locator(".widget-dropdown", has_text="Horizon").locator("select").first
    options = select.locator("option").all_inner_texts()
    if len(options) > 1:
        out["model report: change horizon"] = interaction(
            page, lambda: select.select_option(options[1]),
            lambda: f"{options[1].split()[0]}-month" in text(page, ".oa-headline"),
        )  # fmt: skip
    page.close()
    return out


def cohort_explorer(context, url: str) -> dict[str, float]:
    page, first, full = open_page(context, f"{url}/voila/render/cohort_explorer.ipynb", ".oa-knee-links a", 6)
    out = {"cohort explorer: load to knee list": first, "cohort explorer: load to all figures": full}
    before = text(page, ".oa-count")
    out["cohort explorer: filter by sex"] = interaction(
        page, lambda: page.locator(".oa-filter-sex select").select_option("F"),
        lambda: text(page, ".oa-count") != before,
    )  # fmt: skip
    page.close()
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
    with voila_server(data, args.voila_arg) as url, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="oa_kit_bench_"), executable_path=args.chromium, args=ARGS, headless=True,
            viewport={"width": 1400, "height": 2400},
        )  # fmt: skip
        knee_view(context, url, knees, None)  # warm-up: Python's bytecode and file caches
        for _ in range(args.repeats):
            timings = {}
            if "knee_view" in args.pages:
                timings.update(knee_view(context, url, knees, args.png))
            if "model_report" in args.pages:
                timings.update(model_report(context, url))
            if "cohort_explorer" in args.pages:
                timings.update(cohort_explorer(context, url))
            for name, seconds in timings.items():
                results.setdefault(name, []).append(seconds)
        context.close()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"data {data}; {os.cpu_count()} CPUs, load average {load}; median of {args.repeats} (s)")
    for name, values in results.items():
        target = 5.0 if "load to first" in name or "load to headline" in name or "load to knee list" in name else 1.0
        target = None if "all figures" in name else target
        met = statistics.median(values) <= (target or 0)
        verdict = "" if target is None else f"  (target <= {target:.0f} s: {'met' if met else 'NOT met'})"
        print(f"  {name:<52} {statistics.median(values):6.2f}  [{', '.join(f'{v:.2f}' for v in values)}]{verdict}")


if __name__ == "__main__":
    main()
