"""Plan: ``make_plan(world, intent, policy)`` decides every change, and is the only place that does.

A pure function (no I/O): from what was observed (``World``), what the command asks
(``Intent``) and the settings that shape the answer (``Policy``), it returns a ``Plan`` holding
every change kind: volume create/finish/activate/resize/retire/purge, mount/unit/unmount, the
backend's own client list (Gluster ``auth.allow``), export add/update/remove and netgroups. The
dry run prints it, the guards judge it, the executor applies it and the audit renders it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .config import ClientMode, ExportsConfig, Onboard
from .exports import AppliedState, ExportAction, ExportChange, HeadRepair, HeadState
from .exports.desired import clients_for, export_rule
from .model import ExportRule, Finding, Inventory, Volume, VolumeState, home_path
from .names import is_project_name
from .netgroup import NetgroupChange, plan_netgroups
from .placement import MountState, render_unit
from .sizes import format_size
from .world import Placed, Scope, World


class Command(enum.StrEnum):
    SYNC = "sync"
    EXPORTS = "exports"
    ONBOARD = "onboard"
    OFFBOARD = "offboard"
    PURGE = "purge"
    RESIZE = "resize"


@dataclass(frozen=True)
class Intent:
    """What the command asks for; ``projects`` are the ones it names (onboard P, purge P, ...)."""

    command: Command
    projects: frozenset[str] = frozenset()
    size_bytes: int | None = None  # onboard --size, resize SIZE
    adopt: bool = False  # onboard --adopt: take over a volume homevol did not make
    shrink: bool = False  # resize --force: a size below usage
    retain_snapshots: bool = False  # purge --retain-snapshots

    @property
    def destructive(self) -> bool:
        return self.command in (Command.OFFBOARD, Command.PURGE)


@dataclass(frozen=True)
class Policy:
    """The settings the plan depends on (from the config and the backend's declared traits)."""

    export_base: str
    exports: ExportsConfig
    onboard: Onboard
    default_size: int
    netgroup_base: str
    mounts: bool  # the backend mounts each volume at its home (Capability.MOUNTS)
    acl_for: Callable[[Sequence[str]], str] | None = None  # Capability.CLIENT_ACL
    acl_name: str = "client list"


class Step(enum.StrEnum):
    """A volume-side step; the executor runs them in the order of ``executor.PHASES``."""

    CREATE = "create"
    FINISH = "finish"  # a half-made volume (an interrupted create) is completed
    ACTIVATE = "activate"  # a retired volume is made active again (onboard)
    RESIZE = "resize"
    RETIRE = "retire"
    MOUNT = "mount"
    UNIT = "unit"  # the home is mounted, but its .mount unit is missing or stale
    CLIENTS = "clients"  # the volume's own client list (auth.allow)
    UNMOUNT = "unmount"
    PURGE = "purge"


@dataclass(frozen=True)
class VolumeAction:
    project: str
    action: Step
    size_bytes: int | None = None
    reason: str = ""
    value: str | None = None  # CLIENTS: the client list to set

    def to_dict(self) -> dict[str, object]:
        return {"project": self.project, "action": str(self.action), "size_bytes": self.size_bytes,
                "reason": self.reason, "value": self.value}


@dataclass
class Plan:
    volumes: list[VolumeAction] = field(default_factory=list)
    exports: list[ExportChange] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    netgroups: list[NetgroupChange] = field(default_factory=list)  # netgroup mode only
    exported_clients: int = 0  # clients applied before this plan, across all projects
    gids: dict[str, int | None] = field(default_factory=dict)  # for creates: the project's gid

    @property
    def changes(self) -> list[ExportChange]:
        return [c for c in self.exports if c.action != ExportAction.UNCHANGED]

    def removed_clients(self, exempt: Iterable[str] = ()) -> int:
        skip = set(exempt)
        return sum(len(c.removed) for c in self.exports if c.project not in skip)

    def steps(self, *kinds: Step) -> list[VolumeAction]:
        return [a for a in self.volumes if a.action in kinds]

    @property
    def empty(self) -> bool:
        return not self.volumes and not self.changes and not self.netgroups


Desired = dict[str, tuple[ExportRule | None, str]]  # project → (rule, or None and why not)


def make_plan(world: World, intent: Intent, policy: Policy) -> Plan:
    world = world.in_scope()
    lifecycle = _lifecycle_steps(world, intent, policy)
    after = _states_after(world.volumes, lifecycle)
    desired = desired_exports(world.inventory, after, policy) if world.inventory is not None \
        else _kept(world.applied, after)
    plan = Plan(volumes=[*lifecycle, *_placement_steps(world, after, lifecycle, policy),
                         *_acl_steps(world, after, policy)],
                exports=plan_heads(plan_exports(desired, world.applied, world.scope),
                                   world.heads or [], world.applied, world.scope, policy),
                findings=[*world.findings, *_orphans(world)],
                exported_clients=world.applied.clients)
    inventory = world.inventory
    if inventory is not None and inventory.netgroups is not None:
        exported = {project for project, (rule, _) in desired.items() if rule is not None}
        plan.netgroups = plan_netgroups(inventory, exported, policy.exports.netgroup_prefix,
                                        policy.netgroup_base, world.scope.projects)
    if inventory is not None:
        plan.gids = {a.project: inventory.projects[a.project].gid for a in lifecycle
                     if a.project in inventory.projects}
    return plan


# ----- the volume's lifecycle ----------------------------------------------------------------

def _lifecycle_steps(world: World, intent: Intent, policy: Policy) -> list[VolumeAction]:
    if intent.command is Command.SYNC:
        return [*_sync_creates(world, policy), *_finishes(world, policy)]
    if intent.command is Command.EXPORTS:
        return []
    steps = []
    for project in sorted(intent.projects):
        steps += _named_steps(project, world.volumes.get(project), intent, policy)
    return steps


def _sync_creates(world: World, policy: Policy) -> list[VolumeAction]:
    if world.inventory is None or policy.onboard is Onboard.NONE:
        return []
    return [VolumeAction(name, Step.CREATE, policy.default_size)
            for name, project in sorted(world.inventory.projects.items())
            if name not in world.volumes and world.scope.covers(name)
            and (policy.onboard is Onboard.ALL or project.wants_home)]


def _finishes(world: World, policy: Policy) -> list[VolumeAction]:
    """A half-made volume of a project in the directory is finished (and then exported)."""
    projects = world.inventory.projects if world.inventory else {}
    return [VolumeAction(v.project, Step.FINISH, v.size_bytes or policy.default_size,
                         "an interrupted create")
            for v in sorted(world.volumes.values(), key=lambda v: v.project)
            if v.state == VolumeState.CREATING and v.project in projects]


def _named_steps(project: str, volume: Volume | None, intent: Intent, policy: Policy
                 ) -> list[VolumeAction]:
    state = volume.state if volume else None
    if intent.command is Command.ONBOARD:
        size = intent.size_bytes or (volume.size_bytes if volume else None) or policy.default_size
        if volume is None:
            return [VolumeAction(project, Step.CREATE, size, "adopt" if intent.adopt else "")]
        if state == VolumeState.CREATING:
            return [VolumeAction(project, Step.FINISH, size, "an interrupted create")]
        if state == VolumeState.RETIRED:
            return [VolumeAction(project, Step.ACTIVATE, size, "was retired")]
        return []
    if intent.command is Command.RESIZE:
        return [VolumeAction(project, Step.RESIZE, intent.size_bytes,
                             f"from {format_size(volume.size_bytes)}" if volume else "")]
    steps = []
    if state in (VolumeState.ACTIVE, VolumeState.CREATING):
        steps.append(VolumeAction(project, Step.RETIRE, reason="data kept"))
    if intent.command is Command.PURGE:
        steps.append(VolumeAction(project, Step.PURGE, reason="data deleted" if volume else
                                  "no volume (finishes an interrupted purge, if any)"))
    return steps


def _states_after(volumes: dict[str, Volume], steps: list[VolumeAction]) -> dict[str, VolumeState]:
    after = {p: v.state for p, v in volumes.items()}
    for step in steps:
        if step.action in (Step.CREATE, Step.FINISH, Step.ACTIVATE):
            after[step.project] = VolumeState.ACTIVE
        elif step.action is Step.RETIRE:
            after[step.project] = VolumeState.RETIRED
        elif step.action is Step.PURGE:
            after.pop(step.project, None)
    return after


# ----- placement: each active volume mounted at its home, nothing else -----------------------

_REMOUNT = (MountState.NOT_MOUNTED, MountState.WRONG_SOURCE)


def _placement_steps(world: World, after: dict[str, VolumeState], lifecycle: list[VolumeAction],
                     policy: Policy) -> list[VolumeAction]:
    if not policy.mounts:
        return []
    made = {a.project: a.action for a in lifecycle if a.action in (Step.CREATE, Step.FINISH)}
    steps = []
    for project in sorted(set(after) | set(world.placed)):
        placed = world.placed.get(project)
        state = after.get(project)
        if project in made:
            steps.append(VolumeAction(project, Step.MOUNT, reason=f"after {made[project]}"))
        elif placed is None:
            continue
        elif state == VolumeState.ACTIVE and placed.check.state in _REMOUNT:
            steps.append(VolumeAction(project, Step.MOUNT, reason=placed.check.detail
                                      or str(placed.check.state)))
        elif state == VolumeState.ACTIVE and placed.plan is not None \
                and placed.check.state == MountState.MOUNTED \
                and (placed.unit != render_unit(project, placed.check.target, placed.plan)
                     or placed.enabled is False):
            steps.append(VolumeAction(project, Step.UNIT, reason=_unit_problem(project, placed)))
        elif state != VolumeState.ACTIVE and (placed.check.state != MountState.NOT_MOUNTED
                                              or placed.unit is not None):
            why = "still mounted" if placed.check.state != MountState.NOT_MOUNTED else "unit left"
            steps.append(VolumeAction(project, Step.UNMOUNT, reason=f"{state or 'purged'}, {why}"))
    return steps


def _unit_problem(project: str, placed: Placed) -> str:
    if placed.unit is None:
        return "missing"
    if placed.plan is not None and placed.unit != render_unit(project, placed.check.target, placed.plan):
        return "differs from what homevol writes"
    return "disabled: the home would not be mounted at the next boot"


# ----- the backend's own client list (Gluster auth.allow) ------------------------------------

def _acl_steps(world: World, after: dict[str, VolumeState], policy: Policy) -> list[VolumeAction]:
    if policy.acl_for is None:
        return []
    by_address = dataclasses.replace(policy.exports, clients=ClientMode.ADDRESS)
    inventory = world.inventory
    steps = []
    for project in sorted(after):
        volume = world.volumes.get(project)
        if inventory is None and after[project] == VolumeState.ACTIVE:
            continue  # without the directory an active volume keeps its clients
        wanted = after[project] == VolumeState.ACTIVE and inventory is not None \
            and project in inventory.projects
        addresses = clients_for(inventory, project, by_address) if wanted and inventory else ()
        value = policy.acl_for(addresses)
        have = volume.acl if volume is not None else None
        if have != value:
            was = f"was {have}" if have is not None else "new volume"
            steps.append(VolumeAction(project, Step.CLIENTS, reason=f"{policy.acl_name} {value} "
                                      f"({was})", value=value))
    return steps


# ----- exports ---------------------------------------------------------------------------------

def desired_exports(inventory: Inventory | None, after: dict[str, VolumeState], policy: Policy
                    ) -> Desired:
    """The export every volume that will be active should have (or None, and why not)."""
    wanted: Desired = {}
    for project, state in after.items():
        if state != VolumeState.ACTIVE:
            continue
        if inventory is None or project not in inventory.projects:
            wanted[project] = (None, "project not in the directory")
            continue
        rule = export_rule(inventory, project, home_path(policy.export_base, project), policy.exports)
        wanted[project] = (rule, "" if rule else "no clients in the directory")
    return wanted


def _kept(applied: AppliedState, after: dict[str, VolumeState]) -> Desired:
    """Without the directory (offboard, purge, resize) an active home keeps the export it has:
    only a volume that leaves the active state loses its export."""
    return {p: (applied.rules.get(p), "directory not read") for p, state in after.items()
            if state == VolumeState.ACTIVE}


def plan_exports(desired: Desired, applied: AppliedState, scope: Scope | None = None) -> list[ExportChange]:
    """One change per project in scope that is, or should be, exported."""
    changes = []
    for project in sorted(set(desired) | set(applied.rules) | set(applied.blocked)
                          | applied.unconfirmed):
        if scope is not None and not scope.covers(project):
            continue
        want, why = desired.get(project, (None, "volume retired or not homevol's"))
        have = applied.rules.get(project)
        if want is None and have is None:
            if project in applied.unconfirmed:  # its removal was never loaded: reload it
                changes.append(ExportChange(project, ExportAction.REMOVE, None, None,
                                            _update_reason(project, True, applied)))
            continue
        if project in applied.blocked:
            changes.append(ExportChange(project, ExportAction.BLOCKED, have, want,
                                        applied.blocked[project]))
        elif have is None:
            changes.append(ExportChange(project, ExportAction.ADD, None, want))
        elif want is None:
            changes.append(ExportChange(project, ExportAction.REMOVE, have, None, why))
        elif want == have and project not in applied.drifted | applied.unconfirmed:
            changes.append(ExportChange(project, ExportAction.UNCHANGED, have, want))
        else:
            changes.append(ExportChange(project, ExportAction.UPDATE, have, want,
                                        _update_reason(project, want == have, applied)))
    return changes


def plan_heads(changes: list[ExportChange], heads: list[HeadState], applied: AppliedState,
               scope: Scope, policy: Policy) -> list[ExportChange]:
    """The set's changes, with the heads that drifted from an unchanged set repaired.

    A change of the set reaches every head anyway. Where the set already says what the
    directory asks, a head that serves the export to other clients, or not at all (it missed a
    DBus update, or was changed by hand), gets the set's block again; a head still serving a
    home the set has no export for (at an id homevol could have given) loses it. A head that
    could not be read is compared with nothing: it is never a reason to change the set."""
    readable = [h for h in heads if h.error is None]
    if not readable:
        return changes
    result, planned = [], {c.project for c in changes}
    for change in changes:
        rule = change.after
        if change.action != ExportAction.UNCHANGED or rule is None:
            result.append(change)
            continue
        repairs = tuple(HeadRepair(h.head, live.export_id if live else None) for h in readable
                        if (live := h.exports.get(rule.path)) is None
                        or set(live.clients) != set(rule.clients))
        if not repairs:
            result.append(change)
            continue
        result.append(dataclasses.replace(change, action=ExportAction.UPDATE, heads=repairs,
                                          reason=_drift_reason(repairs, rule, readable)))
    result += _stray(readable, applied, scope, policy, planned)
    return sorted(result, key=lambda c: c.project)


def _drift_reason(repairs: tuple[HeadRepair, ...], rule: ExportRule, heads: list[HeadState]) -> str:
    by_head = {h.head: h for h in heads}
    said = []
    for repair in repairs:
        live = by_head[repair.head].exports.get(rule.path)
        if live is None:
            said.append(f"head {repair.head} does not serve it")
            continue
        extra = sorted(set(live.clients) - set(rule.clients))
        missing = sorted(set(rule.clients) - set(live.clients))
        delta = " ".join([*(f"+{c}" for c in extra), *(f"-{c}" for c in missing)])
        said.append(f"head {repair.head} differs ({delta})")
    return "; ".join(said) + ": the set's export pushed to that head only"


def _stray(heads: list[HeadState], applied: AppliedState, scope: Scope, policy: Policy,
           planned: set[str]) -> list[ExportChange]:
    """Homes a head serves that the set has no export for, nor any change: removed from that
    head. Only a home's own path, in scope, at an id homevol could have given; never a
    project the set has something for (a foreign or newer object blocks it)."""
    lowest = policy.exports.ganesha.export_id_min
    base = policy.export_base.rstrip("/") + "/"
    foreign = {path for paths in applied.foreign.values() for path in paths}
    found: dict[str, tuple[list[HeadRepair], set[str], str]] = {}
    for head in heads:
        for path, live in sorted(head.exports.items()):
            project = path[len(base):] if path.startswith(base) else ""
            if not is_project_name(project) or home_path(policy.export_base, project) != path \
                    or not scope.covers(project) or live.export_id < lowest or path in foreign \
                    or project in planned or project in applied.rules or project in applied.blocked:
                continue
            repairs, clients, _ = found.setdefault(project, ([], set(), path))
            repairs.append(HeadRepair(head.head, live.export_id))
            clients.update(live.clients)
    return [ExportChange(project, ExportAction.REMOVE, ExportRule(project, path, tuple(sorted(clients)), ()),
                         None, f"served by {', '.join(r.head for r in repairs)} but not in the export set: "
                         "removed from that head only", tuple(repairs))
            for project, (repairs, clients, path) in sorted(found.items())]


def _update_reason(project: str, same: bool, applied: AppliedState) -> str:
    if project in applied.drifted:
        return "hand-edited file"
    return "not loaded by the server yet (an earlier run stopped before its reload)" if same else ""


def _orphans(world: World) -> list[Finding]:
    """Active volumes whose project left the directory: not exported, data kept."""
    inventory = world.inventory
    if inventory is None or not inventory.has_projects:  # only an orphan when the directory was read
        return []
    return [Finding("volume-without-project", f"{v.path}: project {v.project} is not in the "
                    "directory; not exported, data kept (purge deletes it)", project=v.project)
            for v in sorted(world.volumes.values(), key=lambda v: v.project)
            if v.project not in inventory.projects and v.state == VolumeState.ACTIVE]
