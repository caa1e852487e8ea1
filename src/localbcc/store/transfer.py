"""`localbcc db export` / `db import`: all state, between any two databases.

The file is JSON lines (UTF-8, one JSON object per line), documented in
docs/storage.md:

    {"format": "localbcc-export", "version": 1, "schema_revision": "0001",
     "exported_at": "2024-05-01T12:00:00Z", "source": "sqlite",
     "tables": {"accounts": ["access_key", "secret_key", "created_at"], ...}}
    {"table": "accounts", "row": {"access_key": "...", "secret_key": "...", "created_at": 1714564800.25}}
    ...                                   (every row of every table, tables in foreign-key order)
    {"counter": "keypairs", "column": "seq", "last": 2042}
    {"end": true, "rows": {"accounts": 3, "keypairs": 2000, ...}}

Tables and columns are read from the database itself, not from a list in
this module, so a table or column a later migration adds is carried too.
Values are JSON null, numbers (floats keep every bit: they are written in the
shortest form that reads back as the same double) and strings; bytes, dates and
decimals are tagged objects ``{"$base64": ...}``, ``{"$datetime": ...}``,
``{"$date": ...}``, ``{"$decimal": ...}``. ``counter`` lines carry the last
value handed out by an auto-increment key (deleted rows included), so ids are
never reused after an import; the ``end`` line lets import detect a truncated
file.

Import only writes into an empty database (no tables, or a localbcc schema with
no rows), in one transaction: it either brings everything or nothing. Every row
is checked with the rules the API applies (:class:`_Rules`: names, descriptions,
hostnames, public keys and their fingerprints, id shapes, statuses, references
between rows), so a file no API could have produced is refused, naming the line
and the column, before anything is committed.
"""
from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import math
import time
from typing import IO, Any, Callable, Iterator

import orjson
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import (Float, Integer, MetaData, Numeric, String, Table, func, insert,
                        select, text)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, StatementError

from ..domain import validation
from ..domain.images import get_image
from ..domain.keys import parse_public_key
from ..domain.lifecycle import _IN_BETWEEN as _TRANSITIONS
from ..domain.lifecycle import RUNNING, STOPPED
from ..errors import BceError
from ..ssh.hostkeys import blob_of, fingerprint_sha256, public_line
from .accounts import check_credentials
from .db import Store
from .migrate import SCHEMA_REVISION
from .sqlite import WRITE_FLAG

FORMAT = "localbcc-export"
VERSION = 1
BATCH = 1000
_SKIP = {"alembic_version"}


class TransferError(RuntimeError):
    """The export or import cannot go ahead; the message says why and what to do."""


# -- values --------------------------------------------------------------------------------


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    raise TransferError(f"cannot export {where}: values of type {type(value).__name__} "
                        f"have no representation in format version {VERSION}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        (tag, raw), = value.items()
        if tag == "$base64":
            return base64.b64decode(raw)
        if tag == "$datetime":
            return dt.datetime.fromisoformat(raw)
        if tag == "$date":
            return dt.date.fromisoformat(raw)
        if tag == "$decimal":
            return decimal.Decimal(raw)
    if isinstance(value, (dict, list)):
        raise TransferError("a JSON object or array that is not a tagged value")
    return value


#: The Python types (after _decode) a column of each kind takes; null is left to the
#: database (NOT NULL). Checked before inserting, so that SQLite, which would store a
#: string in an INTEGER column, refuses what PostgreSQL refuses.
_KINDS: tuple[tuple[type, str, frozenset[type]], ...] = (
    (Integer, "an integer", frozenset({int, type(None)})),
    (Float, "a number", frozenset({int, float, type(None)})),
    (Numeric, "a number", frozenset({int, float, decimal.Decimal, type(None)})),
    (String, "a string", frozenset({str, type(None)})),
)
_INT64 = (-(1 << 63), (1 << 63) - 1)
_NAMES = {type(None): "null", bool: "true/false", int: "an integer", float: "a fraction",
          str: "a string", bytes: "$base64 bytes", dt.datetime: "a $datetime",
          dt.date: "a $date", decimal.Decimal: "a $decimal"}


def _kinds(table: Table) -> dict[str, tuple[str, frozenset[type]]]:
    """column -> (what it takes, in words; the Python types it takes), for the
    columns of a type _KINDS knows."""
    out = {}
    for column in table.columns:
        for sa_type, words, types in _KINDS:
            if isinstance(column.type, sa_type):
                out[str(column.name)] = (words, types)
                break
    return out


def _values(number: int, table: str, row: dict,
            kinds: dict[str, tuple[str, frozenset[type]]]) -> dict[str, Any]:
    """A row line's values decoded and checked against the column types. Errors
    name the line and column, never the value (it may be a secret key)."""
    out = {}
    for column, value in row.items():
        if isinstance(value, (dict, list)):
            try:
                value = _decode(value)
            except (TransferError, ValueError, TypeError, ArithmeticError):
                raise TransferError(f"line {number}: {table}.{column} is not a value this "
                                    f"format knows (a malformed tagged value?)") from None
        kind = kinds.get(column)
        if kind is not None and type(value) not in kind[1]:
            raise TransferError(f"line {number}: {table}.{column} must be {kind[0]}, not "
                                f"{_NAMES.get(type(value), type(value).__name__)}")
        if type(value) is int and not _INT64[0] <= value <= _INT64[1]:
            raise TransferError(f"line {number}: {table}.{column} is an integer out of range")
        out[column] = value
    return out


def _reason(exc: StatementError, rows: list[dict]) -> str:
    """The database's reason, first line only (PostgreSQL's DETAIL line quotes the
    values), without the SQL parameters and with any of the rows' strings cut out."""
    cause = exc.orig if exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    reason = lines[0] if lines and exc.orig is not None else type(cause).__name__
    for row in rows:
        for value in row.values():
            if isinstance(value, str) and len(value) >= 4 and value in reason:
                reason = reason.replace(value, "…")
    return reason


# -- the API's rules, row by row ------------------------------------------------------------


class _Bad(Exception):
    """A column breaks a rule: ``column`` and why, in words (never the value)."""

    def __init__(self, column: str, why: str):
        super().__init__(column, why)
        self.column, self.why = column, why


def _need(ok: bool, column: str, why: str) -> None:
    if not ok:
        raise _Bad(column, why)


def _str(row: dict, column: str) -> str:
    value = row.get(column)
    if not isinstance(value, str):
        raise _Bad(column, "must be a string")
    return value


def _time(row: dict, column: str, *, null: bool = False) -> None:
    value = row.get(column)
    if value is None and null:
        return
    _need(isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and value >= 0, column, "must be a time (seconds, >= 0)")


def _seq(row: dict, column: str = "seq") -> None:
    value = row.get(column)
    _need(type(value) is int and value >= 1, column, "must be a positive integer")


_USABLE_SECRET = "0" * 64  # any secret key check_credentials takes
_NAME_WHY = "is not a name the API accepts (1-65 characters: a letter, then letters, digits, "\
            "CJK, '-', '_', '/', '.')"
_TEXT_WHY = "holds a control character (or is too long) and the API refuses those"


class _Rules:
    """The API's rules applied to the rows of an export, line by line, and the
    references between rows (accounts, key pairs of the same account, tombstones
    of rows that are gone), checked once every row is read. Each rule is the
    domain's own (validation.py, keys.py, images.py, lifecycle.py, hostkeys.py,
    accounts.py); this class only says which column follows which."""

    def __init__(self, tables: dict[str, Table]) -> None:
        self.lengths = {name: {str(c.name): getattr(c.type, "length", None) for c in t.columns}
                        for name, t in tables.items()}
        self.accounts: set[str] = set()
        self.keypairs: dict[str, str] = {}  # id -> account
        self.instances: set[str] = set()
        # (line, table, column, check) run after the last row: check() is True when fine
        self.later: list[tuple[int, str, str, str, Callable[[], bool]]] = []
        self.checks: dict[str, Callable[[int, dict], None]] = {
            "accounts": self._account, "keypairs": self._keypair, "instances": self._instance,
            "tombstones": self._tombstone, "idempotency": self._idempotency}

    def row(self, number: int, table: str, row: dict) -> None:
        check = self.checks.get(table)
        if check is None:  # a table a later revision adds: its own rules are not known here
            return
        try:
            check(number, row)
        except _Bad as bad:
            raise TransferError(f"line {number}: {table}.{bad.column} {bad.why}; "
                                f"nothing was imported") from None

    def finish(self) -> None:
        for number, table, column, why, ok in self.later:
            if not ok():
                raise TransferError(f"line {number}: {table}.{column} {why}; "
                                    f"nothing was imported")

    def _owner(self, number: int, table: str, row: dict) -> str:
        account = _str(row, "account")
        self.later.append((number, table, "account", "names no account of the file",
                           lambda: account in self.accounts))
        return account

    def _plain(self, table: str, row: dict, column: str) -> None:
        """A string the API takes as it comes (instanceType, zoneName...), within its column."""
        try:
            validation.optional_str(row, column, self.lengths[table].get(column))
        except BceError:
            raise _Bad(column, "must be a string without NUL that fits its column") from None
        _str(row, column)

    # -- tables ------------------------------------------------------------------------------

    def _account(self, number: int, row: dict) -> None:
        access_key, secret_key = _str(row, "access_key"), _str(row, "secret_key")
        for column, secret in (("access_key", _USABLE_SECRET), ("secret_key", secret_key)):
            try:  # the access key alone first (with a secret that passes), then the pair
                check_credentials(access_key, secret, "accounts")
            except ValueError as exc:  # its message may name the access key, never a secret
                raise _Bad(column, f"is not one a client could use ({exc})") from None
        _time(row, "created_at")
        self.accounts.add(access_key)

    def _keypair(self, number: int, row: dict) -> None:
        _seq(row)
        keypair_id = _str(row, "id")
        _need(validation.is_id(keypair_id, "k-"), "id", "is not a key pair id (k- and 8 of "
                                                       "[A-Za-z0-9])")
        account = self._owner(number, "keypairs", row)
        _need(validation.is_name(_str(row, "name")), "name", _NAME_WHY)
        _need(validation.is_text(_str(row, "description")), "description", _TEXT_WHY)
        try:
            key = parse_public_key(_str(row, "public_key"))
        except BceError:
            raise _Bad("public_key", "is not a public key the API accepts") from None
        _need(key.openssh == row["public_key"], "public_key",
              "is not in the OpenSSH one-line form the API stores")
        _need(row.get("fingerprint") == key.fingerprint, "fingerprint",
              "is not the MD5 fingerprint of public_key")
        _need(row.get("blob_sha256") == hashlib.sha256(key.blob).hexdigest(), "blob_sha256",
              "is not the SHA-256 of public_key's blob")
        _time(row, "created_at")
        self.keypairs[keypair_id] = account

    def _instance(self, number: int, row: dict) -> None:
        _seq(row)
        instance_id = _str(row, "id")
        _need(validation.is_id(instance_id, "i-"), "id", "is not an instance id (i- and 8 of "
                                                         "[A-Za-z0-9])")
        account = self._owner(number, "instances", row)
        _need(validation.is_name(_str(row, "name")), "name", _NAME_WHY)
        _need(validation.is_hostname(_str(row, "hostname")), "hostname",
              "is not a hostname the API accepts (2-64 of a-z, 0-9, '-', '.', a letter first, "
              "no two symbols in a row, none last)")
        _need(validation.is_text(_str(row, "description"), validation.INSTANCE_DESCRIPTION_MAX),
              "description", _TEXT_WHY)
        try:
            image = get_image(_str(row, "image_id"))
        except BceError:
            raise _Bad("image_id", "names no image of the catalogue") from None
        for column in ("instance_type", "zone_name", "payment_timing"):
            self._plain("instances", row, column)
        for column, (lo, hi) in (("cpu_count", validation.CPU_COUNTS),
                                 ("memory_gb", validation.MEMORY_GBS)):
            try:
                validation.optional_int(row, column, 0, lo, hi)
            except BceError:
                raise _Bad(column, f"must be an integer from {lo} to {hi}") from None
            _need(row.get(column) is not None, column, "must be an integer")
        _time(row, "created_at")
        _need(row.get("state") in (RUNNING, STOPPED), "state", f"must be {RUNNING} or {STOPPED}")
        transition = row.get("transition")
        _need(transition is None or transition in _TRANSITIONS, "transition",
              f"must be null or one of {', '.join(sorted(_TRANSITIONS))}")
        _time(row, "transition_until")
        for column in ("key_in_force_at", "first_key_at"):
            if column in row:
                _time(row, column, null=True)
        keypair_id = row.get("keypair_id")
        if keypair_id is not None:
            _need(image.is_linux, "keypair_id", "binds a key pair to a Windows instance")
            self.later.append((number, "instances", "keypair_id",
                               "names no key pair of the instance's account",
                               lambda: self.keypairs.get(keypair_id) == account))
        self._host_key(row)
        self.instances.add(instance_id)

    @staticmethod
    def _host_key(row: dict) -> None:
        """The SSH host key columns (revision 0002): the public key and fingerprint are
        those of the stored seed, or all three are null."""
        if "ssh_host_key" not in row:
            return
        seed = row.get("ssh_host_key")
        if seed is None:
            _need(row.get("ssh_host_public_key") is None and row.get("ssh_host_fingerprint")
                  is None, "ssh_host_key", "is null but the host's public key is not")
            return
        try:
            key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(_str(row, "ssh_host_key")))
        except ValueError:
            raise _Bad("ssh_host_key", "is not an ed25519 seed in hex") from None
        line = public_line(key)
        _need(row.get("ssh_host_public_key") == line, "ssh_host_public_key",
              "is not the public key of ssh_host_key")
        _need(row.get("ssh_host_fingerprint") == fingerprint_sha256(blob_of(line)),
              "ssh_host_fingerprint", "is not the fingerprint of ssh_host_key")

    def _tombstone(self, number: int, row: dict) -> None:
        kind = row.get("kind")
        _need(kind in ("keypair", "instance"), "kind", "must be keypair or instance")
        item_id = _str(row, "id")
        prefix = "k-" if kind == "keypair" else "i-"
        _need(validation.is_id(item_id, prefix), "id", f"is not a {kind} id")
        self._owner(number, "tombstones", row)
        _seq(row)
        live = self.keypairs if kind == "keypair" else self.instances
        self.later.append((number, "tombstones", "id", f"names a {kind} that is not deleted",
                           lambda: item_id not in live))

    def _idempotency(self, number: int, row: dict) -> None:
        self._owner(number, "idempotency", row)
        self._plain("idempotency", row, "operation")
        token = _str(row, "token")
        try:
            _need(validation.client_token(token) is not None, "token", "is empty")
        except BceError:
            raise _Bad("token", "is not a clientToken the API accepts") from None
        digest = _str(row, "request_hash")
        _need(len(digest) == 64 and all(c in "0123456789abcdef" for c in digest),
              "request_hash", "is not a SHA-256 in lowercase hex")
        try:
            answer = orjson.loads(_str(row, "response"))
        except orjson.JSONDecodeError:
            answer = None
        _need(isinstance(answer, dict), "response", "is not a JSON object")
        _time(row, "created_at")


# -- database helpers ----------------------------------------------------------------------------


def _tables(conn: Connection) -> list[Table]:
    md = MetaData()
    md.reflect(conn)
    return [t for t in md.sorted_tables if t.name not in _SKIP]


def _revision(conn: Connection) -> str | None:
    from sqlalchemy import inspect

    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _counter_column(table: Table) -> str | None:
    """The single integer primary key column, the only kind that auto-increments."""
    pk = list(table.primary_key.columns)
    if len(pk) == 1 and isinstance(pk[0].type, Integer):
        return str(pk[0].name)
    return None


def _sqlite_autoincrement(conn: Connection) -> set[str]:
    rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    return {name for name, sql in rows if sql and "AUTOINCREMENT" in sql.upper()}


def _pg_sequence(conn: Connection, table: str, column: str) -> str | None:
    return conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                        {"t": table, "c": column}).scalar()


def _read_counters(conn: Connection, tables: list[Table]) -> dict[str, tuple[str | None, int]]:
    """table -> (column, last value handed out)."""
    out: dict[str, tuple[str | None, int]] = {}
    if conn.dialect.name == "sqlite":
        auto = _sqlite_autoincrement(conn)
        if "sqlite_sequence" not in {r[0] for r in conn.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'table'"))}:
            return out
        last = {name: seq for name, seq in conn.execute(
            text("SELECT name, seq FROM sqlite_sequence"))}
        for t in tables:
            col = _counter_column(t)
            if col and t.name in auto and t.name in last:
                out[str(t.name)] = (col, int(last[t.name]))
    elif conn.dialect.name == "postgresql":
        for t in tables:
            col = _counter_column(t)
            seq = col and _pg_sequence(conn, t.name, col)
            if seq:
                value, called = conn.execute(
                    text(f"SELECT last_value, is_called FROM {seq}")).one()
                out[str(t.name)] = (col, int(value) if called else int(value) - 1)
    return out


def _write_counters(conn: Connection, tables: list[Table],
                    counters: dict[str, tuple[str | None, int]]) -> None:
    """Move each auto-increment counter past the imported keys and the source's counter."""
    auto = _sqlite_autoincrement(conn) if conn.dialect.name == "sqlite" else set()
    for t in tables:
        col = _counter_column(t)
        if col is None:
            continue
        top = conn.execute(select(func.max(t.c[col]))).scalar() or 0
        last = max(top, counters.get(t.name, (col, 0))[1])
        if conn.dialect.name == "postgresql":
            seq = _pg_sequence(conn, t.name, col)
            if seq:
                conn.execute(text("SELECT setval(:s, :v, :called)"),
                             {"s": seq, "v": max(last, 1), "called": last >= 1})
        elif conn.dialect.name == "sqlite" and t.name in auto and last > 0:
            done = conn.execute(text("UPDATE sqlite_sequence SET seq = :v WHERE name = :t"),
                                {"v": last, "t": t.name}).rowcount
            if not done:
                conn.execute(text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :v)"),
                             {"t": t.name, "v": last})


# -- export -------------------------------------------------------------------------------------


def export(store: Store, out: IO[bytes]) -> dict[str, int]:
    """Write every row of every table, from one consistent snapshot; returns row counts."""
    with store.reachable(), store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            revision = _revision(conn)
            if revision is None:
                raise TransferError("the source database has no localbcc schema "
                                    "(no alembic_version table); nothing to export")
            tables = _tables(conn)
            header = {
                "format": FORMAT, "version": VERSION, "schema_revision": revision,
                "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "source": conn.dialect.name,
                "tables": {str(t.name): [str(c.name) for c in t.columns] for t in tables},
            }
            out.write(orjson.dumps(header) + b"\n")
            counts: dict[str, int] = {}
            for t in tables:
                tname, names = str(t.name), [str(c.name) for c in t.columns]
                order = list(t.primary_key.columns) or list(t.columns)
                n = 0
                result = conn.execution_options(yield_per=BATCH).execute(
                    select(t).order_by(*order))
                for row in result:
                    values = {name: _encode(v, f"{tname}.{name}") for name, v in zip(names, row)}
                    out.write(orjson.dumps({"table": tname, "row": values}) + b"\n")
                    n += 1
                counts[tname] = n
            for name, (col, last) in _read_counters(conn, tables).items():
                out.write(orjson.dumps({"counter": name, "column": col, "last": last}) + b"\n")
            out.write(orjson.dumps({"end": True, "rows": counts}) + b"\n")
    return counts


# -- import -------------------------------------------------------------------------------------


def _lines(src: IO[bytes]) -> Iterator[tuple[int, dict]]:
    for number, line in enumerate(src, start=1):
        line = line.strip()
        if not line:
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise TransferError(f"line {number} is not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise TransferError(f"line {number} is not a JSON object")
        yield number, record


def read_header(src: IO[bytes]) -> tuple[dict, Iterator[tuple[int, dict]]]:
    lines = _lines(src)
    try:
        _, header = next(lines)
    except StopIteration:
        raise TransferError("the file is empty") from None
    if header.get("format") != FORMAT:
        raise TransferError(f"not a localbcc export (the first line must have "
                            f'"format": "{FORMAT}")')
    version = header.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise TransferError(f"export format version {version!r} is newer than this localbcc "
                            f"reads ({VERSION}); import it with the localbcc that wrote it")
    if not isinstance(header.get("schema_revision"), str) or not isinstance(header.get("tables"), dict):
        raise TransferError("the header line lacks schema_revision or tables")
    return header, lines


class _Refused(Exception):
    def __init__(self, number: int, row: dict, error: StatementError):
        self.number, self.row, self.error = number, row, error


def _insert(conn: Connection, table: Table, rows: list[dict], numbers: list[int]) -> None:
    """Insert one batch of rows (lines ``numbers`` of the file), in a savepoint. If the
    database refuses it, the rows are tried again one by one to find the line it
    refuses, and the refusal becomes a TransferError: line, table and the database's
    reason, never the values. The caller's transaction is then rolled back."""
    try:
        with conn.begin_nested():
            conn.execute(insert(table), rows)
        return
    except OperationalError:
        raise  # the database is gone, locked or full: Store.reachable() says so
    except StatementError as exc:
        error = exc
    try:
        with conn.begin_nested():  # PostgreSQL: the failed statement aborted only the savepoint
            for row, number in zip(rows, numbers):
                try:
                    conn.execute(insert(table), row)
                except StatementError as exc:
                    raise _Refused(number, row, exc) from None
    except _Refused as refused:
        raise TransferError(
            f"line {refused.number}: the database refused this {table.name} row: "
            f"{_reason(refused.error, [refused.row])}; "
            f"nothing was imported") from None
    except StatementError:
        pass  # the savepoint itself failed: name the whole batch
    raise TransferError(f"lines {numbers[0]}-{numbers[-1]}: the database refused these "
                        f"{table.name} rows: {_reason(error, rows)}; nothing was imported")


def _nonempty(conn: Connection) -> dict[str, int]:
    found = {}
    for t in _tables(conn):
        n = conn.execute(select(func.count()).select_from(t)).scalar_one()
        if n:
            found[t.name] = n
    return found


def import_(store: Store, src: IO[bytes]) -> dict[str, int]:
    """Load an export into an empty database, creating the schema; returns row counts."""
    header, lines = read_header(src)
    revision = header["schema_revision"]
    known = store.known_revisions()
    if revision not in known:
        raise TransferError(f"the file is at schema revision {revision}, which this localbcc "
                            f"does not know (it has {', '.join(known)}): import it with a "
                            f"localbcc at least as new as the one that exported it")
    with store.reachable(), store.schema_lock():
        with store.engine.connect() as conn:
            current = _revision(conn)
            tables_there = [t for t in _tables(conn)]
            busy = _nonempty(conn) if tables_there else {}
        if busy:
            listed = ", ".join(f"{name}: {n} row{'s' * (n != 1)}" for name, n in busy.items())
            raise TransferError(f"the target database is not empty ({listed}); import only "
                                f"writes into an empty database: create a new one (PostgreSQL: "
                                f"createdb; SQLite: a new --data-dir) and import there")
        if current is None and tables_there:
            raise TransferError("the target database has tables but no localbcc schema; "
                                "import into an empty database")
        if current is not None and current != revision:
            raise TransferError(f"the target database has an (empty) schema at revision "
                                f"{current} but the file is at {revision}; import into a "
                                f"database with no tables at all")
        if current is None:
            from alembic import command

            command.upgrade(store._alembic_config(), revision)
        counts = _load(store, header, lines)
        if revision != SCHEMA_REVISION:
            from alembic import command

            command.upgrade(store._alembic_config(), "head")
    return counts


def _load(store: Store, header: dict, lines: Iterator[tuple[int, dict]]) -> dict[str, int]:
    with store.engine.connect() as conn:
        conn.info[WRITE_FLAG] = True  # BEGIN IMMEDIATE on SQLite
        with conn.begin():
            tables = {t.name: t for t in _tables(conn)}
            declared = header["tables"]
            if set(declared) != set(tables):
                raise TransferError(f"the file's tables {sorted(declared)} differ from the "
                                    f"schema's {sorted(tables)} at revision "
                                    f"{header['schema_revision']}")
            for name, cols in declared.items():
                if set(cols) != {c.name for c in tables[name].columns}:
                    raise TransferError(f"the file's columns of {name} {cols} differ from the "
                                        f"schema's {[c.name for c in tables[name].columns]}")
            kinds = {name: _kinds(t) for name, t in tables.items()}
            rules = _Rules(tables)
            counts = {name: 0 for name in tables}
            counters: dict[str, tuple[str | None, int]] = {}
            batch: list[dict] = []
            batch_lines: list[int] = []
            batch_table: str | None = None
            end: dict | None = None

            def flush() -> None:
                if batch:
                    assert batch_table is not None  # set with the batch's first row
                    _insert(conn, tables[batch_table], batch, batch_lines)
                    batch.clear()
                    batch_lines.clear()

            for number, record in lines:
                if end is not None:
                    raise TransferError(f"line {number}: data after the end line")
                if "table" in record:
                    name, row = record["table"], record.get("row")
                    if not isinstance(name, str) or name not in tables:
                        raise TransferError(f"line {number}: unknown table {name!r}")
                    if not isinstance(row, dict):
                        raise TransferError(f"line {number}: the {name} line has no \"row\" "
                                            f"object")
                    if set(row) != set(declared[name]):
                        raise TransferError(f"line {number}: the row's columns differ from "
                                            f"the header's for {name}")
                    if name != batch_table:
                        flush()
                        batch_table = name
                    values = _values(number, name, row, kinds[name])
                    rules.row(number, name, values)
                    batch.append(values)
                    batch_lines.append(number)
                    counts[name] += 1
                    if len(batch) >= BATCH:
                        flush()
                elif "counter" in record:
                    name, col, last = record["counter"], record.get("column"), record.get("last")
                    if (not isinstance(name, str) or name not in tables
                            or not isinstance(last, int)):
                        raise TransferError(f"line {number}: bad counter line")
                    counters[name] = (col, last)
                elif record.get("end") is True:
                    end = record
                else:
                    raise TransferError(f"line {number}: neither a row, a counter nor the end")
            flush()
            rules.finish()
            if end is None:
                raise TransferError("the file ends before its end line: it is truncated; "
                                    "nothing was imported")
            expected = end.get("rows") or {}
            if {k: v for k, v in expected.items()} != counts:
                raise TransferError(f"the end line counts {expected} rows but the file has "
                                    f"{counts}; nothing was imported")
            _write_counters(conn, list(tables.values()), counters)
    return counts
