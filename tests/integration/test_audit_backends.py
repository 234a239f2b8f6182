"""`homevol audit` on the real CephFS, Gluster and NFS-Ganesha, with drift made behind its back.

Each test onboards its own projects through the real command, drifts one thing by hand (a home
unmounted, a subvolume filled past the threshold, a managed Ganesha file edited, an export
removed from disk and from the running server), checks that the audit names it with the fix,
and purges what it made.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.config import GaneshaExportsConfig
from provisioner.exports.ganesha import _Server
from provisioner.placement import read_mounts
from tests.conftest import Workspace
from tests.integration.test_cephfs import CephWorkspace, cws, fill, ok, wait_used  # noqa: F401
from tests.integration.test_gluster import GlusterWorkspace, vws  # noqa: F401
from tests.support.nfs_stack import HOSTS, NfsStack

pytestmark = pytest.mark.integration
MiB = 1 << 20


def _audit(ws: Workspace, project: str, *args: str) -> dict[str, Any]:
    result = ws.homevol("audit", "--json", "--project", project, *args)
    assert result.code == 0, result.stderr + result.stdout
    return dict(result.json)


def _row(report: dict[str, Any], project: str) -> dict[str, Any]:
    return dict(next(p for p in report["projects"] if p["project"] == project))


def _kinds(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["kind"]: f for f in report["findings"]}


# ----- CephFS ------------------------------------------------------------------------------------

def test_cephfs_a_home_unmounted_behind_homevols_back(cws: CephWorkspace) -> None:  # noqa: F811
    project = cws.project()
    ok(cws.ws.homevol("onboard", project))
    clean = _audit(cws.ws, project)
    assert _row(clean, project)["mount"] == "mounted" and clean["findings"] == []
    subprocess.run(["umount", cws.target(project)], check=True)
    report = _audit(cws.ws, project)
    row = _row(report, project)
    assert (row["backend"], row["volume"], row["mount"]) == ("cephfs", "active", "not-mounted")
    finding = _kinds(report)["volume-not-mounted"]
    assert finding["severity"] == "error"
    assert finding["fix"] == f"homevol sync --project {project}"  # placement mounts it again
    ok(cws.ws.homevol("sync", "--project", project))  # the fix works
    assert cws.mounted(project) and _audit(cws.ws, project)["findings"] == []
    ok(cws.ws.homevol("offboard", project))  # retired and unmounted on purpose: no finding
    retired = _audit(cws.ws, project)
    assert _row(retired, project)["mount"] == "not-mounted"
    assert "volume-not-mounted" not in _kinds(retired)
    ok(cws.ws.homevol("purge", project, "--yes"))


def test_cephfs_usage_above_the_threshold_is_read_from_ceph(cws: CephWorkspace) -> None:  # noqa: F811
    project = cws.project()
    cws.ws.configure(audit={"usage_warning": 0.5})
    ok(cws.ws.homevol("onboard", project, "--size", "10M"))
    assert fill(Path(cws.target(project)) / "data", 6) == 6 * MiB
    assert wait_used(cws, project, 6 * MiB) >= 6 * MiB
    report = _audit(cws.ws, project)
    info = cws.info(project)  # what Ceph itself says, as client.admin
    row = _row(report, project)
    assert row["size_bytes"] == info["bytes_quota"] == 10 * MiB
    assert row["used_bytes"] == info["bytes_used"] and row["used_bytes"] >= 6 * MiB
    assert row["used_percent"] == round(100 * row["used_bytes"] / (10 * MiB), 1)
    finding = _kinds(report)["usage-above-threshold"]
    assert finding["severity"] == "warning" and "> 50%" in finding["detail"]
    assert finding["fix"] == f"homevol resize {project} 20M"
    ok(cws.ws.homevol("purge", project, "--yes"))


# ----- Gluster (volume layout) -------------------------------------------------------------------

def test_gluster_a_home_unmounted_behind_homevols_back(vws: GlusterWorkspace) -> None:  # noqa: F811
    vws.ok("onboard", "alpha")
    assert _audit(vws.ws, "alpha")["findings"] == []
    subprocess.run(["umount", vws.target("alpha")], check=True)
    report = _audit(vws.ws, "alpha")
    row = _row(report, "alpha")
    assert (row["backend"], row["mount"]) == ("gluster", "not-mounted")
    finding = _kinds(report)["volume-not-mounted"]
    assert (finding["severity"], finding["fix"]) == ("error", "homevol sync --project alpha")
    vws.ok("sync", "--project", "alpha")
    assert vws.mount("alpha") is not None and _audit(vws.ws, "alpha")["findings"] == []
    vws.ok("purge", "alpha", "--yes")


# ----- NFS-Ganesha -------------------------------------------------------------------------------

@pytest.fixture
def ganesha_ws(workspace: Workspace, nfs_stack: NfsStack) -> Iterator[tuple[Workspace, list[str]]]:
    """Two projects of their own (local backend, file directory), exported by the suite's Ganesha."""
    tag = uuid.uuid4().hex[:8]
    projects = [f"ga{tag}", f"gb{tag}"]
    text = "".join(f"[projects.{p}]\n" for p in projects)
    for p, ns in zip(projects, ("hvA", "hvB"), strict=True):
        text += f'[[hosts]]\nname = "{ns.lower()}.x"\naddress = "{HOSTS[ns]}"\nproject = "{p}"\n'
    (workspace.root / "inventory.toml").write_text(text)
    workspace.configure(exports={
        "server": "ganesha", "extra_client_networks": ["198.18.1.0/24"],
        "ganesha": {"directory": str(nfs_stack.exports_dir), "index": str(nfs_stack.index),
                    "dbus_address": nfs_stack.bus, "pid_file": str(nfs_stack.pid_file),
                    "pseudo_base": "/export/home"}})
    try:
        yield workspace, projects
    finally:
        for project in projects:
            workspace.homevol("purge", "--yes", project)
        for target in sorted(read_mounts(str(workspace.base)), reverse=True):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)


def test_ganesha_a_hand_edited_file_and_a_missing_export(ganesha_ws: tuple[Workspace, list[str]],
                                                         nfs_stack: NfsStack) -> None:
    ws, (edited, removed) = ganesha_ws
    for project in (edited, removed):
        ok(ws.homevol("onboard", project))
        assert _row(_audit(ws, project), project)["export"] == "exported"
    assert _audit(ws, edited)["exports_applier"] == "ganesha"

    # an operator widens one export by editing homevol's file
    path = nfs_stack.exports_dir / f"homevol-{edited}.conf"
    path.write_text(path.read_text().replace(f"Clients = {HOSTS['hvA']};",
                                             f"Clients = {HOSTS['hvA']}, {HOSTS['hvC']};"))
    report = _audit(ws, edited)
    kinds = _kinds(report)
    assert kinds["hand-edited-exports-file"]["fix"] == f"homevol sync --project {edited}"
    assert kinds["clients-extra"]["severity"] == "error"
    assert _row(report, edited)["extra_clients"] == [HOSTS["hvC"]]
    assert _row(report, edited)["export"] == "drift"

    # another export vanishes: its file removed and the live export taken out of the server
    path = nfs_stack.exports_dir / f"homevol-{removed}.conf"
    export_id = int(path.read_text().split("export_id=")[1].split()[0])
    path.unlink()
    with _Server(GaneshaExportsConfig(), nfs_stack.bus) as server:
        server.remove(export_id)
        assert export_id not in {e[0] for e in server.exports()}
    report = _audit(ws, removed)
    finding = _kinds(report)["export-missing"]
    assert (finding["severity"], finding["fix"]) == ("error", f"homevol sync --project {removed}")
    assert (_row(report, removed)["export"], _row(report, removed)["clients"]) == ("missing", 0)

    # both fixes work, and the audit is clean again
    for project in (edited, removed):
        ok(ws.homevol("sync", "--project", project, "--force"))
        assert _audit(ws, project)["findings"] == []
