"""Where projects and hosts come from. Each source returns one ``Snapshot``; nothing is judged here."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..model import Finding, RawHost, RawNetgroup, RawProject


@dataclass(frozen=True)
class Snapshot:
    projects: tuple[RawProject, ...]
    hosts: tuple[RawHost, ...]
    source: str
    searches: int = 0  # distinct searches issued (LDAP); constant whatever the project count
    operations: int = 0  # LDAP requests including every page and the bind
    netgroups: tuple[RawNetgroup, ...] | None = None  # read in netgroup mode only
    findings: tuple[Finding, ...] = ()  # what the source itself saw (OpenStack: forbidden, renamed)
    # a scoped read: the projects it is complete for (their entries, hosts, and every other
    # entry that bears on them: claimants of their addresses, holders of their gid); None: all
    scope: frozenset[str] | None = None
    # a scoped read: does the directory hold any project / host at all (asked when the scope's
    # own entries were none, so the empty-directory guard still judges the whole directory)
    any_projects: bool | None = None
    any_hosts: bool | None = None

    @property
    def has_projects(self) -> bool:
        return bool(self.projects) if self.any_projects is None else self.any_projects

    @property
    def has_hosts(self) -> bool:
        return bool(self.hosts) if self.any_hosts is None else self.any_hosts


def read_snapshot(cfg: Config, projects: frozenset[str] | None = None) -> Snapshot:
    """Read the configured directory once, all of it or only what bears on ``projects``;
    DirectoryError on any failure. A source without a scoped read returns the whole directory
    (``scope`` None), which the world then restricts."""
    if cfg.directory.source == "openstack":
        from .openstack import read_openstack

        return read_openstack(cfg.directory.openstack, cfg.state_dir, projects)
    if cfg.directory.source == "ldap":
        from .ldap import read_ldap

        prefix = cfg.exports.netgroup_prefix if cfg.exports.clients == "netgroup" else None
        return read_ldap(cfg.directory.ldap, netgroup_prefix=prefix, projects=projects)
    from .file import read_file

    snapshot = read_file(cfg.directory.file.path)
    if projects is None:
        return snapshot
    from .scoped import narrow

    return narrow(snapshot, projects)
