"""`homevol hook`: lifecycle events touch only their project, and are safe to repeat and reorder."""

from __future__ import annotations

import json
import threading

import pytest

from provisioner.exports.kernel import parse
from tests.conftest import Workspace


def _inventory(ws: Workspace, hosts: dict[str, list[str]], projects: list[str] | None = None) -> None:
    lines = [f"[projects.{p}]" for p in (projects if projects is not None else list(hosts))]
    for project, addresses in hosts.items():
        for index, address in enumerate(addresses):
            lines += ["[[hosts]]", f'name = "{project}-{index}.eqiad.wmflabs"',
                      f'address = "{address}"', f'project = "{project}"']
    (ws.root / "inventory.toml").write_text("\n".join(lines) + "\n")


def _clients(ws: Workspace, project: str) -> tuple[str, ...]:
    text = ws.exports_files().get(f"homevol-{project}.exports")
    if text is None:
        return ()
    rule, owned, edited = parse(project, text)
    assert rule is not None and owned and not edited
    return rule.clients


BASE = {"alpha": ["10.0.1.1", "10.0.1.2"], "beta": ["10.0.2.1", "10.0.2.2"]}


def test_project_created_onboards_the_project_once(workspace: Workspace) -> None:
    _inventory(workspace, BASE)
    first = workspace.homevol("hook", "project-created", "alpha", "--json")
    assert first.code == 0, first.stderr
    assert _clients(workspace, "alpha") == ("10.0.1.1", "10.0.1.2")
    again = workspace.homevol("hook", "project-created", "alpha", "--json")
    assert again.code == 0 and again.json["results"] == []


def test_project_created_for_a_project_not_in_the_directory_creates_nothing(
    workspace: Workspace,
) -> None:
    _inventory(workspace, BASE)
    result = workspace.homevol("hook", "project-created", "gamma")
    assert result.code == 1
    assert "not in the directory" in result.stderr
    assert not (workspace.base / "gamma").exists()


def test_instance_created_before_project_created_creates_nothing(workspace: Workspace) -> None:
    _inventory(workspace, BASE)
    result = workspace.homevol("hook", "instance-created", "gamma", "gamma-0.eqiad.wmflabs", "--json")
    assert result.code == 0, result.stderr
    assert "not a project in the directory" in result.json["notes"][0]
    assert not workspace.base.exists() and workspace.exports_files() == {}


def test_instance_created_for_a_project_without_a_volume_exports_nothing(workspace: Workspace) -> None:
    _inventory(workspace, BASE)
    result = workspace.homevol("hook", "instance-created", "alpha", "10.0.1.1", "--json")
    assert result.code == 0
    assert "no homevol volume" in result.json["notes"][0]
    assert workspace.exports_files() == {}


def test_instance_created_updates_only_that_projects_clients(workspace: Workspace) -> None:
    _inventory(workspace, BASE)
    for project in ("alpha", "beta"):
        assert workspace.homevol("hook", "project-created", project).code == 0
    _inventory(workspace, {"alpha": [*BASE["alpha"], "10.0.1.3"], "beta": ["10.0.2.1", "10.0.2.9"]})
    result = workspace.homevol("hook", "instance-created", "alpha", "alpha-2.eqiad.wmflabs", "--json")
    assert result.code == 0, result.stderr
    assert result.json["notes"] == []
    assert _clients(workspace, "alpha") == ("10.0.1.1", "10.0.1.2", "10.0.1.3")
    assert _clients(workspace, "beta") == ("10.0.2.1", "10.0.2.2")  # untouched until its own event


def test_instance_deleted_of_a_host_already_gone_is_a_noop_with_a_note(workspace: Workspace) -> None:
    _inventory(workspace, BASE)
    assert workspace.homevol("hook", "project-created", "alpha").code == 0
    before = workspace.exports_files()
    result = workspace.homevol("hook", "instance-deleted", "alpha", "10.0.1.99", "--json")
    assert result.code == 0
    assert "not a host of alpha" in result.json["notes"][0]
    assert workspace.exports_files() == before


def test_instance_deleted_while_the_directory_still_lists_it_keeps_access(workspace: Workspace) -> None:
    _inventory(workspace, BASE)
    assert workspace.homevol("hook", "project-created", "alpha").code == 0
    result = workspace.homevol("hook", "instance-deleted", "alpha", "10.0.1.2", "--json")
    assert result.code == 0
    assert "still a host of alpha" in result.json["notes"][0]
    assert "10.0.1.2" in _clients(workspace, "alpha")


def test_instance_deleted_after_the_directory_dropped_it_revokes(workspace: Workspace) -> None:
    _inventory(workspace, {"alpha": ["10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4"]})
    assert workspace.homevol("hook", "project-created", "alpha").code == 0
    _inventory(workspace, {"alpha": ["10.0.1.1", "10.0.1.2", "10.0.1.3"]})
    result = workspace.homevol("hook", "instance-deleted", "alpha", "10.0.1.4")
    assert result.code == 0, result.stderr
    assert _clients(workspace, "alpha") == ("10.0.1.1", "10.0.1.2", "10.0.1.3")


def test_project_deleted_retires_and_never_purges(workspace: Workspace) -> None:
    _inventory(workspace, BASE)
    assert workspace.homevol("hook", "project-created", "alpha").code == 0
    (workspace.base / "alpha" / "data").write_text("keep")
    _inventory(workspace, {"beta": BASE["beta"]})
    for _ in range(2):
        result = workspace.homevol("hook", "project-deleted", "alpha")
        assert result.code == 0, result.stderr
    assert (workspace.base / "alpha" / "data").read_text() == "keep"
    assert _clients(workspace, "alpha") == ()


def test_reordered_and_duplicated_events_converge(workspace: Workspace) -> None:
    _inventory(workspace, BASE)
    events = [("instance-created", "alpha", "10.0.1.1"), ("project-created", "alpha", None),
              ("instance-created", "alpha", "10.0.1.2"), ("project-created", "alpha", None),
              ("instance-created", "alpha", "10.0.1.1")]
    for kind, project, host in events:
        result = workspace.homevol("hook", kind, project, *([host] if host else []))
        assert result.code == 0, result.stderr
    assert _clients(workspace, "alpha") == ("10.0.1.1", "10.0.1.2")


def test_the_event_can_come_as_json_on_stdin(workspace: Workspace) -> None:
    _inventory(workspace, BASE)
    event = {"event": "project-created", "project": "beta"}
    result = workspace.homevol("hook", stdin=json.dumps(event))
    assert result.code == 0, result.stderr
    assert _clients(workspace, "beta") == ("10.0.2.1", "10.0.2.2")


@pytest.mark.parametrize(("args", "stdin"), [
    (["hook", "exploded", "alpha"], None),
    (["hook", "project-created", "Alpha"], None),
    (["hook", "project-created", "alpha", "extra.host"], None),
    (["hook", "instance-created", "alpha"], None),
    (["hook", "instance-created", "alpha", "x(rw) *"], None),
    (["hook", "instance-created", "alpha", "10.0.0.1/8"], None),
    (["hook"], "not json"),
    (["hook"], '["project-created", "alpha"]'),
    (["hook"], '{"event": "project-created", "project": "alpha", "force": true}'),
    (["hook"], '{"event": "project-created", "project": 7}'),
])
def test_bad_events_are_refused_with_one_line(
    workspace: Workspace, args: list[str], stdin: str | None
) -> None:
    _inventory(workspace, BASE)
    result = workspace.homevol(*args, stdin=stdin)
    assert result.code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not workspace.base.exists()


def test_twenty_concurrent_hooks_all_apply_and_corrupt_nothing(workspace: Workspace) -> None:
    hosts = {f"p{i:02d}": [f"10.1.{i}.1", f"10.1.{i}.2"] for i in range(20)}
    _inventory(workspace, hosts)
    workspace.configure(lock_timeout=120.0)
    results = []

    def fire(project: str) -> None:
        results.append(workspace.homevol("hook", "project-created", project))

    threads = [threading.Thread(target=fire, args=(p,)) for p in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.code for r in results] == [0] * 20, [r.stderr for r in results if r.code]
    for project, addresses in hosts.items():
        assert _clients(workspace, project) == tuple(addresses)
