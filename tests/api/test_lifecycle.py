"""The instance lifecycle (spec §5.4, §5.5) with the official SDK.

Transitions are watched on a server with a 0.3 s transition time; the error
codes that need an instance *in* a transition use two processes over one
database (transition 0 and 600 s, see helpers.twin_servers), so they
never depend on timing.
"""
from __future__ import annotations

import time

import pytest

from ..server import Server
from .helpers import (
    create_instances,
    database_for,
    expect_error,
    image_ids,
    keypair_count,
    new_credentials,
    new_keypair,
    twin_servers,
    wait_status,
)

T = 0.3  # the transition time of the `short` server


@pytest.fixture(scope="module")
def short(tmp_path_factory, request, backend):
    url, cleanup = database_for(request, backend, "lifecycle")
    srv = Server(tmp_path_factory.mktemp(f"lifecycle-{backend}"), new_credentials(1),
                 extra_args=["--transition-seconds", str(T)], database_url=url).start()
    yield srv
    srv.stop()
    cleanup()


@pytest.fixture
def c(short):
    return short.client()


@pytest.fixture(scope="module")
def twins(tmp_path_factory, request, backend):
    url, cleanup = database_for(request, backend, "lifecycle_twins")
    fast, slow = twin_servers(tmp_path_factory.mktemp(f"lc-twins-{backend}"),
                              new_credentials(1), url)
    yield fast, slow
    slow.stop()
    fast.stop()
    cleanup()


def observe(c, iid: str, op, between: str, final: str):
    """Run ``op`` and watch ``iid`` go through ``between`` to ``final``.

    The in-between status must be what a client sees right after the call
    (unless the machine stalled for longer than the whole transition), and
    ``final`` may not show before the transition time has passed. Returns the
    instance as first seen after the call.
    """
    t0 = time.time()
    op()
    first = c.get_instance(iid).instance
    if first.status == final:
        assert time.time() - t0 >= T, f"{iid} skipped {between}"
    else:
        assert first.status == between, first.status
    seen = wait_status(c, [iid], final)[iid]
    assert time.time() - t0 >= T, f"{final} before the transition time passed"
    assert set(seen) <= {between, final}, seen
    return first


def create(c, image_id=None, **kw) -> str:
    """One new instance, watched from Starting to Running."""
    t0 = time.time()
    [iid] = create_instances(c, 1, image_id=image_id, wait=None, **kw)
    first = c.get_instance(iid).instance.status
    assert first == "Starting" or (first == "Running" and time.time() - t0 >= T), first
    wait_status(c, [iid], "Running")
    assert time.time() - t0 >= T
    return iid


# --------------------------------------------------------------------------------------
# transitions, watched

def test_create_goes_through_starting_to_running(c):
    t0 = time.time()
    ids = create_instances(c, 3, wait=None)
    firsts = [c.get_instance(i).instance.status for i in ids]
    assert all(s == "Starting" for s in firsts) or time.time() - t0 >= T, firsts
    seen = wait_status(c, ids, "Running")
    assert time.time() - t0 >= T
    assert all(set(s) <= {"Starting", "Running"} for s in seen.values()), seen


def test_stop_start_reboot(c):
    iid = create(c)
    observe(c, iid, lambda: c.stop_instance(iid), "Stopping", "Stopped")
    observe(c, iid, lambda: c.start_instance(iid), "Starting", "Running")
    answers = []
    observe(c, iid, lambda: answers.append(c.reboot_instance(iid)), "Starting", "Running")
    # The Go SDK decodes this body (BatchOperationResp); an empty 200 is an EOF there.
    assert answers[0].failed_instance_id_list == []
    assert answers[0].request_id == answers[0].metadata.bce_request_id
    observe(c, iid, lambda: c.stop_instance(iid, force_stop=True), "Stopping", "Stopped")
    # settled: repeated reads agree, and the list says the same
    assert [i.status for i in c.list_instances(instance_ids=iid).instances] == ["Stopped"]


def test_rebuild_from_running_and_from_stopped(c):
    linux, windows = image_ids(c)
    other_linux = next(i.id for i in c.list_images().images
                       if i.os_type == "linux" and i.id != linux)
    iid = create(c, linux)
    observe(c, iid, lambda: c.rebuild_instance(iid, image_id=other_linux, admin_pass="pw-1234567"),
            "Starting", "Running")
    assert c.get_instance(iid).instance.image_id == other_linux
    observe(c, iid, lambda: c.stop_instance(iid), "Stopping", "Stopped")
    observe(c, iid, lambda: c.rebuild_instance(iid, image_id=linux, admin_pass="pw-1234567"),
            "Starting", "Running")
    inst = c.get_instance(iid).instance
    assert (inst.image_id, inst.os_type) == (linux, "linux")


def test_rebuild_with_a_key_pair_binds_it_after_the_restart(c):
    linux, windows = image_ids(c)
    a, b = new_keypair(c, "a"), new_keypair(c, "b")
    iid = create(c, linux, key_pair_id=a)
    assert c.get_instance(iid).instance.keypair_in_force
    first = observe(c, iid, lambda: c.rebuild_instance(iid, image_id=linux, key_pair_id=b),
                    "Starting", "Running")
    if first.status == "Starting":
        assert first.keypair_in_force is False
    inst = c.get_instance(iid).instance
    assert (inst.keypair_id, inst.keypair_name, inst.keypair_in_force) == (b, "b", True)
    assert (keypair_count(c, a), keypair_count(c, b)) == (0, 1)
    # a rebuild with a password only: a fresh system without the key pair
    observe(c, iid, lambda: c.rebuild_instance(iid, image_id=linux, admin_pass="pw-1234567"),
            "Starting", "Running")
    assert c.get_instance(iid).instance.keypair_id == ""
    assert keypair_count(c, b) == 0
    # Windows takes no key pair
    expect_error(403, "Keypair.UnsupportOsType", c.rebuild_instance, iid, image_id=windows,
                 key_pair_id=a)
    expect_error(404, "Keypair.KeypairNotExist", c.rebuild_instance, iid, image_id=linux,
                 key_pair_id="k-NoSuch00")
    expect_error(404, "NoSuchObject", c.rebuild_instance, iid, image_id="m-NoSuch00",
                 admin_pass="pw-1234567")
    assert c.get_instance(iid).instance.status == "Running"
    c.rebuild_instance(iid, image_id=linux, key_pair_id=a)
    wait_status(c, [iid], "Running")
    observe(c, iid, lambda: c.rebuild_instance(iid, image_id=windows, admin_pass="pw-1234567"),
            "Starting", "Running")
    inst = c.get_instance(iid).instance
    assert (inst.os_type, inst.keypair_id) == ("windows", "")
    assert keypair_count(c, a) == 0


def test_attach_restarts_a_running_instance_and_the_key_comes_in_force_after(c):
    iid = create(c)
    kp = new_keypair(c)
    first = observe(c, iid, lambda: c.attach_keypair(kp, [iid]), "Starting", "Running")
    assert first.keypair_id == kp
    if first.status == "Starting":
        assert first.keypair_in_force is False
    assert c.get_instance(iid).instance.keypair_in_force is True
    # replacing the pair restarts it again
    kp2 = new_keypair(c)
    first = observe(c, iid, lambda: c.attach_keypair(kp2, [iid]), "Starting", "Running")
    if first.status == "Starting":
        assert (first.keypair_id, first.keypair_in_force) == (kp2, False)
    assert c.get_instance(iid).instance.keypair_in_force is True
    # detaching does not restart
    c.detach_keypair(kp2, instance_ids=[iid])
    inst = c.get_instance(iid).instance
    assert (inst.status, inst.keypair_id, inst.keypair_in_force) == ("Running", "", False)


def test_attach_to_a_stopped_instance_waits_for_the_next_start(c):
    iid = create(c)
    observe(c, iid, lambda: c.stop_instance(iid), "Stopping", "Stopped")
    kp = new_keypair(c)
    c.attach_keypair(kp, [iid])
    deadline = time.time() + 2 * T
    while time.time() < deadline:  # it stays stopped, the key waiting
        inst = c.get_instance(iid).instance
        assert (inst.status, inst.keypair_id, inst.keypair_in_force) == ("Stopped", kp, False)
        time.sleep(0.05)
    first = observe(c, iid, lambda: c.start_instance(iid), "Starting", "Running")
    if first.status == "Starting":
        assert first.keypair_in_force is False
    assert c.get_instance(iid).instance.keypair_in_force is True


def test_release_removes_the_instance_and_its_binding(c):
    kp = new_keypair(c)
    running_id = create(c, key_pair_id=kp)
    stopped_id = create(c, key_pair_id=kp)
    observe(c, stopped_id, lambda: c.stop_instance(stopped_id), "Stopping", "Stopped")
    assert keypair_count(c, kp) == 2
    c.release_instance(running_id)
    c.release_instance(stopped_id)
    assert keypair_count(c, kp) == 0
    for iid in (running_id, stopped_id):
        expect_error(404, "NoSuchObject", c.get_instance, iid)
        expect_error(404, "NoSuchObject", c.release_instance, iid)
    c.delete_keypair(kp)


# --------------------------------------------------------------------------------------
# transition time 0

def test_transition_zero_finishes_every_operation_at_once(twins):
    fast, _ = twins
    c = fast.client()
    [iid] = c.create_instance(cpu_count=1, memory_capacity_in_gb=2,
                              image_id=image_ids(c)[0]).instance_ids
    assert c.get_instance(iid).instance.status == "Running"
    c.stop_instance(iid)
    assert c.get_instance(iid).instance.status == "Stopped"
    c.start_instance(iid)
    assert c.get_instance(iid).instance.status == "Running"
    c.reboot_instance(iid)
    assert c.get_instance(iid).instance.status == "Running"
    kp = new_keypair(c)
    c.attach_keypair(kp, [iid])
    inst = c.get_instance(iid).instance
    assert (inst.status, inst.keypair_in_force) == ("Running", True)
    c.rebuild_instance(iid, image_id=image_ids(c)[0], admin_pass="pw-1234567")
    assert c.get_instance(iid).instance.status == "Running"
    c.release_instance(iid)


# --------------------------------------------------------------------------------------
# §5.5 error codes, each in its situation

def _forbidden_everything_but(c, iid, status, allowed=()):
    """During a transition: every operation but those in ``allowed`` is refused
    with the §5.5 code, and the status stays as it was."""
    linux, _ = image_ids(c)
    codes = {
        "start": (c.start_instance, (iid,), {}, "Instance.StartInstanceOperationForbidden"),
        "stop": (c.stop_instance, (iid,), {}, "Instance.StopInstanceOperationForbidden"),
        "reboot": (c.reboot_instance, (iid,), {}, "Instance.RebootInstanceOperationForbidden"),
        "rebuild": (c.rebuild_instance, (iid,), {"image_id": linux, "admin_pass": "pw-1234567"},
                    "Instance.InstanceStatusForbidden"),
        "release": (c.release_instance, (iid,), {}, "Instance.InstanceStatusForbidden"),
    }
    for name, (fn, args, kwargs, code) in codes.items():
        if name not in allowed:
            expect_error(409, code, fn, *args, **kwargs)
    assert c.get_instance(iid).instance.status == status


def test_operations_during_creation(twins):
    fast, slow = twins
    c, cs = fast.client(), slow.client()
    [iid] = create_instances(cs, 1, wait=None)
    # both processes derive the same status from the stored times
    assert c.get_instance(iid).instance.status == cs.get_instance(iid).instance.status == "Starting"
    expect_error(409, "Instance.StartInstanceWhenCreating", c.start_instance, iid)
    _forbidden_everything_but(c, iid, "Starting", allowed=("start",))


def test_operations_during_start_stop_reboot_rebuild_and_attach(twins):
    fast, slow = twins
    c, cs = fast.client(), slow.client()
    linux, _ = image_ids(c)
    a, b, s, r, k = create_instances(c, 5)
    for iid in (s, r):
        c.stop_instance(iid)
    cs.reboot_instance(a)
    cs.stop_instance(b)
    cs.start_instance(s)
    cs.rebuild_instance(r, image_id=linux, admin_pass="pw-1234567")
    cs.attach_keypair(new_keypair(c), [k])
    expected = {a: "Starting", b: "Stopping", s: "Starting", r: "Starting", k: "Starting"}
    for iid, status in expected.items():
        assert c.get_instance(iid).instance.status == status
        _forbidden_everything_but(c, iid, status)  # Start...Forbidden, not ...WhenCreating


def test_operations_in_the_wrong_settled_status(twins):
    fast, _ = twins
    c = fast.client()
    run, stop = create_instances(c, 2)
    c.stop_instance(stop)
    expect_error(409, "Instance.StartInstanceOperationForbidden", c.start_instance, run)
    expect_error(409, "Instance.StopInstanceOperationForbidden", c.stop_instance, stop)
    expect_error(409, "Instance.RebootInstanceOperationForbidden", c.reboot_instance, stop)
    assert [c.get_instance(i).instance.status for i in (run, stop)] == ["Running", "Stopped"]
