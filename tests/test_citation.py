"""CITATION.cff validates against the Citation File Format 1.2.0 schema, offline, and
agrees with the licences and the repository's address.

The schema, tests/data/citation-file-format-1.2.0.schema.json, is the official one
(its ``$id`` names citation-file-format.github.io), as shipped in cffconvert 2.0.0's wheel.
cffconvert itself is not used: it pins jsonschema < 4, which would downgrade the
jsonschema that jupyter-book's toolchain installs."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import jsonschema
import yaml
from repository_url import config_url

REPO = Path(__file__).resolve().parents[1]
CFF = REPO / "CITATION.cff"
SCHEMA = Path(__file__).parent / "data" / "citation-file-format-1.2.0.schema.json"


def errors(cff: dict) -> list[str]:
    """Every schema violation of ``cff`` (a parsed CITATION.cff), one line each."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(cff)]


def load(path: Path) -> dict:
    """CITATION.cff as YAML, with YAML dates written back as the ISO strings the schema
    expects (``date-released: 2025-09-03`` is a date to YAML, a string to the schema)."""
    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value.isoformat() if isinstance(value, datetime.date) else value
    return plain(yaml.safe_load(path.read_text(encoding="utf-8")))


def test_citation_file_validates() -> None:
    """CITATION.cff is valid Citation File Format 1.2.0."""
    assert errors(load(CFF)) == []


def test_validation_can_fail(tmp_path: Path) -> None:
    """The same file without its authors is rejected, so the check above can fail."""
    broken = load(CFF)
    del broken["authors"]
    assert any("authors" in line for line in errors(broken))


def test_citation_agrees_with_licences_and_repository() -> None:
    """The licences named are the files in the repository (code: MIT, as pyproject.toml
    says; text: CC BY 4.0), and the address is ``repository.url`` of ``_config.yml``."""
    cff = yaml.safe_load(CFF.read_text(encoding="utf-8"))
    assert cff["license"] == ["MIT", "CC-BY-4.0"]
    assert (REPO / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    text = (REPO / "LICENSE-text").read_text(encoding="utf-8")
    assert text.startswith("Attribution 4.0 International")
    assert "Creative Commons Attribution 4.0 International Public License" in text
    assert 'license = { text = "MIT" }' in (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert cff["repository-code"] == config_url(), "CITATION.cff: not _config.yml's repository.url"
