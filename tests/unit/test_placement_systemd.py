"""Placement under systemd, through a fake runner: the exact systemctl sequence, the unit text,
which mounter is chosen, and how command failures read. The real boot is tests/cli/test_systemd_boot.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from provisioner import config as config_mod
from provisioner import placement as placement_mod
from provisioner.config import Mounter, PlacementConfig
from provisioner.errors import BackendError, ConfigError
from provisioner.model import Volume
from provisioner.placement import (
    CommandRunner,
    MountPlan,
    MountSpec,
    Placement,
    Systemctl,
    render_unit,
    resolve_mounter,
    unit_name,
)

TARGET = "/export/home/alpha"  # for the unit text; the placement tests mount below tmp_path
UNIT = "export-home-alpha.mount"


def _plan(target: str) -> MountPlan:
    return MountPlan(MountSpec(source="srv:/alpha", fstype="fuse.glusterfs"),
                     ["glusterfs", "--volfile-server=srv", "--volfile-id=alpha", target],
                     what="srv:/alpha", fstype="glusterfs", unmount=["umount"])


PLAN = _plan(TARGET)


class FakeSystemd:
    """Records every command; ``enable --now`` mounts and ``disable --now`` unmounts, as PID 1 would."""

    def __init__(self, mountinfo: Path, target: str, fail: str = "") -> None:
        self.mountinfo = mountinfo
        self.mounted = f"36 25 0:50 / {target} rw - fuse.glusterfs srv:/alpha rw\n"
        self.unit = unit_name(target)
        self.commands: list[list[str]] = []
        self.fail = fail  # the verb that fails
        mountinfo.write_text("")

    def __call__(self, command: list[str], what: str) -> str:
        self.commands.append(command)
        verb = command[1]
        if verb == self.fail:
            raise BackendError(f"cannot {what}: systemctl exited 1: Job for {self.unit} failed.")
        if command[1:3] == ["enable", "--now"]:
            self.mountinfo.write_text(self.mounted)
        if command[1:3] == ["disable", "--now"]:
            self.mountinfo.write_text("")
        return "active\n" if verb == "show" else ""


@pytest.fixture
def target(tmp_path: Path) -> str:
    return str(tmp_path / "export" / "alpha")


@pytest.fixture
def systemd(tmp_path: Path, target: str, monkeypatch: pytest.MonkeyPatch) -> FakeSystemd:
    fake = FakeSystemd(tmp_path / "mountinfo", target)
    real = placement_mod.read_mounts
    monkeypatch.setattr(placement_mod, "read_mounts", lambda under: real(under, str(fake.mountinfo)))
    return fake


def _placement(tmp_path: Path, runner: FakeSystemd, mounter: Mounter = Mounter.SYSTEMD) -> Placement:
    return Placement(PlacementConfig(units_dir=str(tmp_path / "units"), mount_timeout=0.2,
                                     mounter=mounter), runner=runner)


def _volume(target: str) -> Volume:
    return Volume("alpha", "gluster", target, None)


def _show(target: str) -> list[str]:
    return ["systemctl", "show", "--property=ActiveState", "--value", unit_name(target)]


def test_a_home_is_mounted_by_writing_reloading_and_enabling_its_unit(
        tmp_path: Path, target: str, systemd: FakeSystemd) -> None:
    plan, unit = _plan(target), unit_name(target)
    assert _placement(tmp_path, systemd).ensure("alpha", _volume(target), target, plan) \
        == "mounted by systemd"
    assert systemd.commands == [["systemctl", "daemon-reload"],
                                ["systemctl", "enable", "--now", unit], _show(target)]
    assert (tmp_path / "units" / unit).read_text() == render_unit("alpha", target, plan)


def test_an_unchanged_unit_is_enabled_without_a_reload(
        tmp_path: Path, target: str, systemd: FakeSystemd) -> None:
    placement, plan, unit = _placement(tmp_path, systemd), _plan(target), unit_name(target)
    placement.ensure("alpha", _volume(target), target, plan)
    systemd.commands.clear()
    assert placement.write_unit("alpha", target, plan) == f"{unit} enabled"
    assert systemd.commands == [["systemctl", "enable", "--now", unit], _show(target)]


def test_release_disables_then_removes_the_unit_and_reloads(
        tmp_path: Path, target: str, systemd: FakeSystemd) -> None:
    placement, plan, unit = _placement(tmp_path, systemd), _plan(target), unit_name(target)
    placement.ensure("alpha", _volume(target), target, plan)
    systemd.commands.clear()
    assert placement.release(_volume(target), target, plan) == "unmounted by systemd"
    assert systemd.commands == [["systemctl", "disable", "--now", unit], ["systemctl", "daemon-reload"]]
    assert not (tmp_path / "units" / unit).exists()


def test_a_failing_start_is_a_backend_error_naming_the_unit(
        tmp_path: Path, target: str, systemd: FakeSystemd) -> None:
    systemd.fail = "enable"
    with pytest.raises(BackendError, match=r"cannot enable and start .*alpha\.mount: systemctl exited 1"):
        _placement(tmp_path, systemd).ensure("alpha", _volume(target), target, _plan(target))


def test_a_failed_unit_stops_the_wait_at_once() -> None:
    systemctl = Systemctl(lambda command, what: "failed\n", timeout=30)
    with pytest.raises(BackendError, match=f"{UNIT} is failed, not active"):
        systemctl.wait_active(UNIT)


def test_the_direct_mounter_runs_the_backends_command_and_never_systemctl(
        tmp_path: Path, target: str, systemd: FakeSystemd) -> None:
    def mount(command: list[str], what: str) -> str:
        systemd.commands.append(command)
        systemd.mountinfo.write_text(systemd.mounted)
        return ""

    placement = Placement(PlacementConfig(units_dir=str(tmp_path / "units"), mounter=Mounter.DIRECT),
                          runner=mount)
    assert placement.ensure("alpha", _volume(target), target, _plan(target)) == "mounted"
    assert systemd.commands == [_plan(target).command]
    assert (tmp_path / "units" / unit_name(target)).is_file()


def test_auto_means_systemd_only_where_it_is_pid1(tmp_path: Path) -> None:
    (tmp_path / "system").mkdir()
    assert resolve_mounter(Mounter.AUTO, str(tmp_path / "system")) is Mounter.SYSTEMD
    assert resolve_mounter(Mounter.AUTO, str(tmp_path / "absent")) is Mounter.DIRECT
    assert resolve_mounter(Mounter.DIRECT, str(tmp_path / "system")) is Mounter.DIRECT


def test_doctor_refuses_a_forced_systemd_mounter_without_systemd(tmp_path: Path) -> None:
    cfg = PlacementConfig(mounter=Mounter.SYSTEMD)
    with pytest.raises(BackendError, match="systemd is not PID 1"):
        Placement(cfg, marker=str(tmp_path / "absent")).describe()
    auto = Placement(PlacementConfig(), marker=str(tmp_path / "absent")).describe()
    assert auto.startswith("direct (auto)")


def test_the_unit_orders_the_mount_between_the_network_the_backend_and_the_nfs_servers() -> None:
    text = render_unit("alpha", TARGET, PLAN)
    assert "After=network-online.target glusterd.service\n" in text
    assert "Before=nfs-server.service nfs-ganesha.service\n" in text
    assert text.endswith("[Install]\nWantedBy=remote-fs.target\n")
    assert unit_name(TARGET) == UNIT


def test_the_mounter_setting_is_checked_and_read_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[placement]\nmounter = "systemd"\n')
    assert config_mod.load(str(path), environ={}).placement.mounter is Mounter.SYSTEMD
    cfg = config_mod.load(str(path), environ={"HOMEVOL_PLACEMENT__MOUNTER": "direct"})
    assert cfg.placement.mounter is Mounter.DIRECT
    with pytest.raises(ConfigError, match=r"placement\.mounter"):
        config_mod.load(str(path), environ={"HOMEVOL_PLACEMENT__MOUNTER": "fstab"})


def test_the_runner_turns_every_failure_into_one_backend_error(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CommandRunner(timeout=5)
    with pytest.raises(BackendError, match="not-a-tool-here is not installed"):
        runner(["not-a-tool-here"], "test")
    with pytest.raises(BackendError, match="cannot test: sh exited 3: oops"):
        runner(["sh", "-c", "echo oops >&2; exit 3"], "test")

    def slow(*args: object, **kwargs: object) -> None:
        raise subprocess.TimeoutExpired("sh", 5)

    monkeypatch.setattr(placement_mod.subprocess, "run", slow)
    with pytest.raises(BackendError, match="sh timed out after 5s"):
        runner(["sh"], "test")


def test_which_home_units_are_enabled_is_one_systemctl_call() -> None:
    calls: list[list[str]] = []

    def runner(command: list[str], what: str) -> str:
        calls.append(command)
        return ("Id=export-home-alpha.mount\nUnitFileState=enabled\n\n"
                "Id=export-home-beta.mount\nUnitFileState=disabled\n\n"
                "Id=export-home-gamma.mount\nUnitFileState=\n")

    units = ["export-home-alpha.mount", "export-home-beta.mount", "export-home-gamma.mount"]
    assert Systemctl(runner, 1.0).enabled(units) == {"export-home-alpha.mount"}
    assert calls == [["systemctl", "show", "--property=Id,UnitFileState", *units]]
    assert Systemctl(runner, 1.0).enabled([]) == set() and len(calls) == 1


def test_a_systemd_that_cannot_say_plans_nothing_on_it(tmp_path: Path) -> None:
    def failing(command: list[str], what: str) -> str:
        raise BackendError(f"cannot {what}: systemctl exited 1: Failed to connect to bus")

    cfg = PlacementConfig(units_dir=str(tmp_path), mounter=Mounter.SYSTEMD)
    assert Placement(cfg, failing).enabled_units(["export-home-alpha.mount"]) is None
    direct = PlacementConfig(units_dir=str(tmp_path), mounter=Mounter.DIRECT)
    assert Placement(direct, failing).enabled_units(["export-home-alpha.mount"]) is None
