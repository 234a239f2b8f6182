"""The commands' one code path: directory → inventory → plan → guards → apply → outcome.

Each public function builds a Plan; with ``dry_run`` it stops there, otherwise it applies the
plan one project at a time and records a result per item. A failure in one project never stops
the others; a failure of a whole source (directory, backend listing) stops before any change.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import typing
from dataclasses import dataclass, field

from backends import VolumeBackend, get_backend

from . import guards
from .config import Config
from .directory import Snapshot, read_snapshot
from .errors import BackendError, GuardRefused, HomevolError, InvalidInput
from .exports import Applier, ApplyResult, ExportChange, get_applier
from .exports.desired import clients_for, export_rule
from .inventory import build_inventory
from .lock import held
from .model import ExportRule, Finding, Inventory, Volume, VolumeState
from .names import parse_networks, project_name_problem
from .netgroup import apply_netgroups, plan_netgroups
from .placement import Placement, check_mount, read_mounts
from .plan import Plan, VolumeAction, plan_exports
from .progress import progress
from .sizes import format_size, parse_size

log = logging.getLogger("homevol")


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

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


class Homevol:
    """The wiring of one run: config, backend, exports applier and the directory reader."""

    def __init__(self, cfg: Config, backend: VolumeBackend | None = None) -> None:
        self.cfg = cfg
        self.backend = backend or get_backend(cfg)
        self.applier: Applier = get_applier(cfg, self.backend)
        self.placement = Placement(cfg.placement)

    # ----- reading -------------------------------------------------------------------------
    def read_directory(self) -> tuple[Snapshot, Inventory]:
        snapshot = read_snapshot(self.cfg)
        guards.check_snapshot(snapshot, self.cfg.directory.allow_empty)
        networks = parse_networks(self.cfg.exports.extra_client_networks)
        return snapshot, build_inventory(snapshot, networks, self.cfg.exports.clients)

    def path_of(self, project: str) -> str:
        return f"{self.cfg.export_base.rstrip('/')}/{project}"

    def desired(self, inventory: Inventory, volumes: list[Volume], creating: set[str]
                ) -> dict[str, tuple[ExportRule | None, str]]:
        wanted: dict[str, tuple[ExportRule | None, str]] = {}
        active = {v.project for v in volumes if v.state == VolumeState.ACTIVE} | creating
        for project in active:
            if project not in inventory.projects:
                wanted[project] = (None, "project not in the directory")
                continue
            rule = export_rule(inventory, project, self.path_of(project), self.cfg.exports)
            wanted[project] = (rule, "" if rule else "no clients in the directory")
        return wanted

    def build_plan(self, inventory: Inventory, *, scope: set[str] | None,
                   creates: dict[str, int], retires: set[str],
                   listing: tuple[list[Volume], list[Finding]] | None = None) -> Plan:
        volumes, backend_findings = listing or self.backend.list()
        retired_now = [Volume(v.project, v.backend, v.path, v.size_bytes, v.used_bytes,
                              VolumeState.RETIRED) if v.project in retires else v for v in volumes]
        applied = self.applier.applied()
        plan = Plan(findings=[*inventory.findings, *backend_findings, *applied.findings])
        if inventory.projects:  # an orphan is only an orphan when the directory was read
            plan.findings += [
                Finding("volume-without-project", f"{v.path}: project {v.project} is not in the "
                        "directory; not exported, data kept (purge deletes it)", project=v.project)
                for v in volumes if v.project not in inventory.projects
                and v.state == VolumeState.ACTIVE and (scope is None or v.project in scope)]
        plan.volumes = [VolumeAction(p, "create", size) for p, size in sorted(creates.items())]
        plan.volumes += self._placement_repairs(volumes, scope, retires)
        plan.volumes += [VolumeAction(p, "retire") for p in sorted(retires)]
        desired = self.desired(inventory, retired_now, set(creates))
        plan.exports = plan_exports(desired, applied, scope)
        if inventory.netgroups is not None:
            exported = {project for project, (rule, _) in desired.items() if rule is not None}
            plan.netgroups = plan_netgroups(inventory, exported, self.cfg.exports.netgroup_prefix,
                                            self.cfg.directory.ldap.netgroup_base, scope)
        plan.exported_clients = sum(len(r.clients) for r in applied.rules.values())
        return plan

    def _placement_repairs(self, volumes: list[Volume], scope: set[str] | None,
                           retires: set[str]) -> list[VolumeAction]:
        """Active volumes not mounted where the export expects them, and retired ones still
        mounted (an offboard that stopped between unexporting and unmounting); mountinfo is
        read once."""
        mounts = read_mounts(self.cfg.export_base)
        repairs = []
        for volume in volumes:
            if volume.project in retires or (scope is not None and volume.project not in scope):
                continue
            mount = self.backend.mount_plan(volume)
            if mount is None:
                continue
            target = self.path_of(volume.project)
            if volume.state == VolumeState.RETIRED:
                if target in mounts:
                    repairs.append(VolumeAction(volume.project, "unmount", reason="retired, still mounted"))
                continue
            state = check_mount(volume, target, mount.spec, mounts)
            if state.state != "mounted":
                repairs.append(VolumeAction(volume.project, "mount", reason=state.detail or state.state))
        return repairs

    def _place(self, project: str) -> str:
        volume = self.backend.info(project, usage=False)
        if volume is None:
            raise BackendError(f"{project}: the volume vanished")
        mount = self.backend.mount_plan(volume)
        if mount is None:
            return ""
        return self.placement.ensure(project, volume, self.path_of(project), mount)

    def _unplace(self, project: str) -> str:
        volume = self.backend.info(project, usage=False)
        mount = self.backend.mount_plan(volume) if volume is not None else None
        if volume is None or mount is None:
            return ""
        return self.placement.release(volume, self.path_of(project), mount)

    # ----- applying ------------------------------------------------------------------------
    def apply(self, plan: Plan, inventory: Inventory, *, adopt: bool = False) -> list[ApplyResult]:
        results: list[ApplyResult] = []
        failed: set[str] = set()
        for action in progress(plan.volumes, "volumes"):
            try:
                if action.action == "create":
                    gid = inventory.projects[action.project].gid
                    self.backend.ensure(action.project, action.size_bytes or 0, gid, adopt=adopt)
                    placed = self._place(action.project)
                    detail = f"{format_size(action.size_bytes)} on {self.backend.name}" + (
                        f", {placed}" if placed else "")
                elif action.action == "mount":
                    detail = f"{self._place(action.project)} ({action.reason})"
                elif action.action == "unmount":
                    continue  # after the exports, below
                else:
                    self.backend.retire(action.project)
                    detail = "data kept"
                results.append(ApplyResult(action.project, f"volume-{action.action}", True, detail))
            except (HomevolError, OSError) as exc:
                failed.add(action.project)
                results.append(ApplyResult(action.project, f"volume-{action.action}", False, str(exc)))
        # a netgroup must hold its hosts before an export names it, and go only after it
        upserts = [c for c in plan.netgroups if c.action != "remove"]
        for result in apply_netgroups(self.cfg.directory.ldap, upserts):
            results.append(result)
            if not result.ok:
                failed.add(result.project)
        todo: dict[str, ExportChange] = {}
        for change in plan.changes:
            if change.project in failed:
                results.append(ApplyResult(change.project, f"export-{change.action}", False,
                                           "skipped: an earlier step for this project failed"))
            elif change.action == "blocked":
                results.append(ApplyResult(change.project, "export-blocked", False, change.reason))
            else:
                todo[change.project] = change
        for result in self.applier.apply(list(todo.values())) if todo else []:
            change = todo[result.project]
            summary = f"+{len(change.added)} -{len(change.removed)} clients"
            results.append(ApplyResult(result.project, f"export-{result.action}", result.ok,
                                       result.detail or summary))
            if not result.ok:
                failed.add(result.project)
        removals = [c for c in plan.netgroups if c.action == "remove"]
        results += apply_netgroups(self.cfg.directory.ldap, removals)
        for action in plan.volumes:  # unmount only once nothing exports the path any more
            if action.action not in ("retire", "unmount") or action.project in failed:
                continue
            try:
                unplaced = self._unplace(action.project)
                if unplaced:
                    results.append(ApplyResult(action.project, "volume-unmount", True, unplaced))
            except (HomevolError, OSError) as exc:
                results.append(ApplyResult(action.project, "volume-unmount", False, str(exc)))
        _log_per_project(results)
        return results

    def _run(self, inventory: Inventory, snapshot: Snapshot, *, scope: set[str] | None,
             creates: dict[str, int], retires: set[str], dry_run: bool, force: bool,
             adopt: bool = False, exempt: set[str] | None = None,
             listing: tuple[list[Volume], list[Finding]] | None = None) -> Outcome:
        listing = listing or self.backend.list()
        plan = self.build_plan(inventory, scope=scope, creates=creates, retires=retires,
                               listing=listing)
        outcome = Outcome(plan, source=snapshot.source, searches=snapshot.searches,
                          operations=snapshot.operations)
        try:
            guards.check_removal_share(plan, self.cfg.exports.max_removal_share, force,
                                       exempt=exempt or set())
        except GuardRefused as refusal:
            if not dry_run:
                raise
            outcome.refused = refusal  # a dry run still shows the plan it would refuse
        if dry_run:
            return outcome
        if not plan.empty:
            outcome.results = self.apply(plan, inventory, adopt=adopt)
        created = [Volume(p, self.backend.name, self.path_of(p), size) for p, size in creates.items()]
        outcome.results += self._backend_clients(inventory, [*listing[0], *created], scope, retires,
                                                 outcome.results)
        outcome.applied = bool(outcome.results) or not plan.empty
        return outcome

    # ----- optional backend hook: each volume's client addresses (gluster's auth.allow) ----------
    def _backend_clients(self, inventory: Inventory, volumes: list[Volume], scope: set[str] | None,
                         retires: set[str], results: list[ApplyResult]) -> list[ApplyResult]:
        """Hand a backend that has ``set_clients(project, addresses) -> str | None`` the addresses
        each in-scope volume is exported to (none when retired or not in the directory). The
        backend compares with what it has and changes only what differs; one result per change."""
        setter = getattr(self.backend, "set_clients", None)
        if setter is None:
            return []
        failed = {r.project for r in results if not r.ok}
        by_address = dataclasses.replace(self.cfg.exports, clients="address")
        out = []
        for volume in sorted({v.project: v for v in volumes}.values(), key=lambda v: v.project):
            project = volume.project
            if (scope is not None and project not in scope) or project in failed:
                continue
            wanted = volume.state == VolumeState.ACTIVE and project not in retires \
                and project in inventory.projects
            addresses = list(clients_for(inventory, project, by_address)) if wanted else []
            try:
                changed = setter(project, addresses)
            except (HomevolError, OSError) as exc:
                out.append(ApplyResult(project, "volume-clients", False, str(exc)))
                log.error("%s: volume-clients FAILED: %s", project, exc)
                continue
            if changed:
                out.append(ApplyResult(project, "volume-clients", True, changed))
                log.info("%s: volume-clients (%s)", project, changed)
        return out

    # ----- commands ------------------------------------------------------------------------
    def locked(self) -> contextlib.AbstractContextManager[None]:
        return held(self.cfg.lock_path, self.cfg.lock_timeout)

    def sync(self, *, project: str | None = None, dry_run: bool = False, force: bool = False
             ) -> Outcome:
        scope = {_checked(project)} if project is not None else None
        snapshot, inventory = self.read_directory()
        listing = self.backend.list()
        known = {v.project for v in listing[0]}
        creates = {}
        policy = self.cfg.sync.onboard
        default = _default_size(self.cfg)
        for name, proj in inventory.projects.items():
            if name in known or (scope is not None and name not in scope):
                continue
            if policy == "all" or (policy == "opt-in" and proj.wants_home):
                creates[name] = default
        return self._run(inventory, snapshot, scope=scope, creates=creates, retires=set(),
                         dry_run=dry_run, force=force, listing=listing)

    def exports(self, *, project: str | None = None, dry_run: bool = False, force: bool = False,
                directory: tuple[Snapshot, Inventory] | None = None) -> Outcome:
        scope = {_checked(project)} if project is not None else None
        snapshot, inventory = directory or self.read_directory()
        return self._run(inventory, snapshot, scope=scope, creates={}, retires=set(),
                         dry_run=dry_run, force=force)

    def onboard(self, project: str, size_bytes: int | None, *, dry_run: bool = False,
                adopt: bool = False, force: bool = False,
                directory: tuple[Snapshot, Inventory] | None = None) -> Outcome:
        project = _checked(project)
        snapshot, inventory = directory or self.read_directory()
        if project not in inventory.projects:
            raise InvalidInput(f"{project}: not a project in the directory ({snapshot.source})")
        existing = self.backend.info(project)
        size = size_bytes or (existing.size_bytes if existing else None) or _default_size(self.cfg)
        creates = {project: size} if existing is None or existing.state != VolumeState.ACTIVE \
            or adopt else {}
        outcome = self._run(inventory, snapshot, scope={project}, creates=creates, retires=set(),
                            dry_run=dry_run, force=force, adopt=adopt)
        if existing is not None and size_bytes and existing.size_bytes != size_bytes:
            outcome.notes.append(f"{project} already has a volume of "
                                 f"{format_size(existing.size_bytes)}; use resize to change it")
        return outcome

    def offboard(self, project: str, *, dry_run: bool = False) -> Outcome:
        project = _checked(project)
        existing = self.backend.info(project)
        if existing is None:
            outcome = Outcome(Plan())
            outcome.notes.append(f"{project}: no volume owned by homevol; nothing to do")
            return outcome
        inventory = Inventory(projects={}, hosts={})  # retiring needs no directory...
        source, notes = "(directory not needed)", []
        if self.cfg.exports.clients == "netgroup":  # ...but removing its netgroup needs a look
            try:
                snapshot = read_snapshot(self.cfg)
                inventory.netgroups = build_inventory(snapshot).netgroups
                source = snapshot.source
            except HomevolError as exc:
                notes.append(f"{project}: netgroup left for the next sync ({exc})")
        retired = existing.state == VolumeState.RETIRED  # then only a leftover mount is undone
        plan = self.build_plan(inventory, scope={project}, creates={},
                               retires=set() if retired else {project})
        plan.findings = []
        outcome = Outcome(plan, source=source, notes=notes)
        if retired:
            outcome.notes.append(f"{project}: already retired")
        if dry_run or plan.empty:
            return outcome
        outcome.results = self.apply(plan, inventory)
        outcome.results += self._backend_clients(inventory, [existing], {project}, {project},
                                                 outcome.results)
        outcome.applied = True
        return outcome

    def purge(self, project: str, *, dry_run: bool = False, retain_snapshots: bool = False) -> Outcome:
        project = _checked(project)
        outcome = self.offboard(project, dry_run=dry_run)
        outcome.plan.volumes.append(VolumeAction(project, "purge", reason="data deleted"))
        if dry_run or not outcome.ok:
            return outcome
        try:
            gone = (_purge_retaining_snapshots(self.backend, project) if retain_snapshots
                    else self.backend.purge(project))
            outcome.results.append(ApplyResult(project, "volume-purge", True,
                                               "data deleted" if gone else "already gone"))
            log.info("%s: volume purged (%s)", project, "data deleted" if gone else "already gone")
        except (HomevolError, OSError) as exc:
            outcome.results.append(ApplyResult(project, "volume-purge", False, str(exc)))
        outcome.applied = True
        return outcome

    def verify(self, project: str | None = None) -> tuple[list[Difference], int]:
        """Ask the running server what it exports and compare with the directory.

        Returns the differences and the number of exports checked; read-only."""
        scope = {_checked(project)} if project is not None else None
        _, inventory = self.read_directory()
        volumes, _ = self.backend.list()
        desired = self.desired(inventory, volumes, set())
        live = self.applier.live()
        base = self.cfg.export_base.rstrip("/") + "/"
        paths = {self.path_of(p): p for p in desired}
        paths.update({path: path[len(base):] for path in live
                      if path.startswith(base) and path not in paths})
        differences = []
        for path, name in sorted(paths.items()):
            if scope is not None and name not in scope:
                continue
            rule = desired.get(name, (None, ""))[0]
            want, have = set(rule.clients if rule else ()), set(live.get(path, ()))
            if want != have:
                differences.append(Difference(name, path, tuple(sorted(want - have)),
                                              tuple(sorted(have - want))))
        return differences, len(paths) if scope is None else len(scope)

    def resize(self, project: str, size_bytes: int, *, force: bool = False,
               dry_run: bool = False) -> Volume:
        project = _checked(project)
        current = self.backend.info(project)
        if current is None:
            raise BackendError(f"{project}: no volume owned by homevol")
        if dry_run:
            if not force and current.used_bytes is not None and size_bytes < current.used_bytes:
                raise BackendError(f"{project}: {format_size(size_bytes)} is below current usage "
                                   f"({format_size(current.used_bytes)}); use --force")
            return current
        volume = self.backend.resize(project, size_bytes, force=force)
        log.info("%s: volume resized %s → %s", project, format_size(current.size_bytes),
                 format_size(size_bytes))
        return volume


@dataclass(frozen=True)
class Difference:
    """Where the running NFS server disagrees with what the directory asks for."""

    project: str
    path: str
    missing: tuple[str, ...]  # clients the directory allows that the server refuses
    extra: tuple[str, ...]  # clients the server admits that the directory does not allow

    def to_dict(self) -> dict[str, object]:
        return {"project": self.project, "path": self.path, "missing": list(self.missing),
                "extra": list(self.extra)}



def _purge_retaining_snapshots(backend: VolumeBackend, project: str) -> bool:
    """``purge --retain-snapshots``: only for a backend whose ``purge`` takes ``retain_snapshots``."""
    if "retain_snapshots" not in inspect.signature(backend.purge).parameters:
        raise BackendError(f"the {backend.name} backend keeps no snapshots; --retain-snapshots "
                           "does not apply")
    return bool(typing.cast(typing.Any, backend).purge(project, retain_snapshots=True))


def _log_per_project(results: list[ApplyResult]) -> None:
    """One log line per project touched (what a timer's journal should show), errors apart."""
    by_project: dict[str, list[ApplyResult]] = {}
    for result in results:
        by_project.setdefault(result.project, []).append(result)
    for project, done in by_project.items():
        text = "; ".join(f"{r.action} ({r.detail})" if r.ok else f"{r.action} FAILED: {r.detail}"
                         for r in done)
        (log.info if all(r.ok for r in done) else log.error)("%s: %s", project, text)


def _checked(project: str) -> str:
    problem = project_name_problem(project)
    if problem:
        raise InvalidInput(f"invalid project name: {problem}")
    return project


def _default_size(cfg: Config) -> int:
    return parse_size(cfg.backend.default_size)
