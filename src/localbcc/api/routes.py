"""The operation table: every BCC operation localbcc serves, declared once.

An operation is found by (method, resource, with id?) and the operation flag,
a query key naming it (``?attach`` or ``?attach=``; ``None`` is the operation
taken when no flag is given). Each entry names its handler and documents the
operation for ``GET /openapi.json`` (``openapi.Doc``: operationId, summary,
query parameters, body and answer schemas, the error codes it can give), so
adding an operation is one entry here, one handler, and one domain method.
"""
from __future__ import annotations

from typing import Awaitable, Callable, NamedTuple

from ..errors import BceError, ErrorCode
from ..errors import ErrorCode as E
from . import handlers as h
from .openapi import JSON_BODY, MARKER, MAX_KEYS, TOKEN, Doc
from .openapi import query as param

Handler = Callable[..., Awaitable[dict | None]]


class Operation(NamedTuple):
    method: str
    resource: str
    with_id: bool
    flags: tuple[str | None, ...]  # every spelling that selects it (None: no flag)
    handler: Handler
    doc: Doc


_CREATE_KP = Doc("createKeypair", "Create a key pair (RSA 2048); the answer holds the private key, once.",
                 [TOKEN], "KeypairCreate", "KeypairAnswer",
                 (*JSON_BODY, E.KeypairNameInvalid, E.KeypairDescriptionInvalid,
                  E.KeypairQuotaExceedLimit, E.IdempotentParameterMismatch))
_IMPORT_KP = Doc("importKeypair", "Import an OpenSSH (or RFC 4716 / PEM) public key.",
                 [TOKEN], "KeypairImport", "KeypairAnswer",
                 (*JSON_BODY, E.KeypairNameInvalid, E.KeypairDescriptionInvalid,
                  E.PublicKeyFormatInvalid, E.KeypairPublicKeyExist, E.KeypairQuotaExceedLimit,
                  E.IdempotentParameterMismatch))
_RELEASE = Doc("releaseInstance", "Release (delete) an instance that is Running or Stopped.",
                [], None, None, (E.NoSuchObject, E.InstanceStatusForbidden))
_BIND = (E.KeypairNotExist, E.KeypairInstanceNotExist, E.UnsupportOsType,
         E.KeypairInstanceStatusForbidden, *JSON_BODY)

OPERATIONS: tuple[Operation, ...] = (
    # -- key pairs (§4) --
    Operation("POST", "keypair", False, (None, "create"), h.create_keypair, _CREATE_KP),
    Operation("POST", "keypair", False, ("import",), h.import_keypair, _IMPORT_KP),
    Operation("PUT", "keypair", False, (None, "import"), h.import_keypair, _IMPORT_KP),
    Operation("GET", "keypair", False, (None,), h.list_keypairs, Doc(
        "listKeypairs", "List key pairs in creation order, a page at a time.",
        [MARKER, MAX_KEYS, param("name", {"type": "string"}, "Exact-name filter.")],
        None, "KeypairList", (E.InappropriateJSON,))),
    Operation("GET", "keypair", True, (None,), h.get_keypair, Doc(
        "getKeypair", "One key pair (never its private key).", [], None, "KeypairAnswer",
        (E.KeypairNotExist,))),
    Operation("PUT", "keypair", True, ("attach",), h.attach_keypair, Doc(
        "attachKeypair", "Bind the key pair to instances, all or nothing (§4.6).", [],
        "InstanceIds", "BatchOperationResp", (*_BIND, E.AttachAttachedKeypair))),
    Operation("PUT", "keypair", True, ("detach",), h.detach_keypair, Doc(
        "detachKeypair", "Unbind the key pair from the instances that use it.", [],
        "InstanceIds", "BatchOperationResp", _BIND)),
    Operation("PUT", "keypair", True, ("rename",), h.rename_keypair, Doc(
        "renameKeypair", "Rename a key pair.", [], "KeypairRename", None,
        (E.KeypairNotExist, E.KeypairNameInvalid, *JSON_BODY))),
    Operation("PUT", "keypair", True, ("updateDesc",), h.update_keypair_desc, Doc(
        "updateKeypairDescription", "Change (or with \"\" clear) a key pair's description.", [],
        "KeypairDescription", None, (E.KeypairNotExist, E.KeypairDescriptionInvalid, *JSON_BODY))),
    Operation("DELETE", "keypair", True, (None, "delete"), h.delete_keypair, Doc(
        "deleteKeypair", "Delete a key pair that no instance uses (a Go SDK body is ignored).",
        [], None, None, (E.KeypairNotExist, E.DeleteKeypairInUse))),
    # -- instances (§5.2) --
    Operation("POST", "instance", False, (None,), h.create_instance, Doc(
        "createInstance", "Create 1-100 instances; they start (Starting, then Running).",
        [TOKEN], "InstanceCreate", "InstanceIdsAnswer",
        (*JSON_BODY, E.NoSuchObject, E.KeypairNotExist, E.UnsupportOsType,
         E.InstanceQuotaExceedLimit, E.IdempotentParameterMismatch))),
    Operation("GET", "instance", False, (None,), h.list_instances, Doc(
        "listInstances", "List instances in creation order, a page at a time.",
        [MARKER, MAX_KEYS,
         param("status", {"type": "string"}, "Comma-separated statuses to keep."),
         param("keypairId", {"type": "string"}, "Only instances bound to this key pair."),
         param("instanceIds", {"type": "string"}, "Comma-separated ids, at most 1000.")],
        None, "InstanceList", (E.InappropriateJSON,))),
    Operation("GET", "instance", True, (None,), h.get_instance, Doc(
        "getInstance", "One instance.", [], None, "InstanceAnswer", (E.NoSuchObject,))),
    Operation("PUT", "instance", True, ("start",), h.start_instance, Doc(
        "startInstance", "Start a Stopped instance.", [], None, None,
        (E.NoSuchObject, E.StartInstanceWhenCreating, E.StartInstanceOperationForbidden))),
    Operation("PUT", "instance", True, ("stop",), h.stop_instance, Doc(
        "stopInstance", "Stop a Running instance.", [], "StopOptions", None,
        (E.NoSuchObject, E.StopInstanceOperationForbidden))),
    Operation("PUT", "instance", True, ("reboot",), h.reboot_instance, Doc(
        "rebootInstance", "Reboot a Running instance.", [], "StopOptions", "BatchOperationResp",
        (E.NoSuchObject, E.RebootInstanceOperationForbidden))),
    Operation("PUT", "instance", True, ("rebuild",), h.rebuild_instance, Doc(
        "rebuildInstance", "Reinstall the system from an image, with a key pair or a password.",
        [], "InstanceRebuild", None,
        (E.NoSuchObject, E.KeypairNotExist, E.UnsupportOsType, E.InstanceStatusForbidden,
         *JSON_BODY))),
    Operation("DELETE", "instance", True, (None,), h.release_instance, _RELEASE),
    Operation("POST", "instance", True, (None,), h.release_instance, _RELEASE),
    # -- images (§5.1) --
    Operation("GET", "image", False, (None,), h.list_images, Doc(
        "listImages", "List the public system images.",
        [MARKER, MAX_KEYS, param("imageType", {"type": "string"}, "All (default) or System.")],
        None, "ImageList", (E.InappropriateJSON,))),
    Operation("GET", "image", True, (None,), h.get_image, Doc(
        "getImage", "One image.", [], None, "ImageAnswer", (E.NoSuchObject,))),
)


def _routes(operations: tuple[Operation, ...]) -> dict[tuple[str, str, bool], dict[str | None, Handler]]:
    table: dict[tuple[str, str, bool], dict[str | None, Handler]] = {}
    for op in operations:
        for flag in op.flags:
            flags = table.setdefault((op.method, op.resource, op.with_id), {})
            assert flag not in flags, f"two operations for {op.method} {op.resource} ?{flag}"
            flags[flag] = op.handler
    return table


#: What the request path looks up: (method, resource, with id?) -> flag -> handler.
ROUTES = _routes(OPERATIONS)

#: Every flag any operation knows: a bare key outside this set and outside an
#: operation's own parameters is an unknown flag (InvalidURI, §3 [decision]).
ALL_FLAGS = frozenset(f for table in ROUTES.values() for f in table if f)
def resolve(method: str, path: str, query: dict[str, str]) -> tuple[Handler, str | None, str | None]:
    """(handler, item id, flag) for a /v2 request, or a BceError."""
    # A NUL can name nothing, and PostgreSQL refuses it in text (a 500 otherwise).
    if "\x00" in path or any("\x00" in k or "\x00" in v for k, v in query.items()):
        raise BceError(ErrorCode.InvalidURI, "The request URI contains a NUL character.")
    parts = path.split("/")
    # parts: ['', 'v2', resource, id?]; a trailing slash is tolerated
    if len(parts) > 3 and parts[-1] == "":
        parts.pop()
    if len(parts) not in (3, 4) or not parts[2]:
        raise BceError(ErrorCode.InvalidURI)
    item_id = parts[3] if len(parts) == 4 else None
    if item_id == "":
        raise BceError(ErrorCode.InvalidURI)
    table = ROUTES.get((method, parts[2], item_id is not None))
    if table is None:
        raise BceError(ErrorCode.InvalidURI)
    flags = [k for k in query if k in ALL_FLAGS or (query[k] == "" and k not in _PARAMS)]
    if len(flags) > 1 or (flags and flags[0] not in table) or (not flags and None not in table):
        raise BceError(ErrorCode.InvalidURI,
                       f"No operation {method} {parts[2]}{'/{id}' if item_id else ''}"
                       f"{'?' + flags[0] if flags else ''}.")
    flag = flags[0] if flags else None
    return table[flag], item_id, flag


# Query parameters that may legitimately arrive with an empty value.
_PARAMS = frozenset({"clientToken", "marker", "maxKeys", "name", "keypairId", "instanceIds",
                     "status", "imageType", "imageName", "containsFailed", "zoneName",
                     "internalIp", "instanceNames", "dedicatedHostId"})
