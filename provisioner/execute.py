"""Execute: apply a plan step by step, one result per item.

The ordering rules are written once, in ``PHASES``: the volume exists (and a retiring one is
stamped retired) before it is mounted, mounted before it is exported, a netgroup holds its
hosts before an export names it, the export is gone before the home is unmounted, and the
volume is retired and unmounted before it is purged. Once a step of a project fails, that
project's later steps are skipped (and say so); the other projects go on.

SIGINT and SIGTERM during a run do not cut a step in half: the step under way finishes, the
rest is not started, and the outcome says how far it got (every step is safe to redo, so the
next run finishes the job).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from backends import VolumeBackend

from .config import Config
from .errors import BackendError, HomevolError
from .exports import Applier, ApplyResult, ExportAction, ExportChange
from .model import Volume, home_path
from .netgroup import NetgroupAction, apply_netgroups
from .placement import MountPlan, Placement
from .plan import Intent, Plan, Step, VolumeAction
from .progress import progress
from .sizes import format_size
from .world import World

log = logging.getLogger("homevol")
SKIPPED = "skipped: an earlier step for this project failed"


@dataclass
class _Run:
    """The results so far, and which projects already failed a step.

    A project's journal line is written as soon as its last planned step has a result, so an
    interrupted or killed run has already logged every project it finished.
    """

    results: list[ApplyResult] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)
    volumes: dict[str, Volume] = field(default_factory=dict)  # as the last step left them
    stopped_by: int | None = None  # the signal that asked the run to stop
    pending: Counter[str] = field(default_factory=Counter)  # planned steps without a result yet
    unlogged: dict[str, list[ApplyResult]] = field(default_factory=dict)

    def add(self, result: ApplyResult) -> None:
        self.results.append(result)
        self.unlogged.setdefault(result.project, []).append(result)
        self.pending[result.project] -= 1
        if self.pending[result.project] <= 0:
            _log_project(result.project, self.unlogged.pop(result.project))

    def record(self, result: ApplyResult) -> None:
        self.add(result)
        if not result.ok:
            self.failed.add(result.project)

    def flush(self) -> None:
        """The projects a stopped run left part-done: what they got, in one line each."""
        for project, done in self.unlogged.items():
            _log_project(project, done)
        self.unlogged.clear()

    def attempt(self, project: str, action: str, step: Callable[[], str]) -> None:
        if self.stopped_by is not None:
            return
        if project in self.failed:
            self.add(ApplyResult(project, action, False, SKIPPED))
            return
        try:
            self.record(ApplyResult(project, action, True, step()))
        except (HomevolError, OSError) as exc:
            self.record(ApplyResult(project, action, False, str(exc)))


class Executor:
    """Applies one plan with the run's backend, exports applier and placement."""

    def __init__(self, cfg: Config, backend: VolumeBackend, applier: Applier,
                 placement: Placement) -> None:
        self.cfg = cfg
        self.backend = backend
        self.applier = applier
        self.placement = placement

    def run(self, plan: Plan, world: World, intent: Intent) -> _Run:
        """The results, the volumes as the steps left them, and the signal that stopped it."""
        planned = [a.project for a in plan.volumes] + [c.project for c in plan.changes] \
            + [n.project for n in plan.netgroups]
        run = _Run(volumes=dict(world.volumes), pending=Counter(planned))
        phases: list[Callable[[], None]] = [
            functools.partial(self._volume_steps, run, plan, intent,
                              (Step.CREATE, Step.FINISH, Step.ACTIVATE, Step.RESIZE, Step.RETIRE)),
            functools.partial(self._volume_steps, run, plan, intent, (Step.MOUNT, Step.UNIT), world),
            functools.partial(self._netgroups, run, plan, True),
            functools.partial(self._exports, run, plan),
            functools.partial(self._volume_steps, run, plan, intent, (Step.CLIENTS,)),
            functools.partial(self._netgroups, run, plan, False),
            functools.partial(self._volume_steps, run, plan, intent, (Step.UNMOUNT, Step.PURGE), world),
        ]
        with _deferred_signals(run):
            for phase in phases:
                if run.stopped_by is None:
                    phase()
        run.flush()
        return run

    # ----- volume-side steps -----------------------------------------------------------------
    def _volume_steps(self, run: _Run, plan: Plan, intent: Intent, kinds: tuple[Step, ...],
                      world: World | None = None) -> None:
        for action in progress(plan.steps(*kinds), "volumes"):
            run.attempt(action.project, f"volume-{action.action}",
                        functools.partial(self._volume_step, run, plan, intent, action, world))

    def _volume_step(self, run: _Run, plan: Plan, intent: Intent, action: VolumeAction,
                     world: World | None) -> str:
        project, backend = action.project, self.backend
        if action.action in (Step.CREATE, Step.FINISH, Step.ACTIVATE):
            size = action.size_bytes or 0
            run.volumes[project] = backend.ensure(project, size, plan.gids.get(project),
                                                  adopt=intent.adopt)
            return "active again" if action.action is Step.ACTIVATE else \
                f"{format_size(size)} on {backend.name}"
        if action.action is Step.RESIZE:
            run.volumes[project] = backend.resize(project, action.size_bytes or 0, force=intent.shrink)
            return f"{format_size(action.size_bytes)}"
        if action.action is Step.RETIRE:
            backend.retire(project)
            return "data kept"
        if action.action is Step.CLIENTS:
            backend.set_acl(project, action.value or "")
            return action.reason
        if action.action is Step.PURGE:
            gone = backend.purge(project, retain_snapshots=intent.retain_snapshots)
            return "data deleted" if gone else "already gone"
        return self._placement_step(run, action, world)

    def _placement_step(self, run: _Run, action: VolumeAction, world: World | None) -> str:
        project = action.project
        target = home_path(self.cfg.export_base, project)
        volume, mount = self._mount_plan(run, project, world)
        if action.action is Step.UNMOUNT:
            return self.placement.release(volume, target, mount)
        if action.action is Step.UNIT:
            return self.placement.write_unit(project, target, mount)
        return f"{self.placement.ensure(project, volume, target, mount)} ({action.reason})"

    def _mount_plan(self, run: _Run, project: str, world: World | None) -> tuple[Volume, MountPlan]:
        """The volume as the last step left it, and its mount plan (observed, or asked for now
        when the volume was made in this run)."""
        placed = world.placed.get(project) if world else None
        volume = run.volumes.get(project)
        if volume is None:
            raise BackendError(f"{project}: the volume vanished")
        mount = placed.plan if placed is not None and placed.plan is not None \
            else self.backend.mount_plan(volume)
        if mount is None:
            raise BackendError(f"{project}: the {self.backend.name} backend has no mount plan")
        return volume, mount

    # ----- exports and netgroups ---------------------------------------------------------------
    def _exports(self, run: _Run, plan: Plan) -> None:
        """Every export change in one batch (one reload of the server), one result each."""
        if run.stopped_by is not None:
            return
        todo: dict[str, ExportChange] = {}
        for change in plan.changes:
            if change.project in run.failed:
                run.add(ApplyResult(change.project, f"export-{change.action}", False, SKIPPED))
            elif change.action == ExportAction.BLOCKED:
                run.record(ApplyResult(change.project, "export-blocked", False, change.reason))
            else:
                todo[change.project] = change
        for result in self.applier.apply(list(todo.values())) if todo else []:
            change = todo[result.project]
            summary = f"+{len(change.added)} -{len(change.removed)} clients"
            run.record(ApplyResult(result.project, f"export-{result.action}", result.ok,
                                   result.detail or summary))

    def _netgroups(self, run: _Run, plan: Plan, upserts: bool) -> None:
        """Upserts before the exports (an export must name a netgroup that holds its hosts),
        removals after them."""
        if run.stopped_by is not None:
            return
        changes = [c for c in plan.netgroups if (c.action != NetgroupAction.REMOVE) == upserts]
        for change in [c for c in changes if c.project in run.failed]:
            run.add(ApplyResult(change.project, f"netgroup-{change.action}", False, SKIPPED))
        todo = [c for c in changes if c.project not in run.failed]
        for result in apply_netgroups(self.cfg.directory.ldap, todo):
            run.record(result)


@contextlib.contextmanager
def _deferred_signals(run: _Run) -> Iterator[None]:
    """SIGINT/SIGTERM mark the run as stopping instead of cutting the current step in half."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        run.stopped_by = signum
        log.warning("%s received: finishing the current step, then stopping",
                    signal.Signals(signum).name)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _log_project(project: str, done: list[ApplyResult]) -> None:
    """One log line per project touched (what a timer's journal should show), errors apart."""
    text = "; ".join(f"{r.action} ({r.detail})" if r.ok else f"{r.action} FAILED: {r.detail}"
                     for r in done)
    (log.info if all(r.ok for r in done) else log.error)("%s: %s", project, text)
