"""Group 5: with debug logging on, the whole key pair flow leaves no private
key, secret key, Authorization signature (or signing key) and no instance
password in any log line, in any file of the data directory, or in the
database.

Expected exceptions, and only these: the database holds each account's secret
key (it is the credential store), so secret keys are not searched for in the
database files; and the start-up banner on stdout prints the default account's
secret key by design (README "Quick start"): its two lines are cut from the
log before searching, every other line must be clean. Budget: about 4 s.
"""
from __future__ import annotations

import base64
import re

import pytest
from baidubce.auth import bce_v1_signer
from sqlalchemy import create_engine, inspect, text

from localbcc.auth import signing_key

from .helpers import auth_headers, database_url, openssh_ed25519, sdk_error, send

ADMIN_PASS = "Pl41n-Passw0rd!x"


@pytest.fixture
def recorded_signatures(monkeypatch):
    """Every Authorization value the SDK computes in this test."""
    seen: list[str] = []
    real = bce_v1_signer.sign

    def recording(*args, **kwargs):
        value = real(*args, **kwargs)
        seen.append(value.decode() if isinstance(value, bytes) else value)
        return value

    monkeypatch.setattr(bce_v1_signer, "sign", recording)
    return seen


def _pem_fragments(pem: str) -> list[str]:
    """The private key's base64 body, whole and line by line (what a leak would show)."""
    lines = [ln for ln in pem.strip().splitlines() if not ln.startswith("-----")]
    body = "".join(lines)
    der = base64.b64decode(body)
    return [body, *[ln for ln in lines if len(ln) >= 40], der.hex()[:120]]


def _run_flow(srv) -> tuple[list[str], list[str]]:
    """The key pair flow of two accounts; returns (private keys, raw Authorization values)."""
    a, b = list(srv.credentials)[:2]
    ca, cb = srv.client(a), srv.client(b)
    private = []
    k1 = ca.create_keypair(keypair_name="leak1", keypair_desc="first").keypair
    k2 = cb.create_keypair(keypair_name="leak2").keypair
    private += [k1.private_key, k2.private_key]
    assert all(p.startswith("-----BEGIN") for p in private)
    k3 = ca.import_keypair(keypair_name="leak3", public_key=openssh_ed25519()).keypair
    ca.list_keypairs()
    ca.get_keypair(k1.keypair_id)
    ca.rename_keypair(k1.keypair_id, "leak1b")
    ca.update_keypair_desc(k1.keypair_id, "described")
    (iid,) = ca.create_instance(1, 1, "m-Ubt2204a", admin_pass=ADMIN_PASS).instance_ids
    ca.get_instance(iid)
    ca.attach_keypair(k1.keypair_id, [iid])
    ca.attach_keypair(k3.keypair_id, [iid])
    ca.detach_keypair(k3.keypair_id, [iid])
    ca.stop_instance(iid)
    ca.start_instance(iid)
    ca.rebuild_instance(iid, "m-Ubt2204a", admin_pass=ADMIN_PASS)
    ca.rebuild_instance(iid, "m-Ubt2204a", key_pair_id=k1.keypair_id)
    # refusals: another account's pair, a wrong signature, an unknown key
    assert sdk_error(cb.get_keypair, k1.keypair_id)[1] == "Keypair.KeypairNotExist"
    raw = []
    bad = auth_headers(srv, "GET", "/v2/keypair", access_key=a, secret_key=srv.credentials[b])
    raw.append(bad["authorization"])
    assert send(srv, "GET", "/v2/keypair", headers=bad).code == "SignatureDoesNotMatch"
    unknown = auth_headers(srv, "GET", "/v2/keypair", access_key="AKunknown", secret_key="s" * 32)
    raw.append(unknown["authorization"])
    assert send(srv, "GET", "/v2/keypair", headers=unknown).code == "InvalidAccessKeyId"
    ca.release_instance(iid)
    ca.delete_keypair(k1.keypair_id)  # k2 and k3 stay, so their rows are searched too
    return private, raw


def _database_text(srv) -> str:
    """Every row of every table, as text (works for SQLite and PostgreSQL alike)."""
    engine = create_engine(database_url(srv))
    try:
        out = []
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    out.append(repr(tuple(row)))
        return "\n".join(out)
    finally:
        engine.dispose()


def test_no_secret_in_logs_files_or_database(fresh_server, recorded_signatures):
    srv = fresh_server("--log-level", "debug", "--transition-seconds", "0")
    private, raw_auth = _run_flow(srv)
    authorizations = recorded_signatures + raw_auth
    assert len(authorizations) > 15
    srv.stop()  # flush and close everything

    secrets_everywhere: dict[str, str] = {}  # text -> what it is
    for n, pem in enumerate(private):
        for frag in _pem_fragments(pem):
            secrets_everywhere[frag] = f"private key {n}"
    for value in authorizations:
        prefix, _, signature = value.rpartition("/")
        secrets_everywhere[signature] = "signature"
        secrets_everywhere[value] = "Authorization header"
        ak = prefix.split("/")[1]
        sk = srv.credentials.get(ak)
        if sk:
            secrets_everywhere[signing_key(sk, "/".join(prefix.split("/")[:4]))] = "signing key"
    secrets_everywhere[ADMIN_PASS] = "instance password"
    secret_keys = {sk: f"secret key of {ak}" for ak, sk in srv.credentials.items()}

    log = srv.log_path.read_text("utf-8", "replace")
    assert "DEBUG" in log and "localbcc.access" in log  # debug logging was on, requests logged
    default_sk = next(iter(srv.credentials.values()))
    banner = [ln for ln in log.splitlines()
              if ln.startswith("  secret key  ") or "BceCredentials(" in ln]
    assert banner and all(default_sk in ln for ln in banner)
    log_lines = [ln for ln in log.splitlines() if ln not in banner]
    leaks = [(what, n) for n, ln in enumerate(log_lines)
             for secret, what in {**secrets_everywhere, **secret_keys}.items() if secret in ln]
    assert not leaks, leaks[:5]

    db_files = re.compile(r"^localbcc\.db(-wal|-shm|-journal)?$")
    files = [p for p in srv.data_dir.rglob("*") if p.is_file() and p != srv.log_path]
    for path in files:
        data = path.read_bytes()
        wanted = dict(secrets_everywhere)
        if not db_files.match(path.name):
            wanted.update(secret_keys)
        found = [what for secret, what in wanted.items() if secret.encode() in data]
        assert not found, (path.name, found)
    # and in the database, whatever its backend: rows hold no key, signature or password
    rows = _database_text(srv)
    found = [what for secret, what in secrets_everywhere.items() if secret in rows]
    assert not found, found
