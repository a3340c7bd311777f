"""Progression labels on a hand-built cohort whose right answers are known, for both definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oa_kit.cohort.labels import REASON_CODES, build_progression_labels
from oa_kit.errors import OAKitError

M = "missing"
# knee → [(visit_month, kl, status)]; NaN KL wherever the status is not "ok"
KNEES = {
    ("P1", "R"): [(0, 0, "ok"), (12, 0, "ok"), (24, 1, "ok"), (48, 1, "ok")],  # 0→1 ignored
    ("P1", "L"): [(0, 2, "ok"), (12, 2, "ok"), (24, 3, "ok"), (48, 3, "ok")],  # progresses at 24
    ("P2", "R"): [(0, 4, "ok"), (12, 4, "ok"), (24, 4, "ok"), (48, 4, "ok")],  # baseline KL4
    ("P2", "L"): [(12, 1, "ok"), (24, 1, "ok"), (48, 1, "ok")],  # no baseline row
    ("P3", "R"): [(0, 1, "ok"), (12, None, M), (24, 1, "ok"), (48, None, M)],  # missing ≠ progression
    ("P3", "L"): [(0, 2, "ok"), (12, 2, "ok"), (24, None, "replacement"), (48, None, "replacement")],  # .P at 24
    ("P4", "R"): [(0, 3, "ok"), (12, 2, "ok"), (24, 3, "ok"), (48, 3, "ok")],  # decreasing KL
    ("P4", "L"): [(0, 1, "ok"), (12, 1, "ok"), (24, None, "technical"), (48, 1, "ok")],  # .T at 24
    ("P5", "R"): [(0, 2, "ok"), (12, 2, "ok"), (24, None, M), (48, None, M)],  # died at month 20
    ("P6", "R"): [(0, None, "replacement"), (12, None, "replacement")],  # replaced at baseline
    ("P6", "L"): [(0, 1, "ok"), (12, None, M), (24, None, M), (48, None, M)],  # replacement table: 30 m
    ("P7", "R"): [(0, 0, "ok"), (12, 2, "ok"), (24, 2, "ok"), (48, 2, "ok")],  # 0→2 at 12
    ("P7", "L"): [(0, 1, "ok"), (12, 0, "ok"), (24, 1, "ok"), (48, 1, "ok")],  # 1→0→1
    ("P8", "R"): [(0, 1, "ok"), (12, None, "not_expected"), (24, None, M), (48, None, M)],  # never followed
}
DEATHS = pd.DataFrame({"participant_id": ["P5"], "death_month": [20.0]})
REPLACEMENTS = pd.DataFrame({"participant_id": ["P6"], "side": ["L"], "replacement_month": [30.0]})
HORIZONS = (12, 24, 48)

TIULPIN = {  # knee → outcome per horizon (12, 24, 48): 0/1 or reason code
    ("P1", "R"): (0, 0, 0),
    ("P1", "L"): (0, 1, 1),
    ("P2", "R"): ("baseline_kl4",) * 3,
    ("P2", "L"): ("not_present_at_baseline",) * 3,
    ("P3", "R"): ("missing_follow_up", 0, "missing_follow_up"),
    ("P3", "L"): (0, 1, 1),
    ("P4", "R"): (0, 0, 0),
    ("P4", "L"): (0, "technical_read", 0),
    ("P5", "R"): (0, "death_before_horizon", "death_before_horizon"),
    ("P6", "R"): ("baseline_replacement",) * 3,
    ("P6", "L"): ("missing_follow_up", "missing_follow_up", 1),
    ("P7", "R"): (1, 1, 1),
    ("P7", "L"): (0, 0, 0),
    ("P8", "R"): ("missing_follow_up",) * 3,
}
PANFILOV = {
    **TIULPIN,
    ("P3", "R"): ("insufficient_followups", 0, "missing_follow_up"),
    ("P3", "L"): (0, "replacement_in_window", "replacement_in_window"),
    ("P4", "R"): ("decreasing_kl",) * 3,
    ("P6", "L"): ("insufficient_followups", "insufficient_followups", "replacement_in_window"),
    ("P8", "R"): ("insufficient_followups",) * 3,
}


def _readings() -> pd.DataFrame:
    rows = [
        (pid, side, month, np.nan if kl is None else float(kl), status)
        for (pid, side), visits in KNEES.items()
        for month, kl, status in visits
    ]
    return pd.DataFrame(rows, columns=["participant_id", "side", "visit_month", "kl", "kl_status"])


def _outcomes(result) -> dict:
    out = {}
    for row in result.labels.itertuples():
        out[(row.participant_id, row.side, row.horizon_months)] = row.label
    for row in result.exclusions.itertuples():
        out[(row.participant_id, row.side, row.horizon_months)] = row.reason_code
    return out


@pytest.mark.parametrize("definition, expected", [("tiulpin2019", TIULPIN), ("panfilov2025", PANFILOV)])
def test_every_knee_gets_the_known_label_or_reason(definition, expected):
    result = build_progression_labels(
        _readings(), HORIZONS, definition=definition, deaths=DEATHS, replacements=REPLACEMENTS
    )
    got = _outcomes(result)
    want = {(pid, side, h): o for (pid, side), outs in expected.items() for h, o in zip(HORIZONS, outs)}
    assert got == want
    assert set(result.exclusions["reason_code"]) <= set(REASON_CODES)
    assert len(result.labels) + len(result.exclusions) == len(KNEES) * len(HORIZONS)


def test_missing_reading_is_never_progression_and_replacement_needs_a_record():
    """OAProgression bug 2: NaN follow-up → -1 → counted as TKR. Here only a recorded replacement counts."""
    readings = _readings()
    without_table = _outcomes(build_progression_labels(readings, HORIZONS, deaths=DEATHS))
    assert without_table[("P6", "L", 48)] == "missing_follow_up"
    assert without_table[("P3", "R", 48)] == "missing_follow_up"
    with_table = _outcomes(build_progression_labels(readings, HORIZONS, deaths=DEATHS, replacements=REPLACEMENTS))
    assert with_table[("P6", "L", 48)] == 1


def test_time_to_event_columns():
    result = build_progression_labels(_readings(), HORIZONS, deaths=DEATHS, replacements=REPLACEMENTS)
    lab = result.labels.set_index(["participant_id", "side", "horizon_months"])
    assert lab.loc[("P1", "L", 12), ["event", "event_month", "months_to_event_or_censoring"]].tolist() == [1, 24, 24]
    assert lab.loc[("P6", "L", 48), ["event", "event_month", "months_to_event_or_censoring"]].tolist() == [1, 30, 30]
    row = lab.loc[("P1", "R", 48)]
    assert row["event"] == 0 and np.isnan(row["event_month"]) and row["months_to_event_or_censoring"] == 48
    assert lab.loc[("P5", "R", 12), "months_to_event_or_censoring"] == 12  # censored at last valid reading
    assert lab.loc[("P1", "L", 24), "baseline_kl"] == 2


def test_flow_counts_add_up():
    result = build_progression_labels(_readings(), HORIZONS, deaths=DEATHS, replacements=REPLACEMENTS)
    flow = result.flow().set_index(["horizon_months", "stage", "reason_code"])["n_knees"].sort_index()
    for h in HORIZONS:
        excluded = flow.loc[h, "excluded"].sum()
        assert flow.loc[(h, "knees", "")] == len(KNEES) == excluded + flow.loc[(h, "included", "")]
        assert flow.loc[(h, "included", "")] == flow.loc[(h, "progressor", "")] + flow.loc[(h, "non_progressor", "")]
    assert flow.loc[(24, "excluded", "death_before_horizon")] == 1
    assert flow.loc[(24, "progressor", "")] == 3
    fig = result.figure()
    assert len(fig.data) == 2 + len(REASON_CODES)


def test_bad_inputs_raise_one_line_errors():
    readings = _readings()
    with pytest.raises(OAKitError, match="definition"):
        build_progression_labels(readings, HORIZONS, definition="oaprogression")
    with pytest.raises(OAKitError, match="horizons_months: 36"):
        build_progression_labels(readings, (36,))
    with pytest.raises(OAKitError, match="kl_status 'weird'"):
        build_progression_labels(readings.assign(kl_status="weird"), HORIZONS)
    with pytest.raises(OAKitError, match="two rows at month"):
        build_progression_labels(pd.concat([readings, readings.iloc[:1]]), HORIZONS)
    with pytest.raises(OAKitError, match="missing column kl_status"):
        build_progression_labels(readings.drop(columns="kl_status"), HORIZONS)


def _run_labels_cli(argv: list[str]) -> int:
    """Run the ``labels`` subcommand through its own register() (without importing every other subcommand)."""
    import argparse

    from oa_kit.cli import cohort as cli

    parser = argparse.ArgumentParser(prog="oa-kit")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["labels", *argv])
    return args.func(args)


def test_labels_cli_writes_tables_and_prints_counts(tmp_path, capsys):
    from pathlib import Path

    fixtures = Path(__file__).parent / "fixtures" / "oai"
    out = tmp_path / "labels"
    assert _run_labels_cli(["--tables", str(fixtures), "--horizons", "12,24", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "excluded: baseline_kl4" in printed and "12 m" in printed
    labels = pd.read_parquet(out / "labels.parquet")
    exclusions = pd.read_parquet(out / "exclusions.parquet")
    flow = pd.read_csv(out / "flow.csv")
    assert set(labels["horizon_months"]) == {12, 24}
    assert set(exclusions["reason_code"]) == {"baseline_kl4", "baseline_replacement", "missing_follow_up"}
    assert flow[(flow["stage"] == "knees")]["n_knees"].tolist() == [6, 6]
    assert (
        pd.read_parquet(out / "readings.parquet")["kl_status"]
        .isin(["ok", "replacement", "not_expected", "missing"])
        .all()
    )
    with pytest.raises(OAKitError, match="horizons_months: 36"):
        _run_labels_cli(["--tables", str(fixtures), "--horizons", "36", "--out", str(out)])
    with pytest.raises(OAKitError, match="--horizons"):
        _run_labels_cli(["--tables", str(fixtures), "--horizons", "a,b", "--out", str(out)])
    with pytest.raises(OAKitError, match="unknown special code"):
        _run_labels_cli(["--tables", str(fixtures / "bad_code"), "--out", str(out)])


def test_labels_from_synthetic_cohort_match_its_truth(tiny_cohort):
    """End to end: synthetic OAI files → readers → labels agree with the simulator's true event months."""
    from oa_kit.cohort.tables import load_tables

    tables = load_tables(tiny_cohort, "oai")
    result = build_progression_labels(
        tables.readings, (12, 24, 36, 48, 72, 96), deaths=tables.deaths, replacements=tables.replacements
    )
    truth = pd.read_parquet(tiny_cohort / "truth" / "knees.parquet").assign(
        participant_id=lambda t: t["ID"].astype(str)
    )
    merged = result.labels.merge(truth[["participant_id", "side", "event_month_true"]], on=["participant_id", "side"])
    assert len(merged) == len(result.labels) > 0
    true_label = (merged["event_month_true"] <= merged["horizon_months"]).astype(int)
    assert (true_label == merged["label"]).mean() >= 0.9  # misreads (3 % per reading) may flip a few
    replaced = truth[truth["tkr_month"] == 0]
    excluded = result.exclusions.set_index(["participant_id", "side"])["reason_code"]
    for pid, side in replaced[["participant_id", "side"]].itertuples(index=False):
        assert set(excluded.loc[[(pid, side)]]) == {"baseline_replacement"}
    flow = result.flow()
    assert (flow[flow["stage"] == "knees"]["n_knees"] == 2 * truth["ID"].nunique()).all()


def test_labels_outputs_are_written_as_one_unit(tmp_path, monkeypatch):
    """An error while writing leaves the previous run's files as they were and no temporary folder behind."""
    from pathlib import Path

    from oa_kit.workflows import cohort as flow

    fixtures = Path(__file__).parent / "fixtures" / "oai"
    out = tmp_path / "labels"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _run_labels_cli(["--tables", str(fixtures), "--horizons", "12", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {*flow.OUTPUT_FILES, "notes.txt"}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(flow, "write_csv", broken)  # flow.csv is written after the parquet files
    with pytest.raises(OSError, match="disk full"):
        _run_labels_cli(["--tables", str(fixtures), "--horizons", "12,24", "--out", str(out)])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels"]
