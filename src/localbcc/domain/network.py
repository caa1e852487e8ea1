"""Addresses of instances, derived from their creation position so they are
stable across restarts and never collide."""
from __future__ import annotations

import ipaddress

_PUBLIC_BASE = int(ipaddress.IPv4Address("127.16.0.0"))
_INTERNAL_BASE = int(ipaddress.IPv4Address("10.0.0.0"))


def public_ip(seq: int) -> str:
    return str(ipaddress.IPv4Address(_PUBLIC_BASE + seq))


def internal_ip(seq: int) -> str:
    return str(ipaddress.IPv4Address(_INTERNAL_BASE + seq))
