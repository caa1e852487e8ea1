"""The SSH fields of the instance object, from settings and the row alone."""
from __future__ import annotations

import base64
import hashlib

from localbcc.models import Instance
from localbcc.ssh import hostkeys
from localbcc.ssh.view import SshView

NOW = 1_800_000_000.0


def inst(seq=1, image="m-Ubt2204a", state="Running", transition=None, until=0.0, error=None):
    return Instance(seq, f"i-{seq:08d}", "ak", "n", "h", "", image, "N3", 1, 1, "z", "Postpaid",
                    0.0, state, transition, until, None, None, None, None,
                    **hostkeys.new_host_key(), ssh_error=error)


def test_address_layout():
    view = SshView(True, 2222, "address")
    wire = view.wire(inst(seq=300), NOW)
    assert (wire["publicIp"], wire["sshPort"], wire["sshStatus"]) == ("127.16.1.44", 2222, "Available")
    assert view.endpoint(300) == ("127.16.1.44", 2222)
    assert view.endpoint(0xEF_FF_FF) == ("127.255.255.255", 2222)
    assert view.endpoint(0xF0_00_00) is None  # past 127.255.255.255


def test_port_layout():
    view = SshView(True, 40000, "port")
    wire = view.wire(inst(seq=7), NOW)
    assert (wire["publicIp"], wire["sshPort"]) == ("127.0.0.1", 40007)
    assert view.endpoint(65535 - 40000) == ("127.0.0.1", 65535)
    wire = view.wire(inst(seq=65536 - 40000), NOW)
    assert (wire["sshPort"], wire["sshStatus"]) == (None, "Unavailable")


def test_statuses():
    view = SshView(True, 2222, "address")
    assert view.wire(inst(image="m-Win2019d"), NOW)["sshStatus"] == "Unsupported"
    assert view.wire(inst(image="m-Win2019d"), NOW)["sshHostKeyFingerprint"] == ""
    assert SshView(False, 2222, "address").wire(inst(), NOW)["sshStatus"] == "Disabled"
    starting = view.wire(inst(transition="start", until=NOW + 1), NOW)
    assert (starting["sshStatus"], starting["sshStatusReason"]) == (
        "Unavailable", "the instance is Starting, not Running")
    taken = view.wire(inst(error="cannot listen on 127.16.0.1:2222: Address already in use"), NOW)
    assert taken["sshStatus"] == "Unavailable" and "in use" in taken["sshStatusReason"]
    assert taken["sshPort"] == 2222


def test_host_keys_and_fingerprints():
    a, b = hostkeys.new_host_key(), hostkeys.new_host_key()
    assert a["ssh_host_key"] != b["ssh_host_key"]
    blob = base64.b64decode(a["ssh_host_public_key"].split()[1])
    assert a["ssh_host_fingerprint"] == "SHA256:" + base64.b64encode(
        hashlib.sha256(blob).digest()).decode().rstrip("=")
    pem = hostkeys.private_openssh(a["ssh_host_key"])
    assert pem.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")


def test_the_descriptor_budget_of_endpoints_and_connections():
    """docs/ssh.md "How many endpoints": half the open-file limit less 64
    endpoints, a quarter of it in SSH connections; tiny limits get none."""
    from localbcc.ssh.service import budget

    assert budget(256) == (64, 64)
    assert budget(1024) == (448, 256)
    assert budget(100) == (0, 25)
    for limit in (128, 256, 1024, 20000, 1 << 20):
        endpoints, connections = budget(limit)
        assert limit - endpoints - connections >= limit // 4 + 64  # kept for HTTP and the rest


def test_a_service_that_could_not_start_makes_every_endpoint_unavailable():
    view = SshView(True, 2222, "address")
    view.service_down = "the SSH service could not start: Is a directory: /x; retrying"
    wire = view.wire(inst(), NOW)
    assert (wire["sshStatus"], wire["sshStatusReason"]) == ("Unavailable", view.service_down)
    assert view.wire(inst(image="m-Win2019d"), NOW)["sshStatus"] == "Unsupported"
    view.service_down = None
    assert view.wire(inst(), NOW)["sshStatus"] == "Available"
