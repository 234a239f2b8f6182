"""Keystone projects and Nova servers, as the APIs return them, → raw projects and hosts (pure).

No judgement beyond what only OpenStack knows: a disabled project, two projects with one name,
a server of a project the listing did not return, a server state that does not export. Each
becomes a finding and a *held* project (``RawProject.held``): no home, no export, but its
servers' addresses still count as claims, so a reused address is exported to nobody.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import OpenStackConfig
from ..model import Finding, RawHost, RawProject, Severity


class Held(enum.StrEnum):
    """Why a project is held out of the exports (its data is always kept)."""

    DISABLED = "disabled"
    DUPLICATE_NAME = "duplicate-name"
    UNLISTED = "unlisted"  # servers of a project the Keystone listing did not return
    FORBIDDEN = "forbidden"  # per-project mode: its servers could not be read
    RENAMED = "renamed"


@dataclass(frozen=True)
class Server:
    """The fields of one Nova server homevol reads."""

    id: str
    name: str
    project_id: str
    status: str
    addresses: Mapping[str, list[dict[str, Any]]]
    region: str

    @property
    def label(self) -> str:
        return f"server {self.name} ({self.id}, {self.region})"


def claimant(project_id: str) -> str:
    """The name a project known only by its id claims addresses under: never a valid home name."""
    return f"id:{project_id}"


def _canonical(value: str) -> int | None:
    """A gid written the one way Keystone can be searched for (``61001``: ASCII digits, no
    leading zero), so the scoped read's tag query finds every project a full read gives it to."""
    if value.isascii() and value.isdigit() and str(int(value)) == value:
        return int(value)
    return None


def gid_tag(cfg: OpenStackConfig, gid: int) -> str:
    return f"{cfg.gid_tag_prefix}{gid}"


def project_gid(project: Mapping[str, Any], cfg: OpenStackConfig, mapped: Mapping[str, int]) -> int | None:
    name = project.get("name", "")
    if name in mapped:
        return mapped[name]
    if cfg.gid_property:
        value = project.get(cfg.gid_property)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and (gid := _canonical(value)) is not None:
            return gid
    if cfg.gid_tag_prefix:
        for tag in project.get("tags") or ():
            rest = tag[len(cfg.gid_tag_prefix):] if tag.startswith(cfg.gid_tag_prefix) else ""
            if (gid := _canonical(rest)) is not None:
                return gid
    return None


def gid_map(cfg: OpenStackConfig) -> dict[str, int]:
    return {k: int(v) for k, _, v in (e.partition("=") for e in cfg.gid_map)}


def _disabled(project: Mapping[str, Any], by_id: Mapping[str, Mapping[str, Any]]) -> bool:
    """Disabled itself, or below a disabled parent (Keystone refuses tokens for either)."""
    seen: set[str] = set()
    node: Mapping[str, Any] | None = project
    while node is not None and node.get("id") not in seen:
        if node.get("enabled") is False:
            return True
        seen.add(str(node.get("id")))
        node = by_id.get(str(node.get("parent_id")))
    return False


def raw_projects(listed: Iterable[Mapping[str, Any]], cfg: OpenStackConfig,
                 findings: list[Finding], ancestors: Iterable[Mapping[str, Any]] = ()) -> list[RawProject]:
    """Each listed Keystone project as a RawProject; disabled and same-named ones held.

    ``ancestors``: more projects only to walk up to (a scoped read lists every project of each
    name it judges, but of their parents only the chain above them)."""
    projects = [p for p in listed if not p.get("is_domain")]
    by_id = {str(p["id"]): p for p in (*ancestors, *projects) if not p.get("is_domain")}
    names = Counter(p.get("name") for p in projects)
    mapped = gid_map(cfg)
    out = []
    for project in projects:
        pid, name = str(project["id"]), str(project.get("name", ""))
        held: Held | None = None
        if names[name] > 1:
            held = Held.DUPLICATE_NAME
            findings.append(Finding("duplicate-project-name", f"{names[name]} Keystone projects are "
                                    f"named {name!r} (this one {pid}); exported to none of them",
                                    project=name, severity=Severity.ERROR))
        elif _disabled(project, by_id) and not cfg.export_disabled:
            held = Held.DISABLED
            findings.append(Finding("project-disabled", f"Keystone project {name} ({pid}) is disabled "
                                    "(or below a disabled parent); not exported, data kept",
                                    project=name))
        out.append(RawProject(dn=f"keystone:{pid}", name=name, id=pid, gid=project_gid(project, cfg, mapped),
                              wants_home=cfg.optin_tag in (project.get("tags") or ()),
                              held=None if held is None else str(held)))
    return out


def raw_host(server: Server, project: str, cfg: OpenStackConfig, findings: list[Finding]) -> RawHost:
    """The server's chosen addresses (IPv4 only; fixed and/or floating) as one host."""
    kinds = set(cfg.addresses)
    addresses = tuple(dict.fromkeys(
        str(entry.get("addr")) for entries in server.addresses.values() for entry in entries
        if entry.get("version") == 4 and entry.get("OS-EXT-IPS:type", "fixed") in kinds))
    exportable = server.status.upper() in {s.upper() for s in cfg.export_states}
    if not exportable:
        findings.append(Finding("server-not-exported", f"{server.label} is {server.status}; its "
                                "addresses are claims only, not clients", project=project,
                                host=server.name, severity=Severity.INFO))
    return RawHost(dn=server.label, projects=(project,), addresses=addresses, exportable=exportable)


def server_from(resource: Any, region: str) -> Server:
    """An openstacksdk Server resource (or a dict of the API's JSON) → Server."""
    get = resource.get if isinstance(resource, Mapping) else lambda k, d=None: getattr(resource, k, d)
    project_id = get("project_id") or get("tenant_id") or ""
    return Server(str(get("id")), str(get("name") or ""), str(project_id), str(get("status") or ""),
                  get("addresses") or {}, region)
