"""MRI readers/writers on files in their real formats, geometry round trips, and the label crosswalk."""

from __future__ import annotations

import gzip
import random
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pydicom
import pytest

from oa_kit.errors import OAKitError
from oa_kit.io.labels import (
    CROSSWALKS,
    LABEL_IDS,
    LABELS,
    from_harmonised,
    labels_to_onehot,
    onehot_to_labels,
    to_harmonised,
)
from oa_kit.io.mri import (
    MRIVolume,
    from_canonical,
    mirror_to_right,
    read_dicom_echoes,
    read_dicom_series,
    read_iwoai,
    read_mhd,
    read_mhd_pair,
    read_mrnet_case,
    read_mrnet_labels,
    read_nifti,
    read_skmtea_h5,
    reorient,
    to_canonical,
    write_dicom_series,
    write_mhd,
    write_nifti,
)
from oa_kit.synth.mri import DEFAULT_THICKNESS_MM, SITE_MRI, MRIGeometry, render_knee_mri


def _one_line(exc_info) -> str:
    """The error message, asserting it is one line."""
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation matrix from Euler angles in degrees (x, then y, then z)."""
    a, b, c = np.deg2rad([ax, ay, az])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.fixture(scope="module")
def phantom():
    """A small synthetic knee (labels and image) on a coarse grid."""
    geometry = MRIGeometry(shape=(16, 48, 40), spacing_mm=(5.0, 1.4, 1.6))
    return render_knee_mri("R", DEFAULT_THICKNESS_MM, geometry, SITE_MRI["B"], seed=2)


@pytest.fixture(scope="module")
def oblique(phantom) -> MRIVolume:
    """The phantom as an oblique sagittal acquisition: axes (AP, SI, LR) rotated 12°/−20°/7°, off-centre."""
    arr = np.ascontiguousarray(phantom.image.astype(np.int16).transpose(1, 2, 0))  # (AP, SI, LR)
    base = np.zeros((4, 4))
    base[:3, 0] = [0, -1.4, 0]  # array axis 0 toward posterior
    base[:3, 1] = [0, 0, -1.6]  # axis 1 toward inferior
    base[:3, 2] = [5.0, 0, 0]  # axis 2 (slices) toward the patient's right
    base[:3, :3] = _rotation(12, -20, 7) @ base[:3, :3]
    base[:3, 3] = [-31.0, 18.5, 42.25]
    base[3, 3] = 1.0
    return MRIVolume(arr, base, metadata={"side": "R"})


# ------------------------------------------------------------------------------------------------------------- NIfTI
def test_nifti_round_trip_keeps_affine_orientation_and_bytes(tmp_path, oblique):
    path = write_nifti(tmp_path / "x.nii.gz", oblique)
    back = read_nifti(path)
    np.testing.assert_array_equal(back.array, oblique.array)
    np.testing.assert_allclose(back.affine, oblique.affine, atol=1e-5)
    assert back.orientation == oblique.orientation and back.spacing_mm == pytest.approx(oblique.spacing_mm)
    assert back.source == path and back.metadata["format"] == "nifti"
    assert write_nifti(tmp_path / "y.nii.gz", oblique).read_bytes() == path.read_bytes()  # deterministic bytes
    again = read_nifti(write_nifti(tmp_path / "w.nii.gz", back))  # read → write → read
    np.testing.assert_allclose(again.affine, back.affine, atol=1e-6)
    header = nib.load(path).header
    assert int(header["qform_code"]) == 1 and int(header["sform_code"]) == 1
    assert gzip.decompress(path.read_bytes())[:4] == (348).to_bytes(4, "little")
    mask = read_nifti(write_nifti(tmp_path / "m.nii.gz", MRIVolume(oblique.array > 300, oblique.affine)))
    assert mask.array.dtype == np.uint8 and mask.array.sum() == np.sum(oblique.array > 300)
    wide = read_nifti(write_nifti(tmp_path / "w64.nii.gz", MRIVolume(oblique.array.astype(np.int64), oblique.affine)))
    np.testing.assert_array_equal(wide.array, oblique.array)
    plain = read_nifti(write_nifti(tmp_path / "z.nii", oblique))
    np.testing.assert_allclose(plain.affine, oblique.affine, atol=1e-5)
    assert not list(tmp_path.glob(".*part"))


def test_nifti_bad_inputs(tmp_path, oblique):
    path = write_nifti(tmp_path / "x.nii.gz", oblique)
    truncated = tmp_path / "t.nii.gz"
    truncated.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])
    with pytest.raises(OAKitError, match="t.nii.gz") as info:
        read_nifti(truncated)
    _one_line(info)
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 9), np.int16), np.eye(4)), flat)
    with pytest.raises(OAKitError, match="2-D") as info:
        read_nifti(flat)
    _one_line(info)
    with pytest.raises(OAKitError, match="not found"):
        read_nifti(tmp_path / "missing.nii.gz")
    junk = tmp_path / "junk.nii"
    junk.write_bytes(b"not a nifti file at all" * 20)
    with pytest.raises(OAKitError, match="junk.nii"):
        read_nifti(junk)


# ------------------------------------------------------------------------------------------------- reorientation
def test_canonical_round_trip_keeps_world_positions(oblique):
    canon = to_canonical(oblique)
    assert canon.orientation == ("R", "A", "S")
    assert canon.array.shape == (oblique.shape[2], oblique.shape[0], oblique.shape[1])
    # the same voxel value sits at the same world position
    ijk = np.array([5, 7, 3])
    world = oblique.affine @ np.array([*ijk, 1.0])
    canon_ijk = np.rint(np.linalg.solve(canon.affine, world)[:3]).astype(int)
    assert canon.array[tuple(canon_ijk)] == oblique.array[tuple(ijk)]
    ref = nib.as_closest_canonical(nib.Nifti1Image(oblique.array, oblique.affine))
    np.testing.assert_allclose(canon.affine, ref.affine, atol=1e-6)
    np.testing.assert_array_equal(canon.array, np.asanyarray(ref.dataobj))
    back = from_canonical(canon, oblique)
    np.testing.assert_allclose(back.affine, oblique.affine, atol=1e-9)
    np.testing.assert_array_equal(back.array, oblique.array)
    lps_like = reorient(oblique, ("L", "P", "S"))
    assert lps_like.orientation == ("L", "P", "S")


def test_mirror_to_right_flips_the_lr_axis_only(phantom, oblique):
    left = render_knee_mri("L", DEFAULT_THICKNESS_MM, MRIGeometry((16, 48, 40), (5.0, 1.4, 1.6)), SITE_MRI["B"], 2)
    vol = MRIVolume(left.labels, left.affine)
    mirrored = mirror_to_right(vol, "L")
    np.testing.assert_array_equal(mirrored.array, phantom.labels)
    assert mirrored.metadata["mirrored"] is True
    np.testing.assert_array_equal(mirrored.affine, vol.affine)
    assert mirror_to_right(vol, "R").array is vol.array
    # oblique sagittal: LR is array axis 2
    np.testing.assert_array_equal(mirror_to_right(oblique, "L").array, oblique.array[:, :, ::-1])
    with pytest.raises(OAKitError, match="side"):
        mirror_to_right(vol, "left")


# ------------------------------------------------------------------------------------------------------------- DICOM
def _write_two_echo_series(folder: Path, vol: MRIVolume) -> None:
    """Two echoes of one series in one folder, files renamed to random names (shuffled order)."""
    uid = pydicom.uid.generate_uid()
    tmp = folder.parent / f"{folder.name}_tmp"
    write_dicom_series(tmp / "e1", vol, echo_time_ms=4.7, echo_number=1, series_uid=uid, patient_id="9000001")
    second = MRIVolume((vol.array // 2).astype(vol.array.dtype), vol.affine)
    write_dicom_series(tmp / "e2", second, echo_time_ms=9.2, echo_number=2, series_uid=uid, patient_id="9000001")
    files = sorted(tmp.rglob("*.dcm"))
    names = [f"{n:08x}" for n in random.Random(0).sample(range(10**6), len(files))]
    folder.mkdir(parents=True)
    for src, name in zip(files, names):
        shutil.move(src, folder / name)
    shutil.rmtree(tmp)


@pytest.fixture(scope="module")
def dicom_folder(tmp_path_factory, oblique) -> Path:
    """An oblique two-echo MR series with shuffled, extension-less file names."""
    folder = tmp_path_factory.mktemp("dicom") / "series"
    _write_two_echo_series(folder, MRIVolume(oblique.array[:, :, :10], oblique.affine))
    return folder


def test_dicom_series_two_echoes_oblique_shuffled(dicom_folder, oblique):
    echoes = read_dicom_echoes(dicom_folder)
    assert [e.metadata["echo_time_ms"] for e in echoes] == [4.7, 9.2]
    expected = oblique.array[:, :, :10]
    np.testing.assert_array_equal(echoes[0].array, expected)
    np.testing.assert_array_equal(echoes[1].array, expected // 2)
    for e in echoes:
        np.testing.assert_allclose(e.affine, oblique.affine, atol=1e-4)
        assert e.orientation == oblique.orientation
        assert e.spacing_mm == pytest.approx((1.4, 1.6, 5.0), abs=1e-5)
    second = read_dicom_series(dicom_folder, echo=2)
    assert second.metadata["echo_number"] == 2 and second.metadata["patient_id"] == "9000001"
    with pytest.raises(OAKitError, match="echo 3"):
        read_dicom_series(dicom_folder, echo=3)


def test_dicom_affine_matches_header_arithmetic(dicom_folder):
    """Independent check: voxel (i, j, k) lands at IPP_k + i·Δc·row + j·Δr·col in LPS for the k-th slice."""
    vol = read_dicom_series(dicom_folder)
    slices = [pydicom.dcmread(p) for p in dicom_folder.iterdir()]
    ds = next(s for s in slices if int(s.EchoNumbers) == 1 and int(s.InstanceNumber) == 4)
    iop = np.array(ds.ImageOrientationPatient, dtype=float)
    dr, dc = (float(v) for v in ds.PixelSpacing)
    i, j = 6, 9
    lps = np.array(ds.ImagePositionPatient, dtype=float) + i * dc * iop[:3] + j * dr * iop[3:]
    ras = vol.affine @ np.array([i, j, 3, 1.0])
    np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-4)
    assert vol.array[i, j, 3] == ds.pixel_array[j, i]


def _copy_series(src: Path, dst: Path) -> Path:
    """Copy a series folder for a corruption test."""
    shutil.copytree(src, dst)
    return dst


def test_dicom_bad_inputs(tmp_path, dicom_folder):
    echo1 = sorted(
        (p for p in dicom_folder.iterdir() if int(pydicom.dcmread(p).EchoNumbers) == 1),
        key=lambda p: int(pydicom.dcmread(p).InstanceNumber),
    )
    gap = tmp_path / "gap"
    gap.mkdir()
    for p in echo1[:4] + echo1[5:]:
        shutil.copy(p, gap / p.name)
    with pytest.raises(OAKitError, match="inconsistent slice spacing") as info:
        read_dicom_series(gap)
    _one_line(info)

    ct = _copy_series(gap, tmp_path / "ct")
    victim = sorted(ct.iterdir())[0]
    ds = pydicom.dcmread(victim)
    ds.Modality = "CT"
    ds.save_as(victim)
    with pytest.raises(OAKitError, match="Modality is 'CT'"):
        read_dicom_series(ct)

    no_iop = _copy_series(gap, tmp_path / "noiop")
    victim = sorted(no_iop.iterdir())[1]
    ds = pydicom.dcmread(victim)
    del ds.ImageOrientationPatient
    ds.save_as(victim)
    with pytest.raises(OAKitError, match="ImageOrientationPatient missing") as info:
        read_dicom_series(no_iop)
    assert victim.name in _one_line(info)

    truncated = tmp_path / "trunc"
    truncated.mkdir()
    for p in echo1:
        shutil.copy(p, truncated / p.name)
    victim = sorted(truncated.iterdir())[2]
    victim.write_bytes(victim.read_bytes()[:-500])
    with pytest.raises(OAKitError, match=victim.name) as info:
        read_dicom_series(truncated)
    _one_line(info)

    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.dcm").write_bytes(b"\x00" * 50)
    with pytest.raises(OAKitError, match="a.dcm"):
        read_dicom_series(junk)
    with pytest.raises(OAKitError, match="not a folder"):
        read_dicom_series(tmp_path / "nowhere")


def test_dicom_mixed_series_need_a_uid(tmp_path, oblique):
    vol = MRIVolume(oblique.array[:, :, :8], oblique.affine)
    write_dicom_series(tmp_path / "mix", vol, series_uid="1.2.3.4", file_prefix="A")
    write_dicom_series(tmp_path / "mix", vol, series_uid="1.2.3.5", file_prefix="B")
    with pytest.raises(OAKitError, match="2 series"):
        read_dicom_series(tmp_path / "mix")
    assert read_dicom_series(tmp_path / "mix", series_uid="1.2.3.5").shape == vol.shape


# --------------------------------------------------------------------------------------------------------------- MHD
ITK_HEADER = """ObjectType = Image
NDims = 3
BinaryData = True
BinaryDataByteOrderMSB = False
CompressedData = False
TransformMatrix = 0 1 0 0 0 -1 -1 0 0
Offset = 12.5 -40 7.25
CenterOfRotation = 0 0 0
AnatomicalOrientation = RAI
ElementSpacing = 0.3646 0.3646 0.7
DimSize = 10 9 8
ElementType = MET_USHORT
ElementDataFile = image.raw
"""


def test_mhd_hand_written_itk_header(tmp_path):
    data = np.arange(10 * 9 * 8, dtype="<u2")
    (tmp_path / "image.raw").write_bytes(data.tobytes())
    (tmp_path / "image.mhd").write_text(ITK_HEADER)
    vol = read_mhd(tmp_path / "image.mhd")
    assert vol.shape == (10, 9, 8) and vol.array.dtype == np.uint16
    assert vol.array[1, 0, 0] == 1 and vol.array[0, 1, 0] == 10 and vol.array[0, 0, 1] == 90  # x fastest on disk
    lps_axis0 = np.array([0, 1, 0]) * 0.3646  # first TransformMatrix triple = axis 0 direction
    np.testing.assert_allclose(vol.affine[:3, 0], lps_axis0 * [-1, -1, 1])
    np.testing.assert_allclose(vol.affine[:3, 3], [-12.5, 40.0, 7.25])
    assert vol.spacing_mm == pytest.approx((0.3646, 0.3646, 0.7))


def test_mhd_round_trip_and_compressed(tmp_path, oblique):
    for compress in (False, True):
        path = write_mhd(tmp_path / f"v{compress}.mhd", oblique, compress=compress)
        back = read_mhd(path)
        np.testing.assert_array_equal(back.array, oblique.array)
        np.testing.assert_allclose(back.affine, oblique.affine, atol=1e-6)
        assert back.orientation == oblique.orientation
    header = (tmp_path / "vFalse.mhd").read_text().replace("ElementDataFile = vFalse.raw", "ElementDataFile = LOCAL")
    (tmp_path / "local.mhd").write_bytes(header.encode() + (tmp_path / "vFalse.raw").read_bytes())
    np.testing.assert_array_equal(read_mhd(tmp_path / "local.mhd").array, oblique.array)
    nii = read_nifti(write_nifti(tmp_path / "from_mhd.nii.gz", read_mhd(tmp_path / "vFalse.mhd")))
    np.testing.assert_allclose(nii.affine, oblique.affine, atol=1e-5)


def test_mhd_pair_copies_image_geometry_into_corrupt_mask(tmp_path, oblique, phantom):
    write_mhd(tmp_path / "img.mhd", oblique)
    mask = MRIVolume(phantom.labels.transpose(1, 2, 0).copy(), np.diag([1.0, 1.0, 1.0, 1.0]))  # wrong geometry
    write_mhd(tmp_path / "mask.mhd", mask)
    img, msk = read_mhd_pair(tmp_path / "img.mhd", tmp_path / "mask.mhd")
    assert msk.metadata["geometry_from_image"] is True
    np.testing.assert_array_equal(msk.affine, img.affine)
    np.testing.assert_array_equal(msk.array, mask.array)
    write_mhd(tmp_path / "good.mhd", MRIVolume(mask.array, oblique.affine))
    _, ok = read_mhd_pair(tmp_path / "img.mhd", tmp_path / "good.mhd")
    assert ok.metadata["geometry_from_image"] is False
    write_mhd(tmp_path / "small.mhd", MRIVolume(mask.array[:-1], oblique.affine))
    with pytest.raises(OAKitError, match="mask shape") as info:
        read_mhd_pair(tmp_path / "img.mhd", tmp_path / "small.mhd")
    _one_line(info)


def test_mhd_bad_inputs(tmp_path):
    data = np.arange(720, dtype="<u2")
    (tmp_path / "image.raw").write_bytes(data.tobytes()[:-10])
    (tmp_path / "image.mhd").write_text(ITK_HEADER)
    with pytest.raises(OAKitError, match="truncated") as info:
        read_mhd(tmp_path / "image.mhd")
    _one_line(info)
    (tmp_path / "two.mhd").write_text(ITK_HEADER.replace("NDims = 3", "NDims = 2"))
    with pytest.raises(OAKitError, match="NDims"):
        read_mhd(tmp_path / "two.mhd")
    (tmp_path / "type.mhd").write_text(ITK_HEADER.replace("MET_USHORT", "MET_RGB"))
    with pytest.raises(OAKitError, match="ElementType"):
        read_mhd(tmp_path / "type.mhd")
    (tmp_path / "noraw.mhd").write_text(ITK_HEADER.replace("image.raw", "gone.raw"))
    with pytest.raises(OAKitError, match="gone.raw"):
        read_mhd(tmp_path / "noraw.mhd")
    (tmp_path / "sp.mhd").write_text(ITK_HEADER.replace("0.3646 0.3646 0.7", "0.3 x 0.7"))
    with pytest.raises(OAKitError, match="ElementSpacing"):
        read_mhd(tmp_path / "sp.mhd")


# ------------------------------------------------------------------------------------------------------------- HDF5
def _skmtea_file(path: Path, phantom) -> np.ndarray:
    """Write a SKM-TEA DICOM-track HDF5 file from the phantom; returns the harmonised labels in (SI, AP, LR)."""
    harm = phantom.labels.transpose(2, 1, 0)[::-1, ::-1, :]  # (LR, AP, SI) RAS → (SI, AP, LR) = I, P, R
    channels = from_harmonised(harm, "skmtea", drop=("femur", "tibia", "patella"))
    echo1 = phantom.image.transpose(2, 1, 0)[::-1, ::-1, :].astype(np.uint16)
    with h5py.File(path, "w") as f:
        f["echo1"] = echo1
        f["echo2"] = echo1 // 3
        f["seg"] = labels_to_onehot(channels, 6)
        for k in ("echo1", "echo2", "rss"):
            for s in ("mean", "std", "min", "max"):
                f[f"stats/{k}/{s}"] = 1.0
    return np.where(np.isin(harm, [1, 3, 6]), 0, harm)


def test_skmtea_h5(tmp_path, phantom):
    expected = _skmtea_file(tmp_path / "MTR_001.h5", phantom)
    scan = read_skmtea_h5(tmp_path / "MTR_001.h5")
    assert set(scan) == {"echo1", "echo2", "seg"}
    assert scan["echo1"].orientation == ("I", "P", "R")
    assert scan["echo1"].spacing_mm == pytest.approx((0.3125, 0.3125, 0.8))
    assert scan["seg"].array.shape == (*scan["echo1"].shape, 6)
    harm = to_harmonised(scan["seg"].array, "skmtea")
    np.testing.assert_array_equal(harm, expected)
    # reoriented to RAS the labels line up with the phantom again
    canon = to_canonical(MRIVolume(harm, scan["seg"].affine))
    np.testing.assert_array_equal(canon.array, np.where(np.isin(phantom.labels, [1, 3, 6]), 0, phantom.labels))
    flipped = read_skmtea_h5(tmp_path / "MTR_001.h5", orientation=("SI", "AP", "RL"))  # DOSMA codes accepted
    assert flipped["echo1"].orientation == ("I", "P", "L")
    with pytest.raises(OAKitError, match="orientation"):
        read_skmtea_h5(tmp_path / "MTR_001.h5", orientation=("SI", "IS", "LR"))


def test_skmtea_bad_inputs(tmp_path, phantom):
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["echo1"] = np.zeros((8, 9, 10))
        f["echo2"] = np.zeros((8, 9, 10))
        f["seg"] = np.zeros((8, 9, 10, 4))
    with pytest.raises(OAKitError, match="'seg' has shape") as info:
        read_skmtea_h5(tmp_path / "bad.h5")
    _one_line(info)
    with h5py.File(tmp_path / "noecho.h5", "w") as f:
        f["echo1"] = np.zeros((8, 9, 10))
    with pytest.raises(OAKitError, match="'echo2' missing"):
        read_skmtea_h5(tmp_path / "noecho.h5")
    (tmp_path / "corrupt.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(OAKitError, match="corrupt.h5"):
        read_skmtea_h5(tmp_path / "corrupt.h5")


def test_iwoai_h5(tmp_path, phantom):
    harm = phantom.labels.transpose(2, 1, 0)[::-1, ::-1, :]
    channels = from_harmonised(harm, "iwoai", drop=("femur", "tibia", "patella"))
    with h5py.File(tmp_path / "train_001_V00.im", "w") as f:
        f["data"] = phantom.image.transpose(2, 1, 0)[::-1, ::-1, :].astype(np.float32)
    with h5py.File(tmp_path / "train_001_V00.seg", "w") as f:
        f["data"] = labels_to_onehot(channels, 6).astype(bool)
    img, seg = read_iwoai(tmp_path / "train_001_V00.im", tmp_path / "train_001_V00.seg")
    assert img.orientation == ("I", "P", "R") and seg.shape == (*img.shape, 6)
    np.testing.assert_array_equal(to_harmonised(seg.array, "iwoai"), np.where(np.isin(harm, [1, 3, 6]), 0, harm))
    assert read_iwoai(tmp_path / "train_001_V00.im")[1] is None
    with h5py.File(tmp_path / "small.seg", "w") as f:
        f["data"] = np.zeros((3, 3, 3, 6), bool)
    with pytest.raises(OAKitError, match="mask shape"):
        read_iwoai(tmp_path / "train_001_V00.im", tmp_path / "small.seg")


# ------------------------------------------------------------------------------------------------------------ MRNet
def test_mrnet_case_and_labels(tmp_path):
    sag = tmp_path / "train" / "sagittal"
    sag.mkdir(parents=True)
    stack = np.random.default_rng(0).integers(0, 256, (23, 256, 256), dtype=np.uint8)
    np.save(sag / "0007.npy", stack)
    vol = read_mrnet_case(sag / "0007.npy")
    np.testing.assert_array_equal(vol.array, stack)
    assert vol.metadata["plane"] == "sagittal" and vol.metadata["case"] == "0007"
    assert "unknown" in vol.metadata["geometry"]
    for task, labels in (("abnormal", "1,0,1"), ("acl", "0,0,1"), ("meniscus", "1,0,0")):
        rows = [f"{case:04d},{lab}" for case, lab in zip((0, 7, 1129), labels.split(","))]
        (tmp_path / f"train-{task}.csv").write_text("\n".join(rows) + "\n")
    table = read_mrnet_labels(tmp_path, "train")
    assert table["case"].tolist() == ["0000", "0007", "1129"]
    assert table["abnormal"].tolist() == [1, 0, 1] and table["acl"].tolist() == [0, 0, 1]
    assert table.loc[table["case"] == "0000", "meniscus"].item() == 1


def test_mrnet_bad_inputs(tmp_path):
    np.save(tmp_path / "0001.npy", np.zeros((256, 256), np.uint8))
    with pytest.raises(OAKitError, match="3-D") as info:
        read_mrnet_case(tmp_path / "0001.npy")
    _one_line(info)
    np.save(tmp_path / "0002.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(OAKitError, match="0002.npy"):
        read_mrnet_case(tmp_path / "0002.npy")
    for task in ("abnormal", "acl", "meniscus"):
        (tmp_path / f"valid-{task}.csv").write_text("1130,1\n1131,2\n" if task == "acl" else "1130,1\n1131,0\n")
    with pytest.raises(OAKitError, match=r"valid-acl.csv: label values \['2'\]"):
        read_mrnet_labels(tmp_path, "valid")
    with pytest.raises(OAKitError, match="split"):
        read_mrnet_labels(tmp_path, "test")


# ------------------------------------------------------------------------------------------------------ crosswalks
def test_oaizib_tibial_cartilage_split_by_side(phantom):
    harm = phantom.labels
    oaizib = from_harmonised(
        harm, "oaizib", merge=True, drop=("patella", "patellar_cartilage", "medial_meniscus", "lateral_meniscus")
    )
    assert set(np.unique(oaizib)) == {0, 1, 2, 3, 4}
    back = to_harmonised(oaizib, "oaizib", side="R", affine=phantom.affine)
    tib = np.isin(harm, [4, 5])
    agreement = np.mean(back[tib] == harm[tib])
    assert agreement > 0.99
    # left knee: mirrored volume, medial now at +x
    left_back = to_harmonised(oaizib[::-1], "oaizib", side="L", affine=phantom.affine)
    np.testing.assert_array_equal(left_back, back[::-1])
    with pytest.raises(OAKitError, match="side"):
        to_harmonised(oaizib, "oaizib")


def test_oaizib_cm_and_synthetic_round_trips(phantom):
    cm = from_harmonised(phantom.labels, "oaizib_cm", drop=(6, 7, 8, 9))
    np.testing.assert_array_equal(to_harmonised(cm, "oaizib_cm"), np.where(phantom.labels > 5, 0, phantom.labels))
    np.testing.assert_array_equal(
        to_harmonised(from_harmonised(phantom.labels, "synthetic"), "synthetic"), phantom.labels
    )


def test_crosswalks_cover_every_tissue_without_silent_loss():
    for source, table in CROSSWALKS.items():
        assert set(table.values()) <= set(LABELS), source
    assert CROSSWALKS["skmtea"][1] == LABEL_IDS["patellar_cartilage"]
    assert CROSSWALKS["iwoai"][6] == LABEL_IDS["medial_meniscus"]
    harm = np.array([[[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]], dtype=np.uint8)
    with pytest.raises(OAKitError, match="femur") as info:
        from_harmonised(harm, "skmtea")  # femur has no SKM-TEA channel: must be dropped explicitly
    _one_line(info)
    with pytest.raises(OAKitError, match="merge=True"):
        from_harmonised(harm, "oaizib", drop=(6, 7, 8, 9))
    with pytest.raises(OAKitError, match="drop"):
        from_harmonised(harm, "skmtea", drop=("kneecap",))


def test_unknown_label_values_are_named():
    bad = np.array([[[0, 1, 7, 12]]])
    with pytest.raises(OAKitError, match=r"values \[7, 12\]") as info:
        to_harmonised(bad, "oaizib", side="R")
    _one_line(info)
    with pytest.raises(OAKitError, match=r"values \[10\]"):
        from_harmonised(np.array([[[10]]]), "synthetic")
    with pytest.raises(OAKitError, match="several channels"):
        onehot_to_labels(np.ones((2, 2, 2, 6), np.uint8))
    with pytest.raises(OAKitError, match="unknown label convention"):
        to_harmonised(bad, "ski10x")
    with pytest.raises(OAKitError, match="non-integer"):
        to_harmonised(np.array([[[0.5]]]), "synthetic")


def test_cohort_mri_reads_back(tiny_cohort):
    """The synthetic cohort's NIfTI files open with the RAS affine and harmonised labels."""
    images = sorted((tiny_cohort / "mri").glob("*_DESS.nii.gz"))
    assert images
    img = read_nifti(images[0])
    lab = read_nifti(images[0].with_name(images[0].name.replace("_DESS", "_labels")))
    assert img.orientation == ("R", "A", "S") and img.shape == lab.shape
    np.testing.assert_allclose(img.affine, lab.affine)
    np.testing.assert_array_equal(to_harmonised(lab.array, "synthetic"), lab.array)
    side = images[0].name.split("_")[1]
    right = mirror_to_right(lab, side).array
    med = np.argwhere(right == LABEL_IDS["medial_tibial_cartilage"])[:, 0].mean()
    lat = np.argwhere(right == LABEL_IDS["lateral_tibial_cartilage"])[:, 0].mean()
    assert med < lat  # right orientation: medial toward −x


def test_dicom_rle_compressed_series(tmp_path, oblique):
    """Compressed transfer syntaxes decode through pydicom's plugins (RLE Lossless written here)."""
    vol = MRIVolume(oblique.array[:, :, :8], oblique.affine)
    for path in write_dicom_series(tmp_path / "rle", vol):
        ds = pydicom.dcmread(path)
        ds.compress(pydicom.uid.RLELossless)
        ds.save_as(path)
    assert pydicom.dcmread(next((tmp_path / "rle").iterdir())).file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    back = read_dicom_series(tmp_path / "rle")
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-4)
