"""Synthetic cohort contract: deterministic files, OAI tables, images, closed-form truth, oracle gap, atomic output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from oa_kit.errors import OAKitError
from oa_kit.horizons import OAI_HORIZONS_MONTHS
from oa_kit.io.labels import LABELS, SUBREGIONS
from oa_kit.synth import generate_cohort, oracle_auc, oracle_table, read_manifest, reference_labels, simulate_cohort
from oa_kit.synth.model import simulate
from oa_kit.synth.tables import oai_tables

OAI_COLUMNS = {
    "enrollees": ["ID", "P02SEX", "V00SITE", "P02RACE"],
    "allclinical00": [
        "ID",
        "V00AGE",
        "P01BMI",
        "P01INJL",
        "P01INJR",
        "P01KSURGL",
        "P01KSURGR",
        "V00WOMKPL",
        "V00WOMKPR",
        "V00WOMSTFL",
        "V00WOMSTFR",
        "V00WOMADLL",
        "V00WOMADLR",
        "V00WOMTSL",
        "V00WOMTSR",
    ],
    "kxr_qjsw_duryea00": [
        "ID",
        "SIDE",
        "READPRJ",
        "V00MCMJSW",
        *[f"V00JSW{x}" for x in range(150, 301, 25)],
        *[f"V00LJSW{x}" for x in range(700, 901, 25)],
        "V00BMANG",
    ],
}
for _vv in ("00", "01", "03", "05", "06", "08", "10"):
    OAI_COLUMNS[f"kxr_sq_bu{_vv}"] = [
        "ID",
        "SIDE",
        "READPRJ",
        *[f"V{_vv}XR{c}" for c in ("KL", "OSFL", "OSFM", "OSTL", "OSTM", "JSL", "JSM")],
    ]


@pytest.fixture(scope="module")
def demo():
    """The demo preset simulated in memory (tables only, fast)."""
    return simulate_cohort("demo", seed=0)


@pytest.fixture(scope="module")
def large():
    """A large in-memory cohort for checking the generating model's statistics."""
    return simulate(4000, seed=11)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="|", dtype=str, keep_default_na=False)


def test_tiny_cohort_layout_and_manifest(tiny_cohort):
    manifest = read_manifest(tiny_cohort)
    assert manifest["preset"] == "tiny" and manifest["seed"] == 0 and manifest["n_participants"] == 8
    on_disk = {p.relative_to(tiny_cohort).as_posix() for p in tiny_cohort.rglob("*") if p.is_file()}
    assert on_disk - {"manifest.json"} == set(manifest["files"])
    ids = _read(tiny_cohort / "OAI" / "enrollees.txt")["ID"]
    assert {f"xray/{i}_V00_PA.dcm" for i in ids} <= on_disk
    knees = pd.read_parquet(tiny_cohort / "truth" / "knees.parquet")
    imaged = knees[knees["tkr_month"].fillna(-1) != 0]  # no MRI of a knee replaced before baseline
    expected = {f"mri/{i}_{s}_V00_{k}.nii.gz" for i, s in zip(imaged["ID"], imaged["side"]) for k in ("DESS", "labels")}
    assert expected == {name for name in on_disk if name.startswith("mri/")}
    assert {"truth/participants.parquet", "truth/knees.parquet"} <= on_disk
    assert not list(tiny_cohort.parent.glob(".*.part"))


def test_same_seed_identical_files_different_seed_differs(tmp_path):
    first = generate_cohort("tiny", tmp_path / "first", seed=7, progress=False, n_participants=1)
    again = generate_cohort("tiny", tmp_path / "again", seed=7, progress=False, n_participants=1, n_jobs=2)
    reference = read_manifest(first)["files"]
    assert any(name.endswith(".dcm") for name in reference) and any(name.endswith(".nii.gz") for name in reference)
    assert read_manifest(again)["files"] == reference
    other = generate_cohort("tiny", tmp_path / "other", seed=8, images=False, progress=False, n_participants=1)
    files = read_manifest(other)["files"]
    assert all(files[name]["sha256"] != reference[name]["sha256"] for name in files)


def test_every_table_opens_with_oai_columns_and_codes(tiny_cohort):
    for stem, columns in OAI_COLUMNS.items():
        table = _read(tiny_cohort / "OAI" / f"{stem}.txt")
        assert list(table.columns) == columns, stem
        assert len(table) > 0
        if "SIDE" in table:
            assert set(table["SIDE"]) <= {"1", "2"}
    enrollees = _read(tiny_cohort / "OAI" / "enrollees.txt")
    assert set(enrollees["P02SEX"]) <= {"1", "2"} and set(enrollees["V00SITE"]) <= set("ABCDE")
    outcomes = _read(tiny_cohort / "OAI" / "outcomes99.txt")
    assert {"ID", "V99ERKDAYS", "V99ELKDAYS", "V99ERKRPCF", "V99EDDCF", "V99EDDVSPR"} <= set(outcomes.columns)


def test_demo_tables_have_special_codes_duplicates_and_misreads(demo):
    tables = oai_tables(demo)
    sq = pd.concat(
        [
            t.set_axis(["ID", "SIDE", "READPRJ", "KL", "OSFL", "OSFM", "OSTL", "OSTM", "JSL", "JSM"], axis=1).assign(
                visit=v
            )
            for v, t in tables.items()
            if v.startswith("kxr_sq_bu")
        ]
    )
    assert {".P", ".T", ".A"} <= set(sq["KL"])
    assert {"15", "37", "42"} == set(sq["READPRJ"])
    dups = sq[sq.duplicated(["ID", "SIDE", "visit"], keep=False)]
    assert len(dups) > 0 and dups.groupby(["ID", "SIDE", "visit"])["KL"].nunique().max() == 2
    primary = demo.readings[(demo.readings["readprj"] == 15) & (demo.readings["status"] == "ok")]
    drops = primary.sort_values("visit_month").groupby(["ID", "side"])["kl"].apply(lambda s: (s.diff() < 0).any())
    assert drops.sum() > 0  # inter-reading noise makes decreasing KL sequences occur
    replaced = demo.readings[demo.readings["status"] == "P"]
    first_p = replaced.groupby(["ID", "side"])["visit_month"].min().rename("first_p")
    later = demo.readings.merge(first_p.reset_index(), on=["ID", "side"])
    assert (later.loc[later["visit_month"] >= later["first_p"], "status"] == "P").all()
    p = demo.participants.set_index("ID")
    dead = demo.readings.join(p["death_month"], on="ID")
    assert not (dead["visit_month"] > dead["death_month"]).any()
    assert (demo.knees.loc[demo.knees["tkr_month"] > 0, "kl_baseline_true"] >= 2).mean() > 0.8


def test_images_open_with_right_geometry(tiny_cohort):
    import nibabel as nib
    import pydicom

    from oa_kit.synth.mri import DEFAULT_GEOMETRY

    knees = pd.read_parquet(tiny_cohort / "truth" / "knees.parquet")
    for dcm in sorted((tiny_cohort / "xray").glob("*.dcm")):
        ds = pydicom.dcmread(dcm)
        spacing = float(ds.ImagerPixelSpacing[0])
        assert 0.15 <= spacing <= 0.2 and ds.BitsAllocated == 16
        assert ds.PhotometricInterpretation in ("MONOCHROME1", "MONOCHROME2")
        assert abs(ds.Columns * spacing - 280) < 2 and abs(ds.Rows * spacing - 180) < 2
        assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
        rows = knees[knees["ID"] == ds.PatientID]
        assert (rows["joint_centre_row"].between(0, ds.Rows)).all() and (
            rows["joint_centre_col"].between(0, ds.Columns)
        ).all()
        right, left = rows.set_index("side").loc[["R", "L"], "joint_centre_col"]
        assert right < ds.Columns / 2 < left  # right knee in the image's left half
    for image in sorted((tiny_cohort / "mri").glob("*_DESS.nii.gz")):
        img = nib.load(image)
        lab = nib.load(str(image).replace("_DESS", "_labels"))
        assert img.shape == DEFAULT_GEOMETRY.shape == lab.shape
        assert np.allclose(img.header.get_zooms(), DEFAULT_GEOMETRY.spacing_mm)
        assert np.allclose(img.affine, lab.affine)
        values = np.unique(np.asarray(lab.dataobj))
        assert set(values.tolist()) <= set(LABELS) and {2, 4, 5} <= set(values.tolist())
    thick = knees[[f"thickness_mm_{r}" for r in SUBREGIONS]].to_numpy()
    assert np.isfinite(thick).all() and (thick > 0.3).all()


def test_structure_is_consistent_with_kl(large):
    k = large.knees
    by_kl = k.groupby("kl_baseline_true")
    jsw = by_kl["jsw_medial_mm"].mean().to_numpy()
    assert (np.diff(jsw) < 0).all()
    assert (k.loc[k["kl_baseline_true"] == 0, ["jsn_medial", "jsn_lateral"]] == 0).all().all()
    ost = k[["os_FM", "os_FL", "os_TM", "os_TL"]].max(axis=1)
    assert (ost[k["kl_baseline_true"] >= 2] >= 1).mean() > 0.98
    central = k[["thickness_mm_femoral_medial_central", "thickness_mm_femoral_lateral_central"]].min(axis=1)
    assert (np.diff(central.groupby(k["kl_baseline_true"]).mean().to_numpy()) < 0).all()
    pairs = k.pivot(index="ID", columns="side", values="kl_baseline_true")
    assert np.corrcoef(pairs["R"], pairs["L"])[0, 1] > 0.4  # KL correlated within participant
    assert k["age"].between(45, 79).all()


def test_risk_directions_and_image_latents_independent(large):
    k = large.knees
    X = np.column_stack(
        [
            k["age"],
            k["bmi"],
            k["sex"].eq("F"),
            k["injury"],
            k["surgery"],
            k["womac_pain"],
            k["kl_baseline_true"].clip(upper=3),
        ]
    ).astype(float)
    X1 = np.column_stack([np.ones(len(k)), X])
    coef = np.linalg.lstsq(X1, np.log(k["progression_rate_per_year"]), rcond=None)[0][1:]
    assert (coef > 0).all(), coef  # older, heavier, female, injured, operated, more pain, higher KL → faster
    latents = k[["image_cartilage_z", "image_osteophyte_z", "image_jsw_z"]].to_numpy()
    corr = np.corrcoef(np.column_stack([latents, X]).T)[:3, 3:]
    assert np.abs(corr).max() < 0.05


def test_true_probability_matches_simulated_event_times(large):
    k = large.knees[large.knees["eligible"]]
    for h in (24, 48, 96):
        empirical = (k["event_month_true"] <= h).mean()
        assert abs(empirical - k[f"p_progress_{h}"].mean()) < 0.015, h
    assert large.knees.loc[~large.knees["eligible"], "p_progress_48"].isna().all()


def test_oracle_beats_clinical_and_image_latents_close_the_gap(demo):
    table = oracle_table(demo, horizons_months=(48, 96), seed=0).set_index(["horizon_months", "model"])["auc"]
    for h in (48, 96):
        assert table[(h, "oracle")] - table[(h, "clinical")] >= 0.05
        assert table[(h, "oracle")] - table[(h, "clinical+KL")] >= 0.05
        assert table[(h, "oracle")] - table[(h, "clinical+KL+image_latents")] <= 0.03
    labels = reference_labels(demo, 48)
    assert oracle_auc(demo.knees, labels, 48) == pytest.approx(table[(48, "oracle")])


def test_oai_readers_and_label_builder_read_the_synthetic_tables(tmp_path, demo):
    oai = pytest.importorskip("oa_kit.io.oai")
    labels_mod = pytest.importorskip("oa_kit.cohort.labels")
    out = generate_cohort("demo", tmp_path / "demo", seed=0, images=False, progress=False)
    readings = oai.read_kl_readings(out / "OAI")
    replacements, deaths = oai.read_outcomes(out / "OAI")
    assert len(replacements) == int(((demo.knees["tkr_month"] >= 0) & (demo.knees["tkr_month"] <= 96)).sum())
    built = labels_mod.build_progression_labels(readings, [48], deaths=deaths, replacements=replacements).labels
    ours = reference_labels(demo, 48)
    merged = built.rename(columns={"participant_id": "ID"}).merge(ours, on=["ID", "side"], suffixes=("", "_ref"))
    assert len(merged) > 0.9 * len(ours) and (merged["label"] == merged["label_ref"]).mean() > 0.98


def test_interrupted_generation_leaves_no_complete_looking_folder(tmp_path, monkeypatch):
    from oa_kit.synth import mri

    calls = {"n": 0}
    real = mri.render_knee_mri

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # after the radiograph and the right knee's MRI are written
            raise RuntimeError("renderer crashed")
        return real(*args, **kwargs)

    monkeypatch.setattr(mri, "render_knee_mri", flaky)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        generate_cohort("tiny", tmp_path / "cohort", seed=0, progress=False, n_participants=1)
    assert list(tmp_path.iterdir()) == []
    done = generate_cohort("tiny", tmp_path / "cohort", seed=0, images=False, progress=False)
    before = (done / "manifest.json").read_text()
    calls["n"] = 1
    with pytest.raises(RuntimeError):
        generate_cohort("tiny", done, seed=5, overwrite=True, progress=False, n_participants=1)
    assert (done / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"preset": "huge"}, "unknown preset"),
        ({"preset": "tiny", "n_participants": 0}, "positive"),
        ({"preset": "tiny", "n_participants": -3}, "positive"),
        ({"preset": "tiny", "seed": -1}, "seed"),
        ({"preset": "tiny", "n_jobs": 0}, "n_jobs"),
    ],
)
def test_bad_arguments_raise_one_line_errors(tmp_path, kwargs, match):
    kwargs = {"seed": 0, **kwargs}
    with pytest.raises(OAKitError, match=match) as info:
        generate_cohort(out=tmp_path / "x", images=False, progress=False, **kwargs)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "x").exists()


def test_existing_output_needs_overwrite_and_files_are_rejected(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(OAKitError, match="not empty"):
        generate_cohort("tiny", tmp_path / "full", seed=0, images=False, progress=False)
    assert (tmp_path / "full" / "keep.txt").exists()
    (tmp_path / "empty").mkdir()
    assert read_manifest(generate_cohort("tiny", tmp_path / "empty", seed=0, images=False, progress=False))
    (tmp_path / "file").write_text("x")
    with pytest.raises(OAKitError, match="not a folder"):
        generate_cohort("tiny", tmp_path / "file", seed=0, images=False, progress=False)
    with pytest.raises(OAKitError, match="parent"):
        generate_cohort("tiny", tmp_path / "file" / "sub", seed=0, images=False, progress=False)
    replaced = generate_cohort("tiny", tmp_path / "full", seed=2, overwrite=True, images=False, progress=False)
    assert not (replaced / "keep.txt").exists()
    assert json.loads((replaced / "manifest.json").read_text())["seed"] == 2


def test_truth_tables_follow_the_design(tiny_cohort):
    participants = pd.read_parquet(tiny_cohort / "truth" / "participants.parquet")
    knees = pd.read_parquet(tiny_cohort / "truth" / "knees.parquet")
    assert {"ID", "site", "sex", "age", "bmi", "death_month"} <= set(participants.columns)
    needed = {
        "ID",
        "side",
        "latent_severity",
        "progression_rate_per_year",
        "jsw_medial_mm",
        "jsw_lateral_mm",
        "joint_centre_row",
        "joint_centre_col",
        *[f"kl_true_V{v}" for v in ("00", "01", "03", "05", "06", "08", "10")],
        *[f"thickness_mm_{r}" for r in SUBREGIONS],
        *[f"p_progress_{h}" for h in OAI_HORIZONS_MONTHS],
    }
    assert needed <= set(knees.columns)
    assert len(knees) == 16 and set(knees["side"]) == {"R", "L"}
    assert set(knees["kl_true_V00"]) == {0, 1, 2, 3, 4}  # the tiny preset balances baseline KL


def test_mri_tracks_the_stored_cartilage_truth(tiny_cohort):
    import nibabel as nib
    from scipy.stats import spearmanr

    knees = pd.read_parquet(tiny_cohort / "truth" / "knees.parquet")
    targets = simulate_cohort("tiny", seed=0).knees.set_index(["ID", "side"])
    volumes, truth, target = [], [], []
    for row in knees.itertuples():
        path = tiny_cohort / "mri" / f"{row.ID}_{row.side}_V00_labels.nii.gz"
        if not path.exists():
            continue
        img = nib.load(path)
        labels = np.asarray(img.dataobj)
        volumes.append(np.isin(labels, (4, 5)).sum() * np.prod(img.header.get_zooms()))
        truth.append(row.thickness_mm_tibial_medial + row.thickness_mm_tibial_lateral)
        target.append(
            targets.loc[(row.ID, row.side), ["thickness_mm_tibial_medial", "thickness_mm_tibial_lateral"]].sum()
        )
    assert len(volumes) >= 12
    assert spearmanr(volumes, truth).statistic > 0.6  # thinner stored cartilage → less labelled cartilage
    assert np.abs(np.array(truth) - np.array(target)).mean() < 0.2  # rendered thickness close to the model's target


def test_data_card_oracle_table_matches_the_generator(demo):
    """The oracle figures in data_cards/synthetic_oai.md are what ``python -m oa_kit.synth.oracle`` computes now."""
    card = (Path(__file__).resolve().parents[1] / "data_cards" / "synthetic_oai.md").read_text(encoding="utf-8")
    rows = [
        line.strip("|").split("|")
        for line in card.splitlines()
        if line.startswith("| ") and line[2:4].strip().isdigit()
    ]
    card_table = {int(r[0]): [float(x) for x in r[3:7]] for r in rows if len(r) == 7}
    assert sorted(card_table) == list(OAI_HORIZONS_MONTHS)
    wide = oracle_table(demo, seed=0).pivot(index="horizon_months", columns="model", values="auc")
    for h, values in card_table.items():
        now = wide.loc[h, ["clinical", "clinical+KL", "clinical+KL+image_latents", "oracle"]].to_numpy()
        assert np.allclose(values, now, atol=0.002), (h, values, now)
