"""Helpers the API test modules share (test_instances, test_attach,
test_lifecycle, test_races, test_read_cache, test_workflow, and tests/sdk):
SDK and raw-HTTP calls, fresh credentials, a database per backend, twin servers.
No test_* names here."""
from __future__ import annotations

import http.client
import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from baidubce.exception import BceHttpClientError

from localbcc.auth import format_timestamp, sign

from ..server import Server
from .rawhttp import query_pairs


ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
INSTANCE_ID_RE = re.compile(r"^i-[A-Za-z0-9]{8}$")
IMAGE_ID_RE = re.compile(r"^m-[A-Za-z0-9]{8}$")
NOBODY = object()


def new_credentials(n: int = 3) -> dict[str, str]:
    return {f"AK{i}{secrets.token_hex(6)}": secrets.token_hex(16) for i in range(n)}


def expect_error(status: int, code: str, fn, *args, **kwargs) -> BceHttpClientError:
    """Call an SDK method that must fail with exactly this status and code."""
    with pytest.raises(BceHttpClientError) as info:
        fn(*args, **kwargs)
    err = info.value
    assert (err.status_code, err.code) == (status, code), str(err.last_error)
    return err


def image_ids(client) -> tuple[str, str]:
    """(a Linux image id, a Windows image id) from the catalogue."""
    images = client.list_images().images
    linux = next(i.id for i in images if i.os_type == "linux")
    windows = next(i.id for i in images if i.os_type == "windows")
    return linux, windows


def status_of(client, instance_id: str) -> str:
    return client.get_instance(instance_id).instance.status


def wait_status(client, ids, status: str, timeout: float = 15.0) -> dict[str, list[str]]:
    """Poll get_instance until every id shows ``status``; returns the distinct
    statuses each one showed, in order (e.g. ["Starting", "Running"])."""
    seen: dict[str, list[str]] = {i: [] for i in ids}
    pending = list(ids)
    deadline = time.monotonic() + timeout
    while pending:
        for iid in list(pending):
            now = status_of(client, iid)
            if not seen[iid] or seen[iid][-1] != now:
                seen[iid].append(now)
            if now == status:
                pending.remove(iid)
        if pending:
            assert time.monotonic() < deadline, f"not {status} in time: {seen}"
            time.sleep(0.02)
    return seen


def create_instances(client, count: int = 1, image_id: str | None = None,
                     wait: str | None = "Running", **kwargs) -> list[str]:
    image_id = image_id or image_ids(client)[0]
    ids = client.create_instance(cpu_count=1, memory_capacity_in_gb=2, image_id=image_id,
                                 purchase_count=count, **kwargs).instance_ids
    assert len(ids) == count
    if wait:
        wait_status(client, ids, wait)
    return list(ids)


def new_keypair(client, name: str = "kp") -> str:
    return client.create_keypair(keypair_name=name).keypair.keypair_id


def keypair_count(client, keypair_id: str) -> int:
    return client.get_keypair(keypair_id).keypair.instance_count


def snapshot(client, ids) -> dict[str, tuple]:
    """What attach/detach may change on an instance: binding, key in force, status."""
    out = {}
    for iid in ids:
        inst = client.get_instance(iid).instance
        out[iid] = (inst.keypair_id, inst.keypair_name, inst.keypair_in_force, inst.status)
    return out


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def raw_request(server: Server, method: str, path: str, query: str = "", body=NOBODY, *,
                data: bytes | None = None, access_key: str | None = None,
                content_type: str | None = None,
                signed_headers: list[str] | None = None) -> RawResponse:
    """A request signed with localbcc.auth.sign, for what the Python SDK cannot send.

    ``query`` is the raw query string (``"attach"``, ``"keypairId=k-1&maxKeys=2"``);
    ``body`` is JSON-encoded (``None`` sends ``null``); ``data`` sends bytes as-is.
    ``signed_headers`` None signs like the Python SDK (empty field, default set);
    a list signs like the Go SDK (explicit names).
    """
    ak = access_key or next(iter(server.credentials))
    payload = data if data is not None else b"" if body is NOBODY else json.dumps(body).encode()
    stamp = format_timestamp(time.time())
    headers = {"Host": server.endpoint, "x-bce-date": stamp,
               "Content-Length": str(len(payload))}
    if content_type:
        headers["Content-Type"] = content_type
    pairs = query_pairs(query)
    headers["Authorization"] = sign(
        ak, server.credentials[ak], method, path, pairs,
        [(k.lower().encode(), v.encode()) for k, v in headers.items()], stamp,
        signed_headers=signed_headers)
    conn = http.client.HTTPConnection(server.endpoint, timeout=10)
    try:
        conn.request(method, path + ("?" + query if query else ""), body=payload, headers=headers)
        resp = conn.getresponse()
        return RawResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def assert_raw_error(resp: RawResponse, status: int, code: str) -> None:
    assert resp.status == status, resp.body
    body = resp.json()
    assert body["code"] == code, body
    assert body["requestId"] == resp.headers["x-bce-request-id"]
    assert body["message"]


def instances_of_keypair(server: Server, keypair_id: str, access_key: str | None = None,
                         max_keys: int | None = None) -> list[str]:
    """The `keypairId` filter of the instance list (our extension), followed page by page."""
    found, marker = [], ""
    while True:
        query = f"keypairId={keypair_id}" + (f"&maxKeys={max_keys}" if max_keys else "")
        if marker:
            query += f"&marker={marker}"
        resp = raw_request(server, "GET", "/v2/instance", query, access_key=access_key)
        assert resp.status == 200, resp.body
        page = resp.json()
        found += [i["id"] for i in page["instances"]]
        assert all(i["keypairId"] == keypair_id for i in page["instances"])
        if not page["isTruncated"]:
            return found
        marker = page["nextMarker"]


def all_instances(client, max_keys: int = 1000) -> list:
    found, marker = [], None
    while True:
        page = client.list_instances(marker=marker, max_keys=max_keys)
        found += page.instances
        if not page.is_truncated:
            return found
        marker = page.next_marker


def database_for(request, backend: str, prefix: str):
    """(URL, cleanup) of a fresh database on ``backend``: None for SQLite (the
    server's data dir), a new PostgreSQL database otherwise (conftest's pg_cluster)."""
    if backend != "postgresql":
        return None, lambda: None
    cluster = request.getfixturevalue("pg_cluster")
    name, url = cluster.create_database(prefix)
    return url, lambda: cluster.drop_database(name)


def twin_servers(data_dir: Path, credentials: dict[str, str],
                 database_url: str | None = None) -> tuple[Server, Server]:
    """Two server processes over one database: ``fast`` (transition 0: every
    operation finishes at once) and ``slow`` (transition 600 s: whatever it
    starts stays in its in-between status for the whole test). Status is derived
    from stored times, so both show the same state, and tests of "during a
    transition" need no timing luck."""
    fast = Server(data_dir, credentials, extra_args=["--transition-seconds", "0"],
                  database_url=database_url).start()
    slow = Server(data_dir, credentials, extra_args=["--transition-seconds", "600"],
                  database_url=database_url)
    slow.log_path = data_dir / "server-slow.log"
    try:
        slow.start()
    except Exception:
        fast.stop()
        raise
    return fast, slow
