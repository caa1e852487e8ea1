"""store/accounts.py: secret keys for signature checks, read without stalling the event loop."""
from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import orjson

from localbcc.auth import NotCached, format_timestamp, sign
from localbcc.clock import FakeClock
from localbcc.config import Settings
from localbcc.server import build_app

AK, SK = "AKaccountstest", "SKaccountstest0123456789"


def secret_of(accounts, access_key: str) -> str | None:
    """What a signature check gets: the answer in memory, else the one read
    (on SQLite inline: it never suspends)."""
    secret = accounts.cached(access_key)
    if not isinstance(secret, NotCached):
        return secret
    try:
        accounts.read(access_key).send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("a SQLite read suspended")


def _get(app, access_key: str, secret_key: str) -> tuple[int, dict]:
    """A signed GET /v2/keypair, in process, as the Python SDK signs it."""
    date = format_timestamp(app.ctx.clock.now())
    headers = [(b"host", b"localhost"), (b"x-bce-date", date.encode())]
    auth = sign(access_key, secret_key, "GET", "/v2/keypair", [], headers, date)
    scope = {"type": "http", "method": "GET", "path": "/v2/keypair", "query_string": b"",
             "headers": headers + [(b"authorization", auth.encode())], "client": ("127.0.0.1", 1)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], orjson.loads(sent[1]["body"])


def test_a_network_database_is_never_asked_on_the_event_loop(fresh_database, backend, tmp_path):
    """A secret key not in memory is read inline on SQLite (microseconds), but on
    PostgreSQL on the database thread pool; unknown access keys are remembered
    too, so a stream of them does not cost a query each."""
    app = build_app(Settings(data_dir=tmp_path, database_url=fresh_database()))
    try:
        app.ctx.store.prepare()
        app.ctx.accounts.ensure(f"{AK}:{SK}")
        threads: list[str] = []
        load = app.ctx.accounts.load

        def recording_load(access_key: str):
            threads.append(threading.current_thread().name)
            return load(access_key)

        app.ctx.accounts.load = recording_load
        assert _get(app, AK, SK)[0] == 200
        assert _get(app, AK, SK)[0] == 200  # from memory now
        status, body = _get(app, "AKnobody", SK)
        assert (status, body["code"]) == (403, "InvalidAccessKeyId")
        assert _get(app, "AKnobody", SK)[1]["code"] == "InvalidAccessKeyId"  # from memory too
        assert len(threads) == 2
        if backend == "postgresql":
            assert all(name.startswith("localbcc-db") for name in threads), threads
        else:
            assert threads == [threading.current_thread().name] * 2
    finally:
        app.ctx.close()


def test_unknown_access_keys_cannot_grow_the_cache_without_bound(tmp_path):
    from localbcc.store import accounts as mod
    from localbcc.store.db import Store
    from localbcc.store.urls import sqlite_url

    store = Store(sqlite_url(tmp_path))
    try:
        store.prepare()
        accounts = mod.Accounts(store, FakeClock())
        accounts.ensure(f"{AK}:{SK}")
        assert secret_of(accounts, AK) == SK
        for i in range(mod.CACHE_LIMIT + 100):
            assert secret_of(accounts, f"AKjunk{i}") is None
        assert len(accounts._cache) <= mod.CACHE_LIMIT
        assert accounts._cache[AK][0] == SK  # the real account stays in memory
    finally:
        store.dispose()


def test_of_two_loads_the_later_read_stays(tmp_path, monkeypatch):
    """Loads run on several threads on PostgreSQL: one that read before an
    account was created must not overwrite one that read after."""
    from localbcc.store import accounts as mod
    from localbcc.store.db import Store
    from localbcc.store.urls import sqlite_url

    store = Store(sqlite_url(tmp_path))
    try:
        store.prepare()
        accounts = mod.Accounts(store, FakeClock())
        clock = iter([10.0, 30.0])  # the first load reads at 10, the second at 30
        monkeypatch.setattr(mod, "time", SimpleNamespace(monotonic=lambda: next(clock)))
        late = accounts._cache[AK] = (SK, 20.0)  # a load that read at 20, stored first
        assert accounts.load(AK) == SK  # read at 10 (no account then): the later read wins
        assert accounts._cache[AK] == late
        accounts.ensure(f"{AK}:{SK}")
        assert accounts.load(AK) == SK and accounts._cache[AK] == (SK, 30.0)
    finally:
        store.dispose()
