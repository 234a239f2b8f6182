"""The central rules for project names, hostnames and addresses."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from provisioner.names import (
    is_exportable_address,
    is_host_address,
    is_project_name,
    normalise_hostname,
    parse_ipv4,
)


@pytest.mark.parametrize("name", ["alpha", "a", "tools", "deployment-prep", "a1", "x_y", "a" * 63])
def test_valid_project_names(name: str) -> None:
    assert is_project_name(name)


@pytest.mark.parametrize("name", [
    "", "..", ".", "../x", "a/b", ".alpha", "-alpha", "_alpha", "1abc", "Alpha", "alpha-", "alpha_",
    "al pha", "al\tpha", "a;b", "a$b", "a`b", "a(b)", "a,b", "a*", "a#b", "a.b", "a" * 64, "alpha\n",
    "é", "a\x00b", "@ng",
])
def test_invalid_project_names(name: str) -> None:
    assert not is_project_name(name)


@pytest.mark.parametrize(("value", "expected"), [
    ("alpha-web1.east.wmflabs", "alpha-web1.east.wmflabs"),
    ("Alpha-Web1.EAST.wmflabs", "alpha-web1.east.wmflabs"),
    ("*.alpha.example", None), ("x(rw) *", None), ("10.0.0.1", None), ("a..b", None),
    ("-a.b", None), ("a-.b", None), ("", None), ("a b", None), ("host.", None),
])
def test_hostnames(value: str, expected: str | None) -> None:
    assert normalise_hostname(value) == expected


@pytest.mark.parametrize(("value", "ok"), [
    ("10.68.1.11", True), (" 10.68.1.11 ", True), ("10.68.1.011", False), ("10.68.1", False),
    ("10.68.1.11/32", False), ("10.0.0.1(rw) *", False), ("::1", False), ("", False),
])
def test_ipv4_must_be_canonical(value: str, ok: bool) -> None:
    assert (parse_ipv4(value) is not None) == ok


@pytest.mark.parametrize(("address", "exportable"), [
    ("10.1.2.3", True), ("172.16.0.1", True), ("192.168.1.1", True),
    ("203.0.113.10", False), ("198.51.100.7", False), ("8.8.8.8", False), ("100.64.0.1", False),
    ("127.0.0.1", False), ("169.254.1.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("255.255.255.255", False), ("240.0.0.1", False),
])
def test_only_private_unicast_addresses_are_exportable(address: str, exportable: bool) -> None:
    assert is_exportable_address(ipaddress.IPv4Address(address)) == exportable


def test_configured_networks_admit_public_addresses_but_never_loopback() -> None:
    nets = [ipaddress.IPv4Network("198.18.0.0/15"), ipaddress.IPv4Network("127.0.0.0/8")]
    assert is_exportable_address(ipaddress.IPv4Address("198.18.1.11"), nets)
    assert not is_exportable_address(ipaddress.IPv4Address("127.0.0.1"), nets)


@given(st.integers(min_value=0, max_value=2**32 - 1))
@example(0)
@example(2**32 - 1)
@example(0x7F000001)
@example(0xA9FE0001)
@example(0xE0000000)
def test_a_host_address_is_what_ipaddress_calls_no_special_range(value: int) -> None:
    addr = ipaddress.IPv4Address(value)
    special = (addr.is_unspecified or addr.is_loopback or addr.is_multicast or addr.is_link_local
               or addr.is_reserved or addr == ipaddress.IPv4Address("255.255.255.255"))
    assert is_host_address(addr) is not special


@given(st.one_of(st.ip_addresses(v=4).map(str), st.text(alphabet=" 0123456789.\t", max_size=20),
                 st.tuples(*[st.integers(0, 300)] * 4).map(lambda t: ".".join(map(str, t)))))
@example(" 10.68.1.11\n")
def test_an_address_parse_ipv4_takes_is_already_written_as_the_address_writes_itself(value: str) -> None:
    """The inventory keeps the text it was given (stripped) as the address: it must be the
    address's own spelling, or one host could be two addresses."""
    addr = parse_ipv4(value)
    assert addr is None or str(addr) == value.strip()
