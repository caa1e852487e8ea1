"""HTTP-level behaviour (spec §1, §3, §4.1, §7) with raw signed requests:
headers, the error envelope, bad bodies, size limits, routing and flag forms."""
from __future__ import annotations

import json

import pytest

from .rawhttp import JSON_TYPE, UUID4_RE, Reply, assert_envelope, ed25519_line, name, request

MIB = 1 << 20


def body(doc) -> bytes:
    return json.dumps(doc).encode()


def ok(reply: Reply) -> dict | None:
    assert reply.status == 200, (reply.status, reply.body[:300])
    assert UUID4_RE.match(reply.headers["x-bce-request-id"])
    if reply.body:
        assert reply.headers["content-type"] == JSON_TYPE
        return reply.json()
    assert reply.headers.get("content-length") == "0"
    return None


@pytest.fixture
def kp(server) -> dict:
    """A fresh imported key pair of the first account (raw wire form)."""
    doc = ok(request(server, "POST", "/v2/keypair", "import",
                     body({"name": name(), "publicKey": ed25519_line()})))
    return doc["keypair"]


def get(server, keypair_id: str) -> Reply:
    return request(server, "GET", f"/v2/keypair/{keypair_id}")


# -- headers and envelope ------------------------------------------------------------------

def test_every_response_has_a_fresh_request_id(server, kp):
    replies = [
        get(server, kp["keypairId"]),                                   # 200 with body
        request(server, "PUT", f"/v2/keypair/{kp['keypairId']}", "rename=", body({"name": name()})),  # empty 200
        get(server, "k-00000000"),                                      # service error
        request(server, "GET", "/v2/keypair", unsigned=True),           # auth error
        request(server, "GET", "/healthz", unsigned=True),              # public
        request(server, "GET", "/v1/keypair"),                          # routing error
    ]
    rids = [r.headers["x-bce-request-id"] for r in replies]
    assert all(UUID4_RE.match(r) for r in rids), rids
    assert len(set(rids)) == len(rids)
    for r in replies:
        if r.body:
            assert r.headers["content-type"] == JSON_TYPE
            if r.status >= 400:
                assert r.json()["requestId"] == r.headers["x-bce-request-id"]
    assert ok(replies[1]) is None


def test_error_envelope_has_exactly_request_id_code_message(server):
    doc = assert_envelope(get(server, "k-00000000"), 404, "Keypair.KeypairNotExist")
    assert set(doc) == {"requestId", "code", "message"}
    assert doc["message"] == "Keypair not exist."


# -- bodies ----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b"{", b"{'name': 'a'}", b'{"name": "a",}', b"nul", b'{"name": "a"} trailing', b"\x00",
    b'{"name": "\xff\xfe"}', b"\xef\xbb\xbf\xff", b'{"name": "a\x80b"}',
], ids=["open", "single-quotes", "trailing-comma", "bad-literal", "trailing-text", "nul",
        "invalid-utf8", "bom-then-invalid", "lone-continuation"])
def test_malformed_json(server, kp, raw):
    for method, path, query in [("POST", "/v2/keypair", "create"), ("PUT", "/v2/keypair", "import"),
                                ("PUT", f"/v2/keypair/{kp['keypairId']}", "rename"),
                                ("PUT", f"/v2/keypair/{kp['keypairId']}", "updateDesc=")]:
        assert_envelope(request(server, method, path, query, raw), 400, "MalformedJSON")
    assert ok(get(server, kp["keypairId"]))["keypair"]["name"] == kp["name"]


@pytest.mark.parametrize("raw", [b"[]", b'[{"name": "a"}]', b'"a string"', b"42", b"true", b"null", b""],
                         ids=["array", "array-of-object", "string", "number", "bool", "null", "empty"])
def test_json_that_is_not_an_object(server, kp, raw):
    for method, path, query in [("POST", "/v2/keypair", "create"), ("PUT", "/v2/keypair", "import"),
                                ("PUT", f"/v2/keypair/{kp['keypairId']}", "rename"),
                                ("PUT", f"/v2/keypair/{kp['keypairId']}", "updateDesc")]:
        assert_envelope(request(server, method, path, query, raw), 400, "InappropriateJSON")


def test_wrong_types_name_the_field(server, kp):
    cases = [("POST", "/v2/keypair", "create", {"name": 1}, "name"),
             ("POST", "/v2/keypair", "create", {"name": name(), "description": {}}, "description"),
             ("PUT", "/v2/keypair", "import", {"name": name(), "publicKey": True}, "publicKey"),
             ("PUT", "/v2/keypair", "import", {"name": [], "publicKey": ed25519_line()}, "name"),
             ("PUT", f"/v2/keypair/{kp['keypairId']}", "rename", {"name": 3.5}, "name"),
             ("PUT", f"/v2/keypair/{kp['keypairId']}", "updateDesc", {"description": 0}, "description")]
    for method, path, query, doc, field in cases:
        err = assert_envelope(request(server, method, path, query, body(doc)), 400, "InappropriateJSON")
        assert field in err["message"], err


def test_non_ascii_json_is_read_as_utf8(server):
    text = '{"name": "密钥-%s", "description": "描述 ✓"}' % name()
    doc = ok(request(server, "POST", "/v2/keypair", "create", text.encode("utf-8")))
    assert doc["keypair"]["name"].startswith("密钥-") and doc["keypair"]["description"] == "描述 ✓"
    # the reply is UTF-8 JSON
    again = get(server, doc["keypair"]["keypairId"])
    assert again.json()["keypair"]["description"] == "描述 ✓"


def test_ten_megabyte_body_is_refused(server):
    big = b'{"name": "big", "description": "' + b"x" * (10 * MIB) + b'"}'
    assert_envelope(request(server, "POST", "/v2/keypair", "create", big, timeout=30), 413,
                    "RequestEntityTooLarge")
    # and the server is fine afterwards
    assert ok(request(server, "GET", "/v2/keypair", "maxKeys=1")) is not None


def test_chunked_body_over_one_mebibyte_is_refused(server):
    chunk = b" " * (64 * 1024)
    chunks = [b'{"name": "chunky"'] + [chunk] * 17 + [b"}"]  # ~1.06 MiB, no Content-Length
    assert_envelope(request(server, "POST", "/v2/keypair", "create", chunks=chunks), 413,
                    "RequestEntityTooLarge")


def test_chunked_body_under_the_limit_is_read(server):
    n = name("chunked")
    chunks = [b'{"name": ', json.dumps(n).encode(), b", ", b'"publicKey": ',
              json.dumps(ed25519_line()).encode(), b"}"]
    doc = ok(request(server, "PUT", "/v2/keypair", "import", chunks=chunks))
    assert doc["keypair"]["name"] == n


def test_body_of_exactly_one_mebibyte_is_accepted_one_more_byte_is_not(server):
    n = name("edge")
    core = body({"name": n, "publicKey": ed25519_line()})
    exact = core[:-1] + b" " * (MIB - len(core)) + b"}"
    assert len(exact) == MIB
    assert ok(request(server, "PUT", "/v2/keypair", "import", exact))["keypair"]["name"] == n
    over = core[:-1] + b" " * (MIB + 1 - len(core)) + b"}"
    assert_envelope(request(server, "PUT", "/v2/keypair", "import", over), 413, "RequestEntityTooLarge")


# -- routing --------------------------------------------------------------------------------------

@pytest.mark.parametrize("query", ["bogus", "bogus=", "rename&updateDesc", "rename=&bogus", "Rename", ""])
def test_unknown_missing_or_double_flag_on_an_item(server, kp, query):
    reply = request(server, "PUT", f"/v2/keypair/{kp['keypairId']}", query, body({"name": "x"}))
    assert_envelope(reply, 400, "InvalidURI")
    assert ok(get(server, kp["keypairId"]))["keypair"]["name"] == kp["name"]


@pytest.mark.parametrize("path", ["/v1/keypair", "/v9/keypair", "/v1/keypair/k-00000000", "/v3", "/v10/image"])
def test_other_versions(server, path):
    assert_envelope(request(server, "GET", path), 404, "InvalidVersion")


@pytest.mark.parametrize("method,path,query", [
    ("GET", "/v2/nothing", ""), ("GET", "/v2", ""), ("GET", "/v2/", ""), ("GET", "/", ""),
    ("GET", "/keypair", ""), ("GET", "/v2/keypair/k-00000000/extra", ""),
    ("GET", "/v2/keypair//", ""), ("PATCH", "/v2/keypair", ""), ("POST", "/v2/keypair", "bogus"),
    ("DELETE", "/v2/keypair", ""), ("POST", "/v2/keypair/k-00000000", ""), ("GET", "/v2/keypair", "rename"),
    ("GET", "/v2x/keypair", ""), ("GET", "/vv/keypair", ""),
])
def test_paths_and_methods_that_match_no_operation(server, method, path, query):
    assert_envelope(request(server, method, path, query, b"{}" if method != "GET" else None), 400,
                    "InvalidURI")


@pytest.mark.parametrize("form", ["rename", "rename="])
def test_bare_and_empty_flag_forms_both_route(server, kp, form):
    new = name("flag")
    assert ok(request(server, "PUT", f"/v2/keypair/{kp['keypairId']}", form, body({"name": new}))) is None
    assert ok(get(server, kp["keypairId"]))["keypair"]["name"] == new
    desc_flag = form.replace("rename", "updateDesc")
    assert ok(request(server, "PUT", f"/v2/keypair/{kp['keypairId']}", desc_flag,
                      body({"description": form}))) is None
    assert ok(get(server, kp["keypairId"]))["keypair"]["description"] == form


@pytest.mark.parametrize("form", ["attach", "attach=", "detach", "detach="])
def test_attach_detach_forms_route(server, kp, form):
    """Without instances, routing shows as the attach/detach checks: an unknown
    instance answers Keypair.InstanceNotExist, an unknown pair KeypairNotExist."""
    reply = request(server, "PUT", f"/v2/keypair/{kp['keypairId']}", form, body({"instanceIds": ["i-00000000"]}))
    assert_envelope(reply, 404, "Keypair.InstanceNotExist")
    reply = request(server, "PUT", "/v2/keypair/k-00000000", form, body({"instanceIds": ["i-00000000"]}))
    assert_envelope(reply, 404, "Keypair.KeypairNotExist")
    for bad in ({"instanceIds": None}, {"instanceIds": "i-1"}, {"instanceIds": []}, {}):
        reply = request(server, "PUT", f"/v2/keypair/{kp['keypairId']}", form, body(bad))
        assert_envelope(reply, 400, "InappropriateJSON")


def test_create_and_import_route_variants(server):
    made = ok(request(server, "POST", "/v2/keypair", "", body({"name": name()})))
    assert made["keypair"]["privateKey"]
    made = ok(request(server, "POST", "/v2/keypair", "create", body({"name": name()})))
    assert made["keypair"]["privateKey"]
    for method, query in [("POST", "import"), ("POST", "import="), ("PUT", ""), ("PUT", "import"),
                          ("PUT", "import=")]:
        line = ed25519_line()
        doc = ok(request(server, method, "/v2/keypair", query, body({"name": name(), "publicKey": line})))
        assert doc["keypair"]["publicKey"] == line and "privateKey" not in doc["keypair"]


def test_delete_with_go_sdk_flag_and_body(server, kp):
    reply = request(server, "DELETE", f"/v2/keypair/{kp['keypairId']}", "delete",
                    body({"keypairId": kp["keypairId"]}), headers={"Content-Type": "application/json"})
    assert ok(reply) is None
    assert_envelope(get(server, kp["keypairId"]), 404, "Keypair.KeypairNotExist")
    assert_envelope(request(server, "DELETE", f"/v2/keypair/{kp['keypairId']}"), 404, "Keypair.KeypairNotExist")


@pytest.mark.parametrize("signed", [["host", "x-bce-date"],
                                    ["content-length", "content-type", "host", "x-bce-date"],
                                    ["host"]])
def test_go_sdk_request_form(server, signed):
    """Content-Type: application/json and an explicit signedHeaders list."""
    hdrs = {"Content-Type": "application/json", "User-Agent": "bce-sdk-go/0.9.200"}
    n = name("go")
    made = ok(request(server, "POST", "/v2/keypair", "create", body({"name": n}), headers=hdrs,
                      signed_headers=signed))
    kid = made["keypair"]["keypairId"]
    assert ok(request(server, "GET", f"/v2/keypair/{kid}", headers=hdrs, signed_headers=signed))
    assert ok(request(server, "PUT", f"/v2/keypair/{kid}", "updateDesc", body({"description": "go"}),
                      headers=hdrs, signed_headers=signed)) is None
    listed = ok(request(server, "GET", "/v2/keypair", f"name={n}&maxKeys=10", headers=hdrs,
                        signed_headers=signed))
    assert [k["description"] for k in listed["keypairs"]] == ["go"]
    assert ok(request(server, "DELETE", f"/v2/keypair/{kid}", "delete", body({}), headers=hdrs,
                      signed_headers=signed)) is None


def test_list_query_parameters_are_signed_and_decoded(server):
    n = "名-" + name()
    ok(request(server, "PUT", "/v2/keypair", "import", body({"name": n, "publicKey": ed25519_line()})))
    from urllib.parse import quote
    listed = ok(request(server, "GET", "/v2/keypair", f"name={quote(n)}&marker=&maxKeys="))
    assert [k["name"] for k in listed["keypairs"]] == [n]
    assert listed["maxKeys"] == 1000 and listed["marker"] == ""


def test_never_a_500(server, kp):
    """A battery of odd requests: all get a 4xx envelope, none a 500."""
    item = f"/v2/keypair/{kp['keypairId']}"
    images = ok(request(server, "GET", "/v2/image"))["images"]
    linux = next(i["id"] for i in images if i["osType"] == "linux")
    odd = [
        ("GET", "/v2/keypair", "maxKeys=99999999999999999999999999"),  # clamped: 200
        ("GET", "/v2/keypair", "maxKeys=-99999999999999999999999999"),
        ("GET", "/v2/keypair", "marker=%00"),
        ("GET", "/v2/keypair", "marker=" + "k" * 5000),
        ("GET", "/v2/keypair/" + "k" * 3000, ""),
        ("GET", "/v2/keypair/%00", ""),
        ("GET", "/v2/keypair/%E5%AF%86", ""),
        ("POST", "/v2/keypair", "clientToken=" + "t" * 65),
        ("POST", "/v2/keypair", "clientToken=%E5%AF%86"),
        ("PUT", item, "rename", body({"name": "a" * 100000})),
        ("PUT", item, "updateDesc", body({"description": "\ud800"})),
        ("PUT", "/v2/keypair", "import", body({"name": "x", "publicKey": "ssh-rsa " + "A" * 100000})),
        ("PUT", "/v2/keypair", "import", body({"name": "x", "publicKey": "\x00"})),
        ("PUT", "/v2/keypair", "import", b'{"name": "x", "publicKey": "' + b"[" * 1000 + b'"}'),
        ("PUT", "/v2/keypair", "import", b"[" * 100000),
        ("POST", "/v2/keypair", "create", b'{"name": 1e999}'),
        ("POST", "/v2/keypair", "create", b'{"name": 123456789012345678901234567890}'),
        # NUL anywhere (PostgreSQL refuses it in text)
        ("GET", "/v2/keypair", "marker=k-%00"),
        ("GET", "/v2/keypair", "name=a%00b"),
        ("GET", "/v2/keypair/k-0000000%00", ""),
        ("DELETE", "/v2/keypair/k-%00", ""),
        ("PUT", "/v2/keypair/k-%00", "rename", body({"name": "abc"})),
        ("POST", "/v2/keypair", "clientToken=a%00", body({"name": "abc"})),
        ("POST", "/v2/keypair", "create", body({"name": "a\x00b"})),
        ("POST", "/v2/keypair", "create", body({"name": "abc", "description": "a\x00b"})),
        ("PUT", "/v2/keypair", "import", body({"name": "abc", "publicKey": ed25519_line("a\x00b")})),
        ("GET", "/v2/instance", "marker=%00"),
        ("GET", "/v2/instance", "keypairId=%00"),
        ("GET", "/v2/instance/i-%00", ""),
    ] + [("POST", "/v2/instance", f"clientToken={name()}",
          body({"imageId": linux, "cpuCount": 1, "memoryCapacityInGB": 1, field: "a\x00b"}))
         for field in ("name", "hostname", "keypairId", "zoneName", "instanceType")]
    for method, path, query, *rest in odd:
        reply = request(server, method, path, query, rest[0] if rest else None)
        assert reply.status == 200 or 400 <= reply.status < 500, (
            method, path[:40], query[:40], reply.status, reply.body[:200])
        if reply.status != 200:
            assert_envelope(reply, reply.status, reply.json()["code"])
