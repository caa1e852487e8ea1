"""localbcc.testing: the context manager other projects' test suites use."""
from __future__ import annotations

import socket

import pytest

from localbcc.testing import LocalBcc


def test_a_server_for_a_test_suite_serves_the_sdk_and_cleans_up():
    with LocalBcc("--transition-seconds", "0") as bcc:
        client = bcc.client()
        pair = client.create_keypair(keypair_name="from-testing").keypair
        [iid] = client.create_instance(image_id="m-Ubt2204a", cpu_count=1, memory_capacity_in_gb=2,
                                       key_pair_id=pair.keypair_id).instance_ids
        assert client.get_instance(iid).instance.keypair_id == pair.keypair_id
        listed = client.list_keypairs().keypairs
        assert [(k.keypair_id, k.instance_count) for k in listed] == [(pair.keypair_id, 1)]
        data_dir, port = bcc.data_dir, bcc.port
        assert (data_dir / "localbcc.db").is_file()
    assert not data_dir.exists()  # the temporary directory went with the server
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_two_at_once_do_not_share_anything(tmp_path):
    with LocalBcc(data_dir=tmp_path / "a") as a, LocalBcc(data_dir=tmp_path / "b") as b:
        a.client().create_keypair(keypair_name="only-in-a")
        assert b.client().list_keypairs().keypairs == []
        assert (a.port, a.access_key) != (b.port, b.access_key)
    assert (tmp_path / "a" / "localbcc.db").is_file()  # a data_dir given is kept


def test_a_server_that_cannot_start_says_why():
    with pytest.raises(RuntimeError, match="--durability"):
        LocalBcc("--durability", "sometimes").start()


def test_the_readme_fixture_runs_as_written(tmp_path):
    """The README's "In your own test suite" block, run by pytest as a user's conftest would."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### In your own test suite", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "test_user_suite.py").write_text(block)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(tmp_path / "test_user_suite.py")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr
