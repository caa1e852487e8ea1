"""The store in-process: URL handling, storage failures as 503, start-up errors."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from localbcc.errors import BceError, ErrorCode
from localbcc.store.db import Store
from localbcc.store.failures import DatabaseUnreachable
from localbcc.store.sqlite import use_wal
from localbcc.store.urls import normalize_url
from localbcc.store.repo import advisory_key


def test_plain_postgresql_urls_use_psycopg_3():
    assert normalize_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("postgres://u:p@h:5433/db") == "postgresql+psycopg://u:p@h:5433/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_an_unreachable_database_is_a_clear_start_up_error(free_tcp_port):
    store = Store(f"postgresql://user:secret@127.0.0.1:{free_tcp_port}/nothing")
    try:
        with pytest.raises(DatabaseUnreachable) as err:
            store.prepare()
        assert "cannot use the database" in str(err.value)
        assert "secret" not in str(err.value)  # the password is never shown
        with pytest.raises(BceError) as unavailable:  # and a request gets a 503
            with store.read() as tx:
                tx.secret_of("x")
        assert unavailable.value.code is ErrorCode.ServiceUnavailable
    finally:
        store.dispose()


@pytest.fixture
def free_tcp_port():
    from ..server import free_port

    return free_port()


@pytest.mark.backends("postgresql")
def test_a_full_pool_answers_503_not_500(fresh_database):
    store = Store(fresh_database(), pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        store.prepare()
        held = store.engine.connect()
        with pytest.raises(BceError) as err:
            with store.read() as tx:
                tx.secret_of("x")
        assert err.value.code is ErrorCode.ServiceUnavailable
        held.close()
        with store.read() as tx:  # and it works again once a connection is free
            assert tx.secret_of("x") is None
    finally:
        store.dispose()


@pytest.mark.backends("postgresql")
def test_serialize_makes_same_named_transactions_take_turns(fresh_database):
    """Tx.serialize: the second transaction waits until the first ends."""
    store = Store(fresh_database())
    store.prepare()
    order: list[str] = []
    first_in = threading.Event()

    def second() -> None:
        first_in.wait(5)
        with store.write() as tx:
            tx.serialize("token", "t1")
            order.append("second")

    t = threading.Thread(target=second)
    t.start()
    try:
        with store.write() as tx:
            tx.serialize("token", "t1")
            first_in.set()
            # the other transaction is now blocked on the lock: wait until
            # PostgreSQL shows it waiting, then finish
            key = advisory_key("token\x00t1")
            for _ in range(500):
                waiting = tx.conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).scalar()
                if waiting:
                    break
                threading.Event().wait(0.01)
            assert waiting == 1 and key
            order.append("first")
        t.join(10)
        assert order == ["first", "second"]
    finally:
        t.join(10)
        store.dispose()


def test_a_database_that_cannot_be_written_is_refused_at_start_up(tmp_path, monkeypatch):
    """A read-only mount would otherwise serve reads and answer every write 503.
    (Tests run as root, which file modes do not stop: os.access stands in for
    the read-only file system.) Start-up (server.prepare) checks it."""
    from localbcc.config import Settings
    from localbcc.server import prepare

    settings = Settings(data_dir=tmp_path)
    prepare(settings)  # a writable one starts
    monkeypatch.setattr("os.access", lambda path, mode: str(path) != str(tmp_path))
    with pytest.raises(DatabaseUnreachable, match=f"cannot write to {tmp_path} "):
        prepare(settings)  # the WAL lives in the directory: it must be writable too


def test_credentials_replacing_a_stored_secret_say_so(tmp_path, caplog):
    from localbcc.clock import FakeClock
    from localbcc.store.accounts import Accounts
    from localbcc.store.urls import sqlite_url

    store = Store(sqlite_url(tmp_path))
    try:
        store.prepare()
        accounts = Accounts(store, FakeClock())
        accounts.ensure("AKone:first-secret-0123")
        with caplog.at_level("INFO", logger="localbcc"):
            accounts.ensure("AKone:first-secret-0123")
            assert "replaced" not in caplog.text
            assert accounts.ensure("AKone:second-secret-0123") == ("AKone", "second-secret-0123")
        assert "account AKone: secret key replaced" in caplog.text
        assert "first-secret-0123" not in caplog.text and "second-secret-0123" not in caplog.text
    finally:
        store.dispose()


class _Refusing:
    """A cursor that refuses ``PRAGMA journal_mode=WAL`` the first ``times``
    times with ``code``, as SQLite refuses one of two processes switching a
    new database file at once (busy, without calling the busy handler)."""

    def __init__(self, times: int, code: int):
        self.times, self.code, self.calls = times, code, 0

    def execute(self, sql: str) -> None:
        assert sql == "PRAGMA journal_mode=WAL"
        self.calls += 1
        if self.calls <= self.times:
            exc = sqlite3.OperationalError("database is locked")
            exc.sqlite_errorcode = self.code
            raise exc


def test_the_switch_to_wal_is_tried_again_while_another_process_holds_the_file():
    cur = _Refusing(times=3, code=sqlite3.SQLITE_BUSY)
    use_wal(cur)
    assert cur.calls == 4


def test_the_switch_to_wal_does_not_retry_other_errors():
    cur = _Refusing(times=1, code=sqlite3.SQLITE_READONLY)
    with pytest.raises(sqlite3.OperationalError):
        use_wal(cur)
    assert cur.calls == 1
