"""The scoped OpenStack read against the real Keystone and Nova: the same judgement of P as a full
read, whatever Nova does with its filters, a constant number of calls, and a failure changes nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from provisioner import config as config_module
from provisioner.config import OpenStackConfig
from provisioner.directory import Snapshot
from provisioner.directory.openstack import OpenStackDirectory, read_openstack
from provisioner.errors import DirectoryError
from provisioner.inventory import build_inventory
from provisioner.model import Inventory
from tests.conftest import Workspace
from tests.integration.conftest import broken_region, onboard_all
from tests.support.openstack_data import R1, R2, READER_PW, OpenStackData
from tests.support.openstack_services import admin_connection

CIDR = "10.21.0.0/16"  # Nova keeps only the fixed addresses inside their subnet
SEEDED = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "Bad.Name")


class Messy:
    """More of the oddities a scoped read must judge as the full read does (10.21.0.0/16)."""

    PROJECTS = ("sc-a", "sc-b", "sc-c", "sc-child", "sc-dup", "sc-gid1", "sc-gid2", "sc-renamed2",
                "sc-renamed", "sc-e", "sc-f", "sc-g", "sc-h", "sc-i")

    def __init__(self, data: OpenStackData, state: Path, cfg: OpenStackConfig) -> None:
        self.state = state
        cloud = data.cloud
        admin = cloud.admin

        self.servers: list[tuple[str, Any]] = []  # (region, server): removed afterwards
        self.projects: list[Any] = []  # in the order made: removed in reverse (children first)

        def project(name: str, **fields: Any) -> Any:
            made = admin.identity.create_project(name=name, **{"domain_id": "default", **fields})
            admin.identity.assign_project_role_to_user(made, cloud.builder, cloud.role("member"))
            self.projects.append(made)
            return made

        def top(name: str, tags: list[str] | None = None) -> Any:
            made = cloud.project(name, tags) if tags else cloud.project(name)
            self.projects.append(made)
            return made

        wanted: list[tuple[Any, str, str, dict[str, Any]]] = []  # booted together, below

        def server(owner: Any, name: str, region: str, **how: Any) -> None:
            wanted.append((owner, name, region, how))

        a = top("sc-a")  # one server per region
        server(a, "sc-a1", R1, network="net-sc", cidr=CIDR, ip="10.21.1.1")
        server(a, "sc-a2", R2, network="net-sc", cidr=CIDR, ip="10.21.1.2")
        b, c = top("sc-b"), top("sc-c")  # one address, two projects, two regions
        server(b, "sc-b1", R1, network="net-sc", cidr=CIDR, ip="10.21.2.1")
        server(b, "sc-b2", R1, network="net-sc", cidr=CIDR, ip="10.21.2.2")
        server(c, "sc-c1", R2, network="net-sc-c", cidr=CIDR, ip="10.21.2.1")
        # a child: its parents are walked (Keystone refuses to disable a parent of enabled children)
        child = project("sc-child", parent_id=project("sc-mid", parent_id=top("sc-top").id).id)
        server(child, "sc-child1", R1, network="net-sc", cidr=CIDR, ip="10.21.3.1")
        other = admin.identity.create_domain(name="sc-other")  # one name in two domains
        self.domain = other
        dup = top("sc-dup")
        project("sc-dup", domain_id=other.id)
        server(dup, "sc-dup1", R1, network="net-sc", cidr=CIDR, ip="10.21.4.1")
        top("sc-gid1", ["gid=62001"])  # one gid, two projects
        top("sc-gid2", ["gid=62001"])
        renamed = top("sc-renamed")  # renamed below, once read
        server(renamed, "sc-renamed1", R1, network="net-sc", cidr=CIDR, ip="10.21.5.1")
        ghost, e = top("sc-ghost"), top("sc-e")  # a deleted project's claim (deleted below)
        server(ghost, "sc-ghost1", R1, network="net-sc-x", cidr=CIDR, ip="10.21.6.1")
        server(e, "sc-e1", R1, network="net-sc", cidr=CIDR, ip="10.21.6.1")
        bad, f = top("Sc.Bad"), top("sc-f")  # an invalid name claims nothing
        server(bad, "sc-bad1", R1, network="net-sc-x", cidr=CIDR, ip="10.21.7.1")
        server(f, "sc-f1", R1, network="net-sc", cidr=CIDR, ip="10.21.7.1")
        g, h = top("sc-g"), top("sc-h")  # Nova's ip=10.21.8.1 matches 10.21.8.10
        server(g, "sc-g1", R1, network="net-sc", cidr=CIDR, ip="10.21.8.1")
        server(h, "sc-h1", R1, network="net-sc", cidr=CIDR, ip="10.21.8.10")
        server(top("sc-i"), "sc-i1", R1)  # no address
        self.servers = cloud.active_servers(wanted)
        read_openstack(cfg, str(state))  # remembers sc-renamed's id
        admin.identity.update_project(renamed, name="sc-renamed2")
        admin.identity.delete_project(ghost)

    def remove(self, data: OpenStackData) -> None:
        """What the module made, so that later tests see the seeded cloud only."""
        from openstack.exceptions import ConflictException, NotFoundException

        admins = {r: admin_connection(data.cloud.keystone, r) for r in {r for r, _ in self.servers}}
        for region, server in self.servers:
            with contextlib.suppress(NotFoundException, ConflictException):
                admins[region].compute.delete_server(server, ignore_missing=True, force=True)
        identity = data.cloud.admin.identity
        for project in reversed(self.projects):
            identity.delete_project(project, ignore_missing=True)
        identity.update_domain(self.domain, is_enabled=False)  # a domain is deleted disabled
        identity.delete_domain(self.domain, ignore_missing=True)


@pytest.fixture(scope="module")
def messy(openstack_cloud: OpenStackData, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Messy]:
    state = tmp_path_factory.mktemp("scoped-state")
    made = Messy(openstack_cloud, state, _admin_cfg(openstack_cloud, state))
    yield made
    made.remove(openstack_cloud)


def _admin_cfg(data: OpenStackData, where: Path) -> OpenStackConfig:
    from tests.support.openstack_services import directory_settings

    settings = directory_settings(data.cloud, where / "openstack.password")["openstack"]
    return OpenStackConfig(**settings)


@pytest.fixture
def cfg(openstack_workspace: Workspace) -> OpenStackConfig:
    return config_module.load(str(openstack_workspace.config_path), environ={}).directory.openstack


@pytest.fixture
def state(messy: Messy) -> str:
    """The messy fixture's state dir: the rename memory both reads judge by."""
    return str(messy.state)


def _about(inventory: Inventory, project: str) -> tuple[object, ...]:
    """What a plan for ``project`` can depend on: its entry, its hosts, the findings about it."""
    return (inventory.projects.get(project), inventory.held.get(project),
            sorted(inventory.hosts_of(project), key=lambda h: h.dn),
            sorted((f.kind, f.detail, f.host) for f in inventory.findings if f.project == project))


def _scoped(cfg: OpenStackConfig, state: str, project: str) -> Snapshot:
    return read_openstack(cfg, state, frozenset({project}))


@pytest.fixture(scope="module")
def scoped_reads(messy: Messy) -> dict[str, Snapshot]:
    """Each project's scoped read of the messy cloud, made once for the tests that only judge it."""
    return {}


def test_the_scoped_read_judges_each_project_as_the_full_read(cfg: OpenStackConfig, state: str,
                                                              scoped_reads: dict[str, Snapshot]) -> None:
    full = build_inventory(read_openstack(cfg, state))
    for project in (*SEEDED, *Messy.PROJECTS):
        scoped = scoped_reads[project] = _scoped(cfg, state, project)
        assert scoped.scope == frozenset({project})
        assert _about(build_inventory(scoped), project) == _about(full, project), project


def test_the_oddities_are_judged_from_the_scoped_side(cfg: OpenStackConfig, state: str,
                                                      scoped_reads: dict[str, Snapshot]) -> None:
    def of(project: str) -> Inventory:
        if project not in scoped_reads:  # this test run alone
            scoped_reads[project] = _scoped(cfg, state, project)
        return build_inventory(scoped_reads[project])

    def kinds(inventory: Inventory, project: str) -> set[tuple[str, str | None]]:
        return {(f.kind, f.host) for f in inventory.findings if f.project == project}

    assert sorted(a for h in of("sc-a").hosts_of("sc-a") for a in h.addresses) == ["10.21.1.1", "10.21.1.2"]
    b = of("sc-b")
    assert sorted(h.addresses for h in b.hosts_of("sc-b")) == [(), ("10.21.2.2",)]
    assert ("address-conflict", "10.21.2.1") in kinds(b, "sc-b")  # sc-c's, in the other region
    assert of("sc-child").hosts_of("sc-child")[0].addresses == ("10.21.3.1",)
    assert of("sc-dup").held["sc-dup"] == "duplicate-name"
    assert of("sc-gid1").projects["sc-gid1"].gid is None
    assert of("sc-renamed2").held["sc-renamed2"] == "renamed"
    assert of("sc-e").hosts_of("sc-e")[0].addresses == ()  # the deleted project's server claims it
    assert of("sc-f").hosts_of("sc-f")[0].addresses == ("10.21.7.1",)
    assert of("sc-g").hosts_of("sc-g")[0].addresses == ("10.21.8.1",)  # 10.21.8.10 is not it
    assert any(kind == "host-without-address" and "sc-i1" in str(host)
               for kind, host in kinds(of("sc-i"), "sc-i"))


def test_homevol_plans_p_alone_as_it_plans_p_in_the_whole(openstack_workspace: Workspace,
                                                          messy: Messy) -> None:
    ws = openstack_workspace
    ws.configure(sync={"onboard": "all"})
    assert ws.homevol("sync").code == 0
    full = ws.homevol("exports", "plan", "--json")
    assert full.code == 0, full.stderr
    for project in ("alpha", "sc-b", "sc-e", "sc-i"):  # plain, a conflict, a ghost's claim, no address
        alone = ws.homevol("exports", "plan", "-p", project, "--json")
        assert alone.code == 0, alone.stderr
        for key in ("exports", "findings"):
            assert _of(alone.json, key, project) == _of(full.json, key, project), (project, key)


def _of(plan: dict[str, Any], key: str, project: str) -> list[Any]:
    return sorted((e for e in plan[key] if e.get("project") == project), key=repr)


def _unfiltered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nova as it answers a caller without ``allow_all_filters``: ``project_id`` dropped, every
    server returned; and an ``ip`` filter that matches far more than the address asked for."""
    def servers_of(self: OpenStackDirectory, project_id: str) -> Iterator[Any]:
        return self._servers("unfiltered")

    def servers_at(self: OpenStackDirectory, address: str) -> Iterator[Any]:
        return self._servers("broad", ipv4_address=address.split(".", 1)[0] + ".")

    monkeypatch.setattr(OpenStackDirectory, "servers_of", servers_of)
    monkeypatch.setattr(OpenStackDirectory, "servers_at", servers_at)


def test_a_filter_nova_ignores_widens_nothing(cfg: OpenStackConfig, state: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    full = build_inventory(read_openstack(cfg, state))
    _unfiltered(monkeypatch)
    for project in ("alpha", "beta", "sc-a", "sc-b", "sc-e", "sc-g", "sc-i"):
        scoped = build_inventory(_scoped(cfg, state, project))
        assert _about(scoped, project) == _about(full, project), project


def test_an_ip_answer_without_the_askers_own_server_is_not_trusted(
        cfg: OpenStackConfig, state: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nova asking Neutron logs a failed port search and answers with no server: that answer
    would hide sc-c's claim on 10.21.2.1 and give it to sc-b."""
    monkeypatch.setattr(OpenStackDirectory, "servers_at", lambda self, address: iter(()))
    with pytest.raises(DirectoryError, match=r"ip=10\.21\.2\.1"):
        _scoped(cfg, state, "sc-b")


def test_the_number_of_calls_does_not_grow_with_the_cloud(cfg: OpenStackConfig, state: str,
                                                          openstack_cloud: OpenStackData,
                                                          messy: Messy) -> None:
    """P's entries, its servers and one query per address and region: what P holds decides the
    count, never the rest of the cloud (on this small cloud that can be more requests than the
    full read's constant few; each answers with P's share only)."""
    names = ("alpha", "sc-b", "sc-child", "sc-gid1")
    read_openstack(cfg, state)  # the tokens: kept for the reads of this process
    before = {p: _scoped(cfg, state, p).operations for p in names}
    cloud = openstack_cloud.cloud
    extra = cloud.project("sc-more")
    messy.projects.append(extra)
    for region, ip in ((R1, "10.21.9.1"), (R2, "10.21.9.101")):
        made = cloud.server(extra, f"sc-more-{region}", region, network="net-sc", cidr=CIDR, ip=ip)
        messy.servers.append((region, made))
    assert {p: _scoped(cfg, state, p).operations for p in names} == before


@pytest.mark.parametrize("name", ["sc-nosuch", "*", "alpha*", "../alpha", "a/b", "%", " alpha"])
def test_a_project_the_cloud_lacks_is_judged_against_the_cloud(cfg: OpenStackConfig, state: str,
                                                               name: str) -> None:
    snapshot = _scoped(cfg, state, name)
    assert snapshot.projects == () and snapshot.hosts == ()
    assert snapshot.has_projects and snapshot.has_hosts  # the cloud is not empty


def test_a_scoped_read_refused_by_keystone_changes_nothing(openstack_workspace: Workspace) -> None:
    """A project reader in all-projects mode: Keystone answers 403 to the name query."""
    ws = openstack_workspace
    onboard_all(ws, "alpha")
    assert ws.homevol("sync").code == 0
    before = ws.exports_files()
    password = ws.root / "observer.password"
    password.write_text(READER_PW + "\n")
    ws.configure(directory={"openstack": {"username": "observer", "password_file": str(password),
                                          "project": "alpha"}})
    for args in (("hook", "instance-deleted", "alpha", "10.20.1.11"), ("sync", "--project", "alpha")):
        result = ws.homevol(*args)
        assert result.code == 3, result.stdout + result.stderr
        assert ws.exports_files() == before


def test_a_5xx_from_one_nova_region_in_a_scoped_read_changes_nothing(
        openstack_workspace: Workspace, openstack_cloud: OpenStackData, failing_endpoint: str) -> None:
    ws = openstack_workspace
    onboard_all(ws, "alpha")
    assert ws.homevol("sync").code == 0
    before = ws.exports_files()
    region = broken_region(openstack_cloud.cloud, failing_endpoint, "ScBroken")
    ws.configure(directory={"openstack": {"regions": [R1, R2, region]}})
    for args in (("hook", "instance-deleted", "alpha", "10.20.1.11"), ("sync", "--project", "alpha"),
                 ("exports", "plan", "-p", "alpha")):
        result = ws.homevol(*args)
        assert result.code == 3, result.stdout + result.stderr
        assert ws.exports_files() == before


def test_per_project_mode_narrows_a_full_read(openstack_workspace: Workspace, cfg: OpenStackConfig,
                                              state: str) -> None:
    """A project reader cannot ask who else holds an address: the scoped request reads it all."""
    password = openstack_workspace.root / "observer.password"
    password.write_text(READER_PW + "\n")
    reader = replace(cfg, username="observer", password_file=str(password), project="", mode="per-project")
    full = build_inventory(read_openstack(reader, state))
    scoped = _scoped(reader, state, "alpha")  # each is a whole per-project read: one is enough
    assert scoped.scope == frozenset({"alpha"})
    assert _about(build_inventory(scoped), "alpha") == _about(full, "alpha")
