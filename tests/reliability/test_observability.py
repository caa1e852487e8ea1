"""The access log line, GET /metrics (loopback only unless --metrics-public)
and the protocol-level envelopes. Budget: about 3 s."""
from __future__ import annotations

import asyncio
import re
import urllib.request
from urllib.parse import quote

import orjson
import pytest
from baidubce.exception import BceHttpClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from localbcc.api.accesslog import AccessLog, quote as quote_value
from localbcc.api.metrics import BOUNDS, Metrics
from localbcc.config import Settings
from localbcc.server import build_app

from .helpers import assert_envelope, metrics, openssh_ed25519, raw_exchange, sdk_error, wait_until

ACCESS_FIELDS = ["request_id", "ak", "method", "path", "flag", "op", "status", "code", "ms"]
_MARK = " INFO localbcc.access "
# logfmt as docs/reliability.md states it: name=value, one space between; a
# bare value is printable ASCII without space, '"', '=' or '\'; any other is
# double-quoted with Python's backslash escapes (\" for a quote).
_FIELD = re.compile(r'([a-z_]+)=([!#-<>-\[\]-~]+|"(?:[^"\\\x00-\x1f\x7f-\uffff]|\\.)*")(?: |$)')


def parse_access_line(line: str) -> list[tuple[str, str]] | None:
    """The (name, value) fields of an access log line, in order; None for
    another kind of line. Fails on anything that is not exactly logfmt."""
    at = line.find(_MARK)
    if at < 0:
        return None
    rest, pos, fields = line[at + len(_MARK):], 0, []
    while pos < len(rest):
        m = _FIELD.match(rest, pos)
        assert m, f"not logfmt at {pos}: {rest!r}"
        name, raw = m.groups()
        if raw.startswith('"'):
            raw = raw[1:-1].encode("ascii").decode("unicode_escape")
        fields.append((name, raw))
        pos = m.end()
    return fields


def _access_lines(server) -> dict[str, dict]:
    found = {}
    for line in server.log_path.read_text("utf-8", "replace").splitlines():
        fields = parse_access_line(line)
        if fields and [name for name, _ in fields] == ACCESS_FIELDS:
            entry = dict(fields)
            found[entry.pop("request_id")] = entry
    return found


def test_access_log_has_one_structured_line_per_request(server):
    ak = list(server.credentials)[1]
    client = server.client(ak)
    answer = client.import_keypair(keypair_name="logged", public_key=openssh_ed25519())
    rid = answer.metadata.bce_request_id
    try:
        client.rename_keypair("k-00000000", "x")
        raise AssertionError("renamed a key pair that does not exist")
    except BceHttpClientError as exc:
        err = exc.last_error
    status, code = err.status_code, err.code
    entry = wait_until(lambda: _access_lines(server).get(err.request_id), 5, "the access log line")
    assert entry["ak"] == ak and entry["op"] == "rename_keypair"
    assert (entry["method"], entry["path"], entry["flag"]) == ("PUT", "/v2/keypair/k-00000000", "rename")
    assert (int(entry["status"]), entry["code"]) == (status, code) == (404, "Keypair.KeypairNotExist")
    assert float(entry["ms"]) >= 0
    entry = _access_lines(server)[rid]  # the request id the client saw
    assert (entry["ak"], entry["op"], entry["flag"], entry["status"]) == (ak, "import_keypair", "import", "200")
    # a request that fails authentication is logged without an account
    reply = raw_exchange(server, f"GET /v2/keypair HTTP/1.1\r\nHost: {server.endpoint}\r\n\r\n".encode())
    rid = assert_envelope(reply)["requestId"]
    entry = wait_until(lambda: _access_lines(server).get(rid), 5, "the access log line")
    assert (entry["ak"], entry["status"], entry["code"]) == ("-", "403", "AccessDenied")


def test_log_lines_escape_control_characters(server):
    reply = raw_exchange(server, f"GET /v2/key%0Apair%0D HTTP/1.1\r\nHost: {server.endpoint}\r\n\r\n".encode())
    rid = assert_envelope(reply)["requestId"]
    entry = wait_until(lambda: _access_lines(server).get(rid), 5, "the access log line")
    assert entry["path"] == "/v2/key\npair\r"  # one line (escaped, quoted), no forged second line


@pytest.mark.parametrize("path", [
    "/v2/x status=200 ak=evil",
    '/v2/x" status=200 ak="evil',
    "/v2/x\\\" status=200 ak=evil",
    "/v2/x\r\n2026-01-01 00:00:00,000 INFO localbcc.access request_id=x ak=evil status=200",
    "/v2/键 =\t\x00\x7f\u2028",
    "/v2/",
])
def test_access_log_lines_cannot_be_forged(server, path):
    """issue 17: a path with spaces planted fake fields. Every value that is not
    plain printable ASCII is quoted and escaped: the line parses into exactly
    the fields logged, and the path comes back as it was received."""
    target = quote(path, safe="/")
    reply = raw_exchange(server, f"GET {target} HTTP/1.1\r\nHost: {server.endpoint}\r\n\r\n".encode())
    rid = assert_envelope(reply)["requestId"]
    entry = wait_until(lambda: _access_lines(server).get(rid), 5, "the access log line")
    assert entry["path"] == path
    assert (entry["ak"], entry["status"], entry["code"]) == ("-", "403", "AccessDenied")
    lines = [line for line in server.log_path.read_text("utf-8").splitlines() if rid in line]
    assert len(lines) == 1 and lines[0].isascii() and lines[0].isprintable()
    assert [name for name, _ in parse_access_line(lines[0])] == ACCESS_FIELDS


_FLAGS = st.sampled_from(["-", "attach", "rename", "updateDesc"])
_OPS = st.sampled_from(["none", "get_keypair", "openapi_json"])
_CODES = st.sampled_from(["OK", "AccessDenied", "Keypair.KeypairNotExist"])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12), st.text(max_size=12), st.text(max_size=40), _FLAGS, _OPS, _CODES)
def test_every_access_log_line_parses_into_its_fields(ak, method, path, flag, op, code):
    """Whatever a client's bytes put in the access key, method or path (the
    others are the server's own: test_the_servers_own_values_never_need_quotes),
    the line parses back into exactly its fields and values."""
    import io
    import sys

    from localbcc.api.app import _request_id

    rid = _request_id()
    out, old = io.StringIO(), sys.stderr
    sys.stderr = out
    try:
        AccessLog().add(rid, ak, method, path, flag, op, 200, code, 1.5)  # no loop: written at once
    finally:
        sys.stderr = old
    line = out.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1 and "\r" not in line
    assert line.isascii() and line[:-1].isprintable()
    assert parse_access_line(line[:-1]) == list(zip(ACCESS_FIELDS, [rid, ak, method, path, flag,
                                                                    op, "200", code, "1.50"]))


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_quote_round_trips(value):
    quoted = quote_value(value)
    assert quoted.isascii() and quoted.isprintable()
    if quoted.startswith('"'):
        body = quoted[1:-1]
        assert '"' not in body.replace('\\\\', "").replace('\\"', "")
        assert body.encode("ascii").decode("unicode_escape") == value
    else:
        assert quoted == value and value and " " not in value and "=" not in value


def test_the_servers_own_values_never_need_quotes():
    """The access log checks only the fields a client's bytes reach (access
    key, method, path); every other one must be plain by construction."""
    from localbcc.api.app import _PUBLIC, _request_id
    from localbcc.api.routes import ALL_FLAGS, ROUTES
    from localbcc.errors import ErrorCode

    ours = {_request_id() for _ in range(100)} | set(ALL_FLAGS) | {"-", "none"}
    ours |= {handler.__name__ for table in ROUTES.values() for handler in table.values()}
    ours |= {path.strip("/").replace(".", "_") for path in _PUBLIC}  # their operation names
    ours |= {code.wire for code in ErrorCode} | {"OK"}
    assert all(quote_value(value) == value for value in ours), \
        sorted(v for v in ours if quote_value(v) != v)


def test_plain_values_are_not_quoted():
    """The cheap case: ids, access keys, paths and codes as they usually are."""
    assert [quote_value(v) for v in ("/v2/keypair/k-AbC12345", "AK-1_a.b", "-", "GET",
                                     "Keypair.KeypairNotExist", "a:b@c,d;e+f~g(h)*'!$&?#[x]%41")] == \
        ["/v2/keypair/k-AbC12345", "AK-1_a.b", "-", "GET", "Keypair.KeypairNotExist",
         "a:b@c,d;e+f~g(h)*'!$&?#[x]%41"]
    assert [quote_value(v) for v in ("", "a b", 'a"b', "a=b", "a\\b", "é", "\n")] == \
        ['""', '"a b"', '"a\\"b"', '"a=b"', '"a\\\\b"', '"\\xe9"', '"\\n"']


def test_metrics_count_requests_by_operation_and_code(server):
    client = server.client()
    before = metrics(server)
    for _ in range(3):
        client.list_images()
    sdk_error(client.get_image, "m-nope0000")
    after = metrics(server)

    def count(m, op, code):
        return sum(v for k, v in m.items() if k.startswith("localbcc_requests_total{")
                   and f'operation="{op}"' in k and f'code="{code}"' in k)

    assert count(after, "list_images", "OK") - count(before, "list_images", "OK") == 3
    assert count(after, "get_image", "NoSuchObject") - count(before, "get_image", "NoSuchObject") == 1
    # histogram: cumulative buckets, +Inf equals the count
    series = {k: v for k, v in after.items() if k.startswith("localbcc_request_duration_seconds_bucket{")
              and 'operation="list_images"' in k and 'code="OK"' in k}
    values = [series[k] for k in sorted(series, key=lambda k: float(k.split('le="')[1].split('"')[0]
                                                                     .replace("+Inf", "inf")))]
    assert len(values) == len(BOUNDS) + 1 and values == sorted(values)
    total = next(v for k, v in after.items() if k.startswith("localbcc_request_duration_seconds_count{")
                 and 'operation="list_images"' in k and 'code="OK"' in k)
    assert values[-1] == total >= 3


def test_metrics_render_matches_observations():
    m = Metrics()
    m.observe("attach_keypair", "OK", 0.0004)
    m.observe("attach_keypair", "OK", 0.003)
    m.observe("attach_keypair", "Keypair.KeypairNotExist", 99.0)
    text = m.render().decode()
    assert 'localbcc_requests_total{operation="attach_keypair",status="200",code="OK"' in text
    assert 'status="404",code="Keypair.KeypairNotExist"' in text
    assert re.search(r'_bucket\{operation="attach_keypair",status="200",code="OK",pid="\d+",le="0.0005"\} 1', text)
    assert re.search(r'_bucket\{operation="attach_keypair",status="200",code="OK",pid="\d+",le="0.005"\} 2', text)
    assert re.search(r'KeypairNotExist",pid="\d+",le="10.0"\} 0', text)
    assert re.search(r'KeypairNotExist",pid="\d+",le="\+Inf"\} 1', text)
    assert m.count("attach_keypair", "OK") == 2


def _call(app, path: str, client: tuple[str, int]) -> tuple[int, bytes]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": [],
             "client": client}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], sent[1]["body"]


def test_metrics_only_for_loopback_unless_public(tmp_path):
    app = build_app(Settings(data_dir=tmp_path / "a"))
    try:
        assert _call(app, "/metrics", ("127.0.0.1", 5000))[0] == 200
        assert _call(app, "/metrics", ("::1", 5000))[0] == 200
        status, body = _call(app, "/metrics", ("192.0.2.7", 5000))
        assert status == 403 and orjson.loads(body)["code"] == "AccessDenied"
        # the API document and the health check are public
        assert _call(app, "/openapi.json", ("192.0.2.7", 5000))[0] == 200
        assert _call(app, "/healthz", ("192.0.2.7", 5000))[0] == 200
    finally:
        app.ctx.close()
    public = build_app(Settings(data_dir=tmp_path / "b", metrics_public=True))
    try:
        assert _call(public, "/metrics", ("192.0.2.7", 5000))[0] == 200
    finally:
        public.ctx.close()


def test_openapi_and_metrics_need_no_signature(server):
    for path in ("/openapi.json", "/metrics"):
        with urllib.request.urlopen(f"http://{server.endpoint}{path}", timeout=5) as resp:
            assert resp.status == 200 and resp.headers["x-bce-request-id"]


def test_garbage_bytes_get_an_envelope(server):
    reply = raw_exchange(server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n")
    assert (reply.status, assert_envelope(reply)["code"]) == (400, "InvalidHTTPRequest")
