"""Observe: the world as it is, each source read once, for all projects or a few.

``observe`` is the only place that reads the outside for a run: the directory (inventory),
the backend's volumes in scope (with usage when asked), what the exports server applied, the
mounts under the export base, each mounted home's unit file and, with several Ganesha heads on
one export set, what each head really serves (one read per head). Everything after it (the plan,
the guards, the audit) is a pure function of the ``World`` it returns.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from backends import Capability, VolumeBackend

from . import guards
from .config import ClientMode, Config
from .directory import Snapshot, read_snapshot
from .errors import HomevolError
from .exports import AppliedState, Applier, HeadState
from .inventory import build_inventory
from .model import Finding, Inventory, Volume, VolumeState, home_path
from .names import parse_networks
from .placement import (
    MOUNTINFO,
    MountCheck,
    MountPlan,
    MountState,
    Placement,
    check_mount,
    read_mounts,
    unit_name,
)
from .progress import progress


@dataclass(frozen=True)
class Scope:
    """Which projects a run may look at and touch: all (None) or a named few."""

    projects: frozenset[str] | None = None

    @classmethod
    def of(cls, names: Iterable[str]) -> Scope:
        return cls(frozenset(names))

    def covers(self, project: str) -> bool:
        return self.projects is None or project in self.projects

    @property
    def everything(self) -> bool:
        return self.projects is None


class DirectoryNeed(enum.Enum):
    """How much a command needs the directory: a failure is fatal, noted, or never asked."""

    REQUIRED = "required"  # sync, onboard, exports, audit: a failed read stops the run (exit 3)
    NETGROUPS = "netgroups"  # offboard/purge in netgroup mode: read if it answers, else a note
    NONE = "none"  # retiring and resizing need no directory, so they work while it is down


@dataclass(frozen=True)
class Placed:
    """How one volume sits at its home: the backend's mount plan, the mountinfo check, the unit."""

    plan: MountPlan | None
    check: MountCheck
    unit: str | None = None  # the text of the home's .mount unit file; None: there is none
    enabled: bool | None = None  # is that unit enabled (systemd mounts only; None: not asked)


@dataclass
class World:
    scope: Scope
    inventory: Inventory | None  # None: the command did not read the directory
    source: str
    searches: int = 0
    operations: int = 0
    volumes: dict[str, Volume] = field(default_factory=dict)  # owned, any state, in scope
    backend_findings: list[Finding] = field(default_factory=list)
    applied: AppliedState = field(default_factory=lambda: AppliedState(rules={}))
    placed: dict[str, Placed] = field(default_factory=dict)  # volumes in scope, by project
    notes: list[str] = field(default_factory=list)
    # what each running head serves, read once (None: not read; only where the applier
    # repairs heads that drift from a shared export set)
    heads: list[HeadState] | None = None

    def in_scope(self) -> World:
        """This world with only the volumes in scope: a backend that cannot read a scope alone
        may hand more, and nothing outside the scope is ever planned."""
        if self.scope.everything:
            return self
        return replace(self, volumes={p: v for p, v in self.volumes.items() if self.scope.covers(p)},
                       placed={p: v for p, v in self.placed.items() if self.scope.covers(p)})

    @property
    def findings(self) -> list[Finding]:
        """What the sources said on the way, in scope (a finding about nobody is always in)."""
        found = [*(self.inventory.findings if self.inventory else ()), *self.backend_findings,
                 *self.applied.findings]
        return [f for f in found if f.project is None or self.scope.covers(f.project)]


def read_directory(cfg: Config, scope: Scope | None = None) -> tuple[Snapshot, Inventory]:
    """The directory, judged; a failed or empty read raises (DirectoryError/GuardRefused: exit 3).

    A named scope reads only what bears on its projects (where the source can): the same
    judgement of those projects as a full read, at the cost of their own entries."""
    snapshot = read_snapshot(cfg, scope.projects if scope else None)
    guards.check_snapshot(snapshot, cfg.directory.allow_empty)
    networks = parse_networks(cfg.exports.extra_client_networks)
    return snapshot, build_inventory(snapshot, networks, cfg.exports.clients)


def observe(cfg: Config, backend: VolumeBackend, applier: Applier, scope: Scope, *,
            need: DirectoryNeed = DirectoryNeed.REQUIRED, usage: bool = False,
            directory: tuple[Snapshot, Inventory] | None = None,
            mountinfo: str = MOUNTINFO, placement: Placement | None = None,
            every_export: bool = False) -> World:
    """Read every source once for ``scope``; ``directory`` reuses a read the caller already made.
    Only the scope's exports files are read unless ``every_export`` (the audit reports foreign
    files whatever they are named)."""
    world = _observe_directory(cfg, need, directory, scope)
    world.scope = scope
    volumes, world.backend_findings = backend.list(scope.projects)
    if usage:
        volumes = [replace(v, used_bytes=backend.usage(v)) for v in progress(volumes, "usage")]
    world.volumes = {v.project: v for v in volumes}
    world.applied = applier.applied(None if every_export else scope.projects)
    if applier.repairs_heads:
        world.heads = applier.read_heads(None if scope.projects is None else frozenset(
            home_path(cfg.export_base, p) for p in scope.projects))
    world.placed = _observe_placement(cfg, backend, volumes, mountinfo)
    if placement is not None:
        world.placed = _with_enabled(world.placed, placement)
    return world


def _observe_directory(cfg: Config, need: DirectoryNeed,
                       directory: tuple[Snapshot, Inventory] | None, scope: Scope) -> World:
    if need is DirectoryNeed.NONE or (need is DirectoryNeed.NETGROUPS
                                      and cfg.exports.clients != ClientMode.NETGROUP):
        return World(Scope(), None, "(directory not needed)")
    try:
        snapshot, inventory = directory or read_directory(cfg, scope)
    except HomevolError as exc:
        if need is DirectoryNeed.REQUIRED:
            raise
        world = World(Scope(), None, "(directory not needed)")
        world.notes.append(f"netgroup left for the next sync ({exc})")
        return world
    if need is DirectoryNeed.NETGROUPS:  # only the netgroups: retiring judges no hosts
        inventory = Inventory(projects={}, hosts={}, netgroups=inventory.netgroups)
    return World(Scope(), inventory, snapshot.source, snapshot.searches, snapshot.operations)


def _observe_placement(cfg: Config, backend: VolumeBackend, volumes: list[Volume],
                       mountinfo: str) -> dict[str, Placed]:
    """mountinfo is read once; a mounting backend's plan (and unit) per volume that needs one."""
    mounts = read_mounts(cfg.export_base, mountinfo)
    units = Path(cfg.placement.units_dir)
    mounting = Capability.MOUNTS in backend.capabilities
    placed = {}
    for volume in volumes:
        target = home_path(cfg.export_base, volume.project)
        if mounting and volume.state == VolumeState.CREATING:  # nothing to mount until finished
            placed[volume.project] = Placed(None, MountCheck(MountState.NOT_MOUNTED, target,
                                                             detail="the volume is not finished"))
            continue
        plan = backend.mount_plan(volume) if mounting else None
        check = check_mount(volume, target, plan.spec if plan else None, mounts)
        placed[volume.project] = Placed(plan, check, _read_unit(units / unit_name(target))
                                        if mounting else None)
    return placed


def _with_enabled(placed: dict[str, Placed], placement: Placement) -> dict[str, Placed]:
    """Where systemd mounts the homes, whether each unit homevol wrote is still enabled: a unit
    disabled by hand leaves the home mounted now and missing after the next boot. One call."""
    names = {p: unit_name(x.check.target) for p, x in placed.items() if x.unit is not None}
    enabled = placement.enabled_units(sorted(names.values()))
    if enabled is None:
        return placed
    return {p: replace(x, enabled=names[p] in enabled) if p in names else x
            for p, x in placed.items()}


def _read_unit(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
