"""Instance status, derived from stored times (§5.4), so every process agrees.

An instance stores where it settles (``state``: Running or Stopped) and, while
a transition runs, which one and until when. Nothing needs to wake up to
finish a transition: the status is a function of the row and the clock.
"""
from __future__ import annotations

from typing import Protocol

from ..models import Instance


class Lifecycled(Protocol):
    """What status() reads: an Instance, a Binding, or a scan row of the SSH service."""

    @property
    def state(self) -> str: ...
    @property
    def transition(self) -> str | None: ...
    @property
    def transition_until(self) -> float: ...

RUNNING, STOPPED, STARTING, STOPPING = "Running", "Stopped", "Starting", "Stopping"
_IN_BETWEEN = {"create": STARTING, "start": STARTING, "restart": STARTING, "stop": STOPPING}


def status(inst: Lifecycled, now: float) -> str:
    if inst.transition and now < inst.transition_until:
        return _IN_BETWEEN[inst.transition]
    return inst.state


def is_creating(inst: Instance, now: float) -> bool:
    return inst.transition == "create" and now < inst.transition_until


def key_in_force(inst: Instance, now: float) -> bool:
    """Whether the bound key pair already decides logins (§4.6)."""
    return (inst.keypair_id is not None and inst.key_in_force_at is not None
            and now >= inst.key_in_force_at)


def password_allowed(inst: Instance, now: float) -> bool:
    """adminPass logins work until the first key pair comes in force."""
    return inst.admin_pass_hash is not None and (
        inst.first_key_at is None or now < inst.first_key_at)
