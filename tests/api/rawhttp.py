"""Raw, signed HTTP requests (localbcc.auth.sign + http.client) and SDK error helpers.

For what the SDK cannot send: bare flags, odd bodies, chunked uploads, broken or
expired signatures, the Go SDK's explicit signed-headers form.
"""
from __future__ import annotations

import base64
import http.client
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl, unquote

import orjson
import pytest
from baidubce.exception import BceHttpClientError, BceServerError
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from localbcc.auth import format_timestamp, sign

JSON_TYPE = "application/json;charset=UTF-8"
UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lowercase names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def code(self) -> str | None:
        return self.json().get("code") if self.body else None


def query_pairs(query: str) -> list[tuple[str, str]]:
    """The pairs the server decodes from a raw query string, to sign: percent-
    decoding as RFC 3986 says, so a literal ``+`` is a ``+`` (parse_qsl alone
    would make it a space, as HTML forms do)."""
    return parse_qsl(query.replace("+", "%2B"), keep_blank_values=True) if query else []


def request(server, method: str, path: str, query: str = "", body: bytes | str | None = None, *,
            access_key: str | None = None, secret_key: str | None = None,
            headers: dict[str, str] | None = None, signed_headers: list[str] | None = None,
            timestamp: float | None = None, expiration: int = 1800,
            authorization: str | None = None, unsigned: bool = False,
            chunks: Iterable[bytes] | None = None, timeout: float = 10.0) -> Reply:
    """Send one request. ``query`` is the raw (already encoded) query string, so
    ``attach`` and ``attach=`` can both be sent. Signed as the Python SDK does
    (empty signed-headers field, x-bce-date) unless ``signed_headers`` is given
    (Go SDK form). ``chunks`` sends a chunked body instead of ``body``."""
    ak = access_key or next(iter(server.credentials))
    sk = secret_key if secret_key is not None else server.credentials.get(ak, "nope")
    if isinstance(body, str):
        body = body.encode("utf-8")
    ts = format_timestamp(time.time() if timestamp is None else timestamp)
    hdrs = {"Host": server.endpoint, "x-bce-date": ts}
    if chunks is not None:
        hdrs["Transfer-Encoding"] = "chunked"
    elif body is not None:
        hdrs["Content-Length"] = str(len(body))
    hdrs.update(headers or {})
    if authorization is not None:
        hdrs["Authorization"] = authorization
    elif not unsigned:
        header_list = [(k.lower().encode(), v.encode()) for k, v in hdrs.items()
                       if k.lower() != "transfer-encoding"]
        hdrs["Authorization"] = sign(ak, sk, method, unquote(path), query_pairs(query), header_list, ts,
                                     expiration, signed_headers)
    url = path + ("?" + query if query else "")
    conn = http.client.HTTPConnection(server.endpoint, timeout=timeout)
    try:
        conn.putrequest(method, url, skip_host=True, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        try:
            if chunks is not None:
                for chunk in chunks:
                    conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                conn.send(b"0\r\n\r\n")
            elif body:
                conn.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (413) and closed; read what it said
        resp = conn.getresponse()
        data = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def assert_envelope(reply: Reply, status: int, code: str) -> dict:
    """An error answer: status, code, the three fields, requestId = x-bce-request-id."""
    assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.headers["content-type"] == JSON_TYPE
    rid = reply.headers["x-bce-request-id"]
    assert UUID4_RE.match(rid), rid
    doc = reply.json()
    assert doc["code"] == code, doc
    assert doc["requestId"] == rid
    assert isinstance(doc["message"], str) and doc["message"]
    return doc


# -- SDK errors -------------------------------------------------------------------------

def sdk_error(fn: Callable[..., Any], *args, **kwargs) -> BceServerError:
    """Call an SDK method that must fail with a server error; return that error."""
    with pytest.raises((BceHttpClientError, BceServerError)) as info:
        fn(*args, **kwargs)
    err = info.value
    if isinstance(err, BceHttpClientError):
        err = err.last_error
    assert isinstance(err, BceServerError), repr(err)
    return err


def expect(status: int, code: str, fn: Callable[..., Any], *args, **kwargs) -> BceServerError:
    err = sdk_error(fn, *args, **kwargs)
    assert (err.status_code, err.code) == (status, code), (err.status_code, err.code, str(err))
    assert UUID4_RE.match(err.request_id), err.request_id
    return err


# -- test data ----------------------------------------------------------------------------

def name(prefix: str = "kp") -> str:
    """A random, valid key pair name (the shared server is shared)."""
    return f"{prefix}-{secrets.token_hex(5)}"


def ed25519_line(comment: str | None = None) -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}" if comment else line


def ecdsa_key(curve=ec.SECP256R1):
    return ec.generate_private_key(curve()).public_key()


def openssh_of(public_key) -> str:
    return public_key.public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode()


def blob_of(openssh: str) -> bytes:
    return base64.b64decode(openssh.split()[1])
