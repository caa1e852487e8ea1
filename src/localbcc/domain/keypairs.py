"""Key pair rules (spec §4): validation, quota, uniqueness, paging, delete-in-use."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..errors import BceError, ErrorCode
from ..models import Keypair
from . import idempotency, validation
from .keys import PublicKey, generate_rsa_keypair, parse_public_key
from .paging import page
from .ports import Store, Tx
from .timefmt import iso


@dataclass
class KeypairView:
    """What the API shows of a key pair."""

    keypair: Keypair
    region: str
    private_key: str | None = None

    def to_wire(self) -> dict:
        kp = self.keypair
        created = iso(kp.created_at)
        out = {"keypairId": kp.id, "name": kp.name, "description": kp.description,
               "publicKey": kp.public_key, "fingerPrint": kp.fingerprint,
               "instanceCount": kp.instance_count, "regionId": self.region,
               "createdTime": created, "createTime": created}
        if self.private_key is not None:
            out["privateKey"] = self.private_key
        return out


class KeypairService:
    def __init__(self, store: Store, clock: Clock, region: str, quota: int):
        self.store = store
        self.clock = clock
        self.region = region
        self.quota = quota

    def _view(self, kp: Keypair, private_key: str | None = None) -> dict:
        return KeypairView(kp, self.region, private_key).to_wire()

    # -- create / import --------------------------------------------------------------

    def parse_create(self, body: Any) -> tuple[str, str]:
        body = validation.body_object(body)
        return validation.keypair_name(body), validation.keypair_description(body)

    def before_create(self, account: str, name: str, description: str,
                      token: str | None) -> dict | None:
        """What create answers without a new key, read before one is generated
        (slow: docs/performance.md): the stored answer of a replayed ``clientToken``, or
        KeypairQuotaExceedLimit when the account has no room. None: generate one.
        :meth:`create` checks both again in its transaction (another request may
        have taken the last place meanwhile)."""
        digest = idempotency.request_hash({"name": name, "description": description})
        with self.store.read() as tx:
            stored = idempotency.replay(tx, account, "createKeypair", token, digest)
            if stored is None:
                self._check_room(tx, account)
        return stored

    def create(self, account: str, name: str, description: str, token: str | None,
               generated: tuple[PublicKey, str]) -> dict:
        """Store a freshly generated pair; ``generated`` comes from :func:`generate`
        (slow: the API runs it off the event loop, after :meth:`before_create`)."""
        public, private_pem = generated
        digest = idempotency.request_hash({"name": name, "description": description})
        with self.store.write() as tx:
            stored = idempotency.replay(tx, account, "createKeypair", token, digest)
            if stored is not None:  # the private key was never kept (§6)
                return stored
            kp = self._insert(tx, account, name, description, public)
            answer = {"keypair": self._view(kp)}
            idempotency.remember(tx, account, "createKeypair", token, digest, answer, kp.created_at)
        return {"keypair": self._view(kp, private_pem)}

    @staticmethod
    def generate() -> tuple[PublicKey, str]:
        return generate_rsa_keypair()

    def import_(self, account: str, body: Any, token: str | None) -> dict:
        body = validation.body_object(body)
        name = validation.keypair_name(body)
        description = validation.keypair_description(body)
        public = parse_public_key(validation.required_str(body, "publicKey"))
        digest = idempotency.request_hash(
            {"name": name, "description": description, "publicKey": public.openssh})
        with self.store.write() as tx:
            stored = idempotency.replay(tx, account, "importKeypair", token, digest)
            if stored is not None:
                return stored
            kp = self._insert(tx, account, name, description, public)
            answer = {"keypair": self._view(kp)}
            idempotency.remember(tx, account, "importKeypair", token, digest, answer, kp.created_at)
        return answer

    def _insert(self, tx: Tx, account: str, name: str, description: str,
                public: PublicKey) -> Keypair:
        tx.lock_account_for_create(account)
        blob_sha = hashlib.sha256(public.blob).hexdigest()
        if tx.blob_exists(account, blob_sha):
            raise BceError(ErrorCode.KeypairPublicKeyExist)
        self._check_room(tx, account)
        keypair_id = validation.new_id("k-")
        while tx.id_taken("keypair", keypair_id):
            keypair_id = validation.new_id("k-")
        now = self.clock.now()
        tx.insert_keypair({"id": keypair_id, "account": account, "name": name,
                           "description": description, "public_key": public.openssh,
                           "fingerprint": public.fingerprint, "blob_sha256": blob_sha,
                           "created_at": now})
        return self._existing(tx, account, keypair_id)

    def _check_room(self, tx: Tx, account: str) -> None:
        """The quota (spec §4.3): room for one more pair in this account."""
        if tx.count_keypairs(account) >= self.quota:
            raise BceError(ErrorCode.KeypairQuotaExceedLimit)

    # -- read -----------------------------------------------------------------------

    def get(self, account: str, keypair_id: str) -> dict:
        # Served from memory until the database changes (store/cache.py).
        return self.store.reads.get(("keypair", account, keypair_id),
                                    lambda: self._get(account, keypair_id))

    def _get(self, account: str, keypair_id: str) -> dict:
        with self.store.read() as tx:
            return {"keypair": self._view(self._existing(tx, account, keypair_id))}

    def list(self, account: str, marker: str | None, max_keys: int, name: str | None) -> dict:
        with self.store.read() as tx:
            result = page(tx, "keypair", account, marker, max_keys,
                          lambda start, limit: tx.list_keypairs(account, start, limit, name),
                          lambda kp: kp.id)
        result["keypairs"] = [self._view(kp) for kp in result.pop("items")]
        return result

    @staticmethod
    def _existing(tx: Tx, account: str, keypair_id: str) -> Keypair:
        return _found(tx.get_keypair(account, keypair_id))

    @staticmethod
    def _for_change(tx: Tx, account: str, keypair_id: str) -> Keypair:
        return _found(tx.keypair_for_change(account, keypair_id))

    # -- change ---------------------------------------------------------------------

    def rename(self, account: str, keypair_id: str, body: Any) -> None:
        name = validation.keypair_name(validation.body_object(body))
        with self.store.write() as tx:
            self._for_change(tx, account, keypair_id)
            tx.update_keypair(keypair_id, name=name)

    def update_description(self, account: str, keypair_id: str, body: Any) -> None:
        body = validation.body_object(body)
        if "description" not in body:
            raise BceError(ErrorCode.InappropriateJSON, "Field 'description' is required.")
        description = validation.keypair_description(body)
        with self.store.write() as tx:
            self._for_change(tx, account, keypair_id)
            tx.update_keypair(keypair_id, description=description)

    def delete(self, account: str, keypair_id: str) -> None:
        with self.store.write() as tx:
            kp = self._for_change(tx, account, keypair_id)
            if kp.instance_count:
                raise BceError(ErrorCode.DeleteKeypairInUse)
            tx.delete_keypair(kp)


def _found(kp: Keypair | None) -> Keypair:
    if kp is None:
        raise BceError(ErrorCode.KeypairNotExist)
    return kp
