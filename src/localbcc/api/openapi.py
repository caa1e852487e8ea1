"""The OpenAPI 3 document of every operation localbcc serves (``GET /openapi.json``).

Hand-written from the routing table's point of view: one OpenAPI operation per
entry of :data:`localbcc.api.routes.ROUTES` (method, resource, with id?, flag),
each marked with ``x-localbcc-route`` so a test can check that the two agree.

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
from typing import Any

import orjson

from ..errors import ErrorCode as E

# Codes any /v2 operation may answer: auth (§2), routing and transport (§3).
_COMMON = (E.AccessDenied, E.InvalidHTTPAuthHeader, E.InvalidAccessKeyId,
           E.SignatureDoesNotMatch, E.RequestExpired, E.InvalidURI, E.InvalidHTTPRequest,
           E.RequestEntityTooLarge, E.RequestTimeout, E.ServiceUnavailable)
_JSON_BODY = (E.MalformedJSON, E.InappropriateJSON)

_KP_ID = {"type": "string", "pattern": "^k-[A-Za-z0-9]{8}$", "example": "k-AbC12345"}
_INST_ID = {"type": "string", "pattern": "^i-[A-Za-z0-9]{8}$", "example": "i-AbC12345"}
_IMG_ID = {"type": "string", "example": "m-Ubt2204a"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


_MARKER = _query("marker", {"type": "string"}, "Id the page starts at (inclusive); empty: from the start.")
_MAX_KEYS = _query("maxKeys", {"type": "integer", "minimum": 1},
                   "Page size, at most 1000 (larger is clamped); default 1000.")
_TOKEN = _query("clientToken", {"type": "string", "maxLength": 64, "pattern": "^[\\x20-\\x7e]*$"},
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

# (method, resource, with id?, flag) -> (operationId, summary, query params,
# request body schema or None, success schema or None for an empty 200, codes)
_KP_PATH, _INST_PATH, _IMG_PATH = ("{keypairId}", _KP_ID), ("{instanceId}", _INST_ID), ("{imageId}", _IMG_ID)
_CREATE_KP = ("createKeypair", "Create a key pair (RSA 2048); the answer holds the private key, once.",
              [_TOKEN], "KeypairCreate", "KeypairAnswer",
              (*_JSON_BODY, E.KeypairNameInvalid, E.KeypairDescriptionInvalid,
               E.KeypairQuotaExceedLimit, E.IdempotentParameterMismatch))
_IMPORT_KP = ("importKeypair", "Import an OpenSSH (or RFC 4716 / PEM) public key.",
              [_TOKEN], "KeypairImport", "KeypairAnswer",
              (*_JSON_BODY, E.KeypairNameInvalid, E.KeypairDescriptionInvalid,
               E.PublicKeyFormatInvalid, E.KeypairPublicKeyExist, E.KeypairQuotaExceedLimit,
               E.IdempotentParameterMismatch))
_BIND = (E.KeypairNotExist, E.KeypairInstanceNotExist, E.UnsupportOsType,
         E.KeypairInstanceStatusForbidden, *_JSON_BODY)
_DELETE_KP: tuple = ("deleteKeypair", "Delete a key pair that no instance uses (a Go SDK body is ignored).",
              [], None, None, (E.KeypairNotExist, E.DeleteKeypairInUse))
_RELEASE: tuple = ("releaseInstance", "Release (delete) an instance that is Running or Stopped.",
            [], None, None, (E.NoSuchObject, E.InstanceStatusForbidden))

OPERATIONS: dict[tuple[str, str, bool, str | None], tuple] = {
    ("POST", "keypair", False, None): _CREATE_KP,
    ("POST", "keypair", False, "create"): _CREATE_KP,
    ("POST", "keypair", False, "import"): _IMPORT_KP,
    ("PUT", "keypair", False, None): _IMPORT_KP,
    ("PUT", "keypair", False, "import"): _IMPORT_KP,
    ("GET", "keypair", False, None): (
        "listKeypairs", "List key pairs in creation order, a page at a time.",
        [_MARKER, _MAX_KEYS, _query("name", {"type": "string"}, "Exact-name filter.")],
        None, "KeypairList", (E.InappropriateJSON,)),
    ("GET", "keypair", True, None): (
        "getKeypair", "One key pair (never its private key).", [], None, "KeypairAnswer",
        (E.KeypairNotExist,)),
    ("PUT", "keypair", True, "attach"): (
        "attachKeypair", "Bind the key pair to instances, all or nothing (§4.6).", [],
        "InstanceIds", "BatchOperationResp", (*_BIND, E.AttachAttachedKeypair)),
    ("PUT", "keypair", True, "detach"): (
        "detachKeypair", "Unbind the key pair from the instances that use it.", [],
        "InstanceIds", "BatchOperationResp", _BIND),
    ("PUT", "keypair", True, "rename"): (
        "renameKeypair", "Rename a key pair.", [], "KeypairRename", None,
        (E.KeypairNotExist, E.KeypairNameInvalid, *_JSON_BODY)),
    ("PUT", "keypair", True, "updateDesc"): (
        "updateKeypairDescription", "Change (or with \"\" clear) a key pair's description.", [],
        "KeypairDescription", None, (E.KeypairNotExist, E.KeypairDescriptionInvalid, *_JSON_BODY)),
    ("DELETE", "keypair", True, None): _DELETE_KP,
    ("DELETE", "keypair", True, "delete"): _DELETE_KP,
    ("POST", "instance", False, None): (
        "createInstance", "Create 1-100 instances; they start (Starting, then Running).",
        [_TOKEN], "InstanceCreate", "InstanceIdsAnswer",
        (*_JSON_BODY, E.NoSuchObject, E.KeypairNotExist, E.UnsupportOsType,
         E.InstanceQuotaExceedLimit, E.IdempotentParameterMismatch)),
    ("GET", "instance", False, None): (
        "listInstances", "List instances in creation order, a page at a time.",
        [_MARKER, _MAX_KEYS,
         _query("status", {"type": "string"}, "Comma-separated statuses to keep."),
         _query("keypairId", {"type": "string"}, "Only instances bound to this key pair."),
         _query("instanceIds", {"type": "string"}, "Comma-separated ids, at most 1000.")],
        None, "InstanceList", (E.InappropriateJSON,)),
    ("GET", "instance", True, None): (
        "getInstance", "One instance.", [], None, "InstanceAnswer", (E.NoSuchObject,)),
    ("PUT", "instance", True, "start"): (
        "startInstance", "Start a Stopped instance.", [], None, None,
        (E.NoSuchObject, E.StartInstanceWhenCreating, E.StartInstanceOperationForbidden)),
    ("PUT", "instance", True, "stop"): (
        "stopInstance", "Stop a Running instance.", [], "StopOptions", None,
        (E.NoSuchObject, E.StopInstanceOperationForbidden)),
    ("PUT", "instance", True, "reboot"): (
        "rebootInstance", "Reboot a Running instance.", [], "StopOptions", "BatchOperationResp",
        (E.NoSuchObject, E.RebootInstanceOperationForbidden)),
    ("PUT", "instance", True, "rebuild"): (
        "rebuildInstance", "Reinstall the system from an image, with a key pair or a password.",
        [], "InstanceRebuild", None,
        (E.NoSuchObject, E.KeypairNotExist, E.UnsupportOsType, E.InstanceStatusForbidden,
         *_JSON_BODY)),
    ("DELETE", "instance", True, None): _RELEASE,
    ("POST", "instance", True, None): _RELEASE,
    ("GET", "image", False, None): (
        "listImages", "List the public system images.",
        [_MARKER, _MAX_KEYS, _query("imageType", {"type": "string"}, "All (default) or System.")],
        None, "ImageList", (E.InappropriateJSON,)),
    ("GET", "image", True, None): (
        "getImage", "One image.", [], None, "ImageAnswer", (E.NoSuchObject,)),
}

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


def _operation(route: tuple, spec: tuple, op_id: str) -> dict:
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

    paths: dict[str, dict] = {}
    seen: set[str] = set()
    for route, spec in OPERATIONS.items():
        method, resource, with_id, flag = route
        op_id = spec[0]
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
