"""Generate the exercise notebooks (``notebooks/exercises/*.py``, jupytext percent files that JupyterLab opens as
notebooks) from the solution sources (``notebooks/src/*.py``): cells tagged ``solution`` are replaced by one empty cell
per run. They are text, not ``.ipynb``: an exercise has no outputs to store (a learner fills it in), and every stored
``.ipynb`` of the series is checked by nbval. ``--check`` exits 1 when a stored exercise is out of date
(``tests/test_notebooks.py`` runs the same comparison).

    .venv/bin/python scripts/make_exercises.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXERCISES = NOTEBOOKS / "exercises"
SOLUTION_TAG = "solution"
#: What replaces the solution cells in the exercise version.
PLACEHOLDER = "# your answer here"


def has_solutions(source: Path) -> bool:
    """Whether a source notebook holds any cell tagged ``solution``."""
    return any(SOLUTION_TAG in cell.metadata.get("tags", []) for cell in jupytext.read(source).cells)


def exercise_text(source: Path) -> str:
    """The exercise notebook of ``source`` as stored (jupytext percent text): solution cells replaced, no outputs."""
    nb = jupytext.read(source)
    cells = []
    for cell in nb.cells:
        if SOLUTION_TAG not in cell.metadata.get("tags", []):
            cells.append(cell)
        elif not cells or cells[-1].source != PLACEHOLDER:  # one empty cell per run of solution cells
            cells.append(nbformat.v4.new_code_cell(PLACEHOLDER))
    nb.cells = cells
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:03d}"  # stable ids: regenerating gives the same file
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "jupytext": {"formats": "py:percent"},
    }
    return jupytext.writes(nbformat.from_dict(nb), fmt="py:percent")


def expected() -> dict[Path, str]:
    """Every exercise file that should exist, with its text."""
    sources = sorted((NOTEBOOKS / "src").glob("*.py"))
    return {EXERCISES / f"{s.stem}.py": exercise_text(s) for s in sources if has_solutions(s)}


def stale() -> list[str]:
    """Exercise files that are missing, out of date, or left over from a removed source."""
    wanted = expected()
    out = [p.name for p, text in wanted.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    out += [p.name for p in sorted(EXERCISES.glob("*")) if p not in wanted]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report out-of-date exercises (exit 1)")
    args = parser.parse_args(argv)
    if args.check:
        names = stale()
        for name in names:
            print(f"out of date: notebooks/exercises/{name} (run `make exercises`)")
        return 1 if names else 0
    EXERCISES.mkdir(exist_ok=True)
    wanted = expected()
    for path in sorted(EXERCISES.glob("*")):
        if path not in wanted:
            path.unlink()
    for path, text in wanted.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(NOTEBOOKS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
