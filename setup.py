"""Build: pyproject.toml has the metadata; this file adds the compiled modules.

The modules every API request runs through (localbcc/compiled.py) are
compiled with mypyc, the compiler mypy ships (docs/performance.md,
docs/design.md). LOCALBCC_COMPILE chooses:

* ``auto`` (the default): compile if the build can (a C compiler and
  Python's headers), else install pure Python with a warning;
* ``required``: fail if they cannot be compiled (CI, benchmarks);
* ``0``: pure Python.
"""
from __future__ import annotations

import json
import os
import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

MODE = os.environ.get("LOCALBCC_COMPILE", "auto")
if MODE not in ("auto", "required", "0"):
    sys.exit(f"LOCALBCC_COMPILE must be auto, required or 0, not {MODE!r}")


def _compiled_py():  # type: ignore[no-untyped-def]
    """src/localbcc/compiled.py, which names the modules and checks builds."""
    spec = spec_from_file_location("_localbcc_compiled", "src/localbcc/compiled.py")
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_INFO = _compiled_py()
_RECORD = os.path.join("src", "localbcc", _INFO.RECORD)


def _record(content: dict) -> None:
    """compiled.json, which tells each process whether the extensions it finds
    are this build's, of these sources (src/localbcc/compiled.py)."""
    with open(_RECORD, "w") as out:
        json.dump(content, out, indent=1)


def _pure(why: str) -> list:
    sys.stderr.write(f"localbcc: not compiled ({why}); installing pure Python.\n")
    _record({"not compiled": why})
    return []


def _remove_earlier_build() -> None:
    """An editable install builds beside the sources. Whatever this build
    makes, extensions an earlier one left there must not be imported."""
    src = Path("src")
    for old in [*src.glob("localbcc__mypyc*" + _INFO.SUFFIX),
                *(src / "localbcc").rglob("*" + _INFO.SUFFIX)]:
        old.unlink()


class OptionalBuildExt(build_ext):
    """In ``auto`` mode a failed C build leaves pure Python, not a failed install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - compilers fail in many ways
            if MODE == "required":
                raise
            for built in self.get_outputs():  # all or none: they share one library
                if os.path.exists(built):
                    os.remove(built)
            _pure(f"the C build failed: {str(exc)[:200]}")


def extensions() -> list:
    _remove_earlier_build()
    if MODE == "0":
        return _pure("LOCALBCC_COMPILE=0")
    try:
        from mypyc.build import mypycify
    except ImportError:
        if MODE == "required":
            raise
        return _pure("mypyc is not available")
    paths = [os.path.join("src", *m.split(".")) + ".py" for m in _INFO.MODULES]
    try:
        # Third-party packages are not looked at (their types count as Any), so the
        # build is the same whether or not they are installed yet.
        built = mypycify(["--no-site-packages", "--ignore-missing-imports", *paths],
                         opt_level="3", group_name="localbcc")
    except (Exception, SystemExit) as exc:  # mypy's errors end in SystemExit
        if MODE == "required":
            raise
        return _pure(f"mypy or mypyc failed ({str(exc)[:200]}); "
                     f"LOCALBCC_COMPILE=required shows why")
    # Compiled code carries the types of every module it imports, so every
    # source of the package is recorded, not only the compiled ones.
    _record({"modules": list(_INFO.MODULES),
             "sources": _INFO.digests(Path("src", "localbcc").resolve())})
    return built


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
