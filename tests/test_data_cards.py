"""Every data card in data_cards/ follows the schema in docs/DESIGN.md; the validator catches each kind of problem."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from oa_kit.errors import OAKitError
from oa_kit.io.datacard import REQUIRED_SECTIONS, read_card, validate_card, validate_cards

CARDS = Path(__file__).resolve().parents[1] / "data_cards"
EXPECTED = {"oai", "most", "chen2018_kl", "oai_zib", "oaizib_cm", "skm_tea", "mrnet", "iwoai"}


def test_one_card_per_dataset_oa_kit_reads():
    assert EXPECTED <= {p.stem for p in CARDS.glob("*.md")}


@pytest.mark.parametrize("card", sorted(CARDS.glob("*.md")), ids=lambda p: p.name)
def test_every_card_is_valid(card):
    assert validate_card(card) == []
    front = read_card(card).front_matter
    for module in front["used_by"]:
        assert importlib.util.find_spec(module) is not None, f"{card.name}: used_by {module} does not exist"


def test_chen_card_states_attribution_derivative_and_missing_test_split():
    card = read_card(CARDS / "chen2018_kl.md")
    text = " ".join(card.sections.values()) + str(card.front_matter)
    assert card.front_matter["license"] == "cc-by-4.0"
    assert "10.17632/56rmx5bjcr.1" in text and "CLAHE" in text and "test split" in text


VALID = """---
name: {name}
pretty_name: Example
license: cc-by-4.0
access: download it
modality: [radiograph]
size: 10 images
label_definitions:
  "0": nothing
known_biases: [small]
used_by: [oa_kit.io.oai]
---
""" + "".join(
    f"\n## {title}\n{'Some text that is long enough to count as content. ' * 2}\n" for title in REQUIRED_SECTIONS
)


def test_validator_accepts_a_minimal_card_and_reports_each_problem(tmp_path):
    good = tmp_path / "example.md"
    good.write_text(VALID.format(name="example"))
    assert validate_card(good) == []
    cases = {
        "name: example": ("name: other", "expected the slug 'example'"),
        "modality: [radiograph]": ("modality: radiograph", "modality: expected a non-empty list"),
        "size: 10 images": ("size: many", "size: expected text with counts"),
        '  "0": nothing': ('  "0": ""', "has no meaning text"),
        "used_by: [oa_kit.io.oai]": ("used_by: [somewhere]", "'somewhere' is not valid"),
        "known_biases: [small]\n": ("", "missing key 'known_biases'"),
        "## Uses\n": ("## Use cases\n", "missing section '## Uses'"),
    }
    for old, (new, problem) in cases.items():
        bad = tmp_path / "example.md"
        bad.write_text(VALID.format(name="example").replace(old, new, 1))
        problems = validate_card(bad)
        assert any(problem in p for p in problems), (old, problems)
    swapped = (
        VALID.format(name="example").replace("## Motivation", "## TEMP").replace("## Composition", "## Motivation")
    )
    good.write_text(swapped.replace("## TEMP", "## Composition"))
    assert any("out of order" in p for p in validate_card(good))
    short = VALID.format(name="example").replace("## Maintenance\n", "## Maintenance\nTBD\n\n## Extra\n", 1)
    good.write_text(short)
    assert any("Maintenance" in p and "too short" in p for p in validate_card(good))
    good.write_text("# no front matter\n")
    assert "no YAML front matter" in validate_card(good)[0]
    good.write_text("---\n- a list\n---\n")
    assert "expected a YAML mapping" in validate_card(good)[0]
    with pytest.raises(OAKitError, match="no data cards"):
        validate_cards(tmp_path / "empty")
