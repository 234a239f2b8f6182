"""The shipped units under a real systemd (PID 1 in a container on its own root, see
tests/support/systemd_container.py): scripts/install-units installs them, homevol-sync.service
runs with its sandbox, and the home it mounts is in PID 1's mount namespace (the one the NFS
server runs in), outlives the service, and is mounted again by systemd alone after a reboot.

The home is a tmpfs (tests/support/tmpfs_backend.py) mounted through a real ``.mount`` unit,
as a ceph-fuse or glusterfs home is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.placement import read_mounts, unit_name
from tests.conftest import REPO
from tests.support.homevol_box import CONFIG, homevol_box
from tests.support.systemd_container import SystemdContainer

HOME = "/export/home/alpha"
UNIT = unit_name(HOME)
INVENTORY = '[projects.alpha]\n[[hosts]]\nname = "a.x"\naddress = "10.0.0.1"\nproject = "alpha"\n'


@pytest.fixture
def container(tmp_path: Path) -> Iterator[SystemdContainer]:
    box = homevol_box(tmp_path, CONFIG, INVENTORY)
    try:
        box.boot()
        yield box
    finally:
        box.stop()


def _home_in_pid1(box: SystemdContainer) -> tuple[str, str] | None:
    mount = read_mounts("/export/home", f"/proc/{box.pid1()}/mountinfo").get(HOME)
    return (mount.fstype, mount.source) if mount else None


def test_the_sync_service_mounts_a_home_that_outlives_it_and_comes_back_after_a_reboot(
        container: SystemdContainer) -> None:
    installed = container.run(f"{REPO}/scripts/install-units")
    assert "installed under /" in installed.stdout
    assert container.run("systemctl", "is-enabled", "homevol-sync.timer", "homevol-audit.timer"
                         ).stdout.split() == ["enabled", "enabled"]
    container.run("systemctl", "start", "homevol-sync.service", timeout=90)

    service = container.run("systemctl", "show", "--property=ActiveState,Result",
                            "homevol-sync.service").stdout.split()
    assert sorted(service) == ["ActiveState=inactive", "Result=success"]  # the oneshot has ended
    assert _home_in_pid1(container) == ("tmpfs", "homevol-test-alpha")
    assert container.run("systemctl", "is-enabled", UNIT).stdout.strip() == "enabled"
    assert container.run("systemctl", "is-active", UNIT).stdout.strip() == "active"
    journal = container.run("journalctl", "--no-pager", "-o", "cat", "-u", "homevol-sync.service").stdout
    assert "alpha" in journal and "volume-mount" in journal, journal  # stdout and stderr kept
    container.run("systemctl", "start", "homevol-audit.service", timeout=90)
    metrics = container.run("cat", "/var/lib/prometheus/node-exporter/homevol.prom").stdout
    assert "homevol_" in metrics and 'project="alpha"' in metrics, metrics

    # an operator disables the unit by hand: the home stays mounted now, but not after a boot
    container.run("systemctl", "disable", UNIT)
    container.run("systemctl", "start", "homevol-sync.service", timeout=90)
    assert container.run("systemctl", "is-enabled", UNIT).stdout.strip() == "enabled"  # sync saw it
    journal = container.run("journalctl", "--no-pager", "-o", "cat", "-u", "homevol-sync.service").stdout
    assert "volume-unit" in journal, journal

    container.reboot()
    assert _home_in_pid1(container) == ("tmpfs", "homevol-test-alpha")  # by systemd alone
    assert container.run("systemctl", "is-active", UNIT).stdout.strip() == "active"
    doctor = container.run("/usr/local/bin/homevol", "doctor", check=False).stdout
    assert "mounter            systemd (auto)" in doctor, doctor


def test_a_home_mounted_directly_inside_the_sandboxed_service_is_invisible_to_pid1(
        tmp_path: Path) -> None:
    """Why the systemd mounter: the service's private mount namespace keeps a direct mount."""
    box = homevol_box(tmp_path, CONFIG, INVENTORY, service_env="HOMEVOL_PLACEMENT__MOUNTER=direct")
    try:
        box.boot()
        box.run(f"{REPO}/scripts/install-units")
        box.run("systemctl", "start", "homevol-sync.service", timeout=90)
        journal = box.run("journalctl", "--no-pager", "-o", "cat", "-u", "homevol-sync.service").stdout
        assert "volume-mount  mounted" in journal, journal  # homevol saw its mount, in its namespace
        assert _home_in_pid1(box) is None  # the NFS server's namespace never did
    finally:
        box.stop()
