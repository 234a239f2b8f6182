"""Turning outcomes into text for people and JSON for tools (the JSON shape is documented
in docs/json.md; later tooling relies on it)."""

from __future__ import annotations

import json
import signal
import sys
from collections import Counter
from typing import Any

import click

from .exports import ExportChange
from .model import Finding, Severity, at_least
from .names import printable
from .plan import Plan
from .service import Outcome
from .sizes import format_size

_MARK = {"add": "+", "update": "~", "remove": "-", "unchanged": "=", "blocked": "!"}


def export_to_dict(change: ExportChange) -> dict[str, Any]:
    rule = change.after or change.before
    return {
        "project": change.project,
        "path": rule.path if rule else "",
        "clients": list(change.after.clients) if change.after else [],
        "options": list(change.after.options) if change.after else [],
        "action": change.action,
        "added": list(change.added),
        "removed": list(change.removed),
        "reason": change.reason,
        "heads": [h.head for h in change.heads],
    }


def outcome_to_dict(outcome: Outcome, dry_run: bool, floor: Severity = Severity.INFO
                    ) -> dict[str, Any]:
    plan = outcome.plan
    return {
        "dry_run": dry_run,
        "applied": outcome.applied,
        "ok": outcome.ok,
        "source": outcome.source,
        "ldap": {"searches": outcome.searches, "operations": outcome.operations},
        "volumes": [v.to_dict() for v in plan.volumes],
        "exports": [export_to_dict(c) for c in plan.exports],
        "netgroups": [c.to_dict() for c in plan.netgroups],
        "exported_clients_before": plan.exported_clients,
        "removed_clients": plan.removed_clients(),
        "findings": [f.to_dict() for f in at_least(plan.findings, floor)],
        "finding_counts": {str(s): sum(1 for f in plan.findings if f.severity == s) for s in Severity},
        "results": [r.to_dict() for r in outcome.results],
        "notes": outcome.notes,
        "refused": str(outcome.refused) if outcome.refused else None,
        "interrupted": signal.Signals(outcome.interrupted).name if outcome.interrupted else None,
    }


def _say(text: str) -> None:
    """One line for people: a directory value can never start a new line or an escape."""
    click.echo(printable(text))


def print_json(data: Any) -> None:
    """Indented for a person at a terminal; compact (and several times faster) for a pipe."""
    indent = 2 if sys.stdout.isatty() else None
    click.echo(json.dumps(data, indent=indent))  # JSON escapes on its own


def _clients(change: ExportChange) -> str:
    parts = [f"+{c}" for c in change.added] + [f"-{c}" for c in change.removed]
    if change.action == "unchanged":
        return f"{len(change.after.clients) if change.after else 0} clients"
    if change.heads:
        return f"on {len(change.heads)} head(s) only"
    return " ".join(parts) if parts else "options or file rewritten"


def print_plan(plan: Plan, floor: Severity = Severity.WARNING, show_unchanged: bool = False) -> None:
    if plan.volumes:
        _say("volumes:")
        for action in plan.volumes:
            size = f" {format_size(action.size_bytes)}" if action.size_bytes else ""
            _say(f"  {action.action}{size}  {action.project}"
                       + (f"  ({action.reason})" if action.reason else ""))
    shown = [c for c in plan.exports if show_unchanged or c.action != "unchanged"]
    if shown:
        _say("exports:")
        for change in shown:
            rule = change.after or change.before
            why = f"  ({change.reason})" if change.reason else ""
            _say(f"  {_MARK[change.action]} {change.project}  {rule.path if rule else ''}  "
                       f"{_clients(change)}{why}")
    if plan.netgroups:
        _say("netgroups:")
        for ng in plan.netgroups:
            delta = " ".join([f"+{t}" for t in ng.added] + [f"-{t}" for t in ng.removed])
            _say(f"  {_MARK.get(ng.action, '!')} {ng.name}  {delta}")
    unchanged = sum(1 for c in plan.exports if c.action == "unchanged")
    if plan.empty:
        _say(f"no changes ({unchanged} exports up to date)")
    elif unchanged and not show_unchanged:
        _say(f"  ({unchanged} exports unchanged)")
    print_findings(plan.findings, floor)


def print_findings(findings: list[Finding], floor: Severity = Severity.WARNING) -> None:
    """Every finding of ``floor`` or worse; the others counted by kind on one line."""
    if not findings:
        return
    counts = Counter(f.severity for f in findings)
    _say("findings: " + ", ".join(f"{counts[s]} {s}" for s in Severity if counts[s]))
    shown = at_least(findings, floor)
    for finding in shown:
        who = " ".join(x for x in (finding.project, finding.host) if x)
        _say(f"  {finding.severity:<7} {finding.kind:<26} {who + ': ' if who else ''}{finding.detail}")
    hidden = Counter(f.kind for f in findings if f.severity.rank < floor.rank)
    if hidden:
        _say("  not listed: " + ", ".join(f"{n} {k}" for k, n in sorted(hidden.items()))
             + " (--verbose or --min-severity lists them)")


def print_results(outcome: Outcome) -> None:
    for note in outcome.notes:
        _say(f"note: {note}")
    for result in outcome.results:
        status = "ok" if result.ok else "FAILED"
        _say(f"  {status:<6} {result.project}  {result.action}  {result.detail}")
