"""The LDAP door: one connection, one paged search for projects and one for hosts, raw values.

Why these defaults (see docs/directory.md): projects are read one level under ``ou=projects``
with ``(objectClass=groupOfNames)``; the 2011 filter ``(&(objectclass=groupofnames)(owner=*))``
drops every project created after 2012-08 (they have no ``owner``). Hosts are read with a filter
that needs no substring rule and are attributed client-side from ``puppetVar``, because
``(puppetVar=instanceproject=*)`` silently matches nothing on OpenLDAP.
"""

from __future__ import annotations

import contextlib
import math
import re
import ssl
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPServerPoolExhaustedError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from ..config import LdapConfig
from ..errors import DirectoryError
from ..model import RawHost, RawNetgroup, RawProject
from ..netgroup import NETGROUP_MARK
from . import Snapshot, ber

_PAGED_OID = "1.2.840.113556.1.4.319"
_SIZE_LIMIT_EXCEEDED = 4  # a probe asking for one entry where there are more: "yes"
_SCOPES = {"one": ldap3.LEVEL, "sub": ldap3.SUBTREE}
# the server pool makes one cycle over the URIs, then the error: ldap3 would sleep
# POOLING_LOOP_TIMEOUT (10 s) after that last cycle before saying so
ldap3.set_config_parameter("POOLING_LOOP_TIMEOUT", 0)

Attrs = dict[str, list[str]]


def _decode(raw: dict[str, list[bytes]]) -> Attrs:
    """Values as text (names are already lower-cased: servers differ in case)."""
    return {name: [v.decode("utf-8", "replace") for v in values] for name, values in raw.items()}


def _lean_entry_decoder(strategy: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """ldap3 turns every entry into two dicts, formatted and raw; homevol reads only the raw one.

    This decoder builds just that (names lower-cased, values as bytes) for search entries and
    leaves every other message to ldap3. Measured on 40,000 hosts it removes about half of
    ldap3's cost (benchmarks/directory_plan.py). It relies on ldap3 2.9's BER tree shape
    (``decode_message_fast``), which the pinned version range keeps stable.
    """
    original = strategy.decode_response_fast

    def decode(message: dict[str, Any]) -> dict[str, Any]:
        if message["protocolOp"] != 4 or message["controls"]:
            return original(message)
        dn, attributes = message["payload"]
        raw = {attr[3][0][3].decode("utf-8", "replace").lower(): [v[3] for v in attr[3][1][3]]
               for attr in attributes[3]}
        return {"type": "searchResEntry", "dn": dn[3].decode("utf-8", "replace"), "raw_attributes": raw}

    return decode


def parse_var(value: str) -> tuple[str, str]:
    """``var=value`` split on the first ``=``, tolerating old spellings like ``var = "value"``."""
    key, _, val = value.partition("=")
    return key.strip().strip("\"'").strip().lower(), val.strip().strip("\"'").strip()


_ESCAPE_RE = re.compile(r"\\([0-9a-fA-F]{2})|\\(.)", re.DOTALL)


def unescape_rdn_value(value: str) -> str:
    """RFC 4514 unescaping: ``\\2C`` and ``\\,`` both mean ``,`` (hex pairs are UTF-8 bytes)."""
    def byte(match: re.Match[str]) -> str:
        return f"%{match.group(1)}" if match.group(1) else urllib.parse.quote(match.group(2))

    return urllib.parse.unquote(_ESCAPE_RE.sub(byte, value.replace("%", "%25")))


def any_of(attr: str, values: Iterable[str]) -> str:
    """``(|(attr=v1)(attr=v2)…)`` with every value escaped (RFC 4515): equality only, so no
    value can widen the filter. Callers skip a search that would have no value."""
    terms = "".join(f"({attr}={escape_filter_chars(v)})" for v in dict.fromkeys(values))
    return f"(|{terms})"


def _rdn_count(dn: str) -> int:
    return len(parse_dn(dn, escape=False, strip=True))


class LdapDirectory:
    """One connection to the directory; every search goes through ``search``."""

    def __init__(self, cfg: LdapConfig, write: bool = False) -> None:
        self.cfg = cfg
        self.write = write  # bind as write_bind_dn (netgroup mode) instead of the reader
        self.searches = 0
        self.operations = 0
        self.conn = self._connect()

    def _connect(self) -> ldap3.Connection:
        cfg = self.cfg
        tls = None
        if cfg.start_tls or any(u.startswith("ldaps://") for u in cfg.uris):
            tls = ldap3.Tls(
                validate=ssl.CERT_REQUIRED, ca_certs_file=cfg.ca_file or None,
                version=ssl.PROTOCOL_TLS_CLIENT,
            )
        servers = [
            ldap3.Server(uri, get_info=ldap3.NONE, connect_timeout=cfg.connect_timeout, tls=tls)
            for uri in cfg.uris
        ]
        pool = ldap3.ServerPool(servers, ldap3.FIRST, active=1, exhaust=True)
        bind_dn, password_file, key = (
            (cfg.write_bind_dn, cfg.write_password_file, "write_password_file") if self.write
            else (cfg.bind_dn, cfg.password_file, "password_file"))
        password = None
        if bind_dn:
            try:
                password = Path(password_file).read_text().rstrip("\n")
            except OSError as exc:
                raise DirectoryError(
                    f"ldap: cannot read {key} {password_file!r}: {exc.strerror}"
                ) from None
        try:
            conn = ldap3.Connection(
                pool, user=bind_dn or None, password=password, read_only=not self.write,
                receive_timeout=max(1, math.ceil(cfg.operation_timeout)), raise_exceptions=False,
                check_names=False, auto_referrals=False, return_empty_attributes=False,
                auto_range=False,
            )
            conn.strategy.decode_response_fast = _lean_entry_decoder(conn.strategy)
            ber.install()
            if not conn.open() and conn.closed:
                raise DirectoryError(f"ldap: cannot connect to {', '.join(cfg.uris)}")
            if cfg.start_tls and not conn.start_tls():
                raise DirectoryError(f"ldap: StartTLS failed: {conn.result.get('description')}")
            if not conn.bind():
                result = conn.result or {}
                raise DirectoryError(
                    f"ldap: bind as {bind_dn or 'anonymous'} refused: "
                    f"{result.get('description')} {result.get('message') or ''}".rstrip()
                )
        except LDAPServerPoolExhaustedError:
            raise DirectoryError(f"ldap: no server answered ({', '.join(cfg.uris)}; each tried once, "
                                 f"directory.ldap.connect_timeout {cfg.connect_timeout:g}s)") from None
        except (LDAPException, OSError) as exc:
            raise DirectoryError(f"ldap: {', '.join(cfg.uris)}: {exc}") from None
        self.operations += 1
        return conn

    def search(self, base: str, scope: str, filt: str, attrs: list[str]) -> Iterator[tuple[str, Attrs]]:
        """A paged search yielding (dn, attributes); any failure is a DirectoryError."""
        self.searches += 1
        cookie: bytes | None = None
        while True:
            self.operations += 1
            try:
                self.conn.search(
                    base, filt, search_scope=_SCOPES[scope], attributes=attrs,
                    paged_size=self.cfg.page_size, paged_cookie=cookie,
                    time_limit=int(self.cfg.operation_timeout),
                )
            except (LDAPException, OSError) as exc:
                raise DirectoryError(f"ldap: search under {base}: {exc}") from None
            result = self.conn.result or {}
            if result.get("result") != 0:
                raise DirectoryError(
                    f"ldap: search under {base} {filt} failed: {result.get('description')} "
                    f"{result.get('message') or ''}".rstrip()
                )
            for item in self.conn.response or ():
                if item.get("type") == "searchResEntry":
                    yield item["dn"], _decode(item["raw_attributes"])
            control = (result.get("controls") or {}).get(_PAGED_OID)
            cookie = control["value"]["cookie"] if control else None
            if not cookie:
                return

    def any_entry(self, base: str, scope: str, filt: str) -> bool:
        """Does ``base`` hold any entry matching ``filt``? One request, at most one entry back:
        the probe that tells an empty scope from an empty (or broken) directory."""
        self.searches += 1
        self.operations += 1
        try:
            self.conn.search(base, filt, search_scope=_SCOPES[scope], attributes=["1.1"],
                             size_limit=1, time_limit=int(self.cfg.operation_timeout))
        except (LDAPException, OSError) as exc:
            raise DirectoryError(f"ldap: search under {base}: {exc}") from None
        result = self.conn.result or {}
        if result.get("result") not in (0, _SIZE_LIMIT_EXCEEDED):
            raise DirectoryError(f"ldap: search under {base} {filt} failed: "
                                 f"{result.get('description')} {result.get('message') or ''}".rstrip())
        return result.get("result") == _SIZE_LIMIT_EXCEEDED or any(
            item.get("type") == "searchResEntry" for item in self.conn.response or ())

    def change(self, operation: str, dn: str, values: dict[str, list[str]] | None = None) -> None:
        """``add``, ``replace`` (each attribute's values) or ``delete`` one entry."""
        self.operations += 1
        try:
            if operation == "add":
                done = self.conn.add(dn, attributes=values)
            elif operation == "replace":
                changes = {k: [(ldap3.MODIFY_REPLACE, v)] for k, v in (values or {}).items()}
                done = self.conn.modify(dn, changes)
            else:
                done = self.conn.delete(dn)
        except (LDAPException, OSError) as exc:
            raise DirectoryError(f"ldap: {operation} {dn}: {exc}") from None
        if not done:
            result = self.conn.result or {}
            raise DirectoryError(f"ldap: {operation} {dn} failed: {result.get('description')} "
                                 f"{result.get('message') or ''}".rstrip())

    def close(self) -> None:
        with contextlib.suppress(LDAPException):
            self.conn.unbind()


def read_ldap(cfg: LdapConfig, netgroup_prefix: str | None = None,
              projects: frozenset[str] | None = None) -> Snapshot:
    """Projects and hosts; in netgroup mode also the netgroups named with homevol's prefix.
    With ``projects``, only what bears on them, in a constant number of searches (``ldap_scoped``)."""
    if projects is not None:
        from .ldap_scoped import read_scoped

        return read_scoped(cfg, projects, netgroup_prefix)
    directory = LdapDirectory(cfg)
    try:
        entries = list(_projects(directory, cfg))
        if cfg.groups_base:
            gids = _group_gids(directory, cfg)
            entries = [p if p.gid is not None or p.name not in gids else replace(p, gid=gids[p.name])
                       for p in entries]
        hosts = list(_hosts(directory, cfg))
        netgroups = (tuple(_netgroups(directory, cfg, netgroup_prefix))
                     if netgroup_prefix is not None else None)
    finally:
        directory.close()
    return Snapshot(
        projects=tuple(entries), hosts=tuple(hosts), source=f"ldap:{cfg.uris[0]}",
        searches=directory.searches, operations=directory.operations, netgroups=netgroups,
    )


def _group_gids(directory: LdapDirectory, cfg: LdapConfig, filt: str | None = None) -> dict[str, int]:
    """Project → gid from the project groups (``cn=project-<p>,ou=groups``): one search."""
    prefix = cfg.groups_prefix.lower()
    gids = {}
    for _, values in directory.search(cfg.groups_base, "one", filt or cfg.groups_filter,
                                      ["cn", "gidNumber"]):
        gid = (values.get("gidnumber") or [""])[0].strip()
        for cn in values.get("cn", ()):
            if cn.lower().startswith(prefix) and gid.isdigit():
                gids[cn[len(prefix):]] = int(gid)
    return gids


def _netgroups(directory: LdapDirectory, cfg: LdapConfig, prefix: str,
               names: Iterable[str] | None = None) -> Iterator[RawNetgroup]:
    """Netgroups named with ``prefix``: all of them, or those of ``names`` (equality only)."""
    wanted = (f"(cn={escape_filter_chars(prefix)}*)" if names is None
              else any_of("cn", (prefix + n for n in names)))
    filt = f"(&(objectClass=nisNetgroup){wanted})"
    attrs = ["cn", "nisNetgroupTriple", "description"]
    for dn, values in directory.search(cfg.netgroup_base, "one", filt, attrs):
        rdn = parse_dn(dn, escape=False, strip=True)
        name = unescape_rdn_value(rdn[0][1]) if rdn and rdn[0][0].lower() == "cn" else ""
        owned = NETGROUP_MARK in values.get("description", ())
        yield RawNetgroup(dn, name, tuple(values.get("nisnetgrouptriple", ())), owned)


def _projects(directory: LdapDirectory, cfg: LdapConfig, filt: str | None = None
              ) -> Iterator[RawProject]:
    base_depth = _rdn_count(cfg.projects_base)
    name_attr, gid_attr, optin_attr = (
        a.lower() for a in (cfg.project_name_attr, cfg.project_gid_attr, cfg.project_optin_attr)
    )
    optin = cfg.project_optin_value.replace(" ", "").lower()
    id_attr = cfg.project_id_attr.lower()
    attrs = [cfg.project_name_attr, cfg.project_gid_attr, cfg.project_optin_attr]
    if id_attr and id_attr != name_attr:
        attrs.append(cfg.project_id_attr)
    for dn, values in directory.search(cfg.projects_base, cfg.projects_scope, filt or cfg.projects_filter,
                                        attrs):
        rdn = parse_dn(dn, escape=False, strip=True)
        if not rdn:
            continue
        depth = len(rdn)
        if depth <= base_depth:
            continue  # the base itself (a subtree search returns it when it matches)
        # the project's name is its RDN value when the RDN is the name attribute
        name = (unescape_rdn_value(rdn[0][1]) if rdn[0][0].lower() == name_attr
                else (values.get(name_attr) or [""])[0])
        gid_values = values.get(gid_attr) or []
        gid = int(gid_values[0]) if gid_values and gid_values[0].strip().isdigit() else None
        wants = any(v.replace(" ", "").lower() == optin for v in values.get(optin_attr, ()))
        if id_attr == name_attr:
            project_id: str | None = name
        else:
            project_id = next(iter(values.get(id_attr) or ()), None) if id_attr else None
        yield RawProject(dn=dn, name=name, nested=depth > base_depth + 1, gid=gid, wants_home=wants,
                         id=project_id or None)


def _hosts(directory: LdapDirectory, cfg: LdapConfig, filt: str | None = None) -> Iterator[RawHost]:
    var_attr, addr_attr, name_attr, soa_attr = (
        a.lower()
        for a in (cfg.host_project_attr, cfg.host_address_attr, cfg.host_name_attr, cfg.host_soa_attr)
    )
    wanted = cfg.host_project_var.lower()
    attrs = [cfg.host_project_attr, cfg.host_address_attr, cfg.host_name_attr, cfg.host_soa_attr]
    for dn, values in directory.search(cfg.hosts_base, cfg.hosts_scope, filt or cfg.hosts_filter, attrs):
        pairs = [parse_var(v) for v in values.get(var_attr, ())]
        projects = tuple(dict.fromkeys(val for key, val in pairs if key == wanted))
        yield RawHost(
            dn=dn,
            projects=projects,
            addresses=tuple(values.get(addr_attr, ())),
            names=tuple(values.get(name_attr, ())),
            dns_domain=bool(values.get(soa_attr)),
            instance=bool(pairs),
        )
