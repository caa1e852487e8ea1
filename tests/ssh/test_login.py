"""Logging in to instances: the bound key pair in force decides who gets in
(issue 7). One shared SQLite server; every test makes its own instances."""
from __future__ import annotations

import os
import re
import socket
import threading
import time

import paramiko
import pytest

from localbcc.domain.images import get_image

from .helpers import (DEBIAN, UBUNTU, WINDOWS, banner, create, import_key, known_hosts,
                      login_fails, new_key, openssh, pconnect, run, wait_status, wait_until)


def test_the_issue_walkthrough_with_the_stock_ssh_client(sdk, tmp_path):
    """The issue's example, verbatim: a created pair, attached to a running
    instance (which restarts), then `ssh -i ops.pem -p <sshPort> root@<publicIp> hostname`."""
    [iid] = create(sdk, hostname="web-1")
    wait_status(sdk, iid)
    kp = sdk.create_keypair(keypair_name="ops").keypair
    pem = tmp_path / "ops.pem"
    pem.write_text(kp.private_key)
    os.chmod(pem, 0o600)
    sdk.attach_keypair(kp.keypair_id, [iid])  # the instance restarts
    inst = wait_status(sdk, iid)
    kh = known_hosts(tmp_path, inst)
    result = openssh(inst, None, "hostname", kh=kh, extra=("-i", str(pem)))
    assert (result.returncode, result.stdout) == (0, "web-1\n"), result.stderr
    # the same with `ssh-keyscan` pinning instead of the API's host key line
    scanned = os.popen(f"ssh-keyscan -t ed25519 -p {inst.ssh_port} {inst.public_ip} 2>/dev/null").read()
    assert scanned.split()[1:3] == inst.ssh_host_key.split()[:2]


def test_the_instance_object_says_where_to_connect(ssh_server, sdk):
    ids = create(sdk, count=2)
    a, b = (wait_status(sdk, i) for i in ids)
    assert a.ssh_port == b.ssh_port == int(ssh_server.extra_args[ssh_server.extra_args.index("--ssh-port") + 1])
    assert a.public_ip != b.public_ip
    for inst in (a, b):
        assert inst.public_ip.startswith("127.") and inst.internal_ip.startswith("10.")
        assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", inst.ssh_host_key_fingerprint)
        assert inst.ssh_host_key.startswith("ssh-ed25519 ")
        assert (inst.ssh_status, inst.ssh_status_reason) == ("Available", "")
        assert banner(inst).startswith(b"SSH-2.0-")
    assert a.ssh_host_key != b.ssh_host_key
    # the list shows the same fields
    listed = {i.id: i for i in sdk.list_instances().instances}
    assert listed[a.id].ssh_host_key_fingerprint == a.ssh_host_key_fingerprint
    assert listed[a.id].ssh_port == a.ssh_port
    # Windows instances have no SSH endpoint
    [win] = create(sdk, image=WINDOWS)
    w = wait_status(sdk, win)
    assert (w.ssh_port, w.ssh_status, w.ssh_host_key_fingerprint) == (None, "Unsupported", "")


def test_only_the_key_in_force_logs_in_as_root(sdk, tmp_path):
    good, other = new_key(tmp_path, "good"), new_key(tmp_path, "other")
    kp = import_key(sdk, good, "good")
    import_key(sdk, other, "other")
    [iid] = create(sdk, key_pair_id=kp)
    inst = wait_status(sdk, iid)
    kh = known_hosts(tmp_path, inst)
    assert openssh(inst, good, "whoami", kh=kh).stdout == "root\n"
    refused = openssh(inst, other, "whoami", kh=kh)
    assert refused.returncode == 255 and "Permission denied (publickey)" in refused.stderr
    assert openssh(inst, good, "whoami", kh=kh, user="ubuntu").returncode == 255
    assert login_fails(inst, other)
    assert login_fails(inst, good, user="admin")
    # no password phase: the instance was created with a key and no adminPass
    assert login_fails(inst, password="anything")
    with pconnect(inst, good) as c:
        assert run(c, "whoami") == (0, "root\n", "")


def test_a_wrong_host_key_is_caught_by_strict_checking(sdk, tmp_path):
    key = new_key(tmp_path, "k")
    [a, b] = create(sdk, key_pair_id=import_key(sdk, key, "k"), count=2)
    a, b = wait_status(sdk, a), wait_status(sdk, b)
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[{a.public_ip}]:{a.ssh_port} {b.ssh_host_key}\n")
    result = openssh(a, key, "hostname", kh=wrong)
    assert result.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in result.stderr


def test_the_builtin_shell_answers_from_the_instance(sdk, tmp_path):
    key = new_key(tmp_path, "shell")
    kp = import_key(sdk, key, "shell")
    [iid] = create(sdk, key_pair_id=kp, image=DEBIAN, hostname="db-7")
    inst = wait_status(sdk, iid)
    kh = known_hosts(tmp_path, inst)

    def sh(command):
        r = openssh(inst, key, command, kh=kh)
        return r.returncode, r.stdout, r.stderr

    assert sh("hostname") == (0, "db-7\n", "")
    assert sh("whoami") == (0, "root\n", "")
    assert sh("id") == (0, "uid=0(root) gid=0(root) groups=0(root)\n", "")
    status, out, _ = sh("uname -a")
    assert status == 0 and out.startswith("Linux db-7 ") and out.endswith(" GNU/Linux\n")
    assert sh("cat /etc/os-release") == (0, get_image(DEBIAN).os_release, "")
    assert 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"' in sh("cat /etc/os-release")[1]
    assert sh("cat ~/.ssh/authorized_keys") == (0, key.public + "\n", "")
    assert sh("echo hello   'big world'") == (0, "hello big world\n", "")
    assert sh("true")[0] == 0
    assert sh("false")[0] == 1
    assert sh("exit 7")[0] == 7
    assert sh("hostname; whoami && false || echo recovered") == (0, "db-7\nroot\nrecovered\n", "")
    assert sh("rm -rf /") == (127, "", "rm: command not found\n")
    assert sh("ls /etc") == (127, "", "ls: command not found\n")
    assert sh("cat /etc/passwd") == (1, "", "cat: /etc/passwd: No such file or directory\n")
    target = tmp_path / "written-by-the-shell"
    assert sh(f"echo hi > {target}")[0] == 2  # redirections are refused:
    assert not target.exists()  # no host file is ever touched


def test_the_interactive_shell(sdk, tmp_path):
    key = new_key(tmp_path, "tty")
    [iid] = create(sdk, key_pair_id=import_key(sdk, key, "tty"), hostname="box")
    inst = wait_status(sdk, iid)
    with pconnect(inst, key) as client:
        chan = client.invoke_shell(term="xterm")
        chan.settimeout(10)
        received = b""

        def read_until(marker: bytes) -> bytes:
            nonlocal received
            while marker not in received:
                chunk = chan.recv(4096)
                assert chunk, f"channel closed; got {received!r}"
                received += chunk
            head, _, rest = received.partition(marker)
            received = rest
            return head

        read_until(b"root@box:~# ")
        chan.send(b"hostname\r")
        assert read_until(b"root@box:~# ").replace(b"\r", b"") == b"hostname\nbox\n"
        chan.send(b"whoaml\x7fi\r")  # a typo fixed with backspace
        assert read_until(b"root@box:~# ").replace(b"\r", b"").endswith(b"root\n")
        chan.send(b"nope\r")
        assert b"nope: command not found" in read_until(b"root@box:~# ")
        chan.send(b"exit 3\r")
        assert chan.recv_exit_status() == 3
    # OpenSSH with a forced tty and commands on stdin
    kh = known_hosts(tmp_path, inst)
    r = openssh(inst, key, kh=kh, extra=("-tt",), stdin="whoami\nexit 5\n")
    assert r.returncode == 5 and "root\nroot@box:~# logout\n" in r.stdout, r.stdout


def test_replace_the_old_key_is_refused_the_new_one_accepted(sdk, tmp_path):
    old, new = new_key(tmp_path, "old"), new_key(tmp_path, "new")
    kp_old, kp_new = import_key(sdk, old, "old"), import_key(sdk, new, "new")
    [iid] = create(sdk, key_pair_id=kp_old)
    inst = wait_status(sdk, iid)
    kh = known_hosts(tmp_path, inst)
    assert openssh(inst, old, "true", kh=kh).returncode == 0
    sdk.attach_keypair(kp_new, [iid])
    # the moment the API says Running again, the new key is in force
    inst = wait_status(sdk, iid)
    assert openssh(inst, new, "cat ~/.ssh/authorized_keys", kh=kh).stdout == new.public + "\n"
    assert openssh(inst, old, "true", kh=kh).returncode == 255
    assert login_fails(inst, old) and not login_fails(inst, new)


def test_detach_means_no_key_gets_in(sdk, tmp_path):
    key = new_key(tmp_path, "det")
    kp = import_key(sdk, key, "det")
    [iid] = create(sdk, key_pair_id=kp)
    inst = wait_status(sdk, iid)
    with pconnect(inst, key) as session:
        sdk.detach_keypair(kp, [iid])  # no restart: the key stops working at once
        assert sdk.get_instance(iid).instance.status == "Running"
        assert login_fails(inst, key)
        # a session opened before the detach lives on (no restart happened)
        assert run(session, "cat ~/.ssh/authorized_keys") == (0, "", "")


def test_attach_to_a_stopped_instance_takes_effect_at_its_start(sdk, tmp_path):
    first, second = new_key(tmp_path, "first"), new_key(tmp_path, "second")
    kp1, kp2 = import_key(sdk, first, "first"), import_key(sdk, second, "second")
    [iid] = create(sdk, key_pair_id=kp1)
    wait_status(sdk, iid)
    sdk.stop_instance(iid)
    inst = wait_status(sdk, iid, "Stopped")
    sdk.attach_keypair(kp2, [iid])
    assert banner(inst) == b""  # a stopped instance lets nobody in
    sdk.start_instance(iid)
    inst = wait_status(sdk, iid)
    assert not login_fails(inst, second)
    assert login_fails(inst, first)


def _refused_while(sdk, inst, status: str) -> None:
    """A connection made while the API says `status` is closed without a word.
    (Checked only when the API still says so after the probe: no timing luck.)"""
    said = banner(inst)
    if sdk.get_instance(inst.id).instance.status == status:
        assert said == b"", said


def test_stop_and_start_refuse_connections_until_running(sdk, tmp_path):
    key = new_key(tmp_path, "ss")
    [iid] = create(sdk, key_pair_id=import_key(sdk, key, "ss"))
    inst = wait_status(sdk, iid)
    sdk.stop_instance(iid)
    _refused_while(sdk, inst, "Stopping")
    inst = wait_status(sdk, iid, "Stopped")
    assert banner(inst) == b""
    with pytest.raises((paramiko.SSHException, EOFError, OSError)):
        pconnect(inst, key)
    kh = known_hosts(tmp_path, inst)
    result = openssh(inst, key, "true", kh=kh)
    # Closed without a word. ssh says "closed", or "reset" when its version
    # line reached the endpoint before the close (unread data makes it a RST).
    said = result.stderr.lower()
    assert result.returncode == 255 and ("closed" in said or "reset by peer" in said), said
    assert inst.ssh_status == "Unavailable" and "Stopped" in inst.ssh_status_reason
    sdk.start_instance(iid)
    _refused_while(sdk, inst, "Starting")
    inst = wait_status(sdk, iid)
    assert inst.ssh_status == "Available"
    assert openssh(inst, key, "hostname", kh=kh).returncode == 0


def test_reboot_drops_open_sessions(sdk, tmp_path):
    key = new_key(tmp_path, "rb")
    [iid] = create(sdk, key_pair_id=import_key(sdk, key, "rb"))
    inst = wait_status(sdk, iid)
    interactive, idle = pconnect(inst, key), pconnect(inst, key)
    try:
        chan = interactive.invoke_shell()
        assert run(idle, "true")[0] == 0
        sdk.reboot_instance(iid)
        _refused_while(sdk, inst, "Starting")
        wait_until(lambda: not interactive.get_transport().is_active()
                   and not idle.get_transport().is_active(), 5, "sessions to be dropped")
        chan.settimeout(5)
        while chan.recv(4096):  # the shell channel ends with the connection (no timeout)
            pass
        inst = wait_status(sdk, iid)
        with pconnect(inst, key) as again:
            assert run(again, "whoami") == (0, "root\n", "")
    finally:
        interactive.close()
        idle.close()


def test_no_command_runs_once_stop_or_reboot_has_answered(sdk, tmp_path):
    """The reconcile pass drops such sessions within 0.2 s; a command sent in
    that window, after the API answered, must not run either."""
    key = new_key(tmp_path, "window")
    [iid] = create(sdk, key_pair_id=import_key(sdk, key, "window"))
    for operation in (sdk.reboot_instance, sdk.stop_instance):
        inst = wait_status(sdk, iid)
        with pconnect(inst, key) as session:
            assert run(session, "true")[0] == 0
            operation(iid)
            try:
                status, out, _ = run(session, "hostname")
            except (paramiko.SSHException, EOFError, OSError):
                status, out = None, ""  # refused outright: as good
            assert (status, out) != (0, inst.hostname + "\n"), operation.__name__
        if operation is sdk.stop_instance:
            break
    wait_status(sdk, iid, "Stopped")
    sdk.start_instance(iid)


def test_attach_on_a_running_instance_drops_sessions_too(sdk, tmp_path):
    a, b = new_key(tmp_path, "a"), new_key(tmp_path, "b")
    [iid] = create(sdk, key_pair_id=import_key(sdk, a, "a"))
    inst = wait_status(sdk, iid)
    with pconnect(inst, a) as session:
        sdk.attach_keypair(import_key(sdk, b, "b"), [iid])
        wait_until(lambda: not session.get_transport().is_active(), 5, "the session to drop")


def test_release_closes_the_endpoint(sdk, tmp_path):
    key = new_key(tmp_path, "rel")
    [iid] = create(sdk, key_pair_id=import_key(sdk, key, "rel"))
    inst = wait_status(sdk, iid)
    session = pconnect(inst, key)
    try:
        sdk.release_instance(iid)
        wait_until(lambda: banner(inst) is None, 5, "the listener to close")  # connection refused
        wait_until(lambda: not session.get_transport().is_active(), 5, "the session to drop")
    finally:
        session.close()


def test_the_password_phase_ends_when_a_key_comes_in_force(sdk, tmp_path):
    [iid] = create(sdk, admin_pass="Passw0rd!x")  # the SDK sends it AES-encrypted
    inst = wait_status(sdk, iid)
    with pconnect(inst, password="Passw0rd!x") as c:
        assert run(c, "whoami") == (0, "root\n", "")
    assert login_fails(inst, password="wrong-pass")
    assert login_fails(inst, password="Passw0rd!x", user="ubuntu")
    # the stock client, with the password fed by SSH_ASKPASS
    askpass = tmp_path / "askpass.sh"
    askpass.write_text("#!/bin/sh\necho 'Passw0rd!x'\n")
    os.chmod(askpass, 0o700)
    kh = known_hosts(tmp_path, inst)
    env = {"SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
    pw = ("-o", "PreferredAuthentications=password,keyboard-interactive",
          "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1")
    r = openssh(inst, None, "hostname", kh=kh, env=env, extra=pw)
    assert (r.returncode, r.stdout) == (0, iid.lower() + "\n"), r.stderr
    key = new_key(tmp_path, "pw")
    kp = import_key(sdk, key, "pw")
    sdk.attach_keypair(kp, [iid])
    inst = wait_status(sdk, iid)
    assert login_fails(inst, password="Passw0rd!x")
    assert openssh(inst, None, "hostname", kh=kh, env=env, extra=pw).returncode == 255
    assert not login_fails(inst, key)
    # detaching does not bring passwords back
    sdk.detach_keypair(kp, [iid])
    assert login_fails(inst, password="Passw0rd!x") and login_fails(inst, key)


def test_rebuild_with_a_keypair_behaves_like_attach(sdk, tmp_path):
    old, new = new_key(tmp_path, "rb-old"), new_key(tmp_path, "rb-new")
    [iid] = create(sdk, key_pair_id=import_key(sdk, old, "rb-old"))
    inst = wait_status(sdk, iid)
    fingerprint = inst.ssh_host_key_fingerprint
    session = pconnect(inst, old)
    try:
        sdk.rebuild_instance(iid, DEBIAN, key_pair_id=import_key(sdk, new, "rb-new"))
        wait_until(lambda: not session.get_transport().is_active(), 5, "the session to drop")
    finally:
        session.close()
    inst = wait_status(sdk, iid)
    assert login_fails(inst, old)
    with pconnect(inst, new) as c:
        assert run(c, "cat /etc/os-release")[1] == get_image(DEBIAN).os_release
    assert inst.ssh_host_key_fingerprint == fingerprint  # the host key is the instance's, for good


def test_fifty_instances_are_reachable_at_once(sdk, tmp_path):
    key = new_key(tmp_path, "many")
    ids = create(sdk, key_pair_id=import_key(sdk, key, "many"), count=50)
    instances = [wait_status(sdk, i) for i in ids]
    assert len({(i.public_ip, i.ssh_port) for i in instances}) == 50
    results: dict[str, object] = {}
    start = threading.Barrier(50)

    def login(inst):
        try:
            start.wait(10)
            with pconnect(inst, key) as c:
                results[inst.id] = run(c, "hostname")
        except Exception as exc:  # reported below
            results[inst.id] = exc

    threads = [threading.Thread(target=login, args=(i,)) for i in instances]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {i.id: (0, i.hostname + "\n", "") for i in instances}


def test_nothing_but_a_shell_is_offered(sdk, tmp_path):
    key = new_key(tmp_path, "fwd")
    [iid] = create(sdk, key_pair_id=import_key(sdk, key, "fwd"))
    inst = wait_status(sdk, iid)
    with pconnect(inst, key) as c:
        transport = c.get_transport()
        with pytest.raises(paramiko.ChannelException):  # no port forwarding to the host
            transport.open_channel("direct-tcpip", ("127.0.0.1", 22), ("127.0.0.1", 0))
        with pytest.raises(paramiko.SSHException):  # no SFTP into the host's files
            c.open_sftp()
        assert run(c, "whoami")[0] == 0


def test_a_raw_tcp_client_that_says_nothing_gets_only_a_banner(sdk):
    [iid] = create(sdk)
    inst = wait_status(sdk, iid)
    with socket.create_connection((inst.public_ip, inst.ssh_port), timeout=5) as s:
        assert s.recv(64).startswith(b"SSH-2.0-localbcc")
