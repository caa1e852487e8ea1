"""The README's Go and JavaScript examples, run as written against a server
started as the README says (LOCALBCC_CREDENTIALS="myak:mysecretkey12345678"),
only the endpoint changed to a free port."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from ..server import Server, free_port
from .test_go_sdk import SDK_MODULE, _go_env, _go_sdk
from .test_js_sdk import JS_DIR, _node

README = Path(__file__).resolve().parents[2] / "README.md"


def example(language: str) -> str:
    text = README.read_text()
    section = text[text.index("### From Go and JavaScript"):text.index("### In your own test suite")]
    assert 'LOCALBCC_CREDENTIALS="myak:mysecretkey12345678" make run' in section
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def readme_server(tmp_path):
    srv = Server(tmp_path / "data", {"myak": "mysecretkey12345678"},
                 extra_args=["--transition-seconds", "0.2", "--no-ssh"]).start()
    yield srv
    srv.stop()


def _check_attached(srv: Server, keypair_id: str, instance_id: str) -> None:
    inst = srv.client().get_instance(instance_id).instance
    assert inst.keypair_id == keypair_id


@pytest.mark.backends("sqlite")
def test_the_go_example(readme_server, tmp_path, backend):
    go, sdk = _go_sdk()
    work = tmp_path / "go"
    work.mkdir()
    (work / "main.go").write_text(example("go").replace('"127.0.0.1:8080"',
                                                        f'"{readme_server.endpoint}"'))
    (work / "go.mod").write_text(f"module example\n\ngo 1.19\n\nrequire {SDK_MODULE} v0.9.273\n\n"
                                 f"replace {SDK_MODULE} => {sdk}\n")
    done = subprocess.run([go, "run", "."], cwd=work, env=_go_env(tmp_path, {}),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    printed = re.fullmatch(r"attached (k-\w+) to (i-\w+)\n", done.stdout)
    assert printed, done.stdout
    _check_attached(readme_server, *printed.groups())
    assert (work / "demo.pem").read_text().startswith("-----BEGIN")


@pytest.mark.backends("sqlite")
def test_the_javascript_example(readme_server, tmp_path, backend):
    node = _node()
    script = tmp_path / "example.js"
    script.write_text(example("js").replace("'http://127.0.0.1:8080'",
                                            f"'http://{readme_server.endpoint}'"))
    env = os.environ | {"NODE_PATH": str(JS_DIR / "node_modules")}
    done = subprocess.run([node, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not done.stderr, done.stdout + done.stderr
    printed = re.fullmatch(r"\[\] (k-\w+)\n", done.stdout)
    assert printed, done.stdout
    instances = readme_server.client().list_instances().instances
    assert [i.keypair_id for i in instances] == [printed.group(1)]
    assert (tmp_path / "demo.pem").read_text().startswith("-----BEGIN")
