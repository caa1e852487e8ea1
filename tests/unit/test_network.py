"""Instance addresses: formatted without the ipaddress module (it cost half of
listing 1,000 instances), so checked against it."""
from __future__ import annotations

import ipaddress

from hypothesis import given, strategies as st

from localbcc.domain import network

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
SEQS = st.integers(min_value=0, max_value=(1 << 32) - 1 - int(ipaddress.IPv4Address("127.16.0.0")))


@given(SEQS)
def test_addresses_are_what_ipaddress_says(seq):
    public = ipaddress.IPv4Address(int(ipaddress.IPv4Address("127.16.0.0")) + seq)
    assert network.public_ip(seq) == str(public)
    assert network.public_ip_is_loopback(seq) == (public in LOOPBACK)
    if seq < (1 << 32) - int(ipaddress.IPv4Address("10.0.0.0")):
        internal = ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.0.0.0")) + seq)
        assert network.internal_ip(seq) == str(internal)


def test_the_first_and_the_last_loopback_instance():
    assert network.public_ip(1) == "127.16.0.1" and network.internal_ip(1) == "10.0.0.1"
    last = (1 << 24) - (16 << 16) - 1  # 127.255.255.255
    assert network.public_ip(last) == "127.255.255.255" and network.public_ip_is_loopback(last)
    assert network.public_ip(last + 1) == "128.0.0.0" and not network.public_ip_is_loopback(last + 1)
