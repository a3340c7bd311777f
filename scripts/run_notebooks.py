"""Execute the notebook sources (``notebooks/src/*.py``, jupytext percent) into ``notebooks/*.ipynb`` with their
outputs stored, as ``make notebooks`` does: one fresh kernel per notebook, cwd ``notebooks/``, mode from
``--mode`` (default ``smoke``, what CI checks with nbval). Prints the wall time of each notebook and of the series.

    .venv/bin/python scripts/run_notebooks.py [--mode smoke|full] [--out DIR] [NAME ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: Cells tagged so show pixels of real radiographs (../shared): shown when run, never stored in the repository.
REAL_IMAGES_TAG = "real-images"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def paired_notebook(source: Path) -> nbformat.NotebookNode:
    """The notebook of one jupytext source, with the kernel and pairing metadata the stored ``.ipynb`` carries."""
    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["jupytext"] = {"formats": "ipynb,src//py:percent"}
    nb.metadata.pop("language_info", None)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:03d}"  # stable ids: re-running gives a clean diff
    return nb


def execute(source: Path, timeout: int = 1800, out: Path = NOTEBOOKS) -> float:
    """Run one source notebook and write ``out/<stem>.ipynb``; returns the wall time in seconds."""
    nb = paired_notebook(source)
    start = time.perf_counter()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False, coalesce_streams=True)
    client.execute(cwd=str(NOTEBOOKS))
    seconds = time.perf_counter() - start
    nb.metadata.pop("language_info", None)
    for cell in nb.cells:
        if REAL_IMAGES_TAG in cell.get("metadata", {}).get("tags", []):
            cell.outputs = []
    nbformat.write(nb, out / f"{source.stem}.ipynb")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("smoke", "full"), default="smoke")
    parser.add_argument("--out", type=Path, default=NOTEBOOKS, help="folder for the executed notebooks")
    parser.add_argument("names", nargs="*", help="notebook stems or prefixes (default: all)")
    args = parser.parse_args(argv)
    os.environ["OA_KIT_NOTEBOOK_MODE"] = args.mode
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sources = sorted((NOTEBOOKS / "src").glob("*.py"))
    if args.names:
        sources = [s for s in sources if any(s.stem.startswith(n) for n in args.names)]
    total = 0.0
    for source in sources:
        args.out.mkdir(parents=True, exist_ok=True)
        seconds = execute(source, out=args.out)
        total += seconds
        print(f"{source.stem}: {seconds:.0f} s ({args.mode})", flush=True)
    print(f"series: {total:.0f} s ({args.mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
