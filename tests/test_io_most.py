"""MOST readers on hand-made files in the MOST layout: KL 8/9/1.9, PA flags, outcomes by visit index, labels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from oa_kit.cohort.labels import build_progression_labels
from oa_kit.cohort.tables import CLINICAL_COLUMNS, load_tables
from oa_kit.errors import OAKitError
from oa_kit.horizons import MOST_HORIZONS_MONTHS
from oa_kit.io import most

FIXTURES = Path(__file__).parent / "fixtures" / "most"


def _status(readings: pd.DataFrame, pid: str, side: str, month: int) -> tuple:
    row = readings.set_index(["participant_id", "side", "visit_month"]).loc[(pid, side, month)]
    return row["kl"], row["kl_status"]


def test_visits_and_kl_quirks():
    readings = most.read_most_readings(FIXTURES)
    assert sorted(readings["visit_month"].unique()) == [0, 15, 30, 60, 84]
    assert len(readings) == 4 * 2 * 5
    kl, status = _status(readings, "MB00001", "R", 0)
    assert (kl, status) == (1.0, "ok")  # 1.9 read as KL 1
    assert readings.set_index(["participant_id", "side", "visit_month"]).loc[("MB00001", "R", 0), "kl_raw"] == 1.9
    assert _status(readings, "MB00002", "L", 30)[1] == "missing"  # KL 9
    assert _status(readings, "MB00002", "R", 30)[1] == "replacement"  # KL 8 at the replacement visit
    assert _status(readings, "MB00002", "R", 84)[1] == "replacement"
    assert _status(readings, "MB00003", "L", 0)[1] == "technical"  # KL 8, no replacement recorded
    assert _status(readings, "MB00003", "R", 15)[1] == "missing"  # V1PA = 0: no PA film
    assert _status(readings, "MB00004", "R", 60)[1] == "missing"  # blank
    assert (readings["kl"].isna() == readings["kl_status"].ne("ok")).all()
    as_two = most.read_most_readings(FIXTURES, kl_1_9_as=2.0)
    assert _status(as_two, "MB00001", "R", 0)[0] == 2.0


def test_outcomes_and_clinical():
    replacements, deaths = most.read_most_outcomes(FIXTURES)
    assert replacements.to_dict("records") == [{"participant_id": "MB00002", "side": "R", "replacement_month": 30.0}]
    assert deaths.to_dict("records") == [{"participant_id": "MB00004", "death_month": 30.0}]  # died before V3 (60 m)
    clinical = most.read_most_clinical_baseline(FIXTURES)
    assert list(clinical.columns) == list(CLINICAL_COLUMNS)
    c = clinical.set_index(["participant_id", "side"])
    assert c.loc[("MB00001", "R"), ["sex", "injury", "womac_total"]].tolist() == ["F", 1, 30]
    assert c.loc[("MB00003", "L"), "clinical_status"] == "womac_total=missing"


def test_labels_on_most_tables():
    tables = load_tables(FIXTURES, "most")
    result = build_progression_labels(
        tables.readings, MOST_HORIZONS_MONTHS, deaths=tables.deaths, replacements=tables.replacements
    )
    out = {(r.participant_id, r.side, r.horizon_months): r.label for r in result.labels.itertuples()}
    out.update({(r.participant_id, r.side, r.horizon_months): r.reason_code for r in result.exclusions.itertuples()})
    assert out[("MB00001", "R", 15)] == 1  # 1.9 → 1, then KL 2
    assert out[("MB00002", "L", 30)] == "missing_follow_up"  # KL 9 at the horizon is not progression
    assert out[("MB00002", "L", 84)] == 0
    assert out[("MB00003", "L", 15)] == "technical_read"
    assert out[("MB00003", "R", 15)] == "missing_follow_up"
    assert out[("MB00003", "R", 30)] == 0  # 0 → 1 ignored
    assert out[("MB00004", "R", 30)] == 0 and out[("MB00004", "R", 60)] == "death_before_horizon"


def test_most_errors(tmp_path):
    (tmp_path / "mostv01235xray.txt").write_text("MOSTID|V0XRKL|V0XLKL\nMB1|5|1\n")
    with pytest.raises(OAKitError, match="V0XRKL: KL value 5"):
        most.read_most_readings(tmp_path)
    (tmp_path / "mostv01235xray.txt").write_text("MOSTID|V0XRKL\nMB1|1\n")
    with pytest.raises(OAKitError, match="missing required column V0XLKL"):
        most.read_most_readings(tmp_path)
    (tmp_path / "mostoutcomes.txt").write_text("MOSTID|V99EDINDEX|V99ELKRINDEX|V99ERKRINDEX\nMB1||4|\n")
    with pytest.raises(OAKitError, match="V99ELKRINDEX: visit index 4"):
        most.read_most_outcomes(tmp_path)
    assert most.read_most_outcomes(tmp_path, visit_months={**most.MOST_VISIT_MONTHS, 4: 72})[0][
        "replacement_month"
    ].tolist() == [72.0]
