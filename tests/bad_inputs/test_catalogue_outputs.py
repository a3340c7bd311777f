"""Catalogue of bad inputs, part 2 (#24): saved progression model folders and command-line arguments.

Model folders: each case edits one field of a saved model's ``metadata.json`` (or ``model.txt``) AND updates
``checksums.json`` to match, so the sha256 list cannot catch it: the type and range checks on load must, with one
line naming the file and field; the bootstrap cases also delete, unlist or tamper with a refit's ``bootstrap_NNN.txt``.
Command lines: each case runs ``oa-kit`` in this process with one bad argument or
output path; it must stop with one line and exit code 2 before any work, having written nothing (the call
below compares the folder before and after). Cases use :class:`~tests.bad_inputs.test_catalogue.Case`, so
``scripts/bad_inputs_table.py`` lists them with the others in docs/bad-inputs.md.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from oa_kit.cli import main
from oa_kit.errors import OAKitError
from oa_kit.progression import ProgressionModel, make_provenance, save_model

from . import models as M
from .test_catalogue import CASES as PART_ONE
from .test_catalogue import Case, check_case, entry

LOAD_MODEL, LOAD_MODELS = "oa_kit.progression.persist:load_model", "oa_kit.api:load_progression"


def loads_and_predicts(model) -> bool:
    """A valid folder loads and gives risks in [0, 1] for the table it was fitted on."""
    risk = model.predict_proba(M.knee_table()[0])[:, 1]
    return bool(np.all((risk >= 0) & (risk <= 1)) and model.provenance_["data"] == "synthetic")


def swapped_horizon_folder(tmp: Path) -> Path:
    """A models folder whose ``h12/`` holds the 24-month model (copied under the wrong name)."""
    M.model_folder(tmp / "models", name="h12")
    return tmp / "models"


@functools.cache
def _saved_bootstrap() -> Path:
    """A LightGBM model with 3 bootstrap refits saved under a session temp folder (fitted once, copied per case)."""
    X, y = M.knee_table()
    model = ProgressionModel(param_grid=M.GRID, seed=0, n_bootstrap=3).fit(
        X, y, provenance=make_provenance("synthetic", "bad_inputs fixture")
    )
    return save_model(model, Path(tempfile.mkdtemp(prefix="oa_kit_bad_inputs_")) / "model")


def bootstrap_folder(tmp: Path) -> Path:
    """A saved LightGBM model folder with 3 bootstrap refits (a copy, at ``tmp / model``)."""
    return Path(shutil.copytree(_saved_bootstrap(), tmp / "model"))


def bootstrap_edited(change: Callable[[dict], object]) -> Callable[[Path], Path]:
    """Maker: the bootstrap model folder with ``change(meta)`` applied to its metadata and checksums updated."""

    def make(tmp: Path) -> Path:
        folder = bootstrap_folder(tmp)
        meta = json.loads((folder / "metadata.json").read_text())
        change(meta)
        (folder / "metadata.json").write_text(json.dumps(meta))
        return M.revouch(folder)

    return make


def bootstrap_file(change: Callable[[Path], object], revouch: bool = False) -> Callable[[Path], Path]:
    """Maker: the bootstrap model folder after ``change(folder)`` (checksums updated only with ``revouch``)."""

    def make(tmp: Path) -> Path:
        folder = bootstrap_folder(tmp)
        change(folder)
        return M.revouch(folder) if revouch else folder

    return make


def unlisted(name: str) -> Callable[[Path], object]:
    """Remove ``name`` from the folder and from its checksum list."""

    def change(folder: Path) -> None:
        listed = json.loads((folder / "checksums.json").read_text())
        listed.pop(name)
        (folder / name).unlink()
        (folder / "checksums.json").write_text(json.dumps(listed))

    return change


def has_intervals(model) -> bool:
    """A valid bootstrap folder loads with its refits, and gives ordered intervals within [0, 1]."""
    interval = model.predict_interval(M.knee_table()[0])
    return bool(
        len(model.bootstrap_) == 3
        and np.all((0 <= interval[:, 0]) & (interval[:, 0] <= interval[:, 1]) & (interval[:, 1] <= 1))
    )


BOOTSTRAP_CASES = [
    Case("model_bootstrap_valid_loads", bootstrap_folder, entry(LOAD_MODEL), check=has_intervals),
    Case(
        "model_bootstrap_an_object",
        bootstrap_edited(lambda meta: meta.update(bootstrap={"count": 3})),
        entry(LOAD_MODEL),
        r"metadata.json: field 'bootstrap' is an object; expected a list",
    ),
    Case(
        "model_bootstrap_one_refit_fewer",
        bootstrap_edited(lambda meta: meta["bootstrap"].pop()),
        entry(LOAD_MODEL),
        r"metadata.json: field 'bootstrap' has 2 refits; expected 3 \(params.n_bootstrap\)",
    ),
    Case(
        "model_bootstrap_seed_text",
        bootstrap_edited(lambda meta: meta["bootstrap"][1].update(seed="one")),
        entry(LOAD_MODEL),
        r"metadata.json: field 'bootstrap\[1\]'; expected an object with a whole-number seed",
    ),
    Case(
        "model_bootstrap_calibration_slope_negative",
        bootstrap_edited(lambda meta: meta["bootstrap"][2]["calibrator"].update(slope=-1.0)),
        entry(LOAD_MODEL),
        r"field 'bootstrap\[2\].calibrator.slope' = -1.0; expected a slope >= 0",
    ),
    Case(
        "model_bootstrap_file_points_at_model",
        bootstrap_edited(lambda meta: meta["bootstrap"][0].update(file="model.txt")),
        entry(LOAD_MODEL),
        r"field 'bootstrap\[0\].file' = 'model.txt'; expected 'bootstrap_000.txt'",
    ),
    Case(
        "model_bootstrap_file_missing",
        bootstrap_file(lambda folder: (folder / "bootstrap_001.txt").unlink()),
        entry(LOAD_MODEL),
        r"bootstrap_001.txt: missing; expected it as listed in checksums.json",
    ),
    Case(
        "model_bootstrap_file_unlisted",
        bootstrap_file(unlisted("bootstrap_001.txt")),
        entry(LOAD_MODEL),
        r"checksums.json: no entry for bootstrap_001.txt; expected every bootstrap model",
    ),
    Case(
        "model_bootstrap_file_tampered",
        bootstrap_file(lambda folder: (folder / "bootstrap_002.txt").write_text("tree\nnot a model\n")),
        entry(LOAD_MODEL),
        r"bootstrap_002.txt: sha256 \w+… does not match .*checksums.json; expected \w+… \(the file changed after",
    ),
    Case(
        "model_bootstrap_file_garbage_revouched",
        bootstrap_file(lambda folder: (folder / "bootstrap_002.txt").write_text("tree\nnot a model\n"), revouch=True),
        entry(LOAD_MODEL),
        r"bootstrap_002.txt: cannot parse .*; expected a LightGBM text model",
    ),
]

MODEL_CASES = [
    Case("model_folder_valid_loads", lambda t: M.model_folder(t), entry(LOAD_MODEL), check=loads_and_predicts),
    Case(
        "model_metadata_json_list",
        M.edited(lambda meta: [meta], whole=True),
        entry(LOAD_MODEL),
        r"metadata.json: JSON list; expected an object",
    ),
    Case(
        "model_metadata_not_json",
        M.replaced("metadata.json", b'{"format": "oa_kit.progression/1",'),
        entry(LOAD_MODEL),
        r"metadata.json: not valid JSON",
    ),
    Case(
        "model_metadata_latin1",
        M.replaced("metadata.json", b'{"format": "caf\xe9"}'),
        entry(LOAD_MODEL),
        r"metadata.json: byte 15 is not UTF-8",
    ),
    Case(
        "model_metadata_wrong_format",
        M.edited(lambda meta: meta.update(format="oa_kit.progression/9")),
        entry(LOAD_MODEL),
        r"metadata.json: format 'oa_kit.progression/9'; expected 'oa_kit.progression/1'",
    ),
    Case(
        "model_metadata_missing_feature_names",
        M.edited(lambda meta: meta.pop("feature_names")),
        entry(LOAD_MODEL),
        r"metadata.json: field 'feature_names' missing",
    ),
    Case(
        "model_metadata_horizon_text",
        M.edited(lambda meta: meta.update(horizon_months="24")),
        entry(LOAD_MODEL),
        r"metadata.json: field 'horizon_months' is a string; expected a whole number",
    ),
    Case(
        "model_metadata_horizon_fraction",
        M.edited(lambda meta: meta.update(horizon_months=24.5)),
        entry(LOAD_MODEL),
        r"metadata.json: field 'horizon_months' is a number; expected a whole number",
    ),
    Case(
        "model_metadata_horizon_negative",
        M.edited(lambda meta: meta.update(horizon_months=-12)),
        entry(LOAD_MODEL),
        r"metadata.json: field 'horizon_months' = -12; expected 1-1200 months",
    ),
    Case(
        "model_metadata_horizon_zero",
        M.edited(lambda meta: meta.update(horizon_months=0)),
        entry(LOAD_MODEL),
        r"field 'horizon_months' = 0; expected 1-1200 months",
    ),
    Case(
        "model_metadata_horizon_disagrees_with_params",
        M.edited(lambda meta: meta.update(horizon_months=36)),
        entry(LOAD_MODEL),
        r"metadata.json: field 'params'; expected the horizon_months and estimator of the metadata",
    ),
    Case(
        "model_folder_h12_holds_24_month_model",
        swapped_horizon_folder,
        entry(LOAD_MODELS),
        r"h12/metadata.json: field 'horizon_months' = 24; expected 12, the horizon of h12/",
    ),
    Case(
        "model_metadata_estimator_unknown",
        M.edited(lambda meta: meta.update(estimator="xgboost")),
        entry(LOAD_MODEL),
        r"field 'estimator' = 'xgboost'; expected one of lightgbm, logistic",
    ),
    Case(
        "model_metadata_n_train_true",
        M.edited(lambda meta: meta.update(n_train=True)),
        entry(LOAD_MODEL),
        r"field 'n_train' is true/false; expected a whole number",
    ),
    Case(
        "model_metadata_n_events_above_n_train",
        M.edited(lambda meta: meta.update(n_events=meta["n_train"] + 1)),
        entry(LOAD_MODEL),
        r"field 'n_events' = \d+; expected 0-\d+ events \(at most n_train\)",
    ),
    Case(
        "model_metadata_params_a_list",
        M.edited(lambda meta: meta.update(params=[1, 2])),
        entry(LOAD_MODEL),
        r"field 'params' is a list; expected an object",
    ),
    Case(
        "model_metadata_params_unknown_key",
        M.edited(lambda meta: meta["params"].update(max_depth=3)),
        entry(LOAD_MODEL),
        r"field 'params' malformed \(TypeError: .*max_depth.*\); expected the state save_model writes",
    ),
    Case(
        "model_metadata_assembler_missing_key",
        M.edited(lambda meta: meta["assembler"].pop("levels")),
        entry(LOAD_MODEL),
        r"field 'assembler' malformed \(KeyError: 'levels'\)",
    ),
    Case(
        "model_metadata_one_feature_fewer",
        M.edited(lambda meta: M.drop_first_feature(meta, assembler_too=False)),
        entry(LOAD_MODEL),
        r"field 'assembler.feature_names_out'; expected the same list as 'feature_names'",
    ),
    Case(
        "model_n_features_differ_from_lightgbm_text",
        M.edited(lambda meta: M.drop_first_feature(meta, assembler_too=True)),
        entry(LOAD_MODEL),
        r"model.txt: \d+ features; expected \d+, the feature_names of metadata.json",
    ),
    Case(
        "model_metadata_duplicate_feature",
        M.edited(lambda meta: meta["feature_names"].append(meta["feature_names"][0])),
        entry(LOAD_MODEL),
        r"field 'feature_names'; expected a non-empty list of distinct column names",
    ),
    Case(
        "model_metadata_family_missing",
        M.edited(lambda meta: meta["feature_families"].pop(meta["feature_names"][0])),
        entry(LOAD_MODEL),
        r"field 'feature_families'; expected one family name for each of the feature_names",
    ),
    Case(
        "model_metadata_relabelled_real",
        M.edited(lambda meta: meta["provenance"].update(statement="trained on REAL OAI data")),
        entry(LOAD_MODEL),
        r"field 'provenance.statement' = 'trained on REAL OAI data'; expected the statement oa_kit writes for "
        r"data 'synthetic'",
    ),
    Case(
        "model_metadata_provenance_data_unknown_word",
        M.edited(lambda meta: meta["provenance"].update(data="clinical")),
        entry(LOAD_MODEL),
        r"field 'provenance.data' = 'clinical'; expected 'synthetic', 'real' or 'unknown'",
    ),
    Case(
        "model_metadata_calibration_slope_negative",
        M.edited(lambda meta: meta["calibrator"].update(slope=-1.0)),
        entry(LOAD_MODEL),
        r"field 'calibrator.slope' = -1.0; expected a slope >= 0",
    ),
    Case(
        "model_metadata_calibration_slope_text",
        M.edited(lambda meta: meta["calibrator"].update(slope="steep")),
        entry(LOAD_MODEL),
        r"field 'calibrator.slope' = 'steep'; expected a finite number",
    ),
    Case(
        "model_metadata_calibration_method_unknown",
        M.edited(lambda meta: meta["calibrator"].update(method="magic")),
        entry(LOAD_MODEL),
        r"field 'calibrator.method' = 'magic'; expected sigmoid, isotonic or none",
    ),
    Case(
        "model_metadata_isotonic_probability_above_1",
        M.edited(lambda meta: meta["calibrator"]["y_thresholds"].__setitem__(-1, 1.5), estimator="logistic"),
        entry(LOAD_MODEL),
        r"field 'calibrator.y_thresholds'; expected increasing x and probabilities 0-1",
    ),
    Case(
        "model_metadata_logistic_coef_short",
        M.edited(lambda meta: meta["linear"]["coef"].pop(), estimator="logistic"),
        entry(LOAD_MODEL),
        r"field 'linear.coef'; expected \d+ finite numbers \(one per feature\)",
    ),
    Case(
        "model_metadata_logistic_zero_scale",
        M.edited(lambda meta: meta["linear"]["scales"].__setitem__(0, 0.0), estimator="logistic"),
        entry(LOAD_MODEL),
        r"field 'linear.scales/intercept'; expected positive scales and a finite intercept",
    ),
    Case(
        "model_metadata_logistic_linear_null",
        M.edited(lambda meta: meta.update(linear=None), estimator="logistic"),
        entry(LOAD_MODEL),
        r"field 'linear' is null; expected the logistic model's coefficients",
    ),
    Case(
        "model_lightgbm_text_garbage",
        M.replaced("model.txt", b"tree\nversion=v4\nnot a model\n"),
        entry(LOAD_MODEL),
        r"model.txt: cannot parse .*; expected a LightGBM text model",
    ),
    Case(
        "model_lightgbm_text_latin1",
        M.replaced("model.txt", b"tree\nfeature_names=\xe9\n"),
        entry(LOAD_MODEL),
        r"model.txt: byte \d+ is not UTF-8; expected a LightGBM text model",
    ),
    Case(
        "model_checksums_a_list",
        M.replaced("checksums.json", b'["metadata.json"]'),
        entry(LOAD_MODEL),
        r"checksums.json: not a \{file: sha256\} object",
    ),
]


def _files(folder: Path) -> set[str]:
    """Every path under ``folder`` (files and folders), relative."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def cli(*argv: str) -> Callable[[Path], object]:
    """Run ``oa-kit *argv`` (``{tmp}`` is the case folder) in this process. Exit 0 returns 0; any other exit must be
    code 2 with one stderr line and nothing written: that line is raised as the OAKitError the case expects."""

    def run(tmp: Path) -> int:
        before, err = _files(tmp), io.StringIO()
        args = [a.format(tmp=tmp) for a in argv]
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(args)
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code
        assert _files(tmp) == before, f"oa-kit {' '.join(args)} wrote {sorted(_files(tmp) - before)}"
        lines = err.getvalue().strip().splitlines()
        if code == 0:
            return 0
        assert code == 2 and len(lines) == 1, f"exit {code}, stderr {lines}"
        raise OAKitError(lines[0])

    words = [a for a in argv[:2] if not a.startswith("-") and "{" not in a]
    run.__name__ = f"oa-kit {' '.join(words)}"
    run.argv = argv  # shown in docs/bad-inputs.md
    return run


def inputs(tmp: Path) -> Path:
    """A case folder with a small features/labels pair, a file named like a folder and a saved model."""
    table, y = M.knee_table()
    table.to_csv(tmp / "features.csv", index=False)
    labels = table[["participant_id", "side"]].assign(horizon_months=24, label=y)
    labels.to_csv(tmp / "labels.csv", index=False)
    (tmp / "taken").write_text("a file, not a folder\n")
    M.model_folder(tmp, name="model")
    return tmp


def ro(path: str) -> str:
    """A path under /proc, where nothing can be created (even by root)."""
    return f"/proc/oa_kit_no_such_dir/{path}"


F, L = "--features={tmp}/features.csv", "--labels={tmp}/labels.csv"
CLI_CASES = [
    Case(
        "cli_progression_fit_out_is_a_file",
        inputs,
        cli("progression", "fit", F, L, "--out={tmp}/taken"),
        r"--out: .*taken is a file; expected a folder",
    ),
    Case(
        "cli_progression_fit_out_not_empty",
        inputs,
        cli("progression", "fit", F, L, "--out={tmp}/model"),
        r"--out: .*model exists and is not empty; expected a new folder or --overwrite",
    ),
    Case(
        "cli_progression_fit_out_unwritable",
        inputs,
        cli("progression", "fit", F, L, "--out=" + ro("m")),
        r"--out: /proc/oa_kit_no_such_dir/m: cannot write in /proc",
    ),
    Case(
        "cli_progression_fit_out_under_a_file",
        inputs,
        cli("progression", "fit", F, L, "--out={tmp}/taken/m"),
        r"--out: .*taken/m: .*taken is a file; expected a writable folder there",
    ),
    Case(
        "cli_progression_fit_horizon_zero",
        inputs,
        cli("progression", "fit", F, L, "--out={tmp}/m", "--horizons", "0"),
        r"argument --horizons: '0'; expected a whole number >= 1",
    ),
    Case(
        "cli_progression_fit_horizon_negative",
        inputs,
        cli("progression", "fit", F, L, "--out={tmp}/m", "--horizons=-12"),
        r"argument --horizons: '-12'; expected a whole number >= 1",
    ),
    Case(
        "cli_progression_fit_components_zero",
        inputs,
        cli("progression", "fit", F, L, "--out={tmp}/m", "--components", "0"),
        r"argument --components: '0'; expected a whole number >= 1",
    ),
    Case(
        "cli_progression_fit_visit_month_negative",
        inputs,
        cli("progression", "fit", F, L, "--out={tmp}/m", "--visit-month=-1"),
        r"argument --visit-month: '-1'; expected a whole number >= 0",
    ),
    Case(
        "cli_progression_evaluate_jobs_zero",
        inputs,
        cli("progression", "evaluate", F, L, "--out={tmp}/r", "--jobs", "0"),
        r"argument --jobs: '0'; expected a positive number of processes or -1",
    ),
    Case(
        "cli_progression_evaluate_jobs_text",
        inputs,
        cli("progression", "evaluate", F, L, "--out={tmp}/r", "--jobs", "two"),
        r"argument --jobs: 'two'; expected a positive number of processes",
    ),
    Case(
        "cli_progression_evaluate_one_split",
        inputs,
        cli("progression", "evaluate", F, L, "--out={tmp}/r", "--n-splits", "1"),
        r"--n-splits: 1; expected at least 2 cross-validation folds",
    ),
    Case(
        "cli_progression_evaluate_resamples_zero",
        inputs,
        cli("progression", "evaluate", F, L, "--out={tmp}/r", "--n-resamples", "0"),
        r"argument --n-resamples: '0'; expected a whole number >= 1",
    ),
    Case(
        "cli_progression_evaluate_out_is_a_file",
        inputs,
        cli("progression", "evaluate", F, L, "--out={tmp}/taken"),
        r"--out: .*taken is a file; expected a folder",
    ),
    Case(
        "cli_progression_predict_out_xlsx",
        inputs,
        cli("progression", "predict", F, "--model={tmp}/missing", "--out={tmp}/r.xlsx"),
        r"r.xlsx: unsupported table suffix '.xlsx'; expected .parquet or .csv",
    ),
    Case(
        "cli_progression_predict_out_is_a_folder",
        inputs,
        cli("progression", "predict", F, "--model={tmp}/model", "--out={tmp}/model"),
        r"model: is a folder; expected a .parquet or .csv file name",
    ),
    Case(
        "cli_progression_predict_out_unwritable",
        inputs,
        cli("progression", "predict", F, "--model={tmp}/model", "--out=" + ro("r.csv")),
        r"r.csv: cannot write in /proc",
    ),
    Case(
        "cli_progression_predict_model_missing",
        inputs,
        cli("progression", "predict", F, "--model={tmp}/missing", "--out={tmp}/r.csv"),
        r"missing: model folder not found",
    ),
    Case(
        "cli_progression_predict_model_is_a_table",
        inputs,
        cli("progression", "predict", F, "--model={tmp}/features.csv", "--out={tmp}/r.csv"),
        r"features.csv: model folder not found",
    ),
    Case(
        "cli_progression_score_out_txt",
        inputs,
        cli("progression", "score", "--risks={tmp}/features.csv", L, "--out={tmp}/s.txt"),
        r"s.txt: unsupported table suffix '.txt'",
    ),
    Case(
        "cli_progression_explain_out_is_a_file",
        inputs,
        cli("progression", "explain", F, "--model={tmp}/model", "--out={tmp}/taken"),
        r"--out: .*taken is a file; expected a folder",
    ),
    Case(
        "cli_progression_explain_top_k_zero",
        inputs,
        cli("progression", "explain", F, "--model={tmp}/model", "--out={tmp}/e", "--top-k", "0"),
        r"argument --top-k: '0'; expected a whole number >= 1",
    ),
    Case(
        "cli_synth_jobs_zero",
        inputs,
        cli("synth", "--preset", "tiny", "--out={tmp}/c", "--jobs", "0"),
        r"--jobs: 0; expected a positive number of processes or -1",
    ),
    Case(
        "cli_synth_out_is_a_file",
        inputs,
        cli("synth", "--preset", "tiny", "--out={tmp}/taken"),
        r"--out: .*taken is a file; expected a folder",
    ),
    Case(
        "cli_synth_out_unwritable",
        inputs,
        cli("synth", "--preset", "tiny", "--out=" + ro("c")),
        r"--out: /proc/oa_kit_no_such_dir/c: cannot write",
    ),
    Case(
        "cli_synth_zero_participants",
        inputs,
        cli("synth", "--out={tmp}/c", "--n-participants", "0"),
        r"n_participants: 0 is not a positive integer; expected",
    ),
    Case(
        "cli_synth_unknown_preset",
        inputs,
        cli("synth", "--preset", "huge", "--out={tmp}/c"),
        r"unknown preset 'huge'; expected one of",
    ),
    Case(
        "cli_synth_negative_seed",
        inputs,
        cli("synth", "--out={tmp}/c", "--seed=-3"),
        r"--seed: -3 is negative; expected a non-negative integer",
    ),
    Case(
        "cli_labels_out_is_a_file",
        inputs,
        cli("labels", "--tables={tmp}", "--out={tmp}/taken"),
        r"--out: .*taken is a file; expected a folder",
    ),
    Case(
        "cli_labels_horizon_negative",
        inputs,
        cli("labels", "--tables={tmp}", "--out={tmp}/l", "--horizons=12,-24"),
        r"--horizons: '12,-24'; expected comma-separated positive months",
    ),
    Case(
        "cli_labels_tables_missing",
        inputs,
        cli("labels", "--tables={tmp}/none", "--out={tmp}/l"),
        r"--tables: .*none is not a folder; expected the folder with the OAI tables",
    ),
    Case(
        "cli_split_train_xlsx",
        inputs,
        cli("split", "{tmp}/labels.csv", "--train={tmp}/a.xlsx", "--test={tmp}/b.csv"),
        r"a.xlsx: unsupported table suffix '.xlsx'",
    ),
    Case(
        "cli_split_train_is_test",
        inputs,
        cli("split", "{tmp}/labels.csv", "--train={tmp}/a.csv", "--test={tmp}/a.csv"),
        r"--train/--test: .*a.csv and .*a.csv .*; expected two new file names",
    ),
    Case(
        "cli_split_overwrites_its_input",
        inputs,
        cli("split", "{tmp}/labels.csv", "--train={tmp}/labels.csv", "--test={tmp}/b.csv"),
        r"--train/--test: .*expected two new file names",
    ),
    Case(
        "cli_split_fraction_1_5",
        inputs,
        cli("split", "{tmp}/labels.csv", "--train={tmp}/a.csv", "--test={tmp}/b.csv", "--test-fraction", "1.5"),
        r"argument --test-fraction: '1.5'; expected a number "
        r"between 0 and 1",
    ),
    Case(
        "cli_demo_jobs_zero",
        inputs,
        cli("demo", "--out={tmp}/d", "--jobs", "0"),
        r"argument --jobs: '0'; expected a positive number of processes or -1",
    ),
    Case("cli_demo_out_is_a_file", inputs, cli("demo", "--out={tmp}/taken"), r"--out: .*taken is a file"),
    Case(
        "cli_demo_resamples_zero",
        inputs,
        cli("demo", "--out={tmp}/d", "--n-resamples", "0"),
        r"argument --n-resamples: '0'; expected a whole number >= 1",
    ),
    Case(
        "cli_demo_unknown_preset",
        inputs,
        cli("demo", "--out={tmp}/d", "--preset", "big"),
        r"--preset: 'big'; expected one of",
    ),
    Case(
        "cli_kl_predict_out_xlsx",
        inputs,
        cli("kl", "predict", "{tmp}/features.csv", "--out={tmp}/r.xlsx"),
        r"r.xlsx: unsupported table suffix '.xlsx'; expected .parquet or .csv",
    ),
    Case(
        "cli_kl_predict_out_is_a_folder",
        inputs,
        cli("kl", "predict", "{tmp}/features.csv", "--out={tmp}/model"),
        r"model: (is a folder|unsupported table suffix)",
    ),
    Case(
        "cli_kl_predict_tta_zero",
        inputs,
        cli("kl", "predict", "{tmp}/features.csv", "--out={tmp}/r.csv", "--tta", "0"),
        r"--tta: 0; expected test-time views >= 1",
    ),
    Case(
        "cli_kl_predict_device_gpu_word",
        inputs,
        cli("kl", "predict", "{tmp}/features.csv", "--out={tmp}/r.csv", "--device", "gpu"),
        r"device: 'gpu' is not a torch device; expected cpu, cuda",
    ),
    Case(
        "cli_kl_evaluate_out_txt",
        inputs,
        cli("kl", "evaluate", "{tmp}", "--out={tmp}/m.txt"),
        r"--out: .*m.txt: unsupported suffix '.txt'; expected a file name ending in .csv",
    ),
    Case(
        "cli_kl_features_out_xlsx",
        inputs,
        cli("kl", "features", "{tmp}", "--out-of-fold", "--out={tmp}/k.xlsx"),
        r"k.xlsx: unsupported table suffix '.xlsx'",
    ),
    Case(
        "cli_kl_features_one_fold",
        inputs,
        cli("kl", "features", "{tmp}", "--out-of-fold", "--out={tmp}/k.csv", "--folds", "1"),
        r"--folds: 1; expected at least 2 folds",
    ),
    Case(
        "cli_kl_train_epochs_zero",
        inputs,
        cli("kl", "train", "{tmp}", "--out={tmp}/run", "--epochs", "0"),
        r"argument --epochs: '0'; expected a whole number >= 1",
    ),
    Case(
        "cli_kl_train_lr_negative",
        inputs,
        cli("kl", "train", "{tmp}", "--out={tmp}/run", "--lr=-0.1"),
        r"argument --lr: '-0.1'; expected a number > 0",
    ),
    Case(
        "cli_kl_train_dropout_1",
        inputs,
        cli("kl", "train", "{tmp}", "--out={tmp}/run", "--dropout", "1"),
        r"--dropout: 1.0; expected a probability in \[0, 1\)",
    ),
    Case(
        "cli_kl_train_out_is_a_file",
        inputs,
        cli("kl", "train", "{tmp}", "--out={tmp}/taken"),
        r"--out: .*taken is a file; expected a folder",
    ),
    Case(
        "cli_kl_calibrate_alpha_1_5",
        inputs,
        cli("kl", "calibrate", "{tmp}/w.safetensors", "{tmp}", "--alpha", "1.5"),
        r"argument --alpha: '1.5'; expected a number between 0 and 1",
    ),
    Case(
        "cli_kl_calibrate_out_pt",
        inputs,
        cli("kl", "calibrate", "{tmp}/w.safetensors", "{tmp}", "--out={tmp}/w.pt"),
        r"--out: .*w.pt: unsupported suffix '.pt'; expected a file name ending in .safetensors",
    ),
    Case(
        "cli_kl_pack_out_zip",
        inputs,
        cli("kl", "pack", "{tmp}", "--out={tmp}/p.zip"),
        r"--out: .*p.zip: unsupported suffix '.zip'; expected a file name ending in .npz",
    ),
    Case(
        "cli_kl_pack_quality_0",
        inputs,
        cli("kl", "pack", "{tmp}", "--out={tmp}/p.npz", "--quality", "0"),
        r"--size/--quality: 160/0; expected 32-1024 pixels and JPEG quality 1-100",
    ),
]

CASES = MODEL_CASES + BOOTSTRAP_CASES + CLI_CASES


def test_part_two_is_named_uniquely_and_apart_from_part_one():
    names = [c.name for c in CASES]
    assert len(set(names)) == len(names) and not set(names) & {c.name for c in PART_ONE}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, tmp_path, monkeypatch)
