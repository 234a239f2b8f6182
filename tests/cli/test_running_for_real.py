"""What runs homevol for real: the systemd units, the hook's sudoers rule, and the logs."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from provisioner.placement import MountPlan, MountSpec, render_unit, unit_name
from tests.conftest import REPO, Workspace, require

UNITS = REPO / "systemd"
SHIPPED = ("homevol-sync.service", "homevol-sync.timer", "homevol-audit.service", "homevol-audit.timer",
           "homevol-listen.service")
GUIDE = REPO / "docs" / "operator-guide.md"


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


def test_systemd_accepts_the_units_and_a_home_mount_unit(tmp_path: Path) -> None:
    require(shutil.which("systemd-analyze") is not None, "systemd-analyze (Debian package systemd)")
    homevol = Path(sys.executable).parent / "homevol"
    for name in SHIPPED:
        text = (UNITS / name).read_text().replace("/usr/local/bin/homevol", str(homevol))
        (tmp_path / name).write_text(text)
    target = "/export/home/alpha"
    plan = MountPlan(MountSpec(fstype="fuse.ceph-fuse"), ["ceph-fuse", target], what="none",
                     fstype="fuse.ceph", options="ceph.id=homes,_netdev")
    (tmp_path / unit_name(target)).write_text(render_unit("alpha", target, plan))
    names = [*SHIPPED, unit_name(target)]
    proc = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / n) for n in names)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_sync_unit_sandbox_leaves_mounts_to_systemd_and_logs_everything() -> None:
    service = _unit("homevol-sync.service")["Service"]
    assert service["StandardOutput"] == "journal" and service["StandardError"] == "journal"
    writable = " ".join(line.split("=", 1)[1] for line in (UNITS / "homevol-sync.service")
                        .read_text().splitlines() if line.startswith("ReadWritePaths=")).split()
    for path in ("/var/lib/homevol", "/export/home", "/etc/systemd/system", "-/etc/exports.d",
                 "-/etc/ganesha", "-/var/lib/nfs"):
        assert path in writable
    for option in ("PrivateMounts", "MountFlags", "KillMode", "Delegate"):
        assert option not in service  # mounts are PID 1's; the unit keeps no FUSE daemon
    assert 'placement.mounter = "direct"' in (UNITS / "homevol-sync.service").read_text()


def test_the_listener_unit_tells_systemd_it_is_ready_and_alive() -> None:
    service = _unit("homevol-listen.service")["Service"]
    assert service["ExecStart"] == "/usr/local/bin/homevol listen"  # no --once
    assert service["Type"] == "notify" and int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure" and service["ProtectSystem"] == "strict"


def test_the_audit_timer_writes_the_prometheus_textfile_read_only() -> None:
    service = _unit("homevol-audit.service")["Service"]
    assert service["ExecStart"] == ("/usr/local/bin/homevol audit "
                                    "--prometheus /var/lib/prometheus/node-exporter/homevol.prom")
    assert service["ProtectSystem"] == "strict" and "fail-on-drift" not in service["ExecStart"]
    assert _unit("homevol-audit.timer")["Install"]["WantedBy"] == "timers.target"


def test_the_operator_guide_shows_each_shipped_unit_as_shipped() -> None:
    shown = dict(re.findall(r"`systemd/(homevol-[a-z]+\.(?:service|timer))`[^\n]*\n\n```ini\n(.*?)```",
                            GUIDE.read_text(), re.DOTALL))
    assert sorted(shown) == sorted(SHIPPED)
    for name, text in shown.items():
        assert text == (UNITS / name).read_text(), f"docs/operator-guide.md differs from systemd/{name}"


def test_the_operator_guides_mount_unit_is_what_homevol_writes() -> None:
    shown = re.search(r"```ini\n(# Managed by homevol.*?)```", GUIDE.read_text(), re.DOTALL)
    assert shown is not None
    plan = MountPlan(MountSpec(fstype="fuse.glusterfs"), [], what="198.18.0.1:/homes/alpha",
                     fstype="glusterfs")
    assert shown.group(1) == render_unit("alpha", "/export/home/alpha", plan)


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
    for name in SHIPPED:
        assert (tmp_path / "etc" / "systemd" / "system" / name).read_text() == (UNITS / name).read_text()
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
