"""Instances: create, list, lifecycle (§5), and binding key pairs to them (§4.6)."""
from __future__ import annotations

from typing import Any

from ..clock import Clock
from ..errors import BceError, ErrorCode
from ..models import Binding, Instance
from . import idempotency, lifecycle, network, validation
from .images import get_image
from .keys import new_host_key
from .lifecycle import RUNNING, STOPPED
from .paging import page
from .passwords import decrypt_admin_pass, hash_password
from .ports import InstanceSsh, Store, Tx
from .timefmt import iso

#: Instance ids. (InstanceService has a method named ``list``, which the name
#: would mean inside the class.)
Ids = list[str]


class InstanceService:
    def __init__(self, store: Store, clock: Clock, region: str, transition_seconds: float,
                 quota: int = 200, ssh: InstanceSsh | None = None):
        self.store = store
        self.clock = clock
        self.region = region
        self.transition = transition_seconds
        self.quota = quota  # instances per account, however created (spec part 2 §7)
        #: The SSH fields of the instance object (None: the object has none).
        self.ssh = ssh

    # -- presentation -------------------------------------------------------------------

    def to_wire(self, inst: Instance, now: float) -> dict:
        image = get_image(inst.image_id)
        return {
            "id": inst.id, "name": inst.name, "hostname": inst.hostname,
            "status": lifecycle.status(inst, now), "desc": inst.description,
            "instanceType": inst.instance_type, "cpuCount": inst.cpu_count,
            "memoryCapacityInGB": inst.memory_gb, "imageId": image.id, "imageName": image.name,
            "osName": image.os_name, "osVersion": image.os_version, "osArch": image.os_arch,
            "osType": image.os_type, "zoneName": inst.zone_name,
            "paymentTiming": inst.payment_timing, "createTime": iso(inst.created_at),
            "expireTime": None, "internalIp": network.internal_ip(inst.seq),
            "publicIp": network.public_ip(inst.seq),
            "keypairId": inst.keypair_id or "", "keypairName": inst.keypair_name,
            "keypairInForce": lifecycle.key_in_force(inst, now),
            **(self.ssh.wire(inst, now) if self.ssh is not None else {}),
        }

    # -- create ---------------------------------------------------------------------------

    def create(self, account: str, secret_key: str, body: Any, token: str | None) -> dict:
        body = validation.body_object(body)
        image = get_image(validation.required_str(body, "imageId"))
        count = validation.optional_int(body, "purchaseCount", 1, 1, 100)
        name = validation.instance_name(body)
        hostname = validation.hostname(body)
        keypair_id = validation.optional_str(body, "keypairId")
        cipher_pass = validation.optional_str(body, "adminPass")
        cpu = validation.optional_int(body, "cpuCount", 1, *validation.CPU_COUNTS)
        memory = validation.optional_int(body, "memoryCapacityInGB", 1, *validation.MEMORY_GBS)
        instance_type = validation.optional_str(body, "instanceType", 64) or "N3"
        zone = validation.optional_str(body, "zoneName", 64) or f"cn-{self.region}-a"
        billing = body.get("billing")
        if not isinstance(billing, dict):
            billing = {}
        payment = validation.optional_str(billing, "paymentTiming", 32) or "Postpaid"
        if keypair_id is not None and not image.is_linux:
            raise BceError(ErrorCode.UnsupportOsType)
        password = decrypt_admin_pass(cipher_pass, secret_key) if cipher_pass else None
        digest = idempotency.request_hash(
            {k: v for k, v in body.items() if k != "adminPass"} | {"adminPass": password})
        with self.store.write() as tx:
            stored = idempotency.replay(tx, account, "createInstance", token, digest)
            if stored is not None:
                return stored
            tx.lock_account_for_create(account)
            if tx.count_instances(account) + count > self.quota:  # all or nothing
                raise BceError(ErrorCode.InstanceQuotaExceedLimit)
            if keypair_id is not None:
                self._keypair_to_bind(tx, account, keypair_id)
            now = self.clock.now()
            until = now + self.transition
            pass_hash = hash_password(password) if password else None
            ids = []
            for _ in range(count):
                iid = validation.new_id("i-")
                while tx.id_taken("instance", iid):
                    iid = validation.new_id("i-")
                ids.append(iid)
                tx.insert_instance({
                    "id": iid, "account": account, "name": name or iid,
                    "hostname": hostname or iid.lower(), "description": "",
                    "image_id": image.id, "instance_type": instance_type, "cpu_count": cpu,
                    "memory_gb": memory, "zone_name": zone, "payment_timing": payment,
                    "created_at": now, "state": RUNNING, "transition": "create",
                    "transition_until": until, "keypair_id": keypair_id,
                    "key_in_force_at": until if keypair_id else None,
                    "admin_pass_hash": pass_hash,
                    "first_key_at": until if keypair_id else None,
                    **new_host_key(),
                })
            answer = {"instanceIds": ids}
            idempotency.remember(tx, account, "createInstance", token, digest, answer, now)
        return answer

    # -- read --------------------------------------------------------------------------------

    def get(self, account: str, instance_id: str) -> dict:
        with self.store.read() as tx:
            inst = self._existing(tx, account, instance_id)
        return {"instance": self.to_wire(inst, self.clock.now())}

    def list(self, account: str, marker: str | None, max_keys: int, *,
             status: str | None = None, keypair_id: str | None = None,
             ids: Ids | None = None) -> dict:
        now = self.clock.now()
        wanted = set(status.split(",")) if status else None

        def fetch(start: int, limit: int) -> list[Instance]:
            if wanted is None:
                return tx.list_instances(account, start, limit, keypair_id=keypair_id, ids=ids)
            # Status is derived from the clock, so it is filtered here, not in SQL.
            rows = tx.list_instances(account, start, None, keypair_id=keypair_id, ids=ids)
            return [i for i in rows if lifecycle.status(i, now) in wanted][:limit]

        with self.store.read() as tx:
            result = page(tx, "instance", account, marker, max_keys, fetch, lambda i: i.id)
        result["instances"] = [self.to_wire(i, now) for i in result.pop("items")]
        return result

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, account: str, instance_id: str) -> None:
        with self.store.write() as tx:
            inst, now = self._for_change(tx, account, instance_id), self.clock.now()
            if lifecycle.is_creating(inst, now):
                raise BceError(ErrorCode.StartInstanceWhenCreating)
            if lifecycle.status(inst, now) != STOPPED:
                raise BceError(ErrorCode.StartInstanceOperationForbidden)
            pending = inst.keypair_id and inst.key_in_force_at is None
            self._transition(tx, [inst.id], RUNNING, "start", now, key_of=inst if pending else None)

    def stop(self, account: str, instance_id: str) -> None:
        with self.store.write() as tx:
            inst, now = self._for_change(tx, account, instance_id), self.clock.now()
            if lifecycle.status(inst, now) != RUNNING:
                raise BceError(ErrorCode.StopInstanceOperationForbidden)
            self._transition(tx, [inst.id], STOPPED, "stop", now)

    def reboot(self, account: str, instance_id: str) -> None:
        with self.store.write() as tx:
            inst, now = self._for_change(tx, account, instance_id), self.clock.now()
            if lifecycle.status(inst, now) != RUNNING:
                raise BceError(ErrorCode.RebootInstanceOperationForbidden)
            self._transition(tx, [inst.id], RUNNING, "restart", now)

    def rebuild(self, account: str, secret_key: str, instance_id: str, body: Any) -> None:
        body = validation.body_object(body)
        image = get_image(validation.required_str(body, "imageId"))
        # The Go SDK always sends "keypairId" (no omitempty): "" means none (spec part 2 §2).
        keypair_id = validation.optional_str(body, "keypairId") or None
        cipher_pass = validation.optional_str(body, "adminPass")
        if keypair_id is not None and not image.is_linux:
            raise BceError(ErrorCode.UnsupportOsType)
        password = decrypt_admin_pass(cipher_pass, secret_key) if cipher_pass else None
        with self.store.write() as tx:
            if keypair_id is not None:
                self._keypair_to_bind(tx, account, keypair_id)
            inst, now = self._for_change(tx, account, instance_id), self.clock.now()
            if lifecycle.status(inst, now) not in (RUNNING, STOPPED):
                raise BceError(ErrorCode.InstanceStatusForbidden)
            if keypair_id is not None:
                self._transition(tx, [inst.id], RUNNING, "restart", now, key_of=inst,
                                 image_id=image.id, keypair_id=keypair_id)
            elif password is not None or not image.is_linux:
                # A fresh system with a password and no key; Windows takes no key pair.
                self._transition(tx, [inst.id], RUNNING, "restart", now, image_id=image.id,
                                 keypair_id=None, key_in_force_at=None, first_key_at=None,
                                 admin_pass_hash=hash_password(password) if password else None)
            else:  # the bound pair, if any, is in force again after the restart
                self._transition(tx, [inst.id], RUNNING, "restart", now,
                                 key_of=inst if inst.keypair_id else None, image_id=image.id)

    def release(self, account: str, instance_id: str) -> None:
        with self.store.write() as tx:
            inst, now = self._for_change(tx, account, instance_id), self.clock.now()
            if lifecycle.status(inst, now) not in (RUNNING, STOPPED):
                raise BceError(ErrorCode.InstanceStatusForbidden)
            tx.delete_instance(inst)

    # -- binding key pairs (§4.6) ----------------------------------------------------------

    def attach(self, account: str, keypair_id: str, body: Any) -> dict:
        ids = validation.instance_ids(validation.body_object(body))
        with self.store.write() as tx:
            now = self.clock.now()
            found = self._bindable(tx, account, keypair_id, ids, now, attaching=True)
            running: list[Binding] = []
            stopped: list[Binding] = []
            for iid in ids:
                inst = found[iid]
                (running if lifecycle.status(inst, now) == RUNNING else stopped).append(inst)
            if running:  # restarted; the key comes in force once the restart is over
                restarting = [inst.id for inst in running]
                tx.bind(running, keypair_id,
                        self._transition(tx, restarting, RUNNING, "restart", now))
            tx.bind(stopped, keypair_id, None)  # in force at the next start
        return {"failedInstanceIdList": []}

    def detach(self, account: str, keypair_id: str, body: Any) -> dict:
        ids = validation.instance_ids(validation.body_object(body))
        with self.store.write() as tx:
            found = self._bindable(tx, account, keypair_id, ids, self.clock.now())
            tx.bind([found[i] for i in ids if found[i].keypair_id == keypair_id], None, None)
        return {"failedInstanceIdList": []}

    def _bindable(self, tx: Tx, account: str, keypair_id: str, ids: Ids, now: float,
                  attaching: bool = False) -> dict[str, Binding]:
        """The account's key pair must exist; then checks 2a–2c of §4.6 (and 2d
        when ``attaching``): every check on one instance before the next
        instance, in the order given."""
        found = tx.bindings_for_change(account, keypair_id, ids)
        if found is None:
            raise BceError(ErrorCode.KeypairNotExist)
        for iid in ids:
            inst = found.get(iid)
            if inst is None:
                raise BceError(ErrorCode.KeypairInstanceNotExist, f"Instance not exist: {iid:.40}.")
            if not get_image(inst.image_id).is_linux:
                raise BceError(ErrorCode.UnsupportOsType)
            if lifecycle.status(inst, now) not in (RUNNING, STOPPED):
                raise BceError(ErrorCode.KeypairInstanceStatusForbidden)
            if attaching and inst.keypair_id == keypair_id:
                raise BceError(ErrorCode.AttachAttachedKeypair,
                               f"Can not attach to an attached keypair: {iid}.")
        return found

    # -- helpers ----------------------------------------------------------------------------------

    def _transition(self, tx: Tx, ids: Ids, state: str, kind: str, now: float, *,
                    key_of: Instance | None = None, **also: Any) -> float:
        """Start a transition of ``ids`` ending in ``state``, setting ``also``
        with it (in the one call Tx.start_transition asks for); with ``key_of``
        (an instance with a key pair), that pair comes in force when the
        transition ends. Returns when it ends."""
        until = now + self.transition
        values = {"state": state, "transition": kind if self.transition > 0 else None,
                  "transition_until": until, **also}
        if key_of is not None:
            first = key_of.first_key_at
            values |= {"key_in_force_at": until, "first_key_at": until if first is None else first}
        tx.start_transition(ids, **values)
        return until

    @staticmethod
    def _existing(tx: Tx, account: str, instance_id: str) -> Instance:
        return _found(tx.get_instance(account, instance_id), instance_id)

    @staticmethod
    def _for_change(tx: Tx, account: str, instance_id: str) -> Instance:
        return _found(tx.instance_for_change(account, instance_id), instance_id)

    @staticmethod
    def _keypair_to_bind(tx: Tx, account: str, keypair_id: str) -> None:
        """The account's key pair must exist (and cannot be deleted meanwhile)."""
        if not tx.lock_keypair_to_bind(account, keypair_id):
            raise BceError(ErrorCode.KeypairNotExist)


def _found(inst: Instance | None, instance_id: str) -> Instance:
    if inst is None:
        raise BceError(ErrorCode.NoSuchObject, f"Instance {instance_id:.40} does not exist.")
    return inst
