"""Refusals that keep a bad day from emptying the exports: each raises GuardRefused (exit 3)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .directory import Snapshot
from .errors import GuardRefused

if TYPE_CHECKING:
    from .plan import Intent, Plan


def check_snapshot(snapshot: Snapshot, allow_empty: bool) -> None:
    """A directory that returns zero projects or zero hosts is far likelier broken than empty.

    A scoped read judges the whole directory too: its source probed it when the scope's own
    entries were none (``Snapshot.has_projects``), so a project missing from a scoped read is
    missing from a directory that answers, never from one that returned nothing."""
    if allow_empty:
        return
    if not snapshot.has_projects:
        raise GuardRefused(f"{snapshot.source} returned no projects; nothing changed "
                           "(set directory.allow_empty = true if that is really so)")
    if not snapshot.has_hosts:
        raise GuardRefused(f"{snapshot.source} returned no hosts; nothing changed "
                           "(set directory.allow_empty = true if that is really so)")


def check_removal_share(plan: Plan, max_share: float, force: bool, exempt: Iterable[str] = (),
                        floor: int = 0) -> None:
    """Refuse a plan that takes away more than ``max_share`` of the clients exported now.

    Projects the operator named explicitly (offboard, purge) are exempt: that removal is the
    point of the command. The share is over all exported clients, whatever the scope. A plan
    removing no more than ``floor`` clients passes whatever the share: at a site with a handful
    of instances, one deleted instance is a large share and an everyday event.
    """
    removed = plan.removed_clients(exempt)
    total = plan.exported_clients
    if force or total == 0 or removed <= floor:
        return
    if removed / total > max_share:
        raise GuardRefused(
            f"the plan removes {removed} of {total} exported clients "
            f"({removed / total:.0%} > {max_share:.0%}); nothing changed. Check the directory, "
            "review with --dry-run, and re-run with --force if it is right")


def needs_total(plan: Plan, intent: Intent, force: bool, floor: int = 0) -> bool:
    """Does the removal share need the clients of every project (not only those read)?"""
    return not force and plan.removed_clients(_named(intent)) > floor


def _named(intent: Intent) -> frozenset[str]:
    return intent.projects if intent.destructive else frozenset()


def check_plan(plan: Plan, intent: Intent, max_share: float, force: bool, floor: int = 0) -> None:
    """The whole plan, volume and mount steps included, before anything is applied.

    - Retiring, purging or unmounting an active home happens only to a project the command
      names (offboard P, purge P): a sync or a hook never takes a home away (not forceable).
    - The removal share (above), with the named projects of offboard/purge exempt.
    """
    from .plan import Step

    named = _named(intent)
    for action in plan.steps(Step.RETIRE, Step.PURGE):
        if action.project not in named:
            raise GuardRefused(f"the plan would {action.action} {action.project}, which the "
                               f"{intent.command} command did not name; nothing changed")
    check_removal_share(plan, max_share, force, exempt=named, floor=floor)
