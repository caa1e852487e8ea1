"""The asyncssh side of an instance: authentication and the built-in shell.
Imported only once a connection is let in (asyncssh is slow to import)."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncssh

from ..domain import lifecycle
from ..domain.images import get_image
from ..models import Instance
from ..domain.passwords import check_password
from . import hostkeys
from .shell import ExitShell, Shell
from .terminal import printable

log = logging.getLogger("localbcc.ssh")
USER = "root"


def new_connection(service: Any, inst: Instance, cache: dict[str, Any]) -> asyncssh.SSHServerConnection:
    options = cache.get(inst.id)
    if options is None:
        assert inst.ssh_host_key is not None  # Linux instances have one; only they get endpoints
        key = asyncssh.import_private_key(hostkeys.private_openssh(inst.ssh_host_key))
        options = asyncssh.SSHServerConnectionOptions(
            server_host_keys=[key], server_version="localbcc",
            server_factory=lambda: InstanceServer(service, inst.id),
            process_factory=lambda process: _serve(service, process),
            allow_scp=False, agent_forwarding=False, x11_forwarding=False,
            login_timeout=30, keepalive_interval=30, line_editor=True)
        cache[inst.id] = options
    return asyncssh.SSHServerConnection(asyncio.get_running_loop(), options)


class InstanceServer(asyncssh.SSHServer):
    """Decides logins by reading the instance row at each attempt."""

    def __init__(self, service: Any, instance_id: str):
        self.service = service
        self.instance_id = instance_id
        self.conn: Any = None
        self.password_ok = False

    def connection_made(self, conn) -> None:
        self.conn = conn

    def connection_lost(self, exc) -> None:
        self.service.forget(self.conn)

    async def _current(self, username: str) -> tuple[Instance, str | None] | None:
        if username != USER:
            return None
        found = await self.service.load(self.instance_id)
        if found is None or not self.service.usable(found[0], self.service.sessions.get(self.conn)):
            return None
        return found

    async def begin_auth(self, username: str) -> bool:
        found = await self._current(username)
        self.password_ok = found is not None and lifecycle.password_allowed(found[0], self.service.now())
        return True

    def auth_completed(self) -> None:
        peer = self.conn.get_extra_info("peername") if self.conn else None
        log.info("SSH: root logged in to %s%s", self.instance_id,
                 f" from {peer[0]}:{peer[1]}" if peer else "")

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        found = await self._current(username)
        if found is None:
            return False
        inst, public_key = found
        return (public_key is not None and lifecycle.key_in_force(inst, self.service.now())
                and hostkeys.blob_of(public_key) == key.public_data)

    def password_auth_supported(self) -> bool:
        return self.password_ok

    async def validate_password(self, username: str, password: str) -> bool:
        found = await self._current(username)
        if found is None or not lifecycle.password_allowed(found[0], self.service.now()):
            return False
        return await self.service.ctx.offload(check_password, password, found[0].admin_pass_hash)


_BANNER = ("This is {hostname}, a localbcc instance ({image}). It has no operating system: "
           "a built-in shell\nanswers hostname, whoami, id, uname, cat (/etc/os-release, "
           "~/.ssh/authorized_keys), echo,\ntrue, false and exit. Nothing runs on your machine.\n\n")


async def _still_usable(service: Any, conn: Any, session: Any) -> bool:
    """Read the instance now. The reconcile pass drops the sessions of an
    instance that stopped or restarted within 0.2 s; a command sent in between,
    after the API had already answered the stop, must not run."""
    found = await service.load(session.instance_id)
    if found is not None and service.usable(found[0], session):
        return True
    service.drop(conn, f"instance {session.instance_id} is no longer running as it was "
                       f"when you logged in")
    return False


async def _serve(service: Any, process: asyncssh.SSHServerProcess) -> None:
    conn = process.get_extra_info("connection")
    session = service.sessions.get(conn)
    if session is None or not await _still_usable(service, conn, session):  # dropped meanwhile
        process.exit(255)
        return
    if process.subsystem:
        process.stderr.write(f"subsystem {process.subsystem} is not available here\n")
        process.exit(1)
        return
    image = get_image(session.image_id)
    shell = Shell(session.hostname, image.os_release, image.os_arch.split()[0],
                  lambda: service.authorized_keys(session.instance_id))
    out, err = process.stdout.write, process.stderr.write
    if process.get_terminal_type():  # on a terminal, errors show in line, as a pty would
        err = out
    try:
        if process.command is not None:
            try:
                status = await shell.run(process.command, out, err)
            except ExitShell as done:
                status = done.status
            process.exit(status)
            return
        out(_BANNER.format(hostname=printable(session.hostname), image=printable(image.name)))
        while True:
            out(shell.prompt)
            try:
                line = await process.stdin.readline()
            except asyncssh.TerminalSizeChanged:
                continue
            except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                out("^C\n")
                continue
            if not line:
                out("logout\n")
                process.exit(shell.status)
                return
            if not await _still_usable(service, conn, session):
                process.exit(255)
                return
            try:
                await shell.run(line.rstrip("\r\n"), out, err)
            except ExitShell as done:
                out("logout\n")
                process.exit(done.status)
                return
    except (asyncssh.DisconnectError, asyncssh.ConnectionLost, BrokenPipeError,
            ConnectionError):
        return
