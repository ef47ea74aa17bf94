"""Sphinx extension: Appendix A, one API page per public module of ``abn``, generated.

What it does, and why:

* **one page per module, no list to keep.** At ``config-inited`` it walks the ``abn``
  package and writes ``book/api/<module>.md`` for every public module (no ``_`` in its
  dotted name), and deletes pages of modules that are gone. ``_toc.yml`` takes them in
  with ``glob: book/api/*``, so a new module shows up in the appendix without editing
  anything. It runs before sphinx-external-toc reads ``_toc.yml`` (priority 900), which
  is when that glob is resolved.
* **what "public" means, in one place.** :func:`public_members` decides which functions
  and classes a page documents; ``tests/test_api_docs.py`` uses the same function to
  require a docstring for each of them.
* Each page is plain autodoc: the module docstring, an autosummary table of its members,
  then each member with its signature and docstring (``_config.yml`` loads
  ``sphinx.ext.autodoc``, ``sphinx.ext.autosummary`` and ``sphinx.ext.napoleon``).

The pages are build products (``book/api/`` is git-ignored); they are rewritten only
when their text changes, so an unchanged module does not trigger a re-render.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Any

PACKAGE = "abn"
API_FOLDER = "book/api"  # relative to the book's root (the repository root)


def public_modules(package: str = PACKAGE) -> list[str]:
    """Dotted names of the package and its submodules, private ones (``_x``) left out."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def public_members(module: ModuleType) -> list[tuple[str, Any]]:
    """The functions and classes ``module`` defines for its users, in source order.

    A module's ``__all__`` names them when it has one (the package's ``__init__`` re-exports
    this way); otherwise every function or class whose name has no leading underscore
    and that is defined in the module itself (imports are documented where they live).
    """
    if hasattr(module, "__all__"):
        members = [(name, getattr(module, name)) for name in module.__all__]
    else:
        members = [
            (name, obj)
            for name, obj in vars(module).items()
            if not name.startswith("_")
            and (inspect.isfunction(obj) or inspect.isclass(obj))
            and getattr(obj, "__module__", None) == module.__name__
        ]

    def line(item: tuple[str, Any]) -> int:
        try:
            return inspect.getsourcelines(item[1])[1]
        except (OSError, TypeError):
            return 0

    return members if hasattr(module, "__all__") else sorted(members, key=line)


def module_page(name: str) -> str:
    """The MyST source of the API page of module ``name``."""
    module = importlib.import_module(name)
    members = public_members(module)
    rst = [f".. automodule:: {name}", "   :no-members:", ""]
    if members and name != PACKAGE:
        rst += [".. autosummary::", "   :nosignatures:", ""]
        rst += [f"   {member}" for member, _ in members]
        rst += [""]
        for member, obj in members:
            kind = "autoclass" if inspect.isclass(obj) else "autofunction"
            rst += [f".. {kind}:: {member}"]
            if kind == "autoclass":
                rst += ["   :members:", "   :show-inheritance:"]
            rst += [""]
    elif members:  # the package itself: a table of what it re-exports, documented elsewhere
        rst += [".. autosummary::", "   :nosignatures:", ""]
        rst += [f"   {obj.__module__.removeprefix(PACKAGE + '.')}.{obj.__qualname__}"
                for _, obj in members]
        rst += [""]
    body = "\n".join(rst).rstrip()
    return f"# `{name}`\n\n```{{eval-rst}}\n{body}\n```\n"


def write_pages(folder: Path, package: str = PACKAGE) -> list[Path]:
    """Write one page per public module into ``folder``; remove pages of vanished modules."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in public_modules(package):
        path = folder / f"{name}.md"
        text = module_page(name)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    for stale in set(folder.glob("*.md")) - set(written):
        stale.unlink()
    return written


def _on_config_inited(app: Any, config: Any) -> None:
    write_pages(Path(app.srcdir) / API_FOLDER)


def setup(app: Any) -> dict[str, Any]:
    """Generate the API pages before sphinx-external-toc resolves ``_toc.yml``."""
    app.connect("config-inited", _on_config_inited, priority=100)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
