"""Catalogue of bad inputs (#24): each case writes one malformed file, calls one reader, and expects ONE clean line
``OAKitError("<file or field>[, line N][, column C]: <what was wrong>; expected <what>")`` or a correct result.

A case is (name, maker writing the bad input under ``tmp_path`` and returning what the reader gets, entry point,
expected error regex, or a check of the result for the cases that must read correctly). Entry points are resolved
when called, so ``python tests/bad_inputs/test_catalogue.py`` can also run the table against another checkout.
"""

from __future__ import annotations

import functools
import importlib
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from oa_kit.errors import OAKitError

from . import files as F


@dataclass(frozen=True)
class Case:
    """One bad input: ``make(tmp_path)`` → argument of ``call``; ``error`` regex, or ``check(result)`` True."""

    name: str
    make: Callable[[Path], object]
    call: Callable[[object], object]
    error: str | None = None
    check: Callable[[object], bool] | None = None
    env: dict[str, str] = field(default_factory=dict)


def entry(target: str, **kwargs) -> Callable[[object], object]:
    """``"module:function"`` called with the case's input (imported at call time)."""
    module, name = target.split(":")

    def run(arg):
        return getattr(importlib.import_module(module), name)(arg, **kwargs)

    run.__name__ = name
    run.target = target  # named in docs/bad-inputs.md (scripts/bad_inputs_table.py)
    return run


def writer(name: str, text: str | bytes) -> Callable[[Path], Path]:
    """Maker writing ``text`` to ``tmp_path / name``."""

    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    return make


def oai_set(**changes: str | bytes) -> Callable[[Path], Path]:
    """Maker of the valid OAI table set with some files replaced (``name_txt=`` → ``name.txt``)."""

    def make(tmp: Path) -> Path:
        folder = F.tables(tmp / "OAI", F.OAI_TABLES)
        for key, text in changes.items():
            name = key.replace("_txt", ".txt").replace("_csv", ".csv").replace("_sas7bdat", ".sas7bdat")
            (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode())
        return folder

    return make


def most_set(**changes: str) -> Callable[[Path], Path]:
    """Maker of the valid MOST table set with some files replaced."""

    def make(tmp: Path) -> Path:
        return F.tables(tmp / "MOST", F.MOST_TABLES, **{k.replace("_txt", ".txt"): v for k, v in changes.items()})

    return make


def edit(text: str, old: str, new: str) -> str:
    """``text`` with exactly one ``old`` replaced."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


OAI, MOST = F.OAI_TABLES, F.MOST_TABLES
KXR, CLI, OUT, ENR, JSW = (
    OAI["kxr_sq_bu00.txt"],
    OAI["allclinical00.txt"],
    OAI["outcomes99.txt"],
    OAI["enrollees.txt"],
    OAI["kxr_qjsw_duryea00.txt"],
)


# --------------------------------------------------------------------------------------------------------- makers
def nifti_tiny(tmp: Path) -> Path:
    return F.nifti(tmp / "tiny.nii.gz", (4, 4, 4))


def nifti_5d(tmp: Path) -> Path:
    return F.nifti(tmp / "five.nii", (8, 8, 8, 2, 2))


def nifti_truncated(tmp: Path) -> Path:
    good = F.nifti(tmp / "good.nii.gz")
    bad = tmp / "cut.nii.gz"
    bad.write_bytes(good.read_bytes()[:-200])
    return bad


def nifti_nan_affine(tmp: Path) -> Path:
    path = F.nifti(tmp / "nan.nii")
    data = bytearray(path.read_bytes())
    struct.pack_into("<hh", data, 252, 0, 1)  # qform_code 0, sform_code 1: the affine comes from srow_*
    struct.pack_into("<4f", data, 280, float("nan"), 0.0, 0.0, 0.0)  # srow_x
    path.write_bytes(bytes(data))
    return path


@functools.lru_cache(maxsize=1)
def _gib_of_zeros_deflated() -> bytes:
    """A valid zlib stream of 1 GiB of zero bytes (about 1 MB): after a full flush every 1 MiB block of zeros
    deflates to the same bytes, so the stream is assembled instead of compressing 1 GiB."""
    packer, chunk = zlib.compressobj(9), bytes(1 << 20)
    first = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    adler = (((1 << 30) % 65521) << 16) | 1  # Adler-32 of 2^30 zero bytes
    return first + block * 1023 + b"\x03\x00" + struct.pack(">I", adler)  # empty final block, checksum


def zraw_bomb(tmp: Path) -> Path:
    path = F.mhd(tmp, compressed=True)
    (tmp / "scan.zraw").write_bytes(_gib_of_zeros_deflated())
    return path


def zraw_corrupt(tmp: Path) -> Path:
    path = F.mhd(tmp, compressed=True)
    (tmp / "scan.zraw").write_bytes(b"\x78\x9c" + bytes(range(256)) * 4)
    return path


def raw_truncated(tmp: Path) -> Path:
    path = F.mhd(tmp)
    raw = tmp / "scan.raw"
    raw.write_bytes(raw.read_bytes()[:-100])
    return path


def raw_too_long(tmp: Path) -> Path:
    path = F.mhd(tmp)
    with open(tmp / "scan.raw", "ab") as handle:
        handle.write(b"\x00" * 64)
    return path


def series_with(tmp: Path, k: int, **attrs) -> Path:
    """A valid 10-slice MR series with slice ``k`` changed (attribute → value, ``None`` deletes)."""
    import pydicom

    folder = F.mr_series(tmp / "series")
    victim = folder / f"IM{k:04d}.dcm"
    ds = pydicom.dcmread(victim)
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataelem import DataElement

    for key, value in attrs.items():
        if value is None:
            delattr(ds, key)
        else:  # as text (VR LO), the way a broken writer stores numbers that are not numbers
            ds[key] = DataElement(tag_for_keyword(key), "LO", value)
    ds.save_as(victim)
    return folder


def series_corrupt_vr(tmp: Path) -> Path:
    """A valid series whose slice 4 has one byte of its SeriesInstanceUID element's VR overwritten (explicit VR)."""
    folder = F.mr_series(tmp / "series")
    victim = folder / "IM0004.dcm"
    data = bytearray(victim.read_bytes())
    at = data.index(b"\x20\x00\x0e\x00UI")  # tag (0020,000E) little endian, then its VR
    data[at + 4 : at + 6] = b"U\x00"
    victim.write_bytes(bytes(data))
    return folder


def series_huge_rows(tmp: Path) -> Path:
    folder = F.mr_series(tmp / "series")
    import pydicom

    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.Rows, ds.Columns = 60000, 60000
        ds.save_as(path)
    return folder


def mrnet_header(tmp: Path, shape: tuple[int, ...], descr: str = "|u1") -> Path:
    path = tmp / "0001.npy"
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": descr, "fortran_order": False, "shape": shape})
        handle.write(b"\x00" * 64)
    return path


def h5_group(tmp: Path) -> Path:
    import h5py

    path = tmp / "scan.h5"
    with h5py.File(path, "w") as f:
        f.create_group("echo1")
    return path


def h5_huge(tmp: Path) -> Path:
    import h5py

    path = tmp / "scan.h5"
    with h5py.File(path, "w") as f:  # chunked and never written: a few KB on disk, 17 GiB if read
        f.create_dataset("echo1", shape=(2048, 2048, 2048), dtype="u2", chunks=(64, 64, 64))
        f.create_dataset("echo2", shape=(2048, 2048, 2048), dtype="u2", chunks=(64, 64, 64))
    return path


def batch(tmp: Path) -> list[Path]:
    """Three scans, the middle one empty."""
    (tmp / "bad.nii").write_bytes(b"")
    return [F.nifti(tmp / "a.nii.gz"), tmp / "bad.nii", F.nifti(tmp / "c.nii.gz")]


def read_batch(paths: list[Path]) -> dict[str, object]:
    """What a batch caller does: catch OAKitError per scan, keep going."""
    from oa_kit.io.mri import read_nifti

    out: dict[str, object] = {}
    for path in paths:
        try:
            out[path.name] = read_nifti(path).shape
        except OAKitError as exc:
            out[path.name] = str(exc)
    return out


def palette_png(tmp: Path) -> tuple[Path, np.ndarray]:
    from PIL import Image

    grey = (np.arange(64 * 48) % 200 + 20).astype(np.uint8).reshape(64, 48)
    image = Image.fromarray(grey).convert("P")
    image.putpalette([v for i in range(256) for v in (255 - i,) * 3])  # inverted grey palette: index != grey
    image.save(tmp / "palette.png")
    return tmp / "palette.png"


def palette_luminance(path: Path) -> np.ndarray:
    from PIL import Image

    return 255 - np.asarray(Image.open(path)).astype(np.int64)


def colour_png(tmp: Path) -> Path:
    rgb = np.zeros((64, 48, 3), np.uint8)
    rgb[..., 0] = 200
    return F.png(tmp / "colour.png", rgb)


def truncated_png(tmp: Path) -> Path:
    good = F.png(tmp / "good.png", (np.random.default_rng(0).integers(0, 255, (64, 48))).astype(np.uint8))
    bad = tmp / "cut.png"
    bad.write_bytes(good.read_bytes()[:-300])
    return bad


def crc_png(tmp: Path) -> Path:
    data = bytearray(F.png(tmp / "good.png").read_bytes())
    data[29] ^= 0xFF  # inside the IHDR CRC
    (tmp / "crc.png").write_bytes(bytes(data))
    return tmp / "crc.png"


def truncated_jpeg(tmp: Path) -> Path:
    from PIL import Image

    Image.fromarray((np.random.default_rng(1).integers(0, 255, (64, 48))).astype(np.uint8)).save(tmp / "g.jpg")
    (tmp / "cut.jpg").write_bytes((tmp / "g.jpg").read_bytes()[:200])
    return tmp / "cut.jpg"


def dicom_with(tmp: Path, **attrs) -> Path:
    ds = F.dx_dataset()
    for key, value in attrs.items():
        setattr(ds, key, value)
    return F.dicom(tmp / "film.dcm", ds)


def dicom_corrupt(tmp: Path) -> Path:
    (tmp / "film.dcm").write_bytes(b"\x00" * 128 + b"DICM" + bytes(range(256)) * 3)
    return tmp / "film.dcm"


def dicom_truncated(tmp: Path) -> Path:
    good = F.dicom(tmp / "good.dcm")
    (tmp / "film.dcm").write_bytes(good.read_bytes()[:-1000])
    return tmp / "film.dcm"


def dicom_bad_jpeg(tmp: Path) -> Path:
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    ds = F.dx_dataset()
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0" + bytes(range(200)) + b"\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return F.dicom(tmp / "film.dcm", ds)


def dicom_bad_frames(tmp: Path) -> Path:
    path = F.dicom(tmp / "film.dcm")
    data = path.read_bytes()
    import pydicom

    ds = pydicom.dcmread(path)
    ds.add_new(0x00280008, "IS", "1")
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    marker = b"\x28\x00\x08\x00IS\x02\x001 "
    assert marker in data
    path.write_bytes(data.replace(marker, b"\x28\x00\x08\x00IS\x02\x00ab"))
    return path


def identical_duplicate_kxr(tmp: Path) -> Path:
    line = "9000002|2: Left|15|4|3|1|3|2|3|2\n"
    return oai_set(kxr_sq_bu00_txt=KXR + line)(tmp)


def two_files(tmp: Path) -> Path:
    folder = oai_set()(tmp)
    (folder / "KXR_SQ_BU00.csv").write_text(KXR.replace("|", ","))
    return folder


def clinical_of(folder: Path):
    from oa_kit.io.oai import read_clinical_baseline

    return read_clinical_baseline(folder)


def statuses_kept(readings) -> bool:
    knee = readings.set_index(["participant_id", "side"])
    return (
        knee.loc[("9000002", "R"), "kl_status"] == "replacement"
        and knee.loc[("9000001", "L"), "kl_status"] == "ok"  # .T on READPRJ 15, project 37 used
        and int(knee.loc[("9000001", "L"), "readprj"]) == 37
    )


def chen_latin1(tmp: Path) -> Path:
    F.chen(tmp, "")
    (tmp / "manifest.csv").write_bytes(F.CHEN_MANIFEST.encode() + b"val,1,\xe9.png,1,R\n")
    return tmp


def hostile_ids(tmp: Path) -> Path:
    import pandas as pd

    from oa_kit.io.tables import write_csv

    table = pd.DataFrame({"participant_id": ["=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)", "9000001"]})
    return write_csv(table, tmp / "ids.csv")


def escaped(path: Path) -> bool:
    from oa_kit.io.tables import read_csv

    lines = path.read_text().splitlines()[1:]
    back = read_csv(path, dtype=str)["participant_id"].tolist()
    return all(not line.startswith(("=", "+", "-", "@")) for line in lines) and back[0].startswith("=cmd")


NIFTI, MHD = "oa_kit.io.mri:read_nifti", "oa_kit.io.mri:read_mhd"
RADIO, GRAY = "oa_kit.io.radiograph:read_radiograph", "oa_kit.models.kl.data:read_gray"
KL, JSWR = "oa_kit.io.oai:read_kl_readings", "oa_kit.io.oai:read_jsw"
CLIN, OUTC = "oa_kit.io.oai:read_clinical_baseline", "oa_kit.io.oai:read_outcomes"
TABLE, CHEN = "oa_kit.io.oai:read_oai_table", "oa_kit.io.chen:read_chen"
M_READ, M_CLIN, M_OUT = (
    "oa_kit.io.most:read_most_readings",
    "oa_kit.io.most:read_most_clinical_baseline",
    "oa_kit.io.most:read_most_outcomes",
)
LOAD = "oa_kit.cohort.tables:load_tables"

CASES = [
    # ------------------------------------------------------------------------------------------- MRI (mri.py)
    Case("nifti_empty", writer("empty.nii", b""), entry(NIFTI), r"empty.nii: file is empty"),
    Case("niigz_empty", writer("empty.nii.gz", b""), entry(NIFTI), r"empty.nii.gz: file is empty"),
    Case("nifti_4x4x4", nifti_tiny, entry(NIFTI), r"tiny.nii.gz: volume is 4 x 4 x 4 voxels.*at least 8"),
    Case(
        "nifti_header_900_cubed",
        lambda t: F.nifti_header_claiming(t / "huge.nii", (900, 900, 900)),
        entry(NIFTI),
        r"huge.nii: 729,000,000 voxels exceeds the limit of 268,435,456.*OA_KIT_MAX_VOXELS",
    ),
    Case(
        "nifti_header_zero_axis",
        lambda t: F.nifti_header_claiming(t / "zero.nii", (16, 0, 16)),
        entry(NIFTI),
        r"zero.nii: .*(empty axis|cannot read)",
    ),
    Case("nifti_truncated", nifti_truncated, entry(NIFTI), r"cut.nii.gz: .*(cannot|truncated)"),
    Case("nifti_garbage", writer("junk.nii", b"NOT NIFTI" * 50), entry(NIFTI), r"junk.nii: cannot read as NIfTI"),
    Case("nifti_5d", nifti_5d, entry(NIFTI), r"five.nii: image is 5-D"),
    Case("nifti_nan_affine", nifti_nan_affine, entry(NIFTI), r"nan.nii: affine is not an invertible"),
    Case(
        "nifti_cap_from_env",
        lambda t: F.nifti(t / "ok.nii"),
        entry(NIFTI),
        r"ok.nii: 3,840 voxels exceeds the limit of 1,000",
        env={"OA_KIT_MAX_VOXELS": "1000"},
    ),
    Case(
        "nifti_bad_env_value",
        lambda t: F.nifti(t / "ok.nii"),
        entry(NIFTI),
        r"OA_KIT_MAX_VOXELS: 'lots'; expected a positive whole number",
        env={"OA_KIT_MAX_VOXELS": "lots"},
    ),
    Case(
        "mhd_dimsize_2_to_32",
        lambda t: F.mhd(t, DimSize="4294967296 4294967296 16"),
        entry(MHD),
        r"scan.mhd: .* voxels exceeds the limit",
    ),
    Case(
        "mhd_dimsize_negative",
        lambda t: F.mhd(t, DimSize="-16 20 12"),
        entry(MHD),
        r"scan.mhd: DimSize = '-16 20 12'; expected three positive whole numbers",
    ),
    Case(
        "mhd_dimsize_fraction",
        lambda t: F.mhd(t, DimSize="16.5 20 12"),
        entry(MHD),
        r"scan.mhd: DimSize .*positive whole numbers",
    ),
    Case("mhd_dimsize_text", lambda t: F.mhd(t, DimSize="a b c"), entry(MHD), r"scan.mhd: DimSize = 'a b c'"),
    Case("mhd_zraw_bomb_1gib", zraw_bomb, entry(MHD), r"scan.mhd: compressed data inflates beyond the 7680 bytes"),
    Case("mhd_zraw_corrupt", zraw_corrupt, entry(MHD), r"scan.mhd: compressed data is corrupt"),
    Case("mhd_raw_truncated", raw_truncated, entry(MHD), r"scan.mhd: data has 7580 bytes; expected 7680.*truncated"),
    Case("mhd_raw_too_long", raw_too_long, entry(MHD), r"scan.mhd: data has 7744 bytes; expected 7680"),
    Case(
        "mhd_datafile_absolute",
        lambda t: F.mhd(t, ElementDataFile="/etc/passwd"),
        entry(MHD),
        r"scan.mhd: ElementDataFile '/etc/passwd' points outside",
    ),
    Case(
        "mhd_datafile_dotdot",
        lambda t: F.mhd(t, ElementDataFile="../scan.raw"),
        entry(MHD),
        r"scan.mhd: ElementDataFile '../scan.raw' points outside",
    ),
    Case("mhd_headersize_text", lambda t: F.mhd(t, HeaderSize="x"), entry(MHD), r"scan.mhd: HeaderSize = 'x'"),
    Case(
        "mhd_spacing_zero",
        lambda t: F.mhd(t, ElementSpacing="0 0.5 0.7"),
        entry(MHD),
        r"scan.mhd: ElementSpacing = '0 0.5 0.7'; expected three positive",
    ),
    Case("mhd_empty", writer("scan.mhd", b""), entry(MHD), r"scan.mhd: NDims = missing"),
    Case("mhd_4x4x4", lambda t: F.mhd(t, dims=(4, 4, 4)), entry(MHD), r"scan.mhd: volume is 4 x 4 x 4 voxels"),
    Case(
        "dicom_series_iop_text",
        lambda t: series_with(t, 3, ImageOrientationPatient="a\\b\\c\\d\\e\\f"),
        entry("oa_kit.io.mri:read_dicom_series"),
        r"IM0003.dcm: ImageOrientationPatient missing or malformed",
    ),
    Case(
        "dicom_series_no_spacing",
        lambda t: series_with(t, 5, PixelSpacing=None),
        entry("oa_kit.io.mri:read_dicom_series"),
        r"IM0005.dcm: PixelSpacing missing or malformed",
    ),
    Case(
        "dicom_series_corrupt_vr",
        series_corrupt_vr,
        entry("oa_kit.io.mri:read_dicom_series"),
        r"IM0004.dcm: not a readable DICOM file .*; expected a DICOM MR slice",
    ),
    Case(
        "dicom_series_rows_60000",
        series_huge_rows,
        entry("oa_kit.io.mri:read_dicom_series"),
        r"series: .* voxels exceeds the limit",
    ),
    Case(
        "dicom_series_3_slices",
        lambda t: F.mr_series(t / "series", n=3),
        entry("oa_kit.io.mri:read_dicom_series"),
        r"series: volume is 16 x 20 x 3 voxels, too small",
    ),
    Case("h5_group_not_dataset", h5_group, entry("oa_kit.io.mri:read_skmtea_h5"), r"scan.h5: 'echo1' is a group"),
    Case(
        "h5_text_dataset",
        lambda t: F.h5(t / "scan.h5", echo1=np.array([b"abc"] * 8)),
        entry("oa_kit.io.mri:read_skmtea_h5"),
        r"scan.h5: 'echo1' is of type",
    ),
    Case(
        "h5_17_gib_dataset",
        h5_huge,
        entry("oa_kit.io.mri:read_skmtea_h5"),
        r"scan.h5: dataset 'echo1': 8,589,934,592 voxels exceeds the limit",
    ),
    Case(
        "mrnet_header_10000_slices",
        lambda t: mrnet_header(t, (10000, 256, 256)),
        entry("oa_kit.io.mri:read_mrnet_case"),
        r"0001.npy: 655,360,000 voxels exceeds the limit",
    ),
    Case(
        "mrnet_object_array",
        lambda t: mrnet_header(t, (20, 256, 256), "|O"),
        entry("oa_kit.io.mri:read_mrnet_case"),
        r"0001.npy: array type object",
    ),
    Case(
        "batch_with_one_empty_scan",
        batch,
        read_batch,
        check=lambda out: (
            out["a.nii.gz"] == F.SHAPE and out["c.nii.gz"] == F.SHAPE and "file is empty" in out["bad.nii"]
        ),
    ),
    # ---------------------------------------------------------------------------- radiographs and PNG/JPEG
    Case(
        "png_400_megapixel_bomb",
        lambda t: F.png_of_zeros(t / "bomb.png", 20000, 20000, with_data=False),
        entry(RADIO),
        r"bomb.png: image of 400,000,000 pixels exceeds the limit",
    ),
    Case(
        "png_400_megapixel_bomb_read_gray",
        lambda t: F.png_of_zeros(t / "bomb.png", 20000, 20000, with_data=False),
        entry(GRAY),
        r"bomb.png: image of 400,000,000 pixels exceeds the limit",
    ),
    Case(
        "png_168kb_144_megapixel",
        lambda t: F.png_of_zeros(t / "zeros.png", 12000, 12000),
        entry(RADIO),
        r"zeros.png: 144,000,000 pixels exceeds the limit of 67,108,864",
    ),
    Case(
        "png_168kb_144_megapixel_read_gray",
        lambda t: F.png_of_zeros(t / "zeros.png", 12000, 12000),
        entry(GRAY),
        r"zeros.png: 144,000,000 pixels exceeds the limit",
    ),
    Case(
        "palette_png_is_luminance_read_gray",
        palette_png,
        lambda p: (entry(GRAY)(p), palette_luminance(p)),
        check=lambda r: r[0].ndim == 2 and np.array_equal(r[0], r[1]),
    ),
    Case(
        "palette_png_is_luminance_radiograph",
        palette_png,
        lambda p: (entry(RADIO)(p).pixels, palette_luminance(p)),
        check=lambda r: np.array_equal(r[0], r[1]),
    ),
    Case(
        "grey_alpha_png_read_gray",
        lambda t: F.png(t / "la.png", mode="LA"),
        entry(GRAY),
        check=lambda a: a.shape == (64, 48) and a.dtype == np.uint8,
    ),
    Case("colour_png_read_gray", colour_png, entry(GRAY), r"colour.png: colour \(RGB\) image"),
    Case("png_empty", writer("empty.png", b""), entry(RADIO), r"empty.png: file is empty"),
    Case("png_empty_read_gray", writer("empty.png", b""), entry(GRAY), r"empty.png: file is empty"),
    Case("png_truncated", truncated_png, entry(RADIO), r"cut.png: corrupt or truncated PNG"),
    Case("png_truncated_read_gray", truncated_png, entry(GRAY), r"cut.png: corrupt or truncated PNG"),
    Case("png_bad_crc", crc_png, entry(RADIO), r"crc.png: (corrupt or truncated PNG|image format not recognised)"),
    Case("jpeg_truncated", truncated_jpeg, entry(RADIO), r"cut.jpg: corrupt or truncated JPEG"),
    Case("text_named_png", writer("notes.png", b"hello\n" * 30), entry(RADIO), r"notes.png: not a DICOM, PNG"),
    Case("text_read_gray", writer("notes.png", b"hello\n" * 30), entry(GRAY), r"notes.png: image format not"),
    Case("dicom_corrupt", dicom_corrupt, entry(RADIO), r"film.dcm: (corrupt|not a DICOM|DICOM has no)"),
    Case("dicom_truncated", dicom_truncated, entry(RADIO), r"film.dcm: pixel data cannot be decoded"),
    Case("dicom_jpeg_undecodable", dicom_bad_jpeg, entry(RADIO), r"film.dcm: .*cannot be decoded"),
    Case(
        "dicom_rows_60000",
        lambda t: dicom_with(t, Rows=60000, Columns=60000),
        entry(RADIO),
        r"film.dcm: 3,600,000,000 pixels exceeds the limit",
    ),
    Case("dicom_rows_zero", lambda t: dicom_with(t, Rows=0), entry(RADIO), r"film.dcm: Rows x Columns is 0 x 48"),
    Case("dicom_frames_text", dicom_bad_frames, entry(RADIO), r"film.dcm: NumberOfFrames = 'ab'"),
    # --------------------------------------------------------------------------------------- OAI tables
    Case("oai_empty_table", oai_set(kxr_sq_bu00_txt=""), entry(KL), r"kxr_sq_bu00.txt: file is empty"),
    Case("oai_blank_table", oai_set(kxr_sq_bu00_txt="\n \n"), entry(KL), r"kxr_sq_bu00.txt: file is empty"),
    Case("oai_empty_clinical", oai_set(allclinical00_txt=""), entry(CLIN), r"allclinical00.txt: file is empty"),
    Case(
        "oai_latin1_id",
        oai_set(kxr_sq_bu00_txt=KXR.encode().replace(b"9000002|2: Left", b"900000\xe9|2: Left")),
        entry(KL),
        r"kxr_sq_bu00.txt, line 6, column ID: byte 0xe9 is not UTF-8",
    ),
    Case(
        "oai_latin1_value",
        oai_set(allclinical00_txt=CLI.encode().replace(b"|70|", b"|7\xf60|")),
        entry(CLIN),
        r"allclinical00.txt, line 3, column V00AGE: byte 0xf6 is not UTF-8",
    ),
    Case(
        "oai_binary_garbage",
        oai_set(kxr_sq_bu00_txt=bytes(range(256)) * 4),
        entry(KL),
        r"kxr_sq_bu00.txt, line \d+, column .*: byte 0x.. is not UTF-8",
    ),
    Case(
        "oai_conflicting_duplicate_kl",
        oai_set(kxr_sq_bu00_txt=KXR + "9000002|2: Left|15|3|3|1|3|2|3|2\n"),
        entry(KL),
        r"kxr_sq_bu00.txt, line 7: reading \(ID, SIDE, READPRJ\) ID '9000002', SIDE 2, READPRJ 15 appears again "
        r"with different values \(first at line 6\)",
    ),
    Case(
        "oai_identical_duplicate_kl_dropped",
        identical_duplicate_kxr,
        entry(KL),
        check=lambda r: int(r.set_index(["participant_id", "side"]).loc[("9000002", "L"), "n_readings"]) == 1,
    ),
    Case("oai_txt_and_csv_of_one_table", two_files, entry(KL), r"OAI: two files for one table kxr_sq_bu00"),
    Case(
        "oai_age_abc",
        oai_set(allclinical00_txt=edit(CLI, "|61|", "|abc|")),
        entry(CLIN),
        r"allclinical00.txt, line 2, column V00AGE: value 'abc' is not a number",
    ),
    Case(
        "oai_age_150",
        oai_set(allclinical00_txt=edit(CLI, "|70|", "|150|")),
        entry(CLIN),
        r"allclinical00.txt, line 3, column V00AGE: age value 150 is out of range; expected 18-110",
    ),
    Case(
        "oai_age_5",
        oai_set(allclinical00_txt=edit(CLI, "|61|", "|5|")),
        entry(CLIN),
        r"allclinical00.txt, line 2, column V00AGE: age value 5 is out of range",
    ),
    Case(
        "oai_bmi_5",
        oai_set(allclinical00_txt=edit(CLI, "|27.5|", "|5|")),
        entry(CLIN),
        r"column P01BMI: BMI value 5 is out of range; expected 10-80",
    ),
    Case(
        "oai_bmi_95",
        oai_set(allclinical00_txt=edit(CLI, "|31.2|", "|95.5|")),
        entry(CLIN),
        r"line 3, column P01BMI: BMI value 95.5 is out of range",
    ),
    Case(
        "oai_womac_pain_25",
        oai_set(allclinical00_txt=edit(CLI, "|2|5|1|2|", "|25|5|1|2|")),
        entry(CLIN),
        r"column V00WOMKPL: WOMAC pain value 25 is out of range; expected 0-20",
    ),
    Case(
        "oai_sex_3",
        oai_set(enrollees_txt=edit(ENR, "1: Male", "3")),
        entry(CLIN),
        r"enrollees.txt, line 3, column P02SEX: sex code",
    ),
    Case(
        "oai_duplicate_participant",
        oai_set(enrollees_txt=ENR + "9000001|2.2|1|B|1\n"),
        entry(CLIN),
        r"enrollees.txt, line 4: participant ID '9000001' appears again",
    ),
    Case(
        "oai_kl_7",
        oai_set(kxr_sq_bu00_txt=edit(KXR, "|15|2|1|0|1|0|2|0", "|15|7|1|0|1|0|2|0")),
        entry(KL),
        r"kxr_sq_bu00.txt, line 2, column V00XRKL: KL value 7 is out of range; expected 0-4",
    ),
    Case(
        "oai_kl_2_5",
        oai_set(kxr_sq_bu00_txt=edit(KXR, "|15|2|1|0|1|0|2|0", "|15|2.5|1|0|1|0|2|0")),
        entry(KL),
        r"kxr_sq_bu00.txt, line 2: column V00XRKL: KL value 2.5; expected 0-4",
    ),
    Case(
        "oai_kl_abc",
        oai_set(kxr_sq_bu00_txt=edit(KXR, "|15|2|1|0|1|0|2|0", "|15|two|1|0|1|0|2|0")),
        entry(KL),
        r"kxr_sq_bu00.txt, line 2, column V00XRKL: value 'two' is not a number",
    ),
    Case(
        "oai_jsn_5",
        oai_set(kxr_sq_bu00_txt=edit(KXR, "|15|2|1|0|1|0|2|0", "|15|2|5|0|1|0|2|0")),
        entry(KL),
        r"column V00XRJSM: JSN grade value 5 is out of range; expected 0-3",
    ),
    Case(
        "oai_readprj_abc",
        oai_set(kxr_sq_bu00_txt=edit(KXR, "9000001|1: Right|15|", "9000001|1: Right|x15|")),
        entry(KL),
        r"line 2, column READPRJ: value 'x15' is not a number",
    ),
    Case(
        "oai_side_3",
        oai_set(kxr_sq_bu00_txt=edit(KXR, "9000001|1: Right|", "9000001|3|")),
        entry(KL),
        r"kxr_sq_bu00.txt, line 2: column SIDE: value 3; expected 1 \(right\) or 2 \(left\)",
    ),
    Case(
        "oai_unknown_special_code",
        oai_set(kxr_sq_bu00_txt=edit(KXR, "|15|2|1|0|1|0|2|0", "|15|.Z|1|0|1|0|2|0")),
        entry(KL),
        r"kxr_sq_bu00.txt: column V00XRKL: unknown special code '.Z'",
    ),
    Case(
        "oai_extra_field",
        oai_set(kxr_sq_bu00_txt=KXR + "9000003|1|15|1|0|0|0|0|0|0|9\n"),
        entry(KL),
        r"kxr_sq_bu00.txt, line 7: 11 fields for 10 columns",
    ),
    Case(
        "oai_special_codes_kept",
        oai_set(),
        entry(KL),
        check=statuses_kept,
    ),
    Case(
        "oai_jsw_negative",
        oai_set(kxr_qjsw_duryea00_txt=edit(JSW, "|4.1|", "|-4.1|")),
        entry(JSWR),
        r"kxr_qjsw_duryea00.txt, line 2, column V00MCMJSW: JSW \(mm\) value -4.1 is out of range",
    ),
    Case(
        "oai_jsw_conflicting_duplicate",
        oai_set(kxr_qjsw_duryea00_txt=JSW + "9000002|2|15|3.1|3.2|5.5|9\n"),
        entry(JSWR),
        r"kxr_qjsw_duryea00.txt, line 5: measurement .* appears again with different values \(first at line 4\)",
    ),
    Case(
        "oai_replacement_days_minus_5000",
        oai_set(outcomes99_txt=edit(OUT, "||400|", "||-5000|")),
        entry(OUTC),
        r"outcomes99.txt, line 3, column V99ELKDAYS: days from enrolment value -5000 is out of range",
    ),
    Case(
        "oai_replacement_days_abc",
        oai_set(outcomes99_txt=edit(OUT, "||400|", "||abc|")),
        entry(OUTC),
        r"outcomes99.txt, line 3, column V99ELKDAYS: value 'abc' is not a number",
    ),
    Case(
        "oai_replacement_days_absurd",
        oai_set(outcomes99_txt=edit(OUT, "||400|", "||99999999|")),
        entry(OUTC),
        r"column V99ELKDAYS: days from enrolment value 99999999 is out of range; expected 0-36525",
    ),
    Case(
        "oai_header_only_kl",
        oai_set(kxr_sq_bu00_txt=KXR.splitlines()[0] + "\n"),
        entry(KL),
        r"OAI: no KL reading in kxr_sq_bu00.txt \(header only\?\)",
    ),
    Case(
        "oai_death_visit_13",
        oai_set(outcomes99_txt=edit(OUT, "|1|3\n", "|1|13\n")),
        entry(OUTC),
        r"outcomes99.txt, line 3, column V99EDDVSPR: visit 13; expected an OAI visit number 0-11",
    ),
    Case(
        "oai_outcomes_duplicate_participant",
        oai_set(outcomes99_txt=OUT + "9000002|0|0|||||0|\n"),
        entry(OUTC),
        r"outcomes99.txt, line 4: participant ID '9000002' appears again",
    ),
    Case(
        "oai_sas_garbage",
        oai_set(outcomes99_sas7bdat=b"not a SAS file" * 20),
        lambda folder: entry(TABLE)(folder / "outcomes99.sas7bdat"),
        r"outcomes99.sas7bdat: cannot read SAS file",
    ),
    Case(
        "oai_load_tables_latin1",
        oai_set(enrollees_txt=ENR.encode().replace(b"|A|", b"|\xc4|")),
        entry(LOAD),
        r"enrollees.txt, line 2, column V00SITE: byte 0xc4 is not UTF-8",
    ),
    # ------------------------------------------------------------------------------------------- MOST tables
    Case("most_empty_xray", most_set(mostv01235xray_txt=""), entry(M_READ), r"mostv01235xray.txt: file is empty"),
    Case(
        "most_kl_abc",
        most_set(mostv01235xray_txt=edit(MOST["mostv01235xray.txt"], "MB00002|2|", "MB00002|x|")),
        entry(M_READ),
        r"mostv01235xray.txt, line 3, column V0XRKL: value 'x' is not a number",
    ),
    Case(
        "most_kl_6",
        most_set(mostv01235xray_txt=edit(MOST["mostv01235xray.txt"], "MB00002|2|", "MB00002|6|")),
        entry(M_READ),
        r"mostv01235xray.txt, line 3, column V0XRKL: KL value 6; expected 0-4, 1.9, 8 or 9",
    ),
    Case(
        "most_conflicting_duplicate",
        most_set(mostv01235xray_txt=MOST["mostv01235xray.txt"] + "MB00001|2|2|0|2|2\n"),
        entry(M_READ),
        r"mostv01235xray.txt, line 5: participant MOSTID 'MB00001' appears again with different values",
    ),
    Case(
        "most_header_only_xray",
        most_set(mostv01235xray_txt=MOST["mostv01235xray.txt"].splitlines()[0] + "\n"),
        entry(M_READ),
        r"mostv01235xray.txt: no participant rows \(header only\?\)",
    ),
    Case(
        "most_header_only_enroll",
        most_set(mostv0enroll_txt=MOST["mostv0enroll.txt"].splitlines()[0] + "\n"),
        entry(M_CLIN),
        r"mostv0enroll.txt: no participant rows",
    ),
    Case(
        "most_age_150",
        most_set(mostv0enroll_txt=edit(MOST["mostv0enroll.txt"], "|58|", "|150|")),
        entry(M_CLIN),
        r"mostv0enroll.txt, line 2, column AGE: age value 150 is out of range",
    ),
    Case(
        "most_bmi_abc",
        most_set(mostv0enroll_txt=edit(MOST["mostv0enroll.txt"], "|33.0|", "|big|")),
        entry(M_CLIN),
        r"mostv0enroll.txt, line 3, column V0BMI: value 'big' is not a number",
    ),
    Case(
        "most_outcome_index_abc",
        most_set(mostoutcomes_txt=edit(MOST["mostoutcomes.txt"], "MB00003|2||", "MB00003|two||")),
        entry(M_OUT),
        r"mostoutcomes.txt, line 4, column V99EDINDEX: value 'two' is not a number",
    ),
    Case(
        "most_outcome_index_4",
        most_set(mostoutcomes_txt=edit(MOST["mostoutcomes.txt"], "MB00003|2||", "MB00003|4||")),
        entry(M_OUT),
        r"mostoutcomes.txt, line 4: column V99EDINDEX: visit index 4; expected one of",
    ),
    # ------------------------------------------------------------------------------------------------- Chen
    Case("chen_empty_manifest", lambda t: F.chen(t, ""), entry(CHEN), r"manifest.csv: file is empty"),
    Case(
        "chen_manifest_kl_2_5",
        lambda t: F.chen(t, F.CHEN_MANIFEST.replace("val,3,", "val,2.5,")),
        entry(CHEN),
        r"manifest.csv, line 3, column kl_grade: value '2.5' outside 0–4",
    ),
    Case(
        "chen_manifest_path_outside",
        lambda t: F.chen(t, F.CHEN_MANIFEST.replace("train/0/9000001L.png", "../../etc/passwd")),
        entry(CHEN),
        r"manifest.csv, line 2, column path: '../../etc/passwd' points outside",
    ),
    Case(
        "chen_manifest_latin1",
        chen_latin1,
        entry(CHEN),
        r"manifest.csv: byte \d+ is not UTF-8",
    ),
    Case(
        "chen_manifest_duplicate_path",
        lambda t: F.chen(t, F.CHEN_MANIFEST + "val,3,val/3/9000002R.png,9000002,R\n"),
        entry(CHEN),
        r"manifest.csv, line 4, column path: 'val/3/9000002R.png' listed twice",
    ),
    Case(
        "chen_manifest_blank_id",
        lambda t: F.chen(t, F.CHEN_MANIFEST.replace(",9000002,R", ",,R")),
        entry(CHEN),
        r"manifest.csv, line 3, column oai_id: blank value",
    ),
    # ---------------------------------------------------------------------------------------------- CSV output
    Case("csv_formula_ids_escaped", hostile_ids, lambda p: p, check=escaped),
    Case(
        "csv_read_empty",
        writer("t.csv", b""),
        entry("oa_kit.io.tables:read_csv"),
        r"t.csv: file is empty",
    ),
]


def _names(case: Case) -> str:
    return case.name


def test_catalogue_is_large_and_named_uniquely():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) and len(names) >= 40


def check_case(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run one catalogue case (limits at their defaults plus the case's environment): the expected flag, or one
    OAKitError line matching its pattern. Shared by every part of the catalogue."""
    for key in ("OA_KIT_MAX_VOXELS", "OA_KIT_MAX_BYTES", "OA_KIT_MAX_PIXELS", "OA_KIT_MIN_VOXELS_PER_AXIS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    argument = case.make(tmp_path)
    if case.error is None:
        assert case.check(case.call(argument)), case.name
        return
    with pytest.raises(OAKitError) as info:
        case.call(argument)
    message = str(info.value)
    assert "\n" not in message and "; expected" in message, message
    assert re.search(case.error, message), f"{case.name}: {message!r} does not match {case.error!r}"


@pytest.mark.parametrize("case", CASES, ids=_names)
def test_bad_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, tmp_path, monkeypatch)
