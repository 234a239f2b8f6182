"""``homevol audit``: project → volume → mount → export, and every kind of drift between them.

Read-only. Each source is read once: the directory (snapshot + inventory), the backend's list of
owned volumes (then one usage read per volume), the mounts under the export base
(``/proc/self/mountinfo``) and what the exports applier applied. Nothing is locked and nothing
is written, except the node_exporter textfile when one is asked for (``write_prometheus``).

Extending it:
- a backend whose volume must be *mounted* at ``<export_base>/<project>`` (CephFS, Gluster)
  returns a ``MountPlan`` from ``mount_plan(volume)`` (provisioner/placement.py); with None a
  volume is a plain directory at that path (the local backend), and anything mounted over it is
  drift;
- a backend with a cheaper usage read than ``info()`` gives its class ``usage(volume) -> int | None``;
- an exports applier reports what it owns in ``AppliedState.rules`` and what it found but does not
  own in ``AppliedState.foreign``; the checks here only see those two.

The finding kinds, their severities and fixes are documented in docs/audit.md.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import click

from .errors import InvalidInput
from .exports import AppliedState
from .model import ExportRule, Finding, Inventory, Severity, Volume, VolumeState
from .names import project_name_problem
from .placement import MOUNTINFO, MountCheck, check_mount, read_mounts
from .progress import progress
from .service import Homevol
from .sizes import format_size

INFO, WARNING, ERROR = Severity.INFO, Severity.WARNING, Severity.ERROR


# ----- the report ------------------------------------------------------------------------------

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

    def to_dict(self) -> dict[str, Any]:
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
            "mount": m.state if m else None,
            "mount_source": (m.source or None) if m else None,
            "mount_fstype": (m.fstype or None) if m else None,
            "export": self.export,
            "export_reason": self.export_reason,
            "clients": len(self.clients),
            "expected_clients": len(self.expected),
            "missing_clients": [c for c in self.expected if c not in have],
            "extra_clients": [c for c in self.clients if c not in want],
            "findings": [f.to_dict() for f in self.findings],
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

    def to_dict(self) -> dict[str, Any]:
        counts = self.counts
        return {
            "source": self.source,
            "ldap": {"searches": self.searches, "operations": self.operations},
            "backend": self.backend,
            "exports_applier": self.applier,
            "export_base": self.export_base,
            "usage_warning": self.usage_warning,
            "project": self.scope,
            "projects": [p.to_dict() for p in self.projects],
            "findings": [f.to_dict() for f in self.findings],
            "summary": {
                "projects": len(self.projects),
                "volumes": sum(1 for p in self.projects if p.volume is not None),
                "exports": sum(1 for p in self.projects if p.clients),
                "findings": {str(s): counts[str(s)] for s in Severity},
                "drift": self.drift,
            },
        }


# ----- fixes for the kinds other modules report ------------------------------------------------

_MANUAL = {
    "invalid-project-name": "manual: rename the project entry to a valid name, or remove it",
    "host-without-project": "manual: set puppetVar instanceproject=<project> on {host}, or delete it",
    "unknown-project": "manual: delete the stale host entry {host}, or restore project {project}",
    "host-several-projects": "manual: keep one instanceproject value on {host}",
    "address-conflict": "manual: delete the stale host entry that claims {host}",
    "invalid-address": "manual: correct the aRecord of {host}",
    "public-address": "manual: add its network to exports.extra_client_networks if it is the "
                      "instances' own",
    "host-without-address": "manual: give {host} an aRecord (usually assigned soon after creation)",
    "invalid-hostname": "manual: correct the associatedDomain of {host}",
    "foreign-exports-file": "manual: move the file out of the exports directory or rename it "
                            "(homevol never touches it)",
    "hand-edited-exports-file": "homevol sync --project {project}",
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


# ----- building it -----------------------------------------------------------------------------

def _usage(service: Homevol, volumes: list[Volume]) -> dict[str, int | None]:
    cheap = getattr(service.backend, "usage", None)
    used: dict[str, int | None] = {}
    for volume in progress(volumes, "usage"):
        if cheap is not None:
            used[volume.project] = cheap(volume)
        else:
            current = service.backend.info(volume.project)
            used[volume.project] = current.used_bytes if current else None
    return used


def run_audit(service: Homevol, project: str | None = None, mountinfo: str = MOUNTINFO) -> AuditReport:
    if project is not None:
        problem = project_name_problem(project)
        if problem:
            raise InvalidInput(f"invalid project name: {problem}")
    cfg = service.cfg
    snapshot, inventory = service.read_directory()
    volumes, backend_findings = service.backend.list()
    applied = service.applier.applied()
    mounts = read_mounts(cfg.export_base, mountinfo)

    known = set(inventory.projects) | {v.project for v in volumes} | set(applied.rules) \
        | set(applied.blocked)
    if project is not None and project not in known:
        raise InvalidInput(f"{project}: not a project in the directory ({snapshot.source}), "
                           "and homevol has no volume or export for it")
    in_scope = sorted(known) if project is None else [project]
    by_name = {v.project: v for v in volumes}
    used = _usage(service, [by_name[p] for p in in_scope if p in by_name])
    desired = service.desired(inventory, volumes, set())
    volume_paths = {os.path.normpath(v.path): v for v in volumes}

    rows: dict[str, ProjectAudit] = {}
    findings: list[Finding] = []
    for name in in_scope:
        row = ProjectAudit(name, name in inventory.projects)
        volume = by_name.get(name)
        if volume is not None:
            volume = replace(volume, used_bytes=used.get(name))
            row.volume = volume
            target = os.path.normpath(service.path_of(name))
            plan = service.backend.mount_plan(volume)
            row.mounting = plan is not None
            row.mount = check_mount(volume, target, plan.spec if plan else None, mounts)
        findings += _volume_findings(service, row, inventory)
        findings += _export_findings(service, row, desired.get(name), applied, volume_paths)
        rows[name] = row
    findings += [_with_fix(f, inventory)
                 for f in (*inventory.findings, *backend_findings, *applied.findings)
                 if project is None or f.project == project]
    findings += _foreign_findings(applied, volume_paths, project)
    findings.sort(key=_order)
    for finding in findings:
        if finding.project in rows:
            rows[finding.project].findings.append(finding)
    return AuditReport(snapshot.source, snapshot.searches, snapshot.operations,
                       service.backend.name, getattr(service.applier, "name", "?"), cfg.export_base,
                       cfg.audit.usage_warning, list(rows.values()), findings, project)


_RANK = {ERROR: 0, WARNING: 1, INFO: 2}


def _order(finding: Finding) -> tuple[str, int, str, str]:
    return (finding.project or "", _RANK[finding.severity], finding.kind, finding.host or "")


def _volume_findings(service: Homevol, row: ProjectAudit, inventory: Inventory) -> list[Finding]:
    name, volume, cfg = row.project, row.volume, service.cfg
    out: list[Finding] = []
    if volume is None:
        if row.in_directory:
            policy = cfg.sync.onboard
            wanted = policy == "all" or (policy == "opt-in" and inventory.projects[name].wants_home)
            out.append(Finding(
                "project-without-volume",
                f"project {name} has no home volume" + (" (sync would create it)" if wanted else ""),
                project=name, severity=WARNING if wanted else INFO,
                fix=f"homevol sync --project {name}" if wanted else f"homevol onboard {name}"))
        return out
    active = volume.state == VolumeState.ACTIVE
    if not row.in_directory and inventory.projects:
        out.append(Finding(
            "volume-without-project",
            f"{volume.path}: project {name} is not in the directory; data kept"
            + ("" if active else " (volume retired)"),
            project=name, severity=WARNING if active else INFO,
            fix=f"homevol offboard {name}" if active else f"homevol purge {name}"))
    mount = row.mount
    mounting = row.mounting
    if mount is not None and mount.state == "not-mounted" and mounting and not active:
        pass  # a retired volume of a mounting backend is unmounted on purpose (offboard)
    elif mount is not None and mount.state == "not-mounted":
        out.append(Finding("volume-not-mounted", mount.detail, project=name,
                           severity=ERROR if active else WARNING,
                           fix=f"homevol sync --project {name}" if mounting else
                           f"manual: mount the volume of {name} on {mount.target}"))
    elif mount is not None and mount.state != "mounted":
        fix = (f"manual: check what is mounted on {mount.target} and unmount it"
               if mount.state == "mounted-over" else
               f"manual: mount the volume of {name} on {mount.target} (and only there)")
        out.append(Finding("volume-wrong-mount", mount.detail, project=name, severity=ERROR, fix=fix))
    share = (volume.used_bytes / volume.size_bytes
             if volume.used_bytes is not None and volume.size_bytes else None)
    if share is not None and share > cfg.audit.usage_warning:
        grow = format_size(max(volume.size_bytes or 0, volume.used_bytes or 0) * 2)
        out.append(Finding(
            "usage-above-threshold",
            f"{format_size(volume.used_bytes)} used of {format_size(volume.size_bytes)} "
            f"({share:.0%} > {cfg.audit.usage_warning:.0%})", project=name,
            severity=ERROR if share >= 1 else WARNING, fix=f"homevol resize {name} {grow}"))
    return out


def _export_findings(service: Homevol, row: ProjectAudit,
                     wanted: tuple[ExportRule | None, str] | None, applied: AppliedState,
                     volume_paths: dict[str, Volume]) -> list[Finding]:
    name, volume = row.project, row.volume
    rule, why = wanted if wanted is not None else (None, "")
    have = applied.rules.get(name)
    fix = f"homevol sync --project {name}"
    out: list[Finding] = []
    row.clients = have.clients if have else ()
    row.expected = rule.clients if rule else ()
    if name in applied.blocked:
        row.export, row.export_reason = "blocked", applied.blocked[name]
        return out  # the foreign-exports-file finding says what to do
    if volume is not None and volume.state == VolumeState.RETIRED:
        why = "volume retired"
    elif volume is None:
        why = "no volume"
    if have is None:
        if rule is None:
            row.export, row.export_reason = "none", why
        else:
            row.export = "missing"
            out.append(Finding("export-missing", f"{service.path_of(name)} is not exported; "
                               f"{len(rule.clients)} clients expected", project=name,
                               severity=ERROR, fix=fix))
        return out
    owned_path = volume_paths.get(os.path.normpath(have.path)) if have.path else None
    if owned_path is None or owned_path.project != name:
        row.export, row.export_reason = "unwanted", "path not a homevol volume of this project"
        out.append(Finding("export-for-unowned-path",
                           f"the export of {name} names {have.path or '(no path)'}, which is not "
                           f"{name}'s homevol volume", project=name, severity=ERROR, fix=fix))
        return out
    if volume is not None and volume.state == VolumeState.RETIRED:
        row.export, row.export_reason = "unwanted", why
        out.append(Finding("export-of-retired-volume",
                           f"{have.path} is still exported to {len(have.clients)} clients although "
                           "the volume is retired", project=name, severity=ERROR, fix=fix))
        return out
    want = set(rule.clients) if rule else set()
    missing = [c for c in rule.clients if c not in set(have.clients)] if rule else []
    extra = [c for c in have.clients if c not in want]
    if missing:
        out.append(Finding("clients-missing", f"not exported to {', '.join(missing)} (in the "
                           "directory)", project=name, severity=WARNING, fix=fix))
    if extra:
        reason = f" ({why})" if rule is None and why else ""
        out.append(Finding("clients-extra", f"exported to {', '.join(extra)}, not in the "
                           f"directory{reason}", project=name, severity=ERROR, fix=fix))
    if rule is not None and have.options != rule.options:
        out.append(Finding("export-options-drift", f"options {','.join(have.options)} differ from "
                           f"the configured {','.join(rule.options)}", project=name,
                           severity=WARNING, fix=fix))
    drifted = bool(out) or name in applied.drifted
    row.export = "drift" if drifted else "exported"
    if rule is None:
        row.export, row.export_reason = "unwanted", why
    return out


def _foreign_findings(applied: AppliedState, volume_paths: dict[str, Volume],
                      project: str | None) -> list[Finding]:
    out = []
    for where, paths in sorted(applied.foreign.items()):
        for path in paths:
            owner = volume_paths.get(os.path.normpath(path))
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


# ----- output ----------------------------------------------------------------------------------

CSV_COLUMNS = ["project", "in_directory", "volume", "backend", "path", "size_bytes", "used_bytes",
               "used_percent", "mount", "export", "export_reason", "clients", "expected_clients",
               "errors", "warnings", "infos", "kinds"]


def to_csv(report: AuditReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.projects:
        data = row.to_dict()
        counts = row.counts()
        data.update(errors=counts["error"], warnings=counts["warning"], infos=counts["info"],
                    kinds=";".join(sorted({f.kind for f in row.findings})))
        writer.writerow(["" if data[c] is None else data[c] for c in CSV_COLUMNS])
    return out.getvalue()


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def to_prometheus(report: AuditReport, now: float | None = None) -> str:
    lines: list[str] = []

    def metric(name: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            number = str(int(value)) if float(value).is_integer() else repr(float(value))
            lines.append(f"{name}{{{text}}} {number}" if text else f"{name} {number}")

    vols = [p for p in report.projects if p.volume is not None]
    metric("homevol_volume_size_bytes", "Recorded size of the project's home volume.",
           [({"project": p.project, "state": str(p.volume.state)}, p.volume.size_bytes)
            for p in vols if p.volume and p.volume.size_bytes is not None])
    metric("homevol_volume_used_bytes", "Bytes used in the project's home volume.",
           [({"project": p.project}, p.volume.used_bytes)
            for p in vols if p.volume and p.volume.used_bytes is not None])
    metric("homevol_export_clients", "Clients in the project's applied export.",
           [({"project": p.project}, len(p.clients)) for p in report.projects])
    by_kind = Counter((f.kind, str(f.severity)) for f in report.findings)
    metric("homevol_audit_findings", "Audit findings by kind and severity.",
           [({"kind": k, "severity": s}, n) for (k, s), n in sorted(by_kind.items())])
    counts = report.counts
    metric("homevol_audit_findings_by_severity", "Audit findings by severity (all kinds).",
           [({"severity": str(s)}, counts[str(s)]) for s in Severity])
    metric("homevol_audit_projects", "Projects in the audit (directory, volumes, exports).",
           [({}, len(report.projects))])
    metric("homevol_audit_drift", "1 when any warning or error finding exists, else 0.",
           [({}, 1 if report.drift else 0)])
    metric("homevol_audit_last_run_timestamp_seconds", "When this audit finished (Unix time).",
           [({}, round(time.time() if now is None else now, 3))])
    return "\n".join(lines) + "\n"


_COLOUR = {"error": "red", "warning": "yellow", "info": "cyan"}
_STATE_OK = {"mounted", "exported", "none", "active", "-"}


def print_table(report: AuditReport, verbose: bool = False, colour: bool = False) -> None:
    def paint(text: str, severity: str | None = None, state: str | None = None) -> str:
        if not colour:
            return text
        if severity:
            return click.style(text, fg=_COLOUR[severity], bold=severity == "error")
        if state is not None and state not in _STATE_OK:
            return click.style(text, fg="yellow")
        return text

    counts = report.counts
    summary = ", ".join(f"{counts[str(s)]} {s}" for s in Severity if counts[str(s)]) or "no findings"
    click.echo(f"audit of {report.source}, backend {report.backend}, exports {report.applier}: "
               f"{len(report.projects)} projects; {summary}")
    click.echo(f"{'PROJECT':<24} {'VOLUME':<8} {'SIZE':>8} {'USED':>8} {'USE%':>5}  {'MOUNT':<13} "
               f"{'EXPORT':<9} {'CLIENTS':>7}")

    def finding_lines(findings: list[Finding]) -> None:
        hidden = 0
        for f in findings:
            if f.severity == INFO and not verbose:
                hidden += 1
                continue
            host = f"{f.host}: " if f.host else ""
            click.echo(f"    {paint(f'{f.severity:<7}', str(f.severity))} {f.kind:<26} {host}{f.detail}")
            if f.fix:
                click.echo(f"            fix: {f.fix}")
        if hidden:
            click.echo(f"    ({hidden} info; --verbose lists them)")

    for row in report.projects:
        v = row.volume
        state = str(v.state) if v else "-"
        pct = f"{row.used_percent:.0f}%" if row.used_percent is not None else "-"
        mount = row.mount.state if row.mount else "-"
        clients = f"{len(row.clients)}/{len(row.expected)}"
        name = row.project if row.in_directory else f"{row.project}?"
        click.echo(f"{name:<24} {paint(f'{state:<8}', state=state)} "
                   f"{format_size(v.size_bytes) if v else '-':>8} "
                   f"{format_size(v.used_bytes) if v else '-':>8} {pct:>5}  "
                   f"{paint(f'{mount:<13}', state=mount)} {paint(f'{row.export:<9}', state=row.export)} "
                   f"{clients:>7}")
        finding_lines(row.findings)
    others = report.other_findings()
    if others:
        click.echo("not tied to a listed project:")
        finding_lines(others)
    if any(not r.in_directory for r in report.projects):
        click.echo("(a '?' after a name: not a project in the directory)")
