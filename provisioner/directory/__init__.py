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


def read_snapshot(cfg: Config) -> Snapshot:
    """Read the configured directory once; DirectoryError on any failure."""
    if cfg.directory.source == "openstack":
        from .openstack import read_openstack

        return read_openstack(cfg.directory.openstack, cfg.state_dir)
    if cfg.directory.source == "ldap":
        from .ldap import read_ldap

        prefix = cfg.exports.netgroup_prefix if cfg.exports.clients == "netgroup" else None
        return read_ldap(cfg.directory.ldap, netgroup_prefix=prefix)
    from .file import read_file

    return read_file(cfg.directory.file.path)
