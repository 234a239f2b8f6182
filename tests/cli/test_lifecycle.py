"""Onboard, offboard, purge, resize, list and doctor on the embedded default (file + local)."""

from __future__ import annotations

import json
import os
import threading

from tests.conftest import Workspace

INVENTORY = """
[projects.alpha]
gid = 61001
[projects.beta]

[[hosts]]
name = "alpha-1.eqiad.wmflabs"
address = "10.68.1.11"
project = "alpha"

[[hosts]]
name = "beta-1.eqiad.wmflabs"
address = "10.68.2.21"
project = "beta"
"""


def _setup(ws: Workspace) -> Workspace:
    (ws.root / "inventory.toml").write_text(INVENTORY)
    return ws


def test_onboard_creates_a_stamped_volume_with_the_projects_gid(workspace: Workspace) -> None:
    ws = _setup(workspace)
    result = ws.homevol("onboard", "alpha", "--size", "5G", "--json")
    assert result.code == 0, result.stderr
    home = ws.base / "alpha"
    stamp = json.loads((home / ".homevol.json").read_text())
    assert stamp["project"] == "alpha" and stamp["size_bytes"] == 5 << 30
    assert home.stat().st_gid == 61001
    assert oct(home.stat().st_mode & 0o7777) == "0o2775"
    assert "10.68.1.11(" in ws.exports_files()["homevol-alpha.exports"]


def test_onboard_twice_changes_nothing_the_second_time(workspace: Workspace) -> None:
    ws = _setup(workspace)
    assert ws.homevol("onboard", "alpha").code == 0
    files = ws.exports_files()
    again = ws.homevol("onboard", "alpha", "--json")
    assert again.code == 0
    assert again.json["volumes"] == [] and again.json["results"] == []
    assert ws.exports_files() == files


def test_onboard_dry_run_shows_the_plan_and_changes_nothing(workspace: Workspace) -> None:
    ws = _setup(workspace)
    result = ws.homevol("onboard", "alpha", "--dry-run")
    assert result.code == 0
    assert "create 10G  alpha" not in result.stdout  # default_size is 1G in the workspace
    assert "create 1G  alpha" in result.stdout
    assert "+ alpha" in result.stdout and "+10.68.1.11" in result.stdout
    assert not ws.base.exists() and ws.exports_files() == {}


def test_onboard_of_a_project_missing_from_the_directory_is_bad_input(workspace: Workspace) -> None:
    ws = _setup(workspace)
    result = ws.homevol("onboard", "nosuch")
    assert result.code == 2
    assert "not a project in the directory" in result.stderr


def test_a_directory_that_exists_without_a_stamp_is_not_adopted_silently(workspace: Workspace) -> None:
    ws = _setup(workspace)
    (ws.base / "alpha").mkdir(parents=True)
    (ws.base / "alpha" / "old.txt").write_text("old")
    result = ws.homevol("onboard", "alpha")
    assert result.code == 1
    assert "--adopt" in result.stdout
    assert ws.homevol("onboard", "alpha", "--adopt").code == 0
    assert (ws.base / "alpha" / "old.txt").read_text() == "old"
    assert (ws.base / "alpha" / ".homevol.json").exists()


def test_a_crash_mid_create_leaves_nothing_half_made(workspace: Workspace) -> None:
    ws = _setup(workspace)
    staging = ws.base / ".homevol-new-alpha"  # what a crash between mkdir and rename leaves
    staging.mkdir(parents=True)
    assert ws.homevol("onboard", "alpha").code == 0
    assert not staging.exists()
    assert (ws.base / "alpha" / ".homevol.json").exists()


def test_exports_files_of_the_release_before_formats_are_kept_until_they_change(
    workspace: Workspace,
) -> None:
    ws = _setup(workspace)
    assert ws.homevol("onboard", "alpha").code == 0
    path = ws.exports_dir / "homevol-alpha.exports"
    header, line, body = path.read_text().split("\n", 2)
    assert line.startswith("# format=1 project=alpha sha256=")
    legacy = f"{header}\n{line.replace('# format=1 ', '# ')}\n{body}"  # as that release wrote it
    path.write_text(legacy)
    sync = ws.homevol("sync", "--json")
    assert sync.code == 0 and sync.json["results"] == [] and sync.json["findings"] == []
    assert path.read_text() == legacy  # read as homevol's, not hand-edited, and not rewritten
    (ws.root / "inventory.toml").write_text(INVENTORY.replace('address = "10.68.1.11"',
                                                              'address = "10.68.1.12"'))
    assert ws.homevol("sync", "--force").code == 0
    assert path.read_text().split("\n")[1].startswith("# format=1 project=alpha sha256=")
    assert "10.68.1.12(" in path.read_text()


def test_a_volume_left_creating_is_reported_not_exported_and_finished_by_the_next_run(
        workspace: Workspace) -> None:
    """The one crash rule: a volume stamped ``creating`` (a crash before ``active``) is listed
    as such, is not exported, and the next sync (or onboard) finishes it."""
    ws = _setup(workspace)
    home = ws.base / "alpha"
    home.mkdir(parents=True)
    (home / ".homevol.json").write_text(json.dumps(
        {"owner": "homevol", "format": 1, "project": "alpha", "state": "creating",
         "size_bytes": 1 << 30, "created": 1700000000}))
    listed = ws.homevol("list", "--json")
    assert [(v["project"], v["state"]) for v in listed.json["volumes"]] == [("alpha", "creating")]
    audit = ws.homevol("audit", "--json").json
    assert [f["kind"] for f in audit["findings"] if f["project"] == "alpha"] == ["volume-half-created"]
    dry = ws.homevol("sync", "--dry-run", "--json").json
    assert [(v["project"], v["action"]) for v in dry["volumes"]] == [("alpha", "finish")]
    assert [e["action"] for e in dry["exports"]] == ["add"]  # after it is finished, not before
    assert "homevol-alpha.exports" not in ws.exports_files()
    assert ws.homevol("sync").code == 0
    assert json.loads((home / ".homevol.json").read_text())["state"] == "active"
    assert "homevol-alpha.exports" in ws.exports_files()
    assert ws.homevol("onboard", "alpha").code == 0  # and onboard finds nothing left to do


def test_a_marker_of_the_previous_release_is_read_and_upgraded_when_next_written(
        workspace: Workspace) -> None:
    """What the release before stamp formats wrote: no ``format`` key."""
    ws = _setup(workspace)
    home = ws.base / "alpha"
    home.mkdir(parents=True)
    old = {"owner": "homevol", "project": "alpha", "size_bytes": 2 << 30, "state": "active",
           "created": 1700000000}
    (home / ".homevol.json").write_text(json.dumps(old, sort_keys=True) + "\n")
    listed = ws.homevol("list", "--json")
    assert [(v["project"], v["state"], v["size_bytes"]) for v in listed.json["volumes"]] == [
        ("alpha", "active", 2 << 30)]
    assert json.loads((home / ".homevol.json").read_text()) == old  # reading writes nothing
    assert ws.homevol("offboard", "alpha").code == 0
    assert json.loads((home / ".homevol.json").read_text()) == {**old, "format": 1, "state": "retired"}
    assert ws.homevol("onboard", "alpha").code == 0
    assert json.loads((home / ".homevol.json").read_text())["state"] == "active"


def test_a_marker_from_a_newer_release_is_left_alone(workspace: Workspace) -> None:
    ws = _setup(workspace)
    home = ws.base / "alpha"
    home.mkdir(parents=True)
    newer = json.dumps({"owner": "homevol", "format": 99, "project": "alpha", "state": "active",
                        "size_bytes": 1})
    (home / ".homevol.json").write_text(newer)
    listed = ws.homevol("list", "--json")
    assert listed.json["volumes"] == []
    assert [f["kind"] for f in listed.json["findings"]] == ["stamp-too-new"]
    assert ws.homevol("offboard", "alpha").code != 0
    assert (home / ".homevol.json").read_text() == newer


def test_a_crash_mid_write_of_an_exports_file_is_cleaned_up(workspace: Workspace) -> None:
    ws = _setup(workspace)
    ws.exports_dir.mkdir(parents=True)
    (ws.exports_dir / ".homevol-alpha.exports.tmp").write_text("half")
    assert ws.homevol("onboard", "alpha").code == 0
    assert list(ws.exports_files()) == ["homevol-alpha.exports"]


def test_purge_needs_confirmation_and_deletes_data(workspace: Workspace) -> None:
    ws = _setup(workspace)
    assert ws.homevol("onboard", "alpha").code == 0
    (ws.base / "alpha" / "f").write_text("x")
    refused = ws.homevol("purge", "alpha")
    assert refused.code == 2 and "--yes" in refused.stderr
    assert (ws.base / "alpha" / "f").exists()
    result = ws.homevol("purge", "alpha", "--yes")
    assert result.code == 0, result.stderr
    assert not (ws.base / "alpha").exists()
    assert ws.exports_files() == {}
    again = ws.homevol("purge", "alpha", "--yes", "--json")
    assert again.code == 0
    assert again.json["results"][-1]["detail"] == "already gone"


def test_purge_refuses_a_directory_homevol_does_not_own(workspace: Workspace) -> None:
    ws = _setup(workspace)
    (ws.base / "alpha").mkdir(parents=True)
    result = ws.homevol("purge", "alpha", "--yes")
    assert result.code == 1
    assert (ws.base / "alpha").exists()


def test_a_crashed_purge_is_finished_by_the_next_one(workspace: Workspace) -> None:
    ws = _setup(workspace)
    leftover = ws.base / ".homevol-purge-alpha-1"
    leftover.mkdir(parents=True)
    (leftover / "f").write_text("x")
    assert ws.homevol("purge", "alpha", "--yes").code == 0
    assert not leftover.exists()


def test_resize_refuses_to_shrink_below_usage_unless_forced(workspace: Workspace) -> None:
    ws = _setup(workspace)
    assert ws.homevol("onboard", "alpha").code == 0
    (ws.base / "alpha" / "big").write_bytes(os.urandom(64 * 1024))
    assert ws.homevol("resize", "alpha", "2G").code == 0
    small = ws.homevol("resize", "alpha", "1K")
    assert small.code == 1 and "below current usage" in small.stderr
    assert ws.homevol("resize", "alpha", "1K", "--force").code == 0
    listed = ws.homevol("list", "--usage", "--json").json["volumes"]
    assert listed[0]["size_bytes"] == 1024 and listed[0]["used_bytes"] >= 64 * 1024


def test_list_shows_only_owned_volumes(workspace: Workspace) -> None:
    ws = _setup(workspace)
    assert ws.homevol("onboard", "alpha").code == 0
    (ws.base / "stranger").mkdir()
    result = ws.homevol("list", "--json")
    assert [v["project"] for v in result.json["volumes"]] == ["alpha"]
    assert result.json["volumes"][0]["clients"] == 1
    assert [f["kind"] for f in result.json["findings"]] == ["unowned-volume"]


def test_doctor_reports_each_check(workspace: Workspace) -> None:
    ws = _setup(workspace)
    result = ws.homevol("doctor", "--json")
    assert result.code == 0, result.stdout
    assert [c["check"] for c in result.json["checks"]] == [
        "config", "directory", "backend", "exports directory", "exports applied", "reload command",
        "mounter",
        "state directory"]
    (ws.root / "inventory.toml").unlink()
    broken = ws.homevol("doctor")
    assert broken.code == 1 and "FAIL  directory" in broken.stdout


def test_concurrent_runs_never_interleave(workspace: Workspace) -> None:
    ws = _setup(workspace)
    results = []

    def run(project: str) -> None:
        results.append(ws.homevol("onboard", project))

    threads = [threading.Thread(target=run, args=(p,)) for p in ("alpha", "beta") * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.code == 0 for r in results), [r.stderr for r in results]
    assert sorted(ws.exports_files()) == ["homevol-alpha.exports", "homevol-beta.exports"]


def test_a_held_lock_gives_exit_code_4(workspace: Workspace) -> None:
    import fcntl

    ws = _setup(workspace)
    ws.configure(lock_timeout=0.2)
    (ws.root / "state").mkdir()
    with open(ws.root / "state" / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = ws.homevol("sync")
    assert result.code == 4
    assert "another homevol run" in result.stderr


def test_a_volume_whose_project_left_the_directory_is_unexported_and_reported(
    workspace: Workspace,
) -> None:
    ws = _setup(workspace)
    assert ws.homevol("onboard", "alpha").code == 0
    assert ws.homevol("onboard", "beta").code == 0
    (ws.root / "inventory.toml").write_text(INVENTORY.replace("[projects.beta]\n", ""))
    result = ws.homevol("sync", "--json", "--force")  # 1 of 2 clients: over the share guard
    assert result.code == 0, result.stderr
    assert [(e["project"], e["action"]) for e in result.json["exports"] if e["action"] != "unchanged"] == [
        ("beta", "remove")]
    orphans = [f for f in result.json["findings"] if f["kind"] == "volume-without-project"]
    assert [f["project"] for f in orphans] == ["beta"]
    assert (ws.base / "beta" / ".homevol.json").exists()  # data kept


def test_exports_show_lists_every_client_with_its_options(workspace: Workspace) -> None:
    ws = _setup(workspace)
    assert ws.homevol("onboard", "alpha").code == 0
    shown = ws.homevol("exports", "show")
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines and lines[0].startswith(str(ws.base / "alpha"))
    assert all("(rw," in line for line in lines)
    data = ws.homevol("exports", "show", "--json").json
    assert data["exports"][0]["project"] == "alpha" and data["exports"][0]["clients"]
