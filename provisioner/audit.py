"""``homevol audit``: the plan a sync would make, rendered as findings, with the facts around it.

Read-only and one judge, not two: the audit observes the same world as ``sync`` (the directory,
the backend's volumes with their usage, the mounts, the applied exports) and asks
``make_plan`` what a sync would change. Every step of that plan becomes a finding
(``STEP_FINDINGS`` says which kinds each step kind yields), and the facts that no sync changes
(an orphaned volume, usage above the threshold, a foreign exports file, the directory's own
findings) are added with the fix an operator would apply. Nothing is locked or written, except
the node_exporter textfile when one is asked for (``audit_output``).

The finding kinds, their severities and fixes are documented in docs/audit.md.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import InvalidInput
from .exports import AppliedState, ExportAction, ExportChange
from .model import Finding, Inventory, Severity, Volume, VolumeState, at_least, home_path
from .names import project_name_problem
from .netgroup import NetgroupAction, NetgroupChange
from .placement import MOUNTINFO, MountCheck, MountState
from .plan import Command, Intent, Onboard, Plan, Policy, Step, VolumeAction, make_plan
from .service import Homevol
from .sizes import format_size
from .world import Scope, World, observe

INFO, WARNING, ERROR = Severity.INFO, Severity.WARNING, Severity.ERROR

# the finding kinds each plan step kind of a sync yields (tests/unit/test_audit_coverage.py)
STEP_FINDINGS: dict[str, frozenset[str]] = {
    Step.CREATE: frozenset({"project-without-volume"}),
    Step.FINISH: frozenset({"volume-half-created"}),
    Step.MOUNT: frozenset({"volume-not-mounted", "volume-wrong-mount"}),
    Step.UNIT: frozenset({"mount-unit-drift"}),
    Step.CLIENTS: frozenset({"volume-clients-drift"}),
    Step.UNMOUNT: frozenset({"retired-volume-mounted"}),
    ExportAction.ADD: frozenset({"export-missing"}),
    ExportAction.UPDATE: frozenset({"clients-missing", "clients-extra", "export-options-drift",
                                    "export-for-unowned-path", "hand-edited-exports-file",
                                    "exports-not-loaded", "head-drift"}),
    ExportAction.REMOVE: frozenset({"export-of-retired-volume", "export-for-unowned-path",
                                    "clients-extra", "exports-not-loaded", "head-drift"}),
    "netgroup": frozenset({"netgroup-drift"}),
}
# what the audit reports that no sync step changes (the facts), beside the sources' own findings
FACT_KINDS = frozenset({"project-without-volume", "volume-without-project", "volume-not-mounted",
                        "volume-wrong-mount", "usage-above-threshold", "export-for-unowned-path",
                        "foreign-export-of-volume"})
# steps only a named command makes (onboard P, offboard P, purge P, resize P): never a sync's
COMMAND_ONLY_STEPS = frozenset({Step.ACTIVATE, Step.RESIZE, Step.RETIRE, Step.PURGE})


@dataclass
class ProjectAudit:
    project: str
    in_directory: bool
    volume: Volume | None = None
    mount: MountCheck | None = None
    mounting: bool = False  # the backend mounts the volume (placement): sync repairs the mount
    export: str = "none"  # exported | missing | drift | blocked | unwanted | none
    export_reason: str = ""
    clients: tuple[str, ...] = ()  # applied
    expected: tuple[str, ...] = ()  # from the directory
    findings: list[Finding] = field(default_factory=list)

    @property
    def used_percent(self) -> float | None:
        v = self.volume
        if v is None or v.used_bytes is None or not v.size_bytes:
            return None
        return round(100 * v.used_bytes / v.size_bytes, 1)

    def counts(self) -> Counter[str]:
        return Counter(str(f.severity) for f in self.findings)

    def to_dict(self, floor: Severity = Severity.INFO) -> dict[str, Any]:
        v, m = self.volume, self.mount
        have, want = set(self.clients), set(self.expected)
        return {
            "project": self.project,
            "in_directory": self.in_directory,
            "volume": str(v.state) if v else None,
            "backend": v.backend if v else None,
            "path": v.path if v else None,
            "size_bytes": v.size_bytes if v else None,
            "used_bytes": v.used_bytes if v else None,
            "used_percent": self.used_percent,
            "mount": str(m.state) if m else None,
            "mount_source": (m.source or None) if m else None,
            "mount_fstype": (m.fstype or None) if m else None,
            "export": self.export,
            "export_reason": self.export_reason,
            "clients": len(self.clients),
            "expected_clients": len(self.expected),
            "missing_clients": [c for c in self.expected if c not in have],
            "extra_clients": [c for c in self.clients if c not in want],
            "findings": [f.to_dict() for f in at_least(self.findings, floor)],
        }


@dataclass
class AuditReport:
    source: str
    searches: int
    operations: int
    backend: str
    applier: str
    export_base: str
    usage_warning: float
    projects: list[ProjectAudit]
    findings: list[Finding]  # every finding in scope, those of the rows included
    scope: str | None = None

    @property
    def counts(self) -> Counter[str]:
        return Counter(str(f.severity) for f in self.findings)

    @property
    def drift(self) -> bool:
        return any(f.severity != INFO for f in self.findings)

    def other_findings(self) -> list[Finding]:
        rows = {p.project for p in self.projects}
        return [f for f in self.findings if f.project not in rows]

    def to_dict(self, floor: Severity = Severity.INFO) -> dict[str, Any]:
        """The JSON (docs/json.md): findings below ``floor`` are left out, the counts keep them."""
        counts = self.counts
        return {
            "source": self.source,
            "ldap": {"searches": self.searches, "operations": self.operations},
            "backend": self.backend,
            "exports_applier": self.applier,
            "export_base": self.export_base,
            "usage_warning": self.usage_warning,
            "project": self.scope,
            "projects": [p.to_dict(floor) for p in self.projects],
            "findings": [f.to_dict() for f in at_least(self.findings, floor)],
            "summary": {
                "projects": len(self.projects),
                "volumes": sum(1 for p in self.projects if p.volume is not None),
                "exports": sum(1 for p in self.projects if p.clients),
                "findings": {str(s): counts[str(s)] for s in Severity},
                "drift": self.drift,
            },
        }


# ----- building it -----------------------------------------------------------------------------

def run_audit(service: Homevol, project: str | None = None, mountinfo: str = MOUNTINFO) -> AuditReport:
    if project is not None:
        problem = project_name_problem(project)
        if problem:
            raise InvalidInput(f"invalid project name: {problem}")
    scope = Scope() if project is None else Scope.of([project])
    world = observe(service.cfg, service.backend, service.applier, scope, usage=True,
                    mountinfo=mountinfo, placement=service.placement, every_export=True)
    policy = service.policy()
    plan = make_plan(world, Intent(Command.SYNC), policy)
    assert world.inventory is not None
    known = set(world.inventory.projects) | set(world.volumes) | set(world.applied.rules) \
        | set(world.applied.blocked)
    if project is not None and project not in known:
        raise InvalidInput(f"{project}: not a project in the directory ({world.source}), "
                           "and homevol has no volume or export for it")
    return render(world, plan, policy, sorted(p for p in known if scope.covers(p)),
                  service.cfg.audit.usage_warning, service.backend.name, service.applier.name, project)


def render(world: World, plan: Plan, policy: Policy, names: list[str], usage_warning: float,
           backend: str, applier: str, project: str | None = None) -> AuditReport:
    """The report: one row per project, the plan's steps and the facts as findings (pure)."""
    inventory = world.inventory
    assert inventory is not None
    rows = {name: _row(world, plan, policy, name) for name in names}
    findings = [_with_fix(f, inventory) for f in plan.findings
                if project is None or f.project == project]
    findings += [f for name in names for f in _facts(world, rows[name], policy, usage_warning)]
    findings += [f for step in plan.volumes for f in step_findings(step, world)]
    findings += [f for change in plan.exports for f in export_findings(change, world, policy)]
    findings += [f for change in plan.netgroups for f in netgroup_findings(change)]
    findings += _foreign_findings(world.applied, world.volumes, project)
    findings.sort(key=_order)
    for finding in findings:
        if finding.project in rows:
            rows[finding.project].findings.append(finding)
    return AuditReport(world.source, world.searches, world.operations, backend, applier,
                       policy.export_base, usage_warning, list(rows.values()), findings, project)


def _row(world: World, plan: Plan, policy: Policy, name: str) -> ProjectAudit:
    inventory = world.inventory
    row = ProjectAudit(name, inventory is not None and name in inventory.projects,
                       world.volumes.get(name), mounting=policy.mounts)
    placed = world.placed.get(name)
    row.mount = placed.check if placed is not None else None
    have = world.applied.rules.get(name)
    change = next((c for c in plan.exports if c.project == name), None)
    row.clients = have.clients if have else ()
    row.expected = change.after.clients if change is not None and change.after else ()
    row.export, row.export_reason = _export_state(row, change)
    return row


_EXPORT_STATE = {ExportAction.ADD: "missing", ExportAction.UPDATE: "drift",
                 ExportAction.REMOVE: "unwanted", ExportAction.UNCHANGED: "exported",
                 ExportAction.BLOCKED: "blocked"}


def _export_state(row: ProjectAudit, change: ExportChange | None) -> tuple[str, str]:
    if change is not None:
        return _EXPORT_STATE[change.action], change.reason
    volume = row.volume
    if volume is None:
        return "none", "no volume"
    if volume.state != VolumeState.ACTIVE:
        return "none", f"volume {volume.state}"
    return "none", "project not in the directory" if not row.in_directory else \
        "no clients in the directory"


# ----- each plan step, as the drift it repairs -------------------------------------------------

def _sync(project: str) -> str:
    return f"homevol sync --project {project}"


def step_findings(step: VolumeAction, world: World) -> list[Finding]:
    """What a sync's volume-side step repairs, said as a finding (STEP_FINDINGS)."""
    p = step.project
    placed = world.placed.get(p)
    if step.action is Step.CREATE:
        return [Finding("project-without-volume", f"project {p} has no home volume (sync would "
                        "create it)", project=p, fix=_sync(p))]
    if step.action is Step.FINISH:
        return [Finding("volume-half-created", f"the volume of {p} was left half-made by an "
                        "interrupted create; not exported until it is finished", project=p, fix=_sync(p))]
    half_made = p in world.volumes and world.volumes[p].state == VolumeState.CREATING
    if step.action is Step.MOUNT and placed is not None and not half_made:  # else FINISH says it
        kind = "volume-not-mounted" if placed.check.state == MountState.NOT_MOUNTED \
            else "volume-wrong-mount"
        return [Finding(kind, placed.check.detail, project=p, severity=ERROR, fix=_sync(p))]
    if step.action is Step.UNIT:
        return [Finding("mount-unit-drift", f"the .mount unit of {p}'s home is {step.reason}; "
                        "the home would not come back after a reboot", project=p, fix=_sync(p))]
    if step.action is Step.CLIENTS:
        volume = world.volumes.get(p)
        return [Finding("volume-clients-drift", f"the volume's own client list should be "
                        f"{step.value} (the directory's clients); it is "
                        f"{volume.acl if volume else None}", project=p, fix=_sync(p))]
    if step.action is Step.UNMOUNT:
        return [Finding("retired-volume-mounted", f"the home of {p} is {step.reason}", project=p,
                        fix=f"homevol offboard {p}")]
    return []


def export_findings(change: ExportChange, world: World, policy: Policy) -> list[Finding]:
    p, fix = change.project, _sync(change.project)
    have, want = change.before, change.after
    volume = world.volumes.get(p)
    if change.heads:  # the set is right; a Ganesha head serves something else
        return [Finding("head-drift", change.reason, project=p, severity=ERROR, fix=fix)]
    if change.action == ExportAction.ADD and want is not None and volume is not None \
            and volume.state == VolumeState.ACTIVE:
        return [Finding("export-missing", f"{home_path(policy.export_base, p)} is not exported; "
                        f"{len(want.clients)} clients expected", project=p, severity=ERROR, fix=fix)]
    if have is None or change.action not in (ExportAction.UPDATE, ExportAction.REMOVE):
        return []
    if volume is None or os.path.normpath(have.path or "/") != os.path.normpath(volume.path):
        return [Finding("export-for-unowned-path", f"the export of {p} names {have.path or '(no path)'}"
                        f", which is not {p}'s homevol volume", project=p, severity=ERROR, fix=fix)]
    if volume.state == VolumeState.RETIRED:
        return [Finding("export-of-retired-volume", f"{have.path} is still exported to "
                        f"{len(have.clients)} clients although the volume is retired", project=p,
                        severity=ERROR, fix=fix)]
    return _client_findings(change, fix)


def _client_findings(change: ExportChange, fix: str) -> list[Finding]:
    p, have, want = change.project, change.before, change.after
    assert have is not None
    out = []
    missing = [c for c in want.clients if c not in set(have.clients)] if want else []
    extra = [c for c in have.clients if c not in set(want.clients if want else ())]
    if missing:
        out.append(Finding("clients-missing", f"not exported to {', '.join(missing)} (in the "
                           "directory)", project=p, fix=fix))
    if extra:
        reason = f" ({change.reason})" if want is None and change.reason else ""
        out.append(Finding("clients-extra", f"exported to {', '.join(extra)}, not in the "
                           f"directory{reason}", project=p, severity=ERROR, fix=fix))
    if want is not None and have.options != want.options:
        out.append(Finding("export-options-drift", f"options {','.join(have.options)} differ from "
                           f"the configured {','.join(want.options)}", project=p, fix=fix))
    return out  # a hand edit with the same content: the applier's hand-edited finding says it


def netgroup_findings(change: NetgroupChange) -> list[Finding]:
    if change.action == NetgroupAction.BLOCKED:
        return []  # the directory's foreign-netgroup finding says it
    delta = " ".join([f"+{t}" for t in change.added] + [f"-{t}" for t in change.removed])
    return [Finding("netgroup-drift", f"netgroup {change.name} would be {change.action}d"
                    + (f": {delta}" if delta else ""), project=change.project, fix=_sync(change.project))]


# ----- facts: what no sync changes -------------------------------------------------------------

def _facts(world: World, row: ProjectAudit, policy: Policy, usage_warning: float) -> list[Finding]:
    name, volume = row.project, row.volume
    inventory = world.inventory
    assert inventory is not None
    if volume is None:
        wanted = policy.onboard is not Onboard.NONE and name in inventory.projects \
            and (policy.onboard is Onboard.ALL or inventory.projects[name].wants_home)
        if row.in_directory and not wanted:
            return [Finding("project-without-volume", f"project {name} has no home volume",
                            project=name, severity=INFO, fix=f"homevol onboard {name}")]
        return []
    out = _mount_facts(row) + _usage_facts(volume, usage_warning)
    if not row.in_directory and inventory.has_projects and volume.state == VolumeState.RETIRED:
        out.append(Finding("volume-without-project", f"{volume.path}: project {name} is not in the "
                           "directory; data kept (volume retired)", project=name, severity=INFO,
                           fix=f"homevol purge {name}"))
    return out


def _mount_facts(row: ProjectAudit) -> list[Finding]:
    """A directory volume (local) is not mounted by homevol: what is wrong there is manual."""
    mount, volume, name = row.mount, row.volume, row.project
    if mount is None or volume is None or row.mounting or mount.state == MountState.MOUNTED:
        return []
    active = volume.state == VolumeState.ACTIVE
    if mount.state == MountState.NOT_MOUNTED:
        return [Finding("volume-not-mounted", mount.detail, project=name,
                        severity=ERROR if active else WARNING,
                        fix=f"manual: mount the volume of {name} on {mount.target}")]
    fix = (f"manual: check what is mounted on {mount.target} and unmount it"
           if mount.state == MountState.MOUNTED_OVER else
           f"manual: mount the volume of {name} on {mount.target} (and only there)")
    return [Finding("volume-wrong-mount", mount.detail, project=name, severity=ERROR, fix=fix)]


def _usage_facts(volume: Volume, usage_warning: float) -> list[Finding]:
    if volume.used_bytes is None or not volume.size_bytes:
        return []
    share = volume.used_bytes / volume.size_bytes
    if share <= usage_warning:
        return []
    grow = format_size(max(volume.size_bytes, volume.used_bytes) * 2)
    return [Finding("usage-above-threshold",
                    f"{format_size(volume.used_bytes)} used of {format_size(volume.size_bytes)} "
                    f"({share:.0%} > {usage_warning:.0%})", project=volume.project,
                    severity=ERROR if share >= 1 else WARNING, fix=f"homevol resize {volume.project} {grow}")]


def _foreign_findings(applied: AppliedState, volumes: dict[str, Volume],
                      project: str | None) -> list[Finding]:
    paths = {os.path.normpath(v.path): v for v in volumes.values()}
    out = []
    for where, exported in sorted(applied.foreign.items()):
        for path in exported:
            owner = paths.get(os.path.normpath(path))
            if project is not None and (owner is None or owner.project != project):
                continue
            if owner is None:
                out.append(Finding("export-for-unowned-path", f"{where} exports {path}, which is not "
                                   "a homevol volume", severity=WARNING,
                                   fix=f"manual: move {where} out of the managed exports directory"))
            else:
                out.append(Finding("foreign-export-of-volume",
                                   f"{where} exports {path}, the home of {owner.project}, outside "
                                   "homevol's control", project=owner.project, severity=ERROR,
                                   fix=f"manual: remove {path} from {where}"))
    return out


# ----- fixes for the kinds other modules report ------------------------------------------------

_MANUAL = {
    "invalid-project-name": "manual: rename the project entry to a valid name, or remove it",
    "host-without-project": "manual: set puppetVar instanceproject=<project> on {host}, or delete it",
    "unknown-project": "manual: delete the stale host entry {host}, or restore project {project}",
    "host-several-projects": "manual: keep one instanceproject value on {host}",
    "address-conflict": "manual: delete the stale host entry that claims {host}",
    "invalid-address": "manual: correct the aRecord of {host}",
    "unusable-address": "manual: correct the aRecord of {host}",
    "public-address": "manual: add its network to exports.extra_client_networks if it is the "
                      "instances' own",
    "host-without-address": "manual: give {host} an aRecord (usually assigned soon after creation)",
    "invalid-hostname": "manual: correct the associatedDomain of {host}",
    "foreign-exports-file": "manual: move the file out of the exports directory or rename it "
                            "(homevol never touches it)",
    "hand-edited-exports-file": "homevol sync --project {project}",
    "exports-not-loaded": "homevol sync --project {project}",
    "volume-without-project": "homevol offboard {project}",
    "duplicate-gid": "manual: give each project its own gid in the directory",
    "foreign-netgroup": "manual: rename or remove the netgroup {host} (it has homevol's prefix)",
}


def _with_fix(finding: Finding, inventory: Inventory) -> Finding:
    if finding.fix is not None:
        return finding
    fix: str | None = _MANUAL.get(finding.kind)
    if finding.kind == "unowned-volume":
        fix = (f"homevol onboard {finding.project} --adopt" if finding.project in inventory.projects
               else "manual: move the directory out of the export base")
    if fix is None:
        return finding
    return replace(finding, fix=fix.format(project=finding.project or "", host=finding.host or ""))


_RANK = {ERROR: 0, WARNING: 1, INFO: 2}


def _order(finding: Finding) -> tuple[str, int, str, str]:
    return (finding.project or "", _RANK[finding.severity], finding.kind, finding.host or "")
