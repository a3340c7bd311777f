"""Radiograph readers on real file formats: DICOM in every supported transfer syntax, PNG/JPEG 8/16-bit, bad files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from oa_kit.errors import OAKitError
from oa_kit.io.radiograph import QA_FLAGS, Radiograph, read_radiograph

DX_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1.1")


def ramp16(rows: int = 24, cols: int = 20, top: int = 60000) -> np.ndarray:
    """A 16-bit test image spanning most of the uint16 range (no two neighbours equal)."""
    rng = np.random.default_rng(0)
    base = np.linspace(0, top, rows * cols).reshape(rows, cols)
    return np.clip(base + rng.integers(0, 50, size=(rows, cols)), 0, 65535).astype(np.uint16)


def make_dataset(arr: np.ndarray, photometric: str = "MONOCHROME2", **attrs) -> Dataset:
    """An uncompressed DX-like DICOM data set holding ``arr`` (gray (rows, cols) or RGB (rows, cols, 3))."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "DX", "9000001"
    ds.Rows, ds.Columns = arr.shape[:2]
    ds.SamplesPerPixel = 3 if arr.ndim == 3 else 1
    if arr.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    """Write with a preamble and file meta (what scanners write)."""
    ds.save_as(path, enforce_file_format=True)
    return path


# --------------------------------------------------------------------------- JPEG encoders for the test


def jpeg_lossless_sv1(arr: np.ndarray, precision: int = 16) -> bytes:
    """Encode a gray image as a JPEG Process 14 SV1 (predictor 1) lossless bit stream (ITU T.81 annex H)."""
    rows, cols = arr.shape
    modulus = 1 << 16
    bits: list[int] = []

    def put(value: int, n: int) -> None:
        bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    a = arr.astype(np.int64)
    for r in range(rows):
        for c in range(cols):
            if r == 0 and c == 0:
                pred = 1 << (precision - 1)
            elif r == 0:
                pred = a[r, c - 1]
            elif c == 0:
                pred = a[r - 1, c]
            else:
                pred = a[r, c - 1]
            diff = int(a[r, c] - pred) % modulus
            if diff > 32768:
                diff -= modulus
            ssss = 16 if diff == 32768 else abs(diff).bit_length()
            put(ssss, 5)  # 17 symbols, each a 5-bit canonical code equal to the symbol
            if 0 < ssss < 16:
                put(diff if diff > 0 else (diff - 1) & ((1 << ssss) - 1), ssss)
    bits.extend([1] * (-len(bits) % 8))
    scan = bytearray()
    for i in range(0, len(bits), 8):
        byte = int("".join(map(str, bits[i : i + 8])), 2)
        scan.append(byte)
        if byte == 0xFF:
            scan.append(0x00)
    counts = [0] * 16
    counts[4] = 17
    dht = bytes([0x00, *counts, *range(17)])
    sof = bytes([precision]) + rows.to_bytes(2, "big") + cols.to_bytes(2, "big") + bytes([1, 1, 0x11, 0])
    sos = bytes([1, 1, 0x00, 1, 0, 0])

    def segment(marker: int, body: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body

    return b"\xff\xd8" + segment(0xC4, dht) + segment(0xC3, sof) + segment(0xDA, sos) + bytes(scan) + b"\xff\xd9"


def with_syntax(ds: Dataset, syntax: UID, fragment: bytes) -> Dataset:
    """Put an already encoded frame into ``ds`` under ``syntax``."""
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([fragment])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


# --------------------------------------------------------------------------- DICOM decoding


def test_uncompressed_16bit_keeps_full_range(tmp_path):
    arr = ramp16()
    rg = read_radiograph(save(make_dataset(arr, ImagerPixelSpacing=[0.143, 0.143]), tmp_path / "a.dcm"))
    assert isinstance(rg, Radiograph)
    assert rg.pixels.dtype == np.float32 and rg.pixels.shape == arr.shape
    np.testing.assert_array_equal(rg.pixels, arr.astype(np.float32))
    assert rg.pixels.max() > 59000  # no 8-bit squashing
    assert rg.spacing_mm == pytest.approx((0.143, 0.143))
    assert rg.qa_flags == ()
    assert rg.meta["format"] == "dicom" and rg.meta["bits_stored"] == 16 and rg.meta["patient_id"] == "9000001"
    assert rg.meta["transfer_syntax"] == "Explicit VR Little Endian"


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "j2k-lossless"])
def test_lossless_compressed_round_trip(tmp_path, syntax):
    arr = ramp16(40, 36)  # JPEG 2000's default 6 resolution levels need ≥ 32 px
    ds = make_dataset(arr, ImagerPixelSpacing=[0.2, 0.2])
    ds.compress(syntax, arr)
    path = save(ds, tmp_path / "c.dcm")
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    rg = read_radiograph(path)
    np.testing.assert_array_equal(rg.pixels, arr.astype(np.float32))
    assert "lossy_compressed" not in rg.qa_flags
    assert rg.meta["transfer_syntax_uid"] == str(syntax)


def test_deflated_and_big_endian_round_trip(tmp_path):
    arr = ramp16()
    for syntax in (pydicom.uid.DeflatedExplicitVRLittleEndian, pydicom.uid.ExplicitVRBigEndian):
        ds = make_dataset(arr)
        ds.file_meta.TransferSyntaxUID = syntax
        if not syntax.is_little_endian:
            ds.PixelData = arr.astype(">u2").tobytes()  # pixel bytes are written as given
        path = tmp_path / f"{syntax.keyword}.dcm"
        ds.save_as(path, enforce_file_format=True)
        rg = read_radiograph(path)
        np.testing.assert_array_equal(rg.pixels, arr.astype(np.float32))
        assert rg.meta["transfer_syntax_uid"] == str(syntax)


def test_jpeg2000_lossy_round_trip_is_close_and_flagged(tmp_path):
    arr = ramp16(40, 36)
    ds = make_dataset(arr)
    ds.compress(JPEG2000, arr, j2k_cr=[5])
    rg = read_radiograph(save(ds, tmp_path / "j2k.dcm"))
    assert np.abs(rg.pixels - arr).mean() < 0.01 * 60000
    assert "lossy_compressed" in rg.qa_flags


def test_jpeg_lossless_sv1_round_trip(tmp_path):
    arr = ramp16(12, 10)
    ds = with_syntax(make_dataset(arr, PixelSpacing=[0.15, 0.16]), JPEGLosslessSV1, jpeg_lossless_sv1(arr))
    rg = read_radiograph(save(ds, tmp_path / "jll.dcm"))
    np.testing.assert_array_equal(rg.pixels, arr.astype(np.float32))
    assert rg.meta["transfer_syntax"] == JPEGLosslessSV1.name
    assert rg.spacing_mm == pytest.approx((0.15, 0.16))


def test_jpeg_baseline_round_trip(tmp_path):
    arr8 = (np.linspace(0, 255, 32 * 32).reshape(32, 32)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr8).save(buf, format="JPEG", quality=95)
    ds = with_syntax(make_dataset(arr8), JPEGBaseline8Bit, buf.getvalue())
    rg = read_radiograph(save(ds, tmp_path / "jb.dcm"))
    assert np.abs(rg.pixels - arr8).max() < 8
    assert "lossy_compressed" in rg.qa_flags


def test_jpeg_ls_lossless_from_pydicom_test_files():
    from pydicom.data import get_testdata_file

    plain, jls = get_testdata_file("MR_small.dcm"), get_testdata_file("MR_small_jpeg_ls_lossless.dcm")
    ref = pydicom.dcmread(plain)
    expected = ref.pixel_array * float(ref.get("RescaleSlope", 1)) + float(ref.get("RescaleIntercept", 0))
    got = read_radiograph(jls, voi_lut=False)
    np.testing.assert_allclose(got.pixels, expected)
    assert got.meta["transfer_syntax"].startswith("JPEG-LS")


# --------------------------------------------------------------------------- LUTs and photometric


def test_modality_lut_rescale(tmp_path):
    arr = ramp16(top=4000)
    ds = make_dataset(arr, RescaleSlope="2.5", RescaleIntercept="-100")
    rg = read_radiograph(save(ds, tmp_path / "m.dcm"))
    np.testing.assert_allclose(rg.pixels, arr * 2.5 - 100, rtol=1e-6)
    assert rg.meta["modality_lut"] is True and rg.meta["voi_lut"] is False


def test_voi_window_applied_and_optional(tmp_path):
    arr = ramp16()
    ds = make_dataset(arr, WindowCenter="30000", WindowWidth="20000")
    path = save(ds, tmp_path / "w.dcm")
    windowed = read_radiograph(path)
    assert windowed.meta["voi_lut"] is True
    assert windowed.pixels[arr < 19000].max() == windowed.pixels.min()  # clipped below the window
    assert windowed.pixels[arr > 41000].min() == windowed.pixels.max()  # clipped above
    inside = (arr > 21000) & (arr < 39000)
    assert np.corrcoef(windowed.pixels[inside], arr[inside])[0, 1] > 0.999  # linear inside the window
    raw = read_radiograph(path, voi_lut=False)
    np.testing.assert_array_equal(raw.pixels, arr.astype(np.float32))


def test_voi_lut_sequence(tmp_path):
    arr = (np.arange(64).reshape(8, 8) * 4).astype(np.uint16)
    item = Dataset()
    item.LUTDescriptor = [256, 0, 16]
    item.LUTData = [int(v) for v in (np.arange(256) ** 2)]
    item["LUTData"].VR = "US"
    ds = make_dataset(arr)
    ds.VOILUTSequence = [item]
    rg = read_radiograph(save(ds, tmp_path / "lut.dcm"))
    np.testing.assert_array_equal(rg.pixels, (arr.astype(np.float64) ** 2).astype(np.float32))


def test_monochrome1_inverted_so_bone_is_bright(tmp_path):
    arr = ramp16()
    ds = make_dataset(arr, photometric="MONOCHROME1")
    ds.BitsStored, ds.HighBit = 16, 15
    rg = read_radiograph(save(ds, tmp_path / "m1.dcm"))
    np.testing.assert_array_equal(rg.pixels, (65535 - arr).astype(np.float32))
    assert rg.meta["photometric"] == "MONOCHROME1"


def test_presentation_lut_inverse_flips_display(tmp_path):
    arr = ramp16()
    m2 = read_radiograph(save(make_dataset(arr, PresentationLUTShape="INVERSE"), tmp_path / "m2i.dcm"))
    np.testing.assert_array_equal(m2.pixels, (65535 - arr).astype(np.float32))
    m1 = read_radiograph(
        save(make_dataset(arr, photometric="MONOCHROME1", PresentationLUTShape="INVERSE"), tmp_path / "m1i.dcm")
    )
    np.testing.assert_array_equal(m1.pixels, m2.pixels)  # DX pairs MONOCHROME1 with INVERSE: one inversion
    assert m2.meta["inverted"] and m1.meta["inverted"]


def test_monochrome1_with_12_bits_stored_and_rescale(tmp_path):
    arr = (np.arange(100).reshape(10, 10) * 40).astype(np.uint16)
    ds = make_dataset(arr, photometric="MONOCHROME1", RescaleSlope="1", RescaleIntercept="-1024")
    ds.BitsStored, ds.HighBit = 12, 11
    rg = read_radiograph(save(ds, tmp_path / "m1b.dcm"))
    # nominal range [0, 4095] → [-1024, 3071]; inversion about it maps v → 2047 - v
    np.testing.assert_allclose(rg.pixels, 2047 - (arr - 1024.0))
    assert np.all(np.diff(rg.pixels.ravel()) < 0)  # order reversed: denser (lower stored) now higher


# --------------------------------------------------------------------------- spacing and meta


def test_spacing_precedence_and_missing_flag(tmp_path):
    arr = ramp16(8, 8)
    both = read_radiograph(
        save(make_dataset(arr, ImagerPixelSpacing=[0.2, 0.25], PixelSpacing=[0.1, 0.1]), tmp_path / "b.dcm")
    )
    assert both.spacing_mm == pytest.approx((0.2, 0.25)) and both.meta["spacing_source"] == "ImagerPixelSpacing"
    pixel = read_radiograph(save(make_dataset(arr, PixelSpacing=[0.1, 0.12]), tmp_path / "p.dcm"))
    assert pixel.spacing_mm == pytest.approx((0.1, 0.12)) and pixel.meta["spacing_source"] == "PixelSpacing"
    none = read_radiograph(save(make_dataset(arr), tmp_path / "n.dcm"))
    assert none.spacing_mm is None and "missing_spacing" in none.qa_flags
    bad = read_radiograph(
        save(make_dataset(arr, ImagerPixelSpacing=[0, 0.2], PixelSpacing=[0.3, 0.3]), tmp_path / "bad.dcm")
    )
    assert bad.spacing_mm == pytest.approx((0.3, 0.3)) and "invalid_spacing" in bad.qa_flags
    assert set(bad.qa_flags) <= set(QA_FLAGS)


def test_laterality_view_and_content_sniffing(tmp_path):
    ds = make_dataset(ramp16(8, 8), ImageLaterality="L", ViewPosition="LL", PixelSpacing=[0.2, 0.2])
    rg = read_radiograph(save(ds, tmp_path / "knee.png"))  # DICOM despite the extension
    assert rg.meta["laterality"] == "L" and "non_pa_view" in rg.qa_flags
    no_preamble = tmp_path / "raw"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    ds.save_as(no_preamble, implicit_vr=True, little_endian=True, enforce_file_format=False)
    data = no_preamble.read_bytes()
    assert data[128:132] != b"DICM"
    assert read_radiograph(no_preamble).pixels.shape == (8, 8)


# --------------------------------------------------------------------------- PNG / JPEG


def test_png_8_and_16_bit(tmp_path):
    a8 = (np.arange(48).reshape(6, 8) * 5).astype(np.uint8)
    Image.fromarray(a8).save(tmp_path / "k8.png")
    r8 = read_radiograph(tmp_path / "k8.png")
    np.testing.assert_array_equal(r8.pixels, a8)
    assert r8.meta["bits_stored"] == 8 and r8.spacing_mm is None and "missing_spacing" in r8.qa_flags
    a16 = ramp16(6, 8)
    Image.fromarray(a16).save(tmp_path / "k16.dat", format="PNG")  # content, not extension, decides
    r16 = read_radiograph(tmp_path / "k16.dat")
    np.testing.assert_array_equal(r16.pixels, a16.astype(np.float32))
    assert r16.meta["bits_stored"] == 16 and r16.pixels.max() > 59000


def test_jpeg_file_and_gray_stored_as_rgb(tmp_path):
    a8 = np.tile(np.linspace(0, 250, 16).astype(np.uint8), (16, 1))
    Image.fromarray(a8).save(tmp_path / "k.jpg", quality=95)
    rg = read_radiograph(tmp_path / "k.jpg")
    assert rg.meta["format"] == "jpeg" and np.abs(rg.pixels - a8).max() < 8
    Image.fromarray(np.stack([a8] * 3, -1)).save(tmp_path / "rgbgray.png")
    gray = read_radiograph(tmp_path / "rgbgray.png")
    np.testing.assert_array_equal(gray.pixels, a8)
    assert "stored_as_rgb" in gray.qa_flags


# --------------------------------------------------------------------------- bad inputs


def one_line_error(path, match: str, **kwargs) -> str:
    """Read ``path`` expecting an OAKitError whose single line names the file and matches ``match``."""
    with pytest.raises(OAKitError, match=match) as info:
        read_radiograph(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_truncated_dicom(tmp_path):
    path = save(make_dataset(ramp16(64, 64)), tmp_path / "t.dcm")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 3000])
    one_line_error(path, "truncated|corrupt")


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter:UserWarning")
def test_truncated_compressed_dicom(tmp_path):
    arr = ramp16(64, 64)
    ds = make_dataset(arr)
    ds.compress(JPEG2000Lossless, arr)
    path = save(ds, tmp_path / "tj.dcm")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    one_line_error(path, "truncated|corrupt")


def test_garbage_and_missing_files(tmp_path):
    garbage = tmp_path / "g.dcm"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    one_line_error(garbage, "not a DICOM|corrupt")
    one_line_error(tmp_path / "absent.dcm", "cannot be read")


def test_non_image_dicom(tmp_path):
    ds = make_dataset(ramp16(4, 4))
    del ds.PixelData
    ds.Modality = "SR"
    one_line_error(save(ds, tmp_path / "sr.dcm"), "no PixelData")


def test_rgb_dicom_error_or_converted_with_flag(tmp_path):
    rgb = np.zeros((6, 6, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    path = save(make_dataset(rgb, photometric="RGB"), tmp_path / "rgb.dcm")
    one_line_error(path, "colour")
    conv = read_radiograph(path, allow_rgb=True)
    assert "converted_from_rgb" in conv.qa_flags
    np.testing.assert_allclose(conv.pixels, 0.299 * 200 + 0.587 * 100 + 0.114 * 50, rtol=1e-5)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    one_line_error(tmp_path / "rgb.png", "colour")


def test_palette_colour_dicom():
    from pydicom.data import get_testdata_file

    path = get_testdata_file("examples_palette.dcm")
    one_line_error(path, "PALETTE COLOR")
    converted = read_radiograph(path, allow_rgb=True)
    assert converted.pixels.ndim == 2 and "converted_from_rgb" in converted.qa_flags


def test_multiframe_dicom(tmp_path):
    frames = np.stack([ramp16(8, 8)] * 2)
    ds = make_dataset(frames[0])
    ds.NumberOfFrames = 2
    ds.PixelData = frames.tobytes()
    one_line_error(save(ds, tmp_path / "mf.dcm"), "NumberOfFrames")


def test_unsupported_transfer_syntax(tmp_path):
    ds = with_syntax(make_dataset(ramp16(8, 8)), UID("1.2.840.10008.1.2.4.100"), b"\x00\x00\x01\xb3" + bytes(60))
    one_line_error(save(ds, tmp_path / "mpeg.dcm"), "not supported|no decoder")


def test_truncated_png(tmp_path):
    Image.fromarray(ramp16(64, 64)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    one_line_error(tmp_path / "t.png", "truncated|corrupt")


def test_secondary_capture_class_is_read(tmp_path):
    ds = make_dataset(ramp16(8, 8))
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    assert read_radiograph(save(ds, tmp_path / "sc.dcm")).pixels.shape == (8, 8)


def test_palette_and_grey_alpha_png_read_as_luminance(tmp_path):
    from oa_kit.io.radiograph import read_gray_array

    grey = (np.arange(32 * 40) % 251).astype(np.uint8).reshape(32, 40)
    palette = Image.fromarray(255 - grey).convert("P")  # indices != grey values
    palette.putpalette([v for i in range(256) for v in (255 - i,) * 3])
    indices = np.asarray(palette)
    palette.save(tmp_path / "p.png")
    expected = (255 - indices).astype(np.uint8)
    np.testing.assert_array_equal(read_gray_array(tmp_path / "p.png"), expected)
    np.testing.assert_array_equal(read_radiograph(tmp_path / "p.png").pixels, expected)
    Image.fromarray(grey).convert("LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_gray_array(tmp_path / "la.png"), grey)


def test_pixel_cap_checked_before_decoding(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((300, 400), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setenv("OA_KIT_MAX_PIXELS", "100000")
    with pytest.raises(OAKitError, match=r"big.png: 120,000 pixels exceeds the limit of 100,000"):
        read_radiograph(tmp_path / "big.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(OAKitError, match="empty.png: file is empty"):
        read_radiograph(tmp_path / "empty.png")
