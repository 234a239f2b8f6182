"""The audit is the sync plan rendered: every step kind a sync can plan shows as a finding, and
every finding is a planned step, a declared fact, or a source's own finding."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings

from provisioner.audit import COMMAND_ONLY_STEPS, FACT_KINDS, STEP_FINDINGS, render
from provisioner.directory import Snapshot
from provisioner.exports import AppliedState, ExportAction
from provisioner.inventory import build_inventory
from provisioner.model import ExportRule, RawHost, RawNetgroup, RawProject, Volume, VolumeState, home_path
from provisioner.placement import MountCheck, MountState, render_unit
from provisioner.plan import Command, Intent, Onboard, Plan, Policy, Step, make_plan
from provisioner.world import Placed, Scope, World
from tests.unit.world_model import BASE, cases, mount_plan, policy

SYNC = Intent(Command.SYNC)
ADDR = "10.68.0.1"


def _inventory(netgroups: bool = False) -> World:
    snapshot = Snapshot((RawProject("cn=alpha", "alpha", wants_home=True),),
                        (RawHost("h1", ("alpha",), (ADDR,), ("h1.test",)),), "test",
                        netgroups=() if netgroups else None)
    return World(Scope(), build_inventory(snapshot), "test")


def _volume(state: VolumeState = VolumeState.ACTIVE, acl: str | None = None) -> Volume:
    return Volume("alpha", "test", home_path(BASE, "alpha"), 1 << 30, None, state, acl)


def _exported(clients: tuple[str, ...] = (ADDR,), options: tuple[str, ...] | None = None) -> AppliedState:
    opts = options if options is not None else (*policy(False, False, Onboard.NONE).exports.options,
                                                "fsid=" + __import__("provisioner.exports.desired",
                                                                     fromlist=["fsid"]).fsid("alpha"))
    return AppliedState(rules={"alpha": ExportRule("alpha", home_path(BASE, "alpha"), clients, opts)})


def _mounted(state: MountState = MountState.MOUNTED, unit: bool = True) -> dict[str, Placed]:
    target, plan = home_path(BASE, "alpha"), mount_plan("alpha")
    return {"alpha": Placed(plan, MountCheck(state, target), render_unit("alpha", target, plan)
                            if unit else None)}


def _world_for(kind: str) -> tuple[World, Policy]:
    """A world in which a sync plans a step of ``kind`` for alpha."""
    world, plain = _inventory(), policy(False, False, Onboard.NONE)
    mounting, acl = policy(True, False, Onboard.NONE), policy(False, True, Onboard.NONE)
    exported = _exported()
    cases: dict[str, tuple[dict[str, object], Policy]] = {
        Step.CREATE: ({}, policy(False, False, Onboard.OPT_IN)),
        Step.FINISH: ({"volumes": {"alpha": _volume(VolumeState.CREATING)}}, plain),
        Step.MOUNT: ({"volumes": {"alpha": _volume()}, "applied": exported,
                      "placed": _mounted(MountState.NOT_MOUNTED)}, mounting),
        Step.UNIT: ({"volumes": {"alpha": _volume()}, "applied": exported,
                     "placed": _mounted(unit=False)}, mounting),
        Step.CLIENTS: ({"volumes": {"alpha": _volume(acl="NONE")}, "applied": exported}, acl),
        Step.UNMOUNT: ({"volumes": {"alpha": _volume(VolumeState.RETIRED)}, "placed": _mounted()},
                       mounting),
        ExportAction.ADD: ({"volumes": {"alpha": _volume()}}, plain),
        ExportAction.UPDATE: ({"volumes": {"alpha": _volume()}, "applied": _exported(("10.68.0.9",))},
                              plain),
        ExportAction.REMOVE: ({"volumes": {"alpha": _volume(VolumeState.RETIRED)}, "applied": exported},
                              plain),
    }
    if kind == "netgroup":
        world = _inventory(netgroups=True)
        return replace(world, volumes={"alpha": _volume()}), replace(plain, exports=replace(
            plain.exports, clients="netgroup"))
    fields, pol = cases[kind]
    return replace(world, **fields), pol  # type: ignore[arg-type]


def _kinds_of(plan: Plan, project: str) -> set[str]:
    kinds: set[str] = {str(a.action) for a in plan.volumes if a.project == project}
    kinds |= {str(c.action) for c in plan.changes if c.project == project}
    if any(n.project == project for n in plan.netgroups):
        kinds.add("netgroup")
    return kinds


def test_every_step_kind_of_a_sync_is_reported_by_the_audit() -> None:
    for kind, expected in STEP_FINDINGS.items():
        world, pol = _world_for(kind)
        plan = make_plan(world, SYNC, pol)
        assert kind in _kinds_of(plan, "alpha"), (kind, plan)
        report = render(world, plan, pol, ["alpha"], 0.9, "test", "kernel")
        assert {f.kind for f in report.findings} & expected, (kind, report.findings)


def test_the_steps_a_sync_never_makes_are_declared() -> None:
    every = {str(s) for s in Step} | {str(a) for a in ExportAction if a not in (
        ExportAction.UNCHANGED, ExportAction.BLOCKED)}
    assert every == {str(k) for k in STEP_FINDINGS if k != "netgroup"} | {str(s) for s in COMMAND_ONLY_STEPS}


def _step_kinds_for(finding_kind: str) -> set[str]:
    return {str(k) for k, kinds in STEP_FINDINGS.items() if finding_kind in kinds}


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_every_audit_finding_is_a_planned_step_a_fact_or_a_source_finding(case: tuple[Policy, World]) -> None:
    pol, world = case
    world.scope = Scope()
    plan = make_plan(world, SYNC, pol)
    assert world.inventory is not None
    names = sorted(set(world.inventory.projects) | set(world.volumes) | set(world.applied.rules))
    report = render(world, plan, pol, names, 0.9, "test", "kernel")
    sourced = {(f.kind, f.project) for f in plan.findings}
    for finding in report.findings:
        if (finding.kind, finding.project) in sourced or finding.kind in FACT_KINDS:
            continue
        assert finding.project is not None
        assert _step_kinds_for(finding.kind) & _kinds_of(plan, finding.project), finding


def test_a_netgroup_blocked_by_a_foreign_entry_is_not_a_step() -> None:
    world = _inventory(netgroups=True)
    assert world.inventory is not None
    world.inventory.netgroups = {"homevol-alpha": RawNetgroup("cn=homevol-alpha", "homevol-alpha", (), False)}
    pol = policy(False, False, Onboard.NONE)
    world = replace(world, volumes={"alpha": _volume()})
    plan = make_plan(world, SYNC, replace(pol, exports=replace(pol.exports, clients="netgroup")))
    assert [n.action for n in plan.netgroups] == ["blocked"]


def test_a_unit_disabled_by_hand_is_enabled_again_and_reported() -> None:
    placed = {"alpha": replace(_mounted()["alpha"], enabled=False)}
    world = replace(_inventory(), volumes={"alpha": _volume()}, applied=_exported(), placed=placed)
    pol = policy(True, False, Onboard.NONE)
    plan = make_plan(world, SYNC, pol)
    assert [(a.action, a.reason) for a in plan.volumes] == [
        (Step.UNIT, "disabled: the home would not be mounted at the next boot")]
    report = render(world, plan, pol, ["alpha"], 0.9, "test", "kernel")
    assert "mount-unit-drift" in {f.kind for f in report.findings}
    enabled = {"alpha": replace(placed["alpha"], enabled=True)}
    assert make_plan(replace(world, placed=enabled), SYNC, pol).empty
