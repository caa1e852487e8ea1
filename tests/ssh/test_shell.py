"""The built-in shell: every command, chaining, quoting, scripts of several
lines, exit statuses and what it refuses; first without a network, then
through the stock OpenSSH client against a real server."""
from __future__ import annotations

import asyncio

import pytest

from localbcc.domain.images import get_image
from localbcc.ssh.shell import ExitShell, Shell

from .helpers import create, import_key, known_hosts, new_key, openssh, wait_status

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
