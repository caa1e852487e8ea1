"""Which modules are compiled with mypyc, and whether the compiled ones are used.

The modules every API request runs through (MODULES) are compiled to C
extensions by setup.py when the build can (docs/performance.md): the same
source, type-checked by mypy, run without the interpreter's per-instruction
overhead. Python imports an extension in preference to the ``.py`` beside it,
so that an edited source is never silently shadowed by an older build, the
build records a digest of each source it compiled (``compiled.json``), and
:func:`install` (run by the package's ``__init__``) compares them at import
time. If any source changed, or an extension has no record, or
``LOCALBCC_PURE=1`` is set, every one of these modules is imported from its
source instead: all or none, since compiled modules call each other directly,
inside one shared library.

Standard library only: setup.py runs this file before anything is installed.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import sys
from pathlib import Path

#: Compiled by setup.py: what every API request runs through (docs/performance.md).
MODULES = (
    "localbcc.auth",
    "localbcc.api.accesslog",
    "localbcc.api.app",
    "localbcc.api.context",
    "localbcc.api.handlers",
    "localbcc.api.metrics",
    "localbcc.api.request",
    "localbcc.api.routes",
    "localbcc.domain.instances",
    "localbcc.domain.lifecycle",
    "localbcc.domain.validation",
    "localbcc.store.prepared",
    "localbcc.store.repo",
)

RECORD = "compiled.json"  # {module: sha256 of the source compiled}, written by setup.py
_PACKAGE = Path(__file__).resolve().parent

#: What this process runs: "compiled", or "pure Python" and why.
STATE = "pure Python"


def source(module: str, package_dir: Path = _PACKAGE) -> Path:
    return package_dir.joinpath(*module.split(".")[1:]).with_suffix(".py")


def extension(module: str, package_dir: Path = _PACKAGE) -> Path:
    src = source(module, package_dir)
    return src.with_name(src.stem + importlib.machinery.EXTENSION_SUFFIXES[0])


def digests(package_dir: Path = _PACKAGE) -> dict[str, str]:
    """The sha256 of each compiled module's source, as it is now."""
    return {m: hashlib.sha256(source(m, package_dir).read_bytes()).hexdigest() for m in MODULES}


def changed(package_dir: Path = _PACKAGE) -> list[str] | None:
    """Compiled modules whose source is not the one compiled; None when there
    is no build at all (pure Python); every module when an extension lacks a
    record of its source."""
    if not any(extension(m, package_dir).exists() for m in MODULES):
        return None
    try:
        built = json.loads((package_dir / RECORD).read_text())
    except (OSError, ValueError):
        return list(MODULES)
    now = digests(package_dir)
    return [m for m in MODULES if built.get(m) != now[m] or not extension(m, package_dir).exists()]


class _Sources:
    """A meta path finder (no importlib.abc base: it costs 30 ms of start-up)
    that imports the compiled modules from their ``.py`` sources."""

    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        if fullname not in MODULES:
            return None
        import importlib.util

        return importlib.util.spec_from_file_location(fullname, source(fullname))


def install() -> None:
    """Decide, once per process, whether the compiled modules are used."""
    global STATE
    differ = changed()
    if differ is None:
        return  # a pure-Python build (no compiler, or LOCALBCC_COMPILE=0)
    if os.environ.get("LOCALBCC_PURE", "") not in ("", "0"):
        STATE = "pure Python (LOCALBCC_PURE is set)"
    elif differ:
        STATE = "pure Python (sources changed since the build)"
        sys.stderr.write(
            f"localbcc: {source(differ[0]).relative_to(_PACKAGE.parent)} is not the source that "
            f"was compiled; running every compiled module from its source. `make setup` (or "
            f"`pip install -e .`) compiles them again.\n")
    else:
        STATE = "compiled"
        return
    if not any(isinstance(f, _Sources) for f in sys.meta_path):
        sys.meta_path.insert(0, _Sources())
