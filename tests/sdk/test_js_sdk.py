"""localbcc driven by Baidu's official JavaScript SDK: the Node tests in tests/sdk/js.

The SDK is ``@baiducloud/sdk`` from npm, at the exact version that
tests/sdk/js/package.json pins (installed with ``npm ci --prefix tests/sdk/js``
from the committed package-lock.json). Its ``BccClient`` only knows BCC's old
/v1 API, so the tests send the /v2 key pair, image and instance requests
through the SDK's own ``sendRequest`` (BceBaseClient): the SDK's HttpClient
sends them and its Auth class signs them (tests/sdk/js/helpers.js).

Per storage backend and per ``*.test.js`` file, one ``node --test`` run against
the session's shared server (the ``server`` fixture), with the endpoint and two
accounts' keys in LOCALBCC_ENDPOINT, LOCALBCC_AK/SK and LOCALBCC_AK2/SK2.
On failure the test shows Node's output and the end of the server's log.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from . import unavailable

JS_DIR = Path(__file__).resolve().parent / "js"
SDK_PACKAGE = "@baiducloud/sdk"
NODE_TIMEOUT = 240  # seconds per file; under pytest's own 300 s per test
MIN_NODE = 18  # node:test with describe/afterEach and --test-reporter

JS_FILES = sorted(p.name for p in JS_DIR.glob("*.test.js"))
INSTALL = "run: npm ci --prefix tests/sdk/js"


def _node() -> str:
    """The node command, once Node and the pinned SDK are there; else skip/fail saying what is missing."""
    node = shutil.which("node")
    if node is None:
        unavailable(f"the JavaScript SDK tests need Node.js {MIN_NODE} or later: no `node` on PATH "
                    "(Debian: apt-get install nodejs npm)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    match = re.match(r"v(\d+)\.", version)
    if not match or int(match.group(1)) < MIN_NODE:
        unavailable(f"the JavaScript SDK tests need Node.js {MIN_NODE} or later; `node --version` says {version!r}")
    pinned = json.loads((JS_DIR / "package.json").read_text())["dependencies"][SDK_PACKAGE]
    installed = JS_DIR / "node_modules" / SDK_PACKAGE / "package.json"
    if not installed.is_file():
        unavailable(f"{SDK_PACKAGE} is not installed in tests/sdk/js: {INSTALL}")
    have = json.loads(installed.read_text())["version"]
    if have != pinned:
        unavailable(f"tests/sdk/js has {SDK_PACKAGE} {have}, but package.json pins {pinned}: {INSTALL}")
    return node


def _run(args: list[str], env: dict[str, str]) -> tuple[int | None, str]:
    """Run ``args`` in tests/sdk/js: (exit status, or None after NODE_TIMEOUT; stdout and stderr).
    Its own process group, so a timeout also ends the process node starts per test file."""
    proc = subprocess.Popen(args, cwd=JS_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=NODE_TIMEOUT)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out


@pytest.mark.parametrize("js_file", JS_FILES)
def test_js_sdk(request, backend, js_file):
    # `backend` parametrizes the test over the storage backends (tests/conftest.py);
    # the server starts after the check, so a missing SDK skips at once.
    node = _node()
    server = request.getfixturevalue("server")
    (ak, sk), (ak2, sk2) = list(server.credentials.items())[:2]
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "NODE_OPTIONS", "NODE_DEBUG")}
    env |= {"LOCALBCC_ENDPOINT": server.endpoint, "LOCALBCC_AK": ak, "LOCALBCC_SK": sk,
            "LOCALBCC_AK2": ak2, "LOCALBCC_SK2": sk2, "NO_COLOR": "1"}
    status, out = _run([node, "--test", "--test-reporter=spec", js_file], env)
    ran = re.search(r"^\S* ?tests (\d+)$", out, re.MULTILINE)
    if status == 0 and ran and int(ran.group(1)) > 0:
        return
    why = (f"ran over {NODE_TIMEOUT} s" if status is None
           else f"exited {status}" if status else "ran no tests")
    log = server.log_path.read_text(errors="replace")[-3000:] if server.log_path.exists() else ""
    pytest.fail(f"node --test {js_file} against the {server.backend} server at {server.endpoint} {why}:\n"
                f"{out}\n--- end of the server's log ---\n{log}", pytrace=False)
