"""Tests for localbcc.domain.keys (spec §4.2 fingerPrint, §4.3 publicKey)."""
from __future__ import annotations

import base64
import hashlib
import shutil
import struct
import subprocess
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from hypothesis import given, settings
from hypothesis import strategies as st

from localbcc.domain.keys import PublicKey, fingerprint_md5, generate_rsa_keypair, parse_public_key
from localbcc.errors import BceError, ErrorCode

SSH_KEYGEN = shutil.which("ssh-keygen")
needs_ssh_keygen = pytest.mark.skipif(SSH_KEYGEN is None, reason="ssh-keygen not installed")

# Real `ssh-keygen -t dsa` output (OpenSSH 9.2); `ssh-keygen -l -E md5` prints
# "1024 MD5:7f:06:24:e0:4e:6a:ae:63:68:75:2f:c3:95:9e:03:3c root@vm (DSA)".
DSS_LINE = (
    "ssh-dss AAAAB3NzaC1kc3MAAACBAMgFsD3b2SgyubFpkOAqa0kgn49RAXoE1TSCIL2xFLMtaxbDGnp3dkZb8OSdiJcIUdTj"
    "bDYDXu2VUD0ThYzzt3yDMWuIzxkZ2EjGlMExbCyBFJS7WegW1TOvIiMDN9VM7EniDtaZPpxeXr0dRPddLzyxJkECK58d0f4I"
    "bjsSWxwxAAAAFQDjJCGg1R1JAUNddUkU74xYqehsywAAAIAGC73xj6ytiTmarBk02DPRPqbcxgJ8qvQyalZolRs6me0edw9Q"
    "OGJ8Rxge2oS9Opaw4M26uT4AoZVCn46ea1HVhwfKq6SVDeRK+mm908XRRR6s5PCVmIzapmepmEwdOsuDQ7txA+iiuSlfhh4N"
    "1BbneOqIgYz/x1TM1fCE3mru4gAAAIA46eNtaNN+TEiVAoyg5llBlJPKa/8KwDlJpEQtic4DG4XTH/hqKrI0Q3jdUQ8OKnvV"
    "5lF93jHj8kTMNzNXIR0lIlWWJPuEIkPBSpIAPY/avy1m62JAgT6tLMG/GnMihHRBK8bXSFR2+x1oxq6klmt0XqUeOVJZVKy+"
    "VJ5/NM6PDw== root@vm"
)
DSS_MD5 = "7f:06:24:e0:4e:6a:ae:63:68:75:2f:c3:95:9e:03:3c"


def _quiet(fn, *args):
    """Call cryptography's DSA-over-SSH helpers without their deprecation warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


def _openssh(pub) -> str:
    return _quiet(pub.public_bytes, ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode()


PRIVATE = {
    "rsa1024": rsa.generate_private_key(65537, 1024),
    "rsa2048": rsa.generate_private_key(65537, 2048),
    "rsa4096": rsa.generate_private_key(65537, 4096),
    "p256": ec.generate_private_key(ec.SECP256R1()),
    "p384": ec.generate_private_key(ec.SECP384R1()),
    "p521": ec.generate_private_key(ec.SECP521R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
    "dsa1024": dsa.generate_private_key(1024),
}
PUBLIC = {name: key.public_key() for name, key in PRIVATE.items()}
# the key lines below come from cryptography, never from the module under test
LINES = {name: _openssh(pub) for name, pub in PUBLIC.items()} | {"dss_real": DSS_LINE.rsplit(" ", 1)[0]}
EXPECTED = {  # name -> (type, bits)
    "rsa1024": ("ssh-rsa", 1024),
    "rsa2048": ("ssh-rsa", 2048),
    "rsa4096": ("ssh-rsa", 4096),
    "p256": ("ecdsa-sha2-nistp256", 256),
    "p384": ("ecdsa-sha2-nistp384", 384),
    "p521": ("ecdsa-sha2-nistp521", 521),
    "ed25519": ("ssh-ed25519", 256),
    "dsa1024": ("ssh-dss", 1024),
    "dss_real": ("ssh-dss", 1024),
}


def _pub(name: str):
    if name == "dss_real":
        return _quiet(ser.load_ssh_public_key, DSS_LINE.encode())
    return PUBLIC[name]


def _md5(line: str) -> str:
    digest = hashlib.md5(base64.b64decode(line.split()[1])).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


def _rfc4716(line: str, comment: str | None = None, extra_headers: tuple[str, ...] = ()) -> str:
    b64 = line.split()[1]
    body = [b64[i : i + 70] for i in range(0, len(b64), 70)]
    headers = list(extra_headers) + ([f'Comment: "{comment}"'] if comment else [])
    return "\n".join(["---- BEGIN SSH2 PUBLIC KEY ----", *headers, *body, "---- END SSH2 PUBLIC KEY ----"]) + "\n"


def _pem(pub, fmt=ser.PublicFormat.SubjectPublicKeyInfo) -> str:
    return pub.public_bytes(ser.Encoding.PEM, fmt).decode()


def _ssh_string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def _line_of(blob: bytes, key_type: str | None = None) -> str:
    key_type = key_type or blob[4 : 4 + struct.unpack(">I", blob[:4])[0]].decode()
    return f"{key_type} {base64.b64encode(blob).decode()}"


def _blob(name: str) -> bytes:
    return base64.b64decode(LINES[name].split()[1])


def _check(pk: PublicKey, name: str, comment: str | None) -> None:
    key_type, bits = EXPECTED[name]
    line = LINES[name]
    assert pk.key_type == key_type
    assert pk.bits == bits
    assert pk.openssh == (f"{line} {comment}" if comment else line)
    assert pk.blob == base64.b64decode(line.split()[1])
    assert pk.fingerprint == _md5(line) == fingerprint_md5(pk.blob)


def _rejected(text) -> None:
    with pytest.raises(BceError) as info:
        parse_public_key(text)
    assert info.value.code is ErrorCode.PublicKeyFormatInvalid


# --- accepted forms ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("comment", [None, "alice@laptop", "two words"])
def test_openssh_line_round_trips(name: str, comment: str | None) -> None:
    text = f"{LINES[name]} {comment}" if comment else LINES[name]
    _check(parse_public_key(text), name, comment)
    _check(parse_public_key(f"\n  {text}\r\n"), name, comment)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("comment", [None, "converted by root@vm"])
def test_rfc4716_round_trips(name: str, comment: str | None) -> None:
    _check(parse_public_key(_rfc4716(LINES[name], comment)), name, comment)


def test_rfc4716_headers_and_continuation() -> None:
    text = _rfc4716(
        LINES["rsa2048"],
        extra_headers=("x-command: /home/me/bin/lock-in-guest.sh \\", "  --and-more", "Subject: me"),
        comment="1024-bit  RSA,\tconverted",
    )
    _check(parse_public_key(text), "rsa2048", "1024-bit RSA, converted")
    unquoted = text.replace('"1024-bit  RSA,\tconverted"', "plain comment")
    _check(parse_public_key(unquoted), "rsa2048", "plain comment")
    folded = _rfc4716(LINES["p256"], extra_headers=('Comment: "split \\', 'over lines"'))
    _check(parse_public_key(folded), "p256", "split over lines")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pem_spki_round_trips(name: str) -> None:
    _check(parse_public_key(_pem(_pub(name))), name, None)


@pytest.mark.parametrize("name", ["rsa1024", "rsa2048", "rsa4096"])
def test_pem_pkcs1_round_trips(name: str) -> None:
    text = _pem(PUBLIC[name], ser.PublicFormat.PKCS1)
    assert text.startswith("-----BEGIN RSA PUBLIC KEY-----")
    _check(parse_public_key(text), name, None)


def test_real_ssh_dss_line() -> None:
    pk = parse_public_key(DSS_LINE)
    assert (pk.key_type, pk.bits, pk.fingerprint) == ("ssh-dss", 1024, DSS_MD5)
    assert pk.openssh == DSS_LINE


def test_generated_dss_blob_is_cryptographys_encoding() -> None:
    nums = PUBLIC["dsa1024"].public_numbers()
    params = nums.parameter_numbers

    def mpint(v: int) -> bytes:
        return _ssh_string(v.to_bytes(v.bit_length() // 8 + 1, "big"))

    blob = _ssh_string(b"ssh-dss") + b"".join(mpint(v) for v in (params.p, params.q, params.g, nums.y))
    assert parse_public_key(_pem(PUBLIC["dsa1024"])).blob == blob == _blob("dsa1024")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parse_is_idempotent(name: str) -> None:
    pk = parse_public_key(f"{LINES[name]} c")
    assert parse_public_key(pk.openssh) == pk


# --- ssh-keygen as an independent oracle ------------------------------------------


def _keygen(*args: str) -> str:
    return subprocess.run([SSH_KEYGEN, *args], capture_output=True, text=True, check=True).stdout


@needs_ssh_keygen
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fingerprint_matches_ssh_keygen(name: str, tmp_path: Path) -> None:
    pk = parse_public_key(f"{LINES[name]} me@host")
    path = tmp_path / "key.pub"
    path.write_text(pk.openssh + "\n")
    bits, fingerprint, *_ = _keygen("-l", "-E", "md5", "-f", str(path)).split()
    assert fingerprint == "MD5:" + pk.fingerprint
    assert int(bits) == pk.bits


@needs_ssh_keygen
@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("mode", ["RFC4716", "PKCS8", "PEM"])
def test_ssh_keygen_exports_parse(name: str, mode: str, tmp_path: Path) -> None:
    if mode != "RFC4716" and name == "ed25519":
        pytest.skip("ssh-keygen exports ed25519 only as RFC 4716")
    path = tmp_path / "key.pub"
    path.write_text(LINES[name] + "\n")
    exported = _keygen("-e", "-m", mode, "-f", str(path))
    pk = parse_public_key(exported)
    assert pk.blob == _blob(name)
    assert pk.fingerprint == _md5(LINES[name])


# --- rejections ------------------------------------------------------------------


def _small_rsa_line(bits: int) -> str:
    n = (1 << (bits - 1)) | 0x10001  # odd, exactly `bits` bits
    return _openssh(rsa.RSAPublicNumbers(65537, n).public_key())


def _rsa_blob_line(e: int, n: int) -> str:
    """An ssh-rsa line written by hand, for moduli cryptography would not build for us."""
    def mpint(v: int) -> bytes:
        return _ssh_string(v.to_bytes((v.bit_length() + 8) // 8, "big"))
    return _line_of(_ssh_string(b"ssh-rsa") + mpint(e) + mpint(n))


def _padded_mpint_rsa_line() -> str:
    """ssh-rsa blob whose modulus mpint carries a superfluous leading zero byte."""
    nums = PUBLIC["rsa2048"].public_numbers()
    n = b"\x00" + nums.n.to_bytes(nums.n.bit_length() // 8 + 1, "big")
    return _line_of(_ssh_string(b"ssh-rsa") + _ssh_string(b"\x01\x00\x01") + _ssh_string(n))


def _sk_ed25519_blob() -> bytes:
    return _ssh_string(b"sk-ssh-ed25519@openssh.com") + _ssh_string(b"\x01" * 32) + _ssh_string(b"ssh:")


def _cert_blob() -> bytes:
    return _ssh_string(b"ssh-ed25519-cert-v01@openssh.com") + _ssh_string(b"n" * 32) + _blob("ed25519")[15:]


ED = LINES["ed25519"]
RSA = LINES["rsa2048"]
RSA_B64 = RSA.split()[1]
RSA_BLOB = _blob("rsa2048")

REJECTED = {
    "empty": "",
    "spaces": "   \n\t ",
    "type only": "ssh-rsa",
    "blob only": RSA_B64,
    "rsa private pkcs1": PRIVATE["rsa2048"]
    .private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption())
    .decode(),
    "rsa private pkcs8": PRIVATE["rsa2048"]
    .private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    .decode(),
    "ec private": PRIVATE["p256"]
    .private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption())
    .decode(),
    "openssh private": PRIVATE["ed25519"]
    .private_bytes(ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption())
    .decode(),
    "public then private": _pem(PUBLIC["p256"])
    + PRIVATE["p256"].private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()).decode(),
    "truncated base64": RSA[:-10],
    "truncated base64 half": RSA[: len(RSA) // 2],
    "truncated blob": _line_of(RSA_BLOB[:-7]),
    "truncated ed25519 blob": _line_of(_blob("ed25519")[:-1]),
    "trailing data in blob": _line_of(RSA_BLOB + b"\x00"),
    "trailing data in dss blob": _line_of(_blob("dss_real") + b"\x00\x00\x00\x00"),
    "non-minimal mpint": _padded_mpint_rsa_line(),
    "non-minimal dss mpint": _line_of(
        _ssh_string(b"ssh-dss") + _ssh_string(b"\x00" + _blob("dss_real")[15:144]) + _blob("dss_real")[144:]
    ),
    "bad length prefix": _line_of(b"\xff" + RSA_BLOB[1:], "ssh-rsa"),
    "bad base64 char": f"ssh-rsa {RSA_B64[:40]}*{RSA_B64[41:]}",
    "base64 bad padding": RSA + "=",
    "dss p too small": _line_of(
        _ssh_string(b"ssh-dss") + b"".join(_ssh_string(bytes([v])) for v in (23, 11, 4, 9))
    ),
    "type mismatch": f"ssh-rsa {ED.split()[1]}",
    "type mismatch ecdsa curve": f"ecdsa-sha2-nistp384 {LINES['p256'].split()[1]}",
    "two lines": f"{RSA}\n{ED}",
    "two lines same key": f"{RSA}\n{RSA}",
    "two keys one line": f"{RSA} {ED}",
    "key then blob as comment": f"{RSA} me {ED.split()[1]}",
    "two rfc4716": _rfc4716(RSA) + _rfc4716(ED),
    "rfc4716 then line": _rfc4716(RSA) + ED,
    "two pem": _pem(PUBLIC["p256"]) + _pem(PUBLIC["ed25519"]),
    "pem then line": _pem(PUBLIC["p256"]) + ED,
    "rsa 512": _small_rsa_line(512),
    "rsa 1023": _small_rsa_line(1023),
    # issue 17: keys OpenSSH can never use
    "rsa 16385": _small_rsa_line(16385),
    "rsa 16385 pem": _pem(rsa.RSAPublicNumbers(65537, (1 << 16384) | 0x10001).public_key()),
    "rsa even modulus": _rsa_blob_line(65537, (1 << 2047) | 0x10000),
    "rsa even modulus pem": _pem(rsa.RSAPublicNumbers(65537, (1 << 2047) | 2).public_key()),
    "rsa 512 pem": _pem(rsa.RSAPublicNumbers(65537, (1 << 511) | 1).public_key()),
    "sk ed25519": _line_of(_sk_ed25519_blob()),
    "sk ed25519 declared as ed25519": _line_of(_sk_ed25519_blob(), "ssh-ed25519"),
    "cert": _line_of(_cert_blob()),
    "cert declared plain": _line_of(_cert_blob(), "ssh-ed25519"),
    "x25519 pem": _pem(x25519.X25519PrivateKey.generate().public_key()),
    "ed448 pem": _pem(ed448.Ed448PrivateKey.generate().public_key()),
    "secp256k1 pem": _pem(ec.generate_private_key(ec.SECP256K1()).public_key()),
    "p224 pem": _pem(ec.generate_private_key(ec.SECP224R1()).public_key()),
    "options command": f'command="echo hi" {RSA}',
    "options flags": f"no-pty,no-port-forwarding {ED}",
    "non-ascii garbage": "ключ не ключ",
    "non-ascii in blob": f"ssh-rsa {RSA_B64[:20]}é{RSA_B64[21:]}",
    "control chars": "\x00\x01\x02",
    "control char in comment": f"{ED} bad\x00comment",
    "emoji": "🔑",
    "too long comment": f"{ED} {'x' * 17000}",
    "too long garbage": "A" * 20000,
    "rfc4716 no end": _rfc4716(RSA).replace("---- END SSH2 PUBLIC KEY ----", ""),
    "rfc4716 no body": "---- BEGIN SSH2 PUBLIC KEY ----\n---- END SSH2 PUBLIC KEY ----",
    "rfc4716 dangling continuation": "---- BEGIN SSH2 PUBLIC KEY ----\nx-a: b \\\n---- END SSH2 PUBLIC KEY ----",
    "rfc4716 control char in comment": _rfc4716(RSA, "bad\x07comment"),
    "rfc4716 wrong end": _rfc4716(RSA).replace("END SSH2 PUBLIC", "END SSH2 PRIVATE"),
    "rfc4716 trailing garbage": _rfc4716(RSA) + "garbage",
    "rfc4716 garbage body": _rfc4716("ssh-rsa notbase64!!"),
    "pem wrong label": _pem(PUBLIC["p256"]).replace("PUBLIC KEY", "CERTIFICATE"),
    "pem mismatched end": _pem(PUBLIC["rsa2048"], ser.PublicFormat.PKCS1).replace(
        "END RSA PUBLIC KEY", "END PUBLIC KEY"
    ),
    "pem garbage body": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
    "pem five dashes rfc4716 label": _rfc4716(RSA).replace("----", "-----"),
}


@pytest.mark.parametrize("text", REJECTED.values(), ids=REJECTED.keys())
def test_rejected(text: str) -> None:
    _rejected(text)


@pytest.mark.parametrize("value", [None, 42, b"ssh-rsa AAAA"])
def test_non_string_rejected(value) -> None:
    _rejected(value)


def test_rsa_sizes_openssh_accepts_are_the_bounds() -> None:
    """1024 and 16384 bits pass (and so do odd sizes between); 1023 and 16385 do not."""
    for bits in (1024, 1025, 4097, 16384):
        assert parse_public_key(_small_rsa_line(bits)).bits == bits
        assert parse_public_key(_rsa_blob_line(65537, (1 << (bits - 1)) | 3)).bits == bits
    for bits in (1023, 16385, 20000):
        _rejected(_small_rsa_line(bits))
    _rejected(_rsa_blob_line(65537, (1 << 4095) | 2))


def test_limit_is_16_kib() -> None:
    text = f"{ED} "
    assert parse_public_key(text + "x" * (16 * 1024 - len(text))).key_type == "ssh-ed25519"
    _rejected(text + "x" * (16 * 1024 - len(text) + 1))


# --- property tests -------------------------------------------------------------

VALID_TEXTS = [LINES["rsa1024"], f"{ED} me@host", DSS_LINE, LINES["p256"], _rfc4716(ED, "c"), _pem(PUBLIC["p384"])]


def _parse_or_reject(text: str) -> None:
    try:
        pk = parse_public_key(text)
    except BceError as exc:
        assert exc.code is ErrorCode.PublicKeyFormatInvalid
    else:
        assert parse_public_key(pk.openssh) == pk
        assert pk.fingerprint == fingerprint_md5(pk.blob)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    _parse_or_reject(text)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(VALID_TEXTS), st.data())
def test_mutated_valid_key(text: str, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(text) - 1), label="index")
    char = data.draw(st.characters(), label="char")
    op = data.draw(st.sampled_from(["truncate", "replace", "delete", "insert"]), label="op")
    mutated = {
        "truncate": text[:i],
        "replace": text[:i] + char + text[i + 1 :],
        "delete": text[:i] + text[i + 1 :],
        "insert": text[:i] + char + text[i:],
    }[op]
    _parse_or_reject(mutated)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(EXPECTED)), st.binary(max_size=64), st.integers(0, 4096))
def test_blob_splicing(name: str, junk: bytes, cut: int) -> None:
    blob = _blob(name)
    _parse_or_reject(_line_of(blob[:cut] + junk, EXPECTED[name][0]))


# --- generate_rsa_keypair --------------------------------------------------------


@pytest.mark.parametrize("comment", [None, "made-by-localbcc"])
def test_generate_rsa_keypair(comment: str | None) -> None:
    pk, pem = generate_rsa_keypair(comment)
    assert pem.startswith("-----BEGIN RSA PRIVATE KEY-----\n")
    assert pem.rstrip().endswith("-----END RSA PRIVATE KEY-----")
    private = ser.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.key_size == pk.bits == 2048
    assert private.public_key().public_numbers().e == 65537
    line = _openssh(private.public_key())
    assert pk.blob == base64.b64decode(line.split()[1])
    assert pk.openssh == (f"{line} {comment}" if comment else line)
    assert pk.key_type == "ssh-rsa"
    assert pk.fingerprint == _md5(line)
    _rejected(pem)


def test_generate_rsa_keypair_is_random() -> None:
    assert generate_rsa_keypair()[0].blob != generate_rsa_keypair()[0].blob


def test_fingerprint_md5_format() -> None:
    assert fingerprint_md5(b"") == "d4:1d:8c:d9:8f:00:b2:04:e9:80:09:98:ec:f8:42:7e"
