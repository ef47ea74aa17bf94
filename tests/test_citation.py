"""CITATION.cff validates (cffconvert, offline) and agrees with the licences and the
repository's address."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from repository_url import config_url

REPO = Path(__file__).resolve().parents[1]
CFF = REPO / "CITATION.cff"
CFFCONVERT = Path(sys.executable).parent / "cffconvert"


def validate(path: Path) -> subprocess.CompletedProcess:
    """``cffconvert --validate`` on ``path`` (reads only the file: no network)."""
    return subprocess.run([CFFCONVERT, "--validate", "--infile", path], capture_output=True,
                          text=True, timeout=60)


def test_citation_file_validates() -> None:
    """CITATION.cff is valid Citation File Format 1.2.0."""
    done = validate(CFF)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def test_validation_can_fail(tmp_path: Path) -> None:
    """The same file without its authors is rejected, so the check above can fail."""
    broken = yaml.safe_load(CFF.read_text(encoding="utf-8"))
    del broken["authors"]
    (tmp_path / "CITATION.cff").write_text(yaml.safe_dump(broken), encoding="utf-8")
    assert validate(tmp_path / "CITATION.cff").returncode != 0


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
