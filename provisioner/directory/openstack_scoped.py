"""The scoped OpenStack read: what bears on a few projects, in calls that do not grow with the cloud.

All-projects mode, fixed addresses (docs/openstack.md). In order:

1. Keystone: every project of each name (``GET /projects?name=``, in the domain: two are a
   duplicate name) and the chain of parents above them (a disabled parent holds them); the
   rename memory as a full read keeps it;
2. Nova, per region: their servers (``all_tenants&project_id=<id>``);
3. Nova, per region and address: the servers at each of their addresses (``all_tenants&ip=``),
   so an address a server of another project claims is exported to neither;
4. Keystone for those other projects (by id, then every project of that name: whether their
   claim counts, under which name) and for the projects sharing a gid (by tag, the gid map).

No filter is trusted. Nova drops a filter it does not allow the caller (a non-admin without
``allow_all_filters``) without a word and answers with every server; its ``ip`` filter is a
prefix regex, or a substring when Nova asks Neutron. So every server is attributed by its own
project id, and another project's server counts only when one of its own addresses equals one
of the projects'. When the projects have no entry, or no server, the read asks whether the
cloud holds any project, or any server, at all: the empty-directory guard judges the cloud.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..config import OpenStackConfig
from ..errors import DirectoryError
from ..model import Finding
from ..names import parse_ipv4
from . import Snapshot
from .openstack import OpenStackDirectory, host_list
from .openstack_names import judge_renames
from .openstack_shape import Server, gid_map, gid_tag, project_gid, raw_host, raw_projects


class _Keystone:
    """The Keystone entries a scoped read judges, each name complete, with their parents."""

    def __init__(self, directory: OpenStackDirectory) -> None:
        self.directory = directory
        self.entries: dict[str, dict[str, Any]] = {}
        self.ancestors: dict[str, dict[str, Any]] = {}
        self.names: set[str] = set()
        self.complete = False

    def list_all(self) -> None:
        """Every project, as a full read lists them (a gid property cannot be searched for)."""
        self.entries = {str(p["id"]): p for p in self.directory.projects()}
        self.complete = True

    def add_name(self, name: str) -> None:
        if self.complete or name in self.names:
            return
        self.names.add(name)
        for entry in self.directory.named(name):
            self.entries[str(entry["id"])] = entry
            self._walk_up(entry)

    def _walk_up(self, entry: dict[str, Any]) -> None:
        node = entry
        while True:
            parent = str(node.get("parent_id") or "")
            if not parent or parent == node.get("domain_id") or parent in self.entries \
                    or parent in self.ancestors:
                return  # a top project, or a chain already walked
            found = self.directory.project(parent)
            if found is None or found.get("is_domain"):
                return
            self.ancestors[parent] = found
            node = found

    def listed(self, entry: dict[str, Any] | None) -> bool:
        """Would a full read's listing return ``entry``: a project, in the domain?"""
        if entry is None or entry.get("is_domain"):
            return False
        if self.complete:
            return str(entry.get("id")) in self.entries
        return not self.directory.cfg.domain or entry.get("domain_id") == self.directory.domain_id


def _addresses(server: Server, cfg: OpenStackConfig) -> set[str]:
    """The server's addresses as the conflict rule compares them (chosen kinds, normalised)."""
    return {str(a) for v in raw_host(server, "", cfg, []).addresses if (a := parse_ipv4(v)) is not None}


def read_scoped(directory: OpenStackDirectory, state_dir: str, projects: frozenset[str]) -> Snapshot:
    cfg = directory.cfg
    keystone = _Keystone(directory)
    if cfg.gid_property:
        keystone.list_all()
    for name in sorted(projects):
        keystone.add_name(name)
    own = {pid for pid, entry in keystone.entries.items() if entry.get("name") in projects}
    servers: dict[tuple[str, str], Server] = {}
    for found in _each(directory, directory.servers_of, sorted(own)):
        servers.update(((s.region, s.id), s) for s in found if s.project_id in own)
    claimed = {a for s in servers.values() for a in _addresses(s, cfg)}
    holders: dict[tuple[str, str], Server] = {}
    addresses = sorted(claimed)
    for address, found in zip(addresses, _each(directory, directory.servers_at, addresses), strict=True):
        _check_answer(address, found, [s for s in servers.values() if address in _addresses(s, cfg)])
        holders.update(((s.region, s.id), s) for s in found
                       if s.project_id not in own and _addresses(s, cfg) & claimed)
    for pid in sorted({s.project_id for s in holders.values()}):
        entry = directory.project(pid)
        if keystone.listed(entry):
            assert entry is not None
            keystone.add_name(str(entry.get("name", "")))
    if not keystone.complete:
        _add_gid_sharers(keystone, cfg, [keystone.entries[pid] for pid in sorted(own)])
    findings: list[Finding] = []
    raw = raw_projects(keystone.entries.values(), cfg, findings, keystone.ancestors.values())
    raw = judge_renames(raw, Path(state_dir), cfg.accept_renames, findings)
    hosts, raw = host_list([*servers.values(), *holders.values()], raw, cfg, findings)
    return Snapshot(
        projects=tuple(raw), hosts=tuple(hosts), source=directory.source, searches=directory.listings,
        operations=directory.calls.count, findings=tuple(findings), scope=projects,
        any_projects=bool(own) or _any_project(keystone), any_hosts=bool(servers) or directory.any_server())


def _each(directory: OpenStackDirectory, listing: Callable[[str], Iterable[Server]],
          keys: list[str]) -> list[list[Server]]:
    """``listing`` of each key, ``concurrency`` at a time (a project with many addresses costs
    their round trips side by side), in the keys' order; the first failure is raised."""
    if len(keys) < 2:
        return [list(listing(k)) for k in keys]
    workers = min(directory.cfg.concurrency, len(keys))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda key: list(listing(key)), keys))


def _check_answer(address: str, found: list[Server], asker: list[Server]) -> None:
    """The servers at ``address`` must include the projects' own: Nova asking Neutron logs a
    failed port search and answers with no server, which would hide every other holder."""
    missing = {(s.region, s.id) for s in asker} - {(s.region, s.id) for s in found}
    if missing:
        region, server = sorted(missing)[0]
        raise DirectoryError(f"openstack: Nova's ip={address} filter ({region or 'default region'}) "
                             f"did not return server {server}, which holds it; not trusting the answer")


def _add_gid_sharers(keystone: _Keystone, cfg: OpenStackConfig, own: Iterable[dict[str, Any]]) -> None:
    """The projects that may hold one of ``own``'s gids (a shared gid is used by none): those the
    gid map gives it, and those tagged with it (a gid is only ever read in its canonical form)."""
    mapped = gid_map(cfg)
    gids = {g for entry in own if (g := project_gid(entry, cfg, mapped)) is not None}
    for gid in sorted(gids):
        for name in sorted(n for n, g in mapped.items() if g == gid):
            keystone.add_name(name)
        if cfg.gid_tag_prefix:
            for entry in keystone.directory.tagged(gid_tag(cfg, gid)):
                keystone.add_name(str(entry.get("name", "")))


def _any_project(keystone: _Keystone) -> bool:
    """Does a full read list any project? Its token's own project, when no domain narrows the
    listing; else ask."""
    directory = keystone.directory
    if keystone.complete:
        return bool(keystone.entries)
    if not directory.cfg.domain and directory.token_project_id:
        return True
    return bool(directory.projects())
