"""Group 3: hypothesis tampers with signed requests; every tampered request is
refused with the right code, and a valid one is never refused.

Raw http.client requests (and raw sockets for header injection) against the
shared server. Budget: about 10 s per storage backend.
"""
from __future__ import annotations

import secrets
import time

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import (
    Reply,
    assert_envelope,
    auth_headers,
    openssh_ed25519,
    raw_exchange,
    raw_request,
    send,
)

SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))
HEX = "0123456789abcdef"

# Query parameters a key pair list accepts with any value (never a flag).
_QUERY_VALUES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",),
                                      exclude_characters="\x00"), max_size=12)
_QUERY = st.lists(st.tuples(st.sampled_from(["name", "marker", "clientToken"]), _QUERY_VALUES),
                  max_size=3, unique_by=lambda kv: kv[0])
_BCE_HEADER_NAME = st.from_regex(r"x-bce-[a-z0-9-]{1,12}", fullmatch=True).filter(
    lambda n: n not in ("x-bce-date", "x-bce-request-id"))
_HEADER_VALUE = st.from_regex(r"[!-~]([ -~]{0,20}[!-~])?", fullmatch=True)  # no edge spaces


@pytest.fixture(scope="module")
def target(server):
    """A key pair of the first account that requests can rename (a body) and read."""
    ak = next(iter(server.credentials))
    kp = server.client(ak).import_keypair(keypair_name="authfuzz", public_key=openssh_ed25519())
    return kp.keypair.keypair_id


def _query_string(pairs) -> str:
    from urllib.parse import quote

    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def _expect(reply: Reply, status: int, code: str) -> None:
    body = assert_envelope(reply)
    assert (reply.status, body["code"]) == (status, code), (reply.status, body)


def _rename_body(name: str = "evil") -> bytes:
    """Tampered requests try to rename the pair to "evil"; none may succeed."""
    return orjson.dumps({"name": name})


# -- a valid request is never refused ------------------------------------------------------

@SETTINGS
@given(query=_QUERY, extra=st.dictionaries(_BCE_HEADER_NAME, _HEADER_VALUE, max_size=3),
       expiration=st.integers(min_value=30, max_value=10**9),
       skew=st.integers(min_value=-25, max_value=880),
       go_form=st.booleans(), with_type=st.booleans())
def test_valid_requests_are_never_refused(server, target, query, extra, expiration, skew,
                                          go_form, with_type):
    qs = _query_string([kv for kv in query if kv[0] != "marker"])
    headers = dict(extra)
    if with_type:
        headers["content-type"] = "application/json"
    signed = ["host", "x-bce-date", *extra] if go_form else None
    ts = time.time() + skew
    reply = send(server, "GET", "/v2/keypair", qs, timestamp=ts, expiration=expiration,
                 extra=headers, signed_headers=signed)
    assert reply.status == 200, reply
    body = _rename_body(f"r{secrets.token_hex(3)}")
    reply = send(server, "PUT", f"/v2/keypair/{target}", "rename=", body, timestamp=ts,
                 expiration=expiration, extra=headers, signed_headers=signed)
    assert reply.status == 200, reply


# -- tampering ---------------------------------------------------------------------------------

def _signed_rename(server, target, **kw):
    body = kw.pop("body", _rename_body())
    headers = auth_headers(server, "PUT", f"/v2/keypair/{target}", "rename=", body, **kw)
    return headers, body


@SETTINGS
@given(position=st.integers(min_value=0, max_value=63), shift=st.integers(min_value=1, max_value=15),
       bad=st.sampled_from("gxzG-_.~+ "))
def test_flipped_signature_bytes_are_refused(server, target, position, shift, bad):
    headers, body = _signed_rename(server, target)
    auth = headers["authorization"]
    sig = auth[-64:]
    new = HEX[(HEX.index(sig[position]) + shift) % 16]  # another hex digit
    headers["authorization"] = auth[:-64] + sig[:position] + new + sig[position + 1:]
    _expect(send(server, "PUT", f"/v2/keypair/{target}", "rename=", body, headers=headers),
            400, "SignatureDoesNotMatch")
    # a non-hex character makes the header malformed instead
    headers["authorization"] = auth[:-64] + sig[:position] + bad + sig[position + 1:]
    _expect(send(server, "PUT", f"/v2/keypair/{target}", "rename=", body, headers=headers),
            400, "InvalidHTTPAuthHeader")


@SETTINGS
@given(change=st.sampled_from(["other-id", "append", "prefix", "case", "resource"]))
def test_altered_path_is_refused(server, target, change):
    headers, body = _signed_rename(server, target)
    path = {
        "other-id": f"/v2/keypair/k-{secrets.token_hex(4)}",
        "append": f"/v2/keypair/{target}x",
        "prefix": f"/v1/keypair/{target}",
        "case": f"/v2/keypair/{target.swapcase()}",
        "resource": f"/v2/instance/{target}",
    }[change]
    _expect(send(server, "PUT", path, "rename=", body, headers=headers), 400, "SignatureDoesNotMatch")


@SETTINGS
@given(query=_QUERY, change=st.sampled_from(["add", "drop", "value", "flag"]), value=_QUERY_VALUES)
def test_altered_query_is_refused(server, query, change, value):
    pairs = list(query)
    headers = auth_headers(server, "GET", "/v2/keypair", _query_string(pairs))
    if change == "add" or not pairs:
        pairs.append(("maxKeys", str(len(value) + 1)))
    elif change == "drop":
        pairs.pop()
    elif change == "value":
        k, v = pairs[0]
        pairs[0] = (k, v + (value or "x"))
    else:
        pairs.append(("create", ""))
    _expect(send(server, "GET", "/v2/keypair", _query_string(pairs), headers=headers),
            400, "SignatureDoesNotMatch")


@SETTINGS
@given(name=st.sampled_from(["host", "x-bce-date", "x-bce-extra", "content-type"]),
       suffix=_HEADER_VALUE)
def test_altered_signed_header_is_refused(server, target, name, suffix):
    extra = {"x-bce-extra": "v1", "content-type": "application/json"}
    headers, body = _signed_rename(server, target, extra=extra)
    headers[name] = headers[name] + suffix
    _expect(send(server, "PUT", f"/v2/keypair/{target}", "rename=", body, headers=headers),
            400, "SignatureDoesNotMatch")


@SETTINGS
@given(name=st.sampled_from(["x-bce-added", "content-md5", "content-type"]), value=_HEADER_VALUE)
def test_added_header_in_the_default_set_is_refused(server, target, name, value):
    headers, body = _signed_rename(server, target)
    headers[name] = value
    _expect(send(server, "PUT", f"/v2/keypair/{target}", "rename=", body, headers=headers),
            400, "SignatureDoesNotMatch")


@SETTINGS
@given(pad=st.integers(min_value=1, max_value=200))
def test_body_with_another_signed_content_length_is_refused(server, target, pad):
    headers, body = _signed_rename(server, target)
    longer = orjson.dumps({"name": "evil", "description": "x" * pad})
    headers["content-length"] = str(len(longer))
    _expect(send(server, "PUT", f"/v2/keypair/{target}", "rename=", longer, headers=headers),
            400, "SignatureDoesNotMatch")


@SETTINGS
@given(expiration=st.integers(min_value=0, max_value=100_000),
       late=st.integers(min_value=3, max_value=10**7))
def test_expired_requests_are_refused(server, target, expiration, late):
    ts = time.time() - expiration - late
    headers, body = _signed_rename(server, target, timestamp=ts, expiration=expiration)
    _expect(send(server, "PUT", f"/v2/keypair/{target}", "rename=", body, headers=headers),
            400, "RequestExpired")


@SETTINGS
@given(ahead=st.integers(min_value=905, max_value=10**8))
def test_requests_from_the_future_are_refused(server, target, ahead):
    headers, body = _signed_rename(server, target, timestamp=time.time() + ahead)
    _expect(send(server, "PUT", f"/v2/keypair/{target}", "rename=", body, headers=headers),
            400, "RequestExpired")


@SETTINGS
@given(which=st.sampled_from(["other-account", "unknown-key", "other-secret"]))
def test_other_accounts_keys_are_refused(server, target, which):
    a, b = list(server.credentials)[:2]
    if which == "other-account":  # B's access key with A's secret
        kw, want = {"access_key": b, "secret_key": server.credentials[a]}, (400, "SignatureDoesNotMatch")
    elif which == "unknown-key":
        kw, want = {"access_key": f"AK{secrets.token_hex(8)}", "secret_key": server.credentials[a]}, \
            (403, "InvalidAccessKeyId")
    else:  # A's access key signed with B's secret
        kw, want = {"access_key": a, "secret_key": server.credentials[b]}, (400, "SignatureDoesNotMatch")
    headers, body = _signed_rename(server, target, **kw)
    _expect(send(server, "PUT", f"/v2/keypair/{target}", "rename=", body, headers=headers), *want)
    # B's own valid signature is fine, but cannot reach A's key pair
    headers, body = _signed_rename(server, target, access_key=b)
    _expect(send(server, "PUT", f"/v2/keypair/{target}", "rename=", body, headers=headers),
            404, "Keypair.KeypairNotExist")


@SETTINGS
@given(field=st.integers(min_value=0, max_value=5), offset=st.integers(min_value=0, max_value=80))
def test_extra_slash_in_authorization_is_malformed(server, target, field, offset):
    headers, body = _signed_rename(server, target)
    auth = headers["authorization"]
    parts = auth.split("/")
    part = parts[field]
    cut = offset % (len(part) + 1)
    parts[field] = part[:cut] + "/" + part[cut:]
    headers["authorization"] = "/".join(parts)
    _expect(send(server, "PUT", f"/v2/keypair/{target}", "rename=", body, headers=headers),
            400, "InvalidHTTPAuthHeader")


# Header injection: what a client could smuggle into the Authorization value
# when a proxy or library forwards it unchecked. Expected answers:
_INJECTIONS = [
    # an extra x-bce-* header: in the default signed set, so the signature no longer matches
    ("\r\nx-bce-injected: 1", 400, "SignatureDoesNotMatch"),
    # a second Host header: the signed host value changes
    ("\r\nHost: evil.example", 400, "SignatureDoesNotMatch"),
    # a bare CR, a bare LF, NUL: not HTTP/1.1; refused by the parser, still in the envelope
    ("\rx-bce-injected: 1", 400, "InvalidHTTPRequest"),
    ("\x00", 400, "InvalidHTTPRequest"),
    # cut the value short: the rest becomes another header, the value is malformed
    (None, 400, "InvalidHTTPAuthHeader"),
]


@SETTINGS
@given(case=st.sampled_from(range(len(_INJECTIONS))), cut=st.integers(min_value=12, max_value=150))
def test_header_injection_in_authorization_is_refused(server, target, case, cut):
    injected, status, code = _INJECTIONS[case]
    headers, body = _signed_rename(server, target)
    auth = headers.pop("authorization")
    if injected is None:
        cut = min(cut, len(auth) - 1)
        value = auth[:cut] + "\r\nx-bce-rest: " + auth[cut:]
    else:
        value = auth + injected
    items = list(headers.items()) + [("Authorization", value)]
    reply = raw_exchange(server, raw_request("PUT", f"/v2/keypair/{target}?rename=", items, body))
    _expect(reply, status, code)


def test_refusals_change_nothing(server, target):
    """After all the tampering above, the key pair still has a name a valid
    request gave it: no tampered rename went through."""
    client = server.client()
    name = client.get_keypair(target).keypair.name
    assert name == "authfuzz" or name.startswith("r"), name
    assert name != "evil"
