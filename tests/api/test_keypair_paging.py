"""Key pair list paging (spec §4.4) through the SDK: order, maxKeys, marker,
nextMarker/isTruncated, and exactness while items come and go between pages.

One private server for the module; each test takes an account of its own, so
an unfiltered list holds exactly what the test created.
"""
from __future__ import annotations

import json
import secrets

import pytest

from ..conftest import _database_url
from ..server import Server
from .rawhttp import ed25519_line, expect, name

ACCOUNTS = 40
INAPPROPRIATE = (400, "InappropriateJSON")


@pytest.fixture(scope="module")
def paging_server(tmp_path_factory, request, backend):
    creds = {f"PG{i}{secrets.token_hex(6)}": secrets.token_hex(16) for i in range(ACCOUNTS)}
    url, cleanup = _database_url(request, backend, "paging")
    srv = Server(tmp_path_factory.mktemp(f"paging-{backend}"), creds, database_url=url).start()
    srv.unused = list(creds)
    yield srv
    srv.stop()
    cleanup()


@pytest.fixture
def c(paging_server):
    """An SDK client of an account no other test uses."""
    return paging_server.client(paging_server.unused.pop())


def make(client, n: int, prefix: str = "pg") -> list[str]:
    """Import ``n`` pairs (fast: ed25519), returning their ids in creation order."""
    return [client.import_keypair(keypair_name=f"{prefix}{i}", public_key=ed25519_line()).keypair.keypair_id
            for i in range(n)]


def page(client, **kw) -> dict:
    return json.loads(client.list_keypairs(**kw).raw_data)


def ids(doc: dict) -> list[str]:
    return [k["keypairId"] for k in doc["keypairs"]]


def walk(client, max_keys: int, between=None, **kw) -> tuple[list[str], list[dict]]:
    """Every page from the start; ``between(page_no, doc)`` runs after each page."""
    seen, docs, marker = [], [], None
    for n in range(1000):
        doc = page(client, marker=marker, max_keys=max_keys, **kw)
        docs.append(doc)
        seen += ids(doc)
        if not doc["isTruncated"]:
            assert "nextMarker" not in doc
            return seen, docs
        assert len(doc["keypairs"]) == max_keys
        marker = doc["nextMarker"]
        if between:
            between(n, doc)
    raise AssertionError("paging did not end")


def test_empty_account_and_defaults(c):
    doc = page(c)
    assert doc == {"marker": "", "isTruncated": False, "maxKeys": 1000, "keypairs": []}


def test_creation_order_default_page(c):
    created = make(c, 6)
    # created by create too, interleaved
    created.append(c.create_keypair(keypair_name="made").keypair.keypair_id)
    created += make(c, 2, "late")
    doc = page(c)
    assert ids(doc) == created
    assert doc["marker"] == "" and doc["isTruncated"] is False and doc["maxKeys"] == 1000
    assert "nextMarker" not in doc
    assert all("privateKey" not in k for k in doc["keypairs"])
    # renaming does not move an item
    c.rename_keypair(created[0], "zzz")
    assert ids(page(c)) == created


def test_pages_with_max_keys(c):
    created = make(c, 5)
    first = page(c, max_keys=2)
    assert ids(first) == created[:2]
    assert first["isTruncated"] is True and first["nextMarker"] == created[2]
    assert first["maxKeys"] == 2 and first["marker"] == ""
    second = page(c, marker=first["nextMarker"], max_keys=2)
    assert ids(second) == created[2:4]
    assert second["marker"] == created[2] and second["nextMarker"] == created[4]
    last = page(c, marker=second["nextMarker"], max_keys=2)
    assert ids(last) == created[4:]
    assert last["isTruncated"] is False and "nextMarker" not in last
    # an exact fit is not truncated
    exact = page(c, max_keys=5)
    assert ids(exact) == created and exact["isTruncated"] is False and "nextMarker" not in exact
    assert walk(c, 1)[0] == created
    assert walk(c, 3)[0] == created


def test_marker_is_inclusive_and_empty_marker_is_absent(c):
    created = make(c, 4)
    for i, marker in enumerate(created):
        assert ids(page(c, marker=marker)) == created[i:]
        assert page(c, marker=marker)["marker"] == marker
    assert ids(page(c, marker="")) == created
    assert page(c, marker="")["marker"] == ""


def test_max_keys_clamped_and_empty_is_default(c):
    make(c, 2)
    assert page(c, max_keys=5000)["maxKeys"] == 1000
    assert page(c, max_keys=1000)["maxKeys"] == 1000
    assert page(c, max_keys="")["maxKeys"] == 1000
    assert page(c, max_keys=1)["maxKeys"] == 1


@pytest.mark.parametrize("bad", [0, -1, "abc", "1.5", " 2", "0x10", "1e3", "２"])
def test_invalid_max_keys(c, bad):
    err = expect(*INAPPROPRIATE, c.list_keypairs, max_keys=bad)
    assert "maxKeys" in str(err)


def test_marker_that_never_existed(paging_server, c):
    mine = make(c, 1)[0]
    for bad in ("k-00000000", "k-zzzzzzzz", "garbage", "i-12345678"):
        err = expect(*INAPPROPRIATE, c.list_keypairs, marker=bad)
        assert "marker" in str(err)
    # another account's item never named an item of this account
    stranger = paging_server.client(paging_server.unused.pop())
    theirs = make(stranger, 1)[0]
    expect(*INAPPROPRIATE, c.list_keypairs, marker=theirs)
    expect(*INAPPROPRIATE, stranger.list_keypairs, marker=mine)


def test_marker_item_deleted_between_pages(c):
    created = make(c, 6)
    first = page(c, max_keys=2)
    assert first["nextMarker"] == created[2]
    c.delete_keypair(created[2])  # the marker item itself
    second = page(c, marker=created[2], max_keys=2)
    assert ids(second) == created[3:5]
    assert second["marker"] == created[2] and second["nextMarker"] == created[5]
    # the marker is also deleted together with what follows it
    c.delete_keypair(created[5])
    c.delete_keypair(created[4])
    third = page(c, marker=created[4], max_keys=2)
    assert ids(third) == [] and third["isTruncated"] is False
    # a deleted item's marker still pages in place once more items exist
    newer = make(c, 2, "new")
    assert ids(page(c, marker=created[2], max_keys=10)) == [created[3]] + newer
    assert ids(page(c, marker=created[5])) == newer


def test_walk_exact_while_items_are_created_and_deleted(c):
    created = make(c, 12)
    added: list[str] = []
    listed: list[str] = []
    deleted_unseen: list[str] = []  # deleted before their page was fetched
    deleted_seen: list[str] = []

    def churn(n, doc):
        listed.extend(ids(doc))
        nxt = doc["nextMarker"]
        if nxt not in created:  # the walk has reached the items added meanwhile
            return
        at = created.index(nxt)
        # delete the next page's first item (the marker itself), one already listed,
        # and one further ahead; then add a new item
        for victim in (nxt, doc["keypairs"][0]["keypairId"], created[at + 2] if at + 2 < len(created) else None):
            if victim and victim not in deleted_unseen + deleted_seen:
                c.delete_keypair(victim)
                (deleted_seen if victim in listed else deleted_unseen).append(victim)
        added.extend(make(c, 1, f"add{n}-"))

    seen, _ = walk(c, 3, between=churn)
    assert deleted_unseen and deleted_seen and added
    assert len(seen) == len(set(seen)), "an item was listed twice"
    # exactly the items not deleted before their page, in creation order, then the new ones
    assert seen == [i for i in created if i not in deleted_unseen] + added
    assert ids(page(c)) == [i for i in created if i not in deleted_unseen + deleted_seen] + added


def test_name_filter_is_exact_and_pages(c):
    wanted = name("same")
    a = c.import_keypair(keypair_name=wanted, public_key=ed25519_line()).keypair.keypair_id
    c.import_keypair(keypair_name=wanted + "x", public_key=ed25519_line())
    c.import_keypair(keypair_name=wanted[:-1], public_key=ed25519_line())
    b = c.import_keypair(keypair_name=wanted, public_key=ed25519_line()).keypair.keypair_id
    c.import_keypair(keypair_name=wanted.upper(), public_key=ed25519_line())
    d = c.import_keypair(keypair_name=wanted, public_key=ed25519_line()).keypair.keypair_id
    assert ids(page(c, name=wanted)) == [a, b, d]
    assert walk(c, 2, name=wanted)[0] == [a, b, d]
    first = page(c, name=wanted, max_keys=1)
    assert first["nextMarker"] == b
    assert ids(page(c, name="nobody-has-this")) == []
    assert ids(page(c, name="")) == ids(page(c))  # empty means absent
