"""The `localbcc` command (issue 2's command-line contract), run as a real
subprocess: help and environment variables, --version, accounts, the default
account, LOCALBCC_PORT, and the start-up banner whose Python example must work."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import typer.main
from typer.testing import CliRunner
from baidubce.auth.bce_credentials import BceCredentials
from baidubce.bce_client_configuration import BceClientConfiguration
from baidubce.services.bcc.bcc_client import BccClient

from localbcc import __version__, compiled
from localbcc.cli import app

from .server import ROOT, free_port, wait_healthy

_SCRIPT = Path(sys.executable).with_name("localbcc")
LOCALBCC = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "localbcc"]
# the options issue 2 names; every other option must follow the same rules
REQUIRED_SERVE_OPTIONS = ["--host", "--port", "--data-dir", "--database-url", "--region",
                          "--keypair-quota", "--transition-seconds", "--credentials"]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any LOCALBCC_* setting of the caller's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALBCC_")}
    # wide help output, and keep an optional SSH listener off the shared default port
    return env | {"COLUMNS": "300", "LOCALBCC_SSH_PORT": str(free_port())} | extra


def run(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(LOCALBCC + list(args), capture_output=True, text=True, timeout=60,
                          env=env or clean_env(), cwd=ROOT)
    if check:
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


# -- help, version -------------------------------------------------------------------------------

def _commands(group, prefix=()):
    """(argv prefix, click command) for every leaf command."""
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, prefix + (name,))
        else:
            yield prefix + (name,), cmd


def test_top_level_help_lists_commands_and_environment_variables():
    out = run("--help").stdout
    for word in ("serve", "account", "--version"):
        assert word in out
    assert "LOCALBCC_" in out, "`localbcc --help` should say options have LOCALBCC_* variables"


def test_every_option_of_every_command_has_a_documented_env_var():
    root = typer.main.get_command(app)
    commands = dict(_commands(root))
    serve_opts = {o for p in commands[("serve",)].params for o in p.opts}
    assert set(REQUIRED_SERVE_OPTIONS) <= serve_opts
    runner = CliRunner()
    for argv, cmd in commands.items():
        if argv == ("serve",):  # the one users read most: the real command
            out = run(*argv, "--help").stdout
        else:  # the rest in-process (each subprocess costs a second of imports)
            res = runner.invoke(app, [*argv, "--help"], env={"COLUMNS": "300"}, prog_name="localbcc")
            assert res.exit_code == 0, res.output
            out = res.output
        for param in cmd.params:
            if param.name == "help":
                continue
            assert param.opts[0] in out, (argv, param.opts[0])
            # every server setting has a variable, wherever it appears (--data-dir on
            # `account list` too); one-shot flags of other commands (--show-secrets) need not
            if argv == ("serve",) or param.opts[0] in serve_opts or param.envvar:
                assert param.envvar and str(param.envvar).startswith("LOCALBCC_"), (argv, param.name)
                assert param.envvar in out, (argv, param.envvar)


def test_serve_help_at_80_columns_shows_every_variable_whole():
    """README says `localbcc serve --help` lists the variables: on a common
    80-column terminal too (a boxed layout cut them to LOCALBCC_DATABASE_…)."""
    serve = dict(_commands(typer.main.get_command(app)))[("serve",)]
    out = run("serve", "--help", env=clean_env(COLUMNS="80")).stdout
    assert max(map(len, out.splitlines())) <= 80, out
    for param in serve.params:
        if param.envvar:
            assert param.envvar in out, (param.envvar, out)


def test_version():
    """The version, and whether the request path runs compiled (localbcc/compiled.py)."""
    state, _ = compiled.assess()  # what a process without LOCALBCC_PURE (clean_env) runs
    expected = f"localbcc {__version__} ({state})"
    assert run("--version").stdout.strip() == expected
    by_module = subprocess.run([sys.executable, "-m", "localbcc", "--version"], capture_output=True,
                               text=True, timeout=60, env=clean_env(), cwd=ROOT)
    assert by_module.returncode == 0 and by_module.stdout.strip() == expected


# -- a server started by hand ------------------------------------------------------------------------

class Serve:
    """`localbcc serve` with exactly the arguments and environment given."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None):
        self.port = port or free_port()
        self.args = list(args)
        self.env = env or clean_env()
        self.out = tmp / f"serve-{self.port}-{time.monotonic_ns()}.out"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Serve":
        with open(self.out, "wb") as fh:
            self.proc = subprocess.Popen(LOCALBCC + ["serve", *self.args], stdout=fh,
                                         stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
        wait_healthy(self.proc, f"127.0.0.1:{self.port}", self.out, 30)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def output(self) -> str:
        return self.out.read_text()

    def banner(self) -> dict[str, str]:
        text = self.output
        fields = dict(re.findall(r"^ {2}(endpoint|region|access key|secret key) +(\S+)$", text, re.M))
        assert set(fields) == {"endpoint", "region", "access key", "secret key"}, text[:3000]
        return fields

    def example(self) -> str:
        """The banner's Python example, dedented."""
        lines = self.output.splitlines()
        start = next(i for i, ln in enumerate(lines) if "bce-python-sdk" in ln and ln.rstrip().endswith(":"))
        body = []
        for ln in lines[start + 1:]:
            if not ln.startswith("  ") or not ln.strip():
                break
            body.append(ln)
        assert body, self.output[:3000]
        return textwrap.dedent("\n".join(body))

    def client(self, ak: str, sk: str) -> BccClient:
        return BccClient(BceClientConfiguration(credentials=BceCredentials(ak, sk),
                                                endpoint=f"127.0.0.1:{self.port}"))


def test_default_account_is_generated_persisted_and_reused(tmp_path):
    data = tmp_path / "data"
    env = clean_env(LOCALBCC_DATA_DIR=str(data))  # no LOCALBCC_CREDENTIALS
    port = free_port()
    with Serve(tmp_path, "--port", str(port), env=env, port=port) as srv:
        first = srv.banner()
        ak, sk = first["access key"], first["secret key"]
        assert len(ak) >= 16 and len(sk) >= 16 and ak != sk
        kid = srv.client(ak, sk).create_keypair(keypair_name="kept").keypair.keypair_id
        # accounts added while the server runs work at once
        created = run("account", "create", env=env).stdout
        new_ak = re.search(r"access key\s+(\S+)", created).group(1)
        new_sk = re.search(r"secret key\s+(\S+)", created).group(1)
        assert srv.client(new_ak, new_sk).list_keypairs().keypairs == []
    assert any(data.iterdir()), "nothing was persisted in the data dir"

    listed = run("account", "list", env=env).stdout
    assert ak in listed and new_ak in listed
    assert sk not in listed and new_sk not in listed
    marked = [ln.split("\t")[0] for ln in listed.splitlines() if ln.endswith("\tdefault")]
    assert marked == [ak], listed  # the account `serve` prints, and only that one
    shown = run("account", "list", "--show-secrets", "--data-dir", str(data), env=clean_env()).stdout
    assert sk in shown and new_sk in shown

    port = free_port()
    with Serve(tmp_path, "--port", str(port), env=env, port=port) as srv:
        again = srv.banner()
        assert (again["access key"], again["secret key"]) == (ak, sk)  # the first account stays the default
        assert srv.client(ak, sk).get_keypair(kid).keypair.name == "kept"
        assert "the default (the oldest account); 1 other account in this database" in srv.output

    # Fixed credentials on the same data directory: another account becomes the
    # default, and the banner and `account list` say so (the first run's key
    # pairs are not gone, they are the other account's).
    fixed_ak, fixed_sk = "AKfixed" + os.urandom(4).hex(), "fixed-secret-" + os.urandom(4).hex()
    port = free_port()
    fixed_env = env | {"LOCALBCC_CREDENTIALS": f"{fixed_ak}:{fixed_sk}"}
    with Serve(tmp_path, "--port", str(port), env=fixed_env, port=port) as srv:
        assert srv.banner()["access key"] == fixed_ak
        assert ("the default (the first of --credentials); 2 other accounts in this database "
                "keep their own key pairs (localbcc account list)") in srv.output
    listed = run("account", "list", env=fixed_env).stdout
    marked = [ln.split("\t")[0] for ln in listed.splitlines() if ln.endswith("\tdefault")]
    assert marked == [fixed_ak] and ak in listed, listed


def test_env_port_banner_and_its_example_work(tmp_path):
    port = free_port()
    ak, sk = "AKbanner" + os.urandom(4).hex(), os.urandom(16).hex()
    env = clean_env(LOCALBCC_PORT=str(port), LOCALBCC_DATA_DIR=str(tmp_path / "d"),
                    LOCALBCC_CREDENTIALS=f"{ak}:{sk},AKsecond:SKsecond-0123456789", LOCALBCC_REGION="gz")
    with Serve(tmp_path, env=env, port=port) as srv:  # no --port: LOCALBCC_PORT decides
        banner = srv.banner()
        assert banner["endpoint"].endswith(f"127.0.0.1:{port}")
        assert banner["region"] == "gz"
        assert (banner["access key"], banner["secret key"]) == (ak, sk)
        code = srv.example()
        assert "BccClient" in code and ak in code and sk in code
        ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             cwd=tmp_path, env=clean_env())
        assert ran.returncode == 0, (code, ran.stderr[-2000:])
        printed = ran.stdout.strip()
        assert re.fullmatch(r"k-[A-Za-z0-9]{8}", printed), ran.stdout
        kp = srv.client(ak, sk).get_keypair(printed).keypair
        assert kp.region_id == "gz"


# -- mistakes: one line saying what is wrong, exit status 2, nothing created ------------------------

def _taken_port():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def _not_a_database(tmp: Path) -> Path:
    (tmp / "junk").mkdir()
    (tmp / "junk" / "localbcc.db").write_text("this is not a SQLite file\n")
    return tmp / "junk"


def test_mistakes_get_one_line_and_create_nothing(tmp_path):
    missing = tmp_path / "typo"
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    junk = _not_a_database(tmp_path)
    with _taken_port() as taken:
        cases = [
            (["account", "list", "--data-dir", str(missing)], "no localbcc database at"),
            (["db", "check", "--data-dir", str(missing)], "no localbcc database at"),
            (["db", "export", "-", "--data-dir", str(missing)], "no localbcc database at"),
            (["db", "export", "-", "--database-url", f"sqlite:///{missing / 'x.db'}"],
             "no localbcc database at"),
            (["account", "create", "--data-dir", str(a_file)], "as the data directory"),
            (["db", "check", "--database-url", "foo://bar"], "cannot use the database URL foo://bar"),
            (["db", "upgrade", "--database-url", "mysql://u:hunter2@db/x"],
             "cannot use the database URL mysql://u:***@db/x"),
            (["account", "list", "--data-dir", str(junk)], "the database refused"),
            (["serve", "--data-dir", str(junk), "--port", str(free_port())], "the database refused"),
            (["serve", "--data-dir", str(missing), "--credentials",
              "a:secret-0123456789,a:secret-9876543210"], "names access key 'a' twice"),
            # credentials no client could use: refused before anything is created
            (["serve", "--data-dir", str(missing), "--credentials", "myak:mysecret"],
             "must be 16-128 printable ASCII characters"),
            (["serve", "--data-dir", str(missing), "--credentials", "my/ak:secret-0123456789"],
             "access key 'my/ak' cannot sign requests"),
            (["serve", "--data-dir", str(missing), "--credentials", "my ak:secret-0123456789"],
             "access key 'my ak' cannot sign requests"),
            (["account", "create", "--data-dir", str(missing), "--access-key", "a/b"],
             "access key 'a/b' cannot sign requests"),
            (["account", "create", "--data-dir", str(missing), "--secret-key", "short"],
             "must be 16-128 printable ASCII characters"),
            (["serve", "--data-dir", str(missing), "--port", str(taken.getsockname()[1])],
             "cannot listen on 127.0.0.1"),
            (["serve", "--data-dir", str(missing), "--port", "70000"], "--port"),
        ]
        for args, expected in cases:
            proc = run(*args, check=False)
            assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
            assert expected in proc.stderr, (args, proc.stderr)
            assert "Traceback" not in proc.stderr and "hunter2" not in proc.stderr, (args, proc.stderr)
    assert not missing.exists()  # nothing was created by any of them

