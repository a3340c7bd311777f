"""OAI table readers on hand-made files in the real ASCII format (quirks included) and on the synthetic cohort."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from oa_kit.cohort.tables import CLINICAL_COLUMNS, READINGS_COLUMNS, baseline_knee_table, data_dictionary, load_tables
from oa_kit.errors import OAKitError
from oa_kit.io import oai

FIXTURES = Path(__file__).parent / "fixtures" / "oai"


def _knee(readings: pd.DataFrame, pid: str, side: str, month: int) -> pd.Series:
    rows = readings[
        (readings["participant_id"] == pid) & (readings["side"] == side) & (readings["visit_month"] == month)
    ]
    assert len(rows) == 1
    return rows.iloc[0]


def test_visit_months_cover_imaging_and_clinical_visits():
    assert [oai.VISIT_MONTHS[v] for v in oai.XRAY_VISITS] == [0, 12, 24, 36, 48, 72, 96]
    assert oai.VISIT_MONTHS["V07"] == 60 and oai.VISIT_MONTHS["V11"] == 108
    assert oai.visit_prefix(24) == "V03" and oai.visit_prefix("v3") == "V03"
    with pytest.raises(OAKitError, match="visits"):
        oai.visit_prefix(30 + 1)


def test_read_oai_table_normalises_headers_labels_and_special_codes():
    table = oai.read_oai_table(FIXTURES / "kxr_sq_bu01.txt")  # lower-case headers, quotes, padded cells
    assert {"ID", "SIDE", "READPRJ", "V01XRKL"} <= set(table.columns)
    assert table["ID"].tolist() == ["9000001", "9000001", "9000002", "9000003", "9000003"]
    assert table["SIDE"].tolist() == [1, 2, 2, 1, 2]  # "1: Right" → 1
    assert table["V01XRKL_STATUS"].tolist() == ["ok", "ok", "replacement", "ok", "not_expected"]
    assert np.isnan(table["V01XRKL"].iloc[2]) and table["V01XRKL"].iloc[0] == 3
    enrollees = oai.read_oai_table(FIXTURES / "enrollees.txt")
    assert enrollees["VERSION"].tolist() == ["2.2.1"] * 3  # identifiers stay text
    assert enrollees["P02SEX"].tolist() == [2, 1, 2]


def test_kl_readings_resolve_codes_and_readprj_priority():
    readings = oai.read_kl_readings(FIXTURES)
    assert sorted(readings["visit_month"].unique()) == [0, 12, 24]
    # three rows for 9000001 L at V00: 15 is .T, so the next project in priority (37) is used, not 42
    left = _knee(readings, "9000001", "L", 0)
    assert (left["kl"], left["readprj"], left["n_readings"]) == (2, 37, 3)
    right_replaced = _knee(readings, "9000002", "R", 0)
    assert right_replaced["kl_status"] == "replacement" and np.isnan(right_replaced["kl"])
    assert _knee(readings, "9000003", "L", 12)["kl_status"] == "not_expected"
    assert _knee(readings, "9000003", "L", 24)["kl_status"] == "missing"  # blank cell
    assert _knee(readings, "9000001", "R", 0)["osteophytes"] == 2  # max of the four sites
    # a different priority picks project 42 first
    other = oai.read_kl_readings(FIXTURES, visits=["V00"], readprj_priority=(42, 15, 37))
    assert _knee(other, "9000001", "L", 0)[["kl", "readprj"]].tolist() == [3, 42]
    # no NaN KL without a status saying why
    assert (readings["kl"].isna() == readings["kl_status"].ne("ok")).all()


def test_jsw_clinical_and_outcomes():
    jsw = oai.read_jsw(FIXTURES)
    right = jsw[(jsw["participant_id"] == "9000001") & (jsw["side"] == "R")].iloc[0]
    assert right["jsw_medial_mm"] == pytest.approx(4.1) and right["readprj"] == 22  # unlisted READPRJ: lowest first
    assert right["jsw_lateral_x700_mm"] == pytest.approx(6.1) and right["beam_angle_deg"] == 10
    assert jsw.set_index(["participant_id", "side"]).loc[("9000001", "L"), "jsw_medial_status"] == "technical"

    clinical = oai.read_clinical_baseline(FIXTURES).set_index(["participant_id", "side"])
    assert len(clinical) == 6
    assert clinical.loc[("9000001", "R"), ["sex", "site", "injury", "womac_pain", "womac_total"]].tolist() == [
        "F",
        "A",
        1,
        5,
        27,
    ]
    assert clinical.loc[("9000001", "L"), ["injury", "womac_pain", "womac_total"]].tolist() == [0, 2, 13]
    assert clinical.loc[("9000002", "L"), "clinical_status"] == "womac_pain=not_expected;womac_total=not_expected"
    assert clinical.loc[("9000003", "R"), "clinical_status"] == "bmi_kg_m2=missing"

    replacements, deaths = oai.read_outcomes(FIXTURES)
    reps = replacements.set_index(["participant_id", "side"])["replacement_month"]
    assert reps[("9000002", "R")] == 0  # baseline replacement
    assert reps[("9000002", "L")] == pytest.approx(400 / oai.DAYS_PER_MONTH)
    assert ("9000003", "L") not in reps.index  # adjudicated but not confirmed
    assert deaths.to_dict("records") == [{"participant_id": "9000002", "death_month": 24.0}]


def test_load_tables_and_data_dictionary():
    tables = load_tables(FIXTURES, "oai")
    assert list(tables.readings.columns[: len(READINGS_COLUMNS)]) == list(READINGS_COLUMNS)
    assert list(tables.clinical.columns) == list(CLINICAL_COLUMNS)
    assert _knee(tables.readings, "9000003", "R", 0)["jsw_medial_mm"] == pytest.approx(5.5)
    knees = baseline_knee_table(tables).set_index(["participant_id", "side"])
    assert len(knees) == 6 and knees.loc[
        ("9000001", "L"), ["age_years", "baseline_kl", "baseline_readprj"]
    ].tolist() == [61, 2, 37]
    assert knees.loc[("9000002", "R"), "baseline_kl_status"] == "replacement"
    dictionary = data_dictionary("readings")
    assert set(dictionary["column"]) == set(READINGS_COLUMNS) and dictionary["units"].str.len().gt(0).all()
    assert "F" in data_dictionary("clinical").set_index("column").loc["sex", "units"]
    from oa_kit.cohort.labels import build_progression_labels

    result = build_progression_labels(tables.readings, [12])
    assert list(data_dictionary("labels")["column"]) == list(result.labels.columns)
    assert list(data_dictionary("exclusions")["column"]) == list(result.exclusions.columns)
    with pytest.raises(OAKitError, match="table: 'x'"):
        data_dictionary("x")


def test_unknown_codes_and_missing_columns_name_file_and_field(tmp_path):
    with pytest.raises(OAKitError, match=r"kxr_sq_bu00.txt: column V00XRKL: unknown special code '.Z'"):
        oai.read_kl_readings(FIXTURES / "bad_code")
    with pytest.raises(OAKitError, match=r"kxr_sq_bu00.txt: missing required column V00XRKL"):
        oai.read_kl_readings(FIXTURES / "bad_column")
    bad_side = tmp_path / "kxr_sq_bu00.txt"
    bad_side.write_text("ID|SIDE|READPRJ|V00XRKL\n1|3|15|2\n")
    with pytest.raises(OAKitError, match="column SIDE: value 3"):
        oai.read_kl_readings(tmp_path)
    bad_side.write_text("ID|SIDE|READPRJ|V00XRKL\n1|1|15|7\n")
    with pytest.raises(OAKitError, match="KL value 7"):
        oai.read_kl_readings(tmp_path)
    bad_side.write_text("ID|SIDE|Side|V00XRKL\n1|1|1|2\n")
    with pytest.raises(OAKitError, match="appears twice"):
        oai.read_oai_table(bad_side)
    with pytest.raises(OAKitError, match="no table kxr_sq_bu03"):
        oai.read_kl_readings(tmp_path, visits=[24])
    shutil.copy(FIXTURES / "enrollees.txt", tmp_path / "enrollees.txt")
    (tmp_path / "allclinical00.txt").write_text("ID|V00AGE\n9000001|60\n")
    with pytest.raises(OAKitError, match="allclinical00.txt: missing required column P01BMI"):
        oai.read_clinical_baseline(tmp_path)


def test_csv_and_sas_exports(tmp_path):
    text = (FIXTURES / "kxr_sq_bu00.txt").read_text().replace("|", ",")
    (tmp_path / "KXR_SQ_BU00.csv").write_text(text)
    from_csv = oai.read_kl_readings(tmp_path)
    from_txt = oai.read_kl_readings(FIXTURES, visits=[0])
    pd.testing.assert_frame_equal(from_csv, from_txt)
    broken = tmp_path / "x.sas7bdat"
    broken.write_bytes(b"not a SAS file")
    with pytest.raises(OAKitError, match="cannot read SAS file"):
        oai.read_oai_table(broken)


def test_synthetic_cohort_tables_read_back(tiny_cohort):
    """The synthetic cohort writer and these readers agree on every file and column (docs/DESIGN.md)."""
    tables = load_tables(tiny_cohort, "oai")
    truth = pd.read_parquet(tiny_cohort / "truth" / "participants.parquet")
    assert set(tables.clinical["participant_id"]) == set(truth["ID"].astype(str))
    assert set(tables.readings["kl_status"]) <= {"ok", "replacement", "technical", "not_expected", "missing"}
    baseline = tables.readings[tables.readings["visit_month"] == 0]
    assert len(baseline) == 2 * len(truth)
    assert tables.readings["jsw_medial_mm"].notna().any()


def test_trailing_separator_is_tolerated_but_extra_values_are_not(tmp_path):
    table = tmp_path / "t.txt"
    table.write_text("ID|A\n1|2|\n3|4|\n")
    assert oai.read_oai_table(table)["A"].tolist() == [2, 4]
    table.write_text("ID|A|B\n1|.5|10:30\n2|.A|11:00\n")  # decimals and times are values, not codes
    parsed = oai.read_oai_table(table)
    assert parsed["A"].iloc[0] == 0.5 and parsed["A_STATUS"].tolist() == ["ok", "not_expected"]
    assert parsed["B"].tolist() == ["10:30", "11:00"]
    table.write_text("ID|A\n1|2|9\n")
    with pytest.raises(OAKitError, match="t.txt, line 2: 3 fields for 2 columns"):
        oai.read_oai_table(table)
