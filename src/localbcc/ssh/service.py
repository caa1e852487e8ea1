"""The SSH service: one listening endpoint per Linux instance, in the server's
own event loop (docs/ssh.md has the user's view, docs/design.md the why).

How it stays exactly in step with the API, across processes, with no lag:

* Every decision reads the instance row *when it is made* and applies the
  lifecycle functions with the server's clock: a new TCP connection is let in
  only if the instance reads Running at that moment (else it is closed before
  the SSH banner); a public key is accepted only if it is the key in force,
  a password only while ``password_allowed``. So the moment ``get_instance``
  says Running, SSH says Running too, whichever process answered.
* Listeners exist for every Linux instance, whatever its status, so starting
  an instance needs nothing to happen here first. Every 0.2 s one aggregate
  query (count, max seq, max and sum of transition_until) tells whether any
  instance was created, released or changed state; only then (and every 5 s)
  are a few columns of every instance read (both reads on a worker thread:
  with 10,000 instances they take tens of milliseconds, which on the event
  loop would hold up every API request). That pass opens listeners for new
  instances, closes those of released ones, retries endpoints whose address
  was taken (every 2 s), and drops sessions whose instance stopped or
  restarted since they were let in (reboot, stop, attach on a running
  instance, rebuild): a session remembers the instance's ``transition_until``,
  which every such operation changes.
* One process per database serves (see lock.py); the others stand by and
  take over if it stops. ``--ssh-serve force`` serves without the lock (say,
  on another --ssh-port) and then leaves endpoint errors to the lock holder.

asyncssh is imported lazily (it costs a quarter second): listeners are plain
asyncio servers, and asyncssh only takes over a connection once it is let in.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..domain import lifecycle
from ..domain.images import get_image
from ..domain.models import Instance
from . import hostkeys
from .lock import ServeLocks
from .view import SshView

log = logging.getLogger("localbcc.ssh")

RECONCILE_SECONDS = 0.2
LOCK_RETRY_SECONDS = 1.0
BIND_RETRY_SECONDS = 2.0
BOOT_WAIT_SECONDS = 30.0
ALIVE_CHECK_SECONDS = 2.0
FULL_READ_SECONDS = 5.0
#: Instances a reconcile pass walks between two turns of the event loop: the
#: walk over 10,000 of them takes ~10 ms, which in one go would hold up every
#: API request meanwhile.
WALK_CHUNK = 500
#: Endpoint errors (sshStatusReason) written in one go, one transaction each:
#: ~15 ms of the loop's time, then a turn for the API's requests.
ERRORS_CHUNK = 100


class _Row(NamedTuple):
    """Attribute names match Instance, so lifecycle.status() takes it."""
    id: str
    seq: int
    image_id: str
    state: str
    transition: str | None
    transition_until: float
    ssh_error: str | None


@dataclass
class Session:
    """One admitted connection: its instance, and the restart it belongs to."""
    instance_id: str
    marker: float  # the instance's transition_until when it was let in
    hostname: str
    image_id: str


class SshService:
    def __init__(self, ctx: Any, view: SshView | None = None):
        self.ctx = ctx
        self.settings = ctx.settings
        self.view = view or SshView.from_settings(ctx.settings)
        self.force = getattr(self.settings, "ssh_serve", "auto") == "force"
        self.locks = ServeLocks(ctx.store)
        self.serving = False
        self.listeners: dict[str, asyncio.AbstractServer] = {}
        self.failed: dict[str, tuple[float, str]] = {}  # instance id -> (retry at, error)
        self.sessions: dict[Any, Session] = {}  # asyncssh connection -> its session
        self._options: dict[str, Any] = {}  # instance id -> asyncssh server options
        self._opening: set[str] = set()  # instance ids whose endpoint _open is binding
        self._task: asyncio.Task | None = None
        self._next_lock_try = 0.0
        self._next_alive_check = 0.0
        self._last_error_log = 0.0
        self._signature: tuple | None = None
        self._rows: list[_Row] = []
        self._next_full_read = 0.0

    # -- start / stop -------------------------------------------------------------

    async def start(self) -> None:
        """Decide whether this process serves, and if so open the endpoints of
        every instance before returning (the caller then answers /healthz)."""
        if not self.settings.ssh:
            return
        if not log.isEnabledFor(logging.DEBUG):  # asyncssh logs every connection at INFO
            logging.getLogger("asyncssh").setLevel(logging.WARNING)
        _raise_fd_limit()
        if self.force:
            log.info("SSH: serving the endpoints of this database (--ssh-serve force)")
            self.serving = True
            await self._reconcile()
        else:
            await self._boot()
        self._task = asyncio.get_running_loop().create_task(self._run())
        asyncio.get_running_loop().run_in_executor(None, _import_asyncssh)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except BaseException:
                pass
            self._task = None
        await self._stop_serving("the server is shutting down")
        self.locks.close()

    async def _boot(self) -> None:
        deadline = time.monotonic() + BOOT_WAIT_SECONDS
        while not await self.ctx.run(self.locks.try_lock, "boot"):
            if time.monotonic() > deadline:
                log.warning("SSH: another localbcc process on this database has been opening "
                            "its SSH endpoints for %.0f s; not waiting for it", BOOT_WAIT_SECONDS)
                return
            await asyncio.sleep(0.02)
        try:
            await self._try_serve(first=True)
        finally:
            await self.ctx.run(self.locks.unlock, "boot")

    async def _try_serve(self, first: bool) -> None:
        if await self.ctx.run(self.locks.try_lock, "serve"):
            self.serving = True
            log.info("SSH: this process serves the SSH endpoints of this database (%s layout, "
                     "port %s)", self.view.layout,
                     self.view.port if self.view.layout == "address" else f"{self.view.port}+n")
            await self._reconcile()
        elif first:
            log.info("SSH: another localbcc process serves the SSH endpoints of this database; "
                     "this one serves none (it takes over if that one stops; "
                     "--ssh-serve force serves anyway)")

    async def _stop_serving(self, reason: str) -> None:
        for conn in list(self.sessions):
            self.drop(conn, reason)
        for iid in list(self.listeners):
            self._close_listener(iid)
        self.failed.clear()
        if self.serving and not self.force:
            await self.ctx.run(self.locks.unlock, "serve")
        self.serving = False

    # -- the reconcile loop ---------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_SECONDS)
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the loop die (storage may be down a while)
                now = time.monotonic()
                if now - self._last_error_log > 10:
                    self._last_error_log = now
                    log.warning("SSH: reconcile failed (will retry): %s", exc,
                                exc_info=log.isEnabledFor(logging.DEBUG))

    async def _tick(self) -> None:
        now = time.monotonic()
        if not self.serving:
            if not self.force and now >= self._next_lock_try:
                self._next_lock_try = now + LOCK_RETRY_SECONDS
                if await self.ctx.run(self.locks.try_lock, "boot"):
                    try:
                        await self._try_serve(first=False)
                    finally:
                        await self.ctx.run(self.locks.unlock, "boot")
            return
        if not self.force and now >= self._next_alive_check:
            self._next_alive_check = now + ALIVE_CHECK_SECONDS
            if not await self.ctx.run(self.locks.alive):
                log.warning("SSH: lost the database session holding the serving lock; "
                            "closing the endpoints until it can be taken again")
                await self._stop_serving("the SSH service lost its database session")
                return
        # Cheap on most passes: one aggregate row says whether any instance was
        # created, released or went through a transition since the last full read.
        signature = await self.ctx.read_in_background(self._read_signature)
        if signature != self._signature or now >= self._next_full_read:
            await self._reconcile()
        elif any(retry_at <= now for retry_at, _ in self.failed.values()):
            await self._reconcile(self._rows)

    async def _reconcile(self, rows: list[_Row] | None = None) -> None:
        if rows is None:
            self._signature, rows = await self.ctx.read_in_background(self._read_rows)
            self._rows = rows
            self._next_full_read = time.monotonic() + FULL_READ_SECONDS
        clock_now = self.ctx.clock.now()
        linux = {image: get_image(image).is_linux for image in {r.image_id for r in rows}}
        live = {r.id: r for r in rows if linux[r.image_id]}
        for iid in [i for i in self.listeners if i not in live]:
            self._close_listener(iid)
            self._options.pop(iid, None)
        for iid in [i for i in self.failed if i not in live]:
            del self.failed[iid]
        errors: dict[str, str | None] = {}
        mono = time.monotonic()
        for n, (iid, row) in enumerate(live.items(), 1):
            if n % WALK_CHUNK == 0:
                await asyncio.sleep(0)  # let the API's requests in
            if iid in self.listeners:
                error = None
            elif iid in self.failed and self.failed[iid][0] > mono:
                error = self.failed[iid][1]
            else:
                error = await self._open(row)
            if not self.force and (row.ssh_error or None) != error:
                errors[iid] = error
        if errors:
            items = list(errors.items())
            for start in range(0, len(items), ERRORS_CHUNK):
                await self.ctx.run(self._write_errors, dict(items[start:start + ERRORS_CHUNK]))
            self._rows = [r._replace(ssh_error=errors[r.id]) if r.id in errors else r
                          for r in self._rows]
        for conn, session in list(self.sessions.items()):
            row = live.get(session.instance_id)
            if row is None:
                self.drop(conn, f"instance {session.instance_id} was released")
            elif (lifecycle.status(row, clock_now) != lifecycle.RUNNING
                  or row.transition_until != session.marker):
                self.drop(conn, f"instance {session.instance_id} is "
                                 f"{lifecycle.status(row, clock_now).lower()}")

    def _read_signature(self) -> tuple:
        with self.ctx.store.read() as tx:
            return tx.ssh_signature()

    def _read_rows(self) -> tuple[tuple, list[_Row]]:
        with self.ctx.store.read() as tx:  # one snapshot for both
            return tx.ssh_signature(), list(map(_Row._make, tx.ssh_endpoints()))

    def _write_errors(self, errors: dict[str, str | None]) -> None:
        # One short transaction per row: never more than one row lock held, so
        # this cannot deadlock with the API's transactions, nor hold them up.
        for iid, error in errors.items():
            with self.ctx.store.write() as tx:
                tx.set_ssh_error(iid, error)

    # -- listeners -------------------------------------------------------------------

    async def open_now(self, instance_ids: list[str]) -> None:
        """Open the endpoints of new or rebuilt instances at once, rather than
        at the next pass (up to RECONCILE_SECONDS later): with
        --transition-seconds 0 an instance reads Running as soon as it exists,
        and its users ssh in right away. Only the serving process can; the
        others leave it to that process's next pass."""
        if not self.serving:
            return
        for iid in instance_ids:
            found = None if iid in self.listeners else await self.load(iid)
            if found is not None and get_image(found[0].image_id).is_linux:
                await self._open(_Row._make(getattr(found[0], f) for f in _Row._fields))

    async def _open(self, row: _Row) -> str | None:
        """Open the endpoint of one instance; returns why it failed, or None."""
        if row.id in self.listeners or row.id in self._opening:  # open_now and a pass at once
            return None
        self._opening.add(row.id)
        try:
            return await self._bind(row)
        finally:
            self._opening.discard(row.id)

    async def _bind(self, row: _Row) -> str | None:
        endpoint = self.view.endpoint(row.seq)
        if endpoint is None:
            return self._failed(row.id, None, "no loopback address or port is left for it")
        host, port = endpoint
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
            server = await asyncio.get_running_loop().create_server(
                lambda: _Gate(self, row.id), sock=sock)
        except OSError as exc:
            sock.close()
            hint = (" (another localbcc or an sshd on this machine? give one of them another "
                    "--ssh-port)") if exc.errno == errno.EADDRINUSE else ""
            return self._failed(row.id, f"{host}:{port}",
                                f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}")
        if row.id in self.failed:
            log.info("SSH: endpoint %s:%d of instance %s is now available", host, port, row.id)
            del self.failed[row.id]
        self.listeners[row.id] = server
        return None

    def _failed(self, iid: str, where: str | None, error: str) -> str:
        if iid not in self.failed:
            log.warning("SSH: the endpoint of instance %s is unavailable: %s; the API keeps "
                        "serving, retrying every %.0f s", iid, error, BIND_RETRY_SECONDS)
        self.failed[iid] = (time.monotonic() + BIND_RETRY_SECONDS, error)
        return error

    def _close_listener(self, iid: str) -> None:
        server = self.listeners.pop(iid, None)
        if server is not None:
            server.close()

    def drop(self, conn: Any, reason: str) -> None:
        self.sessions.pop(conn, None)
        try:
            import asyncssh

            conn.disconnect(asyncssh.DISC_BY_APPLICATION, reason)
        except Exception:
            conn.abort()

    # -- admission and authentication (called by _Gate and protocol.py) ----------------

    async def load(self, instance_id: str) -> tuple[Instance, str | None] | None:
        """The instance row and its bound pair's public key, read now."""
        try:
            return await self.ctx.run(self._load, instance_id)
        except Exception as exc:
            log.warning("SSH: could not read instance %s: %s", instance_id, exc)
            return None

    def _load(self, instance_id: str) -> tuple[Instance, str | None] | None:
        with self.ctx.store.read() as tx:
            found = tx.ssh_instance(instance_id)
        if found is not None and found[0].ssh_host_key is None:
            with self.ctx.store.write() as tx:  # a row written without one
                tx.set_ssh_host_key(instance_id, hostkeys.new_host_key())
                found = tx.ssh_instance(instance_id)
        return found

    def now(self) -> float:
        return self.ctx.clock.now()

    def usable(self, inst: Instance, session: Session | None) -> bool:
        """Running, and not restarted since the connection was let in."""
        return (lifecycle.status(inst, self.now()) == lifecycle.RUNNING
                and (session is None or inst.transition_until == session.marker))

    async def admit(self, instance_id: str, transport: asyncio.Transport) -> Any | None:
        """An SSH connection for this TCP connection, or None to refuse it."""
        if not self.serving or instance_id not in self.listeners:
            return None
        found = await self.load(instance_id)
        if found is None or not self.usable(found[0], None):
            return None
        inst = found[0]
        from . import protocol  # imports asyncssh

        conn = protocol.new_connection(self, inst, self._options)
        self.sessions[conn] = Session(inst.id, inst.transition_until, inst.hostname, inst.image_id)
        return conn

    def forget(self, conn: Any) -> None:
        self.sessions.pop(conn, None)

    async def authorized_keys(self, instance_id: str) -> str:
        """``~/.ssh/authorized_keys`` of the instance: the key in force, if any."""
        found = await self.load(instance_id)
        if found is None:
            return ""
        inst, public_key = found
        if public_key and lifecycle.key_in_force(inst, self.now()):
            return public_key + "\n"
        return ""


class _Gate(asyncio.Protocol):
    """Holds a new TCP connection (reading paused) until the instance row says
    whether it may come in, then hands the transport to asyncssh or closes it."""

    def __init__(self, service: SshService, instance_id: str):
        self.service = service
        self.instance_id = instance_id
        self.transport: asyncio.Transport | None = None
        self.buffered: list[bytes] = []
        self.eof = False
        self.lost = False
        self.task: asyncio.Task | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.pause_reading()
        self.task = asyncio.get_running_loop().create_task(self._decide())

    def data_received(self, data: bytes) -> None:
        self.buffered.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        return True

    def connection_lost(self, exc) -> None:
        self.lost = True

    async def _decide(self) -> None:
        transport = self.transport
        assert transport is not None  # set by connection_made, before data can arrive
        try:
            conn = await self.service.admit(self.instance_id, transport)
        except Exception:
            log.exception("SSH: admitting a connection to %s failed", self.instance_id)
            conn = None
        if self.lost:
            if conn is not None:
                self.service.forget(conn)
            return
        if conn is None:
            transport.close()
            return
        transport.set_protocol(conn)
        conn.connection_made(transport)
        for chunk in self.buffered:
            conn.data_received(chunk)
        if self.eof:
            conn.eof_received()
        transport.resume_reading()


def _import_asyncssh() -> None:
    try:
        import asyncssh  # noqa: F401
    except Exception:  # reported when a connection needs it
        pass


def _raise_fd_limit() -> None:
    """One socket per instance: allow as many descriptors as the system lets us."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = hard if hard != resource.RLIM_INFINITY else 65536
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, 1 << 20), hard))
    except (ValueError, OSError):
        pass
