"""HTTP-layer hardening (issue 17): pipelined requests followed by bytes that
are not HTTP, a literal ``+`` in a signed query, access log lines that cannot
be forged, numbers JSON allows but orjson refuses, unguessable request ids."""
from __future__ import annotations

import socket
import time

import orjson
import pytest

from localbcc.auth import format_timestamp, sign

from .rawhttp import JSON_TYPE, UUID4_RE, Reply, assert_envelope, name, request

GARBAGE = b"\x16\x03\x01 this is not HTTP\r\n\r\n"


# -- raw pipelining -------------------------------------------------------------------------

def signed_bytes(server, method: str, path: str, query: str = "", body: bytes = b"") -> bytes:
    """One complete, signed HTTP/1.1 request as bytes (Python SDK form)."""
    ak = next(iter(server.credentials))
    ts = format_timestamp(time.time())
    headers = [("host", server.endpoint), ("x-bce-date", ts), ("content-length", str(len(body)))]
    auth = sign(ak, server.credentials[ak], method, path, [(k, v) for k, _, v in
                (p.partition("=") for p in query.split("&") if p)],
                [(k.encode(), v.encode()) for k, v in headers], ts)
    target = path + (f"?{query}" if query else "")
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return (head + f"authorization: {auth}\r\n\r\n").encode("ascii") + body


def read_until_close(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def split_responses(data: bytes) -> list[Reply]:
    """Every Content-Length framed response in ``data``, in order."""
    replies = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"a truncated response head: {data[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        assert len(rest) >= length, f"a truncated response body: {data[:300]!r}"
        replies.append(Reply(int(lines[0].split()[1]), headers, rest[:length]))
        data = rest[length:]
    return replies


def pipeline(server, data: bytes) -> list[Reply]:
    """Send ``data`` in one send(), read until the server closes, split the answers."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        return split_responses(read_until_close(sock))


def create_body(kp_name: str) -> bytes:
    return orjson.dumps({"name": kp_name})


def keypair_named(server, kp_name: str) -> list[dict]:
    reply = request(server, "GET", "/v2/keypair", f"name={kp_name}")
    assert reply.status == 200, reply
    return [k for k in reply.json()["keypairs"] if k["name"] == kp_name]


def assert_created(reply: Reply, kp_name: str) -> dict:
    assert reply.status == 200, (reply.status, reply.body[:300])
    assert reply.headers["content-type"] == JSON_TYPE
    assert "connection" not in reply.headers  # the 400 after it closes, not this one
    pair = reply.json()["keypair"]
    assert pair["name"] == kp_name and pair["privateKey"].startswith("-----BEGIN")
    return pair


def test_valid_then_garbage_answers_both_in_order(server):
    """The created key pair's answer (with its private key) comes first, then
    the 400 for the bytes that are not HTTP, then the connection closes."""
    kp_name = name()
    replies = pipeline(server, signed_bytes(server, "POST", "/v2/keypair", "create",
                                            create_body(kp_name)) + GARBAGE)
    assert len(replies) == 2, replies
    pair = assert_created(replies[0], kp_name)
    assert_envelope(replies[1], 400, "InvalidHTTPRequest")
    assert replies[1].headers["connection"] == "close"
    assert [k["keypairId"] for k in keypair_named(server, kp_name)] == [pair["keypairId"]]


def test_two_valid_then_garbage_answers_all_three_in_order(server):
    names = [name(), name()]
    data = b"".join(signed_bytes(server, "POST", "/v2/keypair", "create", create_body(n))
                    for n in names)
    replies = pipeline(server, data + GARBAGE)
    assert len(replies) == 3, replies
    for reply, kp_name in zip(replies, names):
        pair = assert_created(reply, kp_name)
        assert [k["keypairId"] for k in keypair_named(server, kp_name)] == [pair["keypairId"]]
    assert_envelope(replies[2], 400, "InvalidHTTPRequest")
    ids = [r.headers["x-bce-request-id"] for r in replies]
    assert len(set(ids)) == 3


def test_valid_then_request_with_a_broken_body_is_never_run(server):
    """The second request's headers parse but its chunked body does not: the
    first is answered, the second is not run, and the 400 closes."""
    first, second = name(), name()
    broken = signed_bytes(server, "POST", "/v2/keypair", "create", b"")
    broken = broken.replace(b"content-length: 0\r\n", b"transfer-encoding: chunked\r\n")
    data = (signed_bytes(server, "POST", "/v2/keypair", "create", create_body(first))
            + broken + b"zz\r\n" + create_body(second) + b"\r\n0\r\n\r\n")
    replies = pipeline(server, data)
    assert len(replies) == 2, replies
    assert_created(replies[0], first)
    assert_envelope(replies[1], 400, "InvalidHTTPRequest")
    assert keypair_named(server, second) == []


def test_garbage_alone_still_gets_its_400_at_once(server):
    started = time.monotonic()
    replies = pipeline(server, GARBAGE)
    assert len(replies) == 1
    assert_envelope(replies[0], 400, "InvalidHTTPRequest")
    assert time.monotonic() - started < 2


def test_garbage_after_answered_requests_on_a_kept_alive_connection(server):
    """The usual case: earlier requests already answered when garbage arrives."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(signed_bytes(server, "GET", "/v2/keypair", "maxKeys=1"))
        sock.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data or len(split_or_none(data)) < 1:
            data += sock.recv(65536)
        sock.sendall(GARBAGE)
        data += read_until_close(sock)
    replies = split_responses(data)
    assert [r.status for r in replies] == [200, 400]
    assert_envelope(replies[1], 400, "InvalidHTTPRequest")


def split_or_none(data: bytes) -> list[Reply]:
    try:
        return split_responses(data)
    except (AssertionError, KeyError, ValueError):
        return []


# -- JSON that orjson refuses but RFC 8259 allows ---------------------------------------------

BIG = b"1" + b"0" * 400  # an integer literal beyond a double's range


@pytest.mark.parametrize("extra", [b"1e400", b"-1e400", b"1E+999", b"[1e400, {\"a\": -1e999}]",
                                   BIG, b"0.5e400", b"123456789012345678901234567890"])
def test_out_of_range_number_in_an_unknown_field_is_ignored(server, extra):
    kp_name = name()
    raw = b'{"name": "' + kp_name.encode() + b'", "unknownField": ' + extra + b"}"
    reply = request(server, "POST", "/v2/keypair", "create", raw)
    assert reply.status == 200, (reply.status, reply.body[:300])
    assert reply.json()["keypair"]["name"] == kp_name


@pytest.mark.parametrize("path, query, field, base", [
    ("/v2/keypair", "create", "name", {}),
    ("/v2/keypair", "import", "publicKey", {"name": "n"}),
    ("/v2/instance", "", "purchaseCount", {"imageId": "m-Ubt2204a"}),
    ("/v2/instance", "", "cpuCount", {"imageId": "m-Ubt2204a"}),
])
def test_out_of_range_number_in_a_known_field_is_that_fields_usual_error(server, path, query,
                                                                         field, base):
    def answer(value: bytes) -> tuple[int, str]:
        raw = orjson.dumps(base)[:-1] + (b"," if base else b"") + f'"{field}": '.encode() + value + b"}"
        reply = request(server, "POST" if query != "import" else "PUT", path, query, raw)
        return reply.status, assert_envelope(reply, reply.status, reply.code)["code"]

    usual = answer(b"1.5")
    assert usual[0] == 400 and usual[1] != "MalformedJSON"
    for value in (b"1e400", b"-1e400", BIG):
        assert answer(value) == usual, value


@pytest.mark.parametrize("raw", [
    b'{"name": NaN}', b'{"name": Infinity}', b'{"name": -Infinity}',
    b'{"x": 1e400, "name": NaN}',          # what is not JSON stays refused beside a big number
    b'{"x": 1e400, "name": "\\ud800"}',   # a lone surrogate escape, as orjson refuses it
    b'{"x": 1e400, "name": "a",}', b'{"x": 1e400} trailing', b'\xef\xbb\xbf{"x": 1e400}',
    b'{"x": 1e400, "name": "\xff"}', b'{"x": 1e400, "name": "\xed\xa0\x80"}',
    b'{"x": 1e400, "y": 01}', b'{"x": 1e400, "y": 1.}', b"[" * 3000 + b"1e400" + b"]" * 3000,
])
def test_what_is_not_json_is_still_malformed(server, raw):
    assert_envelope(request(server, "POST", "/v2/keypair", "create", raw), 400, "MalformedJSON")


def test_request_json_fallback_reads_numbers_as_orjson_does():
    from localbcc.api.request import Request
    from localbcc.errors import BceError

    def parse(raw: bytes):
        return Request("POST", "/v2/keypair", {}, "rid", body=raw).json()

    doc = parse(b'{"a": 1e400, "b": 18446744073709551615, "c": 18446744073709551616, '
                b'"d": -9223372036854775808, "e": 1.5, "f": "\\ud83d\\ude00", "g": [null, true]}')
    assert doc == {"a": float("inf"), "b": 18446744073709551615, "c": 18446744073709551616.0,
                   "d": -9223372036854775808, "e": 1.5, "f": "\U0001f600", "g": [None, True]}
    assert type(doc["c"]) is float  # as orjson makes it, fallback or not
    assert orjson.loads(b"18446744073709551616") == doc["c"]
    assert parse(b"[" + b"9" * 5000 + b", 1e400]") == [float("inf")] * 2  # no int() digit limit
    with pytest.raises(BceError) as info:
        parse(b'{"a": 1e400, "b": NaN}')
    assert info.value.code.name == "MalformedJSON"


# -- request ids --------------------------------------------------------------------------

def test_request_ids_are_random_version_4_uuids(server):
    """Spec §1: a fresh UUID4 per response. Until issue 17 they were a fixed
    per-process prefix and a counter: guessable. 1,000 requests on one
    connection: all distinct, UUID4, and consecutive ids share no prefix and
    are not a small step apart."""
    import http.client

    conn = http.client.HTTPConnection(server.endpoint, timeout=10)
    ids = []
    try:
        for _ in range(1000):
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            ids.append(resp.getheader("x-bce-request-id"))
    finally:
        conn.close()
    assert all(UUID4_RE.match(rid) for rid in ids), ids[:3]
    assert len(set(ids)) == len(ids)
    digits = [rid.replace("-", "") for rid in ids]
    for a, b in zip(digits, digits[1:]):
        assert a[:8] != b[:8] or a[8:20] != b[8:20], (a, b)  # no shared prefix
        assert abs(int(a, 16) - int(b, 16)) > 1 << 64, (a, b)  # not a counter
    # every hex digit that is not the version or variant varies
    positions = [i for i in range(32) if len({d[i] for d in digits}) > 1]
    assert positions == [i for i in range(32) if i != 12]


def test_a_forked_child_makes_other_ids_than_its_parent():
    """The ids' random bytes are read in batches: a child must not inherit the
    parent's unused ones (the next ids of both would be the same)."""
    import os

    from localbcc.api.app import _request_id

    _request_id()  # the parent has a batch now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.write(write, "".join(_request_id() for _ in range(3)).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode()
    parent = "".join(_request_id() for _ in range(3))
    assert len(child) == len(parent) == 3 * 36 and child != parent
    assert not {child[i:i + 36] for i in (0, 36, 72)} & {parent[i:i + 36] for i in (0, 36, 72)}


def test_request_id_is_a_canonical_uuid4():
    import uuid

    from localbcc.api.app import _request_id

    ids = [_request_id() for _ in range(3000)]  # across several batches
    assert len(set(ids)) == len(ids)
    for rid in ids:
        parsed = uuid.UUID(rid)
        assert str(parsed) == rid and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_body_nested_too_deeply_for_the_request_hash_is_a_400(server):
    """orjson reads 1024 levels of nesting but writes only 255: the clientToken
    hash of a create instance body (the whole body) with a deep unknown field
    was a 500 InternalError."""
    def create(depth: int) -> Reply:
        raw = (b'{"imageId": "m-Ubt2204a", "unknownField": ' + b"[" * depth + b"1"
               + b"]" * depth + b"}")
        return request(server, "POST", "/v2/instance", "", raw)

    body = assert_envelope(create(300), 400, "InappropriateJSON")
    assert "nested too deeply" in body["message"]
    assert create(200).status == 200
