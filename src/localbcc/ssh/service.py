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
* Descriptors are budgeted (:func:`budget`): every endpoint holds a listening
  socket and every SSH connection one more, and an instance quota alone does
  not stop many accounts from using up the process's open-file limit, after
  which every connection, /healthz included, would be refused. So at most
  half the limit less :data:`FD_RESERVE` endpoints are opened (in creation
  order; the others report ``Unavailable`` with the reason, and get theirs
  when an endpoint closes), at most a quarter of it in SSH connections, and
  the rest is kept for HTTP connections, the database and logs.
* If the service cannot start (its lock files, the database, ...), the API
  keeps serving, the instances report ``Unavailable`` with the reason (in
  this process), and the start is retried with a growing delay; one log line
  per change of state.

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
from typing import TYPE_CHECKING, Any

from ..domain import lifecycle
from ..domain.images import get_image
from ..models import Instance, SshEndpoint
from . import hostkeys
from .lock import ServeLocks
from .view import SshView

if TYPE_CHECKING:  # the API's per-process services; ssh/ is started by the app
    from ..api.context import Context

log = logging.getLogger("localbcc.ssh")

RECONCILE_SECONDS = 0.2
LOCK_RETRY_SECONDS = 1.0
BIND_RETRY_SECONDS = 2.0
BOOT_WAIT_SECONDS = 30.0
ALIVE_CHECK_SECONDS = 2.0
FULL_READ_SECONDS = 5.0
#: A failed start of the service is retried after 1 s, then 2, 4 ... 30 s.
START_RETRY_SECONDS = (1.0, 30.0)
#: Descriptors never given to SSH endpoints, whatever the limit: the database,
#: logs, lock files, the HTTP listener and a first few HTTP connections.
FD_RESERVE = 64
#: Instances a reconcile pass walks between two turns of the event loop: a walk
#: over many thousands in one go would hold up every API request meanwhile.
WALK_CHUNK = 500
#: Endpoint errors (sshStatusReason) written in one go, one transaction each,
#: then a turn of the loop for the API's requests.
ERRORS_CHUNK = 100


@dataclass
class Session:
    """One admitted connection: its instance, and the restart it belongs to."""
    instance_id: str
    marker: float  # the instance's transition_until when it was let in
    hostname: str
    image_id: str


def budget(limit: int) -> tuple[int, int]:
    """(endpoints, SSH connections) a process with this open-file limit may
    hold: half the limit less FD_RESERVE listening endpoints, a quarter of it
    in SSH connections; at least a quarter plus FD_RESERVE stays for the rest
    (HTTP connections, the database, logs). 256 -> (64, 64); 1024 -> (448, 256)."""
    return max(0, limit // 2 - FD_RESERVE), max(1, limit // 4)


def fd_limit() -> int:
    """The process's open-file limit (soft RLIMIT_NOFILE)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else int(soft)


class SshService:
    def __init__(self, ctx: Context, view: SshView | None = None):
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
        self._rows: list[SshEndpoint] = []
        self._rows_read_at = 0.0  # when the snapshot in _rows was taken (monotonic)
        # instance id -> when its listener opened: one opened by open_now after a
        # snapshot was taken is newer than that snapshot, not a released instance
        self._opened_at: dict[str, float] = {}
        self._next_full_read = 0.0
        self.fd_limit = fd_limit()
        self.max_endpoints, self.max_connections = budget(self.fd_limit)
        self._capped = 0  # instances left without an endpoint by max_endpoints, last pass
        self._gating = 0  # connections accepted, not yet admitted nor refused
        self.down: str | None = None  # why the service could not start (retried meanwhile)
        self._retry_at = 0.0
        self._retry_delay = START_RETRY_SECONDS[0]

    # -- start / stop -------------------------------------------------------------

    async def start(self) -> None:
        """Decide whether this process serves, and if so open the endpoints of
        every instance before returning (the caller then answers /healthz)."""
        if not self.settings.ssh:
            return
        if not log.isEnabledFor(logging.DEBUG):  # asyncssh logs every connection at INFO
            logging.getLogger("asyncssh").setLevel(logging.WARNING)
        _raise_fd_limit()
        self.fd_limit = fd_limit()
        self.max_endpoints, self.max_connections = budget(self.fd_limit)
        await self._start_once()
        self._task = asyncio.get_running_loop().create_task(self._run())
        asyncio.get_running_loop().run_in_executor(None, _import_asyncssh)

    async def _start_once(self) -> None:
        """Start serving (or standing by); on failure, report it and retry
        later rather than leave the instances without SSH for good."""
        failure: Exception | None = None
        try:
            if self.force:
                if not self.serving:
                    log.info("SSH: serving the endpoints of this database (--ssh-serve force%s)",
                             self._budget_words())
                self.serving = True
                await self._reconcile()
                self._report_startup()
            else:
                await self._boot()
        except Exception as exc:  # noqa: BLE001 - told below, and retried
            failure = exc
        if failure is None:
            if self.down is not None:
                log.info("SSH: the SSH service is up again")
            self.down = self.view.service_down = None
            self._retry_delay = START_RETRY_SECONDS[0]
            return
        try:
            await self._stop_serving("the SSH service failed")
        except Exception:  # noqa: BLE001 - the lock may be gone with the database session
            log.debug("SSH: stopping after a failed start failed too", exc_info=True)
        reason = f"the SSH service could not start: {_describe(failure)}"
        if reason != self.down:
            log.warning("SSH: %s; the API keeps serving, and instances report sshStatus "
                        "Unavailable until it starts (retrying, every %.0f s at most)",
                        reason, START_RETRY_SECONDS[1], exc_info=log.isEnabledFor(logging.DEBUG))
        self.down = reason
        self.view.service_down = f"{reason}; retrying"
        self._retry_at = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, START_RETRY_SECONDS[1])

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
        while not await self.ctx.unit.run(self.locks.try_lock, "boot"):
            if time.monotonic() > deadline:
                log.warning("SSH: another localbcc process on this database has been opening "
                            "its SSH endpoints for %.0f s; not waiting for it", BOOT_WAIT_SECONDS)
                return
            await asyncio.sleep(0.02)
        try:
            await self._try_serve(first=True)
        finally:
            await self.ctx.unit.run(self.locks.unlock, "boot")

    async def _try_serve(self, first: bool) -> None:
        if await self.ctx.unit.run(self.locks.try_lock, "serve"):
            self.serving = True
            log.info("SSH: this process serves the SSH endpoints of this database (%s layout, "
                     "port %s%s)", self.view.layout,
                     self.view.port if self.view.layout == "address" else f"{self.view.port}+n",
                     self._budget_words())
            await self._reconcile()
            self._report_startup()
        elif first:
            log.info("SSH: another localbcc process serves the SSH endpoints of this database; "
                     "this one serves none (it takes over if that one stops; "
                     "--ssh-serve force serves anyway)")

    def _budget_words(self) -> str:
        return (f"; at most {self.max_endpoints} endpoints and {self.max_connections} "
                f"connections, from the open-file limit of {self.fd_limit}")

    def _report_startup(self) -> None:
        """Say at start-up, in the log, whether the endpoints are all up, and
        if not why; and whether the next instance's endpoint is already taken
        (another localbcc on this machine with the same --ssh-port)."""
        if self.force:
            return  # the lock holder reports for the database
        linux = [r for r in self._rows if get_image(r.image_id).is_linux]
        down = [(r.id, self.failed[r.id][1] if r.id in self.failed else self._cap_reason())
                for r in linux if r.id not in self.listeners]
        if down:
            log.warning("SSH: %d of %d instances have no SSH endpoint (sshStatus Unavailable); "
                        "%s: %s", len(down), len(linux), down[0][0], down[0][1])
        elif linux:
            log.info("SSH: the endpoints of all %d instances are open", len(linux))
        next_seq = max((r.seq for r in self._rows), default=0) + 1
        where = self.view.endpoint(next_seq)
        taken = _taken(where) if where is not None else None
        if where is not None and taken:
            log.warning("SSH: %s:%d, the endpoint of the next instance, is taken: %s. Another "
                        "localbcc on this machine with the same --ssh-port (or an sshd on all "
                        "addresses)? New instances will report sshStatus Unavailable and ssh "
                        "would reach the other server; give each localbcc its own --ssh-port",
                        where[0], where[1], taken)

    def _cap_reason(self) -> str:
        return (f"this server opens at most {self.max_endpoints} SSH endpoints (half its "
                f"open-file limit of {self.fd_limit}, less {FD_RESERVE}) and all are in use; "
                f"release instances, or raise the limit (ulimit -n) and restart the server")

    async def _stop_serving(self, reason: str) -> None:
        for conn in list(self.sessions):
            self.drop(conn, reason)
        for iid in list(self.listeners):
            self._close_listener(iid)
        self.failed.clear()
        self._capped = 0
        if self.serving and not self.force:
            await self.ctx.unit.run(self.locks.unlock, "serve")
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
        if self.down is not None:
            if now >= self._retry_at:
                await self._start_once()
            return
        if not self.serving:
            if not self.force and now >= self._next_lock_try:
                self._next_lock_try = now + LOCK_RETRY_SECONDS
                if await self.ctx.unit.run(self.locks.try_lock, "boot"):
                    try:
                        await self._try_serve(first=False)
                    finally:
                        await self.ctx.unit.run(self.locks.unlock, "boot")
            return
        if not self.force and now >= self._next_alive_check:
            self._next_alive_check = now + ALIVE_CHECK_SECONDS
            if not await self.ctx.unit.run(self.locks.alive):
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

    async def _reconcile(self, rows: list[SshEndpoint] | None = None) -> None:
        if rows is None:
            read_at = time.monotonic()
            self._signature, rows = await self.ctx.read_in_background(self._read_rows)
            self._rows, self._rows_read_at = rows, read_at
            self._next_full_read = time.monotonic() + FULL_READ_SECONDS
        clock_now = self.ctx.clock.now()
        linux = {image: get_image(image).is_linux for image in {r.image_id for r in rows}}
        live = {r.id: r for r in rows if linux[r.image_id]}
        # What the snapshot cannot know of: an instance created (and its endpoint
        # opened by open_now) while the snapshot was being read.
        newer = {i for i, at in self._opened_at.items() if at >= self._rows_read_at}
        for iid in [i for i in self.listeners if i not in live and i not in newer]:
            self._close_listener(iid)
            self._options.pop(iid, None)
        for iid in [i for i in self.failed if i not in live]:
            del self.failed[iid]
        errors: dict[str, str | None] = {}
        mono = time.monotonic()
        capped = 0
        for n, (iid, row) in enumerate(live.items(), 1):
            if n % WALK_CHUNK == 0:
                await asyncio.sleep(0)  # let the API's requests in
            if iid in self.listeners:
                error = None
            elif iid in self.failed and self.failed[iid][0] > mono:
                error = self.failed[iid][1]
            elif len(self.listeners) >= self.max_endpoints:
                error = self._cap_reason()  # in creation order: the oldest get endpoints
                capped += 1
            else:
                error = await self._open(row)
            if not self.force and (row.ssh_error or None) != error:
                errors[iid] = error
        if capped and not self._capped:
            log.warning("SSH: %s (%d instances wait for an endpoint, sshStatus Unavailable)",
                        self._cap_reason(), capped)
        elif self._capped and not capped:
            log.info("SSH: every instance has its endpoint again")
        self._capped = capped
        if errors:
            items = list(errors.items())
            for start in range(0, len(items), ERRORS_CHUNK):
                await self.ctx.unit.run(self._write_errors, dict(items[start:start + ERRORS_CHUNK]))
            self._rows = [r._replace(ssh_error=errors[r.id]) if r.id in errors else r
                          for r in self._rows]
        for conn, session in list(self.sessions.items()):
            row = live.get(session.instance_id)
            if row is None:
                if session.instance_id not in newer:
                    self.drop(conn, f"instance {session.instance_id} was released")
            elif (lifecycle.status(row, clock_now) != lifecycle.RUNNING
                  or row.transition_until != session.marker):
                self.drop(conn, f"instance {session.instance_id} is "
                                 f"{lifecycle.status(row, clock_now).lower()}")

    def _read_signature(self) -> tuple:
        with self.ctx.store.read() as tx:
            return tx.ssh_signature()

    def _read_rows(self) -> tuple[tuple, list[SshEndpoint]]:
        with self.ctx.store.read() as tx:  # one snapshot for both
            return tx.ssh_signature(), tx.ssh_endpoints()

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
        others leave it to that process's next pass. An endpoint that cannot
        be opened (taken, or over the budget) is recorded before the answer
        too, so the instance never reads Available meanwhile."""
        if not self.serving:
            return
        errors: dict[str, str | None] = {}
        for iid in instance_ids:
            found = None if iid in self.listeners else await self.load(iid)
            if found is not None and get_image(found[0].image_id).is_linux:
                row = SshEndpoint._make(getattr(found[0], f) for f in SshEndpoint._fields)
                error = await self._open(row)
                if error is None and iid not in self.listeners:
                    continue  # a pass is opening it (and records how that went)
                if not self.force and (row.ssh_error or None) != error:
                    errors[iid] = error
        if errors:
            await self.ctx.unit.run(self._write_errors, errors)

    async def _open(self, row: SshEndpoint) -> str | None:
        """Open the endpoint of one instance; returns why it failed, or None."""
        if row.id in self.listeners or row.id in self._opening:  # open_now and a pass at once
            return None
        self._opening.add(row.id)
        try:
            return await self._bind(row)
        finally:
            self._opening.discard(row.id)

    async def _bind(self, row: SshEndpoint) -> str | None:
        endpoint = self.view.endpoint(row.seq)
        if endpoint is None:
            return self._failed(row.id, None, "no loopback address or port is left for it")
        if len(self.listeners) >= self.max_endpoints:
            return self._cap_reason()  # the next pass tells it, and opens it once one closes
        host, port = endpoint
        sock: socket.socket | None = None
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # EMFILE, at worst
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
            server = await asyncio.get_running_loop().create_server(
                lambda: _Gate(self, row.id), sock=sock)
        except OSError as exc:
            if sock is not None:
                sock.close()
            hint = (" (another localbcc or an sshd on this machine? give one of them another "
                    "--ssh-port)") if exc.errno == errno.EADDRINUSE else ""
            return self._failed(row.id, f"{host}:{port}",
                                f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}")
        if row.id in self.failed:
            log.info("SSH: endpoint %s:%d of instance %s is now available", host, port, row.id)
            del self.failed[row.id]
        self.listeners[row.id] = server
        self._opened_at[row.id] = time.monotonic()
        return None

    def _failed(self, iid: str, where: str | None, error: str) -> str:
        if iid not in self.failed:
            log.warning("SSH: the endpoint of instance %s is unavailable: %s; the API keeps "
                        "serving, retrying every %.0f s", iid, error, BIND_RETRY_SECONDS)
        self.failed[iid] = (time.monotonic() + BIND_RETRY_SECONDS, error)
        return error

    def _close_listener(self, iid: str) -> None:
        server = self.listeners.pop(iid, None)
        self._opened_at.pop(iid, None)
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
            return await self.ctx.unit.run(self._load, instance_id)
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
        service = self.service
        if service._gating + len(service.sessions) >= service.max_connections:
            # Every connection holds a descriptor: past the budget, refuse at
            # once, so that HTTP keeps the descriptors it needs.
            self.lost = True
            transport.abort()
            return
        service._gating += 1
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
        self.service._gating -= 1
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


def _describe(exc: BaseException) -> str:
    """An exception in one line, for the log and sshStatusReason."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    from ..store.failures import describe_error  # the cause's first line, never SQL parameters

    return describe_error(exc)


def _taken(where: tuple[str, int]) -> str | None:
    """Why (host, port) cannot be listened on now, or None if it can."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(where)
            probe.listen(1)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


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
