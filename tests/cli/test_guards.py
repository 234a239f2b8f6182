"""Every safety guard: refused plans exit 3 and change nothing; each test fails without its guard."""

from __future__ import annotations

from tests.conftest import Workspace


def _hosts(project: str, count: int, net: str) -> str:
    return "".join(
        f'[[hosts]]\nname = "{project}-{i}.eqiad.wmflabs"\naddress = "{net}.{i + 1}"\n'
        f'project = "{project}"\n\n' for i in range(count)
    )


def _inventory(ws: Workspace, alpha: int = 4, beta: int = 4, projects: str | None = None) -> None:
    head = projects if projects is not None else "[projects.alpha]\n[projects.beta]\n"
    hosts = _hosts("alpha", alpha, "10.1.1") + _hosts("beta", beta, "10.1.2")
    (ws.root / "inventory.toml").write_text(head + hosts)


def _onboarded(ws: Workspace) -> dict[str, str]:
    _inventory(ws)
    for project in ("alpha", "beta"):
        assert ws.homevol("onboard", project).code == 0
    return ws.exports_files()


def test_an_empty_directory_is_refused(workspace: Workspace) -> None:
    before = _onboarded(workspace)
    (workspace.root / "inventory.toml").write_text("")
    result = workspace.homevol("sync")
    assert result.code == 3
    assert "no projects" in result.stderr
    assert workspace.exports_files() == before


def test_a_directory_with_projects_but_no_hosts_is_refused(workspace: Workspace) -> None:
    before = _onboarded(workspace)
    _inventory(workspace, alpha=0, beta=0)
    result = workspace.homevol("sync")
    assert result.code == 3
    assert "no hosts" in result.stderr
    assert workspace.exports_files() == before


def test_allow_empty_lets_an_operator_accept_an_empty_directory(workspace: Workspace) -> None:
    _onboarded(workspace)
    _inventory(workspace, alpha=0, beta=0)
    workspace.configure(directory={"allow_empty": True})
    result = workspace.homevol("sync", "--force")
    assert result.code == 0, result.stderr
    assert workspace.exports_files() == {}


def test_a_broken_directory_file_is_refused(workspace: Workspace) -> None:
    before = _onboarded(workspace)
    (workspace.root / "inventory.toml").write_text("[projects.alpha\n")
    result = workspace.homevol("sync")
    assert result.code == 3
    assert "not valid TOML" in result.stderr
    assert workspace.exports_files() == before


def test_removing_more_than_the_share_of_clients_is_refused(workspace: Workspace) -> None:
    before = _onboarded(workspace)  # 8 clients exported
    _inventory(workspace, alpha=1, beta=4)  # would remove 3 of 8 = 37% > 25%
    result = workspace.homevol("sync")
    assert result.code == 3
    assert "removes 3 of 8" in result.stderr
    assert workspace.exports_files() == before
    dry = workspace.homevol("sync", "--dry-run")
    assert dry.code == 3  # the dry run says the same, after showing the plan it would refuse
    assert "-10.1.1.2" in dry.stdout and "removes 3 of 8" in dry.stderr
    plan = workspace.homevol("exports", "plan", "--json")
    assert plan.code == 3 and "removes 3 of 8" in plan.json["refused"]


def test_force_applies_a_large_removal(workspace: Workspace) -> None:
    _onboarded(workspace)
    _inventory(workspace, alpha=1, beta=4)
    result = workspace.homevol("sync", "--force")
    assert result.code == 0, result.stderr
    assert workspace.exports_files()["homevol-alpha.exports"].count("10.1.1.") == 1


def test_a_small_removal_passes_the_guard(workspace: Workspace) -> None:
    _onboarded(workspace)
    _inventory(workspace, alpha=3, beta=4)  # 1 of 8 = 12.5%
    assert workspace.homevol("sync").code == 0


def test_a_removal_within_the_floor_passes_whatever_the_share(workspace: Workspace) -> None:
    """A tiny site: 2 clients; deleting one is 50%, an everyday event, not a broken directory."""
    _inventory(workspace, alpha=1, beta=1)
    for project in ("alpha", "beta"):
        assert workspace.homevol("onboard", project).code == 0
    _inventory(workspace, alpha=1, beta=0)  # beta's only instance deleted: 1 of 2 clients
    passed = workspace.homevol("sync")
    assert passed.code == 0, passed.stderr  # 1 removed <= exports.removal_floor (1)
    assert "10.1.2.1" not in workspace.exports_files().get("homevol-beta.exports", "")
    _inventory(workspace, alpha=1, beta=1)
    assert workspace.homevol("sync").code == 0
    workspace.configure(exports={"removal_floor": 0})  # every removal guarded again
    _inventory(workspace, alpha=1, beta=0)
    refused = workspace.homevol("sync")
    assert refused.code == 3 and "removes 1 of 2" in refused.stderr


def test_a_project_vanishing_from_the_directory_counts_as_removal(workspace: Workspace) -> None:
    before = _onboarded(workspace)
    _inventory(workspace, projects="[projects.alpha]\n")  # beta's 4 of 8 clients would go
    result = workspace.homevol("sync")
    assert result.code == 3
    assert workspace.exports_files() == before


def test_an_explicit_offboard_is_exempt_from_the_share_guard(workspace: Workspace) -> None:
    _onboarded(workspace)
    result = workspace.homevol("offboard", "alpha")  # 4 of 8 clients, on purpose
    assert result.code == 0, result.stderr
    assert "homevol-alpha.exports" not in workspace.exports_files()


def test_the_share_guard_counts_every_project_on_the_scoped_path(workspace: Workspace) -> None:
    """A hook reads only its project's exports file, but the share is still over all 8 clients:
    removing 3 of alpha's 4 is 3 of 8 (37%), refused; the same over alpha's 4 alone would be 75%."""
    before = _onboarded(workspace)
    _inventory(workspace, alpha=1, beta=4)
    for args in (("hook", "instance-deleted", "alpha", "10.1.1.2"), ("sync", "--project", "alpha")):
        result = workspace.homevol(*args)
        assert result.code == 3 and "removes 3 of 8" in result.stderr, result.stderr
        assert workspace.exports_files() == before
    _inventory(workspace, alpha=3, beta=4)  # 1 of 8, within the floor: no total needed
    assert workspace.homevol("hook", "instance-deleted", "alpha", "10.1.1.4").code == 0


def test_a_project_missing_from_a_scoped_read_of_an_empty_directory_changes_nothing(
        workspace: Workspace) -> None:
    before = _onboarded(workspace)
    (workspace.root / "inventory.toml").write_text("")
    for args in (("hook", "instance-deleted", "alpha", "10.1.1.1"), ("sync", "--project", "alpha")):
        result = workspace.homevol(*args)
        assert result.code == 3 and "no projects" in result.stderr
        assert workspace.exports_files() == before
