"""The fast path for search result entries decodes exactly as ldap3 does, and steps aside otherwise."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from ldap3.protocol.rfc4511 import (
    LDAPDN,
    AttributeDescription,
    AttributeValue,
    LDAPMessage,
    MessageID,
    PartialAttribute,
    PartialAttributeList,
    ProtocolOp,
    SearchResultDone,
    SearchResultEntry,
    Vals,
)
from ldap3.utils.asn1 import decode_message_fast
from pyasn1.codec.ber import encoder

from provisioner.directory.ber import decode_entry, with_fast_entries

_VALUES = st.lists(st.binary(max_size=400), max_size=5)
_ATTRIBUTES = st.lists(st.tuples(st.text("abcdefghXYZ-;", min_size=1, max_size=20), _VALUES), max_size=6)


def _entry(message_id: int, dn: str, attributes: list[tuple[str, list[bytes]]]) -> bytes:
    entry = SearchResultEntry()
    entry["object"] = LDAPDN(dn)
    listed = PartialAttributeList()
    for i, (name, values) in enumerate(attributes):
        attribute = PartialAttribute()
        attribute["type"] = AttributeDescription(name)
        vals = Vals()
        for j, value in enumerate(values):
            vals.setComponentByPosition(j, AttributeValue(value))
        attribute["vals"] = vals
        listed.setComponentByPosition(i, attribute)
    entry["attributes"] = listed
    op = ProtocolOp()
    op["searchResEntry"] = entry
    message = LDAPMessage()
    message["messageID"] = MessageID(message_id)
    message["protocolOp"] = op
    return bytes(encoder.encode(message))


@settings(max_examples=200)
@given(st.integers(1, 2**31 - 1), st.text(max_size=300), _ATTRIBUTES)
def test_an_entry_decodes_exactly_as_ldap3_decodes_it(message_id: int, dn: str,
                                                      attributes: list[tuple[str, list[bytes]]]) -> None:
    data = _entry(message_id, dn, attributes)
    assert decode_entry(data) == decode_message_fast(data)


def test_every_other_message_goes_to_ldap3() -> None:
    done = SearchResultDone()
    done["resultCode"] = 0
    done["matchedDN"] = LDAPDN("")
    done["diagnosticMessage"] = ""
    op = ProtocolOp()
    op["searchResDone"] = done
    message = LDAPMessage()
    message["messageID"] = MessageID(3)
    message["protocolOp"] = op
    data = bytes(encoder.encode(message))
    asked = []
    decode = with_fast_entries(lambda d: asked.append(d) or {"ldap3": True})
    assert decode(data) == {"ldap3": True} and asked == [data]


@given(st.binary(max_size=64))
def test_garbage_goes_to_ldap3_and_never_breaks_the_fast_path(data: bytes) -> None:
    decode = with_fast_entries(lambda d: {"ldap3": d})
    result = decode(data)
    assert result == {"ldap3": data} or result["protocolOp"] == 4


def test_a_truncated_entry_goes_to_ldap3() -> None:
    data = _entry(5, "cn=x,ou=hosts", [("aRecord", [b"10.0.0.1"])])
    decode = with_fast_entries(lambda d: {"ldap3": d})
    assert decode(data[:-3]) == {"ldap3": data[:-3]}
