"""The routing table: (method, resource, with id?) and the operation flag → handler.

A flag is a query key naming an operation (``?attach`` or ``?attach=``).
``None`` is the operation taken when no flag is given.
"""
from __future__ import annotations

from typing import Awaitable, Callable

from ..errors import BceError, ErrorCode
from . import handlers as h

Handler = Callable[..., Awaitable[dict | None]]

ROUTES: dict[tuple[str, str, bool], dict[str | None, Handler]] = {
    ("POST", "keypair", False): {None: h.create_keypair, "create": h.create_keypair,
                                 "import": h.import_keypair},
    ("PUT", "keypair", False): {None: h.import_keypair, "import": h.import_keypair},
    ("GET", "keypair", False): {None: h.list_keypairs},
    ("GET", "keypair", True): {None: h.get_keypair},
    ("PUT", "keypair", True): {"attach": h.attach_keypair, "detach": h.detach_keypair,
                               "rename": h.rename_keypair, "updateDesc": h.update_keypair_desc},
    ("DELETE", "keypair", True): {None: h.delete_keypair, "delete": h.delete_keypair},
    ("POST", "instance", False): {None: h.create_instance},
    ("GET", "instance", False): {None: h.list_instances},
    ("GET", "instance", True): {None: h.get_instance},
    ("PUT", "instance", True): {"start": h.start_instance, "stop": h.stop_instance,
                                "reboot": h.reboot_instance, "rebuild": h.rebuild_instance},
    ("DELETE", "instance", True): {None: h.release_instance},
    ("POST", "instance", True): {None: h.release_instance},
    ("GET", "image", False): {None: h.list_images},
    ("GET", "image", True): {None: h.get_image},
}

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
