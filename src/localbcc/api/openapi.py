"""The OpenAPI 3 document of every operation localbcc serves (``GET /openapi.json``).

Rendered from the operation table, :data:`localbcc.api.routes.OPERATIONS`,
where each operation's :class:`Doc` stands beside its route and handler: one
OpenAPI operation per (method, resource, with id?, flag), each marked with
``x-localbcc-route`` so a test can check that the two agree.

BCC selects an operation with a query *flag* (``PUT /v2/keypair/{id}?attach``),
which OpenAPI cannot express as two operations on one path; the flag is
therefore written into the path key (``/v2/keypair/{keypairId}?attach``), as
tools that fuzz or call the API need (a query string in a path key is outside
the letter of OpenAPI 3, and tools that reject it can strip it).

Error answers list, per status, exactly the BCE codes that operation can give,
so a fuzzer that validates responses against the document also checks that no
unexpected code comes back.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from ..errors import ErrorCode as E

# Codes any /v2 operation may answer: auth (§2), routing and transport (§3).
_COMMON = (E.AccessDenied, E.InvalidHTTPAuthHeader, E.InvalidAccessKeyId,
           E.SignatureDoesNotMatch, E.RequestExpired, E.InvalidURI, E.InvalidHTTPRequest,
           E.RequestEntityTooLarge, E.RequestTimeout, E.ServiceUnavailable)
JSON_BODY = (E.MalformedJSON, E.InappropriateJSON)


class Doc(NamedTuple):
    """One operation's documentation, declared beside its route (routes.OPERATIONS)."""
    name: str  # the operationId
    summary: str
    params: list  # query parameters (query(...), MARKER, MAX_KEYS, TOKEN)
    body: str | None  # request body schema, or None
    answer: str | None  # success schema, or None for an empty 200
    errors: tuple  # the codes it can give, besides the common ones

_KP_ID = {"type": "string", "pattern": "^k-[A-Za-z0-9]{8}$", "example": "k-AbC12345"}
_INST_ID = {"type": "string", "pattern": "^i-[A-Za-z0-9]{8}$", "example": "i-AbC12345"}
_IMG_ID = {"type": "string", "example": "m-Ubt2204a"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


MARKER = query("marker", {"type": "string"}, "Id the page starts at (inclusive); empty: from the start.")
MAX_KEYS = query("maxKeys", {"type": "integer", "minimum": 1},
                   "Page size, at most 1000 (larger is clamped); default 1000.")
TOKEN = query("clientToken", {"type": "string", "maxLength": 64, "pattern": "^[\\x20-\\x7e]*$"},
                "Idempotency token (§6): the same token and request answer as the first time.")

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "description": "The BCE error envelope; all three fields always present.",
        "required": ["requestId", "code", "message"],
        "properties": {"requestId": {"type": "string", "format": "uuid"},
                       "code": {"type": "string", "enum": sorted({c.wire for c in E})},
                       "message": {"type": "string"}},
    },
    "Keypair": {
        "type": "object",
        "required": ["keypairId", "name", "description", "publicKey", "fingerPrint",
                     "instanceCount", "regionId", "createdTime"],
        "properties": {
            "keypairId": _KP_ID, "name": {"type": "string", "minLength": 1, "maxLength": 65},
            "description": {"type": "string", "maxLength": 140},
            "publicKey": {"type": "string"},
            "fingerPrint": {"type": "string", "pattern": "^[0-9a-f]{2}(:[0-9a-f]{2}){15}$"},
            "instanceCount": {"type": "integer", "minimum": 0},
            "regionId": {"type": "string"},
            "createdTime": {"type": "string", "pattern": "^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$"},
            "createTime": {"type": "string"},
            "privateKey": {"type": "string", "description": "Only in the answer to create."},
        },
    },
    "KeypairAnswer": {"type": "object", "required": ["keypair"],
                      "properties": {"keypair": _ref("Keypair")}},
    "KeypairList": {
        "type": "object", "required": ["marker", "isTruncated", "maxKeys", "keypairs"],
        "properties": {"marker": {"type": "string"}, "isTruncated": {"type": "boolean"},
                       "nextMarker": {"type": "string"}, "maxKeys": {"type": "integer"},
                       "keypairs": {"type": "array", "items": _ref("Keypair")}},
    },
    "KeypairCreate": {
        "type": "object", "required": ["name"],
        "properties": {"name": {"type": "string"},
                       "description": {"type": "string", "nullable": True}},
    },
    "KeypairImport": {
        "type": "object", "required": ["name", "publicKey"],
        "properties": {"name": {"type": "string"},
                       "description": {"type": "string", "nullable": True},
                       "publicKey": {"type": "string"}},
    },
    "KeypairRename": {"type": "object", "required": ["name"],
                      "properties": {"name": {"type": "string"}}},
    "KeypairDescription": {"type": "object", "required": ["description"],
                           "properties": {"description": {"type": "string", "nullable": True}}},
    "InstanceIds": {
        "type": "object", "required": ["instanceIds"],
        "properties": {"instanceIds": {"type": "array", "minItems": 1, "maxItems": 100,
                                       "items": {"type": "string"}}},
    },
    "BatchOperationResp": {
        "type": "object", "required": ["requestId", "failedInstanceIdList"],
        "properties": {"requestId": {"type": "string"},
                       "failedInstanceIdList": {"type": "array", "items": {"type": "string"}}},
    },
    "Instance": {
        "type": "object",
        "required": ["id", "name", "hostname", "status", "imageId", "instanceType", "cpuCount",
                     "memoryCapacityInGB", "zoneName", "createTime", "internalIp", "publicIp",
                     "keypairId", "keypairName"],
        "properties": {
            "id": _INST_ID, "name": {"type": "string"}, "hostname": {"type": "string"},
            "status": {"type": "string", "enum": ["Starting", "Running", "Stopping", "Stopped"]},
            "desc": {"type": "string"}, "instanceType": {"type": "string"},
            "cpuCount": {"type": "integer"}, "memoryCapacityInGB": {"type": "integer"},
            "imageId": {"type": "string"}, "imageName": {"type": "string"},
            "osName": {"type": "string"}, "osVersion": {"type": "string"},
            "osArch": {"type": "string"}, "osType": {"type": "string", "enum": ["linux", "windows"]},
            "zoneName": {"type": "string"}, "paymentTiming": {"type": "string"},
            "createTime": {"type": "string"}, "expireTime": {"type": "string", "nullable": True},
            "internalIp": {"type": "string"}, "publicIp": {"type": "string"},
            "keypairId": {"type": "string"}, "keypairName": {"type": "string"},
            "keypairInForce": {"type": "boolean"},
        },
    },
    "InstanceAnswer": {"type": "object", "required": ["instance"],
                       "properties": {"instance": _ref("Instance")}},
    "InstanceList": {
        "type": "object", "required": ["marker", "isTruncated", "maxKeys", "instances"],
        "properties": {"marker": {"type": "string"}, "isTruncated": {"type": "boolean"},
                       "nextMarker": {"type": "string"}, "maxKeys": {"type": "integer"},
                       "instances": {"type": "array", "items": _ref("Instance")}},
    },
    "InstanceCreate": {
        "type": "object", "required": ["imageId"],
        "properties": {
            "imageId": _IMG_ID, "purchaseCount": {"type": "integer", "minimum": 1, "maximum": 100},
            "name": {"type": "string"}, "hostname": {"type": "string"},
            "keypairId": {"type": "string"},
            "adminPass": {"type": "string", "description": "AES-128-ECB with the secret key, hex."},
            "cpuCount": {"type": "integer", "minimum": 1, "maximum": 1024},
            "memoryCapacityInGB": {"type": "integer", "minimum": 1, "maximum": 16384},
            "instanceType": {"type": "string"}, "zoneName": {"type": "string"},
            "billing": {"type": "object"},
        },
    },
    "InstanceIdsAnswer": {"type": "object", "required": ["instanceIds"],
                          "properties": {"instanceIds": {"type": "array", "items": _INST_ID}}},
    "InstanceRebuild": {
        "type": "object", "required": ["imageId"],
        "properties": {"imageId": _IMG_ID, "keypairId": {"type": "string"},
                       "adminPass": {"type": "string"}},
    },
    "StopOptions": {"type": "object", "properties": {"forceStop": {"type": "boolean"},
                                                     "stopWithNoCharge": {"type": "boolean"}}},
    "Image": {
        "type": "object", "required": ["id", "name", "type", "osType", "status"],
        "properties": {"id": _IMG_ID, "name": {"type": "string"}, "type": {"type": "string"},
                       "osType": {"type": "string", "enum": ["linux", "windows"]},
                       "osVersion": {"type": "string"}, "osArch": {"type": "string"},
                       "osName": {"type": "string"}, "status": {"type": "string"},
                       "createTime": {"type": "string"}, "desc": {"type": "string"}},
    },
    "ImageAnswer": {"type": "object", "required": ["image"], "properties": {"image": _ref("Image")}},
    "ImageList": {
        "type": "object", "required": ["marker", "isTruncated", "maxKeys", "images"],
        "properties": {"marker": {"type": "string"}, "isTruncated": {"type": "boolean"},
                       "nextMarker": {"type": "string"}, "maxKeys": {"type": "integer"},
                       "images": {"type": "array", "items": _ref("Image")}},
    },
}

_KP_PATH, _INST_PATH, _IMG_PATH = ("{keypairId}", _KP_ID), ("{instanceId}", _INST_ID), ("{imageId}", _IMG_ID)
_ITEM = {"keypair": _KP_PATH, "instance": _INST_PATH, "image": _IMG_PATH}
_REQUEST_ID = {"x-bce-request-id": {"required": True, "description": "A fresh UUID4, also in error bodies.",
                                    "schema": {"type": "string", "format": "uuid"}}}


def path_key(resource: str, with_id: bool, flag: str | None) -> str:
    path = f"/v2/{resource}" + (f"/{_ITEM[resource][0]}" if with_id else "")
    return path + (f"?{flag}" if flag else "")


def _errors(codes) -> dict:
    by_status: dict[int, set[str]] = {}
    for code in (*_COMMON, *codes):
        by_status.setdefault(code.status, set()).add(code.wire)
    return {
        str(status): {
            "description": ", ".join(sorted(wires)),
            "headers": _REQUEST_ID,
            "content": {"application/json": {"schema": {"allOf": [
                _ref("Error"),
                {"type": "object", "properties": {"code": {"type": "string", "enum": sorted(wires)}}},
            ]}}},
        }
        for status, wires in sorted(by_status.items())
    }


def _operation(route: tuple, spec: Doc, op_id: str) -> dict:
    method, resource, with_id, flag = route
    _, summary, params, body, answer, codes = spec
    op: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": [resource],
        "x-localbcc-route": {"method": method, "resource": resource, "withId": with_id,
                             "flag": flag},
        "parameters": list(params),
        "responses": {"200": {"description": "Success.", "headers": _REQUEST_ID}, **_errors(codes)},
    }
    if with_id:
        name, schema = _ITEM[resource]
        op["parameters"] = [{"name": name[1:-1], "in": "path", "required": True,
                             "schema": schema}, *params]
    if body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": _ref(body)}}}
    if answer is not None:
        op["responses"]["200"]["content"] = {"application/json": {"schema": _ref(answer)}}
    return op


def _public_paths() -> dict:
    ok = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}
    return {
        "/healthz": {"get": {
            "operationId": "health", "summary": "Liveness: 200 while the process serves.",
            "security": [], "tags": ["service"],
            "responses": {"200": {"description": "Alive.", "headers": _REQUEST_ID,
                                  "content": {"application/json": {"schema": ok}}}}}},
        "/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document.", "security": [],
            "tags": ["service"],
            "responses": {"200": {"description": "OpenAPI 3 document.", "headers": _REQUEST_ID,
                                  "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/metrics": {"get": {
            "operationId": "metrics",
            "summary": "Prometheus text: request counts and latency histograms by operation "
                       "and code. Loopback clients only, unless started with --metrics-public.",
            "security": [], "tags": ["service"],
            "responses": {
                "200": {"description": "Metrics.", "headers": _REQUEST_ID,
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                "403": {"description": "AccessDenied: not a loopback client.",
                        "headers": _REQUEST_ID,
                        "content": {"application/json": {"schema": _ref("Error")}}}}}},
    }


def document() -> dict:
    """The OpenAPI document as a dict (a fresh copy each call)."""
    return orjson.loads(document_bytes())


@lru_cache(maxsize=1)
def document_bytes() -> bytes:
    from .. import __version__

    from .routes import OPERATIONS

    paths: dict[str, dict] = {}
    seen: set[str] = set()
    for route, spec in ((op[:3] + (flag,), op.doc) for op in OPERATIONS for flag in op.flags):
        method, resource, with_id, flag = route
        op_id = spec.name
        if op_id in seen:  # another spelling of an operation: createKeypair_post_create
            op_id = f"{op_id}_{method.lower()}" + (f"_{flag}" if flag else "")
        seen.add(op_id)
        paths.setdefault(path_key(resource, with_id, flag), {})[method.lower()] = \
            _operation(route, spec, op_id)
    paths.update(_public_paths())
    doc = {
        "openapi": "3.0.3",
        "info": {
            "title": "localbcc: BCC key pair, instance and image API",
            "version": __version__,
            "description": "The slice of Baidu Cloud BCC OpenAPI v2 that localbcc implements. "
                           "Every /v2 request is signed with bce-auth-v1 (Authorization header). "
                           "An operation flag is shown as the query string of its path key.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bceAuth": {
                "type": "apiKey", "in": "header", "name": "Authorization",
                "description": "bce-auth-v1/{accessKeyId}/{timestamp}/{expirationSeconds}/"
                               "{signedHeaders}/{signature}"}},
        },
        "security": [{"bceAuth": []}],
        "paths": paths,
    }
    return orjson.dumps(doc)
