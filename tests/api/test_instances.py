"""Images and instances with the official SDK (spec §5.1–5.3, §6). The
helpers the API test modules share are in helpers.py."""
from __future__ import annotations

import secrets
import time

import pytest

from ..server import Server
from .helpers import (
    IMAGE_ID_RE,
    INSTANCE_ID_RE,
    ISO_RE,
    all_instances,
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
    wait_status,
)

# --------------------------------------------------------------------------------------
# a module server with transition 0 and one account per test that needs clean counts

@pytest.fixture(scope="module")
def zero(tmp_path_factory, request, backend):
    url, cleanup = database_for(request, backend, "zero")
    srv = Server(tmp_path_factory.mktemp(f"zero-{backend}"), new_credentials(8),
                 extra_args=["--transition-seconds", "0"], database_url=url).start()
    srv.unused = list(srv.credentials)
    yield srv
    srv.stop()
    cleanup()


@pytest.fixture
def own_client(zero):
    """An SDK client of an account no other test of this module touches."""
    ak = zero.unused.pop()
    client = zero.client(ak)
    client.ak = ak
    return client


# --------------------------------------------------------------------------------------
# images (§5.1)

def test_images_list_linux_and_windows_and_get_each(client):
    images = client.list_images().images
    assert {i.os_type for i in images} == {"linux", "windows"}
    for img in images:
        assert IMAGE_ID_RE.match(img.id)
        assert img.type == "System" and img.status == "Available"
        assert img.name and img.os_name and img.os_version and img.os_arch
        assert ISO_RE.match(img.create_time)
        got = client.get_image(img.id).image
        assert (got.id, got.name, got.os_type) == (img.id, img.name, img.os_type)
    assert len({i.id for i in images}) == len(images)


def test_image_type_filter(client):
    every = [i.id for i in client.list_images().images]
    assert [i.id for i in client.list_images(image_type="System").images] == every
    assert client.list_images(image_type="Custom").images == []


def test_image_paging(client):
    every = [i.id for i in client.list_images().images]
    first = client.list_images(max_keys=2)
    assert [i.id for i in first.images] == every[:2]
    assert (first.is_truncated, first.next_marker, first.max_keys) == (True, every[2], 2)
    rest = client.list_images(marker=first.next_marker, max_keys=100)
    assert [i.id for i in rest.images] == every[2:]
    assert (rest.marker, rest.is_truncated) == (every[2], False)
    expect_error(400, "InappropriateJSON", client.list_images, marker="m-NoSuch00")


def test_unknown_image_is_no_such_object(client):
    expect_error(404, "NoSuchObject", client.get_image, "m-NoSuch00")
    linux, _ = image_ids(client)
    before = len(all_instances(client))
    expect_error(404, "NoSuchObject", client.create_instance, cpu_count=1,
                 memory_capacity_in_gb=2, image_id="m-NoSuch00")
    assert len(all_instances(client)) == before


# --------------------------------------------------------------------------------------
# create (§5.2, §5.3)

def test_create_instance_fields(client):
    linux, _ = image_ids(client)
    image = client.get_image(linux).image
    before = time.time()
    [iid] = client.create_instance(cpu_count=2, memory_capacity_in_gb=4, image_id=linux,
                                   name="web-1", hostname="web-host").instance_ids
    assert INSTANCE_ID_RE.match(iid)
    inst = client.get_instance(iid).instance
    assert inst.id == iid
    assert (inst.name, inst.hostname) == ("web-1", "web-host")
    assert (inst.cpu_count, inst.memory_capacity_in_gb) == (2, 4)
    assert (inst.image_id, inst.image_name) == (linux, image.name)
    assert (inst.os_type, inst.os_name, inst.os_version) == ("linux", image.os_name,
                                                            image.os_version)
    assert inst.status in ("Starting", "Running")
    assert ISO_RE.match(inst.create_time)
    created = time.mktime(time.strptime(inst.create_time, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before - 2 <= created <= time.time() + 1
    assert inst.expire_time is None
    assert (inst.keypair_id, inst.keypair_name, inst.keypair_in_force) == ("", "", False)
    assert inst.payment_timing == "Postpaid" and inst.zone_name and inst.instance_type
    assert inst.internal_ip and inst.public_ip
    # the list shows the same object
    [listed] = client.list_instances(instance_ids=iid).instances
    assert (listed.id, listed.name, listed.image_name) == (iid, "web-1", image.name)


def test_create_defaults_name_and_hostname_from_the_id(client):
    ids = create_instances(client, 2, wait=None)
    for iid in ids:
        inst = client.get_instance(iid).instance
        assert inst.name and inst.hostname
        assert iid.lower() in (inst.name.lower(), inst.hostname.lower())
    assert len(set(ids)) == 2


def test_purchase_count_bounds(server, client):
    linux, _ = image_ids(client)
    before = len(all_instances(client))
    # The SDK leaves purchaseCount out when it is 0, so 0 and -1 go raw.
    for bad in (0, -1, 101, "3", True, 2.5):
        resp = raw_request(server, "POST", "/v2/instance", "",
                           {"cpuCount": 1, "memoryCapacityInGB": 2, "imageId": linux,
                            "purchaseCount": bad})
        assert_raw_error(resp, 400, "InappropriateJSON")
        assert "purchaseCount" in resp.json()["message"]
    expect_error(400, "InappropriateJSON", client.create_instance, cpu_count=1,
                 memory_capacity_in_gb=2, image_id=linux, purchase_count=101)
    assert len(all_instances(client)) == before
    ids = create_instances(client, 100, wait=None)
    assert len(set(ids)) == 100
    assert len(all_instances(client)) == before + 100
    for iid in ids:  # leave the shared account tidy for the next tests
        wait_status(client, [iid], "Running")
        client.release_instance(iid)


def test_create_requires_an_image_id(server, client):
    resp = raw_request(server, "POST", "/v2/instance", "", {"cpuCount": 1})
    assert_raw_error(resp, 400, "InappropriateJSON")
    resp = raw_request(server, "POST", "/v2/instance", "", ["m-Ubt2204a"])
    assert_raw_error(resp, 400, "InappropriateJSON")


@pytest.mark.parametrize("field,value", [
    ("name", "n" * 66), ("hostname", "h" * 65), ("instanceType", "t" * 65),
    ("zoneName", "z" * 65), ("name", "a\x00b")])
def test_create_refuses_strings_that_do_not_fit(server, client, field, value):
    """Found by fuzzing: PostgreSQL refuses over-long or NUL-bearing text (a 500
    before); both backends now answer 400 InappropriateJSON naming the field."""
    image, _ = image_ids(client)
    reply = raw_request(server, "POST", "/v2/instance", "",
                        {"imageId": image, field: value})
    assert_raw_error(reply, 400, "InappropriateJSON")
    assert field in reply.json()["message"]


@pytest.mark.parametrize("hostname", [
    "web\x1b]0;owned\x07", "web\x1b[2J", "a\x07b", "web\nroot@other:~#", "Web-1", "1web",
    "web--1", "web-", "w", "w" * 65, "web_1", "web 1", "名字"])
def test_create_refuses_hostnames_outside_the_rule(client, hostname):
    """Issue 17: ESC, BEL and newlines reached SSH sessions' prompts and `hostname`.
    Part 2 §6: 2-64 of [a-z0-9.-], a letter first, no two symbols in a row, none last."""
    linux, _ = image_ids(client)
    before = len(all_instances(client))
    err = expect_error(400, "InappropriateJSON", client.create_instance, cpu_count=1,
                       memory_capacity_in_gb=2, image_id=linux, hostname=hostname)
    assert "hostname" in str(err.last_error)
    assert len(all_instances(client)) == before


@pytest.mark.parametrize("name", ["web\x1b[31m", "1web", "web 1", "w" * 66, "-web", "a\u202eb"])
def test_create_refuses_names_outside_the_rule(client, name):
    linux, _ = image_ids(client)
    before = len(all_instances(client))
    err = expect_error(400, "InappropriateJSON", client.create_instance, cpu_count=1,
                       memory_capacity_in_gb=2, image_id=linux, name=name)
    assert "name" in str(err.last_error)
    assert len(all_instances(client)) == before


def test_create_takes_names_and_hostnames_at_the_edges_of_the_rules(client):
    name, host = "n" + "\u4e2d" * 62 + "e\u0301", "a" + "-b" * 31 + "c"  # NFD, kept
    assert len(name) == 65 and len(host) == 64
    [iid] = create_instances(client, name=name, hostname=host, wait=None)
    inst = client.get_instance(iid).instance
    assert (inst.name, inst.hostname) == (name, host)
    wait_status(client, [iid], "Running")
    client.release_instance(iid)


def test_create_with_a_keypair(client):
    linux, windows = image_ids(client)
    kp = new_keypair(client, "at-create")
    ids = create_instances(client, 2, key_pair_id=kp, wait=None)
    assert keypair_count(client, kp) == 2
    for iid in ids:
        inst = client.get_instance(iid).instance
        assert (inst.keypair_id, inst.keypair_name) == (kp, "at-create")
        # the key comes in force when the creation is over, not before
        assert inst.keypair_in_force == (inst.status == "Running")
    wait_status(client, ids, "Running")
    assert all(client.get_instance(i).instance.keypair_in_force for i in ids)


def test_create_with_an_unknown_or_foreign_keypair_creates_nothing(server, client):
    linux, windows = image_ids(client)
    other = server.client(list(server.credentials)[1])
    foreign = new_keypair(other, "foreign")
    before = len(all_instances(client))
    for bad in ("k-NoSuch00", foreign):
        expect_error(404, "Keypair.KeypairNotExist", client.create_instance, cpu_count=1,
                     memory_capacity_in_gb=2, image_id=linux, key_pair_id=bad)
    kp = new_keypair(client, "win")
    expect_error(403, "Keypair.UnsupportOsType", client.create_instance, cpu_count=1,
                 memory_capacity_in_gb=2, image_id=windows, key_pair_id=kp)
    assert len(all_instances(client)) == before
    assert keypair_count(client, kp) == 0
    assert keypair_count(other, foreign) == 0
    other.delete_keypair(foreign)


def test_admin_pass_is_accepted_encrypted_and_rejected_otherwise(server, client):
    linux, windows = image_ids(client)
    # the SDK encrypts adminPass with the caller's secret key
    [iid] = create_instances(client, 1, admin_pass="S3cret-pass!", wait=None)
    assert client.get_instance(iid).instance.id == iid
    [win] = create_instances(client, 1, image_id=windows, admin_pass="S3cret-pass!", wait=None)
    assert client.get_instance(win).instance.os_type == "windows"
    resp = raw_request(server, "POST", "/v2/instance", "",
                       {"cpuCount": 1, "memoryCapacityInGB": 2, "imageId": linux,
                        "adminPass": "not-encrypted"})
    assert_raw_error(resp, 400, "InappropriateJSON")


def test_client_token_makes_create_idempotent(server, client):
    linux, _ = image_ids(client)
    token = "tok-" + secrets.token_hex(8)
    before = len(all_instances(client))
    first = client.create_instance(cpu_count=1, memory_capacity_in_gb=2, image_id=linux,
                                   purchase_count=2, name="idem", admin_pass="pw-123456",
                                   client_token=token).instance_ids
    again = client.create_instance(cpu_count=1, memory_capacity_in_gb=2, image_id=linux,
                                   purchase_count=2, name="idem", admin_pass="pw-123456",
                                   client_token=token).instance_ids
    assert again == first and len(first) == 2
    assert len(all_instances(client)) == before + 2
    # same token, different body
    expect_error(403, "IdempotentParameterMismatch", client.create_instance, cpu_count=1,
                 memory_capacity_in_gb=2, image_id=linux, purchase_count=3, name="idem",
                 admin_pass="pw-123456", client_token=token)
    expect_error(403, "IdempotentParameterMismatch", client.create_instance, cpu_count=1,
                 memory_capacity_in_gb=2, image_id=linux, purchase_count=2, name="idem",
                 admin_pass="another-pw", client_token=token)
    assert len(all_instances(client)) == before + 2
    # a token belongs to its account: the same token elsewhere creates afresh
    other = server.client(list(server.credentials)[2])
    theirs = other.create_instance(cpu_count=1, memory_capacity_in_gb=2, image_id=linux,
                                   purchase_count=2, name="idem", client_token=token).instance_ids
    assert not set(theirs) & set(first)
    # without a token (the SDK then makes a fresh one) every call creates
    a = create_instances(client, 1, wait=None)
    b = create_instances(client, 1, wait=None)
    assert a != b
    resp = raw_request(server, "POST", "/v2/instance", "clientToken=" + "x" * 65,
                       {"cpuCount": 1, "memoryCapacityInGB": 2, "imageId": linux})
    assert_raw_error(resp, 400, "InappropriateJSON")


# --------------------------------------------------------------------------------------
# get, release, accounts

def test_released_and_foreign_instances_are_no_such_object(server, client):
    [iid] = create_instances(client, 1)
    other = server.client(list(server.credentials)[1])
    for fn in (other.get_instance, other.release_instance, other.stop_instance,
               other.start_instance, other.reboot_instance):
        expect_error(404, "NoSuchObject", fn, iid)
    assert other.list_instances(instance_ids=iid).instances == []
    client.release_instance(iid)
    for fn in (client.get_instance, client.release_instance, client.stop_instance,
               client.start_instance, client.reboot_instance):
        expect_error(404, "NoSuchObject", fn, iid)
    linux, _ = image_ids(client)
    expect_error(404, "NoSuchObject", client.rebuild_instance, iid, image_id=linux,
                 admin_pass="pw-123456")
    expect_error(404, "NoSuchObject", client.get_instance, "i-NoSuch00")
    assert client.list_instances(instance_ids=iid).instances == []


# --------------------------------------------------------------------------------------
# list (§5.2 with §4.4's paging rules)

def test_list_pages_in_creation_order_across_deletions(own_client, zero):
    c = own_client
    ids = create_instances(c, 4) + create_instances(c, 3)
    whole = c.list_instances()
    assert [i.id for i in whole.instances] == ids
    assert (whole.is_truncated, whole.marker, whole.max_keys) == (False, "", 1000)
    assert getattr(whole, "next_marker", None) is None

    p1 = c.list_instances(max_keys=3)
    assert [i.id for i in p1.instances] == ids[:3]
    assert p1.is_truncated and p1.next_marker == ids[3] and p1.max_keys == 3
    # between pages: the marker's own item and a later one go away, one is added
    c.release_instance(ids[3])
    c.release_instance(ids[5])
    [late] = create_instances(c, 1)
    p2 = c.list_instances(marker=p1.next_marker, max_keys=3)
    assert p2.marker == ids[3]
    assert [i.id for i in p2.instances] == [ids[4], ids[6], late]
    assert not p2.is_truncated
    # a marker naming an item of the page start is inclusive
    p3 = c.list_instances(marker=ids[4], max_keys=1)
    assert [i.id for i in p3.instances] == [ids[4]] and p3.next_marker == ids[6]
    # a marker that never named an instance of this account
    expect_error(400, "InappropriateJSON", c.list_instances, marker="i-NoSuch00")
    other = zero.client(zero.unused.pop())
    expect_error(400, "InappropriateJSON", other.list_instances, marker=ids[0])
    for bad in (0, -1, "x"):
        expect_error(400, "InappropriateJSON", c.list_instances, max_keys=bad)
    # larger than 1000 is clamped
    assert c.list_instances(max_keys=5000).max_keys == 1000


def test_list_filters_status_and_instance_ids(own_client):
    c = own_client
    ids = create_instances(c, 4)
    c.stop_instance(ids[1])
    c.stop_instance(ids[3])
    wait_status(c, [ids[1], ids[3]], "Stopped")
    assert [i.id for i in c.list_instances(status="Stopped").instances] == [ids[1], ids[3]]
    assert [i.id for i in c.list_instances(status="Running").instances] == [ids[0], ids[2]]
    assert [i.id for i in c.list_instances(status="Running,Stopped").instances] == ids
    assert c.list_instances(status="Starting").instances == []
    page = c.list_instances(status="Running", max_keys=1)
    assert [i.id for i in page.instances] == [ids[0]] and page.next_marker == ids[2]
    picked = c.list_instances(instance_ids=f"{ids[2]},i-NoSuch00,{ids[0]}").instances
    assert [i.id for i in picked] == [ids[0], ids[2]]
    assert [i.id for i in c.list_instances(instance_ids=ids[3], status="Stopped").instances] \
        == [ids[3]]
    assert c.list_instances(instance_ids=ids[3], status="Running").instances == []


def test_list_keypair_id_filter_raw(own_client, zero):
    c, ak = own_client, own_client.ak
    ids = create_instances(c, 5)
    a, b = new_keypair(c, "a"), new_keypair(c, "b")
    c.attach_keypair(a, [ids[0], ids[2], ids[4]])
    c.attach_keypair(b, [ids[1]])
    assert instances_of_keypair(zero, a, ak) == [ids[0], ids[2], ids[4]]
    assert instances_of_keypair(zero, a, ak, max_keys=1) == [ids[0], ids[2], ids[4]]
    assert instances_of_keypair(zero, b, ak) == [ids[1]]
    resp = raw_request(zero, "GET", "/v2/instance", f"keypairId={a}&maxKeys=2", access_key=ak)
    page = resp.json()
    assert [i["id"] for i in page["instances"]] == [ids[0], ids[2]]
    assert page["isTruncated"] is True and page["nextMarker"] == ids[4]
    # a pair of another account, or none at all, uses no instance of ours
    assert instances_of_keypair(zero, a, zero.unused.pop()) == []
    assert instances_of_keypair(zero, "k-NoSuch00", ak) == []
    c.attach_keypair(b, [ids[0]])
    assert instances_of_keypair(zero, a, ak) == [ids[2], ids[4]]
    assert instances_of_keypair(zero, b, ak) == [ids[0], ids[1]]
