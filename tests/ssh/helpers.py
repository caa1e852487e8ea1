"""Helpers for SSH tests: keys, waiting on the SDK, the stock OpenSSH client,
paramiko, and raw TCP probes of an instance's endpoint."""
from __future__ import annotations

import base64
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..waiting import wait_until  # noqa: F401  (re-exported for the SSH tests)

UBUNTU, DEBIAN, WINDOWS = "m-Ubt2204a", "m-Deb12x64", "m-Win2019d"


@dataclass
class Key:
    path: Path
    public: str  # "ssh-ed25519 AAAA... comment"

    @property
    def pkey(self) -> paramiko.PKey:
        return paramiko.PKey.from_path(self.path)

    @property
    def blob(self) -> str:
        return self.public.split()[1]


def new_key(directory: Path, name: str) -> Key:
    """An ed25519 key pair made here (fast), stored as an 0600 file like `ssh-keygen` would."""
    key = ed25519.Ed25519PrivateKey.generate()
    path = directory / f"{name}.key"
    path.write_bytes(key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.OpenSSH,
                                       ser.NoEncryption()))
    os.chmod(path, 0o600)
    public = key.public_key().public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode()
    return Key(path, f"{public} {name}")


def import_key(client, key: Key, name: str) -> str:
    return client.import_keypair(keypair_name=name, public_key=key.public).keypair.keypair_id


def create(client, *, key_pair_id=None, admin_pass=None, count=1, image=UBUNTU, hostname=None):
    return client.create_instance(cpu_count=1, memory_capacity_in_gb=1, image_id=image,
                                  key_pair_id=key_pair_id, admin_pass=admin_pass,
                                  purchase_count=count, hostname=hostname).instance_ids


def wait_status(client, iid: str, want: str = "Running", timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        inst = client.get_instance(iid).instance
        if inst.status == want:
            return inst
        if time.monotonic() > deadline:
            raise AssertionError(f"{iid} is {inst.status}, not {want}, after {timeout} s")
        time.sleep(0.02)


# -- host keys ---------------------------------------------------------------------------

def host_id(inst) -> str:
    return f"[{inst.public_ip}]:{inst.ssh_port}"


def known_hosts(directory: Path, *instances) -> Path:
    """A known_hosts file with the host keys the API shows, after checking that
    `ssh-keygen -l` prints exactly the fingerprint the API shows."""
    path = directory / f"known_hosts-{time.monotonic_ns()}"
    path.write_text("".join(f"{host_id(i)} {i.ssh_host_key}\n" for i in instances))
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    for inst, line in zip(instances, listed):
        assert line.split()[1] == inst.ssh_host_key_fingerprint, (line, inst.ssh_host_key_fingerprint)
    return path


# -- the stock OpenSSH client --------------------------------------------------------------

def openssh(inst, key: Key | None, *command: str, kh: Path, user: str = "root",
            extra: tuple = (), env: dict | None = None, stdin: str | None = None,
            timeout: float = 20.0) -> subprocess.CompletedProcess:
    args = ["ssh", "-F", "/dev/null", "-p", str(inst.ssh_port),
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={kh}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
            "-o", "ConnectTimeout=10", *extra]
    if key is not None:
        args += ["-i", str(key.path)]
    if env is None:
        args += ["-o", "BatchMode=yes"]
    args += [f"{user}@{inst.public_ip}", *command]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                          input=stdin if stdin is not None else "",
                          env=(os.environ | env) if env else None)


# -- paramiko ------------------------------------------------------------------------------

def trusting(inst) -> paramiko.SSHClient:
    """A paramiko client that knows only this instance's host key (from the API)."""
    client = paramiko.SSHClient()
    client.get_host_keys().add(host_id(inst), "ssh-ed25519",
                               paramiko.Ed25519Key(data=base64.b64decode(inst.ssh_host_key.split()[1])))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def pconnect(inst, key: Key | None = None, password: str | None = None,
             user: str = "root") -> paramiko.SSHClient:
    client = trusting(inst)
    try:
        client.connect(inst.public_ip, inst.ssh_port, username=user,
                       pkey=key.pkey if key else None, password=password,
                       look_for_keys=False, allow_agent=False, timeout=10,
                       banner_timeout=10, auth_timeout=10)
    except BaseException:
        client.close()
        raise
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str, str]:
    _, out, err = client.exec_command(command, timeout=10)
    status = out.channel.recv_exit_status()
    return status, out.read().decode(), err.read().decode()


def login_fails(inst, key: Key | None = None, password: str | None = None, user="root") -> bool:
    try:
        pconnect(inst, key, password, user).close()
    except paramiko.AuthenticationException:
        return True
    return False


# -- raw TCP -----------------------------------------------------------------------------

def banner(inst, timeout: float = 5.0) -> bytes | None:
    """What the endpoint says first: its SSH version line; b"" if it closes the
    connection without a word (instance not Running); None if nothing listens."""
    try:
        with socket.create_connection((inst.public_ip, inst.ssh_port), timeout=timeout) as s:
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            return data
    except ConnectionRefusedError:
        return None
