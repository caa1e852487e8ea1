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
no rows), in one transaction: it either brings everything or nothing.
"""
from __future__ import annotations

import base64
import datetime as dt
import decimal
import time
from typing import IO, Any, Iterator

import orjson
from sqlalchemy import (Float, Integer, MetaData, Numeric, String, Table, func, insert,
                        select, text)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, StatementError

from .db import SCHEMA_REVISION, WRITE_FLAG, Store

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
            listed = ", ".join(f"{name}: {n} rows" for name, n in busy.items())
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
                    batch.append(_values(number, name, row, kinds[name]))
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
            if end is None:
                raise TransferError("the file ends before its end line: it is truncated; "
                                    "nothing was imported")
            expected = end.get("rows") or {}
            if {k: v for k, v in expected.items()} != counts:
                raise TransferError(f"the end line counts {expected} rows but the file has "
                                    f"{counts}; nothing was imported")
            _write_counters(conn, list(tables.values()), counters)
    return counts
