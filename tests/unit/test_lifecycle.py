"""The instance lifecycle and key pair binding rules (spec §4.6, §5.4, §5.5),
at the domain level: InstanceService and KeypairService over a real SQLite
store, with a FakeClock so every transition boundary is exact."""
from __future__ import annotations

import pytest
from baidubce.utils import aes128_encrypt_16char_key
from sqlalchemy.exc import IntegrityError

from localbcc.clock import FakeClock
from localbcc.domain import lifecycle
from localbcc.domain.instances import InstanceService
from localbcc.domain.keypairs import KeypairService
from localbcc.models import Instance
from localbcc.errors import BceError, ErrorCode
from localbcc.store.db import Store
from localbcc.store.urls import sqlite_url

T = 5.0
ACCOUNT = "AK-unit"
SECRET = "0123456789abcdef0123456789abcdef"
LINUX, WINDOWS = "m-Ubt2204a", "m-Win2019d"


@pytest.fixture(scope="module")
def generated():
    """RSA generation is slow: a few key pairs made once, used by every test."""
    return [KeypairService.generate() for _ in range(3)]


class World:
    def __init__(self, tmp_path, generated, transition=T):
        self.clock = FakeClock()
        self.store = Store(sqlite_url(tmp_path))
        self.store.prepare()
        self.instances = InstanceService(self.store, self.clock, "bj", transition)
        self.keypairs = KeypairService(self.store, self.clock, "bj", 500)
        self._generated = list(generated)

    def keypair(self, name="kp") -> str:
        answer = self.keypairs.create(ACCOUNT, name, "", None, self._generated.pop())
        return answer["keypair"]["keypairId"]

    def create(self, count=1, image=LINUX, token=None, **fields) -> list[str]:
        body = {"imageId": image, "purchaseCount": count, "cpuCount": 1,
                "memoryCapacityInGB": 2, **fields}
        return self.instances.create(ACCOUNT, SECRET, body, token)["instanceIds"]

    def running(self, count=1, **fields) -> list[str]:
        ids = self.create(count, **fields)
        self.clock.advance(T)
        return ids

    def get(self, iid) -> dict:
        return self.instances.get(ACCOUNT, iid)["instance"]

    def status(self, iid) -> str:
        return self.get(iid)["status"]

    def count(self, kp) -> int:
        return self.keypairs.get(ACCOUNT, kp)["keypair"]["instanceCount"]

    def row(self, iid) -> Instance:
        with self.store.read() as tx:
            return tx.get_instance(ACCOUNT, iid)

    def close(self):
        self.store.dispose()


@pytest.fixture
def w(tmp_path, generated):
    world = World(tmp_path, generated)
    yield world
    world.close()


def encrypted(password: str) -> str:
    """adminPass as the SDK sends it (AES-128-ECB under the secret key's first 16 bytes)."""
    return aes128_encrypt_16char_key(password, SECRET.encode())


def fails(code: ErrorCode, fn, *args, **kwargs) -> BceError:
    with pytest.raises(BceError) as info:
        fn(*args, **kwargs)
    assert info.value.code is code, info.value
    return info.value


# --------------------------------------------------------------------------------------
# status is a function of the stored row and the clock

def _inst(**kw) -> Instance:
    base = dict(seq=1, id="i-abcdefgh", account=ACCOUNT, name="n", hostname="h", description="",
                image_id=LINUX, instance_type="N3", cpu_count=1, memory_gb=1, zone_name="z",
                payment_timing="Postpaid", created_at=0.0, state="Running", transition=None,
                transition_until=0.0, keypair_id=None, key_in_force_at=None,
                admin_pass_hash=None, first_key_at=None)
    return Instance(**(base | kw))


@pytest.mark.parametrize("transition,state,between", [
    ("create", "Running", "Starting"), ("start", "Running", "Starting"),
    ("restart", "Running", "Starting"), ("stop", "Stopped", "Stopping")])
def test_status_is_derived_from_the_stored_transition(transition, state, between):
    inst = _inst(state=state, transition=transition, transition_until=100.0)
    assert lifecycle.status(inst, 99.999) == between
    assert lifecycle.status(inst, 100.0) == state
    assert lifecycle.status(inst, 1e12) == state
    assert lifecycle.is_creating(inst, 50.0) == (transition == "create")
    assert not lifecycle.is_creating(inst, 100.0)
    assert lifecycle.status(_inst(state=state), 0.0) == state


def test_key_in_force_and_password_from_the_stored_times():
    assert not lifecycle.key_in_force(_inst(), 10.0)
    waiting = _inst(keypair_id="k-abcdefgh", key_in_force_at=None)
    assert not lifecycle.key_in_force(waiting, 1e12)
    soon = _inst(keypair_id="k-abcdefgh", key_in_force_at=10.0, first_key_at=10.0,
                 admin_pass_hash="x")
    assert not lifecycle.key_in_force(soon, 9.9) and lifecycle.key_in_force(soon, 10.0)
    assert lifecycle.password_allowed(soon, 9.9) and not lifecycle.password_allowed(soon, 10.0)
    assert not lifecycle.password_allowed(_inst(), 0.0)  # no password at all
    assert lifecycle.password_allowed(_inst(admin_pass_hash="x"), 1e12)


# --------------------------------------------------------------------------------------
# transitions through the service

def test_create_is_starting_for_exactly_the_transition_time(w):
    [iid] = w.create()
    assert w.status(iid) == "Starting"
    w.clock.advance(T - 0.001)
    assert w.status(iid) == "Starting"
    fails(ErrorCode.StartInstanceWhenCreating, w.instances.start, ACCOUNT, iid)
    fails(ErrorCode.StopInstanceOperationForbidden, w.instances.stop, ACCOUNT, iid)
    fails(ErrorCode.RebootInstanceOperationForbidden, w.instances.reboot, ACCOUNT, iid)
    fails(ErrorCode.InstanceStatusForbidden, w.instances.release, ACCOUNT, iid)
    fails(ErrorCode.InstanceStatusForbidden, w.instances.rebuild, ACCOUNT, SECRET, iid,
          {"imageId": LINUX})
    w.clock.advance(0.001)
    assert w.status(iid) == "Running"
    assert w.instances.list(ACCOUNT, None, 1000, status="Running")["instances"][0]["id"] == iid


def test_stop_start_reboot_rebuild_walk_the_table(w):
    [iid] = w.running()
    w.instances.stop(ACCOUNT, iid)
    assert w.status(iid) == "Stopping"
    fails(ErrorCode.StartInstanceOperationForbidden, w.instances.start, ACCOUNT, iid)
    fails(ErrorCode.StopInstanceOperationForbidden, w.instances.stop, ACCOUNT, iid)
    w.clock.advance(T)
    assert w.status(iid) == "Stopped"
    fails(ErrorCode.RebootInstanceOperationForbidden, w.instances.reboot, ACCOUNT, iid)
    w.instances.start(ACCOUNT, iid)
    assert w.status(iid) == "Starting"
    # a start is not a creation
    fails(ErrorCode.StartInstanceOperationForbidden, w.instances.start, ACCOUNT, iid)
    w.clock.advance(T)
    assert w.status(iid) == "Running"
    fails(ErrorCode.StartInstanceOperationForbidden, w.instances.start, ACCOUNT, iid)
    w.instances.reboot(ACCOUNT, iid)
    assert w.status(iid) == "Starting"
    w.clock.advance(T)
    w.instances.rebuild(ACCOUNT, SECRET, iid, {"imageId": "m-Deb12x64"})
    assert (w.status(iid), w.get(iid)["imageId"]) == ("Starting", "m-Deb12x64")
    w.clock.advance(T)
    w.instances.stop(ACCOUNT, iid)
    w.clock.advance(T)
    w.instances.rebuild(ACCOUNT, SECRET, iid, {"imageId": LINUX})  # from Stopped too
    assert w.status(iid) == "Starting"
    w.clock.advance(T)
    assert w.status(iid) == "Running"
    w.instances.release(ACCOUNT, iid)
    fails(ErrorCode.NoSuchObject, w.instances.get, ACCOUNT, iid)


def test_two_services_over_one_database_agree(w, tmp_path):
    """Like two server processes: a second store and service on the same file."""
    other_store = Store(sqlite_url(tmp_path))
    other = InstanceService(other_store, w.clock, "bj", 600.0)
    try:
        [iid] = w.running()
        other.reboot(ACCOUNT, iid)  # its own, longer transition time
        assert w.status(iid) == other.get(ACCOUNT, iid)["instance"]["status"] == "Starting"
        w.clock.advance(599)
        assert w.status(iid) == "Starting"
        w.clock.advance(1)
        assert w.status(iid) == other.get(ACCOUNT, iid)["instance"]["status"] == "Running"
    finally:
        other_store.dispose()


def test_transition_zero_is_immediate(tmp_path, generated):
    w = World(tmp_path, generated, transition=0.0)
    try:
        [iid] = w.create()
        assert w.status(iid) == "Running"
        w.instances.stop(ACCOUNT, iid)
        assert w.status(iid) == "Stopped"
        w.instances.start(ACCOUNT, iid)
        assert w.status(iid) == "Running"
        kp = w.keypair()
        w.instances.attach(ACCOUNT, kp, {"instanceIds": [iid]})
        assert (w.status(iid), w.get(iid)["keypairInForce"]) == ("Running", True)
    finally:
        w.close()


# --------------------------------------------------------------------------------------
# binding

def test_attach_on_running_restarts_and_the_key_is_in_force_after(w):
    [iid] = w.running(adminPass=encrypted("pw-123456"))
    assert lifecycle.password_allowed(w.row(iid), w.clock.now())
    kp = w.keypair()
    assert w.instances.attach(ACCOUNT, kp, {"instanceIds": [iid]}) == {"failedInstanceIdList": []}
    got = w.get(iid)
    assert (got["status"], got["keypairId"], got["keypairInForce"]) == ("Starting", kp, False)
    assert lifecycle.password_allowed(w.row(iid), w.clock.now())  # until the restart is over
    w.clock.advance(T)
    got = w.get(iid)
    assert (got["status"], got["keypairInForce"]) == ("Running", True)
    assert not lifecycle.password_allowed(w.row(iid), w.clock.now())
    # detach: the key stops at once, no restart, and password login stays off
    w.instances.detach(ACCOUNT, kp, {"instanceIds": [iid]})
    got = w.get(iid)
    assert (got["status"], got["keypairId"], got["keypairInForce"]) == ("Running", "", False)
    assert not lifecycle.password_allowed(w.row(iid), w.clock.now())
    # a rebuild with a new password is a fresh system: the password works again
    w.instances.rebuild(ACCOUNT, SECRET, iid,
                        {"imageId": LINUX, "adminPass": encrypted("pw-2")})
    w.clock.advance(T)
    assert lifecycle.password_allowed(w.row(iid), w.clock.now())


def test_attach_on_stopped_waits_for_the_next_start(w):
    [iid] = w.running()
    w.instances.stop(ACCOUNT, iid)
    w.clock.advance(T)
    kp = w.keypair()
    w.instances.attach(ACCOUNT, kp, {"instanceIds": [iid]})
    w.clock.advance(10_000)
    got = w.get(iid)
    assert (got["status"], got["keypairId"], got["keypairInForce"]) == ("Stopped", kp, False)
    w.instances.start(ACCOUNT, iid)
    assert w.get(iid)["keypairInForce"] is False
    w.clock.advance(T)
    assert w.get(iid)["keypairInForce"] is True


def test_attach_replaces_and_counts_and_checks_in_order(w):
    a, b = w.keypair("a"), w.keypair("b")
    i1, i2, i3 = w.running(3)
    [win] = w.running(image=WINDOWS)
    w.instances.attach(ACCOUNT, a, {"instanceIds": [i1, i2]})
    w.clock.advance(T)
    w.instances.attach(ACCOUNT, b, {"instanceIds": [i2, i2, i3]})
    assert (w.count(a), w.count(b)) == (1, 2)
    w.clock.advance(T)
    before = [w.row(i) for i in (i1, i2, i3)]
    cases = [
        (["i-NoSuch00"], "k-NoSuch00", ErrorCode.KeypairNotExist),
        ([i1, "i-NoSuch00"], b, ErrorCode.KeypairInstanceNotExist),
        ([i1, win], b, ErrorCode.UnsupportOsType),
        ([i1, i2], b, ErrorCode.AttachAttachedKeypair),
        ([i2, "i-NoSuch00"], b, ErrorCode.AttachAttachedKeypair),
    ]
    for ids, kp, code in cases:
        fails(code, w.instances.attach, ACCOUNT, kp, {"instanceIds": ids})
    [starting] = w.create()
    fails(ErrorCode.KeypairInstanceStatusForbidden, w.instances.attach, ACCOUNT, b,
          {"instanceIds": [i1, starting]})
    fails(ErrorCode.KeypairInstanceStatusForbidden, w.instances.detach, ACCOUNT, a,
          {"instanceIds": [i1, starting]})
    assert [w.row(i) for i in (i1, i2, i3)] == before  # all or nothing
    assert (w.count(a), w.count(b)) == (1, 2)
    # deleting a pair in use is refused; once free it goes
    fails(ErrorCode.DeleteKeypairInUse, w.keypairs.delete, ACCOUNT, a)
    w.instances.release(ACCOUNT, i1)
    assert w.count(a) == 0
    w.keypairs.delete(ACCOUNT, a)
    fails(ErrorCode.KeypairNotExist, w.keypairs.get, ACCOUNT, a)


@pytest.mark.parametrize("body", [None, [], {}, {"instanceIds": None},
                                  {"instanceIds": "i-1"}, {"instanceIds": []},
                                  {"instanceIds": [1]},
                                  {"instanceIds": [f"i-{n:08d}" for n in range(101)]}])
def test_instance_ids_rules(w, body):
    kp = w.keypair()
    fails(ErrorCode.InappropriateJSON, w.instances.attach, ACCOUNT, kp, body)
    fails(ErrorCode.InappropriateJSON, w.instances.detach, ACCOUNT, kp, body)


def test_the_storage_refuses_a_binding_to_a_missing_pair(w):
    """The foreign key keeps bindings sound even if a domain check were skipped."""
    kp = w.keypair()
    [iid] = w.running()
    w.instances.attach(ACCOUNT, kp, {"instanceIds": [iid]})
    with pytest.raises(IntegrityError):
        with w.store.write() as tx:
            tx.delete_keypair(tx.get_keypair(ACCOUNT, kp))
    with pytest.raises(IntegrityError):
        with w.store.write() as tx:
            tx.bind(list(tx.bindings_for_change(ACCOUNT, kp, [iid]).values()), "k-NoSuch00", None)
    assert (w.get(iid)["keypairId"], w.count(kp)) == (kp, 1)


# --------------------------------------------------------------------------------------
# create

def test_create_rules(w):
    kp = w.keypair()
    fails(ErrorCode.NoSuchObject, w.create, image="m-NoSuch00")
    fails(ErrorCode.KeypairNotExist, w.create, keypairId="k-NoSuch00")
    fails(ErrorCode.UnsupportOsType, w.create, image=WINDOWS, keypairId=kp)
    for bad in (0, 101, "1", True):
        fails(ErrorCode.InappropriateJSON, w.create, bad)
    assert w.instances.list(ACCOUNT, None, 1000)["instances"] == []
    [iid] = w.create(keypairId=kp)
    assert (w.get(iid)["keypairInForce"], w.count(kp)) == (False, 1)
    w.clock.advance(T)
    assert w.get(iid)["keypairInForce"] is True


def test_client_token_replays_and_refuses_a_different_body(w):
    first = w.create(2, token="t-1")
    assert w.create(2, token="t-1") == first
    fails(ErrorCode.IdempotentParameterMismatch, w.create, 3, token="t-1")
    assert len(w.instances.list(ACCOUNT, None, 1000)["instances"]) == 2
