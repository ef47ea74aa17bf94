"""Sphinx extension: write what myst-nb's execution of each chapter did to a JSON file.

The book build is the one place chapters are executed in CI: ``tests/test_chapters.py``
reads the executed notebooks myst-nb leaves in ``_build/jupyter_execute/`` and, from the
file this extension writes, each chapter's run time and, when it failed, the traceback
(``_build/execution.json``, beside ``jupyter_execute/``)::

    {"book/06_training": {"runtime": 95.2, "succeeded": true, "error": null,
                          "traceback": null, "method": "force", "mtime": 1763900000.0}}

myst-nb keeps these records in the Sphinx environment (``env.nb_metadata``); its own
``nb-exec-table`` directive shows the same data on a page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from myst_nb.sphinx_ import NbMetadataCollector

REPORT = "execution.json"  # in the build folder (_build/), beside jupyter_execute/


def execution_records(env: Any) -> dict[str, dict]:
    """``{docname: exec_data}`` for every document myst-nb executed (or read from cache)."""
    data = NbMetadataCollector.get_doc_data(env)
    return {doc: dict(meta["exec_data"]) for doc, meta in sorted(data.items()) if meta.get("exec_data")}


def _write_report(app: Any, exception: Exception | None) -> None:
    path = Path(app.outdir).parent / REPORT
    path.write_text(json.dumps(execution_records(app.env), indent=1) + "\n", encoding="utf-8")


def setup(app: Any) -> dict[str, Any]:
    """Write ``_build/execution.json`` when the build finishes, failed or not."""
    app.connect("build-finished", _write_report)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
