"""bce-auth-v1 over HTTP (spec §2): every failure code, the time window, both
signed-headers forms, and the public health check."""
from __future__ import annotations

import secrets
import time

import pytest
from baidubce.auth.bce_credentials import BceCredentials
from baidubce.bce_client_configuration import BceClientConfiguration
from baidubce.services.bcc.bcc_client import BccClient

from localbcc.auth import format_timestamp, sign

from .rawhttp import UUID4_RE, assert_envelope, ed25519_line, expect, request

PATH = "/v2/keypair"


def test_valid_signature_python_and_go_forms(server):
    assert request(server, "GET", PATH, "maxKeys=1").status == 200
    assert request(server, "GET", PATH, "maxKeys=1", signed_headers=["host", "x-bce-date"]).status == 200
    # every account of the server may sign
    for ak in server.credentials:
        assert request(server, "GET", PATH, access_key=ak).status == 200


def test_missing_authorization(server):
    assert_envelope(request(server, "GET", PATH, unsigned=True), 403, "AccessDenied")
    assert_envelope(request(server, "GET", f"{PATH}/k-00000000", unsigned=True), 403, "AccessDenied")
    assert_envelope(request(server, "POST", PATH, "create", b'{"name": "a"}', unsigned=True), 403,
                    "AccessDenied")


@pytest.mark.parametrize("header", [
    "garbage",
    "",
    "Bearer abc",
    "bce-auth-v1",
    "bce-auth-v1/AK/2024-01-01T00:00:00Z/1800/",
    "bce-auth-v1/AK/2024-01-01T00:00:00Z/1800//nothex",
    "bce-auth-v1/AK/2024-01-01T00:00:00Z/1800//" + "a" * 63,
    "bce-auth-v2/AK/2024-01-01T00:00:00Z/1800//" + "a" * 64,
    "bce-auth-v1/AK/2024-01-01 00:00:00/1800//" + "a" * 64,
    "bce-auth-v1/AK/2024-13-45T00:00:00Z/1800//" + "a" * 64,
    "bce-auth-v1/AK/2024-01-01T00:00:00Z/abc//" + "a" * 64,
    "bce-auth-v1/AK/2024-01-01T00:00:00Z/-5//" + "a" * 64,
    "bce-auth-v1/AK/2024-01-01T00:00:00Z/1800/host/" + "a" * 64 + "/extra",
    "bce-auth-v1//2024-01-01T00:00:00Z/1800//" + "a" * 64,
], ids=lambda h: h[:40] or "empty")
def test_malformed_authorization_header(server, header):
    assert_envelope(request(server, "GET", PATH, authorization=header), 400, "InvalidHTTPAuthHeader")


def test_unknown_access_key(server):
    reply = request(server, "GET", PATH, access_key="AKnobody", secret_key="whatever")
    assert_envelope(reply, 403, "InvalidAccessKeyId")


def test_wrong_secret_key(server):
    ak = next(iter(server.credentials))
    assert_envelope(request(server, "GET", PATH, access_key=ak, secret_key="wrong"), 400,
                    "SignatureDoesNotMatch")
    # another account's secret does not sign for this one
    other_sk = list(server.credentials.values())[1]
    assert_envelope(request(server, "GET", PATH, access_key=ak, secret_key=other_sk), 400,
                    "SignatureDoesNotMatch")


def test_signature_covers_method_path_query_and_headers(server):
    ak, sk = next(iter(server.credentials.items()))
    good = request(server, "GET", PATH, "name=a")
    assert good.status == 200
    ts = format_timestamp(time.time())
    headers = [(b"host", server.endpoint.encode()), (b"x-bce-date", ts.encode())]
    auth = sign(ak, sk, "GET", PATH, [("name", "a")], headers, ts)
    # the same Authorization on a different query, path, method or date header
    for method, path, query, date in [("GET", PATH, "name=b", ts), ("GET", PATH + "/k-00000000", "name=a", ts),
                                      ("DELETE", PATH, "name=a", ts),
                                      ("GET", PATH, "name=a", format_timestamp(time.time() - 60))]:
        reply = request(server, method, path, query, authorization=auth, headers={"x-bce-date": date})
        assert_envelope(reply, 400, "SignatureDoesNotMatch")
    # an untouched replay is fine (no nonce in bce-auth-v1)
    assert request(server, "GET", PATH, "name=a", authorization=auth, headers={"x-bce-date": ts}).status == 200
    # a header outside the signed set may change freely, one inside may not
    assert request(server, "GET", PATH, "name=a", authorization=auth,
                   headers={"x-bce-date": ts, "User-Agent": "changed"}).status == 200
    assert_envelope(request(server, "GET", PATH, "name=a", authorization=auth,
                            headers={"x-bce-date": ts, "x-bce-extra": "1"}), 400, "SignatureDoesNotMatch")


def test_bare_and_empty_flag_sign_the_same(server):
    """`?rename` and `?rename=` canonicalise alike, so one signature fits both."""
    kid = request(server, "PUT", PATH, "import",
                  b'{"name": "flagsig", "publicKey": "' + ed25519_line().encode() + b'"}').json()["keypair"]["keypairId"]
    ak, sk = next(iter(server.credentials.items()))
    ts = format_timestamp(time.time())
    body = b'{"name": "flagsig2"}'
    headers = [(b"host", server.endpoint.encode()), (b"x-bce-date", ts.encode()),
               (b"content-length", str(len(body)).encode())]
    auth = sign(ak, sk, "PUT", f"{PATH}/{kid}", [("rename", "")], headers, ts)
    for form in ("rename", "rename="):
        reply = request(server, "PUT", f"{PATH}/{kid}", form, body, authorization=auth, headers={"x-bce-date": ts})
        assert reply.status == 200, reply.body


@pytest.mark.parametrize("offset,expiration", [(-7200, 1800), (-1801, 1800), (-10, 5), (3600, 1800), (16 * 60, 1800)],
                         ids=["2h-ago", "just-expired", "short-expiry", "1h-ahead", "16min-ahead"])
def test_expired_or_future_timestamps(server, offset, expiration):
    reply = request(server, "GET", PATH, timestamp=time.time() + offset, expiration=expiration)
    assert_envelope(reply, 400, "RequestExpired")


@pytest.mark.parametrize("offset,expiration", [(-7200, 86400), (-60, 1800), (14 * 60, 1800)],
                         ids=["old-but-long-lived", "1min-ago", "14min-ahead"])
def test_timestamps_inside_the_window(server, offset, expiration):
    assert request(server, "GET", PATH, timestamp=time.time() + offset, expiration=expiration).status == 200


def test_sdk_sees_auth_errors_as_server_errors(server):
    ak = next(iter(server.credentials))
    wrong = BccClient(BceClientConfiguration(credentials=BceCredentials(ak, "not-the-secret"),
                                             endpoint=server.endpoint))
    expect(400, "SignatureDoesNotMatch", wrong.list_keypairs)
    stranger = BccClient(BceClientConfiguration(credentials=BceCredentials("AKstranger", "x"),
                                                endpoint=server.endpoint))
    expect(403, "InvalidAccessKeyId", stranger.get_keypair, "k-00000000")


def test_healthz_needs_no_auth(server):
    reply = request(server, "GET", "/healthz", unsigned=True)
    assert reply.status == 200
    assert UUID4_RE.match(reply.headers["x-bce-request-id"])
    # a bad signature on it does not matter either
    assert request(server, "GET", "/healthz", authorization="garbage").status == 200


def test_a_secret_replaced_by_another_server_is_followed(fresh_database, tmp_path):
    """`serve --credentials AK:new` on a database another server is using: that
    server, which had the old secret in memory, accepts the new one and refuses
    the old one within SECRET_TTL seconds."""
    from localbcc.store.accounts import SECRET_TTL

    from ..server import Server
    from ..waiting import wait_until

    url = fresh_database()
    ak, old, new = f"AKrotate{secrets.token_hex(4)}", secrets.token_hex(16), secrets.token_hex(16)
    first = Server(tmp_path / "first", {ak: old}, database_url=url).start()
    try:
        assert request(first, "GET", PATH, access_key=ak, secret_key=old).status == 200  # cached
        Server(tmp_path / "second", {ak: new}, database_url=url).start().stop()
        wait_until(lambda: request(first, "GET", PATH, access_key=ak, secret_key=new).status == 200,
                   timeout=SECRET_TTL + 10, what="the first server to accept the new secret")
        assert_envelope(request(first, "GET", PATH, access_key=ak, secret_key=old), 400,
                        "SignatureDoesNotMatch")
    finally:
        first.stop()


def test_a_literal_plus_in_the_query_is_a_plus(server):
    """issue 17: ``+`` in the raw query was decoded as a space before the
    signature check, so a client that signed the ``+`` it sent was refused. A
    literal ``+`` and ``%2B`` are both ``+``, ``%20`` is a space; the handler
    sees the value that was signed (the clientToken of an idempotent create)."""
    import json

    from .rawhttp import name as kp_name

    tag = secrets.token_hex(4)
    body = json.dumps({"name": kp_name()}).encode()
    # signed as sent: a literal + (rawhttp signs what the server decodes)
    first = request(server, "POST", PATH, f"create&clientToken=t+{tag}%20x", body)
    assert first.status == 200, first.body
    kid = first.json()["keypair"]["keypairId"]
    # %2B is the same token, so the same key pair, and so is the official SDK's form
    again = request(server, "POST", PATH, f"create&clientToken=t%2B{tag}%20x", body)
    assert again.status == 200 and again.json()["keypair"]["keypairId"] == kid
    sdk = server.client()
    answer = sdk._send_request(b"POST", b"/keypair", body,
                               params={"create": None, "clientToken": f"t+{tag} x"})
    assert answer.keypair.keypair_id == kid
    # a space is another token: another key pair
    other = request(server, "POST", PATH, f"create&clientToken=t%20{tag}%20x",
                    json.dumps({"name": kp_name()}).encode())
    assert other.status == 200 and other.json()["keypair"]["keypairId"] != kid
    # a + signed as if it were a space is a different canonical query
    ak, sk = next(iter(server.credentials.items()))
    ts = format_timestamp(time.time())
    headers = [(b"host", server.endpoint.encode()), (b"x-bce-date", ts.encode()),
               (b"content-length", str(len(body)).encode())]
    auth = sign(ak, sk, "POST", PATH, [("create", ""), ("clientToken", f"t {tag} x")], headers, ts)
    assert_envelope(request(server, "POST", PATH, f"create&clientToken=t+{tag}%20x", body,
                            authorization=auth, headers={"x-bce-date": ts}),
                    400, "SignatureDoesNotMatch")
