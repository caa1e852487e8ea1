"""Accounts: access key → secret key, cached for signature checks."""
from __future__ import annotations

import logging
import secrets
import time

from ..clock import Clock
from .db import Store

log = logging.getLogger("localbcc")


def new_credentials() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(16)


#: Seconds a secret key read from the database is used before it is read
#: again: a server started with --credentials that replace an account's
#: secret is followed by the other servers on the database within this time.
SECRET_TTL = 5.0


class Accounts:
    def __init__(self, store: Store, clock: Clock):
        self.store = store
        self.clock = clock
        self._cache: dict[str, tuple[str, float]] = {}  # access key -> (secret, read again after)

    def secret_of(self, access_key: str) -> str | None:
        """Every signed request asks, so a secret is served from memory for
        SECRET_TTL seconds; a miss asks the database, which sees accounts other
        processes or `localbcc account create` added."""
        cached = self._cache.get(access_key)
        now = time.monotonic()
        if cached is not None and now < cached[1]:
            return cached[0]
        if len(access_key) > 128:
            return None
        with self.store.read() as tx:
            secret = tx.secret_of(access_key)
        if secret is None:
            self._cache.pop(access_key, None)
        else:
            self._cache[access_key] = (secret, now + SECRET_TTL)
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

    def create(self) -> tuple[str, str]:
        ak, sk = new_credentials()
        with self.store.write() as tx:
            tx.put_account(ak, sk, self.clock.now())
        return ak, sk

    def list(self) -> list[tuple[str, str, float]]:
        with self.store.read() as tx:
            return tx.list_accounts()


def parse_credentials(text: str) -> list[tuple[str, str]]:
    """``AK1:SK1,AK2:SK2`` → [(AK1, SK1), (AK2, SK2)]; each access key once."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        ak, sep, sk = item.partition(":")
        if not sep or not ak or not sk or len(ak) > 128 or len(sk) > 128:
            raise ValueError(f"--credentials (LOCALBCC_CREDENTIALS) entry {ak or item[:8]!r}... "
                             f"is not ACCESS_KEY:SECRET_KEY")
        if ak in pairs:  # which secret would be in force is anybody's guess
            raise ValueError(f"--credentials (LOCALBCC_CREDENTIALS) names access key {ak!r} twice")
        pairs[ak] = sk
    return list(pairs.items())
