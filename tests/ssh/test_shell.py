"""The built-in shell: every command, chaining, quoting, scripts of several
lines, exit statuses, what it refuses, and that stored values reach a terminal
escaped; first without a network, then through the stock OpenSSH client and
paramiko against a real server."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import create_engine, text

from localbcc.domain.images import get_image
from localbcc.ssh.shell import ExitShell, Shell
from localbcc.ssh.terminal import printable

from .helpers import create, import_key, known_hosts, new_key, openssh, pconnect, wait_status

OS_RELEASE = get_image("m-Ubt2204a").os_release


def run(line: str, keys: str = "ssh-ed25519 AAAA k\n", shell: Shell | None = None):
    shell = shell or new_shell(keys)
    out, err = [], []
    status = asyncio.run(shell.run(line, out.append, err.append))
    return status, "".join(out), "".join(err)


def new_shell(keys: str = "") -> Shell:
    async def authorized_keys() -> str:
        return keys

    return Shell("web-1", OS_RELEASE, "x86_64", authorized_keys)


@pytest.mark.parametrize("line,expected", [
    ("hostname", (0, "web-1\n", "")),
    ("hostname -f", (0, "web-1\n", "")),
    ("whoami", (0, "root\n", "")),
    ("id", (0, "uid=0(root) gid=0(root) groups=0(root)\n", "")),
    ("id -u", (0, "0\n", "")),
    ("uname", (0, "Linux\n", "")),
    ("uname -n", (0, "web-1\n", "")),
    ("uname -sm", (0, "Linux x86_64\n", "")),
    ("uname -a", (0, "Linux web-1 6.1.0-localbcc #1 SMP PREEMPT_DYNAMIC localbcc x86_64 x86_64 "
                     "x86_64 GNU/Linux\n", "")),
    ("uname -z", (1, "", "uname: invalid option -- 'z'\n")),
    ("cat /etc/os-release", (0, OS_RELEASE, "")),
    ("cat ~/.ssh/authorized_keys", (0, "ssh-ed25519 AAAA k\n", "")),
    ("cat /root/.ssh/authorized_keys", (0, "ssh-ed25519 AAAA k\n", "")),
    ("cat /etc/hostname /etc/shadow", (1, "web-1\n", "cat: /etc/shadow: No such file or directory\n")),
    ("echo", (0, "\n", "")),
    ("echo -n a b", (0, "a b", "")),
    ("echo 'a  b' \"c d\" e\\ f", (0, "a  b c d e f\n", "")),
    ("true", (0, "", "")),
    ("false", (1, "", "")),
    ("", (0, "", "")),
    ("   # just a comment", (0, "", "")),
    ("ls -la", (127, "", "ls: command not found\n")),
    ("/bin/sh -c id", (127, "", "/bin/sh: command not found\n")),
    ("sudo rm -rf /", (127, "", "sudo: command not found\n")),
    ("false; echo $?", (0, "1\n", "")),
    ("true && echo yes || echo no", (0, "yes\n", "")),
    ("false && echo yes || echo no", (0, "no\n", "")),
    ("whoami;hostname", (0, "root\nweb-1\n", "")),
])
def test_commands(line, expected):
    assert run(line) == expected


@pytest.mark.parametrize("line", ["cat /etc/os-release | head", "echo x > /tmp/f",
                                  "cat < /etc/passwd", "sleep 1 &", "(id)", "echo `id`x | y"])
def test_pipes_redirections_and_jobs_are_refused(line):
    status, out, err = run(line)
    assert (status, out) == (2, "") and "not supported" in err


def test_unbalanced_quotes_are_a_syntax_error():
    status, _, err = run("echo 'oops")
    assert status == 2 and "syntax error" in err


def test_exit_ends_the_shell_with_a_status():
    shell = new_shell()
    for line, status in (("exit", 0), ("exit 3", 3), ("exit 300", 300 & 0xFF), ("exit x", 2)):
        with pytest.raises(ExitShell) as done:
            run(line, shell=shell)
        assert done.value.status == status
    run("false", shell=shell)
    with pytest.raises(ExitShell) as done:
        run("exit", shell=shell)
    assert done.value.status == 1  # the last command's status, as in sh


def test_no_key_in_force_means_an_empty_authorized_keys():
    assert run("cat ~/.ssh/authorized_keys", keys="") == (0, "", "")


def test_the_prompt():
    assert new_shell().prompt == "root@web-1:~# "


# -- several lines in one command (`ssh host $'cmd1\ncmd2'`) ----------------------------

@pytest.mark.parametrize("script,expected", [
    ("whoami\nhostname", (0, "root\nweb-1\n", "")),
    ("hostname\nfalse", (1, "web-1\n", "")),  # the last command's status
    ("false\ntrue", (0, "", "")),
    ("false\n\n   \n# a comment\n", (1, "", "")),  # blank lines and comments change nothing
    ("\n\nwhoami\n\n", (0, "root\n", "")),
    ("echo a # c\necho b", (0, "a\nb\n", "")),  # a comment ends at its line
    ("false\necho $?", (0, "1\n", "")),
    ("nope\nwhoami", (0, "root\n", "nope: command not found\n")),
    ("echo x | y\nwhoami", (0, "root\n", "-bash: '|': pipes, redirections and jobs are not "
                                         "supported here\n")),
    ("echo 'a\nb'\nwhoami", (0, "a\nb\nroot\n", "")),  # a newline in quotes is a newline
    ("echo \"a\n\nb\" c", (0, "a\n\nb c\n", "")),
    ("echo a\\\nb\nwhoami", (0, "ab\nroot\n", "")),  # backslash-newline goes on
    ("false &&\nwhoami\necho next", (0, "next\n", "")),  # so does a trailing && or ||
    ("false ||\n\nwhoami", (0, "root\n", "")),
    ("whoami; false\ntrue && hostname", (0, "root\nweb-1\n", "")),
    ("whoami\necho 'oops", (2, "root\n", "-bash: syntax error: No closing quotation\n")),
    ("whoami\r\nhostname\r\n", (0, "root\nweb-1\n", "")),  # CRLF lines too
])
def test_each_line_runs_in_order(script, expected):
    assert run(script) == expected


@pytest.mark.parametrize("script,status", [("whoami\nexit 4\nhostname", 4),
                                           ("false\nexit\nwhoami", 1),
                                           ("true\nexit 3; hostname\nwhoami", 3)])
def test_exit_stops_a_script_there(script, status):
    out: list[str] = []
    with pytest.raises(ExitShell) as done:
        asyncio.run(new_shell().run(script, out.append, out.append))
    assert done.value.status == status
    assert "".join(out) in ("root\n", "")  # nothing after the exit ran
    assert "web-1" not in "".join(out)


# -- stored values never reach a terminal raw -----------------------------------------

def test_printable_escapes_controls_and_keeps_unicode():
    assert printable("web-1") == "web-1"
    assert printable("主机-1 café") == "主机-1 café"
    assert printable("a\x1b]0;pwned\x07b\nc\rd\te\x7ff\x9bg\u202eh\x00") == (
        "a\\x1b]0;pwned\\x07b\\nc\\rd\\te\\x7ff\\x9bg\\u202eh\\x00")
    assert printable("back\\slash 'q' \"dq\"") == "back\\slash 'q' \"dq\""


EVIL = "evil\x1b[2J\x07\nroot@fake:~# \x9b31m"
EVIL_SHOWN = "evil\\x1b[2J\\x07\\nroot@fake:~# \\x9b31m"


@pytest.mark.parametrize("command", ["hostname", "uname -n", "uname -a", "cat /etc/hostname",
                                     "cat ~/.ssh/authorized_keys"])
def test_stored_values_are_printed_escaped(command):
    shell = Shell(EVIL, OS_RELEASE, "x86_64", _keys(f"ssh-ed25519 AAAA {EVIL}\n"))
    status, out, err = run(command, shell=shell)
    assert status == 0 and err == "" and EVIL_SHOWN in out
    assert out.count("\n") == 1 and out.endswith("\n")
    assert not any(ch in out for ch in "\x1b\x07\x9b\r")
    assert EVIL_SHOWN in shell.prompt and shell.prompt.isprintable()


def _keys(text: str):
    async def authorized_keys() -> str:
        return text

    return authorized_keys


# -- through a real server ---------------------------------------------------------------

def test_a_command_of_several_lines_over_openssh(sdk, tmp_path):
    key = new_key(tmp_path, "lines")
    [iid] = create(sdk, key_pair_id=import_key(sdk, key, "lines"), hostname="multi")
    inst = wait_status(sdk, iid)
    kh = known_hosts(tmp_path, inst)

    def sh(command):
        r = openssh(inst, key, command, kh=kh)
        return r.returncode, r.stdout, r.stderr

    assert sh("whoami\nhostname\n\nfalse") == (1, "root\nmulti\n", "")
    assert sh("whoami\nexit 4\nhostname") == (4, "root\n", "")
    assert sh("nope\nfalse ||\n  echo 'a\nb'") == (0, "a\nb\n", "nope: command not found\n")


#: What an API caller could store before hostnames were checked (or through
#: `db import`): a screen clear, a window-title sequence ended by BEL, a fake
#: prompt on a new line, a C1 CSI, and CJK that must stay as it is.
HOSTILE = "web-主机\x1b[2J\x1b]0;owned\x07\nroot@other:~# \x9b31m"
HOSTILE_SHOWN = "web-主机\\x1b[2J\\x1b]0;owned\\x07\\nroot@other:~# \\x9b31m"
RAW = ("\x1b", "\x07", "\x9b")


def store_hostile_values(server, iid: str, kp: str, public: str) -> None:
    """Write the hostname and the key's comment straight into the database, as
    an old database or `db import` could hold them (the API refuses them)."""
    engine = create_engine(server.database())
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE instances SET hostname = :h WHERE id = :i"),
                         {"h": HOSTILE, "i": iid})
            conn.execute(text("UPDATE keypairs SET public_key = :k WHERE id = :i"),
                         {"k": f"{public} ops{HOSTILE}", "i": kp})
    finally:
        engine.dispose()


def test_stored_control_characters_never_reach_the_terminal(ssh_server, sdk, tmp_path):
    key = new_key(tmp_path, "esc")
    kp = import_key(sdk, key, "esc")
    [iid] = create(sdk, key_pair_id=kp, hostname="esc")
    inst = wait_status(sdk, iid)
    blob_line = " ".join(key.public.split()[:2])
    store_hostile_values(ssh_server, iid, kp, blob_line)
    kh = known_hosts(tmp_path, inst)

    r = openssh(inst, key, "hostname\nuname -n\ncat /etc/hostname ~/.ssh/authorized_keys", kh=kh)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == f"{HOSTILE_SHOWN}\n" * 3 + f"{blob_line} ops{HOSTILE_SHOWN}\n"
    assert not any(ch in r.stdout for ch in RAW)

    with pconnect(inst, key) as client:  # the banner and the prompt, on a terminal
        chan = client.invoke_shell(term="xterm")
        chan.settimeout(10)
        received = b""
        prompt = f"root@{HOSTILE_SHOWN}:~# ".encode()
        while prompt not in received:
            chunk = chan.recv(4096)
            assert chunk, f"channel closed; got {received!r}"
            received += chunk
        shown = received.decode()
        assert f"This is {HOSTILE_SHOWN}, a localbcc instance" in shown
        assert not any(ch in shown for ch in RAW)
        assert shown.replace("\r", "").count("\n") == 4  # the banner's own lines only
