"""What the domain needs of the world around it, declared on the domain's side.

The domain works through these protocols and imports no store or SSH module:
the store's ``Store`` and ``Tx`` (store/db.py, store/repo.py) and the SSH
view (ssh/view.py) satisfy them, and mypy checks that they do where the
server puts the pieces together (api/context.py).

``Tx`` methods say what they are for and take the locks that needs
themselves, in the lock order the store documents (store/repo.py,
docs/storage.md): a domain service calls them in the order its rules read,
and never locks anything by name.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Callable, Protocol

from ..models import Binding, Instance, Keypair


class Tx(Protocol):
    """One open transaction: its queries, each a method."""

    # -- clientToken replay (idempotency.py) ------------------------------------------
    def get_token(self, account: str, operation: str,
                  token: str) -> tuple[str, str] | None:
        """The (request hash, answer) stored for this token; requests with one
        token take turns from here until the transaction ends."""
    def put_token(self, account: str, operation: str, token: str, request_hash: str,
                  response: str, now: float) -> None: ...

    # -- creating: quotas, uniqueness, new ids ----------------------------------------
    def lock_account_for_create(self, account: str) -> None:
        """Creates of this account run one at a time from here until the
        transaction ends: the quota and duplicate checks that follow see every
        create committed before."""
    def count_keypairs(self, account: str) -> int: ...
    def count_instances(self, account: str) -> int: ...
    def blob_exists(self, account: str, blob_sha256: str) -> bool: ...
    def id_taken(self, kind: str, item_id: str) -> bool: ...
    def insert_keypair(self, values: dict[str, Any]) -> None: ...
    def insert_instance(self, values: dict[str, Any]) -> None: ...

    # -- key pairs ---------------------------------------------------------------------
    def get_keypair(self, account: str, keypair_id: str) -> Keypair | None: ...
    def keypair_for_change(self, account: str, keypair_id: str) -> Keypair | None:
        """The key pair, kept from other changes until the transaction ends;
        its instanceCount counts every binding committed before."""
    def lock_keypair_to_bind(self, account: str, keypair_id: str) -> bool:
        """Whether the account has this key pair; it cannot be deleted until
        the transaction ends (create or rebuild an instance with it)."""
    def list_keypairs(self, account: str, start_seq: int, limit: int,
                      name: str | None) -> list[Keypair]: ...
    def update_keypair(self, keypair_id: str, **values: Any) -> None: ...
    def delete_keypair(self, keypair: Keypair) -> None: ...

    # -- instances -----------------------------------------------------------------------
    def get_instance(self, account: str, instance_id: str) -> Instance | None: ...
    def instance_for_change(self, account: str, instance_id: str) -> Instance | None:
        """The instance, kept from other changes until the transaction ends."""
    def list_instances(self, account: str, start_seq: int, limit: int | None, *,
                       keypair_id: str | None = None,
                       ids: list[str] | None = None) -> list[Instance]: ...
    def start_transition(self, ids: list[str], **values: Any) -> None:
        """Set ``values`` on these instances: everything a lifecycle operation
        changes, in this one call."""
    def delete_instance(self, inst: Instance) -> None: ...

    # -- binding key pairs (§4.6) --------------------------------------------------------
    def bindings_for_change(self, account: str, keypair_id: str,
                            ids: list[str]) -> dict[str, Binding] | None:
        """The binding state of the account's instances among ``ids``, kept
        from other changes (with the key pair) until the transaction ends;
        None if the account has no such key pair."""
    def bind(self, found: list[Binding], keypair_id: str | None,
             in_force_at: float | None) -> None: ...

    # -- paging ----------------------------------------------------------------------------
    def seq_of(self, kind: str, account: str, item_id: str) -> int | None: ...


class ReadCache(Protocol):
    """Answers kept in memory until the database changes (store/cache.py)."""

    def get(self, key: Any, load: Callable[[], Any]) -> Any: ...


class Store(Protocol):
    """Transactions: ``with store.write() as tx:`` commits when the block ends
    (on the server's event loop, once its group commit does: store/unit.py)."""

    @property
    def reads(self) -> ReadCache: ...
    def read(self) -> AbstractContextManager[Tx]: ...
    def write(self) -> AbstractContextManager[Tx]: ...


class InstanceSsh(Protocol):
    """The SSH fields of the instance object (localbcc.ssh.view.SshView)."""

    def wire(self, inst: Instance, now: float) -> dict[str, Any]: ...


__all__ = ["InstanceSsh", "ReadCache", "Store", "Tx"]
