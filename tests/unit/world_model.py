"""Generated worlds for the plan's property tests, and a model of what the executor does to one.

``simulate(world, plan)`` applies a plan to a world the way the executor would (each step's
effect on what the next ``observe`` would see), with no I/O, so that ``make_plan`` can be
checked against its own output: applying a plan and observing again must give an empty plan.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace

from hypothesis import strategies as st

from provisioner.config import ExportsConfig
from provisioner.directory import Snapshot
from provisioner.exports import AppliedState, ExportAction
from provisioner.inventory import build_inventory
from provisioner.model import ExportRule, RawHost, RawProject, Volume, VolumeState, home_path
from provisioner.placement import MountCheck, MountPlan, MountSpec, MountState, render_unit
from provisioner.plan import Onboard, Plan, Policy, Step
from provisioner.world import Placed, Scope, World

BASE = "/export/home"
NAMES = ("alpha", "beta", "gamma", "delta")
ADDRESSES = tuple(f"10.68.0.{i}" for i in range(1, 7))


def mount_plan(project: str) -> MountPlan:
    source = f"srv:/{project}"
    return MountPlan(MountSpec(source=source, fstype="fuse.test"), ["mount", source],
                     what=source, fstype="fuse.test")


def acl_for(addresses: Sequence[str]) -> str:
    return ",".join(sorted(addresses)) or "NONE"


def policy(mounts: bool, acl: bool, onboard: Onboard) -> Policy:
    return Policy(export_base=BASE, exports=ExportsConfig(), onboard=onboard, default_size=1 << 30,
                  netgroup_base="ou=netgroup,dc=test", mounts=mounts,
                  acl_for=acl_for if acl else None, acl_name="auth.allow")


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    return policy(draw(st.booleans()), draw(st.booleans()), draw(st.sampled_from(list(Onboard))))


@st.composite
def inventories(draw: st.DrawFn) -> Snapshot:
    projects = draw(st.sets(st.sampled_from(NAMES), min_size=1))
    hosts = [RawHost(dn=f"h{i}", projects=(draw(st.sampled_from(NAMES)),),
                     addresses=tuple(draw(st.sets(st.sampled_from(ADDRESSES), max_size=2))),
                     names=(f"h{i}.test",))
             for i in range(draw(st.integers(0, 6)))]
    raw = tuple(RawProject(dn=f"cn={p}", name=p, wants_home=draw(st.booleans())) for p in sorted(projects))
    return Snapshot(projects=raw, hosts=tuple(hosts), source="test")


def _placed(draw: st.DrawFn, project: str, mounts: bool) -> Placed:
    target = home_path(BASE, project)
    plan = mount_plan(project) if mounts else None
    state = draw(st.sampled_from([MountState.MOUNTED, MountState.NOT_MOUNTED, MountState.WRONG_SOURCE]
                                 if mounts else [MountState.MOUNTED]))
    unit = draw(st.sampled_from([None, "stale"])) if mounts else None
    if mounts and state == MountState.MOUNTED and draw(st.booleans()):
        assert plan is not None
        unit = render_unit(project, target, plan)
    enabled = draw(st.sampled_from([None, True, False])) if unit is not None else None
    return Placed(plan, MountCheck(state, target), unit, enabled)


@st.composite
def worlds(draw: st.DrawFn, pol: Policy) -> World:
    snapshot = draw(inventories())
    inventory = build_inventory(snapshot)
    volumes, placed = {}, {}
    for project in draw(st.sets(st.sampled_from(NAMES))):
        state = draw(st.sampled_from(list(VolumeState)))
        acl = draw(st.sampled_from([None, "NONE", ADDRESSES[0]])) if pol.acl_for else None
        volumes[project] = Volume(project, "test", home_path(BASE, project), 1 << 30, None, state, acl)
        placed[project] = _placed(draw, project, pol.mounts)
    rules = {}
    for project in draw(st.sets(st.sampled_from(NAMES))):
        clients = tuple(sorted(draw(st.sets(st.sampled_from(ADDRESSES), min_size=1))))
        rules[project] = ExportRule(project, home_path(BASE, project), clients, ("rw",))
    scope = draw(st.sampled_from([Scope(), *(Scope.of([n]) for n in NAMES)]))
    return World(scope, inventory, "test", volumes=volumes, applied=AppliedState(rules=rules),
                 placed=placed)


def simulate(world: World, plan: Plan) -> World:
    """The world the next observe would see after the executor applied ``plan`` in full."""
    after = copy.deepcopy(world)
    for action in plan.volumes:
        _volume_effect(after, action.project, action.action, action.size_bytes, action.value)
    for change in plan.changes:
        if change.action == ExportAction.BLOCKED:
            continue
        if change.after is None:
            after.applied.rules.pop(change.project, None)
        else:
            after.applied.rules[change.project] = change.after
        after.applied.drifted.discard(change.project)
    return after


def _volume_effect(world: World, project: str, step: Step, size: int | None, value: str | None) -> None:
    volumes, target = world.volumes, home_path(BASE, project)
    current = volumes.get(project)
    if step in (Step.CREATE, Step.FINISH, Step.ACTIVATE):
        acl = current.acl if current else None  # a new volume's list: set by the CLIENTS step
        volumes[project] = Volume(project, "test", target, size, None, VolumeState.ACTIVE, acl)
    elif step is Step.RETIRE and current:
        volumes[project] = replace(current, state=VolumeState.RETIRED)
    elif step is Step.PURGE:
        volumes.pop(project, None)
        world.placed.pop(project, None)
    elif step is Step.CLIENTS and project in volumes:
        volumes[project] = replace(volumes[project], acl=value)
    elif step in (Step.MOUNT, Step.UNIT):
        plan = mount_plan(project)
        world.placed[project] = Placed(plan, MountCheck(MountState.MOUNTED, target),
                                       render_unit(project, target, plan), enabled=True)
    elif step is Step.UNMOUNT:
        world.placed[project] = Placed(mount_plan(project), MountCheck(MountState.NOT_MOUNTED, target))


@st.composite
def cases(draw: st.DrawFn) -> tuple[Policy, World]:
    """A policy, and a world generated for it."""
    pol = draw(policies())
    return pol, draw(worlds(pol))
