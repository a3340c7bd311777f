"""nbval settings for the notebook series: smoke mode by default, and outputs that are never compared.

Plotly figures (their JSON embeds the template and random ids), HTML renderings and stderr (warnings, progress
bars) are not compared; text and printed numbers are.
"""

import os

os.environ.setdefault("OA_KIT_NOTEBOOK_MODE", "smoke")
os.environ.setdefault("OMP_NUM_THREADS", "2")

SKIP_COMPARE = (
    "application/vnd.plotly.v1+json",
    "application/vnd.jupyter.widget-view+json",
    "application/javascript",
    "text/html",
    "stderr",
)


def pytest_collectstart(collector):
    """Extend nbval's ``skip_compare`` for every notebook (see the nbval documentation)."""
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += SKIP_COMPARE
