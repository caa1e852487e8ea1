"""Which modules are compiled with mypyc, and whether the compiled ones are used.

The modules every API request runs through (MODULES) are compiled to C
extensions by setup.py when the build can (docs/performance.md): the same
source, type-checked by mypy, run without the interpreter's per-instruction
overhead. Python imports an extension in preference to the ``.py`` beside it,
so that an edited source is never silently run as an older build, the build
records a digest of every source of the package (``compiled.json``; compiled
code also carries the types of the modules it imports), and :func:`install`
(run by the package's ``__init__``) compares them at import time. If any
source changed, or the extensions present are not the ones the record names,
or ``LOCALBCC_PURE=1`` is set, every module is imported from its source
instead: all or none, since compiled modules call each other directly, inside
one shared library.

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
    "localbcc.store.unit",
)

#: Written by setup.py: {"modules": [...], "sources": {path: sha256}} for a
#: compiled build, {"not compiled": why} for a pure-Python one.
RECORD = "compiled.json"
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]  # e.g. .cpython-311-x86_64-linux-gnu.so
_PACKAGE = Path(__file__).resolve().parent

_STRAY = "the compiled files are not those of the last build"

#: What this process runs: "compiled", or "pure Python" and why.
STATE = "pure Python"


def digests(package_dir: Path = _PACKAGE) -> dict[str, str]:
    """The sha256 of every source of the package, by path within it."""
    return {p.relative_to(package_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(package_dir.rglob("*.py"))}


def extensions(package_dir: Path = _PACKAGE) -> set[str]:
    """The modules present as compiled extensions (as paths without suffix)."""
    return {p.relative_to(package_dir).as_posix().removesuffix(SUFFIX)
            for p in package_dir.rglob("*" + SUFFIX)}


def assess(package_dir: Path = _PACKAGE,
           built: set[str] | None = None) -> tuple[str, list[str]]:
    """What to run ("compiled", or "pure Python" and why) and the sources that
    differ from the ones compiled; ``built`` is :func:`extensions`, if known."""
    try:
        record = json.loads((package_dir / RECORD).read_text())
    except (OSError, ValueError):
        record = {}
    if built is None:
        built = extensions(package_dir)
    if not built:
        why = record.get("not compiled")
        return (f"pure Python (not compiled: {why})" if why else "pure Python"), []
    named = {m.split(".", 1)[1].replace(".", "/") for m in record.get("modules", [])}
    if built != named:
        return f"pure Python ({_STRAY})", []
    now, then = digests(package_dir), record.get("sources", {})
    changed = [path for path in sorted(set(now) | set(then)) if now.get(path) != then.get(path)]
    if changed:
        return "pure Python (sources changed since the build)", changed
    return "compiled", []


class _Sources:
    """A meta path finder that imports the package's modules from their ``.py``
    files, whatever extensions lie beside them. (No importlib.abc base class:
    importing it would slow every start-up.)"""

    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        if not fullname.startswith("localbcc."):
            return None
        source = _PACKAGE.joinpath(*fullname.split(".")[1:]).with_suffix(".py")
        if not source.is_file():  # a package (its __init__.py is never compiled)
            return None
        import importlib.util

        return importlib.util.spec_from_file_location(fullname, source)


def install() -> None:
    """Decide, once per process, whether the compiled modules are used."""
    global STATE
    built = extensions()
    STATE, changed = assess(built=built)
    if STATE == "compiled":
        if os.environ.get("LOCALBCC_PURE", "") in ("", "0"):
            return
        STATE = "pure Python (LOCALBCC_PURE is set)"
    elif not built:
        return  # a pure-Python build: nothing can shadow a source
    else:
        what = _STRAY
        if changed:
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            what = f"localbcc/{changed[0]} changed{more}"
        sys.stderr.write(f"localbcc: {what}; running every module from its source until "
                         f"the next build (`make setup`, or `pip install -e .`).\n")
    if not any(isinstance(f, _Sources) for f in sys.meta_path):
        sys.meta_path.insert(0, _Sources())
