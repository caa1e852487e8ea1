"""BCE auth v1: canonicalisation, signing and request verification (spec §2).

The canonical request is ``METHOD\\ncanonicalURI\\ncanonicalQuery\\ncanonicalHeaders``;
it is signed with HMAC-SHA256 keyed by the hex *string* of
HMAC-SHA256(secret key, ``bce-auth-v1/{ak}/{timestamp}/{expiration}``).

Choices made where the spec leaves room:

* A header that appears more than once is signed as its values, each trimmed,
  joined by ``,`` (what an HTTP proxy folding them would produce). Neither
  official SDK can send duplicates, so this only has to be deterministic.
* With an explicit signed-headers list only the listed headers are signed
  (the Go SDK lists every header it signs, ``x-bce-*`` ones included). When
  the list is empty the default set applies: ``host``, ``content-md5``,
  ``content-length``, ``content-type`` and every ``x-bce-*`` header.
* ``authorization`` itself is never part of the canonical headers.
* A request is still valid at exactly ``timestamp + expiration``; it expires
  one instant later (``now > timestamp + expiration``).
* Lone surrogates in text are encoded with ``surrogatepass`` so that
  :func:`normalize` is total; no official client can produce them.

Never put a secret key or a whole Authorization header into a message or log.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import math
import re
import string
import time
from functools import lru_cache
from typing import Any, Final, Protocol
from urllib.parse import quote

from localbcc.clock import Clock
from localbcc.errors import BceError, ErrorCode

__all__ = [
    "AUTH_VERSION",
    "DEFAULT_SIGNED_HEADERS",
    "NOT_CACHED",
    "NotCached",
    "Secrets",
    "Verifier",
    "canonical_headers",
    "canonical_query",
    "canonical_uri",
    "format_timestamp",
    "normalize",
    "sign",
    "signing_key",
]

AUTH_VERSION = "bce-auth-v1"
DEFAULT_SIGNED_HEADERS = frozenset({b"host", b"content-md5", b"content-length", b"content-type"})
_BCE_PREFIX = b"x-bce-"
_AUTHORIZATION = b"authorization"

# ---------------------------------------------------------------------------
# normalize

_UNRESERVED = string.ascii_letters + string.digits + "-._~"
_SAFE = "-._~"
_SAFE_SLASH = "-._~/"
# str.translate tables for ASCII text: every reserved ASCII char -> %XX.
_TABLE = {i: "%%%02X" % i for i in range(128) if chr(i) not in _UNRESERVED}
_TABLE_SLASH = {i: v for i, v in _TABLE.items() if i != ord("/")}
_ALL_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*").fullmatch
_ALL_UNRESERVED_SLASH = re.compile(r"[A-Za-z0-9._~/-]*").fullmatch
# Values (header lines: name and value together) longer than this are encoded
# without going through the caches, so their memory stays bounded (4096
# entries x 256 chars at most each).
_CACHE_MAX_LEN = 256


def _encode(value: str | bytes, keep_slash: bool) -> str:
    """Uncached percent-encoding per spec §2 (see :func:`normalize`)."""
    safe = _SAFE_SLASH if keep_slash else _SAFE
    if isinstance(value, bytes):
        if not value.isascii():
            return quote(value, safe)
        text = value.decode("ascii")
    else:
        if not value.isascii():
            return quote(value, safe, encoding="utf-8", errors="surrogatepass")
        text = value
    if (_ALL_UNRESERVED_SLASH if keep_slash else _ALL_UNRESERVED)(text):
        return text
    return text.translate(_TABLE_SLASH if keep_slash else _TABLE)


@lru_cache(maxsize=4096)
def _encode_cached(value: str | bytes) -> str:
    return _encode(value, False)


@lru_cache(maxsize=4096)
def _encode_cached_slash(value: str | bytes) -> str:
    return _encode(value, True)


def normalize(value: str | bytes, keep_slash: bool = False) -> str:
    """Percent-encode the UTF-8 bytes of ``value``: ``A-Za-z0-9-._~`` stay, every
    other byte becomes ``%XX`` (uppercase hex); ``/`` stays too when ``keep_slash``."""
    if len(value) > _CACHE_MAX_LEN:
        return _encode(value, keep_slash)
    return _encode_cached_slash(value) if keep_slash else _encode_cached(value)


# ---------------------------------------------------------------------------
# canonical parts


def canonical_uri(path: str) -> str:
    """The canonical URI of a percent-decoded path: every byte encoded except ``/``."""
    return normalize(path, keep_slash=True)


def canonical_query(pairs: list[tuple[str, str]]) -> str:
    """``enc(k)=enc(v)`` for every decoded pair except ``authorization``; sorted; ``&``-joined."""
    if not pairs:
        return ""
    items = [
        normalize(k) + "=" + normalize(v)
        for k, v in pairs
        if not (len(k) == 13 and k.lower() == "authorization")
    ]
    items.sort()
    return "&".join(items)


def _collect(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Lowercase name -> value (untrimmed); repeated headers: trimmed values joined by ``,``."""
    found = {name.lower(): value for name, value in headers}
    if len(found) != len(headers):
        found = {}
        for name, value in headers:
            name = name.lower()
            value = value.strip()
            found[name] = found[name] + b"," + value if name in found else value
    return found


def _line_uncached(name: bytes, value: bytes) -> str:
    return normalize(name) + ":" + normalize(value)


_line_cached = lru_cache(maxsize=4096)(_line_uncached)


def _header_line(name: bytes, value: bytes) -> str:
    """``enc(name):enc(value)`` for an already trimmed, non-empty value."""
    if len(name) + len(value) > _CACHE_MAX_LEN:  # a cache entry is both
        return _line_uncached(name, value)
    return _line_cached(name, value)


def _canonical_headers(found: dict[bytes, bytes], signed: list[bytes] | None) -> str:
    """Canonical headers from :func:`_collect` output and lowercase signed names."""
    lines = []
    if signed:
        for name in set(signed):
            value = found.get(name)
            if value is not None and name != _AUTHORIZATION:
                value = value.strip()
                if value:
                    lines.append(_header_line(name, value))
    else:
        for name, value in found.items():
            if name in DEFAULT_SIGNED_HEADERS or name.startswith(_BCE_PREFIX):
                value = value.strip()
                if value:
                    lines.append(_header_line(name, value))
    lines.sort()
    return "\n".join(lines)


def canonical_headers(headers: list[tuple[bytes, bytes]], signed: list[str] | None) -> str:
    """Canonical headers of ASGI-style ``headers`` for the ``signed`` names
    (``None`` or empty: the default set). Empty-valued headers are skipped."""
    names = [s.strip().lower().encode("utf-8") for s in signed] if signed else None
    return _canonical_headers(_collect(headers), [n for n in names if n] if names else None)


# ---------------------------------------------------------------------------
# keys and signatures


def signing_key(secret_key: str, auth_prefix: str) -> str:
    """Lowercase hex HMAC-SHA256(secret key, ``bce-auth-v1/{ak}/{timestamp}/{exp}``)."""
    return hmac.digest(secret_key.encode("utf-8"), auth_prefix.encode("utf-8"), "sha256").hex()


# bytes.translate tables XOR-ing every byte with HMAC's ipad / opad.
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


@lru_cache(maxsize=1024)
def _signing_hmac(secret_key: str, auth_prefix: bytes) -> tuple[Any, Any]:
    """Cached HMAC state keyed by the signing key: SHA-256 objects that have
    absorbed ``key ^ ipad`` and ``key ^ opad`` (RFC 2104), to be copied per use
    instead of keying a new HMAC every request (docs/performance.md)."""
    key = signing_key(secret_key, auth_prefix.decode("ascii")).encode("ascii")
    # The 64-byte hex key is exactly SHA-256's block size: no hashing or padding.
    inner = hashlib.sha256(key.translate(_IPAD))
    outer = hashlib.sha256(key.translate(_OPAD))
    return inner, outer


def _hmac_with(state: tuple[Any, Any], message: bytes) -> bytes:
    """HMAC-SHA256 digest of ``message`` under a :func:`_signing_hmac` state."""
    inner = state[0].copy()
    inner.update(message)
    outer = state[1].copy()
    outer.update(inner.digest())
    return outer.digest()


def _canonical_request(
    method: str, path: str, query: list[tuple[str, str]], header_part: str
) -> bytes:
    return "\n".join((method, canonical_uri(path), canonical_query(query), header_part)).encode(
        "utf-8"
    )


def format_timestamp(epoch: float) -> str:
    """UTC ``YYYY-MM-DDTHH:MM:SSZ`` for ``epoch`` seconds (fraction dropped)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.floor(epoch)))


def sign(
    access_key: str,
    secret_key: str,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: list[tuple[bytes, bytes]],
    timestamp: str,
    expiration: int = 1800,
    signed_headers: list[str] | None = None,
) -> str:
    """The full Authorization value for a request, as a client would send it.

    ``signed_headers`` empty/None gives the Python-SDK form (empty field,
    default set); a list gives the Go-SDK form (the names, ``;``-joined).
    """
    prefix = f"{AUTH_VERSION}/{access_key}/{timestamp}/{expiration}"
    key = signing_key(secret_key, prefix).encode("ascii")
    creq = _canonical_request(method, path, query, canonical_headers(headers, signed_headers))
    signature = hmac.digest(key, creq, "sha256").hex()
    return f"{prefix}/{';'.join(signed_headers) if signed_headers else ''}/{signature}"


# ---------------------------------------------------------------------------
# verification

_AUTH_RE = re.compile(
    rb"bce-auth-v1/"
    rb"([\x21-\x2e\x30-\x7e]+)/"  # access key: printable ASCII, no space or '/'
    rb"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)/"
    rb"([0-9]+)/"  # expiration seconds, a non-negative integer
    rb"([\x20-\x2e\x30-\x7e]*)/"  # signed headers, ';'-separated, may be empty
    rb"([0-9a-fA-F]{64})"
)


_NEVER = 2**53  # seconds: the largest integer a float holds exactly


@lru_cache(maxsize=1024)
def _parse_timestamp(value: bytes) -> float | None:
    """Epoch seconds of a ``YYYY-MM-DDTHH:MM:SSZ`` timestamp (format already
    checked by :data:`_AUTH_RE`), None if it is not a real date-time."""
    try:
        when = datetime.datetime(
            int(value[0:4]), int(value[5:7]), int(value[8:10]),
            int(value[11:13]), int(value[14:16]), int(value[17:19]),
            tzinfo=datetime.timezone.utc,
        )
    except ValueError:
        return None
    return when.timestamp()


def _malformed(why: str) -> BceError:
    return BceError(ErrorCode.InvalidHTTPAuthHeader, f"The Authorization header is malformed: {why}.")


class NotCached:
    """The type of :data:`NOT_CACHED`."""


#: What :meth:`Secrets.cached` answers for an access key whose answer is not in memory.
NOT_CACHED: Final = NotCached()


class Secrets(Protocol):
    """Where a :class:`Verifier` finds secret keys (``store/accounts.py``'s ``Accounts``)."""

    def cached(self, access_key: str) -> str | None | NotCached:
        """From memory, without waiting: the secret key, None (no such account),
        or :data:`NOT_CACHED`."""

    async def read(self, access_key: str) -> str | None:
        """The secret key (None: no such account) of one that was not in memory."""


class Verifier:
    """Checks BCE auth v1 signatures of incoming requests (spec §2)."""

    def __init__(self, secrets: Secrets, clock: Clock, max_future_skew: float = 900.0) -> None:
        self._secrets = secrets
        self._clock = clock
        self._max_future_skew = max_future_skew

    async def verify(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: list[tuple[bytes, bytes]],
    ) -> tuple[str, str]:
        """The (access key id, secret key) of a validly signed request, else raise
        :class:`BceError`. ``path`` and ``query`` are percent-decoded; ``headers``
        are ASGI-style.

        One pass: the header is parsed, the account's secret key taken from
        memory (awaited from the database only when it is not there: a request
        whose key is in memory never suspends here), then checked. Errors, in
        order: header form, access key, expiry, signature.
        """
        # 1. The Authorization header: everything that needs no secret key.
        found = _collect(headers)
        raw = found.pop(_AUTHORIZATION, None)
        if raw is None:
            raise BceError(ErrorCode.AccessDenied)
        match = _AUTH_RE.fullmatch(raw.strip())
        if match is None:
            raise _malformed(
                "expected bce-auth-v1/{accessKeyId}/{timestamp}/{expirationSeconds}"
                "/{signedHeaders}/{signature}"
            )
        ak_raw, ts_raw, exp_raw, signed_raw, sig_raw = match.groups()
        issued = _parse_timestamp(ts_raw)
        if issued is None:
            raise _malformed("the timestamp is not a valid UTC date-time")
        try:
            # Beyond 2**53 s every expiration means the same (never, in practice);
            # capped, it compares with a float exactly, compiled or not (a huge
            # int would overflow the conversion to float).
            expiration = min(int(exp_raw), _NEVER)
        except ValueError:  # more digits than int() accepts
            raise _malformed("the expiration is not a valid integer") from None

        # 2. The account's secret key.
        access_key = ak_raw.decode("ascii")
        secret = self._secrets.cached(access_key)
        if isinstance(secret, NotCached):
            secret = await self._secrets.read(access_key)
        if secret is None:
            raise BceError(ErrorCode.InvalidAccessKeyId)

        # 3. Expiry, then the signature.
        now = self._clock.now()
        if now - issued > expiration:
            raise BceError(ErrorCode.RequestExpired, "The request has expired.")
        if issued - now > self._max_future_skew:
            raise BceError(ErrorCode.RequestExpired, "The request timestamp is too far in the future.")

        signed: list[bytes] | None = None
        if signed_raw:
            signed = [n for n in (s.strip().lower() for s in signed_raw.split(b";")) if n]
        creq = _canonical_request(method, path, query, _canonical_headers(found, signed))
        expected = _hmac_with(_signing_hmac(secret, match.string[: match.end(3)]), creq)
        if not hmac.compare_digest(expected, bytes.fromhex(sig_raw.decode("ascii"))):
            raise BceError(ErrorCode.SignatureDoesNotMatch)
        return access_key, secret
