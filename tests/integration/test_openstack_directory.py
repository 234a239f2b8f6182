"""directory.source = "openstack" against a real Keystone and the real Nova compute API (two regions)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner import config as config_module
from provisioner.directory.openstack import OpenStackDirectory, read_openstack
from tests.conftest import Workspace
from tests.integration.conftest import broken_region, onboard_all
from tests.support.openstack_data import EXPECTED_FIXED, R1, READER_PW, OpenStackData
from tests.support.openstack_services import IMAGE, admin_connection

ALL = ("alpha", "beta", "gamma", "zeta", "epsilon")


def _plan(ws: Workspace) -> dict[str, Any]:
    result = ws.homevol("exports", "plan", "--json")
    assert result.code == 0, result.stderr
    return dict(result.json)


def _clients(plan: dict[str, Any]) -> dict[str, list[str]]:
    return {e["project"]: e["clients"] for e in plan["exports"] if e["clients"]}


def _onboard_everything(ws: Workspace) -> None:
    """One sync with ``sync.onboard = "all"`` gives every valid, unheld project a home (and its
    export): one directory read instead of one per ``onboard``."""
    ws.configure(sync={"onboard": "all"})
    result = ws.homevol("sync")
    assert result.code == 0, result.stdout + result.stderr


def _ours(clients: dict[str, list[str]]) -> dict[str, list[str]]:
    """The seeded projects' clients (other tests add projects of their own to the shared cloud)."""
    return {p: c for p, c in clients.items() if p in (*ALL, "delta", "Bad.Name")}


def _as_observer(ws: Workspace) -> None:
    password = ws.root / "observer.password"
    password.write_text(READER_PW + "\n")
    ws.configure(directory={"openstack": {"username": "observer", "password_file": str(password),
                                          "project": "", "mode": "per-project"}})


def test_each_project_gets_exactly_its_servers_fixed_addresses(openstack_workspace: Workspace) -> None:
    _onboard_everything(openstack_workspace)
    plan = _plan(openstack_workspace)
    assert _ours(_clients(plan)) == EXPECTED_FIXED
    assert not (openstack_workspace.base / "delta").exists()  # disabled: no home made
    assert plan["source"].startswith("openstack:http://127.0.0.1:")


def test_floating_addresses_only_when_asked(openstack_workspace: Workspace) -> None:
    onboard_all(openstack_workspace, "alpha")
    openstack_workspace.configure(directory={"openstack": {"addresses": ["fixed", "floating"]}})
    assert _clients(_plan(openstack_workspace))["alpha"] == ["10.20.1.11", "10.20.1.12", "172.24.4.11"]


def test_findings_name_every_oddity(openstack_workspace: Workspace) -> None:
    seen = {(f["kind"], f["project"], f["host"]) for f in _plan(openstack_workspace)["findings"]}
    assert ("address-conflict", "beta", "10.20.2.21") in seen
    assert ("address-conflict", "gamma", "10.20.2.21") in seen
    assert ("project-disabled", "delta", None) in seen
    assert ("server-not-exported", "beta", "beta-shelved") in seen
    assert ("server-not-exported", "beta", "beta-broken") in seen
    assert ("invalid-project-name", "Bad.Name", None) in seen
    kinds = {kind for kind, _, _ in seen}
    assert "host-without-address" in kinds


def test_the_sync_writes_the_exports_and_the_gid_tag_is_read(openstack_workspace: Workspace) -> None:
    onboard_all(openstack_workspace, "alpha", "gamma")
    result = openstack_workspace.homevol("sync", "--json")
    assert result.code == 0, result.stderr
    files = openstack_workspace.exports_files()
    assert "10.20.1.11(" in files["homevol-alpha.exports"]
    assert "10.20.2.21" not in files["homevol-gamma.exports"]
    from provisioner.world import read_directory

    cfg = config_module.load(str(openstack_workspace.config_path), environ={})
    _, inventory = read_directory(cfg)
    assert inventory.projects["alpha"].gid == 61001
    assert inventory.projects["alpha"].wants_home


def test_the_least_privilege_reader_sees_the_same_clients(openstack_workspace: Workspace) -> None:
    _onboard_everything(openstack_workspace)
    _as_observer(openstack_workspace)
    plan = _plan(openstack_workspace)
    assert _ours(_clients(plan)) == EXPECTED_FIXED


DEDICATED_PW = "dedicated-secret"


def _dedicated_reader(cloud: Any) -> Any:
    """examples/openstack/reader-role.sh through the API: homevol-reader implies reader, held on
    homevol's own project; the suite's Keystone and Nova run the shipped policy files."""
    role, reader = cloud.role("homevol-reader"), cloud.role("reader")
    response = cloud.admin.identity.put(f"/roles/{role.id}/implies/{reader.id}")
    assert response.status_code in (200, 201), response.text
    own = cloud.admin.identity.create_project(name="homevol-svc", domain_id="default")
    return cloud.user("homevol-dedicated", DEDICATED_PW, {str(own.id): "homevol-reader"})


def test_a_dedicated_reader_role_reads_every_project_without_admin(
        openstack_workspace: Workspace, openstack_cloud: OpenStackData) -> None:
    import openstack
    from openstack import exceptions

    _dedicated_reader(openstack_cloud.cloud)
    _onboard_everything(openstack_workspace)
    password = openstack_workspace.root / "dedicated.password"
    password.write_text(DEDICATED_PW + "\n")
    openstack_workspace.configure(directory={"openstack": {
        "username": "homevol-dedicated", "password_file": str(password), "project": "homevol-svc"}})
    assert _ours(_clients(_plan(openstack_workspace))) == EXPECTED_FIXED
    # the role reads and never writes: no project, no server, not even in its own project
    conn = openstack.connect(auth_url=openstack_cloud.cloud.keystone.url, username="homevol-dedicated",
                             password=DEDICATED_PW, project_name="homevol-svc",
                             user_domain_name="Default", project_domain_name="Default", region_name=R1)
    with pytest.raises(exceptions.ForbiddenException):
        conn.identity.create_project(name="not-by-homevol", domain_id="default")
    with pytest.raises(exceptions.ForbiddenException):
        conn.compute.create_server(name="not-by-homevol", flavor_id="1", image_id=IMAGE, networks="none")


def test_all_projects_mode_makes_a_constant_number_of_calls(openstack_workspace: Workspace,
                                                            openstack_cloud: OpenStackData) -> None:
    cfg = config_module.load(str(openstack_workspace.config_path), environ={})
    first = read_openstack(cfg.directory.openstack, str(openstack_workspace.root / "state"))
    again = read_openstack(cfg.directory.openstack, str(openstack_workspace.root / "state"))
    extra = openstack_cloud.cloud.project("calls-extra")
    openstack_cloud.cloud.server(extra, "calls-1", R1, ip="10.20.9.1")
    second = read_openstack(cfg.directory.openstack, str(openstack_workspace.root / "state"))
    assert second.operations == again.operations
    assert first.searches == 3  # projects + one listing per region
    # the process's next read uses the same tokens (homevol listen): no token request
    assert again.operations < first.operations


def test_a_project_deleted_between_the_two_calls_is_a_finding(
        openstack_workspace: Workspace, openstack_cloud: OpenStackData,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cloud = openstack_cloud.cloud
    doomed = cloud.project("doomed")
    cloud.admin.identity.assign_project_role_to_user(doomed, cloud.admin.identity.find_user("observer"),
                                                     cloud.role("reader"))
    _as_observer(openstack_workspace)
    cfg = config_module.load(str(openstack_workspace.config_path), environ={})
    listing = OpenStackDirectory.projects

    def list_then_delete(self: OpenStackDirectory) -> list[dict[str, Any]]:
        projects = listing(self)
        cloud.admin.identity.delete_project(doomed)
        return projects

    monkeypatch.setattr(OpenStackDirectory, "projects", list_then_delete)
    snapshot = read_openstack(cfg.directory.openstack, str(openstack_workspace.root / "state"))
    kinds = {(f.kind, f.project) for f in snapshot.findings}
    assert ("forbidden-project", "doomed") in kinds
    assert any(h.projects == ("alpha",) and "10.20.1.11" in h.addresses for h in snapshot.hosts)


def test_servers_of_a_deleted_project_still_claim_their_address(openstack_workspace: Workspace,
                                                                openstack_cloud: OpenStackData) -> None:
    cloud = openstack_cloud.cloud
    gone = cloud.project("gone")
    cloud.server(gone, "gone-1", R1, network="net-x", ip="10.20.1.11")  # alpha-web1's address
    cloud.admin.identity.delete_project(gone)
    onboard_all(openstack_workspace, "alpha")
    plan = _plan(openstack_workspace)
    assert "10.20.1.11" not in _clients(plan).get("alpha", [])
    assert "server-of-unlisted-project" in {f["kind"] for f in plan["findings"]}
    admin = admin_connection(cloud.keystone)  # the catalog as it is now, compute included
    admin.compute.delete_server(next(admin.compute.servers(all_projects=True, name="gone-1")), force=True)


def test_a_disabled_project_loses_its_export_and_keeps_its_data(openstack_workspace: Workspace,
                                                                openstack_cloud: OpenStackData) -> None:
    cloud = openstack_cloud.cloud
    theta = cloud.project("theta")
    cloud.server(theta, "theta-1", R1, ip="10.20.7.71")
    onboard_all(openstack_workspace, "theta")
    assert openstack_workspace.homevol("sync").code == 0
    assert "homevol-theta.exports" in openstack_workspace.exports_files()
    (openstack_workspace.base / "theta" / "data.txt").write_text("kept")
    cloud.admin.identity.update_project(theta, is_enabled=False)
    # theta's is the only export of this workspace, but one client is within exports.removal_floor
    result = openstack_workspace.homevol("sync", "--json")
    assert result.code == 0, result.stderr
    assert "homevol-theta.exports" not in openstack_workspace.exports_files()
    assert (openstack_workspace.base / "theta" / "data.txt").read_text() == "kept"
    assert ("project-disabled", "theta") in {(f["kind"], f["project"]) for f in result.json["findings"]}


def test_a_rename_is_a_finding_never_a_new_home(openstack_workspace: Workspace,
                                                openstack_cloud: OpenStackData) -> None:
    cloud = openstack_cloud.cloud
    eta = cloud.project("eta")
    cloud.server(eta, "eta-1", R1, ip="10.20.8.81")
    openstack_workspace.configure(sync={"onboard": "all"})
    onboard_all(openstack_workspace, "eta")
    assert openstack_workspace.homevol("sync").code == 0
    cloud.admin.identity.update_project(eta, name="eta-renamed")
    result = openstack_workspace.homevol("sync", "--json", "--force")
    assert result.code == 0, result.stderr
    findings = {(f["kind"], f["project"]) for f in result.json["findings"]}
    assert ("project-renamed", "eta-renamed") in findings
    assert not (openstack_workspace.base / "eta-renamed").exists()
    assert (openstack_workspace.base / "eta").is_dir()
    openstack_workspace.configure(directory={"openstack": {"accept_renames": [eta.id]}})
    accepted = _plan(openstack_workspace)["findings"]
    assert "project-renamed" not in {f["kind"] for f in accepted}


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A socket that accepts connections and never answers (a hung Keystone)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v3"
    sock.close()


def _refused(ws: Workspace, **openstack: Any) -> None:
    _onboard_everything(ws)
    before = ws.exports_files()
    assert before
    ws.configure(directory={"openstack": openstack})
    result = ws.homevol("sync")
    assert result.code == 3, result.stdout + result.stderr
    assert ws.exports_files() == before


def test_a_wrong_password_changes_nothing(openstack_workspace: Workspace, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    _refused(openstack_workspace, password_file=str(wrong))


def test_a_5xx_changes_nothing(openstack_workspace: Workspace, failing_endpoint: str) -> None:
    _refused(openstack_workspace, auth_url=failing_endpoint)


def test_a_timeout_changes_nothing(openstack_workspace: Workspace, silent_endpoint: str) -> None:
    _refused(openstack_workspace, auth_url=silent_endpoint, timeout=1.0)


def test_an_unreachable_keystone_changes_nothing(openstack_workspace: Workspace) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _refused(openstack_workspace, auth_url=f"http://127.0.0.1:{port}/v3")


def test_zero_projects_or_zero_servers_change_nothing(openstack_workspace: Workspace,
                                                      openstack_cloud: OpenStackData) -> None:
    cloud = openstack_cloud.cloud
    empty = cloud.project("empty")
    cloud.user("lonely", "lonely-secret", {})
    cloud.user("emptyreader", "empty-secret", {empty.id: "reader"})
    for user, password in (("lonely", "lonely-secret"), ("emptyreader", "empty-secret")):
        ws_password = openstack_workspace.root / f"{user}.password"
        ws_password.write_text(password + "\n")
        openstack_workspace.configure(directory={"openstack": {
            "username": "admin", "password_file": str(openstack_workspace.root / "openstack.password"),
            "project": "admin", "mode": "all-projects"}})
        onboard_all(openstack_workspace, "alpha")
        assert openstack_workspace.homevol("sync").code == 0
        before = openstack_workspace.exports_files()
        openstack_workspace.configure(directory={"openstack": {
            "username": user, "password_file": str(ws_password), "project": "", "mode": "per-project"}})
        result = openstack_workspace.homevol("sync")
        assert result.code == 3, result.stdout + result.stderr
        assert openstack_workspace.exports_files() == before


def test_a_reader_in_all_projects_mode_is_refused_and_changes_nothing(
        openstack_workspace: Workspace) -> None:
    """Keystone answers 403 to a project reader's GET /v3/projects: the whole read stops."""
    password = openstack_workspace.root / "observer.password"
    password.write_text(READER_PW + "\n")
    _refused(openstack_workspace, username="observer", password_file=str(password), project="alpha")


def test_a_5xx_from_one_nova_region_changes_nothing(openstack_workspace: Workspace,
                                                   openstack_cloud: OpenStackData,
                                                   failing_endpoint: str) -> None:
    region = broken_region(openstack_cloud.cloud, failing_endpoint, "Broken")
    _refused(openstack_workspace, regions=[R1, region])
