"""The cephfs backend against a real single-node Ceph cluster (one per session, scripts/ceph-test-cluster).

homevol runs as client.homevol with exactly the caps of docs/cephfs.md, never as client.admin;
the admin client only sets up what homevol must not own and checks what homevol did. Every
test uses its own project names and purges what it made.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.cephfs import CephError, CephfsBackend
from provisioner import config as config_mod
from provisioner.placement import read_mounts, render_unit, unit_name
from provisioner.service import Homevol
from tests.conftest import Workspace
from tests.support import ceph as ceph_support
from tests.support.ceph import CephCluster, free_port

pytestmark = pytest.mark.integration
MiB = 1 << 20


class Crash(BaseException):
    """A crash injected between two steps (not an error homevol handles)."""


class CephWorkspace:
    def __init__(self, ws: Workspace, cluster: CephCluster) -> None:
        self.ws = ws
        self.cluster = cluster
        self.projects: list[str] = []
        self._gids: dict[str, int | None] = {}

    def project(self, gid: int | None = None) -> str:
        name = f"cv{uuid.uuid4().hex[:10]}"
        self.projects.append(name)
        self._write_inventory({**self._gids, name: gid})
        return name

    def _write_inventory(self, projects: dict[str, int | None]) -> None:
        self._gids = projects
        lines = []
        for i, (name, gid) in enumerate(projects.items()):
            lines.append(f"[projects.{name}]" + (f"\ngid = {gid}" if gid is not None else ""))
            lines.append(f'[[hosts]]\nname = "h{i}.x"\naddress = "10.0.{i // 250}.{i % 250 + 1}"\n'
                         f'project = "{name}"')
        (self.ws.root / "inventory.toml").write_text("\n".join(lines) + "\n")

    def target(self, project: str) -> str:
        return f"{self.ws.base}/{project}"

    def mounted(self, project: str) -> bool:
        return self.target(project) in read_mounts(str(self.ws.base))

    def service(self) -> Homevol:
        return Homevol(config_mod.load(str(self.ws.config_path), environ={}))

    def info(self, project: str) -> dict[str, object]:
        out = self.cluster.admin("fs", "subvolume", "info", "cephfs", project, "--group_name", "homes",
                                 "-f", "json").stdout
        return dict(json.loads(out))

    def metadata(self, project: str) -> dict[str, str]:
        out = self.cluster.admin("fs", "subvolume", "metadata", "ls", "cephfs", project,
                                 "--group_name", "homes", "-f", "json").stdout
        return dict(json.loads(out))

    def exists(self, project: str) -> bool:
        out = self.cluster.admin("fs", "subvolume", "ls", "cephfs", "--group_name", "homes",
                                 "-f", "json").stdout
        return project in {e["name"] for e in json.loads(out)}

    def cleanup(self) -> None:
        for target in sorted(read_mounts(str(self.ws.base)), reverse=True):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)
        for project in self.projects:
            snaps = self.cluster.admin("fs", "subvolume", "snapshot", "ls", "cephfs", project,
                                       "--group_name", "homes", "-f", "json", check=False)
            for snap in json.loads(snaps.stdout or "[]") if snaps.returncode == 0 else []:
                self.cluster.admin("fs", "subvolume", "snapshot", "rm", "cephfs", project, snap["name"],
                                   "--group_name", "homes", "--force", check=False)
            self.cluster.admin("fs", "subvolume", "rm", "cephfs", project, "--group_name", "homes",
                               "--force", check=False)


@pytest.fixture
def cws(workspace: Workspace, ceph_cluster: CephCluster) -> Iterator[CephWorkspace]:
    workspace.configure(
        backend={"name": "cephfs", "default_size": "10M", "cephfs": {
            "conf_file": str(ceph_cluster.conf), "keyring": str(ceph_cluster.homevol_keyring),
            "client_id": "homevol", "connect_timeout": 3.0, "command_timeout": 5.0}},
        placement={"units_dir": str(workspace.root / "units"), "mount_timeout": 20.0},
    )
    cw = CephWorkspace(workspace, ceph_cluster)
    try:
        yield cw
    finally:
        cw.cleanup()


def ok(result: object) -> None:
    code = getattr(result, "code", 0)
    assert code == 0, f"exit {code}: {getattr(result, 'stderr', '')}{getattr(result, 'stdout', '')}"


def fill(path: Path, mib: int) -> int:
    """Write up to ``mib`` MiB into ``path``; the bytes written (stops at EDQUOT)."""
    written = 0
    chunk = b"\0" * MiB
    with open(path, "wb") as handle:
        for _ in range(mib):
            handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
            written += len(chunk)
    return written


def wait_used(cw: CephWorkspace, project: str, at_least: int, limit: float = 30.0) -> int:
    """rstats (bytes_used) reach the MDS lazily: wait for the write to show."""
    deadline = time.monotonic() + limit
    while True:
        used = int(str(cw.info(project)["bytes_used"]))
        if used >= at_least or time.monotonic() > deadline:
            return used
        time.sleep(0.5)


# ----- create, quota, placement ------------------------------------------------------------------

def test_onboard_creates_a_quota_subvolume_mounts_and_exports_it(cws: CephWorkspace) -> None:
    project = cws.project(gid=61001)
    ok(cws.ws.homevol("onboard", project, "--size", "10M"))
    info = cws.info(project)
    assert info["bytes_quota"] == 10 * MiB
    assert (info["uid"], info["gid"], int(str(info["mode"])) & 0o7777) == (0, 61001, 0o2775)
    meta = cws.metadata(project)
    assert meta["homevol.project"] == project and meta["homevol.state"] == "active"
    assert meta["homevol.size"] == str(10 * MiB)
    mount = read_mounts(str(cws.ws.base))[cws.target(project)]
    assert (mount.fstype, mount.source) == ("fuse.ceph-fuse", f"ceph:cephfs:{info['path']}")
    assert f"homevol-{project}.exports" in cws.ws.exports_files()
    unit = Path(cws.ws.settings["placement"]["units_dir"]) / unit_name(cws.target(project))
    assert f"Where={cws.target(project)}" in unit.read_text()
    # a write past the quota fails with EDQUOT, through the mount the NFS server exports
    with pytest.raises(OSError) as exc:
        fill(Path(cws.target(project)) / "big", 30)
    assert exc.value.errno == errno.EDQUOT
    again = cws.ws.homevol("onboard", project, "--json")
    ok(again)
    assert again.json["results"] == []  # a correct mount is left alone


def test_the_rendered_unit_mounts_the_same_thing(cws: CephWorkspace) -> None:
    """What systemd would run at boot (mount -t fuse.ceph with the unit's Options) gives the mount
    homevol expects: sync then leaves it alone."""
    project = cws.project()
    ok(cws.ws.homevol("onboard", project))
    unit = Path(cws.ws.settings["placement"]["units_dir"]) / unit_name(cws.target(project))
    fields = dict(line.split("=", 1) for line in unit.read_text().splitlines() if "=" in line)
    subprocess.run(["umount", cws.target(project)], check=True)
    assert not cws.mounted(project)
    subprocess.run(["mount", "-t", fields["Type"], fields["What"], cws.target(project), "-o",
                    fields["Options"]], check=True, capture_output=True, timeout=30)
    deadline = time.monotonic() + 10
    while not cws.mounted(project) and time.monotonic() < deadline:
        time.sleep(0.05)
    result = cws.ws.homevol("sync", "--json")
    ok(result)
    assert [r for r in result.json["results"] if r["project"] == project] == []


def test_sync_remounts_a_missing_or_wrong_mount(cws: CephWorkspace) -> None:
    project = cws.project()
    ok(cws.ws.homevol("onboard", project))
    subprocess.run(["umount", cws.target(project)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "intruder", cws.target(project)], check=True)
    ok(cws.ws.homevol("sync"))
    mount = read_mounts(str(cws.ws.base))[cws.target(project)]
    assert mount.fstype == "fuse.ceph-fuse"


def test_resize_grows_and_refuses_to_shrink_below_usage(cws: CephWorkspace) -> None:
    project = cws.project()
    ok(cws.ws.homevol("onboard", project, "--size", "10M"))
    assert fill(Path(cws.target(project)) / "data", 6) == 6 * MiB
    assert wait_used(cws, project, 6 * MiB) >= 6 * MiB
    ok(cws.ws.homevol("resize", project, "20M"))
    assert cws.info(project)["bytes_quota"] == 20 * MiB
    refused = cws.ws.homevol("resize", project, "2M")
    assert refused.code == 1
    assert "would be lesser than the current used size" in refused.stderr  # Ceph's own words
    assert cws.info(project)["bytes_quota"] == 20 * MiB
    ok(cws.ws.homevol("resize", project, "8M"))  # a shrink above usage is fine
    assert cws.info(project)["bytes_quota"] == 8 * MiB
    ok(cws.ws.homevol("resize", project, "2M", "--force"))
    assert cws.info(project)["bytes_quota"] == 2 * MiB
    assert cws.metadata(project)["homevol.size"] == str(2 * MiB)


# ----- ownership ---------------------------------------------------------------------------------

def test_list_shows_only_owned_subvolumes_and_adopt_takes_one_over(cws: CephWorkspace) -> None:
    mine, foreign = cws.project(), cws.project()
    ok(cws.ws.homevol("onboard", mine))
    cws.cluster.admin("fs", "subvolume", "create", "cephfs", foreign, "--group_name", "homes",
                      "--size", str(5 * MiB))
    listing = cws.ws.homevol("list", "--json")
    ok(listing)
    names = {v["project"] for v in listing.json["volumes"]}
    assert mine in names and foreign not in names
    plan = cws.ws.homevol("sync", "--dry-run", "--json", "-v")
    kinds = {(f["kind"], f.get("project")) for f in plan.json["findings"]}
    assert ("unowned-volume", foreign) in kinds
    refused = cws.ws.homevol("onboard", foreign)
    assert refused.code == 1 and "use --adopt" in refused.stdout + refused.stderr
    assert "homevol.project" not in cws.metadata(foreign) and not cws.mounted(foreign)
    ok(cws.ws.homevol("onboard", foreign, "--adopt"))
    assert cws.metadata(foreign)["homevol.project"] == foreign and cws.mounted(foreign)


def test_homevol_cannot_touch_other_groups(cws: CephWorkspace) -> None:
    """Its caps name the filesystem and the group: outside them the monitor refuses."""
    cfg = config_mod.load(str(cws.ws.config_path), environ={})
    backend = CephfsBackend(cfg.export_base, cfg.state_dir, cfg.backend.cephfs)
    with pytest.raises(CephError) as exc:
        backend.client.command("fs subvolume create", vol_name="cephfs", sub_name="x",
                               group_name="elsewhere")
    assert exc.value.errno == errno.EACCES and "access denied" in str(exc.value)
    with pytest.raises(CephError):
        backend.client.command("fs volume rm", vol_name="cephfs")
    assert "client.admin" not in cws.cluster.caps()


# ----- retire, purge -----------------------------------------------------------------------------

def test_offboard_keeps_the_data_and_unmounts_purge_removes(cws: CephWorkspace) -> None:
    project = cws.project()
    ok(cws.ws.homevol("onboard", project))
    (Path(cws.target(project)) / "keep.txt").write_text("precious\n")
    ok(cws.ws.homevol("offboard", project))
    assert not cws.mounted(project)
    assert f"homevol-{project}.exports" not in cws.ws.exports_files()
    assert cws.metadata(project)["homevol.state"] == "retired"
    assert not (Path(cws.ws.settings["placement"]["units_dir"]) / unit_name(cws.target(project))).exists()
    ok(cws.ws.homevol("onboard", project))  # back: the same data
    assert (Path(cws.target(project)) / "keep.txt").read_text() == "precious\n"
    ok(cws.ws.homevol("purge", project, "--yes"))
    assert not cws.exists(project) and not cws.mounted(project)
    again = cws.ws.homevol("purge", project, "--yes", "--json")
    ok(again)
    assert "nothing to do" in json.dumps(again.json) or "already gone" in json.dumps(again.json)


def test_purge_can_retain_snapshots(cws: CephWorkspace) -> None:
    project = cws.project()
    ok(cws.ws.homevol("onboard", project))
    cws.cluster.admin("fs", "subvolume", "snapshot", "create", "cephfs", project, "s1",
                      "--group_name", "homes")
    ok(cws.ws.homevol("purge", project, "--yes", "--retain-snapshots"))
    assert cws.info(project)["state"] == "snapshot-retained"
    listing = cws.ws.homevol("list", "--json")
    ok(listing)
    assert project not in {v["project"] for v in listing.json["volumes"]}


# ----- crash safety ------------------------------------------------------------------------------

def test_a_crash_between_create_and_stamp_converges(cws: CephWorkspace) -> None:
    """The one crash rule, without a side file: homevol's unstamped subvolume (empty, created
    with homevol's uid, gid and mode) is reported as creating, not exported, and finished by the
    next sync (or onboard)."""
    project = cws.project()
    service = cws.service()
    assert isinstance(service.backend, CephfsBackend)
    real_set = service.backend._set

    def crash(project: str, key: str, value: str) -> None:
        raise Crash(f"crash before setting {key}")

    service.backend._set = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        service.onboard(project, None)
    service.backend._set = real_set  # type: ignore[method-assign]
    assert cws.exists(project) and "homevol.project" not in cws.metadata(project)
    assert not (Path(cws.ws.root) / "state" / "cephfs-pending").exists()
    listing = cws.ws.homevol("list", "--json")
    ok(listing)
    assert [(v["project"], v["state"]) for v in listing.json["volumes"] if v["project"] == project] \
        == [(project, "creating")]
    assert not [f for f in listing.json["findings"] if f.get("project") == project]
    assert not cws.mounted(project) and f"homevol-{project}.exports" not in cws.ws.exports_files()
    dry = cws.ws.homevol("sync", "--project", project, "--dry-run", "--json")
    ok(dry)  # the plan finishes it first, then mounts and exports it
    assert [v["action"] for v in dry.json["volumes"]] == ["finish", "mount"]
    ok(cws.ws.homevol("sync", "--project", project))  # no --adopt: the half-made one is homevol's
    assert cws.metadata(project)["homevol.project"] == project
    assert cws.metadata(project)["homevol.state"] == "active"
    assert cws.mounted(project) and f"homevol-{project}.exports" in cws.ws.exports_files()
    assert cws.ws.homevol("sync", "--project", project, "--dry-run", "--json").json["volumes"] == []


def test_a_subvolume_stamped_by_the_previous_release_is_read_and_upgraded(cws: CephWorkspace) -> None:
    """Made as the release before stamp formats made it: create, then size, state, owner."""
    project = cws.project()
    cws.cluster.admin("fs", "subvolumegroup", "create", "cephfs", "homes")
    cws.cluster.admin("fs", "subvolume", "create", "cephfs", project, "--group_name", "homes",
                      "--size", str(10 * MiB), "--mode", "2775", "--uid", "0", "--gid", "0")
    for key, value in (("homevol.size", str(10 * MiB)), ("homevol.state", "active"),
                       ("homevol.project", project)):
        cws.cluster.admin("fs", "subvolume", "metadata", "set", "cephfs", project, key, value,
                          "--group_name", "homes")
    old = cws.metadata(project)
    listing = cws.ws.homevol("list", "--json")
    ok(listing)
    assert [(v["state"], v["size_bytes"]) for v in listing.json["volumes"] if v["project"] == project] \
        == [("active", 10 * MiB)]
    assert cws.metadata(project) == old  # reading writes nothing
    ok(cws.ws.homevol("offboard", project))
    assert cws.metadata(project) == {**old, "homevol.format": "1", "homevol.state": "retired"}
    ok(cws.ws.homevol("onboard", project))
    assert cws.metadata(project)["homevol.state"] == "active" and cws.mounted(project)


def test_a_crash_between_stamp_and_mount_then_sync_converges(cws: CephWorkspace) -> None:
    project = cws.project()
    service = cws.service()

    def crash(*args: object) -> str:
        raise Crash("crash before the mount")

    service.placement.ensure = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        service.onboard(project, None)
    assert cws.metadata(project)["homevol.project"] == project and not cws.mounted(project)
    result = cws.ws.homevol("sync", "--json")
    ok(result)
    assert {r["action"] for r in result.json["results"] if r["project"] == project} >= {"volume-mount",
                                                                                      "export-add"}
    assert cws.mounted(project) and f"homevol-{project}.exports" in cws.ws.exports_files()


def test_a_crash_between_mount_and_export_then_sync_converges(cws: CephWorkspace) -> None:
    project = cws.project()
    service = cws.service()

    def crash(*args: object) -> object:
        raise Crash("crash before the export")

    service.applier.apply = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        service.onboard(project, None)
    assert cws.mounted(project) and f"homevol-{project}.exports" not in cws.ws.exports_files()
    ok(cws.ws.homevol("sync"))
    assert f"homevol-{project}.exports" in cws.ws.exports_files()


# ----- a dead or hung cluster --------------------------------------------------------------------

def test_an_unreachable_cluster_is_a_clear_error_in_time(cws: CephWorkspace) -> None:
    project = cws.project()
    dead = cws.ws.root / "dead.conf"
    dead.write_text(f"[global]\nmon host = [v2:127.0.0.1:{free_port()},v1:127.0.0.1:{free_port()}]\n"
                    "auth client required = cephx\n")
    cws.ws.configure(backend={"cephfs": {"conf_file": str(dead), "connect_timeout": 2.0}})
    for args in (("onboard", project), ("sync",), ("list",), ("offboard", project)):
        started = time.monotonic()
        result = cws.ws.homevol(*args)
        took = time.monotonic() - started
        assert result.code == 1, (args, result.stderr)
        assert "no answer from the Ceph monitors" in result.stderr and "within 2s" in result.stderr
        assert "Traceback" not in result.stderr
        assert took < 2 + 6, (args, took)  # the timeout plus the interpreter's start
    assert cws.ws.exports_files() == {} and not cws.mounted(project)
    assert not list((cws.ws.root / "units").glob("*")) if (cws.ws.root / "units").exists() else True


def test_a_hung_mgr_is_a_clear_error_in_time_and_nothing_is_half_done(cws: CephWorkspace) -> None:
    project = cws.project()
    cws.ws.configure(backend={"cephfs": {"command_timeout": 2.0}})
    mgr = int((cws.cluster.root / "pids" / "mgr.x").read_text())
    os.kill(mgr, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = cws.ws.homevol("onboard", project)
        took = time.monotonic() - started
    finally:
        os.kill(mgr, signal.SIGCONT)
    assert result.code == 1
    assert "no answer within 2s" in result.stderr and "Traceback" not in result.stderr
    assert took < 2 + 6
    assert not cws.mounted(project) and cws.ws.exports_files() == {}
    ok(cws.ws.homevol("onboard", project))  # the cluster is back: the same command converges
    assert cws.mounted(project)


# ----- the kernel client (rendered only: no kernel CephFS here) ----------------------------------

def test_the_kernel_client_is_rendered(cws: CephWorkspace) -> None:
    project = cws.project()
    cws.ws.configure(backend={"cephfs": {"mount_client": "kernel"}})
    cfg = config_mod.load(str(cws.ws.config_path), environ={})
    backend = CephfsBackend(cfg.export_base, cfg.state_dir, cfg.backend.cephfs)
    volume = backend.ensure(project, 10 * MiB)
    plan = backend.mount_plan(volume)
    path = cws.info(project)["path"]
    port = cws.cluster.conf.read_text().split(f"v1:{ceph_support.ADDRESS}:")[1].split("]")[0]
    what = f"{ceph_support.ADDRESS}:{port}:{path}"
    assert plan.command == ["mount", "-t", "ceph", what, cws.target(project), "-o",
                            f"name=homevol,conf={cws.cluster.conf},mds_namespace=cephfs"]
    unit = render_unit(project, cws.target(project), plan)
    assert f"What={what}\nWhere={cws.target(project)}\nType=ceph\n" in unit
    assert f"Options=name=homevol,conf={cws.cluster.conf},mds_namespace=cephfs,_netdev" in unit
    assert plan.unmount == ["umount"] and plan.spec.fstype == "ceph"
