"""The queries: one ``Tx`` method each, used inside a transaction.

No rules live here: the domain decides (it sees ``Tx`` through the protocol
it declares, domain/ports.py); this module reads and writes rows and takes the
locks each method's purpose needs, in one order (below).

**Prepared SQL text or SQLAlchemy Core.** One rule: a statement on the
benchmarked request paths (docs/performance.md: get a key pair; attach to
stopped instances, which reads and writes the bindings), the reads the API
answers most (list key pairs, get an instance), and the SSH service's scans
of every instance, is a module-level :class:`Prepared` (store/prepared.py):
written once with SQLAlchemy and named ``bindparam``\\ s, compiled once per
dialect, run on the driver's cursor. Every other statement is plain
SQLAlchemy Core, built and run per call: simpler to read, and off the hot path.

**Rows are mapped by name.** Every SELECT list that becomes a record
(models.py) is built at import from the record's field names (:func:`columns`),
so a row maps onto the record by position with no per-row lookup, and a field
and its column cannot drift apart: a field with no column of that name fails
at import (tests/store/test_rows.py checks the other direction).

**Locks, and the two backends.** A transaction takes its locks in one order,
so no two transactions can wait on each other in a cycle (docs/storage.md):

1. advisory locks, for rows that may not exist yet (:meth:`Tx.serialize`:
   a clientToken, adding accounts);
2. the account (:meth:`Tx.lock_account_for_create`);
3. the key pair (:meth:`Tx.lock_keypair_to_bind`, :meth:`Tx.keypair_for_change`,
   :meth:`Tx.bindings_for_change`);
4. instances, in ``seq`` order (:meth:`Tx.bindings_for_change`,
   :meth:`Tx.instance_for_change`).

Nothing that holds an instance lock ever locks a key pair, not even
implicitly (:meth:`Tx.start_transition`). Each ``Tx`` checks the order as it
goes (an ``AssertionError`` for a lock taken after a later one), on either
backend, so the SQLite tests catch a PostgreSQL deadlock in the making.

What differs between the backends is one small strategy each, chosen once
per transaction (:class:`SqliteLocking`, :class:`PostgresLocking`); a
``FOR UPDATE`` clause compiles to nothing on SQLite.
"""
from __future__ import annotations

import dataclasses
import hashlib
from functools import lru_cache
from typing import Any, Iterable

from sqlalchemy import Column, Table, bindparam, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection

from ..models import Binding, Instance, Keypair, SshEndpoint
from .prepared import Prepared, driver_of
from .schema import accounts, idempotency, instances, keypairs, tombstones


def fields(record: Any, *, computed: tuple[str, ...] = ()) -> list[str]:
    """The field names of a record class (a dataclass or a NamedTuple), but
    ``computed``: values a query computes after the stored columns, which must
    be the record's last fields, in that order."""
    names = ([f.name for f in dataclasses.fields(record)] if dataclasses.is_dataclass(record)
             else list(record._fields))
    stored = names[:len(names) - len(computed)]
    if tuple(names[len(stored):]) != computed:
        raise AssertionError(f"{record.__name__}: {computed} must be its last fields")
    return stored


def columns(table: Table, names: Iterable[str]) -> tuple[Column, ...]:
    """The columns of ``table`` named ``names``, in that order (a KeyError, at
    import, for a name that is no column)."""
    return tuple(table.c[name] for name in names)


_KP_COLS = columns(keypairs, fields(Keypair, computed=("instance_count",)))
_INST_COLS = columns(instances, fields(Instance, computed=("keypair_name",)))
#: What attach and detach check of each instance.
_BINDING_COLS = columns(instances, fields(Binding))


def advisory_key(name: str) -> int:
    """A signed 64-bit key for pg_advisory_*lock, derived from a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _count_subquery():
    return (select(func.count()).where(instances.c.keypair_id == keypairs.c.id)
            .correlate(keypairs).scalar_subquery())


# -- prepared statements (the rule above) ------------------------------------------------

_KEYPAIR = Prepared(select(*_KP_COLS, _count_subquery())  # instance_count last
                    .where(keypairs.c.id == bindparam("id"),
                           keypairs.c.account == bindparam("account")))
_LOCK_KEYPAIR = Prepared(select(keypairs.c.seq)
                         .where(keypairs.c.id == bindparam("id"),
                                keypairs.c.account == bindparam("account"))
                         .with_for_update())
_LIST_KEYPAIRS = (select(*_KP_COLS, _count_subquery())
                  .where(keypairs.c.account == bindparam("account"),
                         keypairs.c.seq >= bindparam("start"))
                  .order_by(keypairs.c.seq).limit(bindparam("limit")))
_LIST_KEYPAIRS_ALL = Prepared(_LIST_KEYPAIRS)
_LIST_KEYPAIRS_NAMED = Prepared(_LIST_KEYPAIRS.where(keypairs.c.name == bindparam("name")))


# The SSH service's scans of every instance (every 0.2 s and 5 s, on a worker
# thread): SQLAlchemy's per-row work would hold the GIL, which the event loop
# feels (docs/performance.md).
_SSH_ENDPOINTS = Prepared(select(*columns(instances, fields(SshEndpoint)))
                          .order_by(instances.c.seq))
_SSH_SIGNATURE = Prepared(select(func.count(), func.max(instances.c.seq),
                                 func.max(instances.c.transition_until),
                                 func.sum(instances.c.transition_until)))


@lru_cache(maxsize=256)
def _list_names(n: int) -> tuple[str, ...]:
    """Bind parameter names for an IN list of ``n`` values (built once per ``n``:
    one attach may name 100 instances)."""
    return tuple(f"v{i}" for i in range(n))


def _list_params(n: int) -> list:
    return [bindparam(name) for name in _list_names(n)]


def _list_values(values: list) -> dict[str, Any]:
    return dict(zip(_list_names(len(values)), values))


# Instances are looked up by id alone and their account checked on the rows:
# with "account = ?" in the WHERE clause SQLite walks the account's whole index
# instead of the unique id index.

_INSTANCE = (select(*_INST_COLS, keypairs.c.name)  # keypair_name last
             .select_from(instances.outerjoin(keypairs, instances.c.keypair_id == keypairs.c.id))
             .where(instances.c.id == bindparam("id")))
_GET_INSTANCE = Prepared(_INSTANCE)
_LOCK_INSTANCE = Prepared(_INSTANCE.with_for_update(of=instances))


@lru_cache(maxsize=256)
def _bindings_query(n: int) -> Prepared:
    """PostgreSQL's bindings read: the rows locked in seq order, the lock order.
    (SQLite reads them together with the key pair: _keypair_bindings_query.)"""
    c = instances.c
    return Prepared(select(*_BINDING_COLS).where(c.id.in_(_list_params(n)))
                    .order_by(c.seq).with_for_update())


@lru_cache(maxsize=256)
def _keypair_bindings_query(n: int) -> Prepared:
    """SQLite: the key pair check and the bindings read in one statement. No
    row: the account has no such key pair; else a row per instance found, or
    one row of NULLs if none is."""
    join = keypairs.outerjoin(instances, instances.c.id.in_(_list_params(n)))
    return Prepared(select(*_BINDING_COLS).select_from(join)
                    .where(keypairs.c.id == bindparam("kp"),
                           keypairs.c.account == bindparam("account")))


@lru_cache(maxsize=256)
def _bind_query(n: int, in_force: bool) -> Prepared:
    values: dict[str, Any] = {"keypair_id": bindparam("kp"), "key_in_force_at": bindparam("at")}
    if in_force:  # the first key in force ends password logins
        values["first_key_at"] = func.coalesce(instances.c.first_key_at, bindparam("at"))
    # By seq, the primary key: the rows were just read (Tx.bindings_for_change),
    # and a rowid lookup skips the probe of the id index for every instance.
    return Prepared(update(instances).where(instances.c.seq.in_(_list_params(n))).values(**values))


#: Where the account is in a binding row (by name, once).
_BINDING_ACCOUNT = fields(Binding).index("account")


def _account_bindings(rows: list, account: str) -> dict[str, Binding]:
    """Binding rows by instance id, the account's only (checked on the rows:
    the queries look instances up by id alone). Checked on the raw row: the
    one row of NULLs SQLite's query gives when no instance is found is no
    Binding (compiled code checks a Binding's field types when it reads one)."""
    found: dict[str, Binding] = {}
    for row in rows:
        if row[_BINDING_ACCOUNT] == account:
            binding = Binding._make(row)
            found[binding.id] = binding
    return found


def _lookup_ids(ids: list[str]) -> list[str]:
    """Distinct ids worth looking up. A string with a NUL names no row, and
    PostgreSQL refuses NUL in text parameters, so it is not sent at all."""
    return [i for i in dict.fromkeys(ids) if "\x00" not in i]


# -- the two backends' locking -------------------------------------------------------------

class Locking:
    """How a transaction locks what it is about to change: what differs
    between the backends."""

    def serialize(self, tx: Tx, name: tuple[str, ...]) -> None:
        raise NotImplementedError

    def keypair_for_change(self, tx: Tx, account: str, keypair_id: str) -> Keypair | None:
        raise NotImplementedError

    def bindings_for_change(self, tx: Tx, account: str, keypair_id: str,
                            ids: list[str]) -> dict[str, Binding] | None:
        raise NotImplementedError


class SqliteLocking(Locking):
    """SQLite: a writer holds the database-wide write lock from its ``BEGIN
    IMMEDIATE`` on (store/sqlite.py), so every write transaction already runs
    alone: nothing more to lock, and a check and what it checks may share a
    statement."""

    def serialize(self, tx: Tx, name: tuple[str, ...]) -> None:
        pass

    def keypair_for_change(self, tx: Tx, account: str, keypair_id: str) -> Keypair | None:
        return tx.get_keypair(account, keypair_id)

    def bindings_for_change(self, tx: Tx, account: str, keypair_id: str,
                            ids: list[str]) -> dict[str, Binding] | None:
        if not ids:
            return {} if tx.lock_keypair_to_bind(account, keypair_id) else None
        values = _list_values(ids) | {"kp": keypair_id, "account": account}
        rows = _keypair_bindings_query(len(ids)).execute(tx.conn, values, tx.driver).fetchall()
        return _account_bindings(rows, account) if rows else None


class PostgresLocking(Locking):
    """PostgreSQL at READ COMMITTED: row locks (``SELECT … FOR UPDATE``) and
    transaction-scoped advisory locks. A statement reads a snapshot taken when
    it *started*, before it waited for a lock, so whatever must be read after
    a lock is held is read by a later statement."""

    def serialize(self, tx: Tx, name: tuple[str, ...]) -> None:
        tx.conn.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                        {"k": advisory_key("\x00".join(name))})

    def keypair_for_change(self, tx: Tx, account: str, keypair_id: str) -> Keypair | None:
        # Lock first, count in a later statement: a count in the locking
        # statement could miss a binding committed while it waited (and a
        # delete would then hit the foreign key).
        if not tx.lock_keypair_to_bind(account, keypair_id):
            return None
        return tx.get_keypair(account, keypair_id)

    def bindings_for_change(self, tx: Tx, account: str, keypair_id: str,
                            ids: list[str]) -> dict[str, Binding] | None:
        if not tx.lock_keypair_to_bind(account, keypair_id):
            return None
        if not ids:
            return {}
        rows = _bindings_query(len(ids)).execute(tx.conn, _list_values(ids), tx.driver).fetchall()
        return _account_bindings(rows, account)


_SQLITE: Locking = SqliteLocking()
_POSTGRES: Locking = PostgresLocking()

#: The lock order's steps (the module docstring), as Tx._take checks them.
_ADVISORY, _ACCOUNT, _KEYPAIR_LOCK, _INSTANCES = 1, 2, 3, 4


class Tx:
    """One open transaction (satisfies domain/ports.py's ``Tx``). Methods that
    lock say so in their names and take their locks in the module's lock order."""

    def __init__(self, conn: Connection, is_sqlite: bool, driver: Any = None):
        self.conn = conn
        #: How this transaction locks (chosen once: the backend's strategy).
        self.locking = _SQLITE if is_sqlite else _POSTGRES
        #: The driver's connection under ``conn``, for Prepared statements.
        self.driver = driver if driver is not None else driver_of(conn)
        #: The last step of the lock order this transaction reached.
        self._locked = 0

    def _take(self, step: int) -> None:
        """About to lock at ``step`` of the lock order: never after a later one."""
        if step < self._locked:
            raise AssertionError(f"lock order: step {step} after step {self._locked} "
                                 "(store/repo.py)")
        self._locked = step

    def serialize(self, *name: str) -> None:
        """Make transactions that pass the same name run one after the other,
        until they end: for rows that may not exist yet."""
        self._take(_ADVISORY)
        self.locking.serialize(self, name)

    # -- accounts -----------------------------------------------------------------

    def secret_of(self, access_key: str) -> str | None:
        return self.conn.execute(
            select(accounts.c.secret_key).where(accounts.c.access_key == access_key)
        ).scalar()

    def list_accounts(self) -> list[tuple[str, str, float]]:
        rows = self.conn.execute(
            select(accounts.c.access_key, accounts.c.secret_key, accounts.c.created_at)
            .order_by(accounts.c.created_at, accounts.c.access_key))
        return [tuple(r) for r in rows]

    def put_account(self, access_key: str, secret_key: str, now: float) -> None:
        current = self.secret_of(access_key)
        if current is None:
            self.conn.execute(insert(accounts).values(
                access_key=access_key, secret_key=secret_key, created_at=now))
        elif current != secret_key:
            self.conn.execute(update(accounts).where(accounts.c.access_key == access_key)
                              .values(secret_key=secret_key))

    def lock_account_for_create(self, access_key: str) -> None:
        """Creates of this account run one at a time from here until the
        transaction ends, so the quota and duplicate checks that follow see
        every create committed before (PostgreSQL: the account row's lock)."""
        self._take(_ACCOUNT)
        self.conn.execute(select(accounts.c.access_key)
                          .where(accounts.c.access_key == access_key).with_for_update())

    def count_instances(self, account: str) -> int:
        return self.conn.execute(
            select(func.count()).select_from(instances).where(instances.c.account == account)
        ).scalar_one()

    # -- key pairs -------------------------------------------------------------

    def count_keypairs(self, account: str) -> int:
        return self.conn.execute(
            select(func.count()).select_from(keypairs).where(keypairs.c.account == account)
        ).scalar_one()

    def blob_exists(self, account: str, blob_sha256: str) -> bool:
        return self.conn.execute(
            select(keypairs.c.seq).where(keypairs.c.account == account,
                                         keypairs.c.blob_sha256 == blob_sha256)
        ).first() is not None

    def insert_keypair(self, values: dict[str, Any]) -> None:
        self.conn.execute(insert(keypairs).values(**values))

    def get_keypair(self, account: str, keypair_id: str) -> Keypair | None:
        row = _KEYPAIR.execute(self.conn, {"id": keypair_id, "account": account},
                               self.driver).fetchone()
        return Keypair(*row) if row else None

    def keypair_for_change(self, account: str, keypair_id: str) -> Keypair | None:
        """The key pair, locked until the transaction ends (rename, describe,
        delete), read after the lock is held: its instance_count counts every
        binding committed before."""
        self._take(_KEYPAIR_LOCK)
        return self.locking.keypair_for_change(self, account, keypair_id)

    def lock_keypair_to_bind(self, account: str, keypair_id: str) -> bool:
        """Whether the account has this key pair; it stays locked until the
        transaction ends, so it cannot be deleted meanwhile."""
        self._take(_KEYPAIR_LOCK)
        return _LOCK_KEYPAIR.execute(
            self.conn, {"id": keypair_id, "account": account}, self.driver).fetchone() is not None

    def keypair_names(self, ids: Iterable[str]) -> dict[str, str]:
        ids = list(ids)
        if not ids:
            return {}
        rows = self.conn.execute(select(keypairs.c.id, keypairs.c.name)
                                 .where(keypairs.c.id.in_(ids)))
        return dict(rows.all())

    def update_keypair(self, keypair_id: str, **values: Any) -> None:
        self.conn.execute(update(keypairs).where(keypairs.c.id == keypair_id).values(**values))

    def delete_keypair(self, keypair: Keypair) -> None:
        self.conn.execute(delete(keypairs).where(keypairs.c.id == keypair.id))
        self._tombstone("keypair", keypair.id, keypair.account, keypair.seq)

    def list_keypairs(self, account: str, start_seq: int, limit: int,
                      name: str | None) -> list[Keypair]:
        params = {"account": account, "start": start_seq, "limit": limit}
        if name is None:
            rows = _LIST_KEYPAIRS_ALL.execute(self.conn, params, self.driver)
        else:
            rows = _LIST_KEYPAIRS_NAMED.execute(self.conn, params | {"name": name}, self.driver)
        return [Keypair(*r) for r in rows.fetchall()]

    # -- paging ------------------------------------------------------------------

    def seq_of(self, kind: str, account: str, item_id: str) -> int | None:
        """The creation position of a live or deleted item of this account."""
        table = keypairs if kind == "keypair" else instances
        seq = self.conn.execute(select(table.c.seq).where(
            table.c.id == item_id, table.c.account == account)).scalar()
        if seq is None:
            seq = self.conn.execute(select(tombstones.c.seq).where(
                tombstones.c.kind == kind, tombstones.c.id == item_id,
                tombstones.c.account == account)).scalar()
        return seq

    def _tombstone(self, kind: str, item_id: str, account: str, seq: int) -> None:
        self.conn.execute(insert(tombstones).values(kind=kind, id=item_id, account=account, seq=seq))

    # -- instances ----------------------------------------------------------------

    def insert_instance(self, values: dict[str, Any]) -> None:
        self.conn.execute(insert(instances).values(**values))

    def get_instance(self, account: str, instance_id: str) -> Instance | None:
        return self._instance(_GET_INSTANCE, account, instance_id)

    def instance_for_change(self, account: str, instance_id: str) -> Instance | None:
        """The instance, locked until the transaction ends."""
        self._take(_INSTANCES)
        return self._instance(_LOCK_INSTANCE, account, instance_id)

    def _instance(self, query: Prepared, account: str, instance_id: str) -> Instance | None:
        if not _lookup_ids([instance_id]):
            return None
        row = query.execute(self.conn, {"id": instance_id}, self.driver).fetchone()
        if row is None:
            return None
        *stored, keypair_name = row
        inst = Instance(*stored)
        inst.keypair_name = keypair_name or ""
        return inst if inst.account == account else None

    def bindings_for_change(self, account: str, keypair_id: str,
                            ids: list[str]) -> dict[str, Binding] | None:
        """Lock the account's key pair, then read the binding state of its
        instances among ``ids``, locked too (attach, detach); None if the
        account has no such key pair."""
        self._take(_KEYPAIR_LOCK)
        found = self.locking.bindings_for_change(self, account, keypair_id, _lookup_ids(ids))
        self._locked = _INSTANCES
        return found

    def _instances(self, stmt) -> list[Instance]:
        rows = self.conn.execute(stmt).all()
        found = [Instance(*r) for r in rows]
        names = self.keypair_names({i.keypair_id for i in found if i.keypair_id})
        for inst in found:
            inst.keypair_name = names.get(inst.keypair_id, "") if inst.keypair_id else ""
        return found

    def list_instances(self, account: str, start_seq: int, limit: int | None, *,
                       keypair_id: str | None = None, ids: list[str] | None = None) -> list[Instance]:
        stmt = (select(*_INST_COLS)
                .where(instances.c.account == account, instances.c.seq >= start_seq)
                .order_by(instances.c.seq))
        if keypair_id is not None:
            stmt = stmt.where(instances.c.keypair_id == keypair_id)
        if ids is not None:
            stmt = stmt.where(instances.c.id.in_(ids))
        if limit is not None:
            stmt = stmt.limit(limit)
        return self._instances(stmt)

    def start_transition(self, ids: list[str], **values: Any) -> None:
        """Set ``values`` on these instances, in one UPDATE: everything a
        lifecycle operation changes must come in this one call, unless the
        transaction locked the instances' key pair first
        (:meth:`bindings_for_change`, after which :meth:`bind` may change them
        again). On PostgreSQL a second UPDATE of a row with a key pair checks
        the foreign key again, which locks the key pair *after* the instance,
        against the lock order: a deadlock with an attach that holds the pair
        and waits for the instance (tests/postgres/test_lock_order.py)."""
        if ids:
            self.conn.execute(update(instances).where(instances.c.id.in_(ids)).values(**values))

    def bind(self, found: list[Binding], keypair_id: str | None,
             in_force_at: float | None) -> None:
        """Bind (or with None, unbind) instances read by
        :meth:`bindings_for_change` in this transaction; the first key in
        force ends password logins."""
        if found:
            values = _list_values([b.seq for b in found]) | {"kp": keypair_id, "at": in_force_at}
            _bind_query(len(found), in_force_at is not None).execute(self.conn, values, self.driver)

    def delete_instance(self, inst: Instance) -> None:
        self.conn.execute(delete(instances).where(instances.c.id == inst.id))
        self._tombstone("instance", inst.id, inst.account, inst.seq)

    def id_taken(self, kind: str, item_id: str) -> bool:
        table = keypairs if kind == "keypair" else instances
        if self.conn.execute(select(table.c.seq).where(table.c.id == item_id)).first():
            return True
        return self.conn.execute(select(tombstones.c.seq).where(
            tombstones.c.kind == kind, tombstones.c.id == item_id)).first() is not None

    # -- idempotency ------------------------------------------------------------

    def get_token(self, account: str, operation: str, token: str) -> tuple[str, str] | None:
        """The (request hash, answer) stored for this token. Requests with one
        token take turns from here until the transaction ends, so the second
        replays the first's answer instead of repeating its work (and then
        colliding)."""
        self.serialize("idempotency", account, operation, token)
        row = self.conn.execute(
            select(idempotency.c.request_hash, idempotency.c.response).where(
                idempotency.c.account == account, idempotency.c.operation == operation,
                idempotency.c.token == token)).first()
        return (row[0], row[1]) if row else None

    def put_token(self, account: str, operation: str, token: str, request_hash: str,
                  response: str, now: float) -> None:
        self.conn.execute(insert(idempotency).values(
            account=account, operation=operation, token=token, request_hash=request_hash,
            response=response, created_at=now))

    # -- SSH endpoints (localbcc.ssh) ------------------------------------------------

    def ssh_instance(self, instance_id: str) -> tuple[Instance, str | None] | None:
        """An instance of any account by id, with the public key of its bound pair."""
        row = self.conn.execute(
            select(*_INST_COLS, keypairs.c.public_key)
            .select_from(instances.outerjoin(keypairs, instances.c.keypair_id == keypairs.c.id))
            .where(instances.c.id == instance_id)).first()
        if row is None:
            return None
        return Instance(*row[:-1]), row[-1]  # the pair's public key last

    def ssh_endpoints(self) -> list[SshEndpoint]:
        """What the SSH service needs of every instance, in creation order."""
        return list(map(SshEndpoint._make,
                        _SSH_ENDPOINTS.execute(self.conn, {}, self.driver).fetchall()))

    def set_ssh_error(self, instance_id: str, error: str | None) -> None:
        self.conn.execute(update(instances).where(instances.c.id == instance_id)
                          .values(ssh_error=error))

    def set_ssh_host_key(self, instance_id: str, values: dict[str, str]) -> None:
        """Give an instance that has none a host key (rows written by hand)."""
        self.conn.execute(update(instances).where(instances.c.id == instance_id,
                                                  instances.c.ssh_host_key.is_(None))
                          .values(**values))

    def ssh_signature(self) -> tuple:
        """Changes whenever an instance is created, released or starts a
        transition (each sets a new transition_until): the SSH service's cue
        to read ssh_endpoints() again."""
        return tuple(_SSH_SIGNATURE.execute(self.conn, {}, self.driver).fetchone())
