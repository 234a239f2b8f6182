"""The exports module: who may mount which home, decided from the directory, applied per server.

``desired`` turns an Inventory into ExportRules; an applier (``kernel``) reads what it applied
before, and applies a list of changes, answering per project.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from ..model import ExportRule, Finding


class ExportAction(enum.StrEnum):
    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"
    UNCHANGED = "unchanged"
    BLOCKED = "blocked"  # homevol may not write there (a foreign file has the project's name)


@dataclass(frozen=True)
class ExportChange:
    project: str
    action: ExportAction
    before: ExportRule | None
    after: ExportRule | None
    reason: str = ""

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


@dataclass
class AppliedState:
    """What an applier applied before, read back from what it owns."""

    rules: dict[str, ExportRule]
    drifted: set[str] = field(default_factory=set)  # owned but hand-edited: rewrite
    blocked: dict[str, str] = field(default_factory=dict)  # project → why homevol cannot write
    findings: list[Finding] = field(default_factory=list)
    # exports the applier found but does not own (a foreign file, a live export): where → paths
    foreign: dict[str, tuple[str, ...]] = field(default_factory=dict)


class Applier(Protocol):
    name: str

    def applied(self) -> AppliedState:
        """What homevol applied before, read back from what it owns."""
        ...

    def apply(self, changes: list[ExportChange]) -> list[ApplyResult]:
        """Apply the changes; one result per project."""
        ...

    def missing_tool(self) -> str | None:
        """Why this machine cannot apply exports this way, or None."""
        ...

    def live(self) -> dict[str, tuple[str, ...]]:
        """Path → clients, as the running NFS server really exports them (for verify)."""
        ...
