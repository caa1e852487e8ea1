"""The compiled request path (localbcc/compiled.py, setup.py): a build is used
only for the sources it was made from, and LOCALBCC_PURE turns it off."""
from __future__ import annotations

import ast
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
CHANGED = "pure Python (sources changed since the build)"


def _extension(root: Path, module: str) -> Path:
    return root.joinpath(*module.split(".")[1:]).with_suffix(compiled.SUFFIX)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A copy of the package's sources, with stand-in extensions and the
    record a compiled build writes."""
    root = tmp_path / "localbcc"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.json"))
    for module in compiled.MODULES:
        _extension(root, module).write_bytes(b"")
    (root / compiled.RECORD).write_text(json.dumps(
        {"modules": list(compiled.MODULES), "sources": compiled.digests(root)}))
    return root


def test_a_build_of_these_sources_is_used(package):
    assert compiled.assess(package) == ("compiled", [])


def test_an_edited_compiled_module_is_not_run_from_its_older_build(package):
    edited = package / "api" / "routes.py"
    edited.write_text(edited.read_text() + "\n# edited\n")
    assert compiled.assess(package) == (CHANGED, ["api/routes.py"])


def test_an_edited_module_that_compiled_code_imports_counts_too(package):
    """Compiled code carries the types of what it imports (e.g. timefmt.iso's)."""
    edited = package / "domain" / "timefmt.py"
    edited.write_text(edited.read_text() + "\n# edited\n")
    assert compiled.assess(package) == (CHANGED, ["domain/timefmt.py"])


def test_the_same_bytes_again_are_not_a_change(package):
    same = package / "auth.py"
    os.utime(same, (same.stat().st_atime, same.stat().st_mtime + 3600))  # e.g. a checkout
    assert compiled.assess(package) == ("compiled", [])


def test_extensions_without_a_record_are_not_used(package):
    (package / compiled.RECORD).unlink()
    assert compiled.assess(package)[0].startswith("pure Python (the compiled files")


def test_an_extension_the_build_did_not_make_is_not_used(package):
    """E.g. left by a build whose MODULES named one more module."""
    _extension(package, "localbcc.domain.keypairs").write_bytes(b"")
    assert compiled.assess(package)[0].startswith("pure Python (the compiled files")


def test_a_missing_extension_is_not_a_build(package):
    _extension(package, "localbcc.store.repo").unlink()
    assert compiled.assess(package)[0].startswith("pure Python (the compiled files")


def test_a_pure_python_build_says_why(package):
    for module in compiled.MODULES:
        _extension(package, module).unlink()
    (package / compiled.RECORD).write_text(json.dumps({"not compiled": "LOCALBCC_COMPILE=0"}))
    assert compiled.assess(package) == ("pure Python (not compiled: LOCALBCC_COMPILE=0)", [])


def test_an_edited_build_runs_every_module_from_its_source_and_says_so(package):
    """The stand-in extensions are empty files: importing one would fail."""
    for edited in (package / "api" / "routes.py", package / "domain" / "timefmt.py"):
        edited.write_text(edited.read_text() + "\n# edited\n")
    code = ("import localbcc.api.routes as r, localbcc.compiled as c; "
            "print(r.__file__); print(c.STATE)")
    run = subprocess.run([sys.executable, "-c", code], cwd=package.parent, capture_output=True,
                         text=True, env=os.environ | {"PYTHONPATH": str(package.parent),
                                                      "LOCALBCC_PURE": ""})
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [str(package / "api" / "routes.py"), CHANGED]
    assert ("localbcc: localbcc/api/routes.py changed (and 1 more); running every module "
            "from its source") in run.stderr


def _loaded_from(env: dict[str, str]) -> dict[str, str]:
    code = ("import json, localbcc.api.app, localbcc.store.db, localbcc.compiled as c; "
            "print(json.dumps({'app': localbcc.api.app.__file__, "
            "'db': localbcc.store.db.__file__, 'state': c.STATE}))")
    out = subprocess.run([sys.executable, "-c", code], env=os.environ | env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def test_localbcc_pure_imports_every_module_from_its_source():
    loaded = _loaded_from({"LOCALBCC_PURE": "1"})
    assert loaded["app"].endswith("app.py") and loaded["db"].endswith("db.py")
    if compiled.assess()[0] == "compiled":  # a compiled build: say why it is not used
        assert loaded["state"] == "pure Python (LOCALBCC_PURE is set)"


@pytest.mark.skipif(os.environ.get("LOCALBCC_COMPILE") != "required",
                    reason="the build may be pure Python (LOCALBCC_COMPILE is not 'required')")
def test_a_required_build_runs_compiled():
    """CI builds with LOCALBCC_COMPILE=required: the suite runs on the compiled
    path, and once more with LOCALBCC_PURE=1 on the same build from the sources."""
    if os.environ.get("LOCALBCC_PURE", "") not in ("", "0"):
        assert compiled.STATE == "pure Python (LOCALBCC_PURE is set)"
    else:
        assert compiled.STATE == "compiled"
    loaded = _loaded_from({"LOCALBCC_PURE": ""})
    assert loaded["state"] == "compiled" and loaded["app"].endswith(compiled.SUFFIX)


def test_compiled_code_never_awaits_while_handling_an_exception():
    """docs/design.md: a compiled coroutine awaiting inside ``except`` or
    ``finally`` leaves the handled exception as the thread's, for a later
    request to raise again (tests/store/test_contention.py shows the effect)."""
    found = []
    for module in compiled.MODULES:
        path = Path(compiled.__file__).parent.parent / (module.replace(".", "/") + ".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Try):
                continue
            handling = [s for h in node.handlers for s in h.body] + node.finalbody
            found += [f"{module}:{sub.lineno}" for s in handling for sub in ast.walk(s)
                      if isinstance(sub, (ast.Await, ast.AsyncWith, ast.AsyncFor))]
    assert found == []
