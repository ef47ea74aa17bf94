"""The GitHub Actions workflows (.github/workflows): linted, least privilege, pinned, and
running exactly the README's two commands.

``publish.yml`` builds the book on a push to main and deploys ``_build/html`` to GitHub
Pages; ``tests.yml`` runs the test command on pull requests. actionlint (syntax, types,
expressions) and zizmor (security: permissions, pinning, credentials, injection) check
them offline; the other tests read the YAML, so a workflow that drifts from the README
fails here rather than on GitHub.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
PUBLISH, TESTS = WORKFLOWS / "publish.yml", WORKFLOWS / "tests.yml"
BIN = Path(sys.executable).parent  # actionlint and zizmor come with requirements.txt
_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", re.M)


def readme_commands(readme: Path = REPO / "README.md") -> dict[str, str]:
    """The README's two commands: ``build`` (the first bash block after "1. Install and
    build the book") and ``test`` (after "2. Install and run the tests")."""
    text = readme.read_text(encoding="utf-8")
    commands = {}
    for key, heading in (("build", "**1. Install and build the book**"),
                         ("test", "**2. Install and run the tests**")):
        assert heading in text, f"README has no {heading!r}"
        block = re.search(r"```bash\n(.*?)\n```", text[text.index(heading):], re.S)
        assert block, f"no bash block after {heading!r}"
        commands[key] = block.group(1).strip()
    return commands


def load(path: Path) -> dict:
    """A workflow as a dict; PyYAML reads the key ``on`` as True, put back under "on"."""
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def steps_running(workflow: dict, command: str) -> list[tuple[str, dict]]:
    """(job, step) for every step whose ``run`` is exactly ``command``."""
    return [(name, step) for name, job in workflow["jobs"].items() for step in job["steps"]
            if step.get("run", "").strip() == command]


def test_actionlint() -> None:
    """actionlint finds nothing in either workflow."""
    done = subprocess.run([BIN / "actionlint", "-no-color", PUBLISH, TESTS], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor() -> None:
    """zizmor, offline and pedantic, finds nothing in the workflows."""
    done = subprocess.run([BIN / "zizmor", "--offline", "--persona", "pedantic", "--no-progress",
                           "--color", "never", WORKFLOWS], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_publish_runs_the_readme_build_command() -> None:
    """On a push to main: the README's build command, as written (no added environment),
    then ``_build/html`` uploaded and deployed to Pages."""
    workflow = load(PUBLISH)
    assert workflow["on"]["push"]["branches"] == ["main"]
    found = steps_running(workflow, readme_commands()["build"])
    assert len(found) == 1, "publish.yml must run the README's build command once, verbatim"
    job, step = found[0]
    assert "env" not in step and "env" not in workflow["jobs"][job] and "env" not in workflow
    steps = workflow["jobs"][job]["steps"]
    upload = [s for s in steps[steps.index(step):] if "upload-pages-artifact" in s.get("uses", "")]
    assert upload and upload[0]["with"]["path"] == "_build/html"
    deploy = [s for j in workflow["jobs"].values() for s in j["steps"]
              if "deploy-pages" in s.get("uses", "")]
    assert len(deploy) == 1


def test_tests_run_the_readme_test_command() -> None:
    """On every pull request: the README's test command, as written."""
    workflow = load(TESTS)
    assert "pull_request" in workflow["on"]
    found = steps_running(workflow, readme_commands()["test"])
    assert len(found) == 1, "tests.yml must run the README's test command once, verbatim"
    job, step = found[0]
    assert "env" not in step and "env" not in workflow["jobs"][job] and "env" not in workflow


@pytest.mark.parametrize("path", [PUBLISH, TESTS], ids=lambda p: p.name)
def test_least_privilege_and_pinned(path: Path) -> None:
    """No permissions by default, each job only what it needs (writing only to deploy
    Pages); every action pinned to a full commit SHA with its release in a comment;
    checkout keeps no credentials."""
    workflow = load(path)
    assert workflow["permissions"] == {}
    allowed_writes = {"pages", "id-token"}
    for name, job in workflow["jobs"].items():
        writes = {k for k, v in job.get("permissions", {}).items() if v == "write"}
        assert writes <= allowed_writes, f"{path.name}: job {name} writes {writes}"
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False
    uses = _USES.findall(path.read_text(encoding="utf-8"))
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), f"not pinned to a SHA: {action}"
        assert re.match(r"\s+#\s*v\d", comment), f"{action}: no '# vX.Y.Z' comment"
    assert "concurrency" in workflow


def test_readme_commands_are_found() -> None:
    """The parser reads the README's two commands (and would fail on a README without)."""
    commands = readme_commands()
    assert commands["build"].endswith("jupyter-book build . -W --keep-going")
    assert commands["test"].endswith(".venv/bin/pytest")
    assert load(PUBLISH)["on"] and steps_running(load(PUBLISH), "echo not there") == []
