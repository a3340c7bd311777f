"""The feature schema: text and bookkeeping columns are never features, unknown columns are named, not guessed."""

from __future__ import annotations

import pandas as pd
import pytest

from oa_kit.errors import OAKitError
from oa_kit.features import FeatureAssembler, family_of, feature_columns
from oa_kit.models.kl.predict import KL_TABLE_COLUMNS


def test_kl_output_text_columns_are_not_features():
    columns = [*KL_TABLE_COLUMNS, "kl_emb_000", "age_years"]
    assert feature_columns(columns) == ["kl_p0", "kl_p1", "kl_p2", "kl_p3", "kl_p4", "kl_emb_000", "age_years"]


def test_known_columns_get_their_family():
    assert family_of("womac_pain") == "clinical" and family_of("bmi_kg_m2") == "clinical"
    assert family_of("jsn_medial") == "radiograph" and family_of("kl_emb_003") == "radiograph"
    assert family_of("thickness_mm_mean_tibial_medial") == "mri" and family_of("mri_emb_001") == "mri"


def test_unknown_column_is_named_and_can_be_declared():
    table = pd.DataFrame({"participant_id": ["1", "2", "3"], "side": "R", "age": [50, 60, 70], "hba1c": [5, 6, 7]})
    with pytest.raises(OAKitError, match=r"hba1c: column not in the feature schema.*families=\{'hba1c': 'clinical'\}"):
        FeatureAssembler().fit(table)
    fitted = FeatureAssembler(families={"hba1c": "clinical"}).fit(table)
    assert fitted.feature_families_["hba1c"] == "clinical"
    with pytest.raises(OAKitError, match="families\\['hba1c'\\]: 'labs'"):
        family_of("hba1c", {"hba1c": "labs"})
