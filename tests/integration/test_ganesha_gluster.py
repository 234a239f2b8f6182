"""Gluster homes served by NFS-Ganesha straight through FSAL_GLUSTER, to real NFS clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Workspace
from tests.integration.test_gluster import GlusterWorkspace
from tests.support.gluster import Glusterd
from tests.support.nfs_stack import HOSTS, NfsStack


@pytest.fixture(params=["volume", "directory"])
def served(request: pytest.FixtureRequest, workspace: Workspace, glusterd: Glusterd,
           nfs_stack: NfsStack) -> Iterator[GlusterWorkspace]:
    g = GlusterWorkspace(workspace, glusterd, request.param)
    g.write_inventory((f"h.{HOSTS['hvA']}.x", HOSTS["hvA"], "alpha"))
    workspace.configure(exports={
        "server": "ganesha", "extra_client_networks": ["198.18.1.0/24"],
        "options": ["rw", "no_root_squash", "no_subtree_check", "sec=sys"],
        "ganesha": {"directory": str(nfs_stack.exports_dir), "index": str(nfs_stack.index),
                    "dbus_address": nfs_stack.bus, "pid_file": str(nfs_stack.pid_file),
                    "fsal": "direct", "timeout": 30.0}})
    yield g
    workspace.homevol("purge", "--yes", "alpha")
    g.cleanup()


def test_fsal_gluster_serves_only_the_projects_instances(
    served: GlusterWorkspace, nfs_stack: NfsStack
) -> None:
    served.ok("onboard", "alpha")
    (served.ws.base / "alpha" / "hello.txt").write_text("hello over gfapi\n")  # via the FUSE mount
    block = (nfs_stack.exports_dir / "homevol-alpha.conf").read_text()
    assert "Name = GLUSTER;" in block
    read = nfs_stack.client("hvA", "nfs-cat", nfs_stack.url("/export/home/alpha/hello.txt"))
    assert read.returncode == 0 and read.stdout == b"hello over gfapi\n", read.stderr
    denied = nfs_stack.client("hvB", "nfs-ls", nfs_stack.url("/export/home/alpha"))
    assert denied.returncode != 0 and b"NFS4ERR_NOENT" in denied.stderr
    assert served.ws.homevol("verify", "alpha").code == 0
