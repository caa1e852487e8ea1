"""Binding key pairs to instances: the seed page (spec §4.6) with the official SDK.

Two server processes share one database: ``fast`` (transition 0) sets up
Running and Stopped instances at once, ``slow`` (transition 600 s) makes
instances that stay Starting/Stopping for the whole test, so every check about
in-between statuses is deterministic (and both processes must agree on them).
"""
from __future__ import annotations

import pytest

from .helpers import (
    NOBODY,
    assert_raw_error,
    create_instances,
    database_for,
    expect_error,
    image_ids,
    instances_of_keypair,
    keypair_count,
    new_credentials,
    new_keypair,
    raw_request,
    snapshot,
    twin_servers,
)


@pytest.fixture(scope="module")
def twins(tmp_path_factory, request, backend):
    url, cleanup = database_for(request, backend, "attach")
    fast, slow = twin_servers(tmp_path_factory.mktemp(f"attach-{backend}"), new_credentials(3), url)
    yield fast, slow
    slow.stop()
    fast.stop()
    cleanup()


@pytest.fixture
def fast(twins):
    return twins[0]


@pytest.fixture
def c(twins):
    """SDK client of the first account on the fast server."""
    return twins[0].client()


@pytest.fixture
def cs(twins):
    """The same account on the slow server."""
    return twins[1].client()


@pytest.fixture
def images(c):
    return image_ids(c)


def running(c, n=1):
    return create_instances(c, n)


def stopped(c, n=1):
    ids = create_instances(c, n)
    for iid in ids:
        c.stop_instance(iid)
    assert {c.get_instance(i).instance.status for i in ids} == {"Stopped"}
    return ids


def starting(cs, n=1):
    ids = create_instances(cs, n, wait=None)
    assert {cs.get_instance(i).instance.status for i in ids} == {"Starting"}
    return ids


def windows(c, images):
    return create_instances(c, 1, image_id=images[1])[0]


# --------------------------------------------------------------------------------------
# the happy path and the answer's shape

def test_attach_binds_running_and_stopped_instances(c):
    ids = running(c, 2) + stopped(c, 1)
    kp = new_keypair(c, "deploy")
    resp = c.attach_keypair(kp, ids)
    assert resp.failed_instance_id_list == []
    for iid in ids:
        inst = c.get_instance(iid).instance
        assert (inst.keypair_id, inst.keypair_name) == (kp, "deploy")
    assert keypair_count(c, kp) == 3
    [listed] = [k for k in c.list_keypairs().keypairs if k.keypair_id == kp]
    assert listed.instance_count == 3
    # transition 0: the restart of the running ones is already over
    assert [c.get_instance(i).instance.status for i in ids] == ["Running", "Running", "Stopped"]
    assert [c.get_instance(i).instance.keypair_in_force for i in ids] == [True, True, False]


@pytest.mark.parametrize("action", ["attach", "detach"])
def test_attach_and_detach_answer_a_json_object(fast, c, action):
    [iid] = running(c)
    kp = new_keypair(c)
    if action == "detach":
        c.attach_keypair(kp, [iid])
    resp = raw_request(fast, "PUT", f"/v2/keypair/{kp}", f"{action}=", {"instanceIds": [iid]})
    assert resp.status == 200, resp.body
    assert resp.headers["content-type"] == "application/json;charset=UTF-8"
    assert resp.json() == {"requestId": resp.headers["x-bce-request-id"],
                           "failedInstanceIdList": []}
    assert keypair_count(c, kp) == (1 if action == "attach" else 0)


def test_go_sdk_request_form(fast, c):
    """Bare ``?attach``, Content-Type: application/json and an explicit signed-headers list."""
    ids = running(c, 2)
    kp = new_keypair(c)
    go = dict(content_type="application/json",
              signed_headers=["host", "content-type", "x-bce-date"])
    resp = raw_request(fast, "PUT", f"/v2/keypair/{kp}", "attach", {"instanceIds": ids}, **go)
    assert resp.status == 200, resp.body
    assert resp.json() == {"requestId": resp.headers["x-bce-request-id"],
                           "failedInstanceIdList": []}
    assert [c.get_instance(i).instance.keypair_id for i in ids] == [kp, kp]
    resp = raw_request(fast, "PUT", f"/v2/keypair/{kp}", "detach", {"instanceIds": ids[:1]}, **go)
    assert resp.status == 200, resp.body
    assert resp.json()["failedInstanceIdList"] == []
    assert [c.get_instance(i).instance.keypair_id for i in ids] == ["", kp]
    # errors come back in the same form
    resp = raw_request(fast, "PUT", f"/v2/keypair/{kp}", "attach", {"instanceIds": ids[1:]}, **go)
    assert_raw_error(resp, 400, "Keypair.AttachAttachedKeypair")
    resp = raw_request(fast, "PUT", "/v2/keypair/k-NoSuch00", "attach", {"instanceIds": ids}, **go)
    assert_raw_error(resp, 404, "Keypair.KeypairNotExist")
    # the Go SDK deletes with ?delete and a JSON body
    c.detach_keypair(kp, instance_ids=ids[1:])
    resp = raw_request(fast, "DELETE", f"/v2/keypair/{kp}", "delete", {}, **go)
    assert resp.status == 200, resp.body
    expect_error(404, "Keypair.KeypairNotExist", c.get_keypair, kp)


# --------------------------------------------------------------------------------------
# the five seed error codes and the order of checks

def test_each_seed_error_code(c, cs, images):
    kp = new_keypair(c)
    [run] = running(c)
    win = windows(c, images)
    [start] = starting(cs)
    expect_error(404, "Keypair.KeypairNotExist", c.attach_keypair, "k-NoSuch00", [run])
    expect_error(404, "Keypair.InstanceNotExist", c.attach_keypair, kp, ["i-NoSuch00"])
    expect_error(403, "Keypair.UnsupportOsType", c.attach_keypair, kp, [win])
    expect_error(409, "Keypair.InstanceStatusForbidden", c.attach_keypair, kp, [start])
    c.attach_keypair(kp, [run])
    expect_error(400, "Keypair.AttachAttachedKeypair", c.attach_keypair, kp, [run])
    assert keypair_count(c, kp) == 1
    # the messages are the seed page's
    err = expect_error(403, "Keypair.UnsupportOsType", c.attach_keypair, kp, [win])
    assert "only linux supported" in str(err.last_error)
    err = expect_error(409, "Keypair.InstanceStatusForbidden", c.attach_keypair, kp, [start])
    assert "running or stopped" in str(err.last_error)


@pytest.mark.parametrize("action", ["attach_keypair", "detach_keypair"])
def test_ids_no_instance_can_have_are_simply_unknown(c, action):
    """Found by schemathesis: an id with a NUL (which PostgreSQL cannot even
    compare) or far too long is an instance that does not exist, not a 500."""
    kp = new_keypair(c)
    [run] = running(c)
    for odd in ["i-\x00bad0000", "\x00", "i-" + "x" * 500, "\u00e9\u4e2d"]:
        expect_error(404, "Keypair.InstanceNotExist", getattr(c, action), kp, [run, odd])
    # with no id worth looking up, the pair is still checked first
    expect_error(404, "Keypair.InstanceNotExist", getattr(c, action), kp, ["\x00"])
    expect_error(404, "Keypair.KeypairNotExist", getattr(c, action), "k-NoSuch00", ["\x00"])
    assert keypair_count(c, kp) == 0


def test_in_between_statuses_are_forbidden(c, cs):
    kp = new_keypair(c)
    [creating] = starting(cs)
    [a, b] = running(c, 2)
    cs.stop_instance(a)  # Stopping for 600 s
    cs.reboot_instance(b)  # Starting for 600 s
    assert [c.get_instance(i).instance.status for i in (a, b)] == ["Stopping", "Starting"]
    for iid in (creating, a, b):
        expect_error(409, "Keypair.InstanceStatusForbidden", c.attach_keypair, kp, [iid])
        expect_error(409, "Keypair.InstanceStatusForbidden", c.detach_keypair, kp,
                     instance_ids=[iid])
        expect_error(409, "Keypair.InstanceStatusForbidden", cs.attach_keypair, kp, [iid])


def test_order_of_checks(twins, c, cs, images):
    fast, _ = twins
    other = fast.client(list(fast.credentials)[1])
    kp, kp2 = new_keypair(c), new_keypair(c)
    theirs = new_keypair(other)
    [run] = running(c)
    [stop] = stopped(c)
    win = windows(c, images)
    [start] = starting(cs)
    [foreign] = running(other)
    c.attach_keypair(kp, [run])
    cases = [
        # 1. the pair before any instance
        (["i-NoSuch00"], "k-NoSuch00", 404, "Keypair.KeypairNotExist"),
        ([win, start], "k-NoSuch00", 404, "Keypair.KeypairNotExist"),
        ([run], theirs, 404, "Keypair.KeypairNotExist"),
        # 2. instance by instance, in the order given
        (["i-NoSuch00", win], kp2, 404, "Keypair.InstanceNotExist"),
        ([foreign, win], kp2, 404, "Keypair.InstanceNotExist"),
        ([win, "i-NoSuch00"], kp2, 403, "Keypair.UnsupportOsType"),
        ([win, start], kp2, 403, "Keypair.UnsupportOsType"),
        ([start, win], kp2, 409, "Keypair.InstanceStatusForbidden"),
        ([stop, start, "i-NoSuch00"], kp2, 409, "Keypair.InstanceStatusForbidden"),
        ([run, start], kp, 400, "Keypair.AttachAttachedKeypair"),
        ([run, "i-NoSuch00"], kp, 400, "Keypair.AttachAttachedKeypair"),
        ([stop, run, win], kp, 400, "Keypair.AttachAttachedKeypair"),
        (["i-NoSuch00", run], kp, 404, "Keypair.InstanceNotExist"),
        ([start, run], kp, 409, "Keypair.InstanceStatusForbidden"),
    ]
    for ids, pair, status, code in cases:
        expect_error(status, code, c.attach_keypair, pair, ids)
    # detach runs checks 1 and 2a–2c the same way (2d does not apply)
    for ids, pair, status, code in cases:
        if code != "Keypair.AttachAttachedKeypair" and pair != kp:
            expect_error(status, code, c.detach_keypair, pair, instance_ids=ids)
    # nothing of all that changed anything
    assert snapshot(c, [run, stop])[run][0] == kp
    assert snapshot(c, [stop])[stop][0] == ""
    assert (keypair_count(c, kp), keypair_count(c, kp2), keypair_count(other, theirs)) == (1, 0, 0)


def test_another_accounts_instances_and_pairs_do_not_exist(twins, c):
    fast, _ = twins
    other = fast.client(list(fast.credentials)[2])
    [mine] = running(c)
    [theirs] = running(other)
    kp, their_kp = new_keypair(c), new_keypair(other)
    expect_error(404, "Keypair.InstanceNotExist", c.attach_keypair, kp, [theirs])
    expect_error(404, "Keypair.InstanceNotExist", c.detach_keypair, kp, instance_ids=[theirs])
    expect_error(404, "Keypair.KeypairNotExist", c.attach_keypair, their_kp, [mine])
    expect_error(404, "Keypair.KeypairNotExist", c.detach_keypair, their_kp, instance_ids=[mine])
    expect_error(404, "NoSuchObject", c.get_instance, theirs)
    assert other.get_instance(theirs).instance.keypair_id == ""
    assert keypair_count(other, their_kp) == 0


# --------------------------------------------------------------------------------------
# atomicity, replacement, repeats

@pytest.mark.parametrize("last", ["unknown", "windows", "starting", "attached", "foreign"])
def test_a_failing_last_instance_changes_nothing(twins, c, cs, images, last):
    fast, _ = twins
    a, b = new_keypair(c, "a"), new_keypair(c, "b")
    r1, r2 = running(c, 2)
    [s1] = stopped(c)
    [x] = running(c)
    c.attach_keypair(a, [r1, s1])
    c.attach_keypair(b, [x])
    if last == "unknown":
        bad, code = "i-NoSuch00", (404, "Keypair.InstanceNotExist")
    elif last == "windows":
        bad, code = windows(c, images), (403, "Keypair.UnsupportOsType")
    elif last == "starting":
        bad, code = starting(cs)[0], (409, "Keypair.InstanceStatusForbidden")
    elif last == "attached":
        bad, code = x, (400, "Keypair.AttachAttachedKeypair")
    else:
        bad = running(fast.client(list(fast.credentials)[1]))[0]
        code = (404, "Keypair.InstanceNotExist")
    ids = [r1, r2, s1, bad]
    before = snapshot(c, ids[:3] + [x])
    counts = (keypair_count(c, a), keypair_count(c, b))
    # through the slow server: a restart that leaked would show Starting for 600 s
    expect_error(*code, cs.attach_keypair, b, ids)
    assert snapshot(c, ids[:3] + [x]) == before
    assert (keypair_count(c, a), keypair_count(c, b)) == counts == (2, 1)
    if last != "attached":
        expect_error(*code, cs.detach_keypair, a, instance_ids=[r1, s1, bad])
        assert snapshot(c, ids[:3] + [x]) == before
        assert (keypair_count(c, a), keypair_count(c, b)) == (2, 1)


def test_attach_replaces_a_binding_and_counts_stay_exact(fast, c):
    i1, i2, i3 = running(c, 3)
    a, b = new_keypair(c, "pair-a"), new_keypair(c, "pair-b")
    c.attach_keypair(a, [i1, i2, i3])
    assert (keypair_count(c, a), keypair_count(c, b)) == (3, 0)
    c.attach_keypair(b, [i1, i1, i2, i1])  # repeats count once
    assert (keypair_count(c, a), keypair_count(c, b)) == (1, 2)
    inst = c.get_instance(i1).instance
    assert (inst.keypair_id, inst.keypair_name) == (b, "pair-b")
    assert c.get_instance(i3).instance.keypair_id == a
    assert instances_of_keypair(fast, a) == [i3]
    assert instances_of_keypair(fast, b) == [i1, i2]
    c.attach_keypair(b, [i3])
    assert (keypair_count(c, a), keypair_count(c, b)) == (0, 3)
    # a pair that lost every instance can go; one in use cannot
    c.delete_keypair(a)
    expect_error(404, "Keypair.KeypairNotExist", c.get_keypair, a)
    expect_error(403, "Keypair.DeleteKeypairInUse", c.delete_keypair, b)
    assert keypair_count(c, b) == 3
    c.attach_keypair(a := new_keypair(c, "pair-a2"), [i2])
    assert (keypair_count(c, a), keypair_count(c, b)) == (1, 2)


def test_rename_shows_in_the_instances_keypair_name(c):
    [iid] = running(c)
    kp = new_keypair(c, "before")
    c.attach_keypair(kp, [iid])
    c.rename_keypair(kp, "after")
    assert c.get_instance(iid).instance.keypair_name == "after"


# --------------------------------------------------------------------------------------
# instanceIds validation

BAD_BODIES = [
    NOBODY, None, {}, {"instanceIds": None}, {"instanceIds": "i-12345678"},
    {"instanceIds": []}, {"instanceIds": [1]}, {"instanceIds": ["i-12345678", None]},
    {"instanceIds": [["i-12345678"]]}, {"instanceIds": {"i-12345678": 1}},
    {"instanceIds": [f"i-{n:08d}" for n in range(101)]}, ["i-12345678"], "i-12345678",
]


@pytest.mark.parametrize("action", ["attach", "detach"])
def test_instance_ids_must_be_a_list_of_1_to_100_strings(fast, c, action):
    [iid] = running(c)
    kp = new_keypair(c)
    if action == "detach":
        c.attach_keypair(kp, [iid])
    before = snapshot(c, [iid])
    for body in BAD_BODIES:
        resp = raw_request(fast, "PUT", f"/v2/keypair/{kp}", f"{action}=", body)
        assert_raw_error(resp, 400, "InappropriateJSON")
        if isinstance(body, dict):
            assert "instanceIds" in resp.json()["message"]
    # a valid id next to a bad item changes nothing either
    resp = raw_request(fast, "PUT", f"/v2/keypair/{kp}", f"{action}=", {"instanceIds": [iid, 7]})
    assert_raw_error(resp, 400, "InappropriateJSON")
    resp = raw_request(fast, "PUT", f"/v2/keypair/{kp}", f"{action}=", data=b"{not json")
    assert_raw_error(resp, 400, "MalformedJSON")
    assert snapshot(c, [iid]) == before
    # 100 distinct ids pass validation (then the first unknown one fails) ...
    hundred = [f"i-{n:08d}" for n in range(100)]
    resp = raw_request(fast, "PUT", f"/v2/keypair/{kp}", f"{action}=", {"instanceIds": hundred})
    assert_raw_error(resp, 404, "Keypair.InstanceNotExist")
    # ... and so do 101 items that are 100 ids once repeats are removed
    resp = raw_request(fast, "PUT", f"/v2/keypair/{kp}", f"{action}=",
                       {"instanceIds": hundred + hundred[:1]})
    assert_raw_error(resp, 404, "Keypair.InstanceNotExist")
    # unknown fields are ignored
    resp = raw_request(fast, "PUT", f"/v2/keypair/{kp}", f"{action}=",
                       {"instanceIds": [iid], "extra": {"x": 1}})
    assert resp.status == 200, resp.body
    assert keypair_count(c, kp) == (1 if action == "attach" else 0)


def test_the_sdks_own_odd_bodies(c):
    """The Python SDK's detach_keypair sends null and bare strings as they are."""
    [iid] = running(c)
    kp = new_keypair(c)
    c.attach_keypair(kp, [iid])
    expect_error(400, "InappropriateJSON", c.detach_keypair, kp, instance_ids=None)
    expect_error(400, "InappropriateJSON", c.detach_keypair, kp, instance_ids=iid)
    expect_error(400, "InappropriateJSON", c.detach_keypair, kp)
    expect_error(400, "InappropriateJSON", c.attach_keypair, kp, [])
    expect_error(400, "InappropriateJSON", c.attach_keypair, kp, [1])
    assert keypair_count(c, kp) == 1


# --------------------------------------------------------------------------------------
# detach

def test_detach_unbinds_this_pair_only_and_skips_the_rest(c, cs):
    a, b = new_keypair(c, "a"), new_keypair(c, "b")
    i1, i2, i3 = running(c, 3)
    [s4] = stopped(c)
    c.attach_keypair(a, [i1, s4])
    c.attach_keypair(b, [i2])
    assert c.get_instance(i1).instance.keypair_in_force
    resp = cs.detach_keypair(a, instance_ids=[i1, i2, i3, s4])
    assert resp.failed_instance_id_list == []
    after = snapshot(c, [i1, i2, i3, s4])
    # no restart (even on the slow server), the key stops at once
    assert after[i1] == ("", "", False, "Running")
    assert after[s4] == ("", "", False, "Stopped")
    assert after[i2][:3] == (b, "b", True)
    assert after[i3][0] == ""
    assert (keypair_count(c, a), keypair_count(c, b)) == (0, 1)
    # detaching again is a no-op, not an error
    cs.detach_keypair(a, instance_ids=[i1])
    assert (keypair_count(c, a), keypair_count(c, b)) == (0, 1)


def test_detach_checks_the_instances_like_attach(c, cs, images):
    kp = new_keypair(c)
    win = windows(c, images)
    [start] = starting(cs)
    expect_error(404, "Keypair.KeypairNotExist", c.detach_keypair, "k-NoSuch00",
                 instance_ids=["i-NoSuch00"])
    expect_error(404, "Keypair.InstanceNotExist", c.detach_keypair, kp, instance_ids=["i-NoSuch00"])
    expect_error(403, "Keypair.UnsupportOsType", c.detach_keypair, kp, instance_ids=[win])
    expect_error(409, "Keypair.InstanceStatusForbidden", c.detach_keypair, kp,
                 instance_ids=[start])


# --------------------------------------------------------------------------------------
# attach and the lifecycle (deterministic half; test_lifecycle watches it happen)

def test_attach_restarts_running_instances_and_leaves_stopped_ones(c, cs):
    [run] = running(c)
    [stop] = stopped(c)
    kp = new_keypair(c)
    cs.attach_keypair(kp, [run, stop])
    inst = c.get_instance(run).instance
    assert (inst.status, inst.keypair_id, inst.keypair_in_force) == ("Starting", kp, False)
    inst = c.get_instance(stop).instance
    assert (inst.status, inst.keypair_id, inst.keypair_in_force) == ("Stopped", kp, False)
    # while restarting it can't be bound again, nor stopped
    expect_error(409, "Keypair.InstanceStatusForbidden", c.attach_keypair, new_keypair(c), [run])
    expect_error(409, "Instance.StopInstanceOperationForbidden", c.stop_instance, run)
    # the stopped one's key comes in force with its next start
    c.start_instance(stop)
    inst = c.get_instance(stop).instance
    assert (inst.status, inst.keypair_in_force) == ("Running", True)


# --------------------------------------------------------------------------------------
# delete in use, release

def test_delete_in_use_and_release_lowers_the_count(fast, c):
    kp = new_keypair(c)
    i1, i2 = running(c, 2)
    c.attach_keypair(kp, [i1, i2])
    c.stop_instance(i2)
    expect_error(403, "Keypair.DeleteKeypairInUse", c.delete_keypair, kp)
    c.release_instance(i1)
    assert keypair_count(c, kp) == 1
    assert instances_of_keypair(fast, kp) == [i2]
    expect_error(404, "NoSuchObject", c.get_instance, i1)
    expect_error(404, "Keypair.InstanceNotExist", c.attach_keypair, kp, [i1])
    expect_error(403, "Keypair.DeleteKeypairInUse", c.delete_keypair, kp)
    c.release_instance(i2)  # a stopped one too
    assert keypair_count(c, kp) == 0
    assert instances_of_keypair(fast, kp) == []
    c.delete_keypair(kp)
    expect_error(404, "Keypair.KeypairNotExist", c.get_keypair, kp)
