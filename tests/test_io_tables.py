"""The spreadsheet-safe atomic CSV writer and its reader (#24)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oa_kit.errors import OAKitError
from oa_kit.io.tables import escape_cell, read_csv, unescape_cell, write_csv

HOSTILE = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "'quoted", "plain", "9001695"]


def test_formula_cells_are_escaped_and_read_back(tmp_path):
    table = pd.DataFrame({"participant_id": HOSTILE, "value": np.arange(len(HOSTILE), dtype=float) - 3})
    path = write_csv(table, tmp_path / "out.csv")
    text = path.read_text()
    for line in text.splitlines()[1:]:
        assert not line.startswith(("=", "+", "-", "@", "\t")), line
    assert "'=HYPERLINK" in text and "\n'-2+3," in text and ",-3.0\n" in text  # numbers never escaped
    back = read_csv(path, dtype={"participant_id": str})
    assert back["participant_id"].tolist() == HOSTILE
    np.testing.assert_array_equal(back["value"].to_numpy(), table["value"].to_numpy())


def test_column_names_and_nan_round_trip(tmp_path):
    table = pd.DataFrame({"=cmd": ["a", None], "n": [1.5, np.nan]})
    back = read_csv(write_csv(table, tmp_path / "t.csv"))
    assert list(back.columns) == ["=cmd", "n"] and pd.isna(back["=cmd"][1]) and np.isnan(back["n"][1])


def test_escape_is_exactly_undone():
    for text in [*HOSTILE, "''x", "", "'"]:
        assert unescape_cell(escape_cell(text)) == text


def test_write_is_atomic_on_error(tmp_path):
    target = tmp_path / "t.csv"
    target.write_text("old\n")
    with pytest.raises(OAKitError, match="DataFrame"):
        write_csv([1, 2], target)
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["t.csv"]


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"a,b\n\xff\xfe,1\n", "not UTF-8"), (b'a,b\n"x,1\n', "cannot parse")],
)
def test_bad_csv_is_one_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(OAKitError, match=message) as info:
        read_csv(path)
    assert "bad.csv" in str(info.value) and "\n" not in str(info.value)


def test_a_carriage_return_inside_a_cell_cannot_split_a_row(tmp_path):
    """Found by make fuzz: with LF line ends a lone CR went out unquoted and csv readers split the row there."""
    import csv

    path = write_csv(pd.DataFrame({"participant_id": ["\r\t", "a\rb"], "v": [1, 2]}), tmp_path / "t.csv")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [["participant_id", "v"], ["'\r\t", "1"], ["a\rb", "2"]]
    assert read_csv(path, dtype=str)["participant_id"].tolist() == ["\r\t", "a\rb"]
