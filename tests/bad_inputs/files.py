"""Writers of small VALID input files for every reader (the catalogue breaks them, the fuzz tests mutate them).

Only third-party writers are used (nibabel, pydicom, Pillow, h5py, plain text), so a file here is what a user's
tool would produce, independent of oa_kit's own writers.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
SHAPE = (16, 20, 12)

MHD_HEADER = """ObjectType = Image
NDims = 3
BinaryData = True
BinaryDataByteOrderMSB = False
CompressedData = {compressed}
TransformMatrix = 1 0 0 0 1 0 0 0 1
Offset = 0 0 0
ElementSpacing = 0.5 0.5 0.7
DimSize = {dims}
ElementType = MET_USHORT
ElementDataFile = {data}
"""

#: A valid OAI set: '|'-separated, upper-case headers, labelled values and special codes as OAI writes them.
OAI_TABLES = {
    "enrollees.txt": "ID|VERSION|P02SEX|V00SITE|P02RACE\n9000001|2.2|2: Female|A|1\n9000002|2.2|1: Male|C|2\n",
    "allclinical00.txt": (
        "ID|V00AGE|P01BMI|P01INJL|P01INJR|P01KSURGL|P01KSURGR|V00WOMKPL|V00WOMKPR|V00WOMSTFL|V00WOMSTFR|"
        "V00WOMADLL|V00WOMADLR|V00WOMTSL|V00WOMTSR\n"
        "9000001|61|27.5|0: No|1: Yes|0|0|2|5|1|2|10|20|13|27\n"
        "9000002|70|31.2|1|0|0|1|.A: Not Expected|0|0|0|0|0|.A|0\n"
    ),
    "kxr_sq_bu00.txt": (
        "ID|SIDE|READPRJ|V00XRKL|V00XRJSM|V00XRJSL|V00XROSFM|V00XROSFL|V00XROSTM|V00XROSTL\n"
        "9000001|1: Right|15|2|1|0|1|0|2|0\n"
        "9000001|2: Left|15|.T: Technical problems||||||\n"
        "9000001|2: Left|37|3|2|0|2|1|1|1\n"
        "9000002|1: Right|15|.P|.P|.P|.P|.P|.P|.P\n"
        "9000002|2: Left|15|4|3|1|3|2|3|2\n"
    ),
    "kxr_qjsw_duryea00.txt": (
        "ID|SIDE|READPRJ|V00MCMJSW|V00JSW150|V00LJSW700|V00BMANG\n"
        "9000001|1|15|4.1|4.5|6.1|10\n9000001|2|15|.T|||\n9000002|2|15|3.0|3.2|5.5|9\n"
    ),
    "outcomes99.txt": (
        "ID|V99ERKBLRP|V99ELKBLRP|V99ERKRPCF|V99ELKRPCF|V99ERKDAYS|V99ELKDAYS|V99EDDCF|V99EDDVSPR\n"
        "9000001|0|0|||||0|\n9000002|1: Yes|0||3: Replacement adjudicated, confirmed||400|1|3\n"
    ),
}

MOST_TABLES = {
    "mostv01235xray.txt": (
        "MOSTID|V0XRKL|V0XLKL|V0XRJSM|V1XRKL|V1XLKL\nMB00001|1.9|2|0|2|2\nMB00002|2|1|1|8|9\nMB00003|0|8|0|0|8\n"
    ),
    "mostv0enroll.txt": (
        "MOSTID|V0PA|AGE|SEX|V0BMI|V0LAL|V0LAR|V0SURGL|V0SURGR|V0WOTOTL|V0WOTOTR\n"
        "MB00001|1|58|2|29.1|0|1|0|0|12|30\nMB00002|1|66|1|33.0|0|0|1|0|5|0\nMB00003|1|71|2|25.2|0|0|0|0||3\n"
    ),
    "mostoutcomes.txt": "MOSTID|V99EDINDEX|V99ELKRINDEX|V99ERKRINDEX\nMB00001|||\nMB00002|||1\nMB00003|2||\n",
}


def volume(shape=SHAPE, dtype=np.int16) -> np.ndarray:
    """A small deterministic test volume."""
    return (np.arange(int(np.prod(shape))) % 500).reshape(shape).astype(dtype)


def nifti(path: Path, shape=SHAPE, affine=None, dtype=np.int16) -> Path:
    """A valid NIfTI-1 (``.nii`` or ``.nii.gz``) written by nibabel."""
    image = nib.Nifti1Image(volume(shape, dtype), np.diag([0.5, 0.5, 0.7, 1.0]) if affine is None else affine)
    nib.save(image, str(path))
    return path


def nifti_header_claiming(path: Path, dims: tuple[int, ...]) -> Path:
    """A ``.nii`` whose header claims ``dims`` but holds only a few bytes of voxels (a hostile header)."""
    data = bytearray(nib.Nifti1Image(volume((8, 8, 8), np.uint8), np.eye(4)).to_bytes())
    struct.pack_into("<8h", data, 40, len(dims), *dims, *([1] * (7 - len(dims))))
    path.write_bytes(bytes(data))
    return path


def mhd(folder: Path, name: str = "scan", dims=SHAPE, compressed: bool = False, **changes: str) -> Path:
    """A valid ``.mhd`` + ``.raw``/``.zraw`` pair; ``changes`` replace header lines (``key=value``)."""
    raw = volume(dims, np.uint16).transpose(2, 1, 0).astype("<u2").tobytes()
    data = f"{name}.zraw" if compressed else f"{name}.raw"
    (folder / data).write_bytes(zlib.compress(raw) if compressed else raw)
    header = MHD_HEADER.format(compressed=compressed, dims=" ".join(map(str, dims)), data=data)
    for key, value in changes.items():
        lines = header.splitlines()
        if any(line.split(" =")[0] == key for line in lines):
            lines = [f"{key} = {value}" if line.split(" =")[0] == key else line for line in lines]
        else:
            lines.insert(-1, f"{key} = {value}")  # before ElementDataFile, which must stay last
        header = "\n".join(lines) + "\n"
    path = folder / f"{name}.mhd"
    path.write_text(header)
    return path


def mr_slice(path: Path, k: int, rows: int = 20, cols: int = 16, series: str = "1.2.3.4") -> Path:
    """One MR DICOM slice of a sagittal stack (slice ``k``), written by pydicom."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.SeriesInstanceUID = "MR", "9000001", series
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.ImagePositionPatient = [float(k) * 0.7, 0.0, 0.0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.PixelData = (np.arange(rows * cols, dtype=np.uint16) + k).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def mr_series(folder: Path, n: int = 10) -> Path:
    """A folder of ``n`` MR slices."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        mr_slice(folder / f"IM{k:04d}.dcm", k)
    return folder


def dx_dataset(rows: int = 64, cols: int = 48) -> Dataset:
    """An uncompressed 16-bit DX radiograph data set."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = DX_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.ViewPosition = "DX", "9000001", "PA"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.PixelData = (np.arange(rows * cols, dtype=np.uint16) * 7).tobytes()
    return ds


def dicom(path: Path, ds: Dataset | None = None) -> Path:
    """Save a DX data set (default :func:`dx_dataset`) with preamble and file meta."""
    (ds or dx_dataset()).save_as(path, enforce_file_format=True)
    return path


def png(path: Path, array: np.ndarray | None = None, mode: str | None = None) -> Path:
    """A PNG written by Pillow (default a 64 x 48 8-bit grey ramp)."""
    arr = (np.arange(64 * 48) % 256).astype(np.uint8).reshape(64, 48) if array is None else array
    image = Image.fromarray(arr)
    (image.convert(mode) if mode else image).save(path)
    return path


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_of_zeros(path: Path, width: int, height: int, with_data: bool = True) -> Path:
    """A valid 8-bit grey PNG of ``width`` x ``height`` zeros, compressed row by row (tiny file, huge image);
    without data only the header (enough for a reader to see the claimed size)."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    body = b""
    if with_data:
        packer, row, parts = zlib.compressobj(9), bytes(width + 1), []
        for _ in range(height):
            parts.append(packer.compress(row))
        parts.append(packer.flush())
        body = png_chunk(b"IDAT", b"".join(parts))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + body + png_chunk(b"IEND", b""))
    return path


def h5(path: Path, **datasets: np.ndarray) -> Path:
    """An HDF5 file with the given datasets."""
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f[key] = value
    return path


def tables(folder: Path, files: dict[str, str], **changes: str) -> Path:
    """Write a table set into ``folder``; ``changes`` maps a file name to new text (``None``-like "" deletes)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {**files, **changes}.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def chen(folder: Path, manifest: str | None = None) -> Path:
    """A Chen-layout folder with two images and (optionally) a manifest."""
    for split, grade, name in (("train", 0, "9000001L"), ("val", 3, "9000002R")):
        (folder / split / str(grade)).mkdir(parents=True, exist_ok=True)
        png(folder / split / str(grade) / f"{name}.png")
    if manifest is not None:
        (folder / "manifest.csv").write_text(manifest)
    return folder


CHEN_MANIFEST = (
    "split,kl_grade,path,oai_id,side\ntrain,0,train/0/9000001L.png,9000001,L\nval,3,val/3/9000002R.png,9000002,R\n"
)
