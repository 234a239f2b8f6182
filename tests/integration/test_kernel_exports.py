"""The kernel exports.d applier, judged by the real nfs-utils parser (exportfs -ra → etab)."""

from __future__ import annotations

from tests.conftest import Workspace

INVENTORY = """
[projects.alpha]
[projects.beta]
[projects.gamma]

[[hosts]]
name = "alpha-1.eqiad.wmflabs"
address = "10.68.1.11"
project = "alpha"

[[hosts]]
name = "alpha-2.eqiad.wmflabs"
address = "10.68.1.12"
project = "alpha"

[[hosts]]
name = "beta-1.eqiad.wmflabs"
address = "10.68.2.21"
project = "beta"

[[hosts]]
name = "gamma-1.eqiad.wmflabs"
address = "10.68.3.31"
project = "gamma"
"""


def _setup(ws: Workspace, inventory: str = INVENTORY) -> None:
    (ws.root / "inventory.toml").write_text(inventory)


def test_each_client_gets_exactly_the_configured_options(exportfs: Workspace) -> None:
    _setup(exportfs)
    for project in ("alpha", "beta"):
        assert exportfs.homevol("onboard", project).code == 0
    table = exportfs.etab()
    assert set(table) == {str(exportfs.base / "alpha"), str(exportfs.base / "beta")}
    alpha = table[str(exportfs.base / "alpha")]
    assert set(alpha) == {"10.68.1.11", "10.68.1.12"}
    for options in alpha.values():
        assert {"rw", "root_squash", "no_subtree_check", "sec=sys", "secure"} <= set(options)
        assert "no_root_squash" not in options and "insecure" not in options
        assert any(o.startswith("fsid=") and len(o) == len("fsid=") + 32 for o in options)
    assert set(table[str(exportfs.base / "beta")]) == {"10.68.2.21"}


def test_fsid_is_stable_per_project_and_distinct_between_projects(exportfs: Workspace) -> None:
    _setup(exportfs)
    for project in ("alpha", "beta"):
        assert exportfs.homevol("onboard", project).code == 0
    table = exportfs.etab()

    def fsid(project: str) -> str:
        opts = next(iter(table[str(exportfs.base / project)].values()))
        return next(o for o in opts if o.startswith("fsid="))

    first = (fsid("alpha"), fsid("beta"))
    assert first[0] != first[1]
    assert exportfs.homevol("offboard", "alpha").code == 0
    assert exportfs.homevol("onboard", "alpha").code == 0
    table = exportfs.etab()
    assert (fsid("alpha"), fsid("beta")) == first


def test_offboard_unexports_but_keeps_the_data(exportfs: Workspace) -> None:
    _setup(exportfs)
    assert exportfs.homevol("onboard", "alpha").code == 0
    (exportfs.base / "alpha" / "data.txt").write_text("keep me")
    result = exportfs.homevol("offboard", "alpha")
    assert result.code == 0, result.stderr
    assert str(exportfs.base / "alpha") not in exportfs.etab()
    assert (exportfs.base / "alpha" / "data.txt").read_text() == "keep me"
    sync = exportfs.homevol("sync", "--json")
    assert sync.code == 0 and sync.json["exports"] == []  # a retired volume stays unexported


def test_a_failed_reload_is_reported_and_rolled_back(exportfs: Workspace) -> None:
    _setup(exportfs)
    assert exportfs.homevol("onboard", "alpha").code == 0
    before = exportfs.exports_files()
    # a foreign file with an option nfs-utils rejects makes every reload fail
    (exportfs.exports_dir / "zz-local.exports").write_text(f"{exportfs.base} *(bogusopt)\n")
    result = exportfs.homevol("onboard", "beta")
    assert result.code == 1
    assert "bogusopt" in result.stdout
    files = exportfs.exports_files()
    files.pop("zz-local.exports")
    # beta's file was taken back, and since even that reload failed the server's table is
    # unknown: beta stays unconfirmed and the next run re-applies it
    assert files.pop(".homevol-unconfirmed").splitlines()[2:] == ["beta"]
    assert files == before
    (exportfs.exports_dir / "zz-local.exports").unlink()
    assert exportfs.homevol("sync").code == 0
    assert str(exportfs.base / "beta") in exportfs.etab()


def test_foreign_files_are_never_touched_and_reported(exportfs: Workspace) -> None:
    _setup(exportfs)
    exportfs.exports_dir.mkdir(parents=True)
    foreign = exportfs.exports_dir / "site.exports"
    foreign.write_text(f"{exportfs.root} 10.1.1.1(ro,no_subtree_check)\n")
    squatter = exportfs.exports_dir / "homevol-beta.exports"
    squatter.write_text(f"{exportfs.root} 10.1.1.2(ro,no_subtree_check)\n")
    assert exportfs.homevol("onboard", "alpha").code == 0
    result = exportfs.homevol("onboard", "beta", "--json")
    assert result.code == 1
    assert any(r["action"] == "export-blocked" for r in result.json["results"])
    kinds = {f["kind"] for f in result.json["findings"]}
    assert "foreign-exports-file" in kinds
    assert foreign.read_text().startswith(str(exportfs.root))
    assert squatter.read_text().startswith(str(exportfs.root))
    assert exportfs.homevol("offboard", "alpha").code == 0
    assert foreign.exists() and squatter.exists()


def test_a_hand_edited_file_is_rewritten_by_sync(exportfs: Workspace) -> None:
    _setup(exportfs)
    assert exportfs.homevol("onboard", "alpha").code == 0
    path = exportfs.exports_dir / "homevol-alpha.exports"
    path.write_text(path.read_text().replace("10.68.1.12", "10.0.0.0/8"))
    plan = exportfs.homevol("exports", "plan", "--json").json
    assert [(e["project"], e["action"], e["reason"]) for e in plan["exports"]] == [
        ("alpha", "update", "hand-edited file")]
    assert plan["exports"][0]["removed"] == ["10.0.0.0/8"]  # what the edit added is taken away
    # taking away what is exported now is a removal like any other: the share guard applies
    exportfs.configure(exports={"removal_floor": 0})
    assert exportfs.homevol("sync").code == 3
    assert exportfs.homevol("sync", "--force").code == 0
    assert set(exportfs.etab()[str(exportfs.base / "alpha")]) == {"10.68.1.11", "10.68.1.12"}


def test_sync_with_nothing_to_change_does_not_reload(exportfs: Workspace) -> None:
    _setup(exportfs)
    assert exportfs.homevol("onboard", "alpha").code == 0
    etab = exportfs.root / "nfs-sandbox" / "nfs" / "etab"
    etab.unlink()
    result = exportfs.homevol("sync")
    assert result.code == 0
    assert "no changes" in result.stdout
    assert result.stderr == ""  # quiet when nothing changed
    assert not etab.exists()


def test_a_machine_without_exportfs_gets_a_clear_message(workspace: Workspace) -> None:
    _setup(workspace)
    workspace.configure(exports={"kernel": {"reload_command": ["no-such-exportfs", "-ra"]}})
    result = workspace.homevol("onboard", "alpha")
    assert result.code == 1
    assert "no-such-exportfs not found" in result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_a_run_killed_before_its_reload_is_finished_by_the_next_one(exportfs: Workspace) -> None:
    """The files are written, then homevol dies before exportfs ran: the next sync must not
    say "no changes" over a server that never loaded them."""
    _setup(exportfs)
    real_reload = exportfs.settings["exports"]["kernel"]["reload_command"]
    assert exportfs.homevol("onboard", "alpha").code == 0
    (exportfs.root / "inventory.toml").write_text(
        INVENTORY + '[[hosts]]\nname = "alpha-3.eqiad.wmflabs"\naddress = "10.68.1.13"\nproject = "alpha"\n')
    exportfs.configure(exports={"kernel": {"reload_command": ["sh", "-c", "kill -KILL $PPID"]}})
    killed = exportfs.homevol("sync")
    assert killed.code == -9
    assert "10.68.1.13" in exportfs.exports_files()["homevol-alpha.exports"]
    assert set(exportfs.etab()[str(exportfs.base / "alpha")]) == {"10.68.1.11", "10.68.1.12"}

    exportfs.configure(exports={"kernel": {"reload_command": real_reload}})
    plan = exportfs.homevol("sync", "--dry-run", "--json")
    change = next(c for c in plan.json["exports"] if c["project"] == "alpha")
    assert change["action"] == "update" and "not loaded" in change["reason"]
    assert exportfs.homevol("sync").code == 0
    assert set(exportfs.etab()[str(exportfs.base / "alpha")]) == {"10.68.1.11", "10.68.1.12",
                                                                 "10.68.1.13"}
    assert "no changes" in exportfs.homevol("sync").stdout


def test_a_removal_killed_before_its_reload_is_reloaded_by_the_next_run(exportfs: Workspace) -> None:
    _setup(exportfs)
    real_reload = exportfs.settings["exports"]["kernel"]["reload_command"]
    assert exportfs.homevol("onboard", "beta").code == 0
    exportfs.configure(exports={"kernel": {"reload_command": ["sh", "-c", "kill -KILL $PPID"]}})
    assert exportfs.homevol("offboard", "beta").code == -9
    assert "homevol-beta.exports" not in exportfs.exports_files()
    assert str(exportfs.base / "beta") in exportfs.etab()  # the server still exports it

    exportfs.configure(exports={"kernel": {"reload_command": real_reload}})
    audit = exportfs.homevol("audit", "--json")
    assert "exports-not-loaded" in {f["kind"] for f in audit.json["findings"]}
    assert exportfs.homevol("sync").code == 0
    assert str(exportfs.base / "beta") not in exportfs.etab()
    assert not (exportfs.exports_dir / ".homevol-unconfirmed").exists()


def test_offboard_with_a_wrong_exports_directory_fails_while_the_server_still_exports(
        exportfs: Workspace) -> None:
    """A mistyped exports directory hides homevol's file: offboard must not report success
    while the running server still exports the home."""
    _setup(exportfs)
    assert exportfs.homevol("onboard", "alpha").code == 0
    etab = str(exportfs.root / "nfs-sandbox" / "nfs" / "etab")
    env = {"HOMEVOL_EXPORTS__KERNEL__DIRECTORY": str(exportfs.root / "no-such-dir"),
           "HOMEVOL_EXPORTS__KERNEL__ETAB": etab}
    result = exportfs.homevol("offboard", "alpha", env=env)
    assert result.code == 1, result.stdout + result.stderr
    assert "still exported by the NFS server to 2 clients" in result.stdout
    assert "no-such-dir does not exist" in result.stdout
    assert str(exportfs.base / "alpha") in exportfs.etab()

    fixed = exportfs.homevol("offboard", "alpha", env={"HOMEVOL_EXPORTS__KERNEL__ETAB": etab})
    assert fixed.code == 0, fixed.stdout + fixed.stderr
    assert str(exportfs.base / "alpha") not in exportfs.etab()
