"""Fuzz every reader (#24): random bytes and mutated valid files; the only exception allowed is a one-line OAKitError.

Brief by default: ``OA_KIT_FUZZ_EXAMPLES`` examples per parser (default 50) with a fixed seed, so ``make test`` stays
fast and repeatable; raise it for a deeper run, e.g. ``OA_KIT_FUZZ_EXAMPLES=2000 pytest tests/bad_inputs/test_fuzz.py``,
and set ``OA_KIT_FUZZ_RANDOM=1`` to draw new examples each run (``--hypothesis-seed=N`` to replay).
"""

from __future__ import annotations

import csv
import functools
import gzip
import os
import tempfile
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oa_kit.errors import OAKitError

from . import files as F

EXAMPLES = int(os.environ.get("OA_KIT_FUZZ_EXAMPLES", "50"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("OA_KIT_FUZZ_RANDOM", "") == "",  # set it (and --hypothesis-seed) to explore
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Cell values that broke readers before #24 (text, codes, huge, negative, non-UTF-8, separators, quotes, formulas).
TOKENS = [
    "",
    " ",
    "abc",
    "-1",
    "-5000",
    "1e308",
    "1e-300",
    "nan",
    "inf",
    ".Z",
    ".A",
    ".P",
    ".T",
    ".",
    "0",
    "2.5",
    "99999999",
    "1: Yes",
    '"',
    "'",
    "|",
    ",",
    "\t",
    "=cmd",
    "\xe9",
    "\x00",
    "9000001",
    "\U0001f600",
]


@functools.cache
def valid(kind: str) -> bytes:
    """Bytes of one small valid file of ``kind`` (built once)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        makers: dict[str, Callable[[], Path]] = {
            "nii": lambda: F.nifti(tmp / "v.nii"),
            "nii.gz": lambda: F.nifti(tmp / "v.nii.gz"),
            "mhd": lambda: F.mhd(tmp),
            "dcm": lambda: F.dicom(tmp / "v.dcm"),
            "mr.dcm": lambda: F.mr_slice(tmp / "v.dcm", 0),
            "png": lambda: F.png(tmp / "v.png"),
            "png16": lambda: F.png(tmp / "v.png", (np.arange(64 * 48) * 13).astype(np.uint16).reshape(64, 48)),
            "palette.png": lambda: F.png(tmp / "v.png", mode="P"),
            "jpg": lambda: _jpeg(tmp / "v.jpg"),
            "npy": lambda: _npy(tmp / "v.npy"),
            "h5": lambda: F.h5(tmp / "v.h5", echo1=F.volume(), echo2=F.volume()),
        }
        return makers[kind]().read_bytes()


def _jpeg(path: Path) -> Path:
    from PIL import Image

    Image.fromarray((np.arange(64 * 48) % 256).astype(np.uint8).reshape(64, 48)).save(path, quality=90)
    return path


def _npy(path: Path) -> Path:
    np.save(path, F.volume((20, 32, 32), np.uint8))
    return path


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """``base`` with a few bytes overwritten, a run inserted or deleted, and maybe truncated."""
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 6))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()) and data:
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(max_size=32))
    if draw(st.booleans()) and data:
        at = draw(st.integers(0, len(data) - 1))
        del data[at : at + draw(st.integers(1, 64))]
    if draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@st.composite
def mutated_table(draw, text: str) -> bytes:
    """An OAI/MOST/CSV table with some cells replaced by hostile tokens, rows duplicated or dropped."""
    lines = text.splitlines()
    sep = "|" if "|" in lines[0] else ","
    rows = [line.split(sep) for line in lines]
    for _ in range(draw(st.integers(1, 4))):
        r = draw(st.integers(0, len(rows) - 1))
        c = draw(st.integers(0, len(rows[r]) - 1))
        rows[r][c] = draw(st.sampled_from(TOKENS) | st.text(max_size=6))
    if draw(st.booleans()):
        rows.append(list(rows[draw(st.integers(1, len(rows) - 1))]))
    if draw(st.booleans()) and len(rows) > 2:
        del rows[draw(st.integers(1, len(rows) - 1))]
    body = "\n".join(sep.join(row) for row in rows) + draw(st.sampled_from(["\n", "", "\r\n", "\n\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16"]))
    return body.encode(encoding, errors="replace")


def only_oakit_error(call: Callable[[], object]) -> None:
    """Run ``call``: returning is fine, a one-line OAKitError is fine, anything else fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()
        except OAKitError as exc:
            assert "\n" not in str(exc), str(exc)


def _in_tmp(name: str, data: bytes, read: Callable[[Path], object], extra: dict[str, bytes] | None = None) -> None:
    """Write ``data`` as ``name`` (plus ``extra`` files) in a fresh folder and read it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        for other, content in (extra or {}).items():
            (Path(tmp) / other).write_bytes(content)
        only_oakit_error(lambda: read(path))


# ------------------------------------------------------------------------------------------------------------ MRI
@FUZZ
@given(st.one_of(st.binary(max_size=600), mutated(valid("nii"))))
def test_fuzz_nifti(data):
    from oa_kit.io.mri import read_nifti

    _in_tmp("f.nii", data, read_nifti)


@FUZZ
@given(st.one_of(mutated(valid("nii.gz")), mutated(valid("nii")).map(lambda b: gzip.compress(b, mtime=0))))
def test_fuzz_nifti_gz(data):
    from oa_kit.io.mri import read_nifti

    _in_tmp("f.nii.gz", data, read_nifti)


@FUZZ
@given(mutated(valid("mhd")), st.binary(max_size=8), st.booleans())
def test_fuzz_mhd(header, noise, compressed):
    from oa_kit.io.mri import read_mhd

    raw = F.volume(F.SHAPE, np.uint16).transpose(2, 1, 0).astype("<u2").tobytes()
    name = "scan.zraw" if compressed else "scan.raw"
    header = header.replace(b"scan.raw", name.encode())
    header = header.replace(b"CompressedData = False", f"CompressedData = {compressed}".encode())
    data = (zlib.compress(raw) if compressed else raw) + noise
    _in_tmp("scan.mhd", header, read_mhd, {name: data})


@FUZZ
@given(mutated(valid("mr.dcm")), st.integers(0, 9))
def test_fuzz_dicom_series(slice_bytes, k):
    from oa_kit.io.mri import read_dicom_series

    with tempfile.TemporaryDirectory() as tmp:
        folder = F.mr_series(Path(tmp) / "series")
        (folder / f"IM{k:04d}.dcm").write_bytes(slice_bytes)
        only_oakit_error(lambda: read_dicom_series(folder))


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(valid("npy"))))
def test_fuzz_mrnet(data):
    from oa_kit.io.mri import read_mrnet_case

    _in_tmp("0001.npy", data, read_mrnet_case)


@FUZZ
@given(mutated(valid("h5")))
def test_fuzz_hdf5(data):
    from oa_kit.io.mri import read_skmtea_h5

    _in_tmp("scan.h5", data, read_skmtea_h5)


# ---------------------------------------------------------------------------------------------------- radiographs
@FUZZ
@given(
    st.one_of(
        st.binary(max_size=400),
        mutated(valid("dcm")),
        mutated(valid("png")),
        mutated(valid("png16")),
        mutated(valid("palette.png")),
        mutated(valid("jpg")),
    )
)
def test_fuzz_radiograph(data):
    from oa_kit.io.radiograph import read_radiograph

    _in_tmp("film", data, read_radiograph)


@FUZZ
@given(st.one_of(st.binary(max_size=400), mutated(valid("png")), mutated(valid("palette.png")), mutated(valid("jpg"))))
def test_fuzz_read_gray(data):
    from oa_kit.models.kl.data import read_gray

    _in_tmp("knee.png", data, read_gray)


# --------------------------------------------------------------------------------------------------------- tables
@FUZZ
@given(st.data(), st.sampled_from(sorted(F.OAI_TABLES)))
def test_fuzz_oai_tables(data, name):
    from oa_kit.cohort.tables import load_tables

    bad = data.draw(st.one_of(mutated_table(F.OAI_TABLES[name]), st.binary(max_size=200)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = F.tables(Path(tmp) / "OAI", F.OAI_TABLES)
        (folder / name).write_bytes(bad)
        only_oakit_error(lambda: load_tables(folder, "oai"))  # all four OAI readers, then the cohort checks


@FUZZ
@given(st.data(), st.sampled_from(sorted(F.MOST_TABLES)))
def test_fuzz_most_tables(data, name):
    from oa_kit.cohort.tables import load_tables

    bad = data.draw(st.one_of(mutated_table(F.MOST_TABLES[name]), st.binary(max_size=200)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = F.tables(Path(tmp) / "MOST", F.MOST_TABLES)
        (folder / name).write_bytes(bad)
        only_oakit_error(lambda: load_tables(folder, "most"))


@FUZZ
@given(st.one_of(mutated_table(F.CHEN_MANIFEST), st.binary(max_size=200)))
def test_fuzz_chen_manifest(data):
    from oa_kit.io.chen import read_chen

    with tempfile.TemporaryDirectory() as tmp:
        root = F.chen(Path(tmp), "")
        (root / "manifest.csv").write_bytes(data)
        only_oakit_error(lambda: read_chen(root, verify=True))


@FUZZ
@given(st.lists(st.sampled_from(TOKENS) | st.text(max_size=8), min_size=1, max_size=12))
def test_fuzz_csv_round_trip(cells):
    """Whatever text the cells hold, write_csv escapes and read_csv gives it back (or one clean error)."""
    import pandas as pd

    from oa_kit.io.tables import read_csv, write_csv

    cells = [c.replace("\x00", "") for c in cells]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_csv(pd.DataFrame({"participant_id": cells}), Path(tmp) / "t.csv")
        with open(path, encoding="utf-8", newline="") as handle:
            for row in list(csv.reader(handle))[1:]:
                assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row
        back = read_csv(path, dtype=str, keep_default_na=False)["participant_id"].tolist()
        expected = [c for c in cells]
        if all(c.strip(" \t\r\n") == c and "\r" not in c for c in cells):
            assert back == expected


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_read_csv(data):
    from oa_kit.io.tables import read_csv

    _in_tmp("t.csv", data, read_csv)


def test_examples_setting_is_read_from_the_environment():
    assert EXAMPLES == int(os.environ.get("OA_KIT_FUZZ_EXAMPLES", "50")) and EXAMPLES > 0


pytestmark = pytest.mark.filterwarnings("ignore")
