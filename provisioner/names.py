"""The one place that decides whether a project name, hostname or address is acceptable.

Values that fail are reported and skipped by the caller; nothing is ever "cleaned up" into a
different name, because a rewritten name could point at somebody else's home.

Project names: ``^[a-z][a-z0-9_-]{0,62}$`` and not ending in ``-`` or ``_``.
That single rule makes a name safe as one path component, an exports(5) token, a Ceph
subvolume name, a Gluster volume name, an LDAP RDN value and a shell word: no ``/``, no
``.``, no leading ``-``, no whitespace, no upper case (LDAP compares names without case, a
filesystem does not), nothing that a shell, exports(5) or an LDAP filter treats specially.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

PROJECT_NAME_RULE = r"^[a-z][a-z0-9_-]{0,62}$ (not ending in '-' or '_')"
_PROJECT_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME_RE = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*", re.ASCII)
_NETGROUP_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def project_name_problem(name: str) -> str | None:
    """Why ``name`` is not an acceptable project name, or None when it is."""
    if not isinstance(name, str) or not name:
        return "empty name"
    if not _PROJECT_RE.fullmatch(name) or name[-1] in "-_":
        return f"{name!r} does not match {PROJECT_NAME_RULE}"
    return None


def is_project_name(name: str) -> bool:
    return project_name_problem(name) is None


def normalise_hostname(value: str) -> str | None:
    """A DNS hostname in lower case, or None if ``value`` is not one.

    DNS names are case-insensitive, so lower-casing is not a rewrite. Wildcards, trailing dots,
    IP literals and anything outside letters, digits, ``-`` and ``.`` are refused.
    """
    name = value.strip().lower() if isinstance(value, str) else ""
    if not _HOSTNAME_RE.fullmatch(name) or name.replace(".", "").isdigit():
        return None
    return name


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_RE = re.compile(r"\.".join([_OCTET] * 4), re.ASCII)


def parse_ipv4(value: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address written canonically (``10.68.1.11``: no leading zeros), or None.

    A regex instead of ``ipaddress`` parsing: this runs once per host of the directory."""
    match = _IPV4_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    a, b, c, d = (int(octet) for octet in match.groups())
    return ipaddress.IPv4Address(a << 24 | b << 16 | c << 8 | d)


def parse_networks(values: Iterable[str]) -> tuple[ipaddress.IPv4Network, ...]:
    return tuple(ipaddress.IPv4Network(v, strict=True) for v in values)


PRIVATE_NETWORKS = parse_networks(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"])
_PRIVATE_RANGES = tuple((int(net.network_address), int(net.netmask)) for net in PRIVATE_NETWORKS)


# never a host, whatever the configuration: 0.0.0.0 (unspecified), 127/8 (loopback), 169.254/16
# (link-local), 224/4 (multicast), 240/4 (reserved, with 255.255.255.255): ipaddress's own
# ranges for these properties, in integers because this runs once per address of the directory
_NEVER_HOSTS = tuple((int(net.network_address), int(net.netmask)) for net in parse_networks(
    ["0.0.0.0/32", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4"]))


def is_host_address(addr: ipaddress.IPv4Address) -> bool:
    """0.0.0.0 or 255.255.255.255 would mean everyone; no network setting can make them a client."""
    value = int(addr)
    return not any(value & mask == network for network, mask in _NEVER_HOSTS)


def is_exportable_address(
    addr: ipaddress.IPv4Address, extra_networks: Iterable[ipaddress.IPv4Network] = ()
) -> bool:
    """RFC 1918 addresses are exportable; any other only inside configured networks.

    Loopback, link-local, multicast, reserved and unspecified addresses never are, whatever
    the configuration says.
    """
    value = int(addr)
    for network, mask in _PRIVATE_RANGES:  # the common case, in integers: runs once per host
        if value & mask == network:
            return True
    if addr.is_loopback or addr.is_link_local or addr.is_multicast:
        return False
    if addr.is_unspecified or addr.is_reserved:
        return False
    return any(addr in net for net in extra_networks)


def is_netgroup_name(name: str) -> bool:
    return bool(_NETGROUP_RE.fullmatch(name))


_UNPRINTABLE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """One line for people and the journal: control characters (a newline or an escape sequence
    smuggled in through a directory value) are shown as ``\\xNN``/``\\uNNNN``, never obeyed."""
    return _UNPRINTABLE_RE.sub(lambda m: repr(m.group())[1:-1] if ord(m.group()) < 0x100
                               else f"\\u{ord(m.group()):04x}", text)
