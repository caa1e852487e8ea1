"""The SSH service as a whole: restarts, --no-ssh, a taken address, one
serving process per database (--workers, a second `serve`), the port layout."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from ..server import Server, free_port
from .conftest import ssh_args
from .helpers import (banner, create, import_key, known_hosts, login_fails, new_key, openssh,
                      pconnect, run, wait_status, wait_until)


def _free_port_run(n: int) -> int:
    """A port p such that p .. p+n-1 are all free on 127.0.0.1 (just now)."""
    for _ in range(100):
        base = free_port()
        if base + n > 65535:
            continue
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports")


def _log(srv: Server) -> str:
    return srv.log_path.read_text()


@pytest.mark.backends("sqlite")
def test_host_key_and_endpoint_survive_restarts_and_are_up_with_healthz(fresh_server, tmp_path):
    srv = fresh_server(*ssh_args())
    sdk = srv.client()
    key = new_key(tmp_path, "k")
    ids = create(sdk, key_pair_id=import_key(sdk, key, "k"), count=2)
    before = [wait_status(sdk, i) for i in ids]
    sdk.stop_instance(ids[1])
    wait_status(sdk, ids[1], "Stopped")
    kh = known_hosts(tmp_path, *before)
    for restart in (srv.stop, srv.kill):  # a clean stop, then a crash
        restart()
        srv.start()  # returns as soon as /healthz answers: the endpoint must be up by then
        result = openssh(before[0], key, "hostname", kh=kh)  # StrictHostKeyChecking=yes
        assert (result.returncode, result.stdout) == (0, before[0].hostname + "\n"), result.stderr
        assert banner(before[1]) == b""  # still stopped: still refused
        after = srv.client().get_instance(ids[0]).instance
        assert (after.public_ip, after.ssh_port, after.ssh_host_key, after.ssh_host_key_fingerprint) == (
            before[0].public_ip, before[0].ssh_port, before[0].ssh_host_key,
            before[0].ssh_host_key_fingerprint)


@pytest.mark.backends("sqlite")
def test_no_ssh_turns_the_feature_off(fresh_server, tmp_path):
    srv = fresh_server(*ssh_args("--no-ssh"))
    sdk = srv.client()
    [iid] = create(sdk)
    inst = wait_status(sdk, iid)
    assert (inst.ssh_status, inst.ssh_port) == ("Disabled", None)
    port = int(srv.extra_args[srv.extra_args.index("--ssh-port") + 1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((inst.public_ip, port), timeout=5).close()
    assert "SSH:" not in _log(srv)


@pytest.mark.backends("sqlite")
def test_a_taken_address_is_reported_not_fatal(fresh_server, tmp_path):
    port = free_port()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.16.0.1", port))  # what the first instance will want
    squatter.listen()
    try:
        srv = fresh_server("--transition-seconds", "0.3", "--ssh-port", str(port))
        sdk = srv.client()
        key = new_key(tmp_path, "k")
        first, second = create(sdk, key_pair_id=import_key(sdk, key, "k"), count=2)
        wait_status(sdk, first), wait_status(sdk, second)
        blocked = wait_until(lambda: (lambda i: i if i.ssh_status == "Unavailable" else None)(
            sdk.get_instance(first).instance), 5, "the endpoint to be reported unavailable")
        assert blocked.public_ip == "127.16.0.1"
        assert f"127.16.0.1:{port}" in blocked.ssh_status_reason
        assert "in use" in blocked.ssh_status_reason
        assert f"127.16.0.1:{port}" in _log(srv) and "WARNING localbcc.ssh" in _log(srv)
        # the API and the other instances are unaffected
        assert {i.id for i in sdk.list_instances().instances} >= {first, second}
        ok = sdk.get_instance(second).instance
        assert ok.ssh_status == "Available" and not login_fails(ok, key)
    finally:
        squatter.close()
    # once the address is free, the endpoint comes up by itself
    inst = wait_until(lambda: (lambda i: i if i.ssh_status == "Available" else None)(
        sdk.get_instance(first).instance), 10, "the endpoint to recover")
    with pconnect(inst, key) as c:
        assert run(c, "hostname")[1] == inst.hostname + "\n"


def test_one_process_serves_the_ssh_of_a_database(fresh_server, tmp_path):
    first = fresh_server(*ssh_args())
    sdk = first.client()
    key = new_key(tmp_path, "k")
    [iid] = create(sdk, key_pair_id=import_key(sdk, key, "k"))
    inst = wait_status(sdk, iid)
    second = Server(first.data_dir, first.credentials, extra_args=first.extra_args,
                    database_url=first.database_url)
    second.log_path = tmp_path / "second.log"
    forced = Server(first.data_dir, first.credentials,
                    extra_args=ssh_args("--ssh-serve", "force"), database_url=first.database_url)
    forced.log_path = tmp_path / "forced.log"
    try:
        second.start()
        assert "another localbcc process serves the SSH endpoints" in _log(second)
        assert "this process serves" not in _log(second)
        assert second.client().get_instance(iid).instance.ssh_status == "Available"
        with pconnect(inst, key) as c:  # still served, by the first
            assert run(c, "whoami")[0] == 0
        # told to, a process serves anyway (here on its own port)
        forced.start()
        seen = forced.client().get_instance(iid).instance
        assert seen.ssh_port != inst.ssh_port and seen.public_ip == inst.public_ip
        with pconnect(seen, key) as c:
            assert run(c, "whoami")[0] == 0
        forced.stop()
        # the first goes away: the standby takes over
        first.stop()
        # (no "refused in between" check: the standby may win the lock before a
        # test could look, which is what a standby is for)
        wait_until(lambda: "this process serves" in _log(second), 10, "the standby to take over")
        wait_until(lambda: banner(inst), 10, "the standby's endpoint to answer")
        with pconnect(inst, key) as c:
            assert run(c, "hostname")[1] == inst.hostname + "\n"
    finally:
        forced.stop()
        second.stop()


@pytest.mark.backends("sqlite")
def test_with_workers_exactly_one_serves(fresh_server, tmp_path):
    srv = fresh_server(*ssh_args("--workers", "2"))
    sdk = srv.client()
    key = new_key(tmp_path, "k")
    [iid] = create(sdk, key_pair_id=import_key(sdk, key, "k"))
    inst = wait_status(sdk, iid)
    kh = known_hosts(tmp_path, inst)
    srv.stop()
    srv.log_path.write_text("")
    srv.start()
    assert openssh(inst, key, "whoami", kh=kh).stdout == "root\n"  # up with /healthz
    # /healthz answers once one worker is up; the other may still be starting.
    wait_until(lambda: "another localbcc process serves the SSH endpoints" in _log(srv), 20,
               "the second worker to stand by")
    log = _log(srv)
    assert log.count("this process serves the SSH endpoints") == 1, log
    assert log.count("another localbcc process serves the SSH endpoints") == 1, log


@pytest.mark.backends("sqlite")
def test_the_one_address_layout_gives_each_instance_a_port(fresh_server, tmp_path):
    base = _free_port_run(3)
    srv = fresh_server("--transition-seconds", "0.3", "--ssh-port", str(base),
                       "--ssh-endpoints", "port")
    sdk = srv.client()
    key = new_key(tmp_path, "k")
    ids = create(sdk, key_pair_id=import_key(sdk, key, "k"), count=2)
    a, b = (wait_status(sdk, i) for i in ids)
    assert a.public_ip == b.public_ip == "127.0.0.1"
    assert {a.ssh_port, b.ssh_port} == {base + 1, base + 2}
    kh = known_hosts(tmp_path, a, b)
    for inst in (a, b):
        assert openssh(inst, key, "hostname", kh=kh).stdout == inst.hostname + "\n"


@pytest.mark.backends("sqlite")
def test_an_instance_that_is_running_at_once_takes_logins_at_once(fresh_server, tmp_path):
    """With --transition-seconds 0 (as in README's test-suite fixture) an
    instance reads Running in the create answer: its endpoint must be open by
    then, not at the SSH service's next pass."""
    srv = fresh_server("--transition-seconds", "0", "--ssh-port", str(free_port()))
    sdk = srv.client()
    key = new_key(tmp_path, "now")
    kid = import_key(sdk, key, "now")
    for _ in range(5):
        [iid] = create(sdk, key_pair_id=kid)
        inst = sdk.get_instance(iid).instance  # no waiting
        assert (inst.status, inst.ssh_status) == ("Running", "Available")
        with pconnect(inst, key) as session:
            assert run(session, "hostname")[0] == 0


@pytest.mark.backends("sqlite")
def test_a_service_that_cannot_start_says_so_and_retries(fresh_server, tmp_path):
    """Issue 17 item 2: the SSH service fails to start (here its lock file
    cannot be opened: a directory stands in its way). The API serves, every
    instance reads Unavailable with the reason, the log says so in one line,
    without a traceback; once the obstacle is gone the service starts by itself."""
    srv = fresh_server(*ssh_args())
    sdk = srv.client()
    key = new_key(tmp_path, "k")
    [iid] = create(sdk, key_pair_id=import_key(sdk, key, "k"))
    assert wait_status(sdk, iid).ssh_status == "Available"
    srv.stop()
    blocker = Path(f"{make_url(srv.database()).database}.ssh-boot.lock")
    blocker.unlink()
    blocker.mkdir()
    srv.log_path.write_text("")
    srv.start()
    try:
        inst = sdk.get_instance(iid).instance
        assert (inst.status, inst.ssh_status) == ("Running", "Unavailable")
        assert "the SSH service could not start" in inst.ssh_status_reason, inst.ssh_status_reason
        assert "retrying" in inst.ssh_status_reason
        assert banner(inst) is None  # and indeed nothing listens
        log = _log(srv)
        assert "WARNING localbcc.ssh SSH: the SSH service could not start" in log, log
        assert "Traceback" not in log, log
    finally:
        blocker.rmdir()
    up = wait_until(lambda: (lambda i: i if i.ssh_status == "Available" else None)(
        sdk.get_instance(iid).instance), 20, "the SSH service to start")
    with pconnect(up, key) as c:
        assert run(c, "hostname")[1] == up.hostname + "\n"
    log = _log(srv)
    assert log.count("the SSH service could not start") == 1, log  # once per change of state
    assert "SSH: the SSH service is up again" in log


@pytest.mark.backends("sqlite")
def test_a_second_server_on_the_same_ssh_port_says_so_at_start_up(fresh_server, tmp_path):
    """Issue 17: two servers (two databases) with one --ssh-port. The second
    says at start-up that its next instance's endpoint is taken, and after a
    restart which of its instances have none and why."""
    port = free_port()
    first = fresh_server("--transition-seconds", "0", "--ssh-port", str(port))
    [theirs] = create(first.client())
    taken = first.client().get_instance(theirs).instance
    second = fresh_server("--transition-seconds", "0", "--ssh-port", str(port))
    where = f"{taken.public_ip}:{taken.ssh_port}"
    log = _log(second)
    assert f"SSH: {where}, the endpoint of the next instance, is taken" in log, log
    assert "give each localbcc its own --ssh-port" in log
    sdk = second.client()
    [mine] = create(sdk)
    inst = sdk.get_instance(mine).instance  # Running at once: and told at once
    assert (inst.status, inst.ssh_status) == ("Running", "Unavailable")
    assert (inst.public_ip, inst.ssh_port) == (taken.public_ip, taken.ssh_port)
    assert where in inst.ssh_status_reason and "in use" in inst.ssh_status_reason
    second.stop()
    second.log_path.write_text("")
    second.start()
    log = _log(second)
    assert f"SSH: 1 of 1 instances have no SSH endpoint (sshStatus Unavailable); {mine}: " \
           f"cannot listen on {where}" in log, log


@pytest.mark.backends("sqlite")
def test_the_port_follows_ssh_port_the_address_and_host_key_stay(fresh_server, tmp_path):
    """docs/ssh.md: an instance keeps its address and host key for good; its
    port is the server's --ssh-port, so a restart on another one moves it."""
    old_port, new_port = free_port(), free_port()
    srv = fresh_server("--transition-seconds", "0", "--ssh-port", str(old_port))
    sdk = srv.client()
    key = new_key(tmp_path, "k")
    [iid] = create(sdk, key_pair_id=import_key(sdk, key, "k"))
    before = wait_status(sdk, iid)
    srv.stop()
    srv.extra_args[srv.extra_args.index("--ssh-port") + 1] = str(new_port)
    srv.start()
    after = sdk.get_instance(iid).instance
    assert after.ssh_port - before.ssh_port == new_port - old_port
    assert (after.public_ip, after.ssh_host_key) == (before.public_ip, before.ssh_host_key)
    assert banner(before) is None  # nothing on the old port
    with pconnect(after, key) as c:
        assert run(c, "hostname")[1] == after.hostname + "\n"
