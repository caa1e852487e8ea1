"""Helpers for the reliability tests: raw signed requests and SDK error codes.

The SDK is the client wherever it can express the request; these helpers are
for what it cannot: tampered signatures, raw sockets, partial bodies.
"""
from __future__ import annotations

import http.client
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable

import orjson
from baidubce.exception import BceHttpClientError, BceServerError

from localbcc.auth import format_timestamp, sign

from ..api.rawhttp import Reply, query_pairs  # noqa: E402  (one reply type for raw requests)
from ..waiting import wait_until  # noqa: E402

ENVELOPE_KEYS = {"requestId", "code", "message"}


def auth_headers(server, method: str, path: str, query: str = "", body: bytes | None = None, *,
                 access_key: str | None = None, secret_key: str | None = None,
                 timestamp: float | None = None, expiration: int = 1800,
                 extra: dict[str, str] | None = None,
                 signed_headers: list[str] | None = None) -> dict[str, str]:
    """Headers (Authorization included) for a request signed the Python SDK's way."""
    ak = access_key or next(iter(server.credentials))
    sk = secret_key if secret_key is not None else server.credentials[ak]
    ts = format_timestamp(time.time() if timestamp is None else timestamp)
    headers = {"host": server.endpoint, "x-bce-date": ts}
    if body is not None:
        headers["content-length"] = str(len(body))
    headers.update(extra or {})
    pairs = query_pairs(query)
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    headers["authorization"] = sign(ak, sk, method, path, pairs, raw, ts, expiration, signed_headers)
    return headers


def send(server, method: str, path: str, query: str = "", body: bytes | None = None, *,
         headers: dict[str, str] | None = None, timeout: float = 10.0, **sign_kw) -> Reply:
    """One request over http.client; signed unless ``headers`` are given whole."""
    if headers is None:
        headers = auth_headers(server, method, path, query, body, **sign_kw)
    conn = http.client.HTTPConnection(server.endpoint, timeout=timeout)
    try:
        conn.putrequest(method, path + (f"?{query}" if query else ""), skip_host=True,
                        skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def raw_request(method: str, target: str, headers: dict[str, str] | list[tuple[str, str]],
                body: bytes = b"") -> bytes:
    items = headers.items() if isinstance(headers, dict) else headers
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in items) + "\r\n"
    return head.encode("latin-1") + body


def read_response(sock: socket.socket, timeout: float = 10.0) -> Reply:
    """Read one HTTP/1.1 response (Content-Length framed) from a raw socket."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full response head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Reply(status, headers, rest[:length])


def raw_exchange(server, data: bytes, timeout: float = 10.0) -> Reply:
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock, timeout)


def assert_envelope(reply: Reply) -> dict:
    """An error answer is the BCE envelope, and its requestId is the header's."""
    assert reply.headers.get("content-type", "").startswith("application/json"), reply
    body = reply.json()
    assert set(body) >= ENVELOPE_KEYS, body
    assert body["requestId"] == reply.headers["x-bce-request-id"], (body, reply.headers)
    return body


def sdk_error(fn: Callable, *args, **kwargs) -> tuple[int, str, str]:
    """(status, code, message) of the BCE error an SDK call raises."""
    try:
        fn(*args, **kwargs)
    except BceHttpClientError as exc:  # the SDK wraps server errors after its retries
        err = exc.last_error
        assert isinstance(err, BceServerError), repr(err)
        return err.status_code, err.code, str(err)
    except BceServerError as err:
        return err.status_code, err.code, str(err)
    raise AssertionError(f"{getattr(fn, '__name__', fn)} succeeded")


def openssh_ed25519(comment: str = "") -> str:
    """A fresh ed25519 public key in OpenSSH one-line form (fast to make)."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode("ascii")
    return f"{line} {comment}" if comment else line


def metrics(server) -> dict[str, float]:
    """GET /metrics, as {series with labels: value}."""
    import urllib.request

    with urllib.request.urlopen(f"http://{server.endpoint}/metrics", timeout=5) as resp:
        text = resp.read().decode("utf-8")
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            found[series] = float(value)
    return found


def in_flight(server) -> float:
    return next(v for k, v in metrics(server).items() if k.startswith("localbcc_requests_in_flight"))


def port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def database_url(server) -> str:
    """The server's database as a SQLAlchemy URL, to check state in SQL."""
    from localbcc.store.urls import normalize_url, sqlite_url

    if server.database_url:
        return normalize_url(server.database_url)
    return sqlite_url(server.data_dir.resolve())
