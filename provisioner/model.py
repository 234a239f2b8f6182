"""The nouns of homevol: what the directory says, what a volume is, what an export allows."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True)
class Finding:
    """Something odd seen on the way; never fatal by itself."""

    kind: str
    detail: str
    project: str | None = None
    host: str | None = None
    severity: Severity = Severity.WARNING
    fix: str | None = None  # the homevol command (or manual action) that would fix it

    def to_dict(self) -> dict[str, str | None]:
        return {
            "kind": self.kind,
            "severity": str(self.severity),
            "project": self.project,
            "host": self.host,
            "detail": self.detail,
            "fix": self.fix,
        }


def at_least(findings: Iterable[Finding], floor: Severity) -> list[Finding]:
    """The findings of ``floor`` or worse (what ``--min-severity`` shows)."""
    return [f for f in findings if f.severity.rank >= floor.rank]


@dataclass(frozen=True)
class RawProject:
    """A project entry as a directory source delivers it, before any judgement."""

    dn: str
    name: str
    nested: bool = False  # found below another entry of the projects base (a role, a group)
    gid: int | None = None
    wants_home: bool = False  # the per-project opt-in (``info: use_volume=home``)
    id: str | None = None  # the source's stable id (Keystone project id); events carry it
    # why the source holds this project out of the exports (disabled, renamed, forbidden, ...):
    # a held project gets no home and no export, but its hosts' addresses still count as claims
    held: str | None = None


@dataclass(frozen=True)
class RawHost:
    """A host entry as a directory source delivers it, before any judgement."""

    dn: str
    projects: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    dns_domain: bool = False  # a zone entry (has an SOA record), never a client
    instance: bool = True  # False: no puppet data at all (floating-IP and other non-instance entries)
    # False: the host's addresses are claims (for conflicts) but never clients (e.g. a shelved server)
    exportable: bool = True


@dataclass(frozen=True)
class RawNetgroup:
    """A ``nisNetgroup`` entry named with homevol's prefix, and whether homevol owns it."""

    dn: str
    name: str
    triples: tuple[str, ...]
    owned: bool


@dataclass(frozen=True)
class Project:
    name: str
    dn: str = ""
    gid: int | None = None
    wants_home: bool = False


@dataclass(frozen=True)
class Host:
    """An instance host attributed to exactly one existing project, with its usable identities."""

    dn: str
    project: str
    addresses: tuple[str, ...]
    names: tuple[str, ...]


@dataclass
class Inventory:
    """Everything the directory says, already judged: valid projects, their hosts, findings."""

    projects: dict[str, Project]
    hosts: dict[str, list[Host]]
    findings: list[Finding] = field(default_factory=list)
    # identities (addresses or names) claimed by more than one project: exported to nobody
    conflicted: frozenset[str] = frozenset()
    # netgroup mode: the entries named with homevol's prefix, by netgroup name (None: not read)
    netgroups: dict[str, RawNetgroup] | None = None
    # the source's project id → name (OpenStack: Keystone ids; events carry ids, homes use names)
    project_ids: dict[str, str] = field(default_factory=dict)
    # projects the source holds out of the exports, with the reason (their data is kept)
    held: dict[str, str] = field(default_factory=dict)
    # whether the directory holds any project entry at all, for a scoped read too (None: not
    # read, judged by ``projects``); a project missing from a populated directory has left it
    populated: bool | None = None

    @property
    def has_projects(self) -> bool:
        return bool(self.projects) if self.populated is None else self.populated

    def hosts_of(self, project: str) -> list[Host]:
        return self.hosts.get(project, [])


class VolumeState(enum.StrEnum):
    """A volume's lifecycle, as stamped on the volume itself (see provisioner/stamp.py).

    ``creating``: made but not finished (a crash can leave it so); never exported, finished by
    the next onboard or sync. ``active``: exported to the project's clients. ``retired``: data
    kept, not exported, not mounted."""

    CREATING = "creating"
    ACTIVE = "active"
    RETIRED = "retired"


@dataclass(frozen=True)
class Volume:
    """A volume homevol owns, as the backend reports it (its stamp is the source of truth)."""

    project: str
    backend: str
    path: str  # where the data is reachable on the NFS server (under the export base)
    size_bytes: int | None
    used_bytes: int | None = None
    state: VolumeState = VolumeState.ACTIVE
    # the client list the volume itself keeps (Gluster's auth.allow), as read; None: the backend
    # keeps none (see backends.Capability.CLIENT_ACL)
    acl: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "project": self.project,
            "backend": self.backend,
            "path": self.path,
            "size_bytes": self.size_bytes,
            "used_bytes": self.used_bytes,
            "state": str(self.state),
        }


@dataclass(frozen=True)
class ExportRule:
    """Who may mount one project's home, and how."""

    project: str
    path: str
    clients: tuple[str, ...]  # sorted, unique
    options: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "project": self.project,
            "path": self.path,
            "clients": list(self.clients),
            "options": list(self.options),
        }


def home_path(export_base: str, project: str) -> str:
    """Where a project's home is, on the NFS server: ``<export_base>/<project>`` (the one rule)."""
    return f"{export_base.rstrip('/')}/{project}"
