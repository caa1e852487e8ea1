"""Group 2: the OpenAPI document matches the routing table, and schemathesis
finds no 5xx, no error outside the BCE envelope and no answer that violates
the document, for every operation.

Budget: about 25 s per storage backend (MAX_EXAMPLES per operation and mode).
"""
from __future__ import annotations

import os

import time
import urllib.request
from urllib.parse import unquote, urlsplit

import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from localbcc.api.routes import ROUTES
from localbcc.auth import format_timestamp, sign

from ..api.rawhttp import query_pairs
from .helpers import ENVELOPE_KEYS, openssh_ed25519

MAX_EXAMPLES = int(os.environ.get("LOCALBCC_FUZZ_EXAMPLES", "12"))  # per operation and mode
# CI replays the same examples every run, so a red CI always means a change broke
# something; elsewhere each run explores new inputs (set CI=true to replay CI's).
DERANDOMIZE = os.environ.get("CI") == "true"


def _document(server) -> dict:
    with urllib.request.urlopen(f"http://{server.endpoint}/openapi.json", timeout=10) as resp:
        assert resp.status == 200
        return orjson.loads(resp.read())


def test_every_route_is_documented_and_nothing_else(server):
    doc = _document(server)
    assert doc["openapi"].startswith("3.")
    documented = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            route = op.get("x-localbcc-route")
            if route is None:
                assert not path.startswith("/v2"), path  # only /healthz and friends
                continue
            key = (route["method"], route["resource"], route["withId"], route["flag"])
            assert key not in documented, key
            documented[key] = (method, path)
            # the path key says the same as the marker
            assert method.upper() == route["method"]
            base, _, flag = path.partition("?")
            assert (flag or None) == route["flag"]
            assert base.split("/")[2] == route["resource"]
            assert ("{" in base) == route["withId"]
            assert "200" in op["responses"] and "400" in op["responses"]
    routed = {(m, res, with_id, flag) for (m, res, with_id), table in ROUTES.items()
              for flag in table}
    assert routed == set(documented), (routed ^ set(documented))
    # every error answer is the envelope
    error = doc["components"]["schemas"]["Error"]
    assert set(error["required"]) == ENVELOPE_KEYS


class BceAuth(requests.auth.AuthBase):
    """Signs each request as the Python SDK does (bce-auth-v1, default header set)."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str):
        self.endpoint, self.ak, self.sk = endpoint, access_key, secret_key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        # The server checks what it decodes: uvicorn unquotes the path, the app parses the query.
        url = urlsplit(r.url)
        r.headers["Host"] = self.endpoint
        ts = format_timestamp(time.time())
        r.headers["x-bce-date"] = ts
        headers = [(k.lower().encode(), str(v).encode("latin-1", "replace")) for k, v in r.headers.items()]
        pairs = query_pairs(url.query)  # what the server decodes: a literal + is a +
        r.headers["Authorization"] = sign(self.ak, self.sk, r.method, unquote(url.path), pairs,
                                          headers, ts)
        return r


def bce_envelope(ctx, response, case):
    """Every error is the BCE envelope with the request id of its header (§3)."""
    if response.status_code < 400:
        return None
    body = orjson.loads(response.content)
    assert isinstance(body, dict) and set(body) >= ENVELOPE_KEYS, body
    assert all(isinstance(body[k], str) and body[k] for k in ENVELOPE_KEYS), body
    assert body["requestId"] == response.headers["x-bce-request-id"][0], body
    return True


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, bce_envelope]


@pytest.fixture
def fuzz_target(fresh_server):
    """A private server (the fuzzer fills its account) with a few real resources,
    so generated requests also reach the success paths."""
    srv = fresh_server("--transition-seconds", "0")
    client = srv.client()
    real = {"keypairId": [], "instanceId": [], "imageId": ["m-Ubt2204a", "m-Win2019d"]}
    for i in range(3):
        kp = client.import_keypair(keypair_name=f"fz{i}", public_key=openssh_ed25519())
        real["keypairId"].append(kp.keypair.keypair_id)
    ids = client.create_instance(1, 1, "m-Ubt2204a", purchase_count=4).instance_ids
    real["instanceId"] += ids
    return srv, real


def test_schemathesis_finds_no_server_error_and_no_violation(fuzz_target):
    srv, real = fuzz_target
    schema = schemathesis.openapi.from_url(f"http://{srv.endpoint}/openapi.json")
    ak = next(iter(srv.credentials))
    auth = BceAuth(srv.endpoint, ak, srv.credentials[ak])
    base_url = f"http://{srv.endpoint}"
    session = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= sum(len(t) for t in ROUTES.values())
    tested, statuses = 0, {}

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=DERANDOMIZE,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy, pick=st.integers(min_value=0, max_value=7))
            def run(case, pick):
                nonlocal tested
                # Half the time, aim at resources that exist (else mostly 404s).
                if mode is GenerationMode.POSITIVE and pick < 4 and case.path_parameters:
                    for name in case.path_parameters:
                        if real.get(name):
                            case.path_parameters[name] = real[name][pick % len(real[name])]
                response = case.call(base_url=base_url, session=session, auth=auth, timeout=10)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                tested += 1
                case.validate_response(response, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                # Nothing of this operation can be made invalid (no parameters, no body).
                assert mode is GenerationMode.NEGATIVE, operation.label
                assert not operation.body and not list(operation.iter_parameters()), operation.label
    print("schemathesis statuses:", statuses, "requests:", tested)
    # it did exercise both sides: successes and refusals
    assert statuses.get(200, 0) > 20 and sum(v for k, v in statuses.items() if k >= 400) > 50, statuses
    assert tested >= len(operations) * 4
