"""Netgroup mode: one ``nisNetgroup`` entry per exported project, kept in step with its hosts.

The entry is ``cn=<prefix><project>,<netgroup_base>`` (its own entry: ``groupOfNames`` and
``nisNetgroup`` are both structural), with a triple ``(<name>,,)`` for every usable name of
every host of the project, and ``description: managed by homevol``. Entries without that mark
are never touched, even when their name starts with the prefix. Writes use their own bind
identity (``directory.ldap.write_bind_dn``), which needs write access under the netgroup base
only (docs/netgroups.md has the ACL).
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

from .config import LdapConfig
from .errors import DirectoryError
from .exports import ApplyResult
from .model import Inventory
from .names import is_project_name

NETGROUP_MARK = "managed by homevol"  # the description that marks a netgroup as homevol's


class NetgroupAction(enum.StrEnum):
    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"
    BLOCKED = "blocked"  # an entry with homevol's prefix but not its mark: left alone


@dataclass(frozen=True)
class NetgroupChange:
    project: str
    name: str
    dn: str
    action: NetgroupAction
    triples: tuple[str, ...] = ()
    before: tuple[str, ...] = ()

    @property
    def added(self) -> list[str]:
        return sorted(set(self.triples) - set(self.before))

    @property
    def removed(self) -> list[str]:
        return sorted(set(self.before) - set(self.triples))

    def to_dict(self) -> dict[str, object]:
        return {"project": self.project, "netgroup": self.name, "action": self.action,
                "triples": list(self.triples), "added": self.added, "removed": self.removed}


def triples_for(inventory: Inventory, project: str) -> tuple[str, ...]:
    return tuple(sorted({f"({name},,)" for host in inventory.hosts_of(project) for name in host.names}))


def plan_netgroups(inventory: Inventory, exported: set[str], prefix: str, base: str,
                   scope: Collection[str] | None) -> list[NetgroupChange]:
    """Add or update the netgroup of every exported project; remove homevol's others."""
    existing = inventory.netgroups or {}
    changes = []
    names = {prefix + p for p in exported} | set(existing)
    for name in sorted(names):
        project = name[len(prefix):]
        if not is_project_name(project) or (scope is not None and project not in scope):
            continue
        have = existing.get(name)
        dn = have.dn if have else f"cn={name},{base}"
        if have is not None and not have.owned:
            if project in exported:
                changes.append(NetgroupChange(project, name, dn, NetgroupAction.BLOCKED))
            continue
        if project in exported:
            want = triples_for(inventory, project)
            if have is None:
                changes.append(NetgroupChange(project, name, dn, NetgroupAction.ADD, want))
            elif tuple(sorted(have.triples)) != want:
                changes.append(NetgroupChange(project, name, dn, NetgroupAction.UPDATE, want,
                                              have.triples))
        elif have is not None:
            changes.append(NetgroupChange(project, name, dn, NetgroupAction.REMOVE, (), have.triples))
    return changes


def apply_netgroups(cfg: LdapConfig, changes: list[NetgroupChange]) -> list[ApplyResult]:
    """Write the changes with the write identity; a result per netgroup."""
    if not changes:
        return []
    try:
        from .directory.ldap import LdapDirectory  # ldap3 is loaded only where it is used

        writer = LdapDirectory(cfg, write=True)
    except DirectoryError as exc:
        return [ApplyResult(c.project, f"netgroup-{c.action}", False, str(exc)) for c in changes]
    results = []
    try:
        for change in changes:
            try:
                if change.action == NetgroupAction.BLOCKED:
                    raise DirectoryError(f"{change.dn} exists and is not homevol's; left alone")
                if change.action == NetgroupAction.ADD:
                    entry = {"objectClass": ["top", "nisNetgroup"], "cn": [change.name],
                             "description": [NETGROUP_MARK]}
                    if change.triples:
                        entry["nisNetgroupTriple"] = list(change.triples)
                    writer.change("add", change.dn, entry)
                elif change.action == NetgroupAction.UPDATE:
                    writer.change("replace", change.dn, {"nisNetgroupTriple": list(change.triples)})
                else:
                    writer.change("delete", change.dn)
                results.append(ApplyResult(change.project, f"netgroup-{change.action}", True,
                                           f"{change.name}: {len(change.triples)} triples"))
            except DirectoryError as exc:
                results.append(ApplyResult(change.project, f"netgroup-{change.action}", False, str(exc)))
    finally:
        writer.close()
    return results
