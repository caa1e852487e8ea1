"""Plain records: what the store reads and the domain, the API and the SSH
service work with. Neutral ground: both the domain and the store import this
module, and it imports neither.

The store maps rows onto them by field name: its SELECT lists are built from
these fields (store/repo.py ``columns``), so a field and its column are one name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


@dataclass(slots=True)
class Keypair:
    seq: int
    id: str
    account: str
    name: str
    description: str
    public_key: str
    fingerprint: str
    created_at: float
    instance_count: int = 0


@dataclass(slots=True)
class Instance:
    seq: int
    id: str
    account: str
    name: str
    hostname: str
    description: str
    image_id: str
    instance_type: str
    cpu_count: int
    memory_gb: int
    zone_name: str
    payment_timing: str
    created_at: float
    state: str
    transition: str | None
    transition_until: float
    keypair_id: str | None
    key_in_force_at: float | None
    admin_pass_hash: str | None
    first_key_at: float | None
    ssh_host_key: str | None = None  # ed25519 seed, hex (localbcc.ssh.hostkeys)
    ssh_host_public_key: str | None = None
    ssh_host_fingerprint: str | None = None
    ssh_error: str | None = None  # why its SSH endpoint could not be opened
    keypair_name: str = ""


class Binding(NamedTuple):
    """What attach and detach read of an instance: a narrow row, since one call
    may name 100 instances (docs/performance.md). The field names match
    Instance's, so lifecycle.status() takes it."""

    id: str
    seq: int
    account: str
    image_id: str
    state: str
    transition: str | None
    transition_until: float
    keypair_id: str | None


class SshEndpoint(NamedTuple):
    """What the SSH service's scan reads of each instance (Tx.ssh_endpoints):
    a narrow row, since it reads every instance. The field names match
    Instance's, so lifecycle.status() takes it."""

    id: str
    seq: int
    image_id: str
    state: str
    transition: str | None
    transition_until: float
    ssh_error: str | None
