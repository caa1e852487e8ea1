"""The lock order (key pair, then instances) holds for the operations that lock
only an instance: PostgreSQL re-checks a row's foreign key when the row is
updated a second time in one transaction, which would lock the key pair after
the instance and deadlock with an attach holding the pair (seen in the race of
test_processes.py). Start and rebuild must never wait for the pair's lock."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text

from localbcc.clock import FakeClock
from localbcc.domain.instances import InstanceService
from localbcc.domain.keypairs import KeypairService
from localbcc.store.db import Store
from localbcc.store.urls import normalize_url

from ..store.data import LINUX, public_key

ACCOUNT, SECRET = "AKlockorder", "0123456789abcdef0123456789abcdef"


@pytest.mark.backends("postgresql")
@pytest.mark.parametrize("operation", ["start", "rebuild"])
def test_instance_operations_never_wait_for_the_key_pair(fresh_database, operation):
    url = fresh_database()
    store = Store(url)
    store.prepare()
    instances = InstanceService(store, FakeClock(), "bj", 0.0)
    keypairs = KeypairService(store, FakeClock(), "bj", 500)
    holder = create_engine(normalize_url(url))
    try:
        pair = keypairs.import_(ACCOUNT, {"name": "p", "publicKey": public_key()}, None)
        kid = pair["keypair"]["keypairId"]
        [iid] = instances.create(ACCOUNT, SECRET, {"imageId": LINUX}, None)["instanceIds"]
        instances.stop(ACCOUNT, iid)
        instances.attach(ACCOUNT, kid, {"instanceIds": [iid]})  # pending: in force at the start
        if operation == "rebuild":
            instances.start(ACCOUNT, iid)
        call = {"start": lambda: instances.start(ACCOUNT, iid),
                "rebuild": lambda: instances.rebuild(ACCOUNT, SECRET, iid, {"imageId": LINUX})}
        outcome: list = []
        with holder.connect() as conn, conn.begin():  # an attach or delete holding the pair
            conn.execute(text("SELECT id FROM keypairs WHERE id = :k FOR UPDATE"), {"k": kid})
            worker = threading.Thread(target=lambda: outcome.append(call[operation]() or "done"))
            worker.start()
            worker.join(timeout=10)
            finished_while_held = not worker.is_alive()
        worker.join(timeout=30)
        assert finished_while_held, f"{operation} waited for the key pair's lock"
        assert outcome == ["done"]
        got = instances.get(ACCOUNT, iid)["instance"]
        assert (got["keypairId"], got["keypairInForce"]) == (kid, True)
    finally:
        holder.dispose()
        store.dispose()
