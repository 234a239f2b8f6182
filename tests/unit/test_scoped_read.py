"""The scoped read: for any directory, the plan for P from P's scoped snapshot is the full
plan restricted to P (its exports, volume steps, gids, netgroups and findings)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner.config import ClientMode, ExportsConfig
from provisioner.directory import Snapshot
from provisioner.directory.scoped import narrow
from provisioner.exports import AppliedState
from provisioner.guards import check_snapshot
from provisioner.inventory import build_inventory
from provisioner.model import ExportRule, Finding, RawHost, RawProject, Volume, VolumeState, home_path
from provisioner.plan import Command, Intent, Onboard, Plan, make_plan
from provisioner.world import Scope, World
from tests.unit.world_model import BASE, policy

NAMES = ("alpha", "beta", "gamma", "Delta", "x y")  # two of them invalid
ADDRESSES = ("10.68.0.1", "10.68.0.2", "10.68.0.3", " 10.68.0.3", "203.0.113.9", "10.68.0.01", "bad")
HOSTNAMES = ("a.test", "A.test", "b.test", "*.c.test", "c.test")


@st.composite
def directories(draw: st.DrawFn) -> Snapshot:
    projects = [RawProject(dn=f"cn={name},{i}", name=name, nested=draw(st.booleans()) and i > 2,
                           gid=draw(st.sampled_from([None, 500, 501, 502])), wants_home=draw(st.booleans()))
                for i, name in enumerate(draw(st.lists(st.sampled_from(NAMES), max_size=6)))]
    hosts = [RawHost(dn=f"h{i}", projects=tuple(draw(st.lists(st.sampled_from(NAMES), max_size=2))),
                     addresses=tuple(draw(st.lists(st.sampled_from(ADDRESSES), max_size=2))),
                     names=tuple(draw(st.lists(st.sampled_from(HOSTNAMES), max_size=2))),
                     dns_domain=draw(st.integers(0, 9)) == 0, instance=draw(st.integers(0, 9)) > 0)
             for i in range(draw(st.integers(0, 8)))]
    return Snapshot(tuple(projects), tuple(hosts), "test")


def _plan(snapshot: Snapshot, project: str, mode: ClientMode, volumes: dict[str, Volume],
          rules: dict[str, ExportRule]) -> Plan:
    pol = policy(mounts=False, acl=False, onboard=Onboard.ALL)
    pol = replace(pol, exports=ExportsConfig(clients=mode))
    inventory = build_inventory(snapshot, clients=mode)
    world = World(Scope.of([project]), inventory, "test", volumes=dict(volumes),
                  applied=AppliedState(rules=dict(rules)))
    return make_plan(world, Intent(Command.SYNC), pol)


def _about(findings: list[Finding], project: str) -> list[tuple[str, str, str | None]]:
    return sorted((f.kind, f.detail, f.host) for f in findings if f.project == project)


@settings(max_examples=600, deadline=None)
@given(snapshot=directories(), project=st.sampled_from(NAMES[:3]),
       mode=st.sampled_from([ClientMode.ADDRESS, ClientMode.HOSTNAME]),
       state=st.sampled_from([None, *VolumeState]), exported=st.booleans())
def test_the_scoped_plan_is_the_full_plan_restricted_to_the_project(
        snapshot: Snapshot, project: str, mode: ClientMode, state: VolumeState | None,
        exported: bool) -> None:
    path = home_path(BASE, project)
    volumes = {} if state is None else {project: Volume(project, "test", path, 1 << 30, None, state)}
    rules = {project: ExportRule(project, path, ("10.68.0.9",), ("rw",))} if exported else {}
    full = _plan(snapshot, project, mode, volumes, rules)
    scoped_snapshot = narrow(snapshot, frozenset({project}))
    scoped = _plan(scoped_snapshot, project, mode, volumes, rules)
    assert scoped.exports == full.exports
    assert scoped.volumes == full.volumes
    assert scoped.gids == full.gids
    assert _about(scoped.findings, project) == _about(full.findings, project)
    # the empty-directory guard judges the whole directory, not the scope
    assert (scoped_snapshot.has_projects, scoped_snapshot.has_hosts) == \
        (bool(snapshot.projects), bool(snapshot.hosts))


def test_a_project_missing_from_a_scoped_read_of_an_empty_directory_is_refused() -> None:
    import pytest

    from provisioner.errors import GuardRefused

    empty = narrow(Snapshot((), (), "test"), frozenset({"alpha"}))
    with pytest.raises(GuardRefused, match="no projects"):
        check_snapshot(empty, allow_empty=False)
    elsewhere = narrow(Snapshot((RawProject("cn=beta", "beta"),), (RawHost("h", ("beta",)),), "test"),
                       frozenset({"alpha"}))
    check_snapshot(elsewhere, allow_empty=False)  # alpha is really gone: no refusal
    assert elsewhere.projects == () and elsewhere.hosts == ()


def test_the_scoped_snapshot_holds_only_what_bears_on_the_project() -> None:
    hosts = tuple(RawHost(f"h{i}", (f"p{i % 50}",), (f"10.0.{i // 250}.{i % 250}",), (f"h{i}.test",))
                  for i in range(1000))
    shared = RawHost("stale", ("p7",), ("10.0.0.0",))  # p0's first address, reused
    projects = tuple(RawProject(f"cn=p{i}", f"p{i}", gid=1000 + i) for i in range(50))
    snapshot = narrow(Snapshot(projects, (*hosts, shared), "test"), frozenset({"p0"}))
    assert len(snapshot.hosts) == 21 and {p.name for p in snapshot.projects} == {"p0", "p7"}
    inventory = build_inventory(snapshot)
    assert "10.0.0.0" in inventory.conflicted
    assert all("10.0.0.0" not in h.addresses for h in inventory.hosts_of("p0"))
