"""The exports module: who may mount which home, decided from the directory, applied per server.

``desired`` turns an Inventory into ExportRules; an applier (``kernel`` or ``ganesha``, chosen by
``get_applier``) reads what it applied before from its managed files (``store``), and applies a
list of changes, answering per project.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from ..config import Config, ExportServer, FsalChoice, GaneshaMode
from ..errors import ConfigError
from ..model import ExportRule, Finding

if TYPE_CHECKING:  # backends imports this package (ganesha.Fsal): no import cycle at run time
    from backends import VolumeBackend


class ExportAction(enum.StrEnum):
    """What a plan does to one project's export (the values are the JSON's, docs/json.md)."""

    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"
    UNCHANGED = "unchanged"
    BLOCKED = "blocked"  # something homevol does not own is in the way


@dataclass(frozen=True)
class HeadRepair:
    """One head whose live export differs from the export set: push the set's block to it
    (``export_id`` is the id the head serves the home under now; None: it does not serve it)."""

    head: str
    export_id: int | None


@dataclass(frozen=True)
class ExportChange:
    project: str
    action: ExportAction
    before: ExportRule | None
    after: ExportRule | None
    reason: str = ""
    # empty: the export set changes and every head hears of it; otherwise the set already says
    # ``after`` (None: has no export) and only these heads are told
    heads: tuple[HeadRepair, ...] = ()

    @property
    def added(self) -> tuple[str, ...]:
        old = set(self.before.clients) if self.before else set()
        return tuple(c for c in (self.after.clients if self.after else ()) if c not in old)

    @property
    def removed(self) -> tuple[str, ...]:
        new = set(self.after.clients) if self.after else set()
        return tuple(c for c in (self.before.clients if self.before else ()) if c not in new)


@dataclass(frozen=True)
class ApplyResult:
    project: str
    action: str
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"project": self.project, "action": self.action, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class LiveExport:
    """One export as a running server reports it."""

    export_id: int  # 0 where the server has no ids (the kernel)
    path: str  # the home's path where homevol knows the export, else the server's own
    clients: tuple[str, ...]


@dataclass(frozen=True)
class HeadState:
    """What one running server exports, read once; ``error``: it could not be asked."""

    head: str
    exports: dict[str, LiveExport] = field(default_factory=dict)  # path → export
    error: str | None = None

    def clients(self) -> dict[str, tuple[str, ...]]:
        return {path: export.clients for path, export in self.exports.items()}


@dataclass
class AppliedState:
    """What an applier applied before, read back from what it owns."""

    rules: dict[str, ExportRule]
    drifted: set[str] = field(default_factory=set)  # owned but hand-edited: rewrite
    unconfirmed: set[str] = field(default_factory=set)  # written, maybe not loaded: re-apply
    missing: str | None = None  # where the applier keeps its exports, when that does not exist
    blocked: dict[str, str] = field(default_factory=dict)  # project → why homevol cannot write
    findings: list[Finding] = field(default_factory=list)
    # exports the applier found but does not own (a foreign file, a live export): where → paths
    foreign: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # only the named projects' files were read (a hook): ``rules`` hold no other project, so
    # their client total is not known; the service reads it when the removal guard needs it
    partial: bool = False

    @property
    def clients(self) -> int:
        """The clients exported now, over the projects read."""
        return sum(len(r.clients) for r in self.rules.values())


class Applier(Protocol):
    name: str

    def applied(self, projects: frozenset[str] | None = None) -> AppliedState:
        """What homevol applied before, read back from what it owns: everything, or where the
        applier can (``partial``), only the files of ``projects``."""
        ...

    def apply(self, changes: list[ExportChange]) -> list[ApplyResult]:
        """Apply the changes; one result per project."""
        ...

    def missing_tool(self) -> str | None:
        """Why this machine cannot apply exports this way, or None."""
        ...

    def heads(self) -> list[str]:
        """The running servers that serve these exports (Ganesha heads; one for the kernel)."""
        ...

    @property
    def repairs_heads(self) -> bool:
        """The running heads are read at observe, and a head that differs from the set is repaired."""
        ...

    def read_heads(self, paths: frozenset[str] | None = None) -> list[HeadState]:
        """What every running server really exports, each asked once (for verify, offboard and
        the head repair): every export, or only those at ``paths`` (where the server can tell
        them apart without reading the others). A server that does not answer is a HeadState
        with its ``error``, never an exception."""
        ...

    def close(self) -> None:
        """Release what the applier holds open (a RADOS handle)."""
        ...


_Choice = TypeVar("_Choice", bound=enum.StrEnum)


def _choice(kind: type[_Choice], value: str, key: str) -> _Choice:
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(key, f"{value!r} is not one of {', '.join(kind)}") from None


def get_applier(cfg: Config, backend: VolumeBackend) -> Applier:
    """The applier ``exports.server`` names; Ganesha's direct FSAL only where the backend has
    one (``Capability.DIRECT_FSAL``)."""
    if _choice(ExportServer, cfg.exports.server, "exports.server") is ExportServer.KERNEL:
        from .kernel import KernelExports

        return KernelExports(cfg.exports.kernel)
    from backends import Capability

    from .ganesha import GaneshaExports

    ganesha = cfg.exports.ganesha
    _choice(GaneshaMode, ganesha.mode, "exports.ganesha.mode")
    if _choice(FsalChoice, ganesha.fsal, "exports.ganesha.fsal") is FsalChoice.VFS:
        return GaneshaExports(ganesha)
    if Capability.DIRECT_FSAL not in backend.capabilities:
        raise ConfigError("exports.ganesha.fsal", f"the {backend.name} backend has no direct FSAL; use vfs")
    return GaneshaExports(ganesha, backend.ganesha_fsal)
