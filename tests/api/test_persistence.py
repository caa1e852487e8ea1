"""Durability (issue 2): data survives a restart and a SIGKILL with no
acknowledged write lost; a created pair's private key is never written to disk
or to the log."""
from __future__ import annotations

import base64
import json
import re
import threading
from pathlib import Path

from baidubce.auth.bce_credentials import BceCredentials
from baidubce.bce_client_configuration import BceClientConfiguration
from baidubce.http import http_methods
from baidubce.retry.retry_policy import NoRetryPolicy
from baidubce.services.bcc.bcc_client import BccClient

from .rawhttp import ed25519_line, expect


def wire(resp) -> dict:
    return json.loads(resp.raw_data)


def everything(srv) -> dict[str, list[dict]]:
    """Every account's full key pair list, as the wire shows it."""
    return {ak: wire(srv.client(ak).list_keypairs())["keypairs"] for ak in srv.credentials}


def no_retry_client(srv, ak: str) -> BccClient:
    config = BceClientConfiguration(credentials=BceCredentials(ak, srv.credentials[ak]), endpoint=srv.endpoint,
                                    retry_policy=NoRetryPolicy(), connection_timeout_in_mills=5000)
    return BccClient(config)


def test_restart_keeps_everything(fresh_server):
    srv = fresh_server()
    aks = list(srv.credentials)
    c, c2 = srv.client(aks[0]), srv.client(aks[1])
    a = c.create_keypair(keypair_name="alpha", keypair_desc="first").keypair
    b_line = ed25519_line("b@host")
    b = c.import_keypair(keypair_name="beta", keypair_desc="to clear", public_key=b_line).keypair
    gone = c.import_keypair(keypair_name="gone", public_key=ed25519_line()).keypair
    d = c.import_keypair(keypair_name="delta", public_key=ed25519_line()).keypair
    c.rename_keypair(a.keypair_id, "alpha2")
    c.update_keypair_desc(b.keypair_id, "")
    c.delete_keypair(gone.keypair_id)
    token_body = json.dumps({"name": "tokened", "description": None})
    tokened = wire(c._send_request(http_methods.POST, b"/keypair", token_body,
                                   params={"create": None, "clientToken": "restart-token"}))["keypair"]
    c2.import_keypair(keypair_name="theirs", public_key=b_line)
    before = everything(srv)
    assert [k["name"] for k in before[aks[0]]] == ["alpha2", "beta", "delta", "tokened"]

    srv.stop()
    srv.start()

    c, c2 = srv.client(aks[0]), srv.client(aks[1])
    assert everything(srv) == before
    expect(404, "Keypair.KeypairNotExist", c.get_keypair, gone.keypair_id)
    # the deleted pair's id still works as a marker, and paging goes on from there
    assert [k["keypairId"] for k in wire(c.list_keypairs(marker=gone.keypair_id))["keypairs"]] == \
        [d.keypair_id, tokened["keypairId"]]
    # the duplicate-key rule, the idempotency record and the isolation survive too
    expect(400, "Keypair.KeypairPublicKeyExist", c.import_keypair, keypair_name="again", public_key=b_line)
    replay = wire(c._send_request(http_methods.POST, b"/keypair", token_body,
                                  params={"create": None, "clientToken": "restart-token"}))["keypair"]
    assert replay["keypairId"] == tokened["keypairId"] and "privateKey" not in replay
    expect(404, "Keypair.KeypairNotExist", c2.get_keypair, a.keypair_id)
    # and the service keeps working
    c.update_keypair_desc(a.keypair_id, "after restart")
    assert c.get_keypair(a.keypair_id).keypair.description == "after restart"


def test_sigkill_loses_no_acknowledged_write(fresh_server):
    srv = fresh_server()
    aks = list(srv.credentials)
    lock = threading.Lock()
    acked: dict[str, dict] = {}   # id -> {"ak", "names": acceptable names, "deleted": bool}
    count = [0]
    stop = threading.Event()
    enough = threading.Event()

    def note(kid: str, **change) -> None:
        with lock:
            acked.setdefault(kid, {"deleted": False}).update(change)
            count[0] += 1
            if count[0] >= 80:
                enough.set()

    def worker(ak: str, t: int) -> None:
        c = no_retry_client(srv, ak)
        i = 0
        try:
            while not stop.is_set():
                name = f"w{t}-{i}"
                if t == 0 and i % 6 == 0:
                    kid = c.create_keypair(keypair_name=name).keypair.keypair_id
                else:
                    kid = c.import_keypair(keypair_name=name, public_key=ed25519_line()).keypair.keypair_id
                note(kid, ak=ak, names={name})
                if i % 3 == 1:
                    c.rename_keypair(kid, name + "r")
                    note(kid, names={name + "r"})
                elif i % 3 == 2:
                    c.update_keypair_desc(kid, "desc")
                    note(kid, deleting=True)  # from here on it may be gone, acknowledged or not
                    c.delete_keypair(kid)
                    note(kid, deleted=True)
                i += 1
        except Exception:
            return  # the server is gone: whatever was not acknowledged may or may not be there

    threads = [threading.Thread(target=worker, args=(aks[t % 2], t), daemon=True) for t in range(4)]
    for th in threads:
        th.start()
    assert enough.wait(60), "the writers did not get going"
    srv.kill()  # SIGKILL while the other writers are mid-request
    stop.set()
    for th in threads:
        th.join(10)
    with lock:
        snapshot = {k: dict(v) for k, v in acked.items()}
    assert len(snapshot) >= 40

    srv.start()
    listed = {ak: {k["keypairId"]: k for k in wire(srv.client(ak).list_keypairs())["keypairs"]}
              for ak in aks[:2]}
    for kid, want in snapshot.items():
        present = listed[want["ak"]].get(kid)
        if want["deleted"]:
            assert present is None, f"acknowledged delete of {kid} was lost"
            continue
        if present is None:
            # only a delete that was sent, though not acknowledged, may have landed
            assert want.get("deleting"), f"acknowledged key pair {kid} was lost"
            continue
        # a later, unacknowledged rename may have landed as well
        base = sorted(want["names"])[0]
        assert present["name"] in want["names"] | {base + "r"}, (present["name"], want)


def _secret_fragments(pem: str) -> list[bytes]:
    """Byte strings any copy of the private key would contain: the PEM body lines,
    the body as one base64 run, and the DER itself (and its hex)."""
    lines = [ln for ln in pem.strip().splitlines() if not ln.startswith("-----")]
    der = base64.b64decode("".join(lines))
    # a few 64-character body lines (the private exponent and primes sit in the
    # middle), the body in one run, and a slice of the DER (the private exponent)
    # in raw and hex form; each fragment is one scan over the files
    middle = lines[1:-1]
    frags = [middle[0].encode(), middle[len(middle) // 2].encode(), middle[-1].encode()]
    frags += ["".join(lines[2:6]).encode(), der[300:400], der[300:400].hex().encode()]
    return frags


def _leaks(root: Path, fragments: list[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                data = path.read_bytes()
            except (PermissionError, FileNotFoundError):
                continue
            for frag in fragments:
                if frag in data:
                    found.append(f"{path}: {frag[:20]!r}")
    return found


def test_private_key_never_on_disk_nor_in_the_log(fresh_server, backend, request):
    srv = fresh_server("--log-level", "debug")
    c = srv.client()
    pems = [c.create_keypair(keypair_name=f"secret{i}", keypair_desc="x").keypair.private_key for i in range(2)]
    token_body = json.dumps({"name": "secret-token", "description": None})
    resp = wire(c._send_request(http_methods.POST, b"/keypair", token_body,
                                params={"create": None, "clientToken": "leak-check"}))
    pems.append(resp["keypair"]["privateKey"])
    c._send_request(http_methods.POST, b"/keypair", token_body,
                    params={"create": None, "clientToken": "leak-check"})  # the replay
    assert all(p.startswith("-----BEGIN RSA PRIVATE KEY-----") for p in pems)
    fragments = [f for p in pems for f in _secret_fragments(p)]
    public_b64 = c.get_keypair(resp["keypair"]["keypairId"]).keypair.public_key.split()[1].encode()
    roots = [srv.data_dir]
    if backend == "postgresql":
        roots.append(request.getfixturevalue("pg_cluster").root)
    assert _leaks(srv.data_dir, fragments) == []  # while running (SQLite WAL and all)
    srv.stop()
    if backend == "sqlite":  # the scan does find what is stored: the public half is there
        assert _leaks(srv.data_dir, [public_b64]) != []
    assert re.search(r"method=POST path=/v2/keypair", srv.log_path.read_text())  # the log saw the calls
    for root in roots:
        assert _leaks(root, fragments) == [], root
