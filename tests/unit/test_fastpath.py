"""The hot-path building blocks of docs/performance.md: prepared statements,
the read cache (and its invalidation by other processes), the batched access
log and request ids. About 2 s."""
from __future__ import annotations

import asyncio
import io
import logging
import re
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from localbcc.api.accesslog import FLUSH_LINES, AccessLog
from localbcc.api.app import _query_pairs, _request_id
from localbcc.api.context import Context
from localbcc.clock import FakeClock
from localbcc.config import Settings
from localbcc.domain.keypairs import KeypairService
from localbcc.errors import BceError, ErrorCode
from localbcc.store.accounts import Accounts
from localbcc.store.cache import ReadCache
from localbcc.store.db import Store
from localbcc.store.sqlite import Checkpointer
from localbcc.store.urls import sqlite_url
from localbcc.store.prepared import Prepared
from localbcc.store.schema import accounts, keypairs

from ..store.data import public_key

AK = "AKfast"


@pytest.fixture
def store(tmp_path):
    # The group-commit tests below drive batches directly on an event loop, as
    # only the unit of work (store/unit.py) may: the suite's check is off here.
    s = Store(sqlite_url(tmp_path), check_units=False)
    s.prepare()
    Accounts(s, FakeClock()).ensure(f"{AK}:SKfast0123456789")
    yield s
    s.dispose()


@pytest.fixture
def service(store):
    return KeypairService(store, FakeClock(), "bj", 500)


def _import(service, name: str) -> str:
    return service.import_(AK, {"name": name, "publicKey": public_key()}, None)["keypair"]["keypairId"]


# -- prepared statements ------------------------------------------------------------------

def test_prepared_runs_with_named_parameters_in_any_order(store):
    query = Prepared(select(accounts.c.access_key, accounts.c.secret_key)
                     .where(accounts.c.secret_key == bindparam("sk"),
                            accounts.c.access_key == bindparam("ak")))
    with store.read() as tx:
        assert query.execute(tx.conn, {"ak": AK, "sk": "SKfast0123456789"}).fetchall() == [(AK, "SKfast0123456789")]
        assert query.execute(tx.conn, {"sk": "SKfast0123456789", "ak": "nobody"}).fetchall() == []


def test_prepared_keeps_the_parameters_sqlalchemy_adds(store, service):
    ids = [_import(service, f"p{i}") for i in range(3)]
    # SQLite's LIMIT comes with an OFFSET parameter SQLAlchemy fills in itself.
    query = Prepared(select(keypairs.c.id).order_by(keypairs.c.seq).limit(bindparam("n")))
    with store.read() as tx:
        assert [r[0] for r in query.execute(tx.conn, {"n": 2}).fetchall()] == ids[:2]


def test_prepared_refuses_a_missing_parameter(store):
    query = Prepared(select(accounts.c.secret_key).where(accounts.c.access_key == bindparam("ak")))
    with store.read() as tx, pytest.raises(KeyError):
        query.execute(tx.conn, {})


def test_prepared_reports_driver_errors_as_sqlalchemy_errors(store):
    query = Prepared(insert(accounts).values(access_key=bindparam("ak"), secret_key="x",
                                             created_at=0.0))
    with pytest.raises(IntegrityError), store.write() as tx:
        query.execute(tx.conn, {"ak": AK})  # the primary key exists
    with store.read() as tx:  # the failed transaction was rolled back, the store still works
        assert tx.secret_of(AK) == "SKfast0123456789"


def test_a_failed_write_is_rolled_back_and_the_next_one_commits(store, service):
    kid = _import(service, "first")
    with pytest.raises(BceError), store.write() as tx:
        tx.update_keypair(kid, name="changed")
        raise BceError(ErrorCode.InvalidURI)
    assert service.get(AK, kid)["keypair"]["name"] == "first"
    service.rename(AK, kid, {"name": "second"})
    with sqlite3.connect(store.url.removeprefix("sqlite:///")) as other:
        assert other.execute("SELECT name FROM keypairs WHERE id = ?", (kid,)).fetchone() == ("second",)


def test_a_transaction_inside_another_gets_its_own_connection(store, service):
    kid = _import(service, "outer")
    with store.write() as outer:
        outer.update_keypair(kid, name="uncommitted")
        with store.read() as inner:  # another connection: does not see the open write
            assert inner.get_keypair(AK, kid).name == "outer"
    assert service.get(AK, kid)["keypair"]["name"] == "uncommitted"


# -- schema creation without Alembic ---------------------------------------------------------

def _structure(path) -> dict:
    """Every table's columns, indexes (with their columns) and foreign keys."""
    with sqlite3.connect(path) as conn:
        tables = [t for (t,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {t: (conn.execute(f"PRAGMA table_info('{t}')").fetchall(),
                    sorted((name, unique, origin, tuple(c[2] for c in conn.execute(
                        f"PRAGMA index_info('{name}')")))
                           for _, name, unique, origin, _ in conn.execute(f"PRAGMA index_list('{t}')")),
                    sorted(conn.execute(f"PRAGMA foreign_key_list('{t}')").fetchall()))
                for t in tables}


def test_an_empty_database_gets_what_the_migrations_build(tmp_path):
    from localbcc.store.migrate import SCHEMA_REVISION

    (tmp_path / "prepared").mkdir()
    (tmp_path / "migrated").mkdir()
    prepared, migrated = Store(sqlite_url(tmp_path / "prepared")), Store(sqlite_url(tmp_path / "migrated"))
    try:
        prepared.prepare()  # the server's start-up path: no Alembic
        migrated.upgrade()  # every migration, through Alembic
        assert prepared.current_revision() == migrated.current_revision() == SCHEMA_REVISION
        prepared.upgrade()  # `db upgrade` on it later: nothing to do, and no error
        assert prepared.current_revision() == SCHEMA_REVISION
    finally:
        prepared.dispose()
        migrated.dispose()
    structure = _structure(tmp_path / "prepared" / "localbcc.db")
    assert structure == _structure(tmp_path / "migrated" / "localbcc.db")
    assert {"accounts", "keypairs", "instances", "tombstones", "alembic_version"} <= set(structure)


# -- group commit ------------------------------------------------------------------------------

def _committed_name(store, kid: str) -> str | None:
    """What another connection (another process, say) sees committed."""
    with sqlite3.connect(store.url.removeprefix("sqlite:///")) as other:
        row = other.execute("SELECT name FROM keypairs WHERE id = ?", (kid,)).fetchone()
    return row[0] if row else None


def test_writes_of_one_loop_turn_commit_together_and_a_failure_stays_its_own(store, service):
    good, bad = _import(service, "good"), _import(service, "bad")

    async def one_turn():
        service.rename(AK, good, {"name": "good-2"})
        with pytest.raises(BceError):
            service.rename(AK, bad, {"name": "not a valid name!"})  # fails validation first
        with pytest.raises(BceError), store.write() as tx:  # fails after writing
            tx.update_keypair(bad, name="never")
            raise BceError(ErrorCode.InvalidURI)
        assert _committed_name(store, good) == "good"  # batched: not committed yet...
        assert service._get(AK, good)["keypair"]["name"] == "good-2"  # ...but seen by the loop
        await store.durable()
        assert _committed_name(store, good) == "good-2"

    asyncio.run(one_turn())
    assert _committed_name(store, bad) == "bad"


def test_nothing_read_from_an_open_batch_is_cached(store, service):
    kid = _import(service, "cached")

    async def one_turn():
        assert service.get(AK, kid)["keypair"]["name"] == "cached"  # cached, no batch open
        service.rename(AK, kid, {"name": "pending"})
        assert service.get(AK, kid)["keypair"]["name"] == "pending"
        cached = [answer["keypair"]["name"] for answer in store.reads._entries.values()]
        assert "pending" not in cached  # the batch's view was not cached
        await store.durable()

    asyncio.run(one_turn())
    assert service.get(AK, kid)["keypair"]["name"] == "pending"


def test_a_write_outside_an_event_loop_commits_at_once(store, service):
    kid = _import(service, "direct")
    service.rename(AK, kid, {"name": "direct-2"})
    assert _committed_name(store, kid) == "direct-2"


def test_a_broken_connection_wakes_every_waiter_of_its_batch(store, service):
    """A request whose connection dies mid-batch must not leave the other
    requests of the batch waiting for ever: all of them answer 503."""
    kid = _import(service, "dies")

    async def good():
        service.rename(AK, kid, {"name": "good"})
        await store.durable()

    async def bad():
        with store.write() as tx:
            tx.conn.connection.dbapi_connection.close()  # the driver connection goes away
            tx.update_keypair(kid, name="bad")

    async def both():
        return await asyncio.gather(good(), bad(), return_exceptions=True)

    results = asyncio.run(asyncio.wait_for(both(), 5))
    assert [r.code for r in results] == [ErrorCode.ServiceUnavailable] * 2, results
    assert _committed_name(store, kid) == "dies"
    service.rename(AK, kid, {"name": "later"})  # a new connection serves what follows
    assert _committed_name(store, kid) == "later"


def test_nothing_joins_a_batch_that_sqlite_rolled_back(store, service):
    """After SQLite rolled the whole batch back (disk full, I/O error), a later
    write of the same turn must not commit by itself while its client hears 503."""
    kid = _import(service, "full")

    async def one_turn():
        with pytest.raises(BceError), store.write() as tx:
            tx.update_keypair(kid, name="first")
            tx.conn.connection.dbapi_connection.execute("ROLLBACK")  # what SQLITE_FULL does
            raise OperationalError("UPDATE", {}, Exception("database or disk is full"))
        with pytest.raises(BceError) as err:
            service.rename(AK, kid, {"name": "second"})
        assert err.value.code is ErrorCode.ServiceUnavailable
        with pytest.raises(BceError):
            await store.durable()

    asyncio.run(one_turn())
    assert _committed_name(store, kid) == "full"


def test_an_error_answer_waits_for_the_batch_it_read(store, monkeypatch):
    """An error can rest on a batch-mate's uncommitted write (here: the same
    public key, imported in the same turn). If that batch then fails, the error
    must not have been the answer: store.unit.run waits for the commit either way."""
    ctx = Context(Settings(ssh=False), store, FakeClock())
    key = public_key()

    async def one_turn():
        first = asyncio.ensure_future(
            ctx.unit.run(ctx.keypairs.import_, AK, {"name": "one", "publicKey": key}, None))
        second = asyncio.ensure_future(
            ctx.unit.run(ctx.keypairs.import_, AK, {"name": "two", "publicKey": key}, None))
        return await asyncio.gather(first, second, return_exceptions=True)

    def failing_commit(transaction):
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    monkeypatch.setattr("sqlalchemy.engine.base.RootTransaction.commit", failing_commit)
    results = asyncio.run(one_turn())
    assert [r.code for r in results] == [ErrorCode.ServiceUnavailable] * 2, results


def test_a_write_on_the_event_loop_outside_the_unit_of_work_is_refused(tmp_path):
    """With the check on (as in the whole suite), a write on the loop's thread
    that no ``unit.run`` started fails: nothing would wait for its commit."""
    checked = Store(sqlite_url(tmp_path), check_units=True)
    checked.prepare()
    service = KeypairService(checked, FakeClock(), "bj", 500)
    Accounts(checked, FakeClock()).ensure(f"{AK}:SKfast0123456789")
    kid = _import(service, "checked")  # no event loop: a transaction of its own

    async def main():
        with pytest.raises(AssertionError):
            service.rename(AK, kid, {"name": "bypassed"})
        assert service.get(AK, kid)["keypair"]["name"] == "checked"  # SQLite reads may
        await checked.unit.run(service.rename, AK, kid, {"name": "through-the-unit"})

    try:
        asyncio.run(main())
        assert _committed_name(checked, kid) == "through-the-unit"
    finally:
        checked.dispose()


def test_background_reads_run_off_the_event_loop(store, service):
    """The SSH service's periodic scans (ctx.read_in_background) must not stall
    the loop: on SQLite they run on a worker thread, with a connection of its own."""
    ctx = Context(Settings(ssh=False), store, FakeClock())
    kid = _import(service, "scanned")

    def scan():
        with store.read() as tx:
            return threading.get_ident(), tx.get_keypair(AK, kid).name

    async def main():
        return threading.get_ident(), await ctx.read_in_background(scan)

    loop_thread, (scan_thread, name) = asyncio.run(main())
    assert scan_thread != loop_thread
    assert name == "scanned"


def test_the_wal_is_rewound_under_sustained_writes(store, service, monkeypatch):
    """Back-to-back batches never leave SQLite a moment to rewind the WAL by
    itself; the writer's RESTART checkpoint (store/sqlite.py, Checkpointer) does.
    The checkpoint thread's work is done here, between batches, so the test
    does not depend on its timing."""
    monkeypatch.setattr(Checkpointer, "RESTART_PAGES", 50)
    monkeypatch.setattr(Checkpointer, "INTERVAL", 3600.0)  # the thread stays out of the way
    kids = [_import(service, f"w{i}") for i in range(8)]
    wal = Path(store.url.removeprefix("sqlite:///") + "-wal")
    sizes = []

    async def sustained():
        conn = None
        for n in range(60):
            for kid in kids:  # one batch, open until the end of this loop turn
                service.rename(AK, kid, {"name": f"{kid}-{n}"})
            # The thread's checkpoint lands while a batch is open (under load,
            # the next one always is): it copies the earlier batches only.
            conn = store._checkpoints.checkpoint(conn)
            await store.durable()
            sizes.append(wal.stat().st_size)
        conn.close()

    asyncio.run(sustained())
    # Without the rewind the WAL grows by a page with every batch; with it, the
    # file stops growing (its size is a high-water mark until truncated).
    assert sizes[-1] <= sizes[len(sizes) // 2], [size // 4096 for size in sizes]


# -- the read cache ------------------------------------------------------------------------

class _Counter:
    def __init__(self):
        self.version, self.loads = 1, 0

    def load(self, value):
        def run():
            self.loads += 1
            return value
        return run


def test_cache_serves_until_the_version_moves():
    c = _Counter()
    cache = ReadCache(lambda: c.version)
    assert cache.get("k", c.load({"v": 1})) == {"v": 1}
    assert cache.get("k", c.load({"v": 2})) == {"v": 1}
    assert c.loads == 1
    c.version = 2
    assert cache.get("k", c.load({"v": 3})) == {"v": 3}
    assert c.loads == 2


def test_cache_off_or_unsure_always_loads():
    c = _Counter()
    for cache in (ReadCache(None), ReadCache(lambda: None)):
        cache.get("k", c.load(1))
        cache.get("k", c.load(1))
    assert c.loads == 4


def test_cache_does_not_keep_errors_and_stays_bounded():
    cache = ReadCache(lambda: 1, max_entries=3)

    def fail():
        raise BceError(ErrorCode.KeypairNotExist)
    with pytest.raises(BceError):
        cache.get("missing", fail)
    assert cache.get("missing", lambda: "now there") == "now there"
    for i in range(10):
        cache.get(i, lambda i=i: i)
    assert len(cache._entries) == 3 and cache.get(9, lambda: "reloaded") == 9


def test_cache_drops_an_answer_loaded_across_a_version_change():
    versions = iter([1, 2, 2])
    cache = ReadCache(lambda: next(versions))
    cache.get("k", lambda: "loaded at 1")  # version 1 read before loading
    assert cache.get("k", lambda: "fresh") == "fresh"  # 2 != 1: nothing from before is kept
    assert cache.get("k", lambda: "again") == "fresh"


def test_get_sees_writes_of_this_process(service):
    kid = _import(service, "before")
    assert service.get(AK, kid)["keypair"]["name"] == "before"
    service.rename(AK, kid, {"name": "after"})
    assert service.get(AK, kid)["keypair"]["name"] == "after"
    service.delete(AK, kid)
    with pytest.raises(BceError) as err:
        service.get(AK, kid)
    assert err.value.code is ErrorCode.KeypairNotExist


def test_get_sees_a_commit_by_another_process_at_once(store, service):
    kid = _import(service, "mine")
    assert service.get(AK, kid)["keypair"]["name"] == "mine"  # now cached
    path = store.url.removeprefix("sqlite:///")
    script = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
              "c.execute('UPDATE keypairs SET name = ? WHERE id = ?', ('theirs', sys.argv[2])); "
              "c.commit()")
    subprocess.run([sys.executable, "-c", script, path, kid], check=True)
    assert service.get(AK, kid)["keypair"]["name"] == "theirs"


def test_the_change_counter_is_read_once_per_loop_turn(store, service):
    kid = _import(service, "turns")
    path = store.url.removeprefix("sqlite:///")

    def commit_elsewhere(name):
        with sqlite3.connect(path) as other:
            other.execute("UPDATE keypairs SET name = ? WHERE id = ?", (name, kid))

    async def turns():
        first = store._data_version()
        commit_elsewhere("elsewhere-1")
        # Same loop turn: every request handled now arrived before the reading.
        assert store._data_version() == first
        await asyncio.sleep(0)  # the loop polls for I/O: new requests may arrive
        second = store._data_version()
        assert second != first
        assert service.get(AK, kid)["keypair"]["name"] == "elsewhere-1"
        commit_elsewhere("elsewhere-2")
        await asyncio.sleep(0)
        assert service.get(AK, kid)["keypair"]["name"] == "elsewhere-2"

    asyncio.run(turns())


def test_the_cache_is_used(service, monkeypatch):
    kid = _import(service, "hot")
    service.get(AK, kid)
    calls = []
    original = service._get
    monkeypatch.setattr(service, "_get", lambda *a: calls.append(a) or original(*a))
    for _ in range(5):
        assert service.get(AK, kid)["keypair"]["keypairId"] == kid
    assert calls == []


# -- access log and request ids ---------------------------------------------------------------

def test_access_log_lines_look_like_every_other_log_line(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    log = AccessLog()

    async def two_requests():
        log.add("rid-1", "AK1", "GET", "/v2/keypair/k-1", "-", "get_keypair", 200, "OK", 1.2345)
        log.add("rid-2", "-", "PUT", "/v2/keypair/k-1", "attach", "attach_keypair", 400,
                "Keypair.AttachAttachedKeypair", 0.5)
        assert out.getvalue() == ""  # batched: written together, a little later
        deadline = time.monotonic() + 5
        while not out.getvalue() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    asyncio.run(two_requests())
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.fullmatch(stamp + r" INFO localbcc\.access request_id=rid-1 ak=AK1 method=GET "
                        r"path=/v2/keypair/k-1 flag=- op=get_keypair status=200 code=OK ms=1\.23",
                        lines[0]), lines[0]
    assert lines[1].endswith("flag=attach op=attach_keypair status=400 "
                             "code=Keypair.AttachAttachedKeypair ms=0.50")
    # the same timestamp layout as the logging module's default asctime
    record = logging.LogRecord("x", logging.INFO, "", 0, "", None, None)
    logging_stamp = logging.Formatter("%(asctime)s").format(record)
    assert re.fullmatch(stamp, logging_stamp)
    assert abs(time.mktime(time.strptime(lines[0][:19], "%Y-%m-%d %H:%M:%S")) - time.time()) < 60


def test_access_log_writes_a_full_batch_at_once_and_the_rest_on_flush(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    log = AccessLog()

    async def many():
        for i in range(FLUSH_LINES + 3):
            log.add(f"rid-{i}", "AK", "GET", "/p", "-", "op", 200, "OK", 0.1)
        assert len(out.getvalue().splitlines()) == FLUSH_LINES  # no wait for a full batch
        log.flush()  # what shutdown does
        assert len(out.getvalue().splitlines()) == FLUSH_LINES + 3

    asyncio.run(many())


def test_access_log_follows_the_logger_level():
    logger = logging.getLogger("localbcc.access")
    old = logger.level
    try:
        logger.setLevel(logging.WARNING)
        assert not AccessLog().enabled()
        logger.setLevel(logging.INFO)
        assert AccessLog().enabled()
    finally:
        logger.setLevel(old)


def test_request_ids_are_unique_version_4_uuids():
    ids = [_request_id() for _ in range(20000)]
    assert len(set(ids)) == len(ids)
    for rid in ids[:2000]:
        parsed = uuid.UUID(rid)
        assert str(parsed) == rid and parsed.version == 4 and parsed.variant == uuid.RFC_4122


_QUERY_PARTS = st.sampled_from(list("ab=&;x1-._~ /?:@!$'()*,") + ["%41", "%C3%A9", "+", "%zz", "%", "=="])


@settings(max_examples=2000, deadline=None)
@given(st.lists(_QUERY_PARTS, max_size=12).map("".join))
def test_query_parsing_is_rfc_3986_percent_decoding(query):
    """parse_qsl's pairs, except that a ``+`` stays a ``+`` (not form decoding)."""
    from urllib.parse import parse_qsl

    try:
        want = parse_qsl(query.replace("+", "%2B"), keep_blank_values=True, encoding="utf-8",
                         errors="strict")
    except (UnicodeDecodeError, ValueError):
        want = "InvalidURI"
    try:
        got = _query_pairs(query.encode())
    except BceError as err:
        got = err.code.name
    assert got == want
