"""docs/bad-inputs.md is generated from the catalogue and must be current (so the documented table cannot drift)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bad_inputs_table.py"


def _generator():
    """scripts/bad_inputs_table.py as a module."""
    spec = importlib.util.spec_from_file_location("bad_inputs_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_table_is_current_and_lists_every_case():
    generator = _generator()
    text = generator.table()
    assert generator.DOC.read_text(encoding="utf-8") == text, "run python scripts/bad_inputs_table.py"
    modules = [module for _, module in generator.parts()]
    assert {m.__name__.rsplit(".", 1)[1] for m in modules} >= {"test_catalogue", "test_catalogue_outputs"}
    for case in (case for module in modules for case in module.CASES):
        assert f"| `{case.name}` |" in text
    assert generator.main(["--check"]) == 0
