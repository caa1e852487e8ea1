"""BCE auth v1 (spec §2): canonicalisation, signing against the official SDK, verification."""
from __future__ import annotations

import string

import pytest
from baidubce import utils as sdk_utils
from baidubce.auth import bce_v1_signer
from baidubce.auth.bce_credentials import BceCredentials
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from localbcc.auth import (
    NOT_CACHED,
    NotCached,
    Verifier,
    canonical_headers,
    canonical_query,
    canonical_uri,
    format_timestamp,
    normalize,
    sign,
    signing_key,
)
from localbcc.clock import FakeClock
from localbcc.errors import BceError, ErrorCode

AK = "a" * 32
SK = "b" * 32
NOW = 1_700_000_000.0
TS = format_timestamp(NOW)  # 2023-11-14T22:13:20Z
HOST = b"127.0.0.1:8080"


class Keys:
    """The secret keys a Verifier asks for (``auth.Secrets``): all in memory, or
    with ``in_memory=False`` each one read (awaited), as on a cache miss."""

    def __init__(self, keys: dict[str, str], in_memory: bool = True) -> None:
        self.keys, self.in_memory = keys, in_memory

    def cached(self, access_key: str) -> str | None | NotCached:
        return self.keys.get(access_key) if self.in_memory else NOT_CACHED

    async def read(self, access_key: str) -> str | None:
        return self.keys.get(access_key)


def verified(verifier: Verifier, *request) -> str:
    """The access key ``verifier.verify`` answers for ``request`` (it raises
    BceError for a request it refuses). Keys never make it wait, so it must
    answer without suspending."""
    return answer(verifier, *request)[0]


def answer(verifier: Verifier, *request) -> tuple[str, str]:
    """What ``verifier.verify`` answers: (access key, secret key)."""
    coro = verifier.verify(*request)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("verify suspended")
PATH = "/v2/keypair/k-AbC12345"
UNRESERVED = string.ascii_letters + string.digits + "-._~"

# ---------------------------------------------------------------------------
# Baidu's own test vector


VECTOR_HEADERS = [
    (b"host", b"bj.bcebos.com"),
    (b"content-length", b"8"),
    (b"content-md5", b"NFzcPqhviddjRNnSOGo4rw=="),
    (b"content-type", b"text/plain"),
    (b"x-bce-date", b"2015-04-27T08:23:49Z"),
]
VECTOR_QUERY = [("partNumber", "9"), ("uploadId", "a44cc9bab11cbd156984767aad637851")]
VECTOR_KEY = "1d5ce5f464064cbee060330d973218821825ac6952368a482a592e6615aef479"
VECTOR_SIG = "d74a04362e6a848f5b39b15421cb449427f419c95a480fd6b8cf9fc783e2999e"


def test_vector_signing_key() -> None:
    prefix = "bce-auth-v1/" + AK + "/2015-04-27T08:23:49Z/1800"
    assert signing_key(SK, prefix) == VECTOR_KEY


def test_vector_signature() -> None:
    got = sign(AK, SK, "PUT", "/v1/test/myfolder/readme.txt", VECTOR_QUERY, VECTOR_HEADERS,
               "2015-04-27T08:23:49Z", 1800)
    assert got == f"bce-auth-v1/{AK}/2015-04-27T08:23:49Z/1800//{VECTOR_SIG}"


def test_vector_verifies() -> None:
    auth = sign(AK, SK, "PUT", "/v1/test/myfolder/readme.txt", VECTOR_QUERY, VECTOR_HEADERS,
                "2015-04-27T08:23:49Z", 1800)
    verifier = Verifier(Keys({AK: SK}), FakeClock(1430123029.0 + 60))
    headers = VECTOR_HEADERS + [(b"authorization", auth.encode())]
    assert verified(verifier, "PUT", "/v1/test/myfolder/readme.txt", VECTOR_QUERY, headers) == AK


# ---------------------------------------------------------------------------
# normalize and the canonical parts


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        ("AZaz09-._~", "AZaz09-._~"),
        ("a b", "a%20b"),
        ("100%", "100%25"),
        ("a/b", "a%2Fb"),
        ("127.0.0.1:8080", "127.0.0.1%3A8080"),
        ("é", "%C3%A9"),
        ("键", "%E9%94%AE"),
        ("+*=&?#", "%2B%2A%3D%26%3F%23"),
        (b"\x00\xff", "%00%FF"),
        ("x" * 300 + ":", "x" * 300 + "%3A"),  # longer than the cache limit
    ],
)
def test_normalize_examples(value: str | bytes, expected: str) -> None:
    assert normalize(value) == expected


def test_normalize_keep_slash() -> None:
    assert normalize("/v2/a b/~", keep_slash=True) == "/v2/a%20b/~"
    assert normalize(b"/x:y/", keep_slash=True) == "/x%3Ay/"


@given(st.one_of(st.text(max_size=400), st.binary(max_size=400)))
@settings(max_examples=300, deadline=None)
def test_normalize_matches_sdk(value: str | bytes) -> None:
    assert normalize(value) == sdk_utils.normalize_string(value).decode("ascii")
    # The SDK keeps '/' when encoding_slash is False.
    assert normalize(value, keep_slash=True) == sdk_utils.normalize_string(value, False).decode(
        "ascii"
    )


@given(st.text(max_size=100))
def test_normalize_output_is_unreserved_or_escapes(value: str) -> None:
    out = normalize(value)
    assert set(out) <= set(UNRESERVED + "%0123456789ABCDEF")
    assert out.replace("%", "").isascii()


def test_normalize_total_on_lone_surrogates() -> None:
    assert normalize("\udc80") == "%ED%B2%80"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/keypair/k-AbC12345", "/v2/keypair/k-AbC12345"),
        ("/v2/ключ", "/v2/%D0%BA%D0%BB%D1%8E%D1%87"),
        ("/v2/a b/100%/~x", "/v2/a%20b/100%25/~x"),
        ("/", "/"),
    ],
)
def test_canonical_uri_examples(path: str, expected: str) -> None:
    assert canonical_uri(path) == expected


@given(st.lists(st.text(max_size=12), max_size=5))
def test_canonical_uri_is_per_segment_normalize(segments: list[str]) -> None:
    path = "/" + "/".join(segments)
    assert canonical_uri(path) == "/".join(normalize(s) for s in path.split("/"))


def test_canonical_query_rules() -> None:
    assert canonical_query([]) == ""
    assert canonical_query([("attach", "")]) == "attach="
    assert canonical_query([("b", "2"), ("a", "x y"), ("Authorization", "zz"), ("AUTHORIZATION", "")]) == (
        "a=x%20y&b=2"
    )
    assert canonical_query([("键", "值")]) == "%E9%94%AE=%E5%80%BC"
    # Sorting is on the encoded strings, as the SDKs do.
    assert canonical_query([("a", "b"), ("A", "c"), ("a b", "")]) == "A=c&a%20b=&a=b"


def test_canonical_headers_default_set() -> None:
    headers = [
        (b"host", HOST),
        (b"user-agent", b"sdk"),
        (b"content-type", b"  application/json "),
        (b"content-length", b"0"),
        (b"x-bce-date", TS.encode()),
        (b"x-bce-empty", b"   "),
        (b"x-other", b"1"),
        (b"authorization", b"secret-looking"),
    ]
    assert canonical_headers(headers, None) == "\n".join(
        [
            "content-length:0",
            "content-type:application%2Fjson",
            "host:127.0.0.1%3A8080",
            "x-bce-date:2023-11-14T22%3A13%3A20Z",
        ]
    )
    assert canonical_headers(headers, []) == canonical_headers(headers, None)


def test_canonical_headers_explicit_set() -> None:
    headers = [(b"host", HOST), (b"x-bce-date", TS.encode()), (b"x-bce-other", b"1"), (b"accept", b"*/*")]
    assert canonical_headers(headers, ["Host", "accept", "missing"]) == "accept:%2A%2F%2A\nhost:127.0.0.1%3A8080"


def test_canonical_headers_duplicates_joined_by_comma() -> None:
    headers = [(b"x-bce-meta", b" a "), (b"host", HOST), (b"X-Bce-Meta", b"b")]
    assert canonical_headers(headers, None) == "host:127.0.0.1%3A8080\nx-bce-meta:a%2Cb"


def test_format_timestamp() -> None:
    assert format_timestamp(1430123029.9) == "2015-04-27T08:23:49Z"
    assert format_timestamp(0) == "1970-01-01T00:00:00Z"
    assert TS == "2023-11-14T22:13:20Z"


# ---------------------------------------------------------------------------
# sign() against the official Python SDK

methods = st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"])
sdk_safe_paths = st.lists(st.text(alphabet=UNRESERVED, max_size=10), max_size=5).map(
    lambda segs: "/" + "/".join(segs)
)
any_paths = st.lists(st.text(max_size=10), max_size=5).map(lambda segs: "/" + "/".join(segs))
queries = st.dictionaries(
    st.text(max_size=10).filter(lambda k: k.lower() != "authorization"),
    st.text(max_size=10),
    max_size=5,
)
header_names = st.one_of(
    st.sampled_from(
        [b"host", b"content-md5", b"content-length", b"content-type", b"x-bce-date",
         b"x-bce-request-id", b"user-agent", b"accept", b"x-bce-", b"x-bcex"]
    ),
    st.text(alphabet=string.ascii_lowercase + string.digits + "-_", min_size=1, max_size=10).map(
        lambda s: ("x-bce-" + s).encode()
    ),
    st.text(alphabet=string.ascii_lowercase + "-", min_size=1, max_size=10).map(str.encode),
)
header_values = st.one_of(
    st.binary(max_size=20),
    st.sampled_from([b"", b"  ", b" \t", b"0", b"127.0.0.1:8080"]),
    st.text(max_size=10).map(lambda s: s.encode("utf-8")),
)
header_sets = st.dictionaries(header_names, header_values, max_size=8)
timestamps = st.integers(min_value=1, max_value=4_102_444_800)
expirations = st.integers(min_value=0, max_value=10**6)


def _sdk_sign(method: str, path: str, query: dict[str, str], headers: dict[bytes, bytes],
              timestamp: int, expiration: int, title_case: bool = False) -> str:
    sdk_headers = {(k.title() if title_case else k): v for k, v in headers.items()}
    result = bce_v1_signer.sign(
        BceCredentials(AK, SK), method.encode(), path.encode(), sdk_headers, query,
        timestamp, expiration,
    )
    return result.decode("ascii")


@given(methods, sdk_safe_paths, queries, header_sets, timestamps, expirations, st.booleans())
@settings(max_examples=300, deadline=None)
def test_sign_matches_sdk(method: str, path: str, query: dict[str, str],
                          headers: dict[bytes, bytes], timestamp: int, expiration: int,
                          title_case: bool) -> None:
    ours = sign(AK, SK, method, path, list(query.items()), list(headers.items()),
                format_timestamp(timestamp), expiration)
    assert ours == _sdk_sign(method, path, query, headers, timestamp, expiration, title_case)


@given(methods, any_paths, queries, header_sets, timestamps)
@settings(max_examples=200, deadline=None)
def test_sign_unicode_path_is_sdk_with_normalized_path(method: str, path: str,
                                                       query: dict[str, str],
                                                       headers: dict[bytes, bytes],
                                                       timestamp: int) -> None:
    # The SDK signs the path it is given verbatim; the spec normalizes it. Giving
    # the SDK the normalized path must therefore give the same signature.
    ours = sign(AK, SK, method, path, list(query.items()), list(headers.items()),
                format_timestamp(timestamp))
    assert ours == _sdk_sign(method, canonical_uri(path), query, headers, timestamp, 1800)


def test_sign_go_form_lists_signed_headers() -> None:
    headers = [(b"host", HOST), (b"x-bce-date", TS.encode()), (b"user-agent", b"go")]
    auth = sign(AK, SK, "GET", PATH, [], headers, TS, 1800, ["host", "x-bce-date"])
    parts = auth.split("/")
    assert parts[:5] == ["bce-auth-v1", AK, TS, "1800", "host;x-bce-date"]
    assert len(parts[5]) == 64
    # Listing exactly the default-set headers present signs the same string.
    assert parts[5] == sign(AK, SK, "GET", PATH, [], headers, TS).split("/")[5]


# ---------------------------------------------------------------------------
# Verifier


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture(params=["in memory", "read"])
def verifier(clock: FakeClock, request: pytest.FixtureRequest) -> Verifier:
    """Every check the same whether the secret key is in memory or read."""
    return Verifier(Keys({AK: SK, "other-ak": "other-sk"}, request.param == "in memory"), clock)


def python_request(query: list[tuple[str, str]] | None = None, ts: str = TS, expiration: int = 1800,
                   path: str = PATH, method: str = "GET") -> tuple[str, str, list[tuple[str, str]], list[tuple[bytes, bytes]]]:
    """A request signed like the Python SDK (empty signed-headers field), as ASGI delivers it."""
    query = [("attach", "")] if query is None else query
    headers = [
        (b"host", HOST),
        (b"accept-encoding", b"identity"),
        (b"user-agent", b"bce-sdk-python/0.9.79"),
        (b"x-bce-date", ts.encode()),
        (b"content-length", b"0"),
    ]
    auth = sign(AK, SK, method, path, query, headers, ts, expiration)
    return method, path, query, headers + [(b"authorization", auth.encode())]


def go_request(ts: str = TS) -> tuple[str, str, list[tuple[str, str]], list[tuple[bytes, bytes]]]:
    """A request signed like the Go SDK (explicit host;x-bce-date), ``?attach`` parsed."""
    query = [("attach", "")]
    headers = [
        (b"host", HOST),
        (b"user-agent", b"bce-sdk-go/0.9"),
        (b"content-type", b"application/json;charset=utf-8"),
        (b"content-length", b"2"),
        (b"x-bce-date", ts.encode()),
    ]
    auth = sign(AK, SK, "PUT", PATH, query, headers, ts, 1800, ["host", "x-bce-date"])
    return "PUT", PATH, query, headers + [(b"authorization", auth.encode())]


def with_auth(headers: list[tuple[bytes, bytes]], auth: bytes) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in headers if k != b"authorization"] + [(b"authorization", auth)]


def auth_of(headers: list[tuple[bytes, bytes]]) -> bytes:
    return next(v for k, v in headers if k == b"authorization")


def expect(code: ErrorCode, verifier: Verifier, request: tuple) -> BceError:
    with pytest.raises(BceError) as info:
        verified(verifier, *request)
    assert info.value.code is code
    # No secret and no signature may leak into the message.
    text = str(info.value) + info.value.message
    assert SK not in text
    for name, value in request[3]:
        if name == b"authorization" and len(value) >= 64:
            assert value.decode("ascii", "replace")[-64:] not in text
    return info.value


def test_python_form_passes(verifier: Verifier) -> None:
    assert verified(verifier, *python_request()) == AK


def test_python_form_from_official_sdk_passes(verifier: Verifier) -> None:
    sdk_headers = {b"User-Agent": b"bce-sdk-python", b"Host": HOST, b"Content-Length": 0,
                   b"x-bce-date": TS.encode()}
    auth = bce_v1_signer.sign(BceCredentials(AK, SK), b"GET", PATH.encode(), sdk_headers,
                              {b"attach": b""}, int(NOW))
    headers = [(b"host", HOST), (b"accept-encoding", b"identity"), (b"user-agent", b"bce-sdk-python"),
               (b"x-bce-date", TS.encode()), (b"content-length", b"0"), (b"authorization", auth)]
    assert verified(verifier, "GET", PATH, [("attach", "")], headers) == AK


def test_go_form_passes(verifier: Verifier) -> None:
    assert verified(verifier, *go_request()) == AK


def test_the_secret_key_comes_with_the_access_key(verifier: Verifier) -> None:
    """Handlers that decrypt adminPass use it: no second lookup."""
    assert answer(verifier, *python_request()) == (AK, SK)


def test_second_account_key(verifier: Verifier) -> None:
    headers = [(b"host", HOST), (b"x-bce-date", TS.encode())]
    auth = sign("other-ak", "other-sk", "GET", "/v2/keypair", [], headers, TS)
    assert verified(verifier, "GET", "/v2/keypair", [], headers + [(b"authorization", auth.encode())]) == "other-ak"


def test_whitespace_around_header_and_uppercase_hex_accepted(verifier: Verifier) -> None:
    method, path, query, headers = python_request()
    auth = auth_of(headers)
    assert verified(verifier, method, path, query, with_auth(headers, b"  " + auth + b" ")) == AK
    upper = auth[:-64] + auth[-64:].upper()
    assert verified(verifier, method, path, query, with_auth(headers, upper)) == AK


def test_missing_authorization_is_access_denied(verifier: Verifier) -> None:
    method, path, query, headers = python_request()
    err = expect(ErrorCode.AccessDenied, verifier,
                 (method, path, query, [h for h in headers if h[0] != b"authorization"]))
    assert err.status == 403


SIG = "0" * 64


@pytest.mark.parametrize(
    "auth",
    [
        "",
        "bce-auth-v1",
        f"bce-auth-v2/{AK}/{TS}/1800//{SIG}",
        f"BCE-AUTH-V1/{AK}/{TS}/1800//{SIG}",
        f"bce-auth-v1/{AK}/{TS}/1800/{SIG}",  # five fields
        f"bce-auth-v1/{AK}/{TS}/1800///{SIG}",  # seven fields
        f"bce-auth-v1//{TS}/1800//{SIG}",  # empty access key
        f"bce-auth-v1/{AK}/2015-04-27 08:23:49Z/1800//{SIG}",
        f"bce-auth-v1/{AK}/2015-04-27T08:23:49/1800//{SIG}",
        f"bce-auth-v1/{AK}/2015-4-27T08:23:49Z/1800//{SIG}",
        f"bce-auth-v1/{AK}/2015-13-01T00:00:00Z/1800//{SIG}",
        f"bce-auth-v1/{AK}/2015-02-29T00:00:00Z/1800//{SIG}",
        f"bce-auth-v1/{AK}/2015-04-27T24:00:00Z/1800//{SIG}",
        f"bce-auth-v1/{AK}/2015-04-27T08:23:60Z/1800//{SIG}",
        f"bce-auth-v1/{AK}/{TS}/18x0//{SIG}",
        f"bce-auth-v1/{AK}/{TS}/-1//{SIG}",
        f"bce-auth-v1/{AK}/{TS}/1800.0//{SIG}",
        f"bce-auth-v1/{AK}/{TS}///{SIG}",
        f"bce-auth-v1/{AK}/{TS}/{'9' * 5000}//{SIG}",
        f"bce-auth-v1/{AK}/{TS}/1800//{SIG[:-1]}",
        f"bce-auth-v1/{AK}/{TS}/1800//{SIG}0",
        f"bce-auth-v1/{AK}/{TS}/1800//{SIG[:-1]}g",
        f"bce-auth-v1/{AK}/{TS}/1800//",
        f"bce-auth-v1/{AK}/{TS}/1800/host\tx/{SIG}",
        f"bce-auth-v1/a\x01k/{TS}/1800//{SIG}",
        f"bce-auth-v1/a k/{TS}/1800//{SIG}",
        f"bce-auth-v1/{AK}/{TS}/1800//{SIG}\x00",
    ],
)
def test_malformed_header(verifier: Verifier, auth: str) -> None:
    method, path, query, headers = python_request()
    err = expect(ErrorCode.InvalidHTTPAuthHeader, verifier,
                 (method, path, query, with_auth(headers, auth.encode())))
    assert err.status == 400


def test_non_ascii_header_is_malformed(verifier: Verifier) -> None:
    method, path, query, headers = python_request()
    for bad in ("ключ".encode(), b"\xff\xfe"):
        auth = f"bce-auth-v1/".encode() + bad + f"/{TS}/1800//{SIG}".encode()
        expect(ErrorCode.InvalidHTTPAuthHeader, verifier, (method, path, query, with_auth(headers, auth)))


def test_unknown_access_key(verifier: Verifier) -> None:
    method, path, query, headers = python_request()
    auth = auth_of(headers).replace(AK.encode(), b"nobody")
    err = expect(ErrorCode.InvalidAccessKeyId, verifier, (method, path, query, with_auth(headers, auth)))
    assert err.status == 403


def test_check_order(verifier: Verifier, clock: FakeClock) -> None:
    method, path, query, headers = python_request()
    # malformed beats unknown key
    bad = f"bce-auth-v1/nobody/{TS}/x//{SIG}".encode()
    expect(ErrorCode.InvalidHTTPAuthHeader, verifier, (method, path, query, with_auth(headers, bad)))
    # unknown key beats expiry
    clock.advance(10_000)
    unknown = auth_of(headers).replace(AK.encode(), b"nobody")
    expect(ErrorCode.InvalidAccessKeyId, verifier, (method, path, query, with_auth(headers, unknown)))
    # expiry beats a wrong signature
    wrong = auth_of(headers)[:-64] + SIG.encode()
    expect(ErrorCode.RequestExpired, verifier, (method, path, query, with_auth(headers, wrong)))


def test_expiry_boundary(verifier: Verifier, clock: FakeClock) -> None:
    """Valid up to and including timestamp + expiration; expired just after."""
    request = python_request(expiration=60)
    clock.set(NOW + 60)
    assert verified(verifier, *request) == AK
    clock.set(NOW + 60.001)
    err = expect(ErrorCode.RequestExpired, verifier, request)
    assert err.status == 400


def test_huge_expiration_is_an_integer_not_an_error(verifier: Verifier, clock: FakeClock) -> None:
    request = python_request(expiration=10**400)
    clock.advance(10**9)
    assert verified(verifier, *request) == AK


def test_zero_expiration_valid_only_at_its_second(verifier: Verifier, clock: FakeClock) -> None:
    request = python_request(expiration=0)
    assert verified(verifier, *request) == AK
    clock.advance(0.5)
    expect(ErrorCode.RequestExpired, verifier, request)


def test_future_skew(verifier: Verifier, clock: FakeClock) -> None:
    ahead = python_request(ts=format_timestamp(NOW + 900))
    assert verified(verifier, *ahead) == AK
    too_far = python_request(ts=format_timestamp(NOW + 901))
    expect(ErrorCode.RequestExpired, verifier, too_far)
    strict = Verifier(Keys({AK: SK}), clock, max_future_skew=0)
    expect(ErrorCode.RequestExpired, strict, python_request(ts=format_timestamp(NOW + 1)))
    assert verified(strict, *python_request()) == AK


def test_past_timestamp_within_expiration(verifier: Verifier, clock: FakeClock) -> None:
    request = python_request()
    clock.advance(1799)
    assert verified(verifier, *request) == AK


def _tampered(request: tuple, **changes: object) -> tuple:
    method, path, query, headers = request
    return (changes.get("method", method), changes.get("path", path),
            changes.get("query", query), changes.get("headers", headers))


def _replace_header(headers: list[tuple[bytes, bytes]], name: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
    return [(k, value if k == name else v) for k, v in headers]


@pytest.mark.parametrize("form", [python_request, go_request])
def test_tampering_breaks_signature(verifier: Verifier, form) -> None:
    request = form()
    method, path, query, headers = request
    auth = auth_of(headers)
    flipped = auth[:-1] + (b"0" if auth[-1:] != b"0" else b"1")
    cases = [
        _tampered(request, method="DELETE"),
        _tampered(request, path=path + "x"),
        _tampered(request, path=path.upper()),
        _tampered(request, query=[("detach", "")]),
        _tampered(request, query=[("attach", "1")]),
        _tampered(request, query=query + [("extra", "")]),
        _tampered(request, query=[]),
        _tampered(request, headers=_replace_header(headers, b"host", b"127.0.0.1:8081")),
        _tampered(request, headers=_replace_header(headers, b"x-bce-date", b"2023-11-14T22:13:21Z")),
        _tampered(request, headers=[h for h in headers if h[0] != b"host"]),
        _tampered(request, headers=with_auth(headers, flipped)),
        _tampered(request, headers=with_auth(headers, auth[:-64] + SIG.encode())),
    ]
    for case in cases:
        err = expect(ErrorCode.SignatureDoesNotMatch, verifier, case)
        assert err.status == 400
    # and the untouched request still passes, so the failures above are real
    assert verified(verifier, *request) == AK


def test_wrong_secret_does_not_match(clock: FakeClock) -> None:
    verifier = Verifier(Keys({AK: "c" * 32}), clock)
    expect(ErrorCode.SignatureDoesNotMatch, verifier, python_request())


def test_go_form_ignores_unsigned_headers(verifier: Verifier) -> None:
    method, path, query, headers = go_request()
    changed = _replace_header(headers, b"user-agent", b"someone-else")
    changed = _replace_header(changed, b"content-type", b"text/plain")
    changed = _replace_header(changed, b"content-length", b"999")
    changed = changed + [(b"x-bce-request-id", b"abc"), (b"accept", b"*/*")]
    assert verified(verifier, method, path, query, changed) == AK
    # dropping a signed header still breaks it
    expect(ErrorCode.SignatureDoesNotMatch, verifier,
           (method, path, query, [h for h in changed if h[0] != b"x-bce-date"]))


def test_python_form_signs_default_set_only(verifier: Verifier) -> None:
    method, path, query, headers = python_request()
    # unsigned headers may change or appear
    changed = _replace_header(headers, b"user-agent", b"other") + [(b"accept", b"*/*")]
    assert verified(verifier, method, path, query, changed) == AK
    # an empty-valued default-set header is skipped, as the SDK does
    assert verified(verifier, method, path, query, changed + [(b"content-type", b"  ")]) == AK
    # but any new x-bce-* or default-set header is part of the signature
    for extra in [(b"x-bce-foo", b"1"), (b"content-type", b"application/json"), (b"content-md5", b"x")]:
        expect(ErrorCode.SignatureDoesNotMatch, verifier, (method, path, query, changed + [extra]))


def test_attach_with_and_without_equals_sign_the_same(verifier: Verifier) -> None:
    # ?attach and ?attach= both parse to [('attach', '')]; one signature serves both.
    py = python_request()
    assert canonical_query([("attach", "")]) == "attach="
    assert verified(verifier, *py) == AK


def test_authorization_query_parameter_is_ignored(verifier: Verifier) -> None:
    method, path, query, headers = python_request()
    assert verified(verifier, method, path, query + [("authorization", "whatever")], headers) == AK


def test_duplicate_authorization_headers_are_malformed(verifier: Verifier) -> None:
    method, path, query, headers = python_request()
    doubled = headers + [(b"authorization", auth_of(headers))]
    expect(ErrorCode.InvalidHTTPAuthHeader, verifier, (method, path, query, doubled))


@given(
    methods, any_paths,
    st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=4)
    .filter(lambda qs: all(k.lower() != "authorization" for k, _ in qs)),
    header_sets,
    st.one_of(st.none(), st.lists(header_names.map(bytes.decode), min_size=1, max_size=4)),
    st.integers(min_value=0, max_value=3600),
)
@settings(max_examples=200, deadline=None)
def test_every_signed_request_verifies(method: str, path: str, query: list[tuple[str, str]],
                                       headers: dict[bytes, bytes], signed: list[str] | None,
                                       age: int) -> None:
    assume(b"authorization" not in headers)
    ts = format_timestamp(NOW - age)
    header_list = list(headers.items())
    auth = sign(AK, SK, method, path, query, header_list, ts, 3600, signed)
    verifier = Verifier(Keys({AK: SK}), FakeClock(NOW))
    assert verified(verifier, method, path, query, header_list + [(b"authorization", auth.encode())]) == AK


def test_long_header_lines_stay_out_of_the_caches() -> None:
    """Every x-bce-* header is signed, and a client may send names of any length:
    a line is cached only when name and value together are short, so 4096
    entries of the line cache stay small whatever the requests carry."""
    from localbcc import auth

    def lookups() -> int:  # the cache is the process's: other tests fill it too
        info = auth._line_cached.cache_info()
        return info.hits + info.misses

    long_name = b"x-bce-" + b"n" * 300
    before = lookups()
    for i in range(3):
        line = canonical_headers([(long_name + str(i).encode(), b"v")], None)
        assert line == long_name.decode() + f"{i}:v"
    assert lookups() == before
    canonical_headers([(b"x-bce-short", b"v")], None)  # short lines go through it as before
    assert lookups() == before + 1


# ---------------------------------------------------------------------------
# The raw query string as clients send it (issue 17: a literal + was a space)


def _raw_query_pairs(raw: str) -> list[tuple[str, str]]:
    """What the server checks a signature against: the app's query decoding."""
    from localbcc.api.app import _query_pairs

    return _query_pairs(raw.encode("ascii"))


def _go_uri_encode(text: str) -> str:
    """bce-sdk-go util.UriEncode(text, true), byte for byte."""
    out = []
    for b in text.encode("utf-8"):
        c = chr(b)
        out.append(c if c.isascii() and (c.isalnum() or c in "-_.~") else "%%%02X" % b)
    return "".join(out)


def _go_sign(params: dict[str, str], headers: list[tuple[bytes, bytes]]) -> tuple[str, str]:
    """(the query string the Go SDK sends, its Authorization), as auth/signer.go
    and http/request.go build them: both UriEncode every key and value."""
    wire = "&".join(_go_uri_encode(k) + ("=" + _go_uri_encode(v) if v else "")
                    for k, v in params.items())
    canonical_q = "&".join(sorted(_go_uri_encode(k) + "=" + _go_uri_encode(v)
                                  for k, v in params.items() if k.lower() != "authorization"))
    import hashlib
    import hmac as hmac_mod

    prefix = f"bce-auth-v1/{AK}/{TS}/1800"
    key = signing_key(SK, prefix).encode()
    canonical_h = canonical_headers(headers, ["host", "x-bce-date"])
    creq = "\n".join(["GET", PATH, canonical_q, canonical_h]).encode()
    return wire, f"{prefix}/host;x-bce-date/" + hmac_mod.new(key, creq, hashlib.sha256).hexdigest()


_QUERY_TEXT = st.lists(st.sampled_from(list("ab+ %=&?/~*é键") + ["%2B", "%20"]),
                      max_size=8).map("".join)


@given(st.dictionaries(_QUERY_TEXT.filter(lambda k: k != "" and k.lower() != "authorization"),
                       _QUERY_TEXT, min_size=1, max_size=4))
@settings(max_examples=200, deadline=None)
def test_what_the_python_sdk_sends_verifies(params: dict[str, str]) -> None:
    """The Python SDK sends and signs normalize_string of every key and value:
    ``+`` as ``%2B``, a space as ``%20``; decoded, they are the values it signed."""
    headers = {b"host": HOST, b"x-bce-date": TS.encode()}
    auth = bce_v1_signer.sign(BceCredentials(AK, SK), b"GET", PATH.encode(), headers, params,
                              int(NOW))
    wire = sdk_utils.get_canonical_querystring(params, False).decode("ascii")
    pairs = _raw_query_pairs(wire)
    assert sorted(pairs) == sorted(params.items())
    verifier = Verifier(Keys({AK: SK}), FakeClock(NOW))
    assert verified(verifier, "GET", PATH, pairs, list(headers.items()) + [(b"authorization", auth)]) == AK


@given(st.dictionaries(_QUERY_TEXT.filter(lambda k: k != "" and k.lower() != "authorization"),
                       _QUERY_TEXT, min_size=1, max_size=4))
@settings(max_examples=200, deadline=None)
def test_what_the_go_sdk_sends_verifies(params: dict[str, str]) -> None:
    headers = [(b"host", HOST), (b"x-bce-date", TS.encode()), (b"user-agent", b"bce-sdk-go")]
    wire, auth = _go_sign(params, headers)
    pairs = _raw_query_pairs(wire)
    assert sorted(pairs) == sorted(params.items())
    verifier = Verifier(Keys({AK: SK}), FakeClock(NOW))
    assert verified(verifier, "GET", PATH, pairs, headers + [(b"authorization", auth.encode())]) == AK


@pytest.mark.parametrize("raw, value", [
    ("q=a+b", "a+b"),        # a literal + is a +, as RFC 3986 says (not form encoding)
    ("q=a%2Bb", "a+b"),      # what both SDKs send for it
    ("q=a%20b", "a b"),      # and for a space
    ("q=a++%2B+", "a++++"),
    ("q=+", "+"),
])
def test_literal_plus_in_the_raw_query_is_signed_as_a_plus(verifier: Verifier, raw: str,
                                                           value: str) -> None:
    pairs = _raw_query_pairs(raw)
    assert pairs == [("q", value)]
    assert canonical_query(pairs) == "q=" + normalize(value)
    # a client that signs the + it sends is accepted...
    method, path, _, headers = python_request(query=[("q", value)])
    assert verified(verifier, method, path, pairs, headers) == AK
    # ...and one that signed a space for it is not (that is another value)
    if "+" in raw:
        method, path, _, headers = python_request(query=[("q", value.replace("+", " "))])
        expect(ErrorCode.SignatureDoesNotMatch, verifier, (method, path, pairs, headers))
