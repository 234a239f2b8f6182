"""A CephFS home served by NFS-Ganesha to a real NFS client: the quota holds through NFS.

The home is a CephFS subvolume with a 1 MiB quota, mounted with ceph-fuse at
``<export_base>/<project>`` and exported by Ganesha's VFS FSAL; the client is libnfs in a
network namespace. libnfs cannot write more than ~3.5 KB in one NFSv4 WRITE (a client bug), so
the test writes many small files until the server answers with a quota error.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from provisioner.placement import read_mounts
from tests.conftest import Workspace
from tests.support.ceph import CephCluster
from tests.support.nfs_stack import HOSTS, NfsStack

CHUNK = 3000  # bytes per file: below the libnfs NFSv4 write limit


@pytest.fixture(params=["vfs", "direct"])
def served(request: pytest.FixtureRequest, workspace: Workspace, ceph_cluster: CephCluster,
           nfs_stack: NfsStack) -> Iterator[tuple[Workspace, str]]:
    """A project with a CephFS home; Ganesha serves it through VFS on the ceph-fuse mount, or
    straight from CephFS with FSAL_CEPH (``exports.ganesha.fsal = "direct"``)."""
    project = f"nq{uuid.uuid4().hex[:8]}"
    (workspace.root / "inventory.toml").write_text(
        f'[projects.{project}]\n[[hosts]]\nname = "a.x"\naddress = "{HOSTS["hvA"]}"\nproject = "{project}"\n')
    workspace.configure(
        backend={"name": "cephfs", "default_size": "1M", "cephfs": {
            "conf_file": str(ceph_cluster.conf), "keyring": str(ceph_cluster.homevol_keyring),
            "client_id": "homevol", "connect_timeout": 3.0, "command_timeout": 10.0}},
        placement={"units_dir": str(workspace.root / "units"), "mount_timeout": 20.0},
        exports={"server": "ganesha", "extra_client_networks": ["198.18.1.0/24"],
                 "options": ["rw", "no_root_squash", "no_subtree_check", "sec=sys"],
                 "ganesha": {"directory": str(nfs_stack.exports_dir), "index": str(nfs_stack.index),
                             "dbus_address": nfs_stack.bus, "pid_file": str(nfs_stack.pid_file),
                             "fsal": request.param}})
    try:
        yield workspace, project
    finally:
        workspace.homevol("purge", "--yes", project)
        for target in sorted(read_mounts(str(workspace.base)), reverse=True):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)


def test_the_cephfs_quota_holds_through_nfs(served: tuple[Workspace, str], nfs_stack: NfsStack) -> None:
    ws, project = served
    result = ws.homevol("onboard", project, "--size", "1M")
    assert result.code == 0, result.stderr + result.stdout
    assert nfs_stack.client("hvA", "nfs-ls", nfs_stack.url(f"/export/home/{project}")).returncode == 0
    denied = nfs_stack.client("hvB", "nfs-ls", nfs_stack.url(f"/export/home/{project}"))
    assert denied.returncode != 0 and b"NFS4ERR_NOENT" in denied.stderr
    assert ws.homevol("verify", project).code == 0
    block = (nfs_stack.exports_dir / f"homevol-{project}.conf").read_text()
    fsal = ws.settings["exports"]["ganesha"]["fsal"]
    assert ("Name = CEPH;" in block and 'Path = "/volumes/homes/' in block) if fsal == "direct" \
        else ("Name = VFS;" in block and f'Path = "{ws.base}/{project}";' in block)
    source = ws.root / "chunk"
    source.write_bytes(b"x" * CHUNK)
    written, refusal = 0, b""
    for n in range(2000):  # 6 MB at most: far past the 1 MiB quota
        copy = nfs_stack.client("hvA", "nfs-cp", str(source),
                                nfs_stack.url(f"/export/home/{project}/f{n:04d}"))
        if copy.returncode != 0:
            refusal = copy.stderr
            break
        written += CHUNK
    assert refusal, f"wrote {written} bytes through NFS into a 1 MiB quota without an error"
    assert (1 << 20) * 0.5 < written < (1 << 20) * 2, written  # stopped at about the quota
    # libnfs only says "Failed to write": prove it was the quota by raising it
    again = nfs_stack.url(f"/export/home/{project}/still-full")
    assert nfs_stack.client("hvA", "nfs-cp", str(source), again).returncode != 0
    assert ws.homevol("resize", project, "4M").code == 0
    after = nfs_stack.url(f"/export/home/{project}/after-resize")
    assert nfs_stack.client("hvA", "nfs-cp", str(source), after).returncode == 0
