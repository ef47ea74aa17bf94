"""Chapters as a Colab reader runs them: abn installed by the chapter's own install cell
into an environment that already has PyTorch, the notebook alone in a folder.

Colab has its own PyTorch (and NumPy, pandas, plotly, Jupyter, ...) but not abn, and a
notebook opened there has no checkout around it: no ``results/``, no ``_config.yml``.
The test builds such an environment cheaply, runs chapter 0's install cell with the
repository address pointed at this checkout's committed HEAD (what Colab would get from
GitHub after a push), then the chapter, then appendix B (which lists the book's other
chapters, and must say they are not there rather than fail), and checks that

* pip installed abn and nothing else: PyTorch is the same version at the same path;
* the chapters ran without error, from a folder with no ``results/`` or book beside it;
* the stored results (``results/``, checkpoints included) came with the package, byte
  for byte as committed, and ``abn.results`` reads them there.

It needs git, and the network for pip's build of abn (setuptools), as Colab has.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from repository_url import config_url

REPO = Path(__file__).resolve().parents[1]
# Light pages: quoted numbers and stored results. Each runs in a kernel of its own, its
# install cell included; the report follows the last.
CHAPTERS = [REPO / "book" / f"{name}.ipynb" for name in ("00_welcome", "appendix_b_provenance")]
STORED = ("*.json", "*.pt", "*/*.json")  # pyproject.toml's package data of abn._stored

# Run by the fresh environment's python: the chapters as Colab would run them, then a report.
DRIVER = r'''
import json, sys
import nbformat
from nbclient import NotebookClient

old_url, new_url, workdir, *chapters = sys.argv[1:]
colab = nbformat.v4.new_code_cell(
    'import sys, types\nsys.modules["google.colab"] = types.ModuleType("google.colab")')
report = nbformat.v4.new_code_cell(
    "import json, sys, torch, abn\nfrom abn.results import load_results, stored_results\n"
    "print(json.dumps({'prefix': sys.prefix, 'abn': abn.__file__,\n"
    "    'torch': [torch.__version__, torch.__file__], 'stored': str(stored_results()),\n"
    "    'bench': [r['file'] for r in load_results(kind='bench')]}))")
for i, chapter in enumerate(chapters):
    nb = nbformat.read(chapter, as_version=4)
    install = next(c for c in nb.cells if c.cell_type == "code")
    assert old_url in install.source, f"{chapter}: the install cell does not install from repository.url"
    install.source = install.source.replace(old_url, new_url)
    nb.cells = [colab, *nb.cells, *([report] if i == len(chapters) - 1 else [])]
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": workdir}}).execute()
    print(f"ran {chapter}", flush=True)
print(nb.cells[-1].outputs[-1]["text"])
'''


def git_blob(path: Path) -> str:
    """The git object id of a file's bytes (as ``git hash-object`` computes it)."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def committed_results() -> dict[str, str]:
    """``{path relative to results/: blob id}`` of the stored results at HEAD."""
    listing = subprocess.run(["git", "ls-tree", "-r", "HEAD", "results/"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    found = {}
    for line in listing.splitlines():
        meta, path = line.split("\t")
        name = Path(path).relative_to("results")
        if any(name.match(pattern) and len(name.parts) == len(Path(pattern).parts)
               for pattern in STORED):
            found[name.as_posix()] = meta.split()[2]
    return found


def colab_like_environment(root: Path) -> Path:
    """A fresh virtual environment with this environment's packages but not abn; its python.

    Colab's PyTorch and Jupyter stack are stood in for by the packages of the environment
    running the tests (the same base interpreter), without copying them: the new
    environment's site-packages names, in a .pth file, a folder of links to every entry of
    ours except abn's. pip installs into the new environment's own site-packages, so what
    it adds or replaces shows there; the linked packages stay untouched.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root], check=True)
    python = root / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    base = root / "colab-packages"
    base.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().replace("_", "").lstrip(".").startswith(("abn", "editable.abn")):
            (base / entry.name).symlink_to(entry)
    (site / "colab_packages.pth").write_text(f"import site; site.addsitedir({str(base)!r})\n")
    return python


def torch_in(python: Path) -> list[str]:
    """[version, file] of the torch that ``python`` imports."""
    out = subprocess.run([python, "-c", "import torch; print(torch.__version__); print(torch.__file__)"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git (pip installs abn from git)")
def test_chapters_run_as_in_colab(tmp_path: Path) -> None:
    """Chapter 0's install cell keeps PyTorch, installs only abn with its stored results,
    and chapter 0 and appendix B pass with no ``results/`` or book beside them."""
    start = time.perf_counter()
    python = colab_like_environment(tmp_path / "env")
    torch_before = torch_in(python)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()
    workdir = tmp_path / "content"  # Colab's working folder: the notebook, nothing else
    workdir.mkdir()
    assert not (workdir / "results").exists() and not (tmp_path / "results").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ABN_PROFILE")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    done = subprocess.run([python, "-c", DRIVER, f"git+{config_url()}",
                           f"git+file://{REPO}@{head}", workdir, *map(str, CHAPTERS)],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"a chapter failed as in Colab:\n{done.stdout[-3000:]}{done.stderr[-6000:]}"
    report = json.loads(done.stdout.strip().splitlines()[-1])

    site = Path(report["abn"]).parents[1]
    assert Path(report["prefix"]) == tmp_path / "env", "the kernel did not run the fresh environment"
    assert site.is_relative_to(tmp_path / "env"), f"abn imported from {report['abn']}, not the install"
    installed = sorted(p.name for p in site.iterdir() if p.name not in ("colab_packages.pth", "__pycache__"))
    assert [n for n in installed if not n.startswith("abn")] == [], f"pip installed more than abn: {installed}"
    assert report["torch"] == torch_before == torch_in(python), "PyTorch was replaced"

    stored = Path(report["stored"])
    assert stored == site / "abn" / "_stored"
    shipped = {p.relative_to(stored).as_posix(): git_blob(p) for p in stored.rglob("*") if p.is_file()}
    assert shipped == committed_results(), "the installed stored results differ from results/ at HEAD"
    bench = sorted(name for name in committed_results()
                   if name.endswith(".json") and "/" not in name
                   and json.loads((REPO / "results" / name).read_text()).get("kind") == "bench")
    assert sorted(report["bench"]) == bench
    print(f"Colab-like install, chapter 0 and appendix B: {time.perf_counter() - start:.0f} s")
