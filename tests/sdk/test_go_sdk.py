"""localbcc driven by Baidu's official Go SDK: the Go tests in tests/sdk/go.

Per storage backend, one ``go test -json`` run against two fresh servers on one
database (tests/api/helpers.py, twin_servers: ``--transition-seconds 0``, and 600 for
instances kept in a transition), reported here as one pytest test per Go test.

The SDK's source comes from ``$BCE_SDK_GO`` (a checkout of
github.com/baidubce/bce-sdk-go; CI uses ../shared/sdk/bce-sdk-go) and is built
offline: a copy of tests/sdk/go/go.mod in a temporary directory gets
``replace github.com/baidubce/bce-sdk-go => $BCE_SDK_GO`` and ``go test`` reads it
through ``-modfile``, with ``GOPROXY=off``. Go's build cache is its default one,
so a second run compiles nothing.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..api.helpers import database_for, new_credentials, twin_servers
from . import unavailable

GO_DIR = Path(__file__).resolve().parent / "go"
SDK_MODULE = "github.com/baidubce/bce-sdk-go"
GO_TIMEOUT = 240  # seconds, for the whole run; under pytest's own 300 s per test

#: The Go tests, read from the sources so that collection needs no Go.
GO_TESTS = sorted(name for path in GO_DIR.glob("*_test.go")
                  for name in re.findall(r"^func (Test\w+)\(t \*testing\.T\) \{$",
                                         path.read_text(), re.MULTILINE))


@dataclass
class GoTest:
    action: str = "run"  # pass, fail or skip once it has finished
    output: list[str] = field(default_factory=list)


@dataclass
class GoRun:
    tests: dict[str, GoTest]
    log: str  # what `go test` printed outside any test (build errors, panics), and how it ended


def _go_sdk() -> tuple[str, Path]:
    """(the go command, the SDK's source), or skip/fail saying what is missing."""
    sdk = os.environ.get("BCE_SDK_GO", "")
    if not sdk:
        unavailable("BCE_SDK_GO is not set: point it at the source of Baidu's Go SDK "
                    f"({SDK_MODULE}; CI uses ../shared/sdk/bce-sdk-go) to run the Go SDK tests")
    path = Path(sdk).resolve()
    if not (path / "services" / "bcc" / "client.go").is_file():
        unavailable(f"BCE_SDK_GO={sdk} is not the Go SDK's source (no services/bcc/client.go)")
    go = shutil.which("go")
    if go is None:
        unavailable("the Go SDK tests need Go 1.19 or later: no `go` on PATH "
                    "(Debian: apt-get install golang-go)")
    return go, path


def _go_env(tmp: Path, endpoints: dict[str, str]) -> dict[str, str]:
    env = os.environ | endpoints | {"GOPROXY": "off", "GOFLAGS": "-mod=mod", "GOWORK": "off"}
    if not any(env.get(v) for v in ("GOCACHE", "XDG_CACHE_HOME", "HOME")):
        env["GOCACHE"] = str(tmp / "gocache")  # Go has nowhere else to put it
    return env


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def _parse(stdout: str) -> tuple[dict[str, GoTest], list[str]]:
    """``go test -json`` events → each test's outcome and output, plus everything else."""
    tests: dict[str, GoTest] = {}
    other: list[str] = []
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            other.append(line + "\n")
            continue
        name = event.get("Test")
        if not name:
            other.append(event.get("Output", ""))
            continue
        test = tests.setdefault(name.split("/")[0], GoTest())  # subtests report to their test
        if event["Action"] == "output":
            test.output.append(event["Output"])
        elif event["Action"] in ("pass", "fail", "skip") and "/" not in name:
            test.action = event["Action"]
    return tests, other


def _selected(request, backend: str) -> list[str]:
    """The Go tests this session runs on ``backend`` (all of them, unless ``-k`` chose)."""
    return sorted({item.callspec.params["go_test"] for item in request.session.items
                   if getattr(item, "originalname", None) == "test_go_sdk"
                   and item.callspec.params.get("backend") == backend}) or GO_TESTS


@pytest.fixture(scope="module")
def go_run(backend, request, tmp_path_factory) -> GoRun:
    go, sdk = _go_sdk()
    tmp = tmp_path_factory.mktemp(f"go-sdk-{backend}")
    modfile = tmp / "go.mod"
    shutil.copyfile(GO_DIR / "go.mod", modfile)
    subprocess.run([go, "mod", "edit", f"-modfile={modfile}", f"-replace={SDK_MODULE}={sdk}"],
                   cwd=GO_DIR, check=True, capture_output=True)

    url, cleanup = database_for(request, backend, "gosdk")
    credentials = new_credentials(len(GO_TESTS) + 2)  # one account per Go test
    command = [go, "test", f"-modfile={modfile}", "-json", "-count=1", f"-timeout={GO_TIMEOUT}s",
               f"-run=^({'|'.join(_selected(request, backend))})$", "."]
    try:
        fast, slow = twin_servers(tmp / "data", credentials, url)
        env = _go_env(tmp, {
            "LOCALBCC_ENDPOINT": fast.endpoint, "LOCALBCC_SLOW_ENDPOINT": slow.endpoint,
            "LOCALBCC_CREDENTIALS": ",".join(f"{ak}:{sk}" for ak, sk in credentials.items())})
        try:
            done = subprocess.run(command, cwd=GO_DIR, env=env, capture_output=True, text=True,
                                  timeout=GO_TIMEOUT + 30)
        except subprocess.TimeoutExpired as exc:  # its output comes as bytes, even with text=True
            done = subprocess.CompletedProcess(command, f"killed after {exc.timeout} s",
                                               _text(exc.stdout), _text(exc.stderr))
        finally:
            fast.stop()
            slow.stop()
    finally:
        cleanup()
    tests, other = _parse(done.stdout)
    log = (f"$ {' '.join(command)}  (in {GO_DIR}, exit {done.returncode})\n"
           f"{''.join(other)}{done.stderr}\nserver logs: {fast.log_path}, {slow.log_path}")
    return GoRun(tests, log)


def test_go_tests_were_found():
    assert len(GO_TESTS) >= 10, f"no Go tests found in {GO_DIR}: {GO_TESTS}"


@pytest.mark.parametrize("go_test", GO_TESTS)
def test_go_sdk(go_run: GoRun, go_test: str):
    """One Go test of tests/sdk/go, from this backend's run."""
    result = go_run.tests.get(go_test)
    if result is None or result.action == "run":
        pytest.fail(f"{go_test} did not run to its end:\n"
                    f"{''.join(result.output) if result else ''}{go_run.log}", pytrace=False)
    if result.action != "pass":
        # A Go test skips only without its environment, which this module always sets.
        pytest.fail(f"{go_test}: {result.action}\n{''.join(result.output)}", pytrace=False)
