"""Raw directory entries → an Inventory of valid projects and their hosts, plus findings.

Rules (docs/directory.md has the table of finding kinds):
- a project with an invalid name is skipped; entries nested below a project are ignored;
- a host is attributed to a project only when it names exactly one, and that project exists;
  a host naming several projects is exported to none of them (it is malformed: OSM never wrote
  two), and its addresses still count as claims of every project it names;
- an address (or hostname) claimed by hosts of two different projects is exported to neither
  until the stale entry is fixed: a reused address is how a home leaks to another project;
- only canonical IPv4 addresses that are private (or inside configured networks) are clients;
  in hostname and netgroup modes a host's names count only when it has such an address too,
  and none of its addresses is contested.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .directory import Snapshot
from .model import Finding, Host, Inventory, Project, RawHost, Severity
from .names import (
    is_exportable_address,
    is_host_address,
    normalise_hostname,
    parse_ipv4,
    project_name_problem,
)

INFO, WARNING, ERROR = Severity.INFO, Severity.WARNING, Severity.ERROR


def _host_label(raw: RawHost) -> str:
    return raw.names[0] if raw.names else raw.dn


Judged = tuple[RawHost, str | None, tuple[str, ...], tuple[str, ...]]  # host, owner, addresses, names


@dataclass
class _Claims:
    """Which projects' hosts claim each address and each name (a claim by two is a conflict)."""

    addresses: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    names: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, projects: Iterable[str], addresses: Iterable[str], names: Iterable[str]) -> None:
        for project in projects:
            for address in addresses:
                self.addresses[address].add(project)
            for name in names:
                self.names[name].add(project)

    def conflicts(self, findings: list[Finding]) -> tuple[set[str], set[str]]:
        addresses = {a for a, owners in self.addresses.items() if len(owners) > 1}
        names = {n for n, owners in self.names.items() if len(owners) > 1}
        for identity in sorted(addresses) + sorted(names):
            owners = self.addresses.get(identity) or self.names[identity]
            for project in sorted(owners):
                findings.append(Finding(
                    "address-conflict",
                    f"{identity} is claimed by hosts of {', '.join(sorted(owners))}; exported to "
                    "none of them until the stale entry is removed", project=project, host=identity,
                    severity=ERROR))
        return addresses, names


def build_inventory(
    snapshot: Snapshot,
    extra_networks: Iterable[ipaddress.IPv4Network] = (),
    clients: str = "address",
) -> Inventory:
    findings: list[Finding] = list(snapshot.findings)
    projects = _judge_projects(snapshot, findings)
    held = {p.name: p.held for p in snapshot.projects if p.held is not None and not p.nested}
    networks = tuple(extra_networks)
    claims = _Claims()
    judged = [j for raw in snapshot.hosts
              if (j := _judge_host(raw, projects, networks, claims, findings, held)) is not None]
    conflicted, conflicted_names = claims.conflicts(findings)
    hosts = _attribute(judged, conflicted, conflicted_names, clients)
    for name in projects:
        if name not in hosts:
            findings.append(Finding("project-without-hosts", f"project {name} has no instance hosts",
                                    project=name, severity=INFO))
    netgroups = None
    if snapshot.netgroups is not None:
        netgroups = {ng.name: ng for ng in snapshot.netgroups}
        findings += [Finding("foreign-netgroup", f"{ng.dn} has homevol's prefix but not its mark; "
                             "left alone", host=ng.name) for ng in snapshot.netgroups if not ng.owned]
    # held projects keep their id too (an event about a disabled project names it); a claimant
    # known only by its id has no valid name
    project_ids = {p.id: p.name for p in snapshot.projects if p.id is not None and not p.nested
                   and (p.name in projects or (p.held is not None and not project_name_problem(p.name)))}
    return Inventory(projects, hosts, findings, frozenset(conflicted | conflicted_names), netgroups,
                     project_ids, held, snapshot.has_projects)


def _judge_projects(snapshot: Snapshot, findings: list[Finding]) -> dict[str, Project]:
    projects: dict[str, Project] = {}
    for entry in snapshot.projects:
        if entry.nested:
            findings.append(Finding("nested-project-entry", f"{entry.dn} is below a project "
                                    "(a role or group entry), ignored", severity=INFO))
            continue
        if entry.held is not None:
            continue  # the source said why (its finding); a claimant only, never exported
        problem = project_name_problem(entry.name)
        if problem:
            findings.append(Finding("invalid-project-name", f"{entry.dn}: {problem}; skipped",
                                    project=entry.name, severity=ERROR))
            continue
        projects[entry.name] = Project(entry.name, entry.dn, entry.gid, entry.wants_home)
    _drop_shared_gids(projects, findings)
    return projects


def _judge_host(raw: RawHost, projects: dict[str, Project], networks: tuple[ipaddress.IPv4Network, ...],
                claims: _Claims, findings: list[Finding], held: dict[str, str]) -> Judged | None:
    """One host on its own: its usable identities, its claims, and its one owner (or None)."""
    label = _host_label(raw)
    if raw.dns_domain:
        findings.append(Finding("dns-domain-entry", f"{raw.dn} is a DNS zone entry, never a client",
                                host=label, severity=INFO))
        return None
    addresses, names = _identities(raw, label, networks, findings)
    if not raw.projects:
        if raw.instance:
            findings.append(Finding("host-without-project",
                                    f"{raw.dn} names no project; not exported", host=label))
        else:
            findings.append(Finding("public-address-entry",
                                    f"{raw.dn} is not an instance (no puppet data); never a client",
                                    host=label, severity=INFO))
        return None
    known = [p for p in raw.projects if p in projects or p in held]
    for name in raw.projects:
        if name not in projects and name not in held:
            findings.append(Finding("unknown-project", f"{raw.dn} names project {name!r}, "
                                    "which is not in the directory (or not valid)",
                                    project=name, host=label))
    claims.add(known, addresses, names)
    if len(raw.projects) > 1:
        findings.append(Finding("host-several-projects",
                                f"{raw.dn} names {len(raw.projects)} projects "
                                f"({', '.join(raw.projects)}); exported to none of them",
                                host=label, severity=ERROR))
        return None
    owner = raw.projects[0] if raw.projects[0] in projects and raw.exportable else None
    return raw, owner, addresses, names


def _attribute(judged: list[Judged], conflicted: set[str], conflicted_names: set[str],
               clients: str) -> dict[str, list[Host]]:
    hosts: dict[str, list[Host]] = defaultdict(list)
    for raw, owner, addresses, names in judged:
        if owner is None:
            continue
        usable_addresses = tuple(a for a in addresses if a not in conflicted)
        if clients != "address" and (not usable_addresses or len(usable_addresses) < len(addresses)):
            # a name is only as good as the address behind it: none, public, or contested → no
            usable_names: tuple[str, ...] = ()
        else:
            usable_names = tuple(n for n in names if n not in conflicted_names)
        hosts[owner].append(Host(raw.dn, owner, usable_addresses, usable_names))
    return dict(hosts)


def _drop_shared_gids(projects: dict[str, Project], findings: list[Finding]) -> None:
    """A gid held by two projects would let one project's members write the other's home:
    neither gets it (the home's group is then the configured default) until it is fixed."""
    holders: dict[int, list[str]] = defaultdict(list)
    for project in projects.values():
        if project.gid is not None:
            holders[project.gid].append(project.name)
    for gid, names in holders.items():
        if len(names) < 2:
            continue
        for name in names:
            findings.append(Finding("duplicate-gid", f"gid {gid} is held by {', '.join(sorted(names))}; "
                                    "not used for any of them", project=name, severity=ERROR))
            old = projects[name]
            projects[name] = Project(old.name, old.dn, None, old.wants_home)


def _identities(
    raw: RawHost, label: str, networks: tuple[ipaddress.IPv4Network, ...], findings: list[Finding]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    project = raw.projects[0] if len(raw.projects) == 1 else None
    addresses: list[str] = []
    for value in raw.addresses:
        addr = parse_ipv4(value)
        if addr is None:
            findings.append(Finding("invalid-address", f"{raw.dn}: {value!r} is not an IPv4 address",
                                    project=project, host=label))
        elif not is_host_address(addr):
            if raw.projects:
                findings.append(Finding("unusable-address", f"{raw.dn}: {addr} is not the address "
                                        "of one host (unspecified, broadcast, loopback, multicast "
                                        "or link-local); never a client", project=project, host=label))
        elif not is_exportable_address(addr, networks):
            if raw.projects:
                findings.append(Finding("public-address", f"{raw.dn}: {addr} is not a private "
                                        "address; not exported (see exports.extra_client_networks)",
                                        project=project, host=label))
        elif (text := value.strip()) not in addresses:  # parse_ipv4 takes canonical text only
            addresses.append(text)
    if not raw.addresses and raw.projects:
        findings.append(Finding("host-without-address", f"{raw.dn} has no address yet",
                                project=project, host=label))
    if len(addresses) > 1:
        findings.append(Finding("host-several-addresses", f"{raw.dn} has {len(addresses)} addresses",
                                project=project, host=label, severity=INFO))
    names: list[str] = []
    for value in raw.names:
        name = normalise_hostname(value)
        if name is None:
            if raw.projects:
                findings.append(Finding("invalid-hostname", f"{raw.dn}: {value!r} is not a hostname",
                                        project=project, host=label))
        elif name not in names:
            names.append(name)
    if len(names) > 1 and raw.projects:
        findings.append(Finding("host-several-names", f"{raw.dn} has {len(names)} names: "
                                f"{', '.join(names)}", project=project, host=label, severity=INFO))
    return tuple(addresses), tuple(names)
