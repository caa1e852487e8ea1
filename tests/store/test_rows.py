"""The records (models.py) and the tables (schema.py) agree by name: the store
builds its SELECT lists from the records' fields (store/repo.py ``columns``),
so a record field with no column fails at import; these tests hold the other
direction, and the order the queries rely on."""
from __future__ import annotations

import dataclasses

from localbcc.models import Binding, Instance, Keypair, SshEndpoint
from localbcc.store import repo
from localbcc.store.schema import instances, keypairs


def names(record) -> list[str]:
    if dataclasses.is_dataclass(record):
        return [f.name for f in dataclasses.fields(record)]
    return list(record._fields)


def test_every_instance_column_is_a_field_of_instance_and_the_rest_is_derived():
    assert names(Instance) == [c.name for c in instances.c] + ["keypair_name"]


def test_every_keypair_column_but_the_blob_digest_is_a_field_of_keypair():
    stored = [c.name for c in keypairs.c if c.name != "blob_sha256"]
    assert names(Keypair) == stored + ["instance_count"]


def test_narrow_rows_are_instance_fields_by_name():
    for record in (Binding, SshEndpoint):
        assert set(names(record)) <= set(names(Instance)), record


def test_select_lists_follow_the_records_fields():
    assert [c.name for c in repo._INST_COLS] == names(Instance)[:-1]
    assert [c.name for c in repo._KP_COLS] == names(Keypair)[:-1]
    assert [c.name for c in repo._BINDING_COLS] == names(Binding)


def test_computed_fields_must_come_last():
    assert repo.fields(Keypair, computed=("instance_count",))[-1] == "created_at"
    try:
        repo.fields(Keypair, computed=("seq",))
    except AssertionError:
        pass
    else:
        raise AssertionError("a computed field that is not last was accepted")
