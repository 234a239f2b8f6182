"""Placement with a real mount: mounted on onboard, repaired by sync, unmounted on offboard.

A stand-in mounting backend (the local backend whose volumes are tmpfs mounts) drives the
real mount(8)/umount(8) and /proc/self/mountinfo; CephFS and Gluster plug in the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner import config as config_mod
from provisioner.placement import MountPlan, MountSpec, read_mounts, unit_name
from provisioner.service import Homevol
from tests.conftest import Workspace, require
from tests.support.tmpfs_backend import TmpfsBackend

INVENTORY = '[projects.alpha]\n[[hosts]]\nname = "a.x"\naddress = "10.0.0.1"\nproject = "alpha"\n'


@pytest.fixture
def service(workspace: Workspace) -> Iterator[Homevol]:
    require(os.geteuid() == 0 and shutil.which("mount") is not None, "root and mount(8)")
    (workspace.root / "inventory.toml").write_text(INVENTORY)
    workspace.configure(placement={"units_dir": str(workspace.root / "units"), "mounter": "direct"})
    cfg = config_mod.load(str(workspace.config_path), environ={})
    backend = TmpfsBackend(workspace.root / "store", cfg.export_base, cfg.backend.local)
    yield Homevol(cfg, backend=backend)
    for target in sorted(read_mounts(cfg.export_base), reverse=True):
        subprocess.run(["umount", "-l", target], check=False)


def _target(service: Homevol) -> str:
    return service.path_of("alpha")


def test_onboard_mounts_the_volume_and_writes_its_unit(service: Homevol) -> None:
    outcome = service.onboard("alpha", None)
    assert outcome.ok, outcome.results
    mount = read_mounts(service.cfg.export_base)[_target(service)]
    assert (mount.fstype, mount.source) == ("tmpfs", "homevol-test-alpha")
    unit = Path(service.cfg.placement.units_dir) / unit_name(_target(service))
    text = unit.read_text()
    assert f"Where={_target(service)}" in text and "What=homevol-test-alpha" in text
    assert service.onboard("alpha", None).results == []  # a correct mount is left alone


def test_sync_mounts_a_volume_that_is_not_mounted(service: Homevol) -> None:
    service.onboard("alpha", None)
    subprocess.run(["umount", _target(service)], check=True)
    plan = service.sync(dry_run=True).plan
    assert [(a.project, a.action) for a in plan.volumes] == [("alpha", "mount")]
    outcome = service.sync()
    assert outcome.ok and _target(service) in read_mounts(service.cfg.export_base)


def test_sync_replaces_a_wrong_mount(service: Homevol) -> None:
    service.onboard("alpha", None)
    subprocess.run(["umount", _target(service)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "intruder", _target(service)], check=True)
    outcome = service.sync()
    assert outcome.ok, outcome.results
    assert read_mounts(service.cfg.export_base)[_target(service)].source == "homevol-test-alpha"


def test_offboard_unexports_then_unmounts_and_removes_the_unit(service: Homevol) -> None:
    service.onboard("alpha", None)
    outcome = service.offboard("alpha")
    assert outcome.ok, outcome.results
    assert [r.action for r in outcome.results] == ["volume-retire", "export-remove", "volume-unmount"]
    assert _target(service) not in read_mounts(service.cfg.export_base)
    assert not (Path(service.cfg.placement.units_dir) / unit_name(_target(service))).exists()
    assert service.sync().results == []  # a retired volume stays unmounted


def test_a_failing_mount_is_reported_per_project(service: Homevol) -> None:
    service.backend.mount_plan = lambda volume: MountPlan(  # type: ignore[method-assign]
        MountSpec(source="x", fstype="tmpfs"), ["false"], "x", "tmpfs")
    outcome = service.onboard("alpha", None)
    assert not outcome.ok
    failed = [r for r in outcome.results if not r.ok]
    assert failed[0].action == "volume-mount" and "false exited 1" in failed[0].detail
    assert [r.action for r in failed] == ["volume-mount", "export-add"]  # no export of an unmounted path
    assert failed[1].detail.startswith("skipped")


def test_a_retired_volume_left_mounted_by_a_crash_is_unmounted(service: Homevol) -> None:
    service.onboard("alpha", None)
    service.offboard("alpha")
    volume = service.backend.info("alpha", usage=False)
    assert volume is not None
    plan = service.backend.mount_plan(volume)
    subprocess.run(plan.command, check=True)  # as if offboard had stopped before unmounting
    outcome = service.offboard("alpha")
    assert outcome.notes == ["alpha: already retired"]
    assert [(r.action, r.ok) for r in outcome.results] == [("volume-unmount", True)]
    subprocess.run(plan.command, check=True)
    assert [(a.project, a.action) for a in service.sync(dry_run=True).plan.volumes] == [("alpha", "unmount")]
    assert service.sync().ok
    assert _target(service) not in read_mounts(service.cfg.export_base)
