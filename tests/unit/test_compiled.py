"""The compiled request path (localbcc/compiled.py, setup.py): an edited
source is never shadowed by an older build, and LOCALBCC_PURE turns it off."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import localbcc
from localbcc import compiled

PACKAGE = Path(localbcc.__file__).parent


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A copy of the compiled modules' sources, with stand-in extensions and
    the record a build writes."""
    root = tmp_path / "localbcc"
    for module in compiled.MODULES:
        src = compiled.source(module, root)
        src.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(compiled.source(module), src)
        compiled.extension(module, root).write_bytes(b"")
    (root / compiled.RECORD).write_text(json.dumps(compiled.digests(root)))
    return root


def test_a_build_of_the_sources_is_used(package):
    assert compiled.changed(package) == []


def test_an_edited_source_is_not_shadowed_by_its_older_build(package):
    edited = compiled.source("localbcc.api.routes", package)
    edited.write_text(edited.read_text() + "\n# edited\n")
    assert compiled.changed(package) == ["localbcc.api.routes"]


def test_the_same_bytes_again_are_not_a_change(package):
    same = compiled.source("localbcc.auth", package)
    os.utime(same, (same.stat().st_atime, same.stat().st_mtime + 3600))  # e.g. a checkout
    assert compiled.changed(package) == []


def test_extensions_without_a_record_are_not_used(package):
    (package / compiled.RECORD).unlink()
    assert compiled.changed(package) == list(compiled.MODULES)


def test_a_missing_extension_counts_as_a_change(package):
    compiled.extension("localbcc.store.repo", package).unlink()
    assert compiled.changed(package) == ["localbcc.store.repo"]


def test_no_extensions_is_a_pure_python_build(package):
    for module in compiled.MODULES:
        compiled.extension(module, package).unlink()
    assert compiled.changed(package) is None


def _loaded_from(env: dict[str, str]) -> dict[str, str]:
    code = ("import json, localbcc.api.app, localbcc.store.repo, localbcc.compiled as c; "
            "print(json.dumps({'app': localbcc.api.app.__file__, "
            "'repo': localbcc.store.repo.__file__, 'state': c.STATE}))")
    out = subprocess.run([sys.executable, "-c", code], env=os.environ | env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def test_localbcc_pure_imports_every_compiled_module_from_its_source():
    loaded = _loaded_from({"LOCALBCC_PURE": "1"})
    assert loaded["app"].endswith("app.py") and loaded["repo"].endswith("repo.py")
    if compiled.changed() is not None:  # a compiled build: say why it is not used
        assert loaded["state"] == "pure Python (LOCALBCC_PURE is set)"


@pytest.mark.skipif(os.environ.get("LOCALBCC_COMPILE") != "required",
                    reason="the build may be pure Python (LOCALBCC_COMPILE is not 'required')")
def test_a_required_build_runs_compiled():
    """CI builds with LOCALBCC_COMPILE=required: the suite runs on the compiled path."""
    assert compiled.STATE == "compiled"
    loaded = _loaded_from({"LOCALBCC_PURE": ""})
    assert loaded["state"] == "compiled"
    suffix = compiled.extension("localbcc.api.app").name.removeprefix("app")
    assert loaded["app"].endswith(suffix) and loaded["repo"].endswith(suffix)
