"""Queries, one method each, used inside a transaction. No rules live here:
the domain decides, this module only reads and writes rows."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any, Iterable

from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection

from ..domain.models import Binding, Instance, Keypair
from .prepared import Prepared, driver_of
from .schema import accounts, idempotency, instances, keypairs, tombstones

_KP_COLS = (keypairs.c.seq, keypairs.c.id, keypairs.c.account, keypairs.c.name,
            keypairs.c.description, keypairs.c.public_key, keypairs.c.fingerprint,
            keypairs.c.created_at)
_INST_COLS = tuple(c for c in instances.c)


def advisory_key(name: str) -> int:
    """A signed 64-bit key for pg_advisory_*lock, derived from a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _count_subquery():
    return (select(func.count()).where(instances.c.keypair_id == keypairs.c.id)
            .correlate(keypairs).scalar_subquery())


# -- hot-path statements, built once (store/prepared.py, docs/performance.md) ------------
# SQLite compiles a FOR UPDATE variant without the clause: BEGIN IMMEDIATE
# already holds the database-wide write lock there.

_KEYPAIR = Prepared(select(*_KP_COLS, _count_subquery())
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
# thread): with 10,000 instances SQLAlchemy's per-row work held the GIL for
# milliseconds at a time, which the event loop felt.
_SSH_ENDPOINTS = Prepared(select(instances.c.id, instances.c.seq, instances.c.image_id,
                                 instances.c.state, instances.c.transition,
                                 instances.c.transition_until, instances.c.ssh_error)
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

_INSTANCE = (select(*_INST_COLS, keypairs.c.name)  # the bound pair's name last
             .select_from(instances.outerjoin(keypairs, instances.c.keypair_id == keypairs.c.id))
             .where(instances.c.id == bindparam("id")))
_GET_INSTANCE = {False: Prepared(_INSTANCE), True: Prepared(_INSTANCE.with_for_update(of=instances))}


#: What attach and detach check, in models.Binding's order.
_BINDING_COLS = (instances.c.id, instances.c.seq, instances.c.account, instances.c.image_id,
                 instances.c.state, instances.c.transition, instances.c.transition_until,
                 instances.c.keypair_id)


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
    # By seq, the primary key: the rows were just read
    # (Tx.lock_keypair_and_bindings), and a rowid lookup skips the probe of the
    # id index for every instance.
    return Prepared(update(instances).where(instances.c.seq.in_(_list_params(n))).values(**values))


def _account_bindings(rows: list, account: str) -> dict[str, Binding]:
    """Binding rows by instance id, the account's only (checked on the rows:
    the queries look instances up by id alone)."""
    return {row[0]: Binding._make(row) for row in rows if row[2] == account}


def _lookup_ids(ids: list[str]) -> list[str]:
    """Distinct ids worth looking up. A string with a NUL names no row, and
    PostgreSQL refuses NUL in text parameters, so it is not sent at all."""
    return [i for i in dict.fromkeys(ids) if "\x00" not in i]


class Tx:
    """One open transaction.

    SQLite takes a database-wide write lock at BEGIN IMMEDIATE (a FOR UPDATE
    clause compiles to nothing there); PostgreSQL locks the rows. Lock order,
    to rule out deadlocks: advisory locks (:meth:`serialize`), then the
    account, then the key pair, then instances in seq order; nothing holding
    an instance lock ever locks a key pair."""

    def __init__(self, conn: Connection, is_sqlite: bool, driver: Any = None):
        self.conn = conn
        self.is_sqlite = is_sqlite
        #: The driver's connection under ``conn``, for Prepared statements.
        self.driver = driver if driver is not None else driver_of(conn)

    def serialize(self, *name: str) -> None:
        """Make transactions that pass the same name run one after the other
        (PostgreSQL: a transaction-scoped advisory lock; SQLite writers are
        serialised already). For rows that may not exist yet."""
        if not self.is_sqlite:
            self.conn.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                              {"k": advisory_key("\x00".join(name))})

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

    def lock_account(self, access_key: str) -> None:
        """Serialise quota checks of one account (PostgreSQL row lock)."""
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

    def get_keypair(self, account: str, keypair_id: str, *,
                    for_update: bool = False) -> Keypair | None:
        # PostgreSQL, for_update: lock first, count in a later statement. Under
        # READ COMMITTED a statement reads a snapshot taken before it waited for
        # the lock, so a count in the locking statement could miss a binding
        # committed meanwhile (and a delete would then hit the foreign key).
        # (SQLite's writers hold the database-wide lock already.)
        if for_update and not self.is_sqlite and not self.lock_keypair(account, keypair_id):
            return None
        row = _KEYPAIR.execute(self.conn, {"id": keypair_id, "account": account},
                               self.driver).fetchone()
        return Keypair(*row) if row else None

    def lock_keypair(self, account: str, keypair_id: str) -> bool:
        """Whether the account has this key pair; on PostgreSQL its row stays
        locked until the transaction ends (SQLite: the write lock is held)."""
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

    def get_instance(self, account: str, instance_id: str, *,
                     for_update: bool = False) -> Instance | None:
        if not _lookup_ids([instance_id]):
            return None
        row = _GET_INSTANCE[for_update].execute(self.conn, {"id": instance_id},
                                                self.driver).fetchone()
        if row is None:
            return None
        *columns, keypair_name = row
        inst = Instance(*columns)
        inst.keypair_name = keypair_name or ""
        return inst if inst.account == account else None

    def lock_keypair_and_bindings(self, account: str, keypair_id: str,
                                  ids: list[str]) -> dict[str, Binding] | None:
        """Lock the account's key pair, then read the binding state of its
        instances among ``ids`` (the lock order); None if the account has no
        such key pair. SQLite, which holds the write lock already, answers both
        in one statement; PostgreSQL locks the pair, then the instances."""
        ids = _lookup_ids(ids)
        if self.is_sqlite and ids:
            values = _list_values(ids) | {"kp": keypair_id, "account": account}
            rows = _keypair_bindings_query(len(ids)).execute(self.conn, values,
                                                             self.driver).fetchall()
            return _account_bindings(rows, account) if rows else None
        if not self.lock_keypair(account, keypair_id):
            return None
        if not ids:
            return {}
        rows = _bindings_query(len(ids)).execute(self.conn, _list_values(ids),
                                                 self.driver).fetchall()
        return _account_bindings(rows, account)

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

    def update_instances(self, ids: list[str], **values: Any) -> None:
        if ids:
            self.conn.execute(update(instances).where(instances.c.id.in_(ids)).values(**values))

    def bind(self, found: list[Binding], keypair_id: str | None,
             in_force_at: float | None) -> None:
        """Bind (or with None, unbind) instances read by
        :meth:`lock_keypair_and_bindings` in this transaction; the first key in
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
        # Two requests with one token take turns, so the second replays the
        # first's answer instead of repeating its work (and then colliding).
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
        return Instance(*row[:-1]), row[-1]

    def ssh_endpoints(self) -> list[tuple]:
        """What the SSH service needs of every instance, in creation order:
        (id, seq, image_id, state, transition, transition_until, ssh_error)."""
        return _SSH_ENDPOINTS.execute(self.conn, {}, self.driver).fetchall()

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
