"""MRI weights sidecar validation (#24): every setting ``MRISegmenter.from_pretrained`` reads is type- and
range-checked, and a bad one is one ``OAKitError`` line naming the JSON file and the field."""

from __future__ import annotations

import json

import pytest
import torch

from oa_kit.errors import OAKitError
from oa_kit.models.mri.inference import SIDECAR_FIELDS, MRISegmenter
from oa_kit.models.mri.train import TrainResult, _metadata, save_weights


@pytest.fixture
def weights(tmp_path):
    """A tiny 2.5D model's weights and sidecar (as training writes them), to be edited by each case."""
    torch.manual_seed(0)
    model = MRISegmenter(channels=(4, 8), strides=(2,), context_mm=2.0)
    return save_weights(TrainResult(net=model._build(), metadata=_metadata(model)), tmp_path / "w.safetensors")


def _edit(path, key: str, value) -> None:
    """Set (or, with ``...``, delete) the dotted ``key`` of the sidecar beside ``path``."""
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    *parents, last = key.split(".")
    node = meta
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    sidecar.write_text(json.dumps(meta))


def test_valid_sidecar_loads_with_its_settings(weights):
    model = MRISegmenter.from_pretrained(weights)
    assert model.channels == (4, 8) and model.strides == (2,) and model.num_res_units == 1
    assert model.spacing_mm == 0.5 and model.roi_size == (128, 128) and model.context_mm == 2.0
    assert isinstance(model.roi_size[0], int) and isinstance(model.spacing_mm, float)


@pytest.mark.parametrize("key", sorted(SIDECAR_FIELDS))
def test_missing_required_setting_is_one_line(weights, key):
    _edit(weights, key, ...)
    with pytest.raises(OAKitError, match=rf"w\.json: {key} missing; expected") as err:
        MRISegmenter.from_pretrained(weights)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("spacing_mm", "0.5"),  # a string where a number belongs
        ("spacing_mm", -0.5),  # negative spacing
        ("spacing_mm", 0),
        ("spacing_mm", True),  # a JSON boolean is not a number
        ("spacing_mm", float("nan")),  # json writes NaN and reads it back
        ("spacing_mm", [0.5]),
        ("spacing_mm", None),
        ("roi_size", [128]),  # wrong length
        ("roi_size", [128, 0]),
        ("roi_size", [128.5, 128]),
        ("roi_size", "128x128"),
        ("roi_size", 128),
        ("roi_size", {"h": 128, "w": 128}),
        ("context_mm", -2.0),
        ("context_mm", "2"),
        ("architecture.channels", []),
        ("architecture.channels", [0, 8]),  # channels 0
        ("architecture.channels", [4, "8"]),
        ("architecture.channels", "4,8"),
        ("architecture.strides", [0]),
        ("architecture.strides", [-2]),
        ("architecture.num_res_units", -1),
        ("architecture.num_res_units", 1.5),
        ("architecture.spatial_dims", 3),
        ("architecture.out_channels", 10),
        ("architecture.in_channels", 0),
        ("architecture.in_channels", "3"),
    ],
)
def test_wrong_type_or_range_is_one_line(weights, key, value):
    _edit(weights, key, value)
    with pytest.raises(OAKitError, match=rf"w\.json: {key} = .*; expected a") as err:
        MRISegmenter.from_pretrained(weights)
    assert "\n" not in str(err.value)


def test_sidecar_that_is_a_list_or_has_a_list_for_an_object(weights):
    sidecar = weights.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    _edit(weights, "architecture", [4, 8])
    with pytest.raises(OAKitError, match=r"w\.json: architecture = \[4, 8\]; expected a JSON object"):
        MRISegmenter.from_pretrained(weights)
    sidecar.write_text(json.dumps([meta]))
    with pytest.raises(OAKitError, match=r"w\.json: JSON list; expected an object"):
        MRISegmenter.from_pretrained(weights)


def test_inconsistent_settings_are_one_line(weights):
    _edit(weights, "architecture.strides", [2, 2])
    with pytest.raises(OAKitError, match=r"w\.json: architecture.strides has 2 entries for 2 channels; expected 1"):
        MRISegmenter.from_pretrained(weights)
    _edit(weights, "architecture.strides", [2])
    _edit(weights, "roi_size", [128, 129])
    with pytest.raises(OAKitError, match=r"w\.json: roi_size = \[128, 129\]; expected multiples of 2"):
        MRISegmenter.from_pretrained(weights)


def test_settings_absent_from_pre_25d_files_default_to_2d(weights):
    """Files written before the 2.5D option have no context_mm/in_channels: they load as the one-channel model (and
    here its tensors, made for three channels, do not fit: one line naming the file)."""
    _edit(weights, "context_mm", ...)
    _edit(weights, "architecture.in_channels", ...)
    with pytest.raises(OAKitError, match=r"w\.safetensors: tensors do not match the architecture in w\.json"):
        MRISegmenter.from_pretrained(weights)
