"""Data cards (``data_cards/<name>.md``): YAML front matter + Datasheets-for-Datasets sections, parsed and validated.

Schema (docs/DESIGN.md, "Data cards"): front-matter keys ``name`` (slug = file stem), ``pretty_name``, ``license``,
``access``, ``modality`` (list), ``size`` (text with counts), ``label_definitions`` (mapping label → meaning),
``known_biases`` (list), ``used_by`` (oa_kit modules); then the sections listed in :data:`REQUIRED_SECTIONS`, in order,
each with content. Extra keys (e.g. Hugging Face ``tags``) are allowed.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import yaml

from oa_kit.errors import OAKitError

REQUIRED_KEYS = (
    "name",
    "pretty_name",
    "license",
    "access",
    "modality",
    "size",
    "label_definitions",
    "known_biases",
    "used_by",
)
REQUIRED_SECTIONS = (
    "Motivation",
    "Composition",
    "Collection",
    "Preprocessing and labelling",
    "Uses",
    "Distribution",
    "Maintenance",
)
MIN_SECTION_CHARS = 40
_SLUG = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
_MODALITY = re.compile(r"^[a-z][a-z0-9_-]*$")
_MODULE = re.compile(r"^oa_kit(?:\.[a-z_][a-z0-9_]*)+$")


@dataclasses.dataclass(frozen=True)
class DataCard:
    """A parsed card: its front matter and its ``## `` sections (title → text)."""

    path: Path
    front_matter: dict[str, Any]
    sections: dict[str, str]


def read_card(path: str | os.PathLike) -> DataCard:
    """Parse a card; raises ``OAKitError`` when the front matter is absent or not a YAML mapping."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    match = re.match(r"^---[ \t]*\n(.*?)\n---[ \t]*\n(.*)$", text, flags=re.S)
    if not match:
        raise OAKitError(f"{path}: no YAML front matter; expected the file to start with '---' and close it with '---'")
    try:
        front = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        raise OAKitError(
            f"{path}: front matter is not valid YAML ({' '.join(str(exc).split())}); expected YAML"
        ) from None
    if not isinstance(front, dict):
        raise OAKitError(f"{path}: front matter is a {type(front).__name__}; expected a YAML mapping of keys")
    return DataCard(path, front, _sections(match.group(2)))


def _sections(body: str) -> dict[str, str]:
    """Split Markdown into ``## `` sections (title → text up to the next ``## ``); order kept."""
    sections: dict[str, str] = {}
    title = None
    lines: list[str] = []
    for line in body.splitlines():
        heading = re.match(r"^##\s+(.+?)\s*$", line)
        if heading and not line.startswith("###"):
            if title is not None:
                sections[title] = "\n".join(lines).strip()
            title, lines = heading.group(1), []
        elif title is not None:
            lines.append(line)
    if title is not None:
        sections[title] = "\n".join(lines).strip()
    return sections


def validate_card(path: str | os.PathLike) -> list[str]:
    """Check one card against the schema; returns a list of problems (empty when the card is valid)."""
    path = Path(path)
    try:
        card = read_card(path)
    except (OAKitError, OSError, UnicodeDecodeError) as exc:
        return [str(exc)]
    return [
        f"{path.name}: {p}" for p in _front_problems(card.front_matter, path.stem) + _section_problems(card.sections)
    ]


def validate_cards(folder: str | os.PathLike) -> dict[str, list[str]]:
    """Validate every ``*.md`` card in ``folder``: file name → problems."""
    folder = Path(folder)
    cards = sorted(folder.glob("*.md"))
    if not cards:
        raise OAKitError(f"{folder}: no data cards (*.md); expected one card per dataset")
    return {card.name: validate_card(card) for card in cards}


def _front_problems(front: dict[str, Any], stem: str) -> list[str]:
    """Problems with the front-matter keys and their types."""
    problems = [f"missing key {key!r}" for key in REQUIRED_KEYS if key not in front]
    for key in ("pretty_name", "license", "access"):
        if key in front and not _text(front[key]):
            problems.append(f"{key}: expected non-empty text")
    name = front.get("name")
    if "name" in front and (not isinstance(name, str) or not _SLUG.match(name) or name != stem):
        problems.append(f"name: {name!r}; expected the slug {stem!r} (the file stem)")
    if "size" in front and not (_text(front["size"]) and re.search(r"\d", str(front["size"]))):
        problems.append("size: expected text with counts (a number)")
    problems += _list_problems(front, "modality", _MODALITY, "lower-case modality words such as radiograph, mri")
    problems += _list_problems(front, "used_by", _MODULE, "oa_kit module paths such as oa_kit.io.oai")
    problems += _list_problems(front, "known_biases", None, "sentences")
    labels = front.get("label_definitions")
    if "label_definitions" in front:
        if not isinstance(labels, dict) or not labels:
            problems.append("label_definitions: expected a non-empty mapping label → meaning")
        else:
            problems += [f"label_definitions: {k!r} has no meaning text" for k, v in labels.items() if not _text(v)]
    return problems


def _list_problems(front: dict[str, Any], key: str, pattern: re.Pattern | None, what: str) -> list[str]:
    """A non-empty list of non-empty strings, each matching ``pattern`` when given."""
    if key not in front:
        return []
    values = front[key]
    if not isinstance(values, list) or not values:
        return [f"{key}: expected a non-empty list of {what}"]
    bad = [v for v in values if not _text(v) or (pattern is not None and not pattern.match(str(v)))]
    return [f"{key}: {v!r} is not valid; expected {what}" for v in bad]


def _section_problems(sections: dict[str, str]) -> list[str]:
    """Required sections present, in order, each with at least :data:`MIN_SECTION_CHARS` of text."""
    problems = [f"missing section '## {title}'" for title in REQUIRED_SECTIONS if title not in sections]
    present = [title for title in sections if title in REQUIRED_SECTIONS]
    if not problems and present != list(REQUIRED_SECTIONS):
        problems.append(f"sections out of order: {present}; expected {list(REQUIRED_SECTIONS)}")
    problems += [
        f"section '## {title}' is empty or too short; expected at least {MIN_SECTION_CHARS} characters"
        for title in REQUIRED_SECTIONS
        if title in sections and len(sections[title]) < MIN_SECTION_CHARS
    ]
    return problems


def _text(value: Any) -> bool:
    """Whether ``value`` is a non-empty string (numbers are not text)."""
    return isinstance(value, str) and bool(value.strip())
