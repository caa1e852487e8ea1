"""The access log line, GET /metrics (loopback only unless --metrics-public)
and the protocol-level envelopes. Budget: about 3 s."""
from __future__ import annotations

import asyncio
import re
import urllib.request

import orjson
from baidubce.exception import BceHttpClientError

from localbcc.api.metrics import BOUNDS, Metrics
from localbcc.config import Settings
from localbcc.server import build_app

from .helpers import assert_envelope, metrics, openssh_ed25519, raw_exchange, sdk_error, wait_until

ACCESS = re.compile(r"localbcc\.access request_id=(?P<rid>[0-9a-f-]{36}) ak=(?P<ak>\S+) "
                    r"method=(?P<method>\S+) path=(?P<path>\S+) flag=(?P<flag>\S+) op=(?P<op>\S+) "
                    r"status=(?P<status>\d{3}) code=(?P<code>\S+) ms=(?P<ms>\d+\.\d\d)$")


def _access_lines(server) -> dict[str, dict]:
    found = {}
    for line in server.log_path.read_text("utf-8", "replace").splitlines():
        m = ACCESS.search(line)
        if m:
            found[m["rid"]] = m.groupdict()
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
    assert entry["path"] == "/v2/key\\npair\\r"  # one line, no forged second line


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
