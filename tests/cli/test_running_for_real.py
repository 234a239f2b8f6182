"""What runs homevol for real: the systemd units, the hook's sudoers rule, and the logs."""

from __future__ import annotations

import configparser
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, Workspace, require

UNITS = REPO / "systemd"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def test_the_timer_runs_sync_with_the_guards_on() -> None:
    service = _unit("homevol-sync.service")["Service"]
    assert service["ExecStart"] == "/usr/local/bin/homevol sync"  # no --force, no --allow-*
    assert service["Type"] == "oneshot"
    timer = _unit("homevol-sync.timer")
    assert timer["Timer"]["OnUnitInactiveSec"] == "5min"
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    require(shutil.which("systemd-analyze") is not None, "systemd-analyze (Debian package systemd)")
    homevol = Path(sys.executable).parent / "homevol"
    text = (UNITS / "homevol-sync.service").read_text().replace("/usr/local/bin/homevol", str(homevol))
    (tmp_path / "homevol-sync.service").write_text(text)
    shutil.copy(UNITS / "homevol-sync.timer", tmp_path)
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "homevol-sync.service"),
                           str(tmp_path / "homevol-sync.timer")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_hook_sudoers_rule_is_valid_and_allows_only_the_hook() -> None:
    require(shutil.which("visudo") is not None, "visudo (Debian package sudo)")
    rule = UNITS / "homevol-hook.sudoers"
    proc = subprocess.run(["visudo", "-cqf", str(rule)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    commands = [line for line in rule.read_text().splitlines() if line.startswith("Cmnd_Alias")]
    assert commands == ["Cmnd_Alias HOMEVOL_HOOK = /usr/local/bin/homevol hook, "
                        "/usr/local/bin/homevol hook *"]


def test_install_units_copies_the_files_with_safe_modes(tmp_path: Path) -> None:
    proc = subprocess.run([str(REPO / "scripts" / "install-units"), "--root", str(tmp_path), "--no-enable"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    sudoers = tmp_path / "etc" / "sudoers.d" / "homevol-hook"
    assert stat.S_IMODE(sudoers.stat().st_mode) == 0o440
    assert (tmp_path / "etc" / "systemd" / "system" / "homevol-sync.timer").is_file()
    assert stat.S_IMODE((tmp_path / "var" / "lib" / "homevol").stat().st_mode) == 0o700


def test_logs_say_one_line_per_project_touched_and_nothing_otherwise(workspace: Workspace) -> None:
    (workspace.root / "inventory.toml").write_text(
        "[projects.alpha]\n[projects.beta]\n"
        '[[hosts]]\nname = "a.x"\naddress = "10.0.0.1"\nproject = "alpha"\n'
        '[[hosts]]\nname = "b.x"\naddress = "10.0.0.2"\nproject = "beta"\n')
    workspace.configure(sync={"onboard": "all"})
    first = workspace.homevol("sync")
    assert first.code == 0, first.stderr
    lines = first.stderr.strip().splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["alpha", "beta"]
    assert all("volume-create" in line and "export-add" in line for line in lines)
    assert workspace.homevol("sync").stderr == ""


def test_global_options_work_after_the_command_and_logs_carry_journal_priorities(
        workspace: Workspace) -> None:
    (workspace.root / "inventory.toml").write_text(
        '[projects.alpha]\n[[hosts]]\nname = "a.x"\naddress = "10.0.0.1"\nproject = "alpha"\n')
    config = str(workspace.config_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEVOL_")}
    proc = subprocess.run([sys.executable, "-m", "provisioner", "onboard", "alpha", "--config", config],
                          capture_output=True, text=True, env={**env, "JOURNAL_STREAM": "8:1234"},
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0].startswith("<6>homevol: alpha: volume-create")
    quiet = subprocess.run([sys.executable, "-m", "provisioner", "offboard", "alpha", "-q",
                            "--config", config], capture_output=True, text=True, env=env, cwd=REPO,
                           timeout=60)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
