"""A fast path through ldap3's BER decoding for the one message a full read is made of.

A full read of 40,000 hosts spends about a third of homevol's time in ldap3's generic
``decode_sequence`` (benchmarks/directory_plan.py). A search result entry has one fixed shape
(RFC 4511 §4.5.2: a DN, then attributes, each a type and a set of values), so it is walked here
with a few slices, building exactly the tree ldap3's ``decode_message_fast`` builds. Anything
else (another operation, controls, an indefinite or malformed length) goes to ldap3 untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_SEQUENCE, _SET, _OCTETS, _INTEGER = 0x30, 0x31, 0x04, 0x02
_SEARCH_ENTRY = 0x64  # [APPLICATION 4], constructed
Tree = list[tuple[int, bool, int, Any]]


class _NotAnEntry(Exception):
    """The message is not a plain search result entry: ldap3 decodes it."""


def _header(data: bytes, at: int, tag: int, stop: int) -> tuple[int, int]:
    """(start, end) of the value of the element at ``at``, which must carry ``tag``."""
    if at + 2 > stop or data[at] != tag:
        raise _NotAnEntry
    first = data[at + 1]
    if first < 0x80:
        start, length = at + 2, first
    else:
        count = first & 0x7F
        if not 0 < count <= 4:  # indefinite, or longer than any message homevol reads
            raise _NotAnEntry
        start, length = at + 2 + count, int.from_bytes(data[at + 2:at + 2 + count], "big")
    end = start + length
    if end > stop:
        raise _NotAnEntry
    return start, end


def _values(data: bytes, at: int, stop: int) -> Tree:
    out: Tree = []
    while at < stop:
        start, end = _header(data, at, _OCTETS, stop)
        out.append((0, False, 4, data[start:end]))
        at = end
    return out


def _attributes(data: bytes, at: int, stop: int) -> Tree:
    out: Tree = []
    while at < stop:
        start, end = _header(data, at, _SEQUENCE, stop)
        type_start, type_end = _header(data, start, _OCTETS, end)
        vals_start, vals_end = _header(data, type_end, _SET, end)
        if vals_end != end:
            raise _NotAnEntry
        out.append((0, True, 16, [(0, False, 4, data[type_start:type_end]),
                                  (0, True, 17, _values(data, vals_start, vals_end))]))
        at = end
    return out


def decode_entry(data: bytes) -> dict[str, Any]:
    """ldap3's decoded form of a search result entry without controls; _NotAnEntry otherwise."""
    start, end = _header(data, 0, _SEQUENCE, len(data))
    id_start, id_end = _header(data, start, _INTEGER, end)
    if not 0 < id_end - id_start <= 4 or data[id_start] & 0x80:
        raise _NotAnEntry
    op_start, op_end = _header(data, id_end, _SEARCH_ENTRY, end)
    if op_end != end:  # controls follow: rare, ldap3 decodes them
        raise _NotAnEntry
    dn_start, dn_end = _header(data, op_start, _OCTETS, op_end)
    attrs_start, attrs_end = _header(data, dn_end, _SEQUENCE, op_end)
    if attrs_end != op_end:
        raise _NotAnEntry
    return {"messageID": int.from_bytes(data[id_start:id_end], "big"), "protocolOp": 4,
            "payload": [(0, False, 4, data[dn_start:dn_end]),
                        (0, True, 16, _attributes(data, attrs_start, attrs_end))],
            "controls": None}


def with_fast_entries(original: Callable[[bytes], dict[str, Any]]) -> Callable[[bytes], dict[str, Any]]:
    """``original`` (ldap3's decoder) with the fast path in front of it."""
    def decode(data: bytes) -> dict[str, Any]:
        try:
            return decode_entry(bytes(data))
        except _NotAnEntry:
            return original(data)

    return decode


_installed: list[bool] = []


def install() -> None:
    """Put the fast path in ldap3's synchronous strategy, which looks the decoder up by name at
    every message; once per process. The tree is ldap3's own, so every ldap3 caller is served alike."""
    if _installed:
        return
    from ldap3.strategy import sync

    sync.decode_message_fast = with_fast_entries(sync.decode_message_fast)
    _installed.append(True)
