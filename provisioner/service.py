"""The commands, each on the one data path: observe → plan → guards → execute → outcome.

Every command (sync, exports, onboard, offboard, purge, resize, and the hook through them)
names a scope and an ``Intent``; ``observe`` reads the world for that scope, ``make_plan``
decides, the guards judge the whole plan, and a dry run stops there. Otherwise the executor
applies it one step at a time with a result per item: a failure in one project never stops
the others; a failure of a whole source stops before any change.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from types import TracebackType

from backends import Capability, VolumeBackend, get_backend

from . import guards
from .config import Config
from .directory import Snapshot
from .errors import ApplyError, BackendError, GuardRefused, InvalidInput
from .execute import Executor
from .exports import Applier, ApplyResult, get_applier
from .lock import held
from .model import Inventory, Volume, VolumeState, home_path
from .names import project_name_problem
from .placement import Placement
from .plan import Command, Intent, Onboard, Plan, Policy, desired_exports, make_plan
from .sizes import format_size, parse_size
from .world import DirectoryNeed, Scope, World, observe, read_directory

Directory = tuple[Snapshot, Inventory]


@dataclass
class Outcome:
    plan: Plan
    results: list[ApplyResult] = field(default_factory=list)
    applied: bool = False
    source: str = ""
    searches: int = 0
    operations: int = 0
    notes: list[str] = field(default_factory=list)
    refused: GuardRefused | None = None  # set on dry runs that a guard would refuse
    volumes: dict[str, Volume] = field(default_factory=dict)  # as observed, then as applied
    interrupted: int | None = None  # the signal (SIGINT, SIGTERM) that stopped the run early
    steps: int = 0  # how many steps the plan had (for "interrupted after N of M")

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


@dataclass(frozen=True)
class Difference:
    """Where the running NFS server disagrees with what the directory asks for."""

    project: str
    path: str
    missing: tuple[str, ...]  # clients the directory allows that the server refuses
    extra: tuple[str, ...]  # clients the server admits that the directory does not allow
    head: str = ""  # which Ganesha head differs, where there are several

    def to_dict(self) -> dict[str, object]:
        found: dict[str, object] = {"project": self.project, "path": self.path,
                                    "missing": list(self.missing), "extra": list(self.extra)}
        if self.head:
            found["head"] = self.head
        return found


class Homevol:
    """One run's wiring: config, backend, exports applier, placement. Close it when done."""

    def __init__(self, cfg: Config, backend: VolumeBackend | None = None) -> None:
        self.cfg = cfg
        self.backend = backend or get_backend(cfg)
        self.applier: Applier = get_applier(cfg, self.backend)
        self.placement = Placement(cfg.placement)

    def __enter__(self) -> Homevol:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()
        self.applier.close()

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return held(self.cfg.lock_path, self.cfg.lock_timeout)

    # ----- the data path ---------------------------------------------------------------------
    def policy(self) -> Policy:
        caps = self.backend.capabilities
        return Policy(export_base=self.cfg.export_base, exports=self.cfg.exports,
                      onboard=Onboard(self.cfg.sync.onboard),
                      default_size=parse_size(self.cfg.backend.default_size),
                      netgroup_base=self.cfg.directory.ldap.netgroup_base,
                      mounts=Capability.MOUNTS in caps,
                      acl_for=self.backend.acl_for if Capability.CLIENT_ACL in caps else None,
                      acl_name=self.backend.acl_name)

    def observe(self, scope: Scope, *, need: DirectoryNeed = DirectoryNeed.REQUIRED,
                usage: bool = False, directory: Directory | None = None) -> World:
        return observe(self.cfg, self.backend, self.applier, scope, need=need, usage=usage,
                       directory=directory, placement=self.placement)

    def read_directory(self, scope: Scope | None = None) -> Directory:
        return read_directory(self.cfg, scope or Scope())

    def path_of(self, project: str) -> str:
        return home_path(self.cfg.export_base, project)

    def decide(self, world: World, intent: Intent, *, dry_run: bool, force: bool) -> Outcome:
        """Plan, guard, and (unless a dry run) execute; a dry run still shows a refused plan."""
        _refuse_newer_stamps(world, intent)
        plan = make_plan(world, intent, self.policy())
        if world.applied.partial and guards.needs_total(plan, intent, force,
                                                        self.cfg.exports.removal_floor):
            # the share is over every exported client: read the other files only now, when a
            # removal beyond the floor makes it matter (a hook's usual change never does)
            plan.exported_clients = self.applier.applied().clients
        outcome = Outcome(plan, source=world.source, searches=world.searches,
                          operations=world.operations, notes=list(world.notes),
                          volumes=dict(world.volumes))
        try:
            guards.check_plan(plan, intent, self.cfg.exports.max_removal_share, force,
                              floor=self.cfg.exports.removal_floor)
        except GuardRefused as refusal:
            if not dry_run:
                raise
            outcome.refused = refusal
        if not dry_run:  # a head that could not be read is that head's failure, not the set's
            outcome.results += [ApplyResult("", "head-read", False, f"head {h.head}: {h.error}; "
                                            "not compared with the export set, which is left as it is")
                                for h in world.heads or () if h.error is not None]
        if dry_run or plan.empty:
            return outcome
        run = Executor(self.cfg, self.backend, self.applier, self.placement).run(plan, world, intent)
        outcome.results += run.results
        outcome.volumes, outcome.interrupted = run.volumes, run.stopped_by
        outcome.steps = len(plan.volumes) + len(plan.changes) + len(plan.netgroups)
        outcome.applied = True
        return outcome

    # ----- commands ------------------------------------------------------------------------
    def sync(self, *, project: str | None = None, dry_run: bool = False, force: bool = False,
             directory: Directory | None = None) -> Outcome:
        world = _known(self.observe(_scope(project), directory=directory))
        return self.decide(world, Intent(Command.SYNC), dry_run=dry_run, force=force)

    def exports(self, *, project: str | None = None, dry_run: bool = False, force: bool = False,
                directory: Directory | None = None) -> Outcome:
        world = _known(self.observe(_scope(project), directory=directory))
        return self.decide(world, Intent(Command.EXPORTS), dry_run=dry_run, force=force)

    def onboard(self, project: str, size_bytes: int | None, *, dry_run: bool = False,
                adopt: bool = False, force: bool = False, directory: Directory | None = None
                ) -> Outcome:
        project = _checked(project)
        world = self.observe(Scope.of([project]), directory=directory)
        assert world.inventory is not None
        if project not in world.inventory.projects:
            raise InvalidInput(f"{project}: not a project in the directory ({world.source})")
        intent = Intent(Command.ONBOARD, frozenset({project}), size_bytes, adopt=adopt)
        outcome = self.decide(world, intent, dry_run=dry_run, force=force)
        existing = world.volumes.get(project)
        if existing is not None and size_bytes and existing.size_bytes != size_bytes:
            outcome.notes.append(f"{project} already has a volume of "
                                 f"{format_size(existing.size_bytes)}; use resize to change it")
        return outcome

    def offboard(self, project: str, *, dry_run: bool = False) -> Outcome:
        """Retire: unexport and unmount, keep the data. Needs no directory (but for netgroups)."""
        project = _checked(project)
        world = self.observe(Scope.of([project]), need=DirectoryNeed.NETGROUPS)
        _refuse_newer_stamps(world, Intent(Command.OFFBOARD, frozenset({project})))
        volume = world.volumes.get(project)
        if volume is None:
            outcome = Outcome(Plan())
            outcome.notes.append(f"{project}: no volume owned by homevol; nothing to do")
            return self._still_served(outcome, world, project, dry_run)
        outcome = self.decide(world, Intent(Command.OFFBOARD, frozenset({project})),
                              dry_run=dry_run, force=False)
        if volume.state == VolumeState.RETIRED:
            outcome.notes.append(f"{project}: already retired")
        return self._still_served(outcome, world, project, dry_run)

    def purge(self, project: str, *, dry_run: bool = False, retain_snapshots: bool = False
              ) -> Outcome:
        """Retire, unmount, then delete the volume and all its data."""
        project = _checked(project)
        if retain_snapshots and Capability.RETAIN_SNAPSHOTS not in self.backend.capabilities:
            raise BackendError(f"the {self.backend.name} backend keeps no snapshots; "
                               "--retain-snapshots does not apply")
        world = self.observe(Scope.of([project]), need=DirectoryNeed.NETGROUPS)
        if project not in world.volumes and project not in world.applied.rules:
            _known(self.observe(Scope.of([project])))  # a typo is exit 2, not "already gone"
        intent = Intent(Command.PURGE, frozenset({project}), retain_snapshots=retain_snapshots)
        return self._still_served(self.decide(world, intent, dry_run=dry_run, force=False),
                                  world, project, dry_run)

    def resize(self, project: str, size_bytes: int, *, force: bool = False,
               dry_run: bool = False) -> Outcome:
        project = _checked(project)
        world = self.observe(Scope.of([project]), need=DirectoryNeed.NONE, usage=True)
        current = world.volumes.get(project)
        if current is None:
            raise InvalidInput(f"{project}: no volume owned by homevol")
        # a dry run checks the usage it read; a real run leaves the judgement to the backend
        # (Ceph refuses in its own words, with its own up-to-date usage)
        if dry_run and not force and current.used_bytes is not None and size_bytes < current.used_bytes:
            raise BackendError(f"{project}: {format_size(size_bytes)} is below current usage "
                               f"({format_size(current.used_bytes)}); use --force")
        intent = Intent(Command.RESIZE, frozenset({project}), size_bytes, shrink=force)
        return self.decide(world, intent, dry_run=dry_run, force=False)

    def _still_served(self, outcome: Outcome, world: World, project: str, dry_run: bool
                      ) -> Outcome:
        """Offboard and purge promise the home is no longer exported: ask the running server.
        It can still export it from a file homevol does not see: a wrong exports directory
        setting (the directory then is missing), or an operator's own file elsewhere."""
        if dry_run or outcome.interrupted is not None:
            return outcome
        path = self.path_of(project)
        heads = self.applier.read_heads(frozenset({path}))  # one read per head
        clients = next((live.clients for h in heads if (live := h.exports.get(path))), None)
        errors = [f"head {h.head}: {h.error}" for h in heads if h.error is not None]
        if errors and world.applied.missing is not None:
            outcome.notes.append(f"the exports directory {world.applied.missing} does not "
                                 f"exist and the server could not be asked about {path}: "
                                 f"{'; '.join(errors)}")
        if clients:
            where = (f"the configured exports directory {world.applied.missing} does not exist"
                     if world.applied.missing is not None
                     else "from a file homevol does not manage")
            outcome.results.append(ApplyResult(
                project, "export-remove", False, f"{path} is still exported by the NFS server to "
                f"{len(clients)} clients ({where}); check the exports directory setting"))
        return outcome

    def listing(self, usage: bool = False) -> World:
        """``homevol list``: the volumes and the applied exports; no directory needed."""
        return self.observe(Scope(), need=DirectoryNeed.NONE, usage=usage)

    def verify(self, project: str | None = None) -> tuple[list[Difference], int]:
        """Ask the running server what it exports and compare with the directory; read-only.

        Returns the differences and the number of exports checked."""
        scope = _scope(project)
        world = _known(self.observe(Scope()), project)
        states = {p: v.state for p, v in world.volumes.items()}
        desired = desired_exports(world.inventory, states, self.policy())
        heads = world.heads if world.heads is not None else self.applier.read_heads()
        for head in heads:
            if head.error is not None:
                raise ApplyError(f"head {head.head}: {head.error}" if len(heads) > 1 else head.error)
        base = self.cfg.export_base.rstrip("/") + "/"
        differences, checked = [], 0
        for head in heads:  # every head must serve exactly the directory's exports
            live = head.clients()
            paths = {self.path_of(p): p for p in desired}
            paths.update({path: path[len(base):] for path in live
                          if path.startswith(base) and path not in paths})
            for path, name in sorted(paths.items()):
                if not scope.covers(name):
                    continue
                rule = desired.get(name, (None, ""))[0]
                want, have = set(rule.clients if rule else ()), set(live.get(path, ()))
                if want != have:
                    differences.append(Difference(name, path, tuple(sorted(want - have)),
                                                  tuple(sorted(have - want)),
                                                  head.head if len(heads) > 1 else ""))
            checked = max(checked, len(paths) if scope.everything else len(scope.projects or ()))
        return differences, checked


def _refuse_newer_stamps(world: World, intent: Intent) -> None:
    """A volume a newer homevol stamped is left alone: a command naming it says so (exit 1)."""
    for finding in world.backend_findings:
        if finding.kind == "stamp-too-new" and finding.project in intent.projects:
            raise BackendError(finding.detail)


def _known(world: World, project: str | None = None) -> World:
    """A project a command names must be one homevol can know of: in the directory, or with a
    volume or an export (InvalidInput, exit 2, for a typo)."""
    names = world.scope.projects or ({project} if project else set())
    for name in names:
        if world.inventory is not None and name not in world.inventory.projects \
                and name not in world.volumes and name not in world.applied.rules \
                and name not in world.applied.blocked:
            raise InvalidInput(f"{name}: not a project in the directory ({world.source}), and "
                               "homevol has no volume or export for it")
    return world


def _scope(project: str | None) -> Scope:
    return Scope() if project is None else Scope.of([_checked(project)])


def _checked(project: str) -> str:
    problem = project_name_problem(project)
    if problem:
        raise InvalidInput(f"invalid project name: {problem}")
    return project
