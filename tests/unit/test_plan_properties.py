"""The plan as a specification: idempotent, never wider than the directory, never out of scope,
and judged whole by the guards."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner import guards
from provisioner.errors import GuardRefused
from provisioner.exports.desired import clients_for
from provisioner.model import VolumeState
from provisioner.plan import Command, Intent, Onboard, Plan, Policy, Step, VolumeAction, make_plan
from provisioner.world import Scope, World
from tests.unit.world_model import NAMES, cases, policy, simulate

SYNC = Intent(Command.SYNC)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_applying_a_sync_plan_and_observing_again_gives_an_empty_plan(case: tuple[Policy, World]) -> None:
    pol, world = case
    plan = make_plan(world, SYNC, pol)
    again = make_plan(simulate(world, plan), SYNC, pol)
    assert again.volumes == [] and again.changes == [], (plan, again)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from(NAMES), st.sampled_from([Command.ONBOARD, Command.OFFBOARD, Command.PURGE]))
def test_a_named_command_then_a_sync_converges(case: tuple[Policy, World], project: str,
                                               command: Command) -> None:
    pol, world = case
    world.scope = Scope.of([project])  # a named command observes its project
    plan = make_plan(world, Intent(command, frozenset({project})), pol)
    after = simulate(world, plan)
    after.scope = Scope()
    if command is Command.PURGE:
        assert project not in after.volumes
    elif command is Command.OFFBOARD and project in world.volumes:
        assert after.volumes[project].state == VolumeState.RETIRED
        assert project not in after.applied.rules
    again = make_plan(simulate(after, make_plan(after, SYNC, pol)), SYNC, pol)
    assert again.volumes == [] and again.changes == []


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_no_plan_gives_a_client_the_directory_does_not_allow(case: tuple[Policy, World]) -> None:
    pol, world = case
    assert world.inventory is not None
    for change in make_plan(world, SYNC, pol).exports:
        if change.after is not None:
            allowed = set(clients_for(world.inventory, change.project, pol.exports))
            assert set(change.after.clients) <= allowed
            assert world.volumes.get(change.project) is None or \
                world.volumes[change.project].state != VolumeState.RETIRED


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_no_plan_touches_a_project_outside_its_scope(case: tuple[Policy, World]) -> None:
    pol, world = case
    plan = make_plan(world, SYNC, pol)
    touched = {a.project for a in plan.volumes} | {c.project for c in plan.changes} \
        | {n.project for n in plan.netgroups}
    assert all(world.scope.covers(p) for p in touched)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_without_the_directory_an_active_home_keeps_its_export(case: tuple[Policy, World]) -> None:
    pol, world = case
    world.inventory = None
    for command in (Command.RESIZE, Command.OFFBOARD):
        for project in NAMES:
            world.scope = Scope.of([project])
            plan = make_plan(world, Intent(command, frozenset({project}), 1 << 31), pol)
            volume = world.volumes.get(project)
            active = volume is not None and volume.state == VolumeState.ACTIVE
            for change in plan.changes:
                assert change.project == project
                assert command is Command.OFFBOARD or not active  # a retired home's export goes
            assert all(a.project == project or a.action is Step.UNMOUNT for a in plan.volumes)


def test_a_sync_never_gets_past_the_guards_with_a_retire_or_a_purge() -> None:
    for step in (Step.RETIRE, Step.PURGE):
        plan = Plan(volumes=[VolumeAction("alpha", step)])
        with pytest.raises(GuardRefused, match="did not name"):
            guards.check_plan(plan, SYNC, 1.0, force=True)
        guards.check_plan(plan, Intent(Command.PURGE, frozenset({"alpha"})), 1.0, force=False)


def test_the_removal_share_spares_only_the_named_project() -> None:
    from provisioner.exports import ExportAction, ExportChange
    from provisioner.model import ExportRule

    rule = ExportRule("alpha", "/export/home/alpha", ("10.0.0.1", "10.0.0.2"), ())
    plan = Plan(exports=[ExportChange("alpha", ExportAction.REMOVE, rule, None)], exported_clients=3)
    with pytest.raises(GuardRefused, match="removes 2 of 3"):
        guards.check_plan(plan, SYNC, 0.25, force=False)
    guards.check_plan(plan, Intent(Command.OFFBOARD, frozenset({"alpha"})), 0.25, force=False)


def test_a_gluster_style_client_list_is_in_the_dry_run() -> None:
    """auth.allow is planned like any other change: its before and after are in the plan."""
    from provisioner.exports import AppliedState
    from provisioner.model import RawHost, RawProject, Volume
    from tests.unit.world_model import BASE, ExportRule, Snapshot, build_inventory, home_path

    inventory = build_inventory(Snapshot((RawProject("cn=alpha", "alpha"),),
                                         (RawHost("h1", ("alpha",), ("10.68.0.1",), ("h1.test",)),), "t"))
    path = home_path(BASE, "alpha")
    world = World(Scope(), inventory, "t",
                  volumes={"alpha": Volume("alpha", "gluster", path, 1, acl="NONE")},
                  applied=AppliedState(rules={"alpha": ExportRule("alpha", path, ("10.68.0.1",), ())}))
    steps = make_plan(world, SYNC, policy(False, True, Onboard.NONE)).steps(Step.CLIENTS)
    assert [(s.project, s.reason, s.value) for s in steps] == [
        ("alpha", "auth.allow 10.68.0.1 (was NONE)", "10.68.0.1")]
