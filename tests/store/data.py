"""Databases full of realistic state, made through the domain services (the
same code the API runs), and exact snapshots of every table for comparisons."""
from __future__ import annotations

import base64
import hashlib
import random

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import MetaData, create_engine, select, text

from localbcc.clock import FakeClock
from localbcc.domain.instances import InstanceService
from localbcc.domain.keypairs import KeypairService
from localbcc.errors import BceError
from localbcc.store.accounts import Accounts
from localbcc.store.db import Store
from localbcc.store.urls import normalize_url

LINUX, WINDOWS = "m-Ubt2204a", "m-Win2019d"


def public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode()


def encrypt_admin_pass(password: str, secret_key: str) -> str:
    """As the SDKs send adminPass: AES-128-ECB with the secret key's first 16 bytes, hex."""
    padder = padding.PKCS7(128).padder()
    data = padder.update(password.encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(secret_key[:16].encode()), modes.ECB()).encryptor()
    return (enc.update(data) + enc.finalize()).hex()


def populate(url: str, keypairs: int, instances: int, seed: int = 7) -> dict:
    """Accounts, key pairs (some deleted), instances (some released, stopped, in a
    transition, with passwords, bound or waiting for a start), idempotency records.
    Returns what it made, by account."""
    rnd = random.Random(seed)
    store = Store(url)
    store.prepare()
    clock = FakeClock(1_700_000_000.123456789)

    def tick() -> None:
        clock.advance(rnd.random() / 3)

    accounts = Accounts(store, clock)
    creds = [accounts.create() for _ in range(3)]
    kps = KeypairService(store, clock, "bj", 100_000)
    fast = InstanceService(store, clock, "bj", 0.0)
    slow = InstanceService(store, clock, "bj", 3600.0)
    made: dict[str, dict] = {ak: {"keypairs": [], "instances": []} for ak, _ in creds}
    for n in range(keypairs):
        ak, _ = creds[n % 3]
        token = f"tok-{n}" if n % 10 == 0 else None
        kp = kps.import_(ak, {"name": f"kp-{n}", "description": f"pair {n} ✓" if n % 4 else "",
                              "publicKey": public_key()}, token)["keypair"]
        made[ak]["keypairs"].append(kp["keypairId"])
        tick()
    per_call = 100
    for n in range(0, instances, per_call):
        ak, sk = creds[(n // per_call) % 3]
        body = {"imageId": WINDOWS if (n // per_call) % 7 == 6 else LINUX,
                "purchaseCount": min(per_call, instances - n), "cpuCount": 2,
                "memoryCapacityInGB": 4, "name": f"batch-{n}"}
        if (n // per_call) % 5 == 0:
            body["adminPass"] = encrypt_admin_pass(f"Pass-{n}!", sk)
        if (n // per_call) % 3 == 1 and body["imageId"] == LINUX:
            body["keypairId"] = made[ak]["keypairs"][n % len(made[ak]["keypairs"])]
        ids = fast.create(ak, sk, body, f"create-{n}" if n % 300 == 0 else None)["instanceIds"]
        made[ak]["instances"].extend(ids)
        tick()
    for ak, sk in creds:
        ids, pairs = made[ak]["instances"], made[ak]["keypairs"]
        linux = [i for i in ids if fast.get(ak, i)["instance"]["imageId"] == LINUX]
        for i in rnd.sample(linux, len(linux) // 4):  # stopped: their next key waits for a start
            fast.stop(ak, i)
            tick()
        for start in range(0, len(linux) // 2, 40):  # batch attaches
            batch = linux[start:start + 40]
            pair = rnd.choice(pairs)
            try:
                fast.attach(ak, pair, {"instanceIds": batch})
            except BceError:  # some are attached to this pair already
                pass
            tick()
        for i in rnd.sample(linux, len(linux) // 10):
            try:
                fast.release(ak, i)
                ids.remove(i)
            except BceError:
                pass
        for kp in rnd.sample(pairs, len(pairs) // 10):
            try:
                kps.delete(ak, kp)
                pairs.remove(kp)
            except BceError:  # in use
                pass
            tick()
        for i in rnd.sample(ids, min(20, len(ids))):  # in a transition for an hour
            try:
                slow.reboot(ak, i)
            except BceError:
                pass
    # The newest pair and instance go away: only their tombstones (and the
    # auto-increment counters) remember the highest seq.
    ak, sk = creds[0]
    last = kps.import_(ak, {"name": "last", "publicKey": public_key()}, None)["keypair"]
    kps.delete(ak, last["keypairId"])
    iid = fast.create(ak, sk, {"imageId": LINUX}, None)["instanceIds"][0]
    fast.release(ak, iid)
    store.dispose()
    return {"creds": creds, "made": made}


def bulk(url: str, keypairs: int, instances: int, seed: int = 11) -> None:
    """Thousands more rows, written straight to the tables (the services take a
    few ms per call): random text, full-precision floats, NULLs, bindings."""
    from localbcc.store.schema import idempotency, instances as inst_t, keypairs as kp_t
    from localbcc.store.schema import tombstones

    rnd = random.Random(seed)
    engine = create_engine(normalize_url(url))

    def word(n: int) -> str:
        return "".join(rnd.choices("abcdefghijklmnopqrstuvwxyzÄßж😀 -_.", k=n))

    # Names and hostnames as the API's rules take them (db import checks them).
    def name(n: int) -> str:
        units = [*"abcdefxyzÄßж名-_./0189", "e\u0301"]  # NFD é: a letter with its mark
        return rnd.choice("abcxyzÄßж名") + "".join(rnd.choices(units, k=n - 1))

    def hostname(n: int) -> str:
        return rnd.choice("abcxyz") + "".join(rnd.choice(["", "-", "."]) + rnd.choice("ab09")
                                              for _ in range(n - 1))

    def key_columns() -> dict:
        line = public_key()
        blob = base64.b64decode(line.split()[1])
        return {"public_key": line, "blob_sha256": hashlib.sha256(blob).hexdigest(),
                "fingerprint": ":".join(f"{b:02x}" for b in hashlib.md5(blob).digest())}

    def when() -> float:
        return 1_700_000_000 + rnd.random() * 10_000_000

    try:
        with engine.begin() as conn:
            accounts = [r[0] for r in conn.execute(text("SELECT access_key FROM accounts"))]
            kp_ids = [f"k-b{n:07d}" for n in range(keypairs)]
            conn.execute(kp_t.insert(), [
                {"id": kid, "account": accounts[n % len(accounts)], "name": name(20),
                 "description": word(rnd.randrange(0, 140)), **key_columns(),
                 "created_at": when()}
                for n, kid in enumerate(kp_ids)])
            rows = []
            for n in range(instances):
                bound = rnd.random() < 0.5
                account = accounts[n % len(accounts)]
                # a pair of the same account: pair m belongs to accounts[m % len(accounts)]
                kid = kp_ids[(n % len(accounts) + rnd.randrange(keypairs // len(accounts))
                              * len(accounts)) % keypairs]
                rows.append({
                    "id": f"i-b{n:07d}", "account": account, "name": name(30), "hostname": hostname(5),
                    "description": word(rnd.randrange(0, 50)), "image_id": LINUX,
                    "instance_type": "N3", "cpu_count": rnd.randrange(1, 64),
                    "memory_gb": rnd.randrange(1, 256), "zone_name": "cn-bj-a",
                    "payment_timing": "Postpaid", "created_at": when(),
                    "state": rnd.choice(["Running", "Stopped"]),
                    "transition": rnd.choice([None, "start", "stop", "restart", "create"]),
                    "transition_until": when(),
                    "keypair_id": kid if bound else None,
                    "key_in_force_at": when() if bound else None,
                    "admin_pass_hash": None, "first_key_at": when() if rnd.random() < 0.3 else None,
                })
            conn.execute(inst_t.insert(), rows)
            # The newest 300 instances and 100 extra pairs are deleted again,
            # leaving tombstones, as release and delete do.
            for table, kind, prefix, n in ((inst_t, "instance", "i-b", 300), (kp_t, "keypair", "k-x", 100)):
                if kind == "keypair":
                    conn.execute(kp_t.insert(), [
                        {"id": f"k-x{m:07d}", "account": accounts[0], "name": name(5),
                         "description": "", **key_columns(), "created_at": when()}
                        for m in range(n)])
                gone = conn.execute(select(table.c.id, table.c.account, table.c.seq)
                                    .where(table.c.id.like(f"{prefix}%"))
                                    .order_by(table.c.seq.desc()).limit(n)).all()
                conn.execute(table.delete().where(table.c.id.in_([g[0] for g in gone])))
                conn.execute(tombstones.insert(), [
                    {"kind": kind, "id": g[0], "account": g[1], "seq": g[2]} for g in gone])
            conn.execute(idempotency.insert(), [
                {"account": accounts[n % len(accounts)], "operation": "createInstance",
                 "token": f"bulk-{n}", "request_hash": f"{rnd.getrandbits(256):064x}",
                 "response": '{"instanceIds": ["i-b%07d"]}' % n, "created_at": when()}
                for n in range(300)])
    finally:
        engine.dispose()


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table (alembic_version included), in primary key order."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            md = MetaData()
            md.reflect(conn)
            out = {}
            for table in md.sorted_tables:
                order = list(table.primary_key.columns) or list(table.columns)
                out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*order))]
            return out
    finally:
        engine.dispose()


def counters(url: str) -> dict[str, int]:
    """The last value each auto-increment key handed out."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                return dict(conn.execute(text("SELECT name, seq FROM sqlite_sequence")).all())
            out = {}
            for table in ("keypairs", "instances"):
                seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'seq')"),
                                   {"t": table}).scalar()
                value, called = conn.execute(text(f"SELECT last_value, is_called FROM {seq}")).one()
                out[table] = value if called else value - 1
            return out
    finally:
        engine.dispose()
