"""Desired vs applied → a Plan: the volumes to create and the export changes, per project.

A pure function of its inputs: no I/O, so every rule about what changes is unit-tested here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .exports import AppliedState, ExportChange
from .model import ExportRule, Finding
from .netgroup import NetgroupChange


@dataclass(frozen=True)
class VolumeAction:
    project: str
    action: str  # create | retire | purge
    size_bytes: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"project": self.project, "action": self.action, "size_bytes": self.size_bytes,
                "reason": self.reason}


@dataclass
class Plan:
    volumes: list[VolumeAction] = field(default_factory=list)
    exports: list[ExportChange] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    netgroups: list[NetgroupChange] = field(default_factory=list)  # netgroup mode only
    exported_clients: int = 0  # clients applied before this plan, across all projects

    @property
    def changes(self) -> list[ExportChange]:
        return [c for c in self.exports if c.action != "unchanged"]

    def removed_clients(self, exempt: Iterable[str] = ()) -> int:
        skip = set(exempt)
        return sum(len(c.removed) for c in self.exports if c.project not in skip)

    @property
    def empty(self) -> bool:
        return not self.volumes and not self.changes and not self.netgroups


def plan_exports(
    desired: dict[str, tuple[ExportRule | None, str]],
    applied: AppliedState,
    scope: set[str] | None = None,
) -> list[ExportChange]:
    """One change per project that is, or should be, exported; ``desired`` maps project →
    (rule or None, why there is none)."""
    changes = []
    for project in sorted(set(desired) | set(applied.rules)):
        if scope is not None and project not in scope:
            continue
        want, why = desired.get(project, (None, "volume retired or not homevol's"))
        have = applied.rules.get(project)
        if want is None and have is None:
            continue
        if project in applied.blocked:
            changes.append(ExportChange(project, "blocked", have, want, applied.blocked[project]))
        elif have is None:
            changes.append(ExportChange(project, "add", None, want))
        elif want is None:
            changes.append(ExportChange(project, "remove", have, None, why))
        elif want == have and project not in applied.drifted:
            changes.append(ExportChange(project, "unchanged", have, want))
        else:
            reason = "hand-edited file" if project in applied.drifted else ""
            changes.append(ExportChange(project, "update", have, want, reason))
    return changes
