"""The built-in shell of an instance: a handful of commands answered from the
instance's own data. It never runs a host command and never opens a host
file; every answer below is computed from the instance row and its image.

A command (``ssh host 'cmd'``) may hold several lines, run one after the other
as sh would: a line that ends inside quotes, after a backslash, ``&&`` or
``||`` goes on on the next one; the status is the last command's, and
``exit`` stops there. Command lines may chain commands with ``;``, ``&&`` and
``||``; quoting works as in sh. Pipes, redirections and background jobs are
refused (status 2). Anything unknown says ``<cmd>: command not found`` with
status 127.

Stored values it prints (the hostname, the key's comment) go through
:func:`terminal.printable`: no control character of theirs reaches a terminal.
"""
from __future__ import annotations

import shlex
from typing import Awaitable, Callable

from .terminal import printable

Write = Callable[[str], None]

KERNEL = "6.1.0-localbcc"
_UNSUPPORTED = {"|", "&", ">", "<", ">>", "<<", "(", ")", "|&", ";;", "&>", ">&"}
_AUTHORIZED_KEYS = ("~/.ssh/authorized_keys", "/root/.ssh/authorized_keys", ".ssh/authorized_keys")
_OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")


class ExitShell(Exception):
    def __init__(self, status: int):
        self.status = status


class Shell:
    def __init__(self, hostname: str, os_release: str, arch: str,
                 authorized_keys: Callable[[], Awaitable[str]]):
        """``authorized_keys`` reads the key in force, ``"<key>\\n"``, or ``""``."""
        self.hostname = hostname
        self.os_release = os_release
        self.arch = arch
        self._authorized_keys = authorized_keys
        self.status = 0  # of the last command, as $?

    @property
    def prompt(self) -> str:
        return f"root@{printable(self.hostname)}:~# "

    async def run(self, script: str, out: Write, err: Write) -> int:
        """Run every command of ``script``, line after line; returns the last
        one's status. Raises :class:`ExitShell` on ``exit`` (later lines do
        not run)."""
        lines = script.split("\n")
        pending = ""
        for n, line in enumerate(lines, 1):
            source = pending + line
            pending = ""
            more = n < len(lines)
            try:
                tokens = _tokens(source)
            except ValueError as exc:
                if more and str(exc) == "No escaped character":  # a backslash-newline
                    pending = source[:-1]
                elif more and str(exc) == "No closing quotation":  # a newline in quotes
                    pending = source + "\n"
                else:
                    err(f"-bash: syntax error: {exc}\n")
                    self.status = 2
                continue
            if more and tokens and tokens[-1] in ("&&", "||"):
                pending = source + "\n"
                continue
            await self._run_tokens(tokens, out, err)
        return self.status

    async def _run_tokens(self, tokens: list[str], out: Write, err: Write) -> None:
        commands: list[tuple[str | None, list[str]]] = [(None, [])]
        for token in tokens:
            if token in (";", "&&", "||"):
                commands.append((token, []))
            elif token in _UNSUPPORTED or (token and set(token) <= set("|&<>();")):
                err(f"-bash: '{token}': pipes, redirections and jobs are not supported here\n")
                self.status = 2
                return
            else:
                commands[-1][1].append(token)
        for joiner, argv in commands:
            if joiner == "&&" and self.status != 0 or joiner == "||" and self.status == 0:
                continue
            if argv:
                self.status = await self._command(argv, out, err)

    async def _command(self, argv: list[str], out: Write, err: Write) -> int:
        argv = [str(self.status) if a == "$?" else a for a in argv]
        name, args = argv[0], argv[1:]
        if name == "hostname":
            if any(not a.startswith("-") for a in args):
                err("hostname: you must be root to change the host name\n")
                return 1
            out(printable(self.hostname) + "\n")
        elif name == "whoami":
            out("root\n")
        elif name == "id":
            out({"-u": "0\n", "-g": "0\n", "-un": "root\n", "-nu": "root\n"}.get(
                " ".join(args), "uid=0(root) gid=0(root) groups=0(root)\n"))
        elif name == "uname":
            return self._uname(args, out, err)
        elif name == "cat":
            return await self._cat(args, out, err)
        elif name == "echo":
            newline = "\n"
            if args[:1] == ["-n"]:
                newline, args = "", args[1:]
            out(" ".join(args) + newline)
        elif name == "true":
            return 0
        elif name == "false":
            return 1
        elif name == "exit":
            try:
                status = int(args[0]) & 0xFF if args else self.status
            except ValueError:
                err(f"-bash: exit: {args[0]}: numeric argument required\n")
                status = 2
            raise ExitShell(status)
        else:
            err(f"{name}: command not found\n")
            return 127
        return 0

    def _uname(self, args: list[str], out: Write, err: Write) -> int:
        parts = {"s": "Linux", "n": printable(self.hostname), "r": KERNEL,
                 "v": "#1 SMP PREEMPT_DYNAMIC localbcc", "m": self.arch, "p": self.arch,
                 "i": self.arch, "o": "GNU/Linux"}
        wanted: list[str] = []
        for arg in args:
            if arg in ("-a", "--all"):
                wanted = list("snrvmpio")
                break
            if not arg.startswith("-") or any(ch not in parts for ch in arg[1:]) or arg == "-":
                err(f"uname: invalid option -- '{arg.lstrip('-')[:1] or arg}'\n")
                return 1
            wanted += [ch for ch in arg[1:] if ch not in wanted]
        order = [ch for ch in "snrvmpio" if ch in (wanted or ["s"])]
        out(" ".join(parts[ch] for ch in order) + "\n")
        return 0

    async def _cat(self, args: list[str], out: Write, err: Write) -> int:
        status = 0
        for path in args:
            if path in _OS_RELEASE:
                out(self.os_release)
            elif path == "/etc/hostname":
                out(printable(self.hostname) + "\n")
            elif path in _AUTHORIZED_KEYS:
                key = (await self._authorized_keys()).removesuffix("\n")  # one key at most
                out(printable(key) + "\n" if key else "")
            else:
                err(f"cat: {path}: No such file or directory\n")
                status = 1
        return status


def _tokens(line: str) -> list[str]:
    """The words and operators of a command line, as sh splits them; raises
    ValueError when a quote is left open or the line ends in a backslash."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)
