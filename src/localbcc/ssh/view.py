"""Where an instance's SSH endpoint is, and what the instance object says about it.

Every process renders instances, so this is pure derivation from settings and
the instance row: no asyncssh, no I/O per call.

Two layouts (``--ssh-endpoints``):

* ``address`` (Linux's default): each instance listens on its own loopback
  address, 127.16.0.0 + its creation number (the ``publicIp``), and all share
  one port (``--ssh-port``, default 2222).
* ``port`` (where only 127.0.0.1 exists, e.g. macOS without aliases): every
  instance listens on 127.0.0.1, on port ``--ssh-port`` + its creation number.

``auto`` picks ``address`` when a socket can bind 127.16.0.1, else ``port``.
Both are derived from the creation number, so they survive restarts.
"""
from __future__ import annotations

import errno
import functools
import socket
from typing import Any

from ..domain import lifecycle, network
from ..domain.images import get_image
from ..models import Instance

ADDRESS, PORT = "address", "port"
AVAILABLE, UNAVAILABLE, DISABLED, UNSUPPORTED = "Available", "Unavailable", "Disabled", "Unsupported"


@functools.lru_cache(maxsize=None)
def _many_loopback_addresses() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.16.0.1", 0))
        except OSError as exc:
            return exc.errno != errno.EADDRNOTAVAIL
    return True


def resolve_layout(choice: str) -> str:
    if choice in (ADDRESS, PORT):
        return choice
    return ADDRESS if _many_loopback_addresses() else PORT


class SshView:
    def __init__(self, enabled: bool, port: int, layout: str = "auto"):
        self.enabled = enabled
        self.port = port
        self.layout = resolve_layout(layout)
        #: Why this process's SSH service could not start, while it retries
        #: (set by service.py): every endpoint then reads Unavailable.
        self.service_down: str | None = None

    @classmethod
    def from_settings(cls, settings) -> "SshView":
        return cls(settings.ssh, settings.ssh_port, getattr(settings, "ssh_endpoints", "auto"))

    def endpoint(self, seq: int) -> tuple[str, int] | None:
        """(host, port) of the instance with this creation number; None when
        the layout has run out of addresses or ports."""
        if self.layout == PORT:
            port = self.port + seq
            return ("127.0.0.1", port) if port <= 65535 else None
        return (network.public_ip(seq), self.port) if network.public_ip_is_loopback(seq) else None

    def public_ip(self, seq: int) -> str:
        return "127.0.0.1" if self.layout == PORT else network.public_ip(seq)

    def wire(self, inst: Instance, now: float) -> dict:
        """The SSH fields of the instance object (extra fields, harmless to SDKs)."""
        fields: dict[str, Any] = {"publicIp": self.public_ip(inst.seq), "sshPort": None,
                  "sshHostKey": inst.ssh_host_public_key or "",
                  "sshHostKeyFingerprint": inst.ssh_host_fingerprint or "",
                  "sshStatus": AVAILABLE, "sshStatusReason": ""}
        endpoint = self.endpoint(inst.seq)
        if not get_image(inst.image_id).is_linux:
            fields.update(sshHostKey="", sshHostKeyFingerprint="", sshStatus=UNSUPPORTED,
                          sshStatusReason="SSH is offered on Linux instances only")
        elif not self.enabled:
            fields.update(sshStatus=DISABLED, sshStatusReason="the server runs with --no-ssh")
        elif endpoint is None:
            fields.update(sshStatus=UNAVAILABLE,
                          sshStatusReason="no loopback address or port is left for this instance")
        else:
            fields["sshPort"] = endpoint[1]
            status = lifecycle.status(inst, now)
            if self.service_down:
                fields.update(sshStatus=UNAVAILABLE, sshStatusReason=self.service_down)
            elif inst.ssh_error:
                fields.update(sshStatus=UNAVAILABLE, sshStatusReason=inst.ssh_error)
            elif status != lifecycle.RUNNING:
                fields.update(sshStatus=UNAVAILABLE,
                              sshStatusReason=f"the instance is {status}, not Running")
        return fields
