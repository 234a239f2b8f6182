"""How an audit report is shown: a table for people, CSV, JSON (``AuditReport.to_dict``) and a
node_exporter textfile."""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from collections.abc import Iterable

import click

from .audit import AuditReport
from .model import Finding, Severity
from .names import printable
from .sizes import format_size

INFO = Severity.INFO


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


def print_table(report: AuditReport, floor: Severity = Severity.WARNING, colour: bool = False) -> None:
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
            if f.severity.rank < floor.rank:
                hidden += 1
                continue
            host = f"{printable(f.host)}: " if f.host else ""
            click.echo(f"    {paint(f'{f.severity:<7}', str(f.severity))} {f.kind:<26} "
                       f"{host}{printable(f.detail)}")
            if f.fix:
                click.echo(f"            fix: {printable(f.fix)}")
        if hidden:
            click.echo(f"    ({hidden} below {floor}; --verbose or --min-severity lists them)")

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
