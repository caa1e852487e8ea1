"""The README's "Log in to an instance" example, run as written against a fresh
server, then the `ssh` command it prints, with OpenSSH and the pinned host key."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ..server import Server, free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def login_example() -> str:
    text = README.read_text()
    section = text[text.index("## Log in to an instance"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs OpenSSH's ssh client")
def test_the_readme_login_example_runs_and_its_command_logs_in(tmp_path, monkeypatch, capsys):
    ak, sk = "myak", "mysecretkey12345678"  # the README's own credentials
    srv = Server(tmp_path / "ssh-demo", {ak: sk},
                 extra_args=["--transition-seconds", "0.3", "--ssh-port", str(free_port())]).start()
    try:
        work = tmp_path / "work"
        work.mkdir()
        monkeypatch.chdir(work)
        code = login_example().replace('"127.0.0.1:8080"', repr(srv.endpoint))
        exec(compile(code, str(README), "exec"), {"__name__": "__main__"})
        fingerprint, command = capsys.readouterr().out.splitlines()
        assert fingerprint.startswith("SHA256:")
        # What the README shows next: run the printed command, host key checked.
        argv = command.split() + ["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                                  "-o", "IdentitiesOnly=yes", "hostname"]
        done = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=30)
        assert (done.returncode, done.stdout) == (0, "web-1\n"), done.stderr
        keygen = subprocess.run(["ssh-keygen", "-lf", "known_hosts"], cwd=work,
                                capture_output=True, text=True, check=True)
        assert fingerprint in keygen.stdout
    finally:
        srv.stop()


def test_the_readme_login_example_stops_when_the_endpoint_is_taken(tmp_path, monkeypatch):
    """Two servers on one machine: the second one's first instance wants the
    address the first one holds. The example says so instead of printing an
    `ssh` command that would reach the other server's instance."""
    import socket

    port = free_port()
    srv = Server(tmp_path / "ssh-demo", {"myak": "mysecretkey12345678"},
                 extra_args=["--transition-seconds", "0", "--ssh-port", str(port),
                             "--ssh-endpoints", "address"]).start()
    taken = socket.socket()
    try:
        taken.bind(("127.16.0.1", port))  # where a fresh database's first instance listens
        taken.listen()
        monkeypatch.chdir(tmp_path)
        code = login_example().replace('"127.0.0.1:8080"', repr(srv.endpoint))
        with pytest.raises(SystemExit, match=r"^no SSH endpoint: .+"):
            exec(compile(code, str(README), "exec"), {"__name__": "__main__"})
    finally:
        taken.close()
        srv.stop()
