"""``homevol hook``: what the cloud calls when a project or an instance comes or goes.

The event only says *which project* to look at; the directory stays the source of truth for
who may mount what. So a hook is a sync of one project, made safe to repeat and to reorder:

- ``project-created P``: onboard P (P must already be in the directory);
- ``project-deleted P``: retire P (unexport, keep the data; never purge);
- ``instance-created P HOST`` / ``instance-deleted P HOST``: bring P's export clients in step
  with the directory; nothing is created for a project without a volume or unknown to the
  directory, and the note says whether HOST is (still) there.

The event comes as arguments or as one JSON object on stdin (docs/hook.md has the schema):
``{"event": "instance-created", "project": "alpha", "host": "alpha-web1.eqiad.wmflabs"}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .errors import HomevolError, InvalidInput
from .model import Inventory
from .names import normalise_hostname, parse_ipv4, project_name_problem
from .plan import Plan
from .service import Homevol, Outcome
from .world import Scope

EVENTS = ("project-created", "project-deleted", "instance-created", "instance-deleted")
_KEYS = {"event", "project", "host"}


@dataclass(frozen=True)
class Event:
    kind: str
    project: str
    host: str | None = None


def parse_event(kind: str | None, project: str | None, host: str | None) -> Event:
    """Validate an event; InvalidInput (exit 2) names what is wrong."""
    if kind not in EVENTS:
        raise InvalidInput(f"hook: unknown event {kind!r}; expected one of {', '.join(EVENTS)}")
    problem = project_name_problem(project or "")
    if problem:
        raise InvalidInput(f"hook: invalid project name: {problem}")
    assert project is not None
    needs_host = kind.startswith("instance-")
    if needs_host and not host:
        raise InvalidInput(f"hook: {kind} needs a HOST (a hostname or an IPv4 address)")
    if not needs_host and host:
        raise InvalidInput(f"hook: {kind} takes no HOST")
    if host is not None:
        addr = parse_ipv4(host)
        name = str(addr) if addr is not None else normalise_hostname(host)
        if name is None:
            raise InvalidInput(f"hook: {host!r} is neither a hostname nor an IPv4 address")
        host = name
    return Event(kind, project, host)


def parse_json_event(text: str) -> Event:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"hook: stdin is not one JSON object: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput("hook: stdin must be one JSON object")
    unknown = set(data) - _KEYS
    if unknown:
        raise InvalidInput(f"hook: unknown keys in the event: {', '.join(sorted(unknown))}")
    values = [data.get(key) for key in ("event", "project", "host")]
    if not all(v is None or isinstance(v, str) for v in values):
        raise InvalidInput("hook: event, project and host must be strings")
    return parse_event(*values)


def _has_host(inventory: Inventory, project: str, host: str) -> bool:
    return any(host in h.addresses or host in h.names for h in inventory.hosts_of(project))


def handle(service: Homevol, event: Event, dry_run: bool = False) -> Outcome:
    """Apply one event to its project only. The caller holds the lock."""
    project = event.project
    if event.kind == "project-deleted":
        return service.offboard(project, dry_run=dry_run)
    snapshot, inventory = service.read_directory(Scope.of([project]))  # P's entries only
    if project not in inventory.projects:
        if event.kind == "project-created":
            raise HomevolError(f"{project}: not in the directory ({snapshot.source}) yet; "
                               "nothing created (call the hook again once it is)")
        outcome = Outcome(Plan(), source=snapshot.source)
        outcome.notes.append(f"{project}: not a project in the directory; nothing done")
        return outcome
    if event.kind == "project-created":
        return service.onboard(project, None, dry_run=dry_run, directory=(snapshot, inventory))
    outcome = service.exports(project=project, dry_run=dry_run, directory=(snapshot, inventory))
    assert event.host is not None
    present = _has_host(inventory, project, event.host)
    volume = outcome.volumes.get(project)
    if volume is None:
        outcome.notes.append(f"{project} has no homevol volume; nothing to export")
    elif event.kind == "instance-created" and not present:
        outcome.notes.append(f"{event.host} is not (yet) a usable host of {project} in the "
                             "directory; nothing granted for it")
    elif event.kind == "instance-deleted" and present:
        outcome.notes.append(f"{event.host} is still a host of {project} in the directory; "
                             "its access stays until the directory drops it")
    elif event.kind == "instance-deleted":
        outcome.notes.append(f"{event.host} is not a host of {project} in the directory; "
                             "it has no access")
    return outcome
