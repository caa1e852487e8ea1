"""SQLite's write lock held by another process, and COMMITs that fail: the
event loop keeps serving, writes wait their turn or fail cleanly, and nothing
stays locked."""
from __future__ import annotations

import asyncio
import sqlite3

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy.exc import OperationalError

from localbcc.api.context import Context
from localbcc.clock import FakeClock
from localbcc.config import Settings
from localbcc.errors import BceError, ErrorCode
from localbcc.store.db import Store
from localbcc.store.urls import sqlite_url

AK = "AKcontention"


def _public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()


@pytest.fixture
def world(tmp_path):
    store = Store(sqlite_url(tmp_path))
    store.prepare()
    ctx = Context(Settings(data_dir=tmp_path), store, FakeClock())
    pair = ctx.keypairs.import_(AK, {"name": "before", "publicKey": _public_key()}, None)
    other = sqlite3.connect(tmp_path / "localbcc.db", isolation_level=None)  # "another process"
    yield ctx, pair["keypair"]["keypairId"], other
    other.close()
    ctx.close()


def _name(other: sqlite3.Connection, keypair_id: str) -> str:
    return other.execute("SELECT name FROM keypairs WHERE id = ?", (keypair_id,)).fetchone()[0]


def test_a_write_waits_for_another_process_without_stalling_the_loop(world):
    """SQLite would wait for the lock on the loop's thread (10 s at most),
    and every other request with it."""
    ctx, kid, other = world

    async def scenario() -> list[str]:
        events = []
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.ensure_future(ctx.unit.run(ctx.keypairs.rename, AK, kid, {"name": "after"}))
        await asyncio.sleep(0)  # the write runs first, finds the lock taken and waits its turn
        read = await ctx.unit.run(ctx.keypairs.get, AK, kid)  # served meanwhile
        events.append(f"read {read['keypair']['name']}, write done: {write.done()}")
        other.execute("COMMIT")
        await write
        events.append(f"written {_name(other, kid)}")
        return events

    assert asyncio.run(scenario()) == ["read before, write done: False", "written after"]


def test_a_write_gives_up_with_503_after_the_busy_timeout(world, monkeypatch):
    ctx, kid, other = world
    monkeypatch.setattr("localbcc.store.unit.BUSY_TIMEOUT_MS", 100)

    async def scenario() -> None:
        other.execute("BEGIN IMMEDIATE")
        try:
            await ctx.unit.run(ctx.keypairs.rename, AK, kid, {"name": "never"})
        finally:
            other.execute("ROLLBACK")

    with pytest.raises(BceError) as refused:
        asyncio.run(scenario())
    assert refused.value.code is ErrorCode.ServiceUnavailable
    assert _name(other, kid) == "before"


def test_a_refused_commit_leaves_nothing_locked(world, monkeypatch):
    """SQLite keeps the transaction (and the write lock) when COMMIT is refused
    as busy, though SQLAlchemy counts it as over: the process must not carry
    it into its next transactions, nor keep other processes out."""
    ctx, kid, other = world
    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

    real = SQLiteDialect_pysqlite.do_commit
    refusals = [sqlite3.OperationalError("database is locked")]

    def do_commit(self, dbapi_connection):
        if refusals:  # as SQLite refuses a COMMIT: the transaction stays open
            raise refusals.pop()
        return real(self, dbapi_connection)

    monkeypatch.setattr(SQLiteDialect_pysqlite, "do_commit", do_commit)

    async def scenario() -> list[str]:
        results = []
        for name in ("refused", "next"):
            try:
                await ctx.unit.run(ctx.keypairs.rename, AK, kid, {"name": name})
                results.append(f"{name}: ok")
            except BceError as exc:
                results.append(f"{name}: {exc.code.name}")
        return results

    assert asyncio.run(scenario()) == ["refused: ServiceUnavailable", "next: ok"]
    assert _name(other, kid) == "next"
    other.execute("BEGIN IMMEDIATE")  # other processes can write again
    other.execute("ROLLBACK")


def test_an_error_from_a_failed_batch_does_not_come_back_later(world, monkeypatch):
    """A call's error waits for its batch's commit; if that commit fails, the
    call answers 503. Nothing of that error may stay behind: compiled code that
    awaited inside an exception handler once kept it as the thread's handled
    exception, and a later call that retried a busy write raised it again."""
    ctx, kid, other = world

    def failing_commit(transaction):
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    async def failing_turn():
        good = ctx.unit.run(ctx.keypairs.rename, AK, kid, {"name": "lost"})
        bad = ctx.unit.run(ctx.keypairs.rename, AK, "k-NoSuch00", {"name": "never"})
        return await asyncio.gather(good, bad, return_exceptions=True)

    with monkeypatch.context() as patched:
        patched.setattr("sqlalchemy.engine.base.RootTransaction.commit", failing_commit)
        results = asyncio.run(failing_turn())
    assert [r.code for r in results] == [ErrorCode.ServiceUnavailable] * 2

    async def busy_then_written():
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.ensure_future(ctx.unit.run(ctx.keypairs.rename, AK, kid, {"name": "after"}))
        await asyncio.sleep(0)  # the write runs first, finds the lock taken and waits its turn
        other.execute("COMMIT")
        await write

    asyncio.run(busy_then_written())
    assert _name(other, kid) == "after"
