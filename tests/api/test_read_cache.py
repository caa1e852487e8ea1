"""The key pair read cache stays correct when several processes share the
database (docs/performance.md): two servers on one SQLite file, one of them
serving GET /v2/keypair/{id} from its cache, the other changing the pair.
Every change must show in the very next GET of the first. About 5 s."""
from __future__ import annotations

import pytest

from ..server import Server
from .helpers import create_instances, expect_error, new_credentials


@pytest.fixture
def reader_and_writer(tmp_path):
    creds = new_credentials(1)
    reader = Server(tmp_path / "data", creds, extra_args=["--transition-seconds", "0", "--no-ssh"])
    writer = Server(tmp_path / "data", creds, extra_args=["--transition-seconds", "0", "--no-ssh"])
    writer.log_path = tmp_path / "data" / "writer.log"
    reader.start()
    try:
        writer.start()
        yield reader.client(), writer.client()
    finally:
        writer.stop()
        reader.stop()


def test_every_change_by_another_process_shows_in_the_next_get(reader_and_writer):
    reader, writer = reader_and_writer
    kid = reader.create_keypair(keypair_name="v0", keypair_desc="d0").keypair.keypair_id
    for i in range(1, 21):
        assert reader.get_keypair(kid).keypair.name == f"v{i - 1}"
        assert reader.get_keypair(kid).keypair.name == f"v{i - 1}"  # a cache hit
        writer.rename_keypair(kid, f"v{i}")
        assert reader.get_keypair(kid).keypair.name == f"v{i}"
    writer.update_keypair_desc(kid, "changed elsewhere")
    assert reader.get_keypair(kid).keypair.description == "changed elsewhere"

    # instanceCount is part of the cached answer: a binding made elsewhere moves it.
    (iid,) = create_instances(writer, 1)
    assert reader.get_keypair(kid).keypair.instance_count == 0
    writer.attach_keypair(kid, [iid])
    assert reader.get_keypair(kid).keypair.instance_count == 1
    writer.detach_keypair(kid, [iid])
    assert reader.get_keypair(kid).keypair.instance_count == 0

    writer.delete_keypair(kid)
    expect_error(404, "Keypair.KeypairNotExist", reader.get_keypair, kid)


def test_the_readers_own_writes_show_too(reader_and_writer):
    reader, _ = reader_and_writer
    kid = reader.create_keypair(keypair_name="mine").keypair.keypair_id
    assert reader.get_keypair(kid).keypair.name == "mine"
    reader.rename_keypair(kid, "renamed")
    assert reader.get_keypair(kid).keypair.name == "renamed"
    reader.delete_keypair(kid)
    expect_error(404, "Keypair.KeypairNotExist", reader.get_keypair, kid)
