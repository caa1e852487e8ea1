"""Group 6: isolation between accounts. Hypothesis picks an operation, an
acting account and another account's key pair or instance; the call must fail
(or list nothing) exactly as it does for an id that never existed: same status,
code and message (the id itself aside), so nobody can tell that the other
account's id exists. At the end no account's state has changed.

Budget: about 5 s per storage backend (shared server).
"""
from __future__ import annotations

import secrets
import string

import orjson
import pytest
from baidubce.exception import BceHttpClientError, BceServerError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import openssh_ed25519, send, wait_until

IMAGE = "m-Ubt2204a"
_ALNUM = string.ascii_letters + string.digits


def _fresh_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(8))


def _outcome(fn, *args, **kwargs) -> tuple:
    """What a caller learns from a call: the error (status, code, message) or the answer."""
    try:
        answer = fn(*args, **kwargs)
    except BceHttpClientError as exc:
        err = exc.last_error
        assert isinstance(err, BceServerError), repr(err)
        return ("error", err.status_code, err.code, str(err))
    except BceServerError as err:
        return ("error", err.status_code, err.code, str(err))
    return ("ok", _plain(answer))


def _plain(answer) -> object:
    if answer is None:
        return None
    out = {}
    for key, value in vars(answer).items():
        if key in ("metadata", "request_id"):
            continue
        if isinstance(value, list):
            value = [_plain(v) if hasattr(v, "__dict__") else v for v in value]
        elif hasattr(value, "__dict__"):
            value = _plain(value)
        out[key] = value
    return out


@pytest.fixture(scope="module")
def world(server):
    """Per account: two key pairs and two Running instances, the first bound to pair 0."""
    accounts = list(server.credentials)[:3]
    data = {}
    for n, ak in enumerate(accounts):
        client = server.client(ak)
        pairs = [client.import_keypair(keypair_name=f"iso{n}k{j}{secrets.token_hex(2)}",
                                       public_key=openssh_ed25519()).keypair.keypair_id
                 for j in range(2)]
        insts = client.create_instance(1, 1, IMAGE, purchase_count=2).instance_ids
        wait_until(lambda: all(client.get_instance(i).instance.status == "Running" for i in insts),
                   10, "instances to run")
        client.attach_keypair(pairs[0], [insts[0]])
        wait_until(lambda: client.get_instance(insts[0]).instance.status == "Running", 10,
                   "the restart after attach")
        data[ak] = {"client": client, "pairs": pairs, "instances": insts}
    return data


def _snapshot(world) -> dict:
    snap = {}
    for ak, acct in world.items():
        c = acct["client"]
        pairs = {k.keypair_id: (k.name, k.description, k.instance_count)
                 for k in c.list_keypairs().keypairs if k.keypair_id in acct["pairs"]}
        insts = {i.id: (i.name, i.status, i.keypair_id, i.image_id)
                 for i in c.list_instances().instances if i.id in acct["instances"]}
        snap[ak] = (pairs, insts)
    return snap


# Each operation: (name, kind of the foreign id, call(client, own resources, foreign id)).
def _raw_list(server, ak, query):
    def call():
        reply = send(server, "GET", "/v2/instance", query, access_key=ak)
        body = reply.json()
        if reply.status != 200:
            return ("error", reply.status, body["code"], body["message"])
        return ("ok", [i["id"] for i in body["instances"]], body["isTruncated"])
    return call


OPERATIONS = {
    "get keypair": ("k", lambda c, own, fid: c.get_keypair(fid)),
    "rename keypair": ("k", lambda c, own, fid: c.rename_keypair(fid, "hijacked")),
    "describe keypair": ("k", lambda c, own, fid: c.update_keypair_desc(fid, "hijacked")),
    "delete keypair": ("k", lambda c, own, fid: c.delete_keypair(fid)),
    "attach foreign pair to own instance": (
        "k", lambda c, own, fid: c.attach_keypair(fid, [own["instances"][1]])),
    "detach foreign pair from own instance": (
        "k", lambda c, own, fid: c.detach_keypair(fid, [own["instances"][0]])),
    "attach own pair to foreign instance": (
        "i", lambda c, own, fid: c.attach_keypair(own["pairs"][1], [fid])),
    "attach own pair to own and foreign instance": (
        "i", lambda c, own, fid: c.attach_keypair(own["pairs"][1], [own["instances"][1], fid])),
    "detach own pair from foreign instance": (
        "i", lambda c, own, fid: c.detach_keypair(own["pairs"][0], [own["instances"][0], fid])),
    "get instance": ("i", lambda c, own, fid: c.get_instance(fid)),
    "stop instance": ("i", lambda c, own, fid: c.stop_instance(fid)),
    "start instance": ("i", lambda c, own, fid: c.start_instance(fid)),
    "reboot instance": ("i", lambda c, own, fid: c.reboot_instance(fid)),
    "release instance": ("i", lambda c, own, fid: c.release_instance(fid)),
    "rebuild foreign instance": (
        "i", lambda c, own, fid: c.rebuild_instance(fid, IMAGE, key_pair_id=own["pairs"][0])),
    "rebuild own instance with foreign pair": (
        "k", lambda c, own, fid: c.rebuild_instance(own["instances"][1], IMAGE, key_pair_id=fid)),
    "create instance with foreign pair": (
        "k", lambda c, own, fid: c.create_instance(1, 1, IMAGE, key_pair_id=fid)),
    "page keypairs from foreign marker": ("k", lambda c, own, fid: c.list_keypairs(marker=fid)),
    "page instances from foreign marker": ("i", lambda c, own, fid: c.list_instances(marker=fid)),
    "list instances by foreign ids": ("i", lambda c, own, fid: c.list_instances(instance_ids=fid)),
}
RAW = {"list instances bound to foreign pair": "k"}


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(op=st.sampled_from(sorted(OPERATIONS) + sorted(RAW)), actor=st.integers(0, 2),
       other=st.integers(1, 2), index=st.integers(0, 1))
def test_foreign_ids_answer_like_ids_that_never_existed(server, world, op, actor, other, index):
    accounts = list(world)
    me, them = accounts[actor], accounts[(actor + other) % 3]
    own, client = world[me], world[me]["client"]
    if op in RAW:
        kind = RAW[op]
        foreign = world[them]["pairs"][index]
        ghost = _fresh_id("k-")
        run = lambda fid: _raw_list(server, me, f"keypairId={fid}")()  # noqa: E731
    else:
        kind, call = OPERATIONS[op]
        foreign = world[them]["pairs" if kind == "k" else "instances"][index]
        ghost = _fresh_id(f"{kind}-")
        run = lambda fid: _outcome(call, client, own, fid)  # noqa: E731
    seen = run(foreign)
    control = run(ghost)

    def same(outcome, fid):  # the id itself may be quoted back; nothing else may differ
        return orjson.loads(orjson.dumps(outcome).replace(fid.encode(), b"<ID>"))

    assert same(seen, foreign) == same(control, ghost), (op, seen, control)
    if seen[0] == "ok":  # only lists may succeed, and they show nothing foreign
        assert foreign not in orjson.dumps(seen).decode(), (op, seen)
    else:
        assert seen[1] in (400, 404), seen


def test_no_account_changed(server, world):
    """Runs after the randomized calls: every account is as it was built."""
    snap = _snapshot(world)
    for ak, (pairs, insts) in snap.items():
        acct = world[ak]
        assert set(pairs) == set(acct["pairs"]) and set(insts) == set(acct["instances"])
        assert pairs[acct["pairs"][0]][2] == 1 and pairs[acct["pairs"][1]][2] == 0
        assert all(not name.startswith("hijacked") and desc != "hijacked"
                   for name, desc, _ in pairs.values())
        assert insts[acct["instances"][0]][1:3] == ("Running", acct["pairs"][0])
        assert insts[acct["instances"][1]][1:3] == ("Running", "")
