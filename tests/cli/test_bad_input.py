"""Bad input gets one clear line on stderr, a documented exit code, and changes nothing."""

from __future__ import annotations

import pytest

from tests.conftest import Workspace


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("name", ["../etc", "a/b", "-rf", ".hidden", "Alpha", "a b", "a;b", "x*",
                                  "alpha-", "", "a" * 64, "al\npha", "é"])
def test_invalid_project_names_are_refused(workspace: Workspace, name: str) -> None:
    (workspace.root / "inventory.toml").write_text("[projects.alpha]\n")
    for args in (["onboard", "--", name], ["offboard", "--", name], ["purge", "--yes", "--", name],
                 ["resize", "--", name, "1G"], ["sync", f"--project={name}"]):
        result = workspace.homevol(*args)
        assert result.code == 2, (args, result.stderr)
        assert "invalid project name" in _one_line(result.stderr)
    assert not workspace.base.exists()


def test_a_project_homevol_cannot_know_of_is_exit_2_in_every_command(workspace: Workspace) -> None:
    (workspace.root / "inventory.toml").write_text(
        '[projects.alpha]\n[[hosts]]\nname = "a.x"\naddress = "10.0.0.1"\nproject = "alpha"\n')
    for args in (["sync", "-p", "nosuch"], ["exports", "plan", "-p", "nosuch"],
                 ["exports", "apply", "-p", "nosuch"], ["verify", "nosuch"], ["audit", "-p", "nosuch"],
                 ["resize", "nosuch", "1G"], ["purge", "nosuch", "--yes"], ["onboard", "nosuch"]):
        result = workspace.homevol(*args)
        assert result.code == 2, (args, result.stdout, result.stderr)
        assert "nosuch" in _one_line(result.stderr)
    assert workspace.homevol("offboard", "nosuch").code == 0  # the cloud may repeat a deletion


@pytest.mark.parametrize("size", ["lots", "-5G", "0", "5Q", "1e9"])
def test_bad_sizes_are_usage_errors(workspace: Workspace, size: str) -> None:
    result = workspace.homevol("onboard", "alpha", "--size", size)
    assert result.code == 2
    _one_line(result.stderr)


@pytest.mark.parametrize(("toml", "key"), [
    ('export_base = "relative/path"', "export_base"),
    ('export_base = "/"', "export_base"),
    ('export_base = "/export/ho me"', "export_base"),
    ("[exports]\noptions = [\"rw\", \"insecure,no_root_squash\"]", "exports.options"),
    ("[exports]\noptions = [\"rw\", \"anonuid=0 *(rw)\"]", "exports.options"),
    ("[exports]\nclients = \"everyone\"", "exports.clients"),
    ("[exports]\nmax_removal_share = 2", "exports.max_removal_share"),
    ("[exports]\nextra_client_networks = [\"10.0.0.1/8\"]", "exports.extra_client_networks"),
    ("[directory]\nsource = \"nis\"", "directory.source"),
    ("[directory.ldap]\nuris = [\"http://x\"]", "directory.ldap.uris"),
    ("[directory.ldap]\npage_size = \"many\"", "directory.ldap.page_size"),
    ("[directory.ldap]\nhost_address_attr = \"aRecord)(x=*\"", "directory.ldap.host_address_attr"),
    ("[directory.ldap]\nproject_id_attr = \"cn,uid\"", "directory.ldap.project_id_attr"),
    ("[backend]\ndefault_size = \"huge\"", "backend.default_size"),
    ("[backend.local]\nmode = \"rwx\"", "backend.local.mode"),
    ("[exports.ganesha]\nstore = \"etcd\"", "exports.ganesha.store"),
    ("[exports.ganesha]\nstore = \"rados\"\nmode = \"sighup\"", "exports.ganesha.mode"),
    ("[exports.ganesha]\nheads = [\"/run/dbus/socket\"]", "exports.ganesha.heads"),
    ("[exports.ganesha.rados]\nnamespace = \"a/b\"", "exports.ganesha.rados.namespace"),
    ("[exports.ganesha.rados]\nlock_duration = 0.0", "exports.ganesha.rados.lock_duration"),
    ("typo_key = 1", "typo_key"),
    ("[exports\n", "config.toml"),
])
def test_config_errors_name_the_key(workspace: Workspace, toml: str, key: str) -> None:
    workspace.config_path.write_text(toml + "\n")
    result = workspace.homevol("sync")
    assert result.code == 2
    assert key in _one_line(result.stderr)


def test_env_overrides_are_checked_like_the_file(workspace: Workspace) -> None:
    result = workspace.homevol("sync", env={"HOMEVOL_EXPORTS__CLIENTS": "all"})
    assert result.code == 2
    assert "exports.clients" in _one_line(result.stderr)


def test_a_missing_config_file_is_named(workspace: Workspace) -> None:
    workspace.config_path.unlink()
    result = workspace.homevol("sync")
    assert result.code == 2
    assert "file not found" in _one_line(result.stderr)


def test_unknown_commands_are_usage_errors(workspace: Workspace) -> None:
    result = workspace.homevol("frobnicate")
    assert result.code == 2
    _one_line(result.stderr)


def test_a_hostile_directory_value_never_starts_a_line_or_an_escape(workspace: Workspace) -> None:
    (workspace.root / "inventory.toml").write_text(
        '[projects.alpha]\n[[hosts]]\nname = "evil\\nINJECTED: fake line\\u001b[31m"\n'
        'address = "10.0.0.1"\nproject = "alpha"\n')
    assert workspace.homevol("onboard", "alpha").code == 0
    for args in (["sync", "--dry-run", "-v"], ["audit", "-v"], ["sync"]):
        result = workspace.homevol(*args)
        for line in (result.stdout + result.stderr).splitlines():
            assert not line.startswith("INJECTED") and "\x1b" not in line, (args, line)
        assert "evil\\nINJECTED" in result.stdout + result.stderr or args == ["sync"]


@pytest.mark.parametrize(("variable", "value", "key"), [
    ("HOMEVOL_EXPORTS__OPTIONS", "[rw", "exports.options"),
    ("HOMEVOL_EXPORTS__KERNEL__RELOAD_COMMAND", "", "exports.kernel.reload_command"),
    ("HOMEVOL_DIRECTORY__LDAP__PAGE_SIZE", "10.9", "directory.ldap.page_size"),
    ("HOMEVOL_EXPORTS__SERVER", "nfsd", "exports.server"),
    ("HOMEVOL_NO_SUCH_KEY", "1", "no_such_key"),
])
def test_a_bad_environment_value_names_the_variable(workspace: Workspace, variable: str, value: str,
                                                   key: str) -> None:
    result = workspace.homevol("sync", "--dry-run", env={variable: value})
    assert result.code == 2, result.stderr
    line = _one_line(result.stderr)
    assert variable in line and key in line and "internal error" not in line


@pytest.mark.parametrize(("toml", "key"), [
    ('lock_timeout = "60"', "lock_timeout"),
    ("[directory.ldap]\npage_size = 10.9", "directory.ldap.page_size"),
    ('[exports]\noptions = "rw"', "exports.options"),
])
def test_a_config_file_value_must_already_have_its_type(workspace: Workspace, toml: str, key: str) -> None:
    workspace.config_path.write_text(workspace.config_path.read_text() + "\n" + toml + "\n")
    result = workspace.homevol("sync", "--dry-run")
    assert result.code == 2 and key in _one_line(result.stderr)


def test_a_directory_setting_naming_a_file_is_a_config_error(workspace: Workspace) -> None:
    regular = workspace.root / "a-file"
    regular.write_text("x")
    for variable in ("HOMEVOL_STATE_DIR", "HOMEVOL_EXPORTS__KERNEL__DIRECTORY"):
        result = workspace.homevol("sync", env={variable: str(regular)})
        assert result.code == 2 and "exists and is not a directory" in _one_line(result.stderr)


@pytest.mark.parametrize("inventory", [
    '[projects.alpha]\nhome = "yes"\n',
    "[projects.alpha]\nhomee = true\n",
    '[[hosts]]\nname = "a.x"\nadress = "10.0.0.1"\nproject = "alpha"\n',
    '[project.alpha]\n',
])
def test_the_inventory_file_is_as_strict_as_the_config(workspace: Workspace, inventory: str) -> None:
    (workspace.root / "inventory.toml").write_text(inventory)
    result = workspace.homevol("sync", "--dry-run")
    assert result.code == 3 and "inventory" in _one_line(result.stderr)



def test_exports_show_refuses_an_invalid_or_unknown_project(workspace: Workspace) -> None:
    for name in ("nosuch", "../etc"):
        result = workspace.homevol("exports", "show", "-p", name)
        assert result.code == 2 and name in _one_line(result.stderr)


def test_a_usage_error_keeps_clicks_usage_and_help_hint_on_its_one_line(workspace: Workspace) -> None:
    for args, usage in ((["sync", "--frob"], "usage: homevol sync [OPTIONS]"),
                        (["resize", "alpha"], "usage: homevol resize [OPTIONS] PROJECT SIZE"),
                        (["exports", "plan", "--x"], "usage: homevol exports plan [OPTIONS]")):
        result = workspace.homevol(*args)
        assert result.code == 2, (args, result.stderr)
        line = _one_line(result.stderr)
        assert usage in line and f"try '{usage[7:].split(' [')[0]} -h' for help" in line, line
