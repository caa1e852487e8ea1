"""Accounts: access key → secret key, cached for signature checks."""
from __future__ import annotations

import logging
import re
import secrets
import threading
import time

from ..auth import NOT_CACHED, NotCached
from ..clock import Clock
from .db import Store

log = logging.getLogger("localbcc")


def new_credentials() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(16)


#: Seconds a secret key read from the database is used before it is read
#: again: a server started with --credentials that replace an account's
#: secret is followed by the other servers on the database within this time.
#: An access key found to be unknown is looked up again after as long.
SECRET_TTL = 5.0
#: Cached answers beyond which the expired ones are dropped, and if that is not
#: enough, the unknown access keys: a client may send any number of them.
CACHE_LIMIT = 4096


class Accounts:
    def __init__(self, store: Store, clock: Clock):
        self.store = store
        self.clock = clock
        # access key -> (secret key or None: no such account, when it was read).
        # Loads run on several threads (PostgreSQL's pool): they change it under
        # the lock; the lookups on the event loop only read it.
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def cached(self, access_key: str) -> str | None | NotCached:
        """Every signed request asks (``auth.Verifier``), so an answer is served
        from memory for SECRET_TTL seconds: the secret key, or None (no such
        account); else NOT_CACHED, and the verifier awaits :meth:`read`."""
        cached = self._cache.get(access_key)
        if cached is not None and time.monotonic() < cached[1] + SECRET_TTL:
            return cached[0]
        if len(access_key) > 128:  # no account has one
            return None
        return NOT_CACHED

    async def read(self, access_key: str) -> str | None:
        """An answer not in memory, asked of the database (which sees accounts
        other processes or `localbcc account create` added) with :meth:`load`:
        SQLite inline, a network database on the unit of work's thread pool,
        never on the event loop."""
        if self.store.is_sqlite:
            return self.load(access_key)
        result: str | None = await self.store.unit.run(self.load, access_key)
        return result

    def load(self, access_key: str) -> str | None:
        """Read an account's secret key (None: no such account) into memory,
        and return it. Of two loads of one key, the later read stays."""
        read_at = time.monotonic()
        with self.store.read() as tx:
            secret = tx.secret_of(access_key)
        with self._lock:
            cached = self._cache.get(access_key)
            if cached is not None and cached[1] > read_at:
                return cached[0]
            if len(self._cache) >= CACHE_LIMIT:
                fresh = {k: v for k, v in self._cache.items() if read_at < v[1] + SECRET_TTL}
                if len(fresh) >= CACHE_LIMIT // 2:
                    fresh = {k: v for k, v in fresh.items() if v[0] is not None}
                self._cache = fresh
            self._cache[access_key] = (secret, read_at)
        return secret

    def ensure(self, credentials: str | None) -> tuple[str, str]:
        """Store LOCALBCC_CREDENTIALS accounts (or create a default one on first
        start) and return the default account's (access key, secret key)."""
        pairs = parse_credentials(credentials) if credentials else []
        with self.store.write() as tx:
            tx.serialize("accounts")  # servers starting together add each account once
            for ak, sk in pairs:
                if tx.secret_of(ak) not in (None, sk):
                    log.info("account %s: secret key replaced by the one in --credentials", ak)
                tx.put_account(ak, sk, self.clock.now())
            if pairs:
                return pairs[0]
            existing = tx.list_accounts()
            if existing:
                return existing[0][0], existing[0][1]
            ak, sk = new_credentials()
            tx.put_account(ak, sk, self.clock.now())
            return ak, sk

    def create(self, access_key: str | None = None, secret_key: str | None = None) -> tuple[str, str]:
        """A new account: the keys given (checked by :func:`check_credentials`),
        else generated ones. An access key that exists is a ValueError."""
        generated = new_credentials()
        ak, sk = access_key or generated[0], secret_key or generated[1]
        if access_key or secret_key:
            check_credentials(ak, sk, "account create")
        with self.store.write() as tx:
            if tx.secret_of(ak) is not None:
                raise ValueError(f"account create: access key {ak!r} already exists")
            tx.put_account(ak, sk, self.clock.now())
        return ak, sk

    def list(self) -> list[tuple[str, str, float]]:
        with self.store.read() as tx:
            return tx.list_accounts()


#: The shortest secret key the SDKs can use: they encrypt ``adminPass`` with
#: AES-128 keyed by its first 16 bytes (bcc-instances-more.md §4).
MIN_SECRET_KEY = 16
_ACCESS_KEY_RE = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no space
_SECRET_KEY_RE = re.compile(r"[\x21-\x7e]{%d,128}" % MIN_SECRET_KEY)


def check_credentials(access_key: str, secret_key: str, where: str) -> None:
    """Refuse an account no client could use, before anything is stored: an
    access key that cannot stand in a ``bce-auth-v1/{accessKeyId}/...`` header
    (a space, a ``/``; ``,`` and ``:`` would not survive AK1:SK1,AK2:SK2), or a
    secret key too short for the SDKs' adminPass encryption."""
    if not _ACCESS_KEY_RE.fullmatch(access_key) or any(c in access_key for c in "/,:"):
        raise ValueError(f"{where}: access key {access_key[:32]!r} cannot sign requests: use 1-128 "
                         f"printable ASCII characters without spaces, '/', ',' or ':'")
    if not _SECRET_KEY_RE.fullmatch(secret_key) or "," in secret_key:
        raise ValueError(f"{where}: the secret key of {access_key!r} must be {MIN_SECRET_KEY}-128 "
                         f"printable ASCII characters without spaces or ',' (the SDKs encrypt "
                         f"adminPass with its first {MIN_SECRET_KEY} bytes)")


def parse_credentials(text: str) -> list[tuple[str, str]]:
    """``AK1:SK1,AK2:SK2`` → [(AK1, SK1), (AK2, SK2)]; each access key once,
    each pair usable by the SDKs (:func:`check_credentials`)."""
    where = "--credentials (LOCALBCC_CREDENTIALS)"
    pairs: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        ak, sep, sk = item.partition(":")
        if not sep or not ak or not sk:
            raise ValueError(f"{where} entry {ak or item[:8]!r}... is not ACCESS_KEY:SECRET_KEY")
        check_credentials(ak, sk, where)
        if ak in pairs:  # which secret would be in force is anybody's guess
            raise ValueError(f"{where} names access key {ak!r} twice")
        pairs[ak] = sk
    return list(pairs.items())
