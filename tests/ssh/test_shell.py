"""The built-in shell, without a network: every command, chaining, quoting,
exit statuses, and what it refuses."""
from __future__ import annotations

import asyncio

import pytest

from localbcc.domain.images import get_image
from localbcc.ssh.shell import ExitShell, Shell

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
